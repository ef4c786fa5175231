"""Execution plans: how one batch of ragged sequences is laid out for the recurrent kernels.

Owns: :class:`SegmentPlan` and :func:`make_plan`. A batch's rows are sorted longest first and time is cut
into *segments*: inside a segment every active row has data at every step, so the dense (cuDNN / oneDNN)
kernel runs on a rectangular block and the state ``(h, c)`` is carried into the rows that continue. The
layout of a batch is the concatenation over segments of time-major blocks ``(T_s, rows_s, F)``; with no
merging it is exactly the layout of ``PackedSequence.data``.

Segments may be *merged* when the per-call overhead of the kernel costs more than the padded row-steps a
merge adds (``merge_cost``, in row-steps). Merging never changes outputs at real positions, the last real
output of each row or gradients (recurrences are causal); it only loses the cell state ``c`` of rows that
end inside a merged segment, so layers that need final states ask for an exact plan (``merge_cost=0``).

Does not own: gathering data into the layout (``padless.data.collate``) or running kernels
(``padless.nn``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, TypeVar

import numpy as np
import torch

__all__ = ["Segment", "SegmentPlan", "make_plan", "MAX_CALL_STEPS"]

_T = TypeVar("_T")

# Longest block handed to one kernel call; longer segments are cut into chained calls (the state flows
# through, gradients too: still exact, full BPTT). With glibc's default allocator, one call over hundreds
# of steps allocates workspaces above the mmap threshold and page-faults them in at every step of
# training; bounded calls reuse heap memory (measured in benchmarks/RESULTS.md).
MAX_CALL_STEPS = 128


@dataclass(frozen=True)
class Segment:
    """One rectangular block of the layout.

    Attributes:
        t0: first time step covered.
        steps: number of time steps ``T_s``.
        rows: number of rows ``r_s`` (rows ``0..r_s-1`` of the sorted batch).
        start: offset of the block in the layout (block occupies ``start : start + steps * rows``).
    """

    t0: int
    steps: int
    rows: int
    start: int


@dataclass(eq=False)
class SegmentPlan:
    """Layout of one batch whose rows are sorted by length, longest first.

    Attributes:
        lengths: (B,) int64 lengths in sorted (descending) order.
        segments: the blocks, in time order.
        size: number of positions in the layout (real + padded).
        exact: True when no position is padding (every row's final state is available).
        row_of_pos: (S,) row of each layout position.
        time_of_pos: (S,) time step of each layout position.
        valid: (S,) bool, False at padded positions (only padding when ``exact`` is False).
        last_pos: (B,) layout position of each row's last real step.
        reverse_index: (S,) permutation reversing every row within its own length.
        state_exact: (B,) True where a row's length is a segment end, so its final state is exact
            (every row on an exact plan).

    Example:
        >>> plan = make_plan(np.array([3, 2, 1]))
        >>> [(s.t0, s.steps, s.rows) for s in plan.segments]
        [(0, 1, 3), (1, 1, 2), (2, 1, 1)]
        >>> plan.last_pos.tolist()   # sorted rows have lengths 3, 2, 1
        [5, 4, 2]
    """

    lengths: np.ndarray
    segments: tuple[Segment, ...]
    size: int
    exact: bool
    row_of_pos: np.ndarray
    time_of_pos: np.ndarray
    valid: np.ndarray
    last_pos: np.ndarray
    reverse_index: np.ndarray
    state_exact: np.ndarray
    _tensors: dict[Any, torch.Tensor] = field(default_factory=dict, repr=False)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def batch_size(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def real_steps(self) -> int:
        return int(self.lengths.sum())

    @property
    def max_length(self) -> int:
        return int(self.lengths[0]) if self.lengths.size else 0

    def tensor(self, name: str, device: torch.device | str = "cpu") -> torch.Tensor:
        """Return one of the index arrays as a cached torch tensor on ``device``."""
        key = (name, str(device))
        t = self._tensors.get(key)
        if t is None:
            t = torch.from_numpy(np.array(getattr(self, name), copy=True)).to(device)
            self._tensors[key] = t
        return t

    def cached(self, key: Any, make: Callable[[], _T]) -> _T:
        """``make()``, computed once per plan and kept under ``key`` (index tables a layer derives from a plan;
        plans are cached, so a table lives as long as its plan). ``key`` must name everything ``make`` reads
        besides the plan (the layer's window, the device)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]  # type: ignore[no-any-return]

    def batch_sizes(self) -> torch.Tensor:
        """(T,) int64 CPU tensor: rows active at each step (``PackedSequence.batch_sizes`` of this plan; for an exact
        plan the layout *is* ``PackedSequence.data``).

        Example:
            >>> make_plan(np.array([3, 1])).batch_sizes().tolist()
            [2, 1, 1]
        """
        return self.cached("batch_sizes", lambda: torch.from_numpy(
            (self.lengths[:, None] > np.arange(self.max_length)[None, :]).sum(0).astype(np.int64)))

    def positions(self) -> np.ndarray:
        """(B, max_length) layout position of step ``t`` of sorted row ``b``; -1 after the row's end (built
        on each call, O(size): cache what you derive from it with :meth:`cached`).

        Example:
            >>> make_plan(np.array([2, 1])).positions().tolist()
            [[0, 2], [1, -1]]
        """
        table = np.full((self.batch_size, max(self.max_length, 1)), -1, dtype=np.int64)
        v = self.valid
        table[self.row_of_pos[v], self.time_of_pos[v]] = np.arange(self.size, dtype=np.int64)[v]
        return table


def _split(blocks: list[tuple[int, int, int]], max_steps: int) -> list[tuple[int, int, int]]:
    """Cut blocks longer than ``max_steps`` into consecutive blocks of the same rows (same layout)."""
    if max_steps <= 0:
        return blocks
    out = []
    for t0, steps, r in blocks:
        n = -(-steps // max_steps)  # ceil: equal pieces
        base, extra = divmod(steps, n)
        t = t0
        for i in range(n):
            k = base + (1 if i < extra else 0)
            out.append((t, k, r))
            t += k
    return out


def _segments(lengths: tuple[int, ...], merge_cost: float, keep: frozenset[int] = frozenset()) -> list[tuple[int, int, int]]:
    """Cut time into (t0, steps, rows) blocks; ``lengths`` sorted descending. A boundary at a time in
    ``keep`` is never merged away (rows of that length need their exact final state)."""
    ls = np.asarray(lengths, dtype=np.int64)
    uniq = np.unique(ls)  # ascending distinct lengths
    # rows active in (uniq[k-1], uniq[k]] = number of lengths >= uniq[k]
    rows = ls.shape[0] - np.searchsorted(ls[::-1], uniq, side="left")
    out: list[tuple[int, int, int]] = []
    t = 0
    for u, r in zip(uniq.tolist(), rows.tolist()):
        out.append((t, u - t, r))
        t = u
    if merge_cost <= 0 or len(out) < 2:
        return out
    merged: list[tuple[int, int, int]] = []
    cur_t0, cur_steps, cur_rows = out[0]
    for t0, steps, r in out[1:]:
        extra = (cur_rows - r) * steps  # padded row-steps the merge would add
        if extra < merge_cost and t0 not in keep:
            cur_steps += steps
        else:
            merged.append((cur_t0, cur_steps, cur_rows))
            cur_t0, cur_steps, cur_rows = t0, steps, r
    merged.append((cur_t0, cur_steps, cur_rows))
    return merged


@lru_cache(maxsize=4096)
def _plan_cached(lengths: tuple[int, ...], merge_cost: float, keep: frozenset[int] = frozenset(),
                 max_call_steps: int = MAX_CALL_STEPS) -> SegmentPlan:
    ls = np.asarray(lengths, dtype=np.int64)
    segs = []
    rows_parts, time_parts = [], []
    start = 0
    merged = _segments(lengths, merge_cost, keep)
    ends = {t0 + steps for t0, steps, _ in merged}  # where rows leave the batch (splits below keep the rows)
    for t0, steps, r in _split(merged, max_call_steps):
        segs.append(Segment(t0, steps, r, start))
        grid_t = np.repeat(np.arange(t0, t0 + steps, dtype=np.int64), r)  # (T*r,)
        grid_r = np.tile(np.arange(r, dtype=np.int64), steps)
        rows_parts.append(grid_r)
        time_parts.append(grid_t)
        start += steps * r
    row_of_pos = np.concatenate(rows_parts) if rows_parts else np.zeros(0, np.int64)
    time_of_pos = np.concatenate(time_parts) if time_parts else np.zeros(0, np.int64)
    valid = time_of_pos < ls[row_of_pos] if ls.size else np.zeros(0, bool)
    exact = bool(valid.all())
    # position of (row, t): index via a dense (B, Tmax) table
    tmax = int(ls.max()) if ls.size else 0
    table = np.full((ls.shape[0], max(tmax, 1)), -1, dtype=np.int64)
    table[row_of_pos, time_of_pos] = np.arange(start, dtype=np.int64)
    last_pos = table[np.arange(ls.shape[0]), ls - 1] if ls.size else np.zeros(0, np.int64)
    state_exact = np.array([int(v) in ends for v in ls.tolist()], dtype=bool)
    # reverse every row within its own length; padded positions map to themselves
    rev_time = np.where(valid, ls[row_of_pos] - 1 - time_of_pos, time_of_pos)
    reverse_index = table[row_of_pos, rev_time]
    for arr in (ls, row_of_pos, time_of_pos, valid, last_pos, reverse_index, state_exact):
        arr.setflags(write=False)
    return SegmentPlan(
        lengths=ls,
        segments=tuple(segs),
        size=start,
        exact=exact,
        row_of_pos=row_of_pos,
        time_of_pos=time_of_pos,
        valid=valid,
        last_pos=last_pos,
        reverse_index=reverse_index,
        state_exact=state_exact,
    )


def make_plan(sorted_lengths: np.ndarray | list[int], merge_cost: float = 0.0,
              keep: frozenset[int] | set[int] | None = None, max_call_steps: int | None = None) -> SegmentPlan:
    """Plan the layout of a batch whose lengths are sorted longest first.

    Args:
        sorted_lengths: (B,) positive lengths in descending order.
        merge_cost: a kernel call's overhead in row-steps; neighbouring segments are merged when the
            padding a merge adds is smaller. ``0`` gives the exact, padding-free plan.
        keep: lengths whose rows need their exact final state: never merged across.
        max_call_steps: cut longer blocks into chained kernel calls (default :data:`MAX_CALL_STEPS`;
            0 = never cut).

    Returns:
        A cached, read-only :class:`SegmentPlan`.
    """
    key = tuple(int(v) for v in np.asarray(sorted_lengths).tolist())
    mcs = MAX_CALL_STEPS if max_call_steps is None else int(max_call_steps)
    return _plan_cached(key, float(merge_cost), frozenset(int(k) for k in keep) if keep else frozenset(), mcs)
