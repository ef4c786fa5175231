"""The batch-source protocol, and the choice of sampler for a ``batching=`` mode.

Owns: :class:`BatchSource` (what the trainer iterates: ``set_epoch``, ``__len__``, ``__iter__``,
``state_dict``/``load_state_dict``, positions counted in items handed out), :data:`BATCHING_MODES`,
:func:`make_sampler` and :class:`SequentialBatchSampler` (index order, for stateful training where row i
of batch k+1 continues row i of batch k). The samplers of :mod:`padless.data.samplers` and the truncated-BPTT slot scheduler
(``padless.train.tbptt.SlotScheduler``) all follow the protocol, so the trainer resumes any of them mid
epoch the same way.

Does not own: the samplers themselves, or what an item is turned into (``padless.train``).

Example:
    >>> s = make_sampler("bucket", np.array([3, 1, 2, 5]), 2, shuffle=False, seed=0)
    >>> isinstance(s, BatchSource), list(s)
    (True, [[1, 2], [0, 3]])
"""

from __future__ import annotations

import difflib
from typing import Any, Iterator, Mapping, Protocol, runtime_checkable

import numpy as np

from padless.data._cuts import bounds_to_batches
from padless.data.samplers import BucketBatchSampler, ExactLengthBatchSampler, LengthBatchSampler, RandomBatchSampler
from padless.errors import ConfigError

__all__ = ["BatchSource", "BATCHING_MODES", "make_sampler", "check_batching", "SequentialBatchSampler"]

BATCHING_MODES = ("auto", "bucket", "exact", "random", "sequential")


@runtime_checkable
class BatchSource(Protocol):
    """An epoch-aware, resumable source of batch descriptions (index lists, TBPTT windows, ...)."""

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch the next ``iter()`` follows (position back to 0)."""

    def __len__(self) -> int:
        """Items of the current epoch (for this rank)."""

    def __iter__(self) -> Iterator[Any]:
        """The current epoch's items, from the loaded position on."""

    def state_dict(self) -> dict[str, Any]:
        """``{"kind", "epoch", "position", ...}``: enough to resume mid-epoch."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume: the next ``iter()`` yields the items after ``state["position"]``."""


class SequentialBatchSampler(LengthBatchSampler):
    """Batches in index order, never shuffled: row ``i`` of batch ``k + 1`` continues row ``i`` of batch ``k``.

    The batch source of Keras-style stateful training (``shuffle=False``, fixed batch size); one process
    only. Same protocol as the other samplers (``set_epoch``, ``state_dict``/``load_state_dict``).

    Example:
        >>> list(SequentialBatchSampler([3, 1, 2, 2, 5], batch_size=2))
        [[0, 1], [2, 3], [4]]
    """

    def __init__(self, lengths: Any, batch_size: int | None = None, *, max_steps: int | None = None,
                 shuffle: bool = False, seed: int = 0, drop_last: bool = False, rank: int = 0,
                 world_size: int = 1) -> None:
        if shuffle:
            raise ConfigError("SequentialBatchSampler keeps index order: it takes shuffle=False only")
        if world_size != 1 or max_steps is not None:
            raise ConfigError("SequentialBatchSampler (stateful training) runs in one process, with batch_size")
        super().__init__(lengths, batch_size, shuffle=False, seed=seed, drop_last=drop_last)

    def _plan(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self._lengths.size
        bounds = np.append(np.arange(0, n, self.constraint.batch_size), n)  # type: ignore[attr-defined]
        starts, stops = bounds_to_batches(bounds)
        if self.drop_last and starts.size and stops[-1] - starts[-1] < self.constraint.batch_size:  # type: ignore[attr-defined]
            starts, stops = starts[:-1], stops[:-1]
        return np.arange(n, dtype=np.int64), starts, stops


def check_batching(batching: str) -> str:
    """Return ``batching`` if it is a known mode, else raise with the closest valid name."""
    if batching not in BATCHING_MODES:
        close = difflib.get_close_matches(str(batching), BATCHING_MODES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown batching {batching!r}.{hint} Valid: {', '.join(BATCHING_MODES)}")
    return batching


def make_sampler(batching: str, lengths: np.ndarray, batch_size: int | None, shuffle: bool, seed: int, rank: int = 0,
                 world_size: int = 1, max_steps: int | None = None) -> BatchSource:
    """The batch sampler for ``batching=`` (``"auto"`` is ``"bucket"``: the fastest exact choice).

    With ``world_size > 1`` the sampler gives rank ``rank`` its share of the *batches* (every rank the
    same number; see :mod:`padless.data.samplers`). With ``max_steps`` the batches are cut by a budget of
    computed steps (rows x longest) instead of a count.

    Example:
        >>> s = make_sampler("bucket", np.array([3, 1, 2, 5]), 2, shuffle=False, seed=0, rank=1, world_size=2)
        >>> len(s), list(s)
        (1, [[0, 3]])
    """
    check_batching(batching)
    if batching == "sequential":
        if world_size > 1:
            raise ConfigError("batching='sequential' (stateful training) runs in one process only")
        return SequentialBatchSampler(lengths, batch_size)
    cls = {"auto": BucketBatchSampler, "bucket": BucketBatchSampler, "exact": ExactLengthBatchSampler,
           "random": RandomBatchSampler}[batching]
    if max_steps is not None:
        return cls(lengths, max_steps=max_steps, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
    return cls(lengths, batch_size=batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
