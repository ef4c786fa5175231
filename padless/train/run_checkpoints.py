"""The checkpoint steps of the trainer: refusing a used folder, reading, restoring and writing checkpoints.

Owns: :class:`CheckpointSteps`, the part of :class:`padless.train.trainer.Trainer` that talks to checkpoint
folders: a fresh run refuses a folder holding another run's checkpoints; resuming reads the newest
checkpoint on rank 0 and broadcasts it, restores the batch source's position, the partial sums of the
epoch, the carried TBPTT state and stateful layers' states; saving gathers every rank's random-generator
state and carried state and writes one file on rank 0.

Does not own: the file format (:mod:`padless.train.checkpoint`), what the state holds
(:mod:`padless.train.state`), the loop (:mod:`padless.train.trainer`).

Example:
    >>> issubclass(CheckpointSteps, object)
    True
"""

from __future__ import annotations

import json
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from padless.errors import CheckpointError, ConfigError, PadlessError
from padless.train.callback_state import callback_states
from padless.train.checkpoint import (
    Checkpoint,
    clear_checkpoints,
    has_checkpoints,
    parse_checkpoint,
    read_checkpoint_bytes,
    save_checkpoint,
)
from padless.train.compile import compile_config
from padless.train.inference import reduce_totals
from padless.train.rng import capture_rng
from padless.train.state import EpochTotals, RunState

__all__ = ["CheckpointSteps"]


class CheckpointSteps:
    """Checkpoint reading and writing for the trainer (a mixin: it uses the trainer's attributes)."""

    ctx: Any
    options: Any
    rank: int
    compiled: Any

    def _refuse_foreign_checkpoints(self) -> None:
        o = self.options
        err: BaseException | None = None
        if o.checkpoint_dir is not None and o.resume_from is None:
            if self.rank == 0 and has_checkpoints(o.checkpoint_dir) and not o.overwrite_checkpoints:
                err = ConfigError(f"{str(o.checkpoint_dir)!r} already holds checkpoints of another run: pass "
                                  f"resume_from={str(o.checkpoint_dir)!r} to continue it, or choose an empty folder")
            self._stale = bool(o.overwrite_checkpoints)
        self._agree(err)

    def _read_checkpoint(self) -> Checkpoint:
        o = self.options
        where, data, err = str(o.resume_from), b"", None
        if self.rank == 0:  # rank 0 reads, the others receive the bytes (their disk may not have the folder)
            try:
                where, data = read_checkpoint_bytes(o.resume_from)  # type: ignore[arg-type]
            except (CheckpointError, OSError) as e:
                err = e if isinstance(e, CheckpointError) else CheckpointError(f"cannot read {where!r}: {e}")
        self._agree(err)
        if self.ctx is not None:
            data = self.ctx.broadcast_bytes(data if self.rank == 0 else None)
            where = self.ctx.broadcast_bytes(where.encode() if self.rank == 0 else None).decode()
        return parse_checkpoint(data, where)

    def _restore_position(self, ckpt: Checkpoint) -> None:
        st = ckpt.run
        self.state.epoch, self.state.position, self.state.global_step = st.epoch, st.position, st.global_step
        self.state.stop_training = st.stop_training
        if st.position > 0:
            saved = st.source or {}
            if saved.get("kind") != type(self.source).__name__:
                raise CheckpointError(f"{ckpt.path!r} was written by a run batching with {saved.get('kind')}; this run "
                                      f"uses {type(self.source).__name__}: resume with the same batching and tbptt settings")
            try:
                self.source.load_state_dict({**saved, "epoch": st.epoch, "position": st.position})
            except ConfigError as e:
                raise CheckpointError(f"{ckpt.path!r} does not fit this run's data: {e}") from None
            zero = self.ctx is not None and self.rank != 0  # rank 0 carries the (all-reduced) partial sums
            part = st.partial or EpochTotals()
            self.partial = EpochTotals(seconds=part.seconds, steps_done=st.position) if zero else part
            self.partial.steps_done = st.position
            prefix = f"carry/{self.rank}/"
            self.stepper.load_carry({k[len(prefix):]: v for k, v in ckpt.tensors.items() if k.startswith(prefix)},
                                    self.compiled.device)
        for m_i, m in enumerate(self.model.stateful_layers):
            saved_t = [ckpt.tensors[k] for k in sorted(ckpt.tensors) if k.startswith(f"layerstate/{m_i}/")]
            m.states = tuple(s.to(self.compiled.device) for s in saved_t) if saved_t else None  # type: ignore[attr-defined]

    def save(self, epoch: int, position: int, totals: EpochTotals | None) -> None:
        """Write a checkpoint (rank 0) of the run at ``epoch`` after ``position`` steps (0: epoch boundary)."""
        ctx, o = self.ctx, self.options
        partial = None
        if totals is not None:  # global sums: rank 0 resumes with them, the other ranks with zero
            partial = reduce_totals(totals, self.keys, ctx, self.compiled.sum_sizes)
        rngs = [capture_rng()] if ctx is None else [json.loads(b.decode()) for b in
                                                     ctx.gather_bytes(json.dumps(capture_rng()).encode())]
        tensors = self._gather_carry() if position > 0 else {}
        err: BaseException | None = None
        if self.rank == 0:
            cb_states, cb_tensors = callback_states(self.callbacks.callbacks)
            tensors.update(cb_tensors)
            for m_i, m in enumerate(self.model.stateful_layers):
                for k_i, s in enumerate(getattr(m, "states", None) or ()):
                    tensors[f"layerstate/{m_i}/{k_i}"] = s
            st = RunState(epoch=epoch, position=position, global_step=self.state.global_step, epochs=o.epochs,
                          seed=self.seed, stop_training=self.stop_training,
                          source=self._source_state(position) if position > 0 else None, partial=partial,
                          callbacks=cb_states, fingerprint=self.fingerprint, world_size=self.world_size)
            try:
                if self._stale:  # overwrite_checkpoints: the other run's files go now, not before
                    clear_checkpoints(o.checkpoint_dir)  # type: ignore[arg-type]
                    self._stale = False
                save_checkpoint(o.checkpoint_dir, self.model, self.compiled.optimizer, st,  # type: ignore[arg-type]
                                compile_config=compile_config(self.compiled), preprocessing=self.preprocessing,
                                rng=rngs, tensors=tensors, keep=o.keep_checkpoints)
            except (OSError, PadlessError) as e:
                err = e if isinstance(e, PadlessError) else CheckpointError(
                    f"could not write a checkpoint to {str(o.checkpoint_dir)!r}: {e}")
        self._agree(err)

    def _source_state(self, position: int) -> dict[str, Any]:
        st = dict(self.source.state_dict())
        st["position"] = int(position)
        return st

    def _gather_carry(self) -> dict[str, torch.Tensor]:
        """Every rank's carried TBPTT state as ``carry/<rank>/<layer>/<k>`` tensors."""
        from_mine = self.stepper.carry_tensors()
        if self.ctx is None:
            return {f"carry/0/{k}": v for k, v in from_mine.items()}
        out: dict[str, torch.Tensor] = {}
        for r, blob in enumerate(self.ctx.gather_bytes(st_save(from_mine) if from_mine else b"")):
            if blob:
                out.update({f"carry/{r}/{k}": v for k, v in st_load(blob).items()})
        return out
