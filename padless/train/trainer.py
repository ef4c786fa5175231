"""The training loop, built from small steps you can override: :class:`Trainer`.

Owns: :class:`Trainer`. ``fit`` is ``setup`` (data, targets, validation, processes, optimizer, batch
source, stepper) -> ``resume`` (from a checkpoint: weights, optimizer, source position, partial sums,
carried state, callbacks, random generators) -> one ``run_epoch`` per epoch (``epoch_steps`` ->
``train_step`` for each -> ``end_epoch``: reduce, validate, log, checkpoint) -> ``teardown``. Losses and
metrics are sums with an item count (samples, or real steps for per-step targets), so the reported figures
do not depend on batch size, batching mode or process count. Under ``torchrun`` every step all-reduces its
item count and scales the loss so that DDP's gradient average is the token-weighted global mean.

Does not own: batch sources (``padless.data``, :mod:`padless.train.tbptt`), steps
(:mod:`padless.train.steps`), evaluation (:mod:`padless.train.inference`), the checkpoint file format
(:mod:`padless.train.checkpoint`), process groups (:mod:`padless.train.distributed`).

Example:
    >>> import numpy as np
    >>> from padless.nn import GRU, Dense, LayerStack
    >>> from padless.train.compile import compile_model
    >>> m = LayerStack([GRU(4, input_size=2), Dense(2, activation="softmax")])
    >>> c = compile_model(m, "adam", "sparse_categorical_crossentropy", ["accuracy"])
    >>> x = [np.random.rand(t, 2).astype("float32") for t in (3, 5, 2, 4)]
    >>> hist = Trainer(m, c, FitOptions(batch_size=2, epochs=2, verbose=0)).fit(x, np.array([0, 1, 0, 1]))
    >>> len(hist.history["loss"]), sorted(hist.history)
    (2, ['accuracy', 'loss'])
"""

from __future__ import annotations

import gc
import json
import time
import warnings
from typing import Any, Iterable, Iterator, Sequence

import torch

from padless.data.inputs import Targets
from padless.data.ragged import RaggedArray
from padless.data.sources import BatchSource, make_sampler
from padless.errors import CheckpointError, ConfigError
from padless.nn.graph import Graph
from padless.train.callback_state import restore_callbacks
from padless.train.callbacks import Callback, CallbackList, History
from padless.train.checkpoint import Checkpoint
from padless.train.compile import Compiled, ensure_optimizer
from padless.train.distributed.backward import distributed_backward
from padless.train.distributed.context import DistContext, setup_distributed
from padless.train.distributed.ddp import wrap_model
from padless.train.distributed.sharding import fingerprint_digest
from padless.train.inference import check_verbose, evaluate_prepared, limit_validation, reduce_totals, result_functions
from padless.train.options import FitOptions, check_stateful
from padless.train.prepare import prepare_inputs, prepare_targets, sample_weights_for, split_validation
from padless.train.progress import Progress
from padless.train.rng import restore_rng
from padless.train.run_checkpoints import CheckpointSteps
from padless.train.state import EpochTotals, RunState
from padless.train.steps import BatchStepper, Step, engine_note, forward_loss, local_backward, packed_engine_runs
from padless.train.tbptt import SlotScheduler, TbpttStepper, check_tbptt

__all__ = ["Trainer", "FitOptions", "RankZeroPlaceholder"]


class RankZeroPlaceholder(Callback):
    """Stands in, on ranks other than 0, for a callback that writes files (e.g. ModelCheckpoint)."""


class Trainer(CheckpointSteps):
    """Trains a model graph on ragged data (what ``model.fit`` runs).

    Args:
        model: the model graph.
        compiled: its loss, metrics and optimizer (:func:`padless.train.compile.compile_model`).
        options: the run's settings.
        callbacks: Keras-style callbacks (files are written by rank 0 only).
        owner: what callbacks see as ``self.model`` (the Keras-style facade; default: ``model``).
        preprocessing: stored in checkpoints with the model (class names, columns...).

    Subclass and override any step: :meth:`setup`, :meth:`make_source`, :meth:`resume`, :meth:`run_epoch`,
    :meth:`epoch_steps`, :meth:`train_step`, :meth:`end_epoch`, :meth:`save`.
    """

    def __init__(self, model: Graph, compiled: Compiled, options: FitOptions | None = None,
                 callbacks: Sequence[Callback] | None = None, owner: Any = None,
                 preprocessing: dict[str, Any] | None = None) -> None:
        self.model, self.compiled = model, compiled
        self.options = options or FitOptions()
        self.user_callbacks = list(callbacks or [])
        self.owner = owner if owner is not None else model
        self.preprocessing = preprocessing or {}
        self.history = History()
        self.ctx: DistContext | None = None
        self.state = RunState()
        self.ckpt: Checkpoint | None = None
        self._ddp: Any = None
        self._run: Any = None
        self._stale = False
        self.last_logs, self.nan_ok = {}, False  # last epoch's logs (Keras' on_train_end); TerminateOnNaN present

    # ================================================================== fit
    def fit(self, x: Any, y: Any = None, lengths: Any = None, validation_data: Any = None,
            sample_weight: Any = None, class_weight: dict[Any, float] | None = None) -> History:
        """Train; return the :class:`~padless.train.callbacks.History` (see ``padless.Sequential.fit``)."""
        self.setup(x, y, lengths, validation_data, sample_weight, class_weight)
        try:
            self.resume()
            self.begin()
            for epoch in range(self.state.epoch, self.options.epochs):
                if self.stop_training:
                    break
                self.run_epoch(epoch)
                if self.stop_training:
                    break
            self.callbacks.on_train_end(dict(self.last_logs))
        finally:
            self.teardown()
        return self.history

    @property
    def stop_training(self) -> bool:
        return bool(getattr(self.owner, "stop_training", False))

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self.owner.stop_training = bool(value)

    # ================================================================== setup
    def setup(self, x: Any, y: Any, lengths: Any, validation_data: Any, sample_weight: Any = None,
              class_weight: dict[Any, float] | None = None) -> None:
        """Data, targets, validation, processes, optimizer, batch source and stepper."""
        o, model, c = self.options, self.model, self.compiled
        if o.tbptt is not None:
            check_tbptt(model)
        xr = prepare_inputs(model, x, lengths, c.device)
        t = prepare_targets(model, c, y, xr)
        w = sample_weights_for(t, len(xr), sample_weight, class_weight)
        self.val: tuple[RaggedArray, Targets] | None = None
        self.val_weights: torch.Tensor | None = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ConfigError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val)")
            vx = prepare_inputs(model, validation_data[0])
            vt = prepare_targets(model, c, validation_data[1], vx)
            self.val = (vx, vt)
            if len(validation_data) == 3 and validation_data[2] is not None:
                self.val_weights = sample_weights_for(vt, len(vx), validation_data[2])
        elif o.validation_split:
            xr, t, vx, vt, w = split_validation(xr, t, o.validation_split, w)
            self.val = (vx, vt)
        vbs = o.validation_batch_size or int(o.batch_size)  # type: ignore[arg-type]
        self.val, self.val_weights = limit_validation(self.val, self.val_weights, o.validation_steps, vbs)
        self.xr, self.targets, self.weights = xr, t, w
        if model.stateful:
            check_stateful(model, o, len(self.xr))
        self.ctx = setup_distributed(o.distributed, c.device)
        if self.ctx is not None:
            if model.stateful:
                raise ConfigError("stateful models train in one process (their state runs row by row through the "
                                  "batches); use tbptt=K for data-parallel training on long sequences")
            if self.ctx.device != c.device:
                model.to(self.ctx.device)
                c.device = self.ctx.device
        ensure_optimizer(model, c)
        if o.tbptt is not None and o.tbptt_start is None:  # one kernel call per window whatever the starts
            o.tbptt_start = "immediate" if packed_engine_runs(c.device) else "window"
        self.fingerprint = o.fingerprint(len(xr), fingerprint_digest(xr.lengths), self.world_size,
                                         0 if self.val is None else len(self.val[0]))
        if self.ctx is not None:
            digests = self.ctx.gather_bytes(json.dumps(self.fingerprint, sort_keys=True).encode())
            if len(set(digests)) > 1:
                bad = next(r for r, d in enumerate(digests) if d != digests[0])
                raise ConfigError(f"rank {bad} has other data or settings than rank 0 ({len(xr)} sequences here): "
                                  "every process must load the same data with the same arguments")
        self._refuse_foreign_checkpoints()

    @property
    def world_size(self) -> int:
        return 1 if self.ctx is None else self.ctx.world_size

    @property
    def rank(self) -> int:
        return 0 if self.ctx is None else self.ctx.rank

    def _agree(self, err: BaseException | None) -> None:
        """Every rank raises when any rank failed (one process: raise ``err``)."""
        if self.ctx is not None:
            self.ctx.check(err)
        elif err is not None:
            raise err

    def make_source(self, seed: int) -> BatchSource:
        """The batch source: TBPTT slots, or a sampler for ``batching=``."""
        o, W = self.options, self.world_size
        if o.tbptt is not None:
            return SlotScheduler(self.xr.lengths, int(o.batch_size) * W, o.tbptt, shuffle=o.shuffle, seed=seed,  # type: ignore[operator]
                                 start=o.tbptt_start or "window",
                                 rank=self.rank, world_size=W)
        return make_sampler(o.batching, self.xr.lengths, o.batch_size, o.shuffle, seed, rank=self.rank,
                            world_size=W, max_steps=o.max_steps)

    def make_stepper(self) -> Any:
        """Turns the source's items into steps (index batches or TBPTT windows)."""
        o, c = self.options, self.compiled
        if o.tbptt is not None:
            return TbpttStepper(self.model, self.xr, self.targets, int(o.batch_size), c.device, o.merge_cost,  # type: ignore[arg-type]
                                c.integer_labels)
        return BatchStepper(self.model, self.xr, self.targets, c.device, o.merge_cost, c.integer_labels, self.weights)

    # ================================================================== resume
    def resume(self) -> None:
        """Start fresh (draw the seed), or continue a checkpointed run exactly where it stopped."""
        o, c = self.options, self.compiled
        seed = o.seed
        if o.resume_from is not None:
            ckpt = self.ckpt = self._read_checkpoint()
            ckpt.restore_model(self.model)
            st = ckpt.run
            for k, v in self.fingerprint.items():
                old = st.fingerprint.get(k)
                if k in ("max_steps", "steps_per_epoch") and old is None and k not in st.fingerprint:
                    continue  # written before padless recorded it (then it was None)
                if old != v:
                    hint = " (run with as many processes: --nproc / torchrun --nproc-per-node)" if k == "world_size" else ""
                    raise CheckpointError(f"{ckpt.path!r} was written by a run with {k}={old!r}; this run has "
                                          f"{k}={v!r}{hint}: resume with the same data and settings")
            if seed is not None and int(seed) != st.seed:
                raise CheckpointError(f"{ckpt.path!r} was written with seed={st.seed}; this run asks for seed={seed}")
            seed = st.seed
            if ckpt.optimizer is not None:
                try:
                    c.optimizer.load_state_dict(ckpt.optimizer)  # type: ignore[union-attr]
                except (ValueError, KeyError, RuntimeError) as e:
                    raise CheckpointError(f"{ckpt.path!r}: the optimizer state does not fit this model's optimizer "
                                          f"({e}); compile with the same optimizer") from None
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            if self.ctx is not None:
                seed = self.ctx.broadcast_int(seed)
        self.seed = int(seed)
        self.source = self.make_source(self.seed)
        self.stepper = self.make_stepper()
        self.state = RunState(epoch=o.initial_epoch, epochs=o.epochs, seed=self.seed, fingerprint=self.fingerprint,
                              world_size=self.world_size)
        self.partial: EpochTotals | None = None
        if self.ckpt is not None:
            self._restore_position(self.ckpt)

    # ================================================================== epochs
    def begin(self) -> None:
        """DDP, callbacks, and (resuming) the callbacks' and random generators' saved state."""
        if self.ctx is not None:
            self._run, self._ddp = wrap_model(self.model, self.ctx)
        else:
            self._run = self.model.run_states
        v = check_verbose(self.options.verbose)
        self.verbose = 0 if (self.ctx is not None and not self.ctx.is_main) else v
        cbs = self.user_callbacks
        if self.ctx is not None and not self.ctx.is_main:
            cbs = [RankZeroPlaceholder() if type(cb).__name__ == "ModelCheckpoint" or getattr(cb, "rank_zero_only", False)
                   else cb for cb in cbs]
        params = {"epochs": self.options.epochs, "steps": len(self.source), "verbose": self.verbose}
        self.engine = engine_note(self.model, self.compiled.device) if self.verbose else ""
        self.callbacks = CallbackList(cbs + [self.history], self.owner, params)
        self.nan_ok = self.ctx is None and any(getattr(cb, "handles_nan", False) for cb in cbs)  # TerminateOnNaN
        self.history.params = params
        self.keys = ["loss"] + self.compiled.metric_names
        self.results = result_functions(self.compiled)
        self.stop_training = False
        self.callbacks.on_train_begin({})
        if self.ckpt is not None:
            restore_callbacks(self.callbacks.callbacks, self.ckpt.run.callbacks, self.ckpt.tensors)
            self.stop_training = self.state.stop_training
            if len(self.ckpt.rng) > self.rank:
                restore_rng(self.ckpt.rng[self.rank])  # last: nothing draws random numbers before the first step

    def run_epoch(self, epoch: int) -> None:
        """One epoch: its steps, then :meth:`end_epoch`."""
        resumed = self.state.epoch == epoch and self.state.position > 0 and self.partial is not None
        if not resumed:
            self.source.set_epoch(epoch)
            self.callbacks.on_epoch_begin(epoch, {})
        self.model.train()
        n_steps = self.steps_in_epoch()
        if self.ctx is not None:
            counts = self.ctx.gather_ints(n_steps)
            if len(set(counts)) > 1:
                raise ConfigError(f"the processes would run different numbers of steps ({counts}) in epoch {epoch}; "
                                  "every process must load the same data with the same arguments")
        totals = self.partial if resumed and self.partial is not None else EpochTotals.zero(self.keys, self.compiled.sum_sizes)
        self.partial = None
        self.state.epoch, self.state.position = epoch, totals.steps_done
        progress = Progress(n_steps, epoch, self.options.epochs, verbose=self.verbose, note=self.engine)
        seconds0, t0 = totals.seconds, time.perf_counter()
        for step in self.epoch_steps(n_steps - totals.steps_done):
            i = totals.steps_done
            self.callbacks.on_train_batch_begin(i, {})
            self.train_step(step, totals, i)
            totals.steps_done = i + 1
            totals.seconds = seconds0 + time.perf_counter() - t0
            logs = totals.logs(self.results) if totals.count else {}
            progress.update(totals.steps_done, logs, totals.real_steps, totals.seconds)
            self.state.global_step += 1
            self.state.position = totals.steps_done
            self.callbacks.on_train_batch_end(i, logs)
            if self.stop_training:  # Keras: a callback may stop training in the middle of an epoch
                break
            every = self.options.checkpoint_every
            if every is not None and self.state.global_step % every == 0 and totals.steps_done < n_steps:
                self.save(epoch, totals.steps_done, totals)
        totals.seconds = seconds0 + time.perf_counter() - t0
        self.end_epoch(epoch, totals, progress)

    def steps_in_epoch(self) -> int:
        """Steps of the current epoch (``steps_per_epoch`` caps it)."""
        n = len(self.source)
        spe = self.options.steps_per_epoch
        if spe is not None:
            if spe > n:
                warnings.warn(f"steps_per_epoch={spe} but an epoch of this data has {n} batches; running {n} "
                              "(each epoch starts a fresh pass over the data)", stacklevel=4)
            return min(spe, n)
        return n

    def epoch_steps(self, limit: int) -> Iterator[Step]:
        """This epoch's remaining steps (at most ``limit``) from the batch source."""
        items: Iterable[Any] = iter(self.source)
        for k, step in enumerate(self.stepper.steps(items)):
            if k >= limit:
                break
            yield step

    # ================================================================== one step
    def train_step(self, step: Step, totals: EpochTotals, index: int) -> None:
        """Forward, loss, backward and optimizer step on one step; add its sums to ``totals``."""
        batch = step.batch
        if batch.data.dtype != torch.float32:
            step.batch = batch = batch.with_data(batch.data.float())
        totals.real_steps += batch.plan.real_steps
        totals.computed_steps += batch.plan.size
        totals.slot_steps += step.slot_steps
        totals.slot_real_steps += step.slot_real_steps
        per_step = self.model.returns_sequences
        dist = self.ctx is not None
        failure: BaseException | None = None
        out = None
        with torch.set_grad_enabled(step.has_loss or dist):
            try:
                out = forward_loss(self._run, self.compiled, step, per_step)
            except Exception as e:  # distributed: the other ranks must hear of it, or they wait forever
                if not dist:
                    raise
                failure = e
            if out is not None and out.loss_sum is not None:  # Keras adds the layers' penalties to the loss
                pen = self.model.regularization_loss()
                out.loss_sum = out.loss_sum if pen is None else out.loss_sum + pen * out.n
            if dist:
                distributed_backward(self.ctx, self.compiled.optimizer, out, failure, index)  # type: ignore[arg-type]
            elif out.loss_sum is not None and not (self.nan_ok and not torch.isfinite(out.loss_sum.detach())):  # type: ignore[union-attr]
                local_backward(self.compiled.optimizer, out.loss_sum, out.n, index)  # type: ignore[union-attr,arg-type]
        self.model.apply_constraints()  # after the update, as Keras
        if out is not None and out.loss_sum is not None:
            self.accumulate(totals, out, step)

    def accumulate(self, totals: EpochTotals, out: Any, step: Step) -> None:
        """Add one step's loss and metric sums (metrics from the activated outputs)."""
        if not out.n:
            return
        with torch.no_grad():
            sums: dict[str, Any] = {"loss": float(out.loss_sum.detach())}
            if self.compiled.metrics:  # the activation is only needed for metrics
                prob = self.compiled.activate(out.pred.detach())
                sums.update({k: v.detach().cpu().numpy() for k, v in self.compiled.metric_sums(prob, step.y).items()})  # type: ignore[arg-type]
        totals.add(sums, out.n)

    # ================================================================== end of epoch
    def end_epoch(self, epoch: int, totals: EpochTotals, progress: Progress) -> None:
        """Reduce over processes, validate, log, run the callbacks and checkpoint."""
        reduced = reduce_totals(totals, self.keys, self.ctx, self.compiled.sum_sizes)
        logs = reduced.logs(self.results) if reduced.count else {}
        if self.val is not None and (epoch + 1) % self.options.validation_freq == 0:
            vres = self.validate()
            logs.update({f"val_{k}": v for k, v in vres.items()})
        seconds = totals.seconds if self.ctx is None else self.ctx.sum([totals.seconds])[0] / self.world_size
        logs["steps_per_second"] = reduced.real_steps / max(seconds, 1e-9)
        logs["padding_waste"] = reduced.padding_waste
        progress.finish(logs, totals.seconds)
        self.callbacks.on_epoch_end(epoch, logs)
        self.last_logs = logs
        self.state.position = 0
        if self.options.checkpoint_dir is not None:
            self.save(epoch + 1, 0, None)

    def validate(self) -> dict[str, float]:
        """Loss and metrics on the validation data (sharded across processes)."""
        vx, vt = self.val  # type: ignore[misc]
        bs = self.options.validation_batch_size or int(self.options.batch_size)  # type: ignore[arg-type]
        self.callbacks.on_test_begin({})
        res = evaluate_prepared(self.model, self.compiled, vx, vt, bs, ctx=self.ctx, merge_cost=self.options.merge_cost,
                                callbacks=self.callbacks, weights=self.val_weights)
        self.callbacks.on_test_end(dict(res.logs))
        self.model.train()
        return res.logs

    # ================================================================== teardown
    def teardown(self) -> None:
        """Free DDP now: a DDP object still alive at interpreter exit can abort the process."""
        self._run = None
        if self._ddp is not None:
            self._ddp = None
            gc.collect()
