"""The process group of a data-parallel run and the few collectives padless needs.

Owns: :func:`setup_distributed` (use an initialised process group, or start one from the variables that
``torchrun`` sets: gloo on the CPU, NCCL on CUDA), :func:`env_world_size` and :class:`DistContext` (rank,
world size, device, and the collectives the trainer uses: sums, gathers, broadcasts, and
:meth:`DistContext.check` so that every rank fails together instead of hanging).

Does not own: the DDP wrapper (:mod:`padless.train.distributed.ddp`), sharding
(:mod:`padless.train.distributed.sharding`, the samplers, the TBPTT scheduler) or launching processes
(:mod:`padless.train.distributed.launch`, torchrun).

Example:
    >>> setup_distributed(False, torch.device("cpu")) is None   # not under torchrun: one process
    True
"""

from __future__ import annotations

import atexit
import gc
import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

from padless import errors
from padless.errors import ConfigError, PadlessError

__all__ = ["DistContext", "setup_distributed", "env_world_size"]

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
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.comm_device)
        dist.all_reduce(t)
        return [float(v) for v in t.cpu().tolist()]

    def gather_ints(self, value: int) -> list[int]:
        """Every rank's ``value``, in rank order, on every rank."""
        t = torch.tensor([int(value)], dtype=torch.int64, device=self.comm_device)
        out = [torch.zeros_like(t) for _ in range(self.world_size)]
        dist.all_gather(out, t)
        return [int(o.item()) for o in out]

    def gather_bytes(self, data: bytes) -> list[bytes]:
        """Every rank's ``data`` (any length), in rank order, on every rank (no pickling)."""
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
        dist.barrier()

    def close(self) -> None:
        """Every rank together: wait for the others, then destroy the process group if padless started it
        (ranks that tear down at different moments can abort one another's communication threads)."""
        if self.owns_group and dist.is_initialized():
            gc.collect()  # DDP objects in reference cycles must go before the group (else: abort at exit)
            dist.barrier()
            dist.destroy_process_group()


def _error_types() -> dict[str, type[PadlessError]]:
    return {n: getattr(errors, n) for n in errors.__all__}


_ERROR_TYPES = _error_types()


def _destroy() -> None:
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


