"""How a sorted (or shuffled) list of lengths is cut into batches, and how batches are sharded (private).

Owns: the cutting arithmetic behind :mod:`padless.data.samplers`: greedy cuts under a
:class:`~padless.data.constraints.BatchConstraint`, count cuts that place the one smaller batch where it
computes the fewest steps, budget cuts from the cheaper end, and the world-size adjustment
(:func:`shard_fit`). Batches are (starts, stops) int64 arrays of positions in an index order; no Python
list per sequence is built. Does not own: randomness, epochs or iteration (:mod:`padless.data.samplers`).

Example:
    >>> starts, stops = cut_count_sorted(np.array([1, 2, 3, 9, 10]), 2, False, None)
    >>> list(zip(starts.tolist(), stops.tolist()))
    [(0, 1), (1, 3), (3, 5)]
"""

from __future__ import annotations

import numpy as np

from padless.data.constraints import BatchConstraint
from padless.errors import ConfigError

__all__ = ["bounds_to_batches", "greedy_cut", "cost", "cut_count_sorted", "cut_budget_sorted", "shard_fit"]


def bounds_to_batches(bounds: list[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn boundaries (B+1,) into (starts, stops) of B batches."""
    b = np.asarray(bounds, dtype=np.int64)
    return b[:-1].copy(), b[1:].copy()


def greedy_cut(lens: np.ndarray, constraint: BatchConstraint) -> np.ndarray:
    """Cut ``lens`` (in the given order) greedily into consecutive batches that fit; return bounds (B+1,)."""
    n = lens.size
    bounds = [0]
    i, window = 0, 64
    while i < n:
        while True:
            seg = lens[i : i + window]  # (w,)
            longest = np.maximum.accumulate(seg)  # (w,) longest length of the first k+1 rows
            ok = constraint.fits_array(np.arange(1, seg.size + 1), longest)  # monotone: True..True False..
            k = int(np.argmin(ok)) if not ok.all() else seg.size
            if k == seg.size and i + window < n:
                window *= 2
                continue
            break
        k = max(k, 1)  # a single sequence always fits (checked up front)
        i += k
        bounds.append(i)
        window = max(2 * k, 8)
    return np.asarray(bounds, dtype=np.int64)


def cost(sorted_lens: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> int:
    """Computed steps of batches over ascending ``sorted_lens``: rows x last (longest) length."""
    return int(((stops - starts) * sorted_lens[stops - 1]).sum()) if starts.size else 0


def cut_count_sorted(
    s: np.ndarray, batch_size: int, drop_last: bool, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ascending lengths ``s`` into chunks of ``batch_size`` with one partial chunk where it costs least.

    The partial chunk (``n % batch_size`` rows) may sit at any chunk position ``k``; every position is
    costed in O(n) with prefix sums and the cheapest is taken (ties: the shortest end). With ``drop_last``
    the partial chunk is dropped; its position is then drawn at random when ``rng`` is given, so that
    different sequences are left out in different epochs.
    """
    n = s.size
    q, r = divmod(n, batch_size)
    if r == 0:
        return bounds_to_batches(np.arange(0, n + 1, batch_size))
    full_a = s[batch_size - 1 : q * batch_size : batch_size] * batch_size  # (q,) chunks aligned at 0
    full_b = s[r + batch_size - 1 :: batch_size] * batch_size  # (q,) chunks aligned at r
    pref_a = np.concatenate([[0], np.cumsum(full_a)])  # (q+1,)
    pref_b = np.concatenate([[0], np.cumsum(full_b)])  # (q+1,)
    ks = np.arange(q + 1)
    partial = s[ks * batch_size + r - 1] * r  # (q+1,)
    total = pref_a + partial + (pref_b[-1] - pref_b)  # (q+1,) computed steps with the partial at k
    k = int(rng.integers(q + 1)) if (drop_last and rng is not None) else int(np.argmin(total))
    head = np.arange(0, k * batch_size + 1, batch_size)  # full chunks, then the partial one ends at k*B + r
    bounds = np.concatenate([head, np.arange(k * batch_size + r, n + 1, batch_size)])
    starts, stops = bounds_to_batches(bounds)
    if drop_last:
        keep = (stops - starts) == batch_size
        starts, stops = starts[keep], stops[keep]
    return starts, stops


def cut_budget_sorted(s: np.ndarray, constraint: BatchConstraint, drop_last: bool) -> tuple[np.ndarray, np.ndarray]:
    """Greedy cut of ascending ``s`` by a step budget, from whichever end computes fewer steps.

    Returns batches in ascending length order. With ``drop_last`` the leftover (last greedy) batch is
    dropped if it could still take another row of its longest length.
    """
    n = s.size
    up_s, up_e = bounds_to_batches(greedy_cut(s, constraint))  # leftover at the long end
    down_b = n - greedy_cut(s[::-1], constraint)[::-1]  # leftover at the short end, ascending bounds
    dn_s, dn_e = bounds_to_batches(down_b)
    up_cost, dn_cost = cost(s, up_s, up_e), cost(s, dn_s, dn_e)
    if (dn_cost, dn_s.size) < (up_cost, up_s.size):
        starts, stops, leftover = dn_s, dn_e, 0
    else:
        starts, stops, leftover = up_s, up_e, up_s.size - 1
    if drop_last and starts.size:
        rows = int(stops[leftover] - starts[leftover])
        if constraint.fits(rows + 1, int(s[stops[leftover] - 1])):
            keep = np.ones(starts.size, dtype=bool)
            keep[leftover] = False
            starts, stops = starts[keep], stops[keep]
    return starts, stops


def shard_fit(
    starts: np.ndarray, stops: np.ndarray, world_size: int, drop_last: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Make the batch count divisible by ``world_size`` (see the module docstring for the policy)."""
    n = starts.size
    extra = (-n) % world_size
    if extra == 0:
        return starts, stops
    if drop_last:
        keep = n - (n % world_size)
        if keep == 0:
            raise ConfigError(
                f"this epoch has only {n} batches for world_size={world_size} ranks and drop_last=True drops "
                f"them all; use smaller batches or drop_last=False"
            )
        return starts[:keep], stops[:keep]
    sizes = stops - starts
    if int(sizes.sum()) - n >= extra:  # enough rows to split: split the largest batches in two
        st, sp = list(starts.tolist()), list(stops.tolist())
        for _ in range(extra):
            sz = np.asarray(sp) - np.asarray(st)
            k = int(np.argmax(sz))
            mid = st[k] + int(sz[k]) // 2
            st.insert(k + 1, mid)
            sp.insert(k, mid)
        return np.asarray(st, dtype=np.int64), np.asarray(sp, dtype=np.int64)
    idx = np.arange(n + extra) % n  # fewer sequences than ranks: repeat batches from the start
    return starts[idx], stops[idx]
