"""Data-parallel training on ``torch.distributed``: process group, DDP wrapper, sharding, reductions.

Owns: :func:`setup_distributed` (use an initialised process group, or start one from the variables that
``torchrun`` sets: gloo on the CPU, NCCL on CUDA), :class:`DistContext` (rank, world size and the few
collectives the loop needs: sums, gathers, broadcasts and :meth:`DistContext.check` so that every rank
fails together instead of hanging), :func:`wrap_model` (the model inside
``DistributedDataParallel``), :func:`shard_windows` (truncated-BPTT windows sharded by *slot*, so every
rank runs the same number of windows) and :func:`shard_eval` (evaluation batches split across ranks).

Design (see also ``padless.train.loop``):

* Batches, not samples, are sharded: the batch samplers take ``rank``/``world_size`` and give every rank
  the same number of batches (``padless.data.samplers``), so every rank runs the same number of steps.
* TBPTT: one global :class:`~padless.train.tbptt.SlotScheduler` with ``world_size x batch_size`` slots;
  rank ``r`` runs slots ``r*B .. r*B + B - 1`` of every window. Every rank therefore runs exactly the
  global number of windows, and the run equals a one-process run with ``world_size x batch_size`` slots.
  A rank whose slots are all idle (at the end of an epoch) runs a one-step placeholder with zero loss.
* Gradients: the loss of a step is ``sum of item losses x world_size / global item count`` (the count is
  all-reduced), and DDP averages the gradients: the result is the gradient of the token-weighted mean
  over the global batch, exactly what one process computes on the union of the ranks' batches.
* Every parameter takes part in every step (ranks without targets in a step backpropagate a zero loss
  through the whole model), so DDP runs with ``find_unused_parameters=False``. A padless recurrent layer
  may call its kernel several times per batch (one call per segment); that is one autograd graph per
  step, and DDP's hooks fire once per parameter, so it needs no special setting.

Does not own: the loop (``padless.train.loop``), the samplers' sharding policy (``padless.data.samplers``)
or launching processes (``torchrun``; ``padless train --nproc N`` calls it).

Example:
    >>> setup_distributed(False, torch.device("cpu")) is None   # not under torchrun: one process
    True
"""

from __future__ import annotations

import atexit
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from padless.errors import ConfigError, PadlessError

__all__ = ["DistContext", "setup_distributed", "wrap_model", "shard_windows", "shard_eval", "env_world_size",
           "fingerprint_digest"]

_ENV_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer (set by torchrun; unset it to "
                          "train in one process)") from None


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset): > 1 means this process was started by torchrun.

    Example:
        >>> env_world_size() >= 1
        True
    """
    ws = _env_int("WORLD_SIZE")
    return 1 if ws is None else ws


@dataclass
class DistContext:
    """This process's place in a data-parallel run, and the collectives padless uses.

    Attributes:
        rank: global rank (0 writes checkpoints, logs and plots).
        world_size: number of processes.
        local_rank: rank on this machine (picks the GPU).
        backend: ``"gloo"`` or ``"nccl"``.
        device: the device this rank trains on.
        owns_group: True when padless started the process group (it is destroyed at exit).

    Example:
        >>> ctx = DistContext(0, 1, 0, "gloo", torch.device("cpu"), False)
        >>> ctx.is_main
        True
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def comm_device(self) -> torch.device:
        """Where collective tensors live (NCCL needs them on the GPU)."""
        return self.device if self.backend == "nccl" else torch.device("cpu")

    # ---------------------------------------------------------------- collectives
    def sum(self, values: Sequence[float]) -> list[float]:
        """All-reduce (sum) a short vector of numbers in float64; every rank gets the totals."""
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.comm_device)
        dist.all_reduce(t)
        return [float(v) for v in t.cpu().tolist()]

    def gather_ints(self, value: int) -> list[int]:
        """Every rank's ``value``, in rank order, on every rank."""
        import torch.distributed as dist

        t = torch.tensor([int(value)], dtype=torch.int64, device=self.comm_device)
        out = [torch.zeros_like(t) for _ in range(self.world_size)]
        dist.all_gather(out, t)
        return [int(o.item()) for o in out]

    def gather_bytes(self, data: bytes) -> list[bytes]:
        """Every rank's ``data`` (any length), in rank order, on every rank (no pickling)."""
        import torch.distributed as dist

        sizes = self.gather_ints(len(data))
        buf = torch.zeros(max(max(sizes), 1), dtype=torch.uint8)
        if data:
            buf[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        buf = buf.to(self.comm_device)
        out = [torch.zeros_like(buf) for _ in range(self.world_size)]
        dist.all_gather(out, buf)
        return [bytes(o[:n].cpu().numpy().tobytes()) for o, n in zip(out, sizes)]

    def broadcast_bytes(self, data: bytes | None, src: int = 0) -> bytes:
        """Rank ``src``'s ``data`` on every rank (other ranks pass None)."""
        import torch.distributed as dist

        n = torch.tensor([len(data) if self.rank == src and data is not None else 0], dtype=torch.int64,
                         device=self.comm_device)
        dist.broadcast(n, src)
        size = int(n.item())
        buf = torch.zeros(max(size, 1), dtype=torch.uint8)
        if self.rank == src and data:
            buf[:size] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        buf = buf.to(self.comm_device)
        dist.broadcast(buf, src)
        return bytes(buf[:size].cpu().numpy().tobytes())

    def broadcast_int(self, value: int, src: int = 0) -> int:
        """Rank ``src``'s integer on every rank."""
        import torch.distributed as dist

        t = torch.tensor([int(value)], dtype=torch.int64, device=self.comm_device)
        dist.broadcast(t, src)
        return int(t.item())

    def check(self, error: BaseException | None) -> None:
        """Fail on every rank when any rank failed (instead of leaving the others waiting in a collective).

        Args:
            error: this rank's error, or None.

        Raises:
            PadlessError: this rank's error re-raised (same type), or the first failing rank's message.
        """
        msg = "" if error is None else f"{type(error).__name__}\0{error}"
        msgs = self.gather_bytes(msg.encode())
        if error is not None:
            raise error
        for r, m in enumerate(msgs):
            if m:
                kind, _, text = m.decode(errors="replace").partition("\0")
                cls = _ERROR_TYPES.get(kind, PadlessError)
                raise cls(f"{text} (on rank {r})")

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def close(self) -> None:
        """Every rank together: wait for the others, then destroy the process group if padless started it
        (ranks that tear down at different moments can abort one another's communication threads)."""
        import torch.distributed as dist

        if self.owns_group and dist.is_initialized():
            import gc

            gc.collect()  # DDP objects in reference cycles must go before the group (else: abort at exit)
            dist.barrier()
            dist.destroy_process_group()


def _error_types() -> dict[str, type[PadlessError]]:
    from padless import errors

    return {n: getattr(errors, n) for n in errors.__all__}


_ERROR_TYPES = _error_types()


def _destroy() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def setup_distributed(mode: bool | str, device: torch.device) -> DistContext | None:
    """The data-parallel context for this process, or None for a one-process run.

    Args:
        mode: ``"auto"`` - use an initialised process group, else start one when ``torchrun`` set
            ``WORLD_SIZE`` > 1; ``True`` - the same, but an error when there is neither; ``False`` - one
            process even under torchrun.
        device: the device the model trains on (CPU -> gloo, CUDA -> NCCL and ``cuda:LOCAL_RANK``).

    Returns:
        A :class:`DistContext` when more than one process takes part, else None.

    Raises:
        ConfigError: unknown ``mode``, ``True`` without a process group or torchrun, a malformed
            environment, or an NCCL group with a CPU model.

    Example:
        >>> setup_distributed("auto", torch.device("cpu")) is None  # WORLD_SIZE unset
        True
    """
    if mode not in ("auto", True, False):
        raise ConfigError(f"distributed must be 'auto', True or False; got {mode!r}")
    if mode is False:
        return None
    import torch.distributed as dist

    if not dist.is_available():
        if mode is True:
            raise ConfigError("this PyTorch build has no torch.distributed; train in one process")
        return None
    owns = False
    if not dist.is_initialized():
        ws = env_world_size()
        if ws <= 1:
            if mode is True:
                raise ConfigError("distributed=True but no process group is initialised and WORLD_SIZE is not set: "
                                  "start the script with torchrun --nproc-per-node N (or padless train --nproc N)")
            return None
        missing = [v for v in _ENV_VARS if not os.environ.get(v)]
        if missing:
            raise ConfigError(f"WORLD_SIZE={ws} but {', '.join(missing)} is not set: start the processes with torchrun "
                              "(it sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)")
        rank = _env_int("RANK")
        if rank is None or not 0 <= rank < ws:
            raise ConfigError(f"RANK={rank} does not lie in 0..{ws - 1} for WORLD_SIZE={ws}")
        backend = "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"
        if device.type == "cuda":
            local = _env_int("LOCAL_RANK")
            local = rank % max(torch.cuda.device_count(), 1) if local is None else local
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend, init_method="env://")
        owns = True
        atexit.register(_destroy)
    ws = dist.get_world_size()
    if ws <= 1:
        return None
    rank = dist.get_rank()
    backend = str(dist.get_backend()).lower()
    local = _env_int("LOCAL_RANK")
    if device.type == "cuda":
        if local is None:
            local = rank % max(torch.cuda.device_count(), 1)
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        if backend == "nccl":
            raise ConfigError("the process group uses NCCL but the model is on the CPU: compile with device='cuda' "
                              "or initialise the group with backend='gloo'")
        dev = torch.device("cpu")
        local = rank if local is None else local
    return DistContext(rank=rank, world_size=ws, local_rank=int(local), backend=backend, device=dev, owns_group=owns)


class _Runner(torch.nn.Module):
    """DDP needs a ``forward``; padless runs ``Sequential.run_states`` on laid-out batches."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any, logits: bool, initial_states: Any, want_states: bool) -> Any:
        return self.model.run_states(batch, logits, initial_states, want_states)  # type: ignore[operator]


def wrap_model(model: torch.nn.Module, ctx: DistContext) -> tuple[Callable[..., Any], torch.nn.Module]:
    """Wrap ``model`` in ``DistributedDataParallel``; return ``(run_states-like callable, ddp module)``.

    Parameters and buffers (e.g. the normalisation statistics) are broadcast from rank 0 when wrapping, so
    every rank starts from rank 0's weights. Buffers are not re-broadcast at every step (padless buffers
    are constants during training).

    Example:
        >>> # run, ddp = wrap_model(model, ctx); out, states = run(batch, True, None, False)
    """
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    kw: dict[str, Any] = {"find_unused_parameters": False}
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        kw["forward_sync_buffers"] = False  # buffers are still synced once, at wrap time
    else:  # pragma: no cover - torch < 2.12
        kw["broadcast_buffers"] = False
    if ctx.device.type == "cuda":
        kw["device_ids"] = None  # inputs are already on the right device
    ddp = DDP(_Runner(model), **kw)

    def run(batch: Any, logits: bool = False, initial_states: Any = None, want_states: bool = False) -> Any:
        return ddp(batch, logits, initial_states, want_states)

    return run, ddp


def shard_windows(windows: Sequence[Any], rank: int, world_size: int, local_slots: int) -> list[Any]:
    """This rank's share of every TBPTT window: the pieces of slots ``rank*B .. rank*B + B - 1``.

    Args:
        windows: the global windows of a ``SlotScheduler`` built with ``world_size * local_slots`` slots.
        rank: this rank.
        world_size: number of ranks.
        local_slots: slots per rank (the per-rank ``batch_size``).

    Returns:
        One window per global window (same count on every rank), pieces re-numbered to local slots; a
        window may be empty (all of this rank's slots idle).

    Example:
        >>> from padless.train.tbptt import SlotScheduler
        >>> s = SlotScheduler(np.array([5, 2, 3]), batch_size=2, tbptt=4, shuffle=False, start="immediate")
        >>> [[(p.slot, p.seq) for p in w.pieces] for w in shard_windows(s.windows(), 1, 2, 1)]
        [[(0, 1), (0, 2)], [(0, 2)]]
    """
    from padless.train.tbptt import Piece, Window

    lo, hi = rank * local_slots, (rank + 1) * local_slots
    out = []
    for w in windows:
        mine = [Piece(p.slot - lo, p.seq, p.start, p.length, p.seq_length) for p in w.pieces if lo <= p.slot < hi]
        out.append(Window(mine, w.steps, local_slots))
    return out


def shard_eval(batches: Sequence[Any], ctx: DistContext | None) -> list[Any]:
    """Evaluation batches of this rank: ``batches[rank::world_size]`` (no padding or repeats: the sums
    and counts are all-reduced afterwards, so nothing is counted twice).

    Example:
        >>> shard_eval([[0], [1], [2]], None)
        [[0], [1], [2]]
    """
    batches = list(batches)
    if ctx is None:
        return batches
    return batches[ctx.rank :: ctx.world_size]


def fingerprint_digest(lengths: np.ndarray, **settings: Any) -> str:
    """A short hash of the data's lengths and the training settings (to compare ranks and checkpoints).

    Example:
        >>> fingerprint_digest(np.array([3, 4]), batch_size=2) == fingerprint_digest(np.array([3, 4]), batch_size=2)
        True
    """
    h = hashlib.sha256(np.ascontiguousarray(lengths, dtype=np.int64).tobytes())
    h.update(repr(sorted(settings.items())).encode())
    return h.hexdigest()[:16]
