"""Collation: ragged sequences in, one laid-out batch out (and back).

Owns: :class:`RaggedBatch` (a batch in the segment layout of :mod:`padless.data.plan`, the object that
padless layers pass to each other), :func:`collate` (RaggedArray rows -> RaggedBatch) and the inverse
pairs ``from_packed``/``to_packed``, ``from_padded``/``to_padded``, ``from_list``/``to_list``.

Does not own: which rows form a batch (samplers) or the recurrent kernels (``padless.nn``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence

from padless.data.plan import SegmentPlan, make_plan
from padless.errors import DataError

__all__ = ["RaggedBatch", "collate", "collate_values", "sort_batch"]


def sort_batch(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(sorted_indices, unsorted_indices)`` ordering ``lengths`` longest first (stable)."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.shape[0])
    return order, inverse


@dataclass(eq=False)
class RaggedBatch:
    """A batch of sequences in segment layout; rows sorted longest first.

    Attributes:
        data: (S, F) tensor, the layout of :class:`~padless.data.plan.SegmentPlan` (padded positions,
            if any, hold zeros or whatever a layer wrote there; they never influence real positions).
        plan: the layout.
        sorted_indices: (B,) int64, ``sorted row k`` is batch row ``sorted_indices[k]``.
        unsorted_indices: (B,) int64, inverse permutation.

    Example:
        >>> import torch
        >>> b = RaggedBatch.from_list([torch.ones(2, 1), torch.ones(3, 1)])
        >>> b.plan.lengths.tolist(), b.sorted_indices.tolist()
        ([3, 2], [1, 0])
        >>> [t.shape[0] for t in b.to_list()]
        [2, 3]
    """

    data: torch.Tensor
    plan: SegmentPlan
    sorted_indices: np.ndarray
    unsorted_indices: np.ndarray

    # ------------------------------------------------------------------ basics
    @property
    def batch_size(self) -> int:
        return self.plan.batch_size

    @property
    def lengths(self) -> np.ndarray:
        """(B,) lengths in *original* batch order."""
        return self.plan.lengths[self.unsorted_indices]

    def with_data(self, data: torch.Tensor) -> "RaggedBatch":
        """Same layout, new per-position values (e.g. the output of a layer)."""
        return RaggedBatch(data, self.plan, self.sorted_indices, self.unsorted_indices)

    def with_lengths(self, lengths: np.ndarray | Sequence[int], data: torch.Tensor) -> "RaggedBatch":
        """The same rows in the same sorted order with new lengths (what a strided layer returns).

        Args:
            lengths: (B,) new lengths in *sorted* row order (``plan.lengths`` order): each >= 1 and
                non-increasing, which any monotone map of the old lengths keeps (``ceil(L / s)``, ``L - k + 1``).
            data: values laid out by ``make_plan(lengths)`` (the exact plan: no padded positions).

        Raises:
            DataError: a length below 1, lengths that are not sorted, or data of the wrong size.

        Example:
            >>> import torch
            >>> b = RaggedBatch.from_list([torch.ones(4, 1), torch.ones(2, 1)])
            >>> b.with_lengths([2, 1], torch.zeros(3, 1)).lengths.tolist()
            [2, 1]
        """
        ls = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if ls.shape[0] != self.batch_size:
            raise DataError(f"with_lengths got {ls.shape[0]} lengths for a batch of {self.batch_size} rows")
        _check_lengths(ls)
        if ls.size > 1 and bool((ls[1:] > ls[:-1]).any()):
            raise DataError("with_lengths needs lengths in the batch's sorted order (non-increasing); "
                            f"got {ls.tolist()}")
        plan = make_plan(ls, 0.0)
        if int(data.shape[0]) != plan.size:
            raise DataError(f"with_lengths: data has {int(data.shape[0])} positions; the lengths need {plan.size}")
        return RaggedBatch(data, plan, self.sorted_indices, self.unsorted_indices)

    def last(self) -> torch.Tensor:
        """(B, F) value at each row's last real step, in sorted order."""
        return self.data.index_select(0, self.plan.tensor("last_pos", self.data.device))

    def valid_data(self) -> torch.Tensor:
        """(sum T_i, F) values at real positions only, in layout order."""
        if self.plan.exact:
            return self.data
        return self.data[self.plan.tensor("valid", self.data.device)]

    def unsort(self, rows: torch.Tensor) -> torch.Tensor:
        """Put per-row values (B, ...) given in sorted order back into batch order."""
        return rows.index_select(0, torch.from_numpy(self.unsorted_indices).to(rows.device))

    def sort(self, rows: torch.Tensor) -> torch.Tensor:
        """Put per-row values (B, ...) given in batch order into sorted order."""
        return rows.index_select(0, torch.from_numpy(self.sorted_indices).to(rows.device))

    # ------------------------------------------------------------------ conversions (inverse pairs)
    @classmethod
    def from_list(cls, seqs: Sequence[torch.Tensor], merge_cost: float = 0.0) -> "RaggedBatch":
        """Build from a list of (T_i, F) tensors (any order)."""
        if len(seqs) == 0:
            raise DataError("cannot build a batch from an empty list of sequences")
        lengths = np.array([int(s.shape[0]) for s in seqs], dtype=np.int64)
        _check_lengths(lengths)
        flat = torch.cat(list(seqs), 0)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        return collate_values(flat, offsets[:-1], lengths, merge_cost=merge_cost)

    def to_list(self) -> list[torch.Tensor]:
        """Inverse of :meth:`from_list`: (T_i, F) tensors in batch order."""
        p = self.plan
        valid = self.valid_data()
        # valid data is in layout order; reorder to row-major (row, time) for splitting
        rows = p.row_of_pos[p.valid] if not p.exact else p.row_of_pos
        times = p.time_of_pos[p.valid] if not p.exact else p.time_of_pos
        starts = np.concatenate([[0], np.cumsum(p.lengths)])[:-1]
        dest = starts[rows] + times
        out = torch.empty_like(valid)
        out[torch.from_numpy(dest).to(valid.device)] = valid
        pieces = list(torch.split(out, p.lengths.tolist()))
        return [pieces[k] for k in self.unsorted_indices.tolist()]

    @classmethod
    def from_padded(
        cls, padded: torch.Tensor, lengths: Sequence[int] | np.ndarray | torch.Tensor, merge_cost: float = 0.0
    ) -> "RaggedBatch":
        """Build from a right-padded (B, T, F) tensor and its lengths."""
        if padded.dim() != 3:
            raise DataError(f"padded input must be (B, T, F); got shape {tuple(padded.shape)}")
        lengths_np = np.asarray(torch.as_tensor(lengths).cpu(), dtype=np.int64).reshape(-1)
        if lengths_np.shape[0] != padded.shape[0]:
            raise DataError(
                f"got {lengths_np.shape[0]} lengths for {padded.shape[0]} padded rows; pass one length per row"
            )
        _check_lengths(lengths_np, max_len=int(padded.shape[1]))
        B, T, F = padded.shape
        flat = padded.reshape(B * T, F)  # (B*T, F)
        return collate_values(flat, np.arange(B, dtype=np.int64) * T, lengths_np, merge_cost=merge_cost)

    def to_padded(self, value: float = 0.0) -> torch.Tensor:
        """Inverse of :meth:`from_padded`: a right-padded (B, T_max, F) tensor in batch order."""
        p = self.plan
        B, T = p.batch_size, p.max_length
        out = self.data.new_full((B * T, self.data.shape[1]), value)
        rows_sorted = p.row_of_pos[p.valid]
        times = p.time_of_pos[p.valid]
        dest = torch.from_numpy(self.sorted_indices[rows_sorted] * T + times).to(self.data.device)
        out = out.index_copy(0, dest, self.valid_data())
        return out.view(B, T, -1)

    @classmethod
    def from_packed(cls, packed: PackedSequence) -> "RaggedBatch":
        """Build from a :class:`PackedSequence` (zero copy: the packed layout *is* the exact plan)."""
        bs = packed.batch_sizes.cpu().numpy()
        B = int(bs[0])
        lengths_sorted = (bs[None, :] > np.arange(B)[:, None]).sum(1).astype(np.int64)
        plan = make_plan(lengths_sorted, 0.0)
        if packed.sorted_indices is None:
            order = np.arange(B, dtype=np.int64)
        else:
            order = packed.sorted_indices.cpu().numpy().astype(np.int64)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(B)
        return cls(packed.data, plan, order, inverse)

    def to_packed(self) -> PackedSequence:
        """Inverse of :meth:`from_packed`."""
        p = self.plan
        batch_sizes = torch.as_tensor(
            (p.lengths[None, :] > np.arange(p.max_length)[:, None]).sum(1), dtype=torch.int64
        )
        data = self.valid_data()
        if not p.exact:  # valid data of a merged plan is not time-major across segments: reorder
            times = p.time_of_pos[p.valid]
            rows = p.row_of_pos[p.valid]
            order = np.lexsort((rows, times))
            data = data.index_select(0, torch.from_numpy(order).to(data.device))
        return PackedSequence(
            data,
            batch_sizes,
            torch.from_numpy(self.sorted_indices.copy()).to(data.device),
            torch.from_numpy(self.unsorted_indices.copy()).to(data.device),
        )


def _check_lengths(lengths: np.ndarray, max_len: int | None = None) -> None:
    bad = np.nonzero(lengths <= 0)[0]
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"sequence {i} has length {int(lengths[i])}; every sequence needs at least one step "
            "(drop empty sequences before batching)"
        )
    if max_len is not None:
        bad = np.nonzero(lengths > max_len)[0]
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"sequence {i} has length {int(lengths[i])} but the padded array holds only {max_len} steps; "
                "fix the lengths or pass the full array"
            )


def collate_values(
    values: torch.Tensor | np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    merge_cost: float = 0.0,
    device: torch.device | str | None = None,
    keep: set[int] | None = None,
) -> RaggedBatch:
    """Gather rows ``values[starts[i] : starts[i] + lengths[i]]`` into a :class:`RaggedBatch`.

    Args:
        values: (total, F) tensor or array (a memory map is fine: only the batch's rows are read).
        starts: (B,) first row of each sequence in ``values``.
        lengths: (B,) lengths.
        merge_cost: see :func:`padless.data.plan.make_plan`.
        device: where the batch goes (default: where ``values`` is).
        keep: lengths whose rows need exact final states (see :func:`~padless.data.plan.make_plan`).
    """
    order, inverse = sort_batch(lengths)
    plan = make_plan(lengths[order], merge_cost, keep)
    rows = plan.row_of_pos
    times = plan.time_of_pos
    if not plan.exact:
        rows, times = rows[plan.valid], times[plan.valid]
    gather = np.asarray(starts, dtype=np.int64)[order][rows] + times  # (S_valid,)
    if isinstance(values, torch.Tensor):
        real = values.index_select(0, torch.from_numpy(gather).to(values.device))
    else:
        real = torch.from_numpy(np.ascontiguousarray(np.asarray(values)[gather]))
    if device is not None:
        real = real.to(device, non_blocking=True)
    if plan.exact:
        data = real
    else:
        data = real.new_zeros((plan.size,) + tuple(real.shape[1:]))
        data[plan.tensor("valid", data.device)] = real
    return RaggedBatch(data, plan, order, inverse)


def collate(
    ragged: "object",
    indices: Sequence[int] | np.ndarray,
    merge_cost: float = 0.0,
    device: torch.device | str | None = None,
) -> RaggedBatch:
    """Collate rows ``indices`` of a :class:`~padless.data.RaggedArray` into a :class:`RaggedBatch`.

    Example:
        >>> import numpy as np
        >>> from padless.data import RaggedArray
        >>> ra = RaggedArray.from_list([np.ones((2, 3)), np.ones((4, 3))])
        >>> collate(ra, [0, 1]).data.shape
        torch.Size([6, 3])
    """
    idx = np.asarray(indices, dtype=np.int64)
    offsets = ragged.offsets  # type: ignore[attr-defined]
    starts = offsets[idx]
    lengths = offsets[idx + 1] - starts
    return collate_values(ragged.values, starts, lengths, merge_cost=merge_cost, device=device)
