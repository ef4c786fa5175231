"""Batch samplers that decide which sequences share a batch, so that padding costs (almost) nothing.

Owns: :class:`BucketBatchSampler` (sort by length, cut, shuffle the batch order), :class:`ExactLengthBatchSampler`
(one length per batch), :class:`RandomBatchSampler` (the plain random baseline), their shared base
:class:`LengthBatchSampler`, their per-epoch iterator
:class:`EpochIterator`, resumable state and the distributed sharding policy. Does not own: the budgets
(:mod:`padless.data.constraints`), waste accounting (:mod:`padless.data.waste`) or turning indices into
tensors (:mod:`padless.data.collate`).

All samplers are ``torch.utils.data.Sampler[list[int]]`` for ``DataLoader(batch_sampler=...)`` and share
one signature::

    Sampler(lengths, batch_size=None, *, max_steps=None, shuffle=True, seed=0, drop_last=False,
            rank=0, world_size=1)

Exactly one of ``batch_size`` (rows per batch) or ``max_steps`` (rows x longest length per batch) is given.

Epochs. A sampler computes one *plan* per (seed, epoch): the global list of batches. The plan is a pure
function of (lengths, arguments, seed, epoch), so every rank computes the same plan without talking to
the others. Call :meth:`set_epoch` before each epoch (as with ``DistributedSampler``); without it every
epoch repeats the same plan. ``iter(sampler)`` returns an :class:`EpochIterator` over this rank's share of
the plan; it tracks its position, and :meth:`state_dict` / :meth:`load_state_dict` (epoch, seed, position)
resume mid-epoch with exactly the remaining batches. ``position`` counts batches *handed out by the
sampler*; a DataLoader with workers prefetches a few batches ahead, so a trainer that resumes should store
its own count of finished steps as ``position``.

Sharding (``world_size > 1``). Batches, not samples, are sharded: rank ``r`` takes batches
``r, r + W, r + 2W, ...`` of the plan, and the plan is first adjusted so that its batch count is
divisible by ``W`` (every rank then runs the same number of steps and DDP never hangs):

* ``drop_last=False``: the largest batches are split in two until the count is divisible, so every
  index still appears exactly once per epoch across ranks (split batches stay within the budget). Only
  when there are too few rows left to split (e.g. fewer sequences than ranks) are batches repeated from
  the start of the plan instead.
* ``drop_last=True``: the last ``n_batches % W`` batches of the (shuffled) plan are dropped (a
  :class:`~padless.errors.ConfigError` if that leaves no batch at all).

Example:
    >>> sampler = BucketBatchSampler([5, 3, 9, 4, 8, 1, 7], batch_size=3, seed=0)
    >>> len(sampler), sorted(i for batch in sampler for i in batch)
    (3, [0, 1, 2, 3, 4, 5, 6])
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from padless.data._cuts import bounds_to_batches, cut_budget_sorted, cut_count_sorted, greedy_cut, shard_fit
from padless.data.constraints import BatchConstraint, MaxCount, resolve_constraint, validate_lengths
from padless.errors import ConfigError

__all__ = ["EpochIterator", "BucketBatchSampler", "ExactLengthBatchSampler", "RandomBatchSampler", "LengthBatchSampler"]


Plan = tuple[np.ndarray, np.ndarray, np.ndarray]  # (order, starts, stops): batch k = order[starts[k]:stops[k]]


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


# -------------------------------------------------------------------------------------------- iterator
class EpochIterator(Iterator[list[int]]):
    """Iterator over one rank's batches of one epoch plan; ``position`` = batches already yielded.

    Args:
        order: int64 (M,) sequence indices of the plan.
        starts: int64 (B,) start of each of this rank's batches in ``order``.
        stops: int64 (B,) end of each batch.
        position: Number of batches to skip (resume).

    Example:
        >>> it = EpochIterator(np.arange(4), np.array([0, 2]), np.array([2, 4]))
        >>> next(it), it.position, len(it)
        ([0, 1], 1, 1)
    """

    def __init__(self, order: np.ndarray, starts: np.ndarray, stops: np.ndarray, position: int = 0) -> None:
        self._order = order
        self._starts = starts
        self._stops = stops
        self.position = int(position)

    def __iter__(self) -> EpochIterator:
        return self

    def __next__(self) -> list[int]:
        if self.position >= self._starts.size:
            raise StopIteration
        k = self.position
        self.position += 1
        return self._order[self._starts[k] : self._stops[k]].tolist()

    def __len__(self) -> int:
        """Batches still to come."""
        return max(int(self._starts.size) - self.position, 0)


# -------------------------------------------------------------------------------------------- base class
class LengthBatchSampler(Sampler[list[int]]):
    """Shared machinery: arguments, per-epoch plan cache, sharding, iteration and resumable state."""

    def __init__(
        self,
        lengths: Any,
        batch_size: int | None = None,
        *,
        max_steps: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        self._lengths = validate_lengths(lengths)  # own int64 copy: the caller's object is never touched
        self._lengths.flags.writeable = False
        self.constraint: BatchConstraint = resolve_constraint(batch_size, max_steps)
        self.constraint.check_lengths(self._lengths)
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.shuffle = bool(shuffle)
        self.seed = _check_int(seed, "seed", 0)
        self.drop_last = bool(drop_last)
        self.world_size = _check_int(world_size, "world_size", 1)
        self.rank = _check_int(rank, "rank", 0)
        if self.rank >= self.world_size:
            raise ConfigError(f"rank must lie in 0..{self.world_size - 1} for world_size={self.world_size}, got {rank}")
        self.epoch = 0
        self._cache: tuple[tuple[int, int], Plan] | None = None
        self._iterator: EpochIterator | None = None
        self._resume = 0

    # subclasses implement this: the global plan before sharding, batches in yield order
    def _plan(self, rng: np.random.Generator) -> Plan:
        raise NotImplementedError

    @property
    def lengths(self) -> np.ndarray:
        """The sequence lengths (read-only int64 (N,))."""
        return self._lengths

    def _global_plan(self) -> Plan:
        key = (self.seed, self.epoch)
        if self._cache is None or self._cache[0] != key:
            order, starts, stops = self._plan(np.random.default_rng([self.seed, self.epoch]))
            starts, stops = shard_fit(starts, stops, self.world_size, self.drop_last)
            self._cache = (key, (order, starts, stops))
        return self._cache[1]

    def epoch_batches(self) -> list[np.ndarray]:
        """All batches of the current epoch across ranks, in global order (rank ``r`` gets ``[r::W]``).

        Returns:
            A list of int64 index arrays (views into the plan; do not modify).
        """
        order, starts, stops = self._global_plan()
        return [order[a:b] for a, b in zip(starts.tolist(), stops.tolist())]

    def __len__(self) -> int:
        """Number of batches this rank yields in the current epoch (a resumed iterator yields fewer)."""
        return int(self._global_plan()[1].size) // self.world_size

    def __iter__(self) -> EpochIterator:
        order, starts, stops = self._global_plan()
        mine = slice(self.rank, None, self.world_size)  # batches r, r + W, r + 2W, ...
        it = EpochIterator(order, starts[mine], stops[mine], self._resume)
        self._resume = 0
        self._iterator = it
        return it

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose plan the next ``iter()`` follows (resets the position to 0).

        Args:
            epoch: Non-negative epoch number.
        """
        self.epoch = _check_int(epoch, "epoch", 0)
        self._iterator = None
        self._resume = 0

    def state_dict(self) -> dict[str, Any]:
        """Return ``{"epoch", "seed", "position", "num_batches", "kind"}`` for :meth:`load_state_dict`."""
        position = self._iterator.position if self._iterator is not None else self._resume
        return {
            "kind": type(self).__name__,
            "epoch": self.epoch,
            "seed": self.seed,
            "position": int(position),
            "num_batches": len(self),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume: the next ``iter()`` yields the remaining batches of the saved epoch, identical to the original.

        Args:
            state: A dict from :meth:`state_dict`.

        Raises:
            ConfigError: Missing keys, another sampler kind, or a batch count that does not match (the
                sampler was built with other lengths or arguments).
        """
        missing = {"epoch", "seed", "position"} - set(state)
        if missing:
            raise ConfigError(f"sampler state is missing {sorted(missing)}; pass a dict from state_dict()")
        if state.get("kind", type(self).__name__) != type(self).__name__:
            raise ConfigError(f"sampler state was saved by a {state['kind']}, not a {type(self).__name__}")
        self.seed = _check_int(state["seed"], "seed", 0)
        self.epoch = _check_int(state["epoch"], "epoch", 0)
        position = _check_int(state["position"], "position", 0)
        n = len(self)
        if "num_batches" in state and int(state["num_batches"]) != n:
            raise ConfigError(
                f"sampler state has {state['num_batches']} batches per epoch but this sampler has {n}; build it "
                f"with the same lengths and arguments as the one that was saved"
            )
        if position > n:
            raise ConfigError(f"position {position} is past the end of the epoch ({n} batches)")
        self._iterator = None
        self._resume = position

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={self._lengths.size}, {self.constraint!r}, shuffle={self.shuffle}, "
            f"seed={self.seed}, drop_last={self.drop_last}, rank={self.rank}, world_size={self.world_size})"
        )

    def _sorted_order(self, rng: np.random.Generator) -> np.ndarray:
        """Indices sorted by length; ties broken at random (per seed and epoch) when shuffling."""
        if self.shuffle:
            return np.lexsort((rng.random(self._lengths.size), self._lengths))
        return np.argsort(self._lengths, kind="stable")

    def _shuffle_batches(
        self, rng: np.random.Generator, starts: np.ndarray, stops: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Shuffle the order of the batches (not their contents) when ``shuffle``."""
        if not self.shuffle:
            return starts, stops
        perm = rng.permutation(starts.size)
        return starts[perm], stops[perm]


# ------------------------------------------------------------------------------------------ the samplers
class BucketBatchSampler(LengthBatchSampler):
    """Batches of similar length: padding is close to the lowest possible.

    Each epoch: sort indices by length (ties broken at random per (seed, epoch) when ``shuffle``), cut the
    sorted list into consecutive batches, then shuffle the *order* of the batches, so that long and short
    batches alternate at random (no long-to-short sawtooth).

    * ``batch_size``: chunks of ``batch_size``; the single smaller batch (``N % batch_size`` rows) is placed
      at the position in the sorted list where it costs the fewest computed steps.
    * ``max_steps``: greedy chunks with rows x longest <= ``max_steps``, cut from whichever end of the
      sorted list computes fewer steps.

    ``drop_last`` drops the smaller batch (budget mode: the leftover batch if it could take another row).
    With ``shuffle=False`` batches come in ascending length order. Signature and epochs: see the module.

    Example:
        >>> s = BucketBatchSampler([10, 2, 11, 3], batch_size=2, shuffle=False)
        >>> list(s)
        [[1, 3], [0, 2]]
    """

    def _plan(self, rng: np.random.Generator) -> Plan:
        order = self._sorted_order(rng)  # (N,) ascending length
        s = self._lengths[order]
        if isinstance(self.constraint, MaxCount):
            starts, stops = cut_count_sorted(
                s, self.constraint.batch_size, self.drop_last, rng if self.shuffle else None
            )
        else:
            starts, stops = cut_budget_sorted(s, self.constraint, self.drop_last)
        starts, stops = self._shuffle_batches(rng, starts, stops)
        return order, starts, stops


class ExactLengthBatchSampler(LengthBatchSampler):
    """Every batch holds sequences of one length only: zero padding, no packing needed.

    Sequences of one length are cut into batches of ``batch_size`` rows (or ``max_steps // length`` rows).
    A length with fewer sequences than a full batch is, by default, a smaller batch of its own (many
    distinct lengths therefore mean many small batches). With ``merge_small=True`` such a length is merged
    with the nearest length (in steps; the shorter neighbour on a tie) until every group fills at least
    one batch; batches of merged groups may then mix nearby lengths (they are cut like
    :class:`BucketBatchSampler`'s). ``drop_last`` drops each group's smaller batch.

    Args:
        merge_small: Merge lengths too rare to fill a batch with their nearest neighbours.
        **others: As in the module signature.

    Example:
        >>> s = ExactLengthBatchSampler([3, 5, 3, 5, 3], batch_size=2, shuffle=False)
        >>> list(s)
        [[0, 2], [4], [1, 3]]
    """

    def __init__(
        self,
        lengths: Any,
        batch_size: int | None = None,
        *,
        max_steps: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        merge_small: bool = False,
    ) -> None:
        super().__init__(
            lengths, batch_size, max_steps=max_steps, shuffle=shuffle, seed=seed,
            drop_last=drop_last, rank=rank, world_size=world_size,
        )
        self.merge_small = bool(merge_small)

    def _groups(self, s: np.ndarray) -> list[tuple[int, int]]:
        """[a, b) ranges of ascending ``s`` holding one length each (merged if ``merge_small``)."""
        cuts = np.flatnonzero(np.diff(s)) + 1
        edges = [0, *cuts.tolist(), s.size]
        groups = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
        if not self.merge_small:
            return groups
        cap = self.constraint.capacity

        def small(g: tuple[int, int]) -> bool:
            return g[1] - g[0] < cap(int(s[g[1] - 1]))

        i = 0
        while len(groups) > 1 and i < len(groups):
            if not small(groups[i]):
                i += 1
                continue
            a, b = groups[i]
            left = s[a] - s[groups[i - 1][1] - 1] if i > 0 else None
            right = s[groups[i + 1][0]] - s[b - 1] if i + 1 < len(groups) else None
            if right is None or (left is not None and left <= right):
                groups[i - 1 : i + 1] = [(groups[i - 1][0], b)]
                i -= 1
            else:
                groups[i : i + 2] = [(a, groups[i + 1][1])]
        return groups

    def _plan(self, rng: np.random.Generator) -> Plan:
        order = self._sorted_order(rng)  # (N,) ascending length, random within a length
        s = self._lengths[order]
        parts_s, parts_e = [], []
        for a, b in self._groups(s):
            g = s[a:b]
            if g[0] == g[-1]:  # one length: full batches first, the smaller one last
                rows = self.constraint.capacity(int(g[0]))
                st, sp = bounds_to_batches(np.append(np.arange(0, g.size, rows), g.size))
                if self.drop_last and sp[-1] - st[-1] < rows:
                    st, sp = st[:-1], sp[:-1]
            elif isinstance(self.constraint, MaxCount):
                st, sp = cut_count_sorted(g, self.constraint.batch_size, self.drop_last, None)
            else:
                st, sp = cut_budget_sorted(g, self.constraint, self.drop_last)
            parts_s.append(st + a)
            parts_e.append(sp + a)
        starts = np.concatenate(parts_s).astype(np.int64)
        stops = np.concatenate(parts_e).astype(np.int64)
        starts, stops = self._shuffle_batches(rng, starts, stops)
        return order, starts, stops


class RandomBatchSampler(LengthBatchSampler):
    """Plain random batches (the baseline every padding comparison starts from).

    Each epoch shuffles the indices (when ``shuffle``) and cuts them in that order: by ``batch_size``, or
    greedily by ``max_steps`` (rows x longest of each batch). ``drop_last`` drops the last smaller batch.

    Example:
        >>> list(RandomBatchSampler([4, 4, 4], batch_size=2, shuffle=False))
        [[0, 1], [2]]
    """

    def _plan(self, rng: np.random.Generator) -> Plan:
        n = self._lengths.size
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if isinstance(self.constraint, MaxCount):
            bounds = np.append(np.arange(0, n, self.constraint.batch_size), n)
        else:
            bounds = greedy_cut(self._lengths[order], self.constraint)
        starts, stops = bounds_to_batches(bounds)
        if self.drop_last and starts.size:
            rows = int(stops[-1] - starts[-1])
            longest = int(self._lengths[order[starts[-1] : stops[-1]]].max())
            if self.constraint.fits(rows + 1, longest):
                starts, stops = starts[:-1], stops[:-1]
        return order.astype(np.int64), starts, stops

