"""Conversion between :class:`~padless.data.RaggedArray` and ``torch.nn.utils.rnn.PackedSequence`` (private).

Owns: :func:`to_packed` and :func:`from_packed`, both built by index arithmetic without ever padding.
Does not own: the container (:mod:`padless.data.ragged`, whose ``to_packed`` / ``from_packed`` call these)
or batch layouts for the recurrent kernels (:mod:`padless.data.collate`).

Example:
    >>> from padless.data import RaggedArray
    >>> to_packed(RaggedArray.from_list([[1.0], [2.0, 3.0]])).batch_sizes.tolist()
    [2, 1]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence

from padless.errors import DataError

if TYPE_CHECKING:
    from padless.data.ragged import RaggedArray

__all__ = ["to_packed", "from_packed"]


def to_packed(ra: RaggedArray) -> PackedSequence:
    """PackedSequence of ``ra`` with ``pack_sequence(..., enforce_sorted=False)`` semantics (ties stable).

    Raises:
        DataError: No sequences, or a zero-length one.
    """
    n = len(ra)
    if n == 0:
        raise DataError("cannot pack a RaggedArray with no sequences")
    lens = ra.lengths
    empty = np.flatnonzero(lens == 0)
    if empty.size:
        raise DataError(
            f"sequence {int(empty[0])} has length 0 and cannot be packed; drop empty sequences first, "
            f"e.g. ra = ra[ra.lengths > 0]"
        )
    order = np.argsort(-lens, kind="stable")  # (N,) sorted position -> sequence
    s = lens[order]  # (N,) descending
    counts = np.bincount(lens, minlength=int(s[0]) + 1)
    batch_sizes = n - np.cumsum(counts)[: int(s[0])]  # (T_max,) rows still running at step t
    t_start = np.zeros(batch_sizes.size, dtype=np.int64)
    np.cumsum(batch_sizes[:-1], out=t_start[1:])  # (T_max,) packed row where step t begins
    total = ra.total_steps
    step = np.arange(total) - np.repeat(np.cumsum(s) - s, s)  # (sum T,) step within its sequence
    src = np.repeat(ra.offsets[:-1][order], s) + step  # (sum T,) row in values
    dst = t_start[step] + np.repeat(np.arange(n), s)  # (sum T,) row in packed data
    data = np.empty((total, ra.num_features), dtype=ra.dtype)  # (sum T, F)
    data[dst] = ra.values[src]
    unsorted = np.empty(n, dtype=np.int64)
    unsorted[order] = np.arange(n)
    return PackedSequence(
        torch.from_numpy(data),
        torch.from_numpy(batch_sizes.astype(np.int64)),
        torch.from_numpy(order.astype(np.int64)),
        torch.from_numpy(unsorted),
    )


def from_packed(packed: PackedSequence) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(values, offsets)`` of a PackedSequence in its original (unsorted) order, on the CPU.

    Raises:
        DataError: Inconsistent ``batch_sizes`` or a data tensor that is not (sum T, F) or (sum T,).
    """
    data_t = packed.data.detach()
    if data_t.dtype == torch.bfloat16:
        data_t = data_t.float()
    data = data_t.cpu().numpy()
    if data.ndim == 1:
        data = data[:, None]  # (sum T, 1)
    if data.ndim != 2:
        raise DataError(f"packed.data must have shape (total_steps, F), got {tuple(data.shape)}")
    bs = packed.batch_sizes.cpu().numpy().astype(np.int64)  # (T_max,)
    if bs.size == 0 or (np.diff(bs) > 0).any() or bs[-1] < 1 or int(bs.sum()) != data.shape[0]:
        raise DataError("packed.batch_sizes must be positive, non-increasing and sum to len(packed.data)")
    n = int(bs[0])
    sorted_len = np.searchsorted(-bs, -np.arange(n), side="left").astype(np.int64)  # (N,) count of bs > j
    if packed.unsorted_indices is None:
        unsorted = np.arange(n)
    else:
        unsorted = packed.unsorted_indices.cpu().numpy().astype(np.int64)  # (N,) sequence -> sorted position
    lengths = sorted_len[unsorted]  # (N,) in original order
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    t_start = np.zeros(bs.size, dtype=np.int64)
    np.cumsum(bs[:-1], out=t_start[1:])  # (T_max,) packed row where step t begins
    step = np.arange(int(offsets[-1])) - np.repeat(offsets[:-1], lengths)  # (sum T,)
    src = t_start[step] + np.repeat(unsorted, lengths)  # (sum T,) row in packed data
    return data[src], offsets
