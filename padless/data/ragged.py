"""Ragged storage of variable-length sequences: :class:`RaggedArray`.

Owns: the ``RaggedArray`` container (N sequences of shape (T_i, F) kept as one ``values`` array of shape
(sum T_i, F) plus int64 ``offsets`` of shape (N+1,)), its validation, its conversions to and from lists,
padded arrays and ``torch.nn.utils.rnn.PackedSequence``, indexing, :func:`concatenate`, and saving to /
loading from a directory of ``.npy`` files that opens memory-mapped (the checks, the packing arithmetic
and the disk format live in the private helpers ``_checks``, ``_packing`` and ``_storage``). Does not own: Parquet files
(:mod:`padless.data.parquet`), batching (:mod:`padless.data.samplers`), collation into model inputs
(:mod:`padless.data.collate`) or the built-in data sets (:mod:`padless.datasets`).

Validation (on by default) rejects, with a :class:`~padless.errors.DataError` that names the sequence and
the fix: mismatched feature counts, wrong ndim, non-numeric dtypes, NaN/inf values (opt out with
``allow_nonfinite=True``) and zero-length sequences (opt out with ``allow_empty=True``). Integer and bool
inputs are converted to float32; float16/32/64 are kept as given. Caller arrays are never written to.

Example:
    >>> import numpy as np
    >>> ra = RaggedArray.from_list([np.ones((3, 2)), np.zeros((1, 2))])
    >>> ra
    RaggedArray(num_sequences=2, num_features=2, dtype=float64, lengths=1..3, total_steps=4)
    >>> ra.lengths.tolist(), ra.to_padded().shape
    ([3, 1], (2, 3, 2))
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from padless.data import _storage
from padless.data._checks import (
    as_lengths,
    check_finite,
    check_offsets,
    check_side,
    float_values,
    mask_lengths,
    step_mask,
)
from padless.errors import ConfigError, DataError

if TYPE_CHECKING:
    from torch.nn.utils.rnn import PackedSequence

__all__ = ["RaggedArray", "concatenate"]

Side = Literal["right", "left"]



# ------------------------------------------------------------------------------------------------- class
class RaggedArray:
    """N variable-length sequences of shape (T_i, F) in one ``values`` array plus ``offsets``.

    Sequence ``i`` is ``values[offsets[i]:offsets[i + 1]]``. No per-sequence Python object exists until
    you ask for one (``ra[i]`` is a view, not a copy).

    Args:
        values: Array of shape (sum T_i, F) (a 1-D array is read as F=1). Float dtypes are kept as given
            (no copy); integer/bool values are converted to float32.
        offsets: Integer array of shape (N+1,): 0, then the running total of the lengths.
        allow_nonfinite: Keep NaN/inf values instead of rejecting them. They propagate through an RNN
            into outputs and loss, so only use this when you mask them yourself.
        allow_empty: Keep zero-length sequences instead of rejecting them. They cannot be packed
            (:meth:`to_packed`) or fed to an RNN.
        validate: Check offsets and scan values for NaN/inf. Pass False only for trusted inputs.

    Raises:
        DataError: On bad offsets, wrong ndim, a non-numeric dtype, NaN/inf or empty sequences (the
            message names the sequence index and the fix).

    Example:
        >>> import numpy as np
        >>> ra = RaggedArray(np.arange(10.0).reshape(5, 2), [0, 2, 5])
        >>> ra[1]
        array([[4., 5.],
               [6., 7.],
               [8., 9.]])
    """

    __slots__ = ("_values", "_offsets", "_lengths", "allow_nonfinite", "allow_empty", "_mmap_source")

    def __init__(
        self,
        values: Any,
        offsets: Any,
        *,
        allow_nonfinite: bool = False,
        allow_empty: bool = False,
        validate: bool = True,
    ) -> None:
        vals = np.asarray(values)
        if vals.ndim == 1:
            vals = vals.reshape(-1, 1)  # (sum T, 1)
        if vals.ndim != 2:
            raise DataError(
                f"values must be 2-D with shape (total_steps, num_features), got shape {vals.shape}; "
                f"use RaggedArray.from_list or RaggedArray.from_padded for other layouts"
            )
        vals = float_values(vals, "values")
        offs = np.asarray(offsets)
        if validate:
            if vals.shape[1] == 0:
                raise DataError("values has 0 features; each time step needs at least one feature")
            check_offsets(offs, vals.shape[0], allow_empty)
            if not allow_nonfinite:
                check_finite(vals, offs)
        self._values = vals  # (sum T, F)
        self._offsets = offs.astype(np.int64, copy=False)  # (N+1,)
        self._lengths: np.ndarray | None = None
        self.allow_nonfinite = bool(allow_nonfinite)
        self.allow_empty = bool(allow_empty)
        self._mmap_source: tuple[str, int, int] | None = None

    @classmethod
    def _trusted(
        cls,
        values: np.ndarray,
        offsets: np.ndarray,
        *,
        allow_nonfinite: bool,
        allow_empty: bool,
        mmap_source: tuple[str, int, int] | None = None,
    ) -> RaggedArray:
        """Build without any check (internal: inputs already valid)."""
        out = cls.__new__(cls)
        out._values = values
        out._offsets = offsets
        out._lengths = None
        out.allow_nonfinite = allow_nonfinite
        out.allow_empty = allow_empty
        out._mmap_source = mmap_source
        return out

    def _derive(
        self, values: np.ndarray, offsets: np.ndarray, mmap_source: tuple[str, int, int] | None = None
    ) -> RaggedArray:
        return RaggedArray._trusted(
            values, offsets, allow_nonfinite=self.allow_nonfinite, allow_empty=self.allow_empty, mmap_source=mmap_source
        )

    # ------------------------------------------------------------------------------------ constructors
    @classmethod
    def from_list(
        cls, sequences: Iterable[Any], *, allow_nonfinite: bool = False, allow_empty: bool = False
    ) -> RaggedArray:
        """Build from a list of (T_i, F) arrays, or of 1-D (T_i,) arrays (then F=1; all must be 1-D).

        Args:
            sequences: Iterable of array-likes. Not modified.
            allow_nonfinite: See :class:`RaggedArray`.
            allow_empty: See :class:`RaggedArray`.

        Returns:
            A new RaggedArray (values copied into one array).

        Raises:
            DataError: Empty list, 0-D or 3-D+ elements, mixed 1-D/2-D elements, mismatched feature counts,
                non-numeric dtypes, NaN/inf, zero-length sequences.

        Example:
            >>> RaggedArray.from_list([[1, 2, 3], [4]]).lengths.tolist()
            [3, 1]
        """
        arrays: list[np.ndarray] = []
        for i, seq in enumerate(sequences):
            try:
                arr = np.asarray(seq)
            except (TypeError, ValueError) as exc:
                raise DataError(f"sequence {i} could not be read as a numeric array: {exc}") from exc
            if arr.ndim == 0:
                raise DataError(
                    f"sequence {i} is 0-D (a single scalar); each sequence must be a (T, F) array, or a 1-D (T,) array"
                )
            if arr.ndim > 2:
                raise DataError(
                    f"sequence {i} is {arr.ndim}-D with shape {arr.shape}; each sequence must be (T, F): "
                    f"reshape it, e.g. x.reshape(len(x), -1)"
                )
            arr = float_values(arr, f"sequence {i}")
            if arrays:
                first = arrays[0]
                if arr.ndim != first.ndim:
                    raise DataError(
                        f"sequence {i} is {arr.ndim}-D but sequence 0 is {first.ndim}-D; 1-D sequences are only "
                        f"accepted when all are 1-D: pass (T, F) arrays, e.g. x.reshape(-1, 1)"
                    )
                if arr.ndim == 2 and arr.shape[1] != first.shape[1]:
                    raise DataError(
                        f"sequence {i} has {arr.shape[1]} features, sequence 0 has {first.shape[1]}; every "
                        f"sequence must have the same number of features (columns)"
                    )
            arrays.append(arr)
        if not arrays:
            raise DataError("got an empty list of sequences; pass at least one (T, F) array")
        if arrays[0].ndim == 1:
            arrays = [a.reshape(-1, 1) for a in arrays]  # (T_i, 1) views
        lengths = np.fromiter((a.shape[0] for a in arrays), dtype=np.int64, count=len(arrays))
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        dtype = np.result_type(*[a.dtype for a in arrays])
        values = np.concatenate(arrays, axis=0, dtype=dtype)  # (sum T, F), always a new array
        return cls(values, offsets, allow_nonfinite=allow_nonfinite, allow_empty=allow_empty)

    @classmethod
    def from_lengths(
        cls, values: Any, lengths: Any, *, allow_nonfinite: bool = False, allow_empty: bool = False
    ) -> RaggedArray:
        """Build from concatenated ``values`` (sum T_i, F) and per-sequence ``lengths`` (N,).

        Args:
            values: (sum T_i, F) or 1-D (sum T_i,) array; used without a copy if it is floating point.
            lengths: 1-D integers, one per sequence, summing to ``len(values)``.
            allow_nonfinite: See :class:`RaggedArray`.
            allow_empty: See :class:`RaggedArray`.

        Returns:
            A RaggedArray over ``values``.

        Raises:
            DataError: Negative lengths, or lengths that do not sum to the number of rows.

        Example:
            >>> RaggedArray.from_lengths(np.arange(5.0), [2, 3])[1].ravel().tolist()
            [2.0, 3.0, 4.0]
        """
        vals = np.asarray(values)
        n_rows = vals.shape[0] if vals.ndim >= 1 else 0
        lens = as_lengths(lengths, None, None)
        if int(lens.sum()) != n_rows:
            raise DataError(
                f"lengths sum to {int(lens.sum())} but values has {n_rows} rows; the lengths must add up to "
                f"the number of time steps in values"
            )
        offsets = np.zeros(lens.size + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        return cls(vals, offsets, allow_nonfinite=allow_nonfinite, allow_empty=allow_empty)

    @classmethod
    def from_padded(
        cls,
        padded: Any,
        lengths: Any = None,
        mask: Any = None,
        side: Side = "right",
        *,
        allow_nonfinite: bool = False,
        allow_empty: bool = False,
    ) -> RaggedArray:
        """Build from a padded (N, T, F) or (N, T) array, cutting away the padding.

        Give the real lengths (``lengths``) or a boolean ``mask`` (N, T) of real steps, not both; with
        neither, every row is taken as T steps long. NaN/inf inside the padding is ignored.

        Args:
            padded: (N, T, F) or (N, T) numeric array. Not modified.
            lengths: Optional (N,) real lengths, 1 <= length <= T.
            mask: Optional (N, T) boolean mask; each row must be one unbroken run touching the padded side's
                opposite end (start for ``side="right"``, end for ``side="left"``).
            side: ``"right"`` if padding follows the real steps, ``"left"`` if it precedes them.
            allow_nonfinite: See :class:`RaggedArray`.
            allow_empty: See :class:`RaggedArray`.

        Returns:
            A new RaggedArray (copy of the real steps).

        Raises:
            DataError: Wrong ndim, non-numeric dtype, bad lengths (count, negative, > T), a mask with holes or
                on the wrong side, and anything the constructor rejects.
            ConfigError: Both ``lengths`` and ``mask``, or an unknown ``side``.

        Example:
            >>> x = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
            >>> RaggedArray.from_padded(x, lengths=[2, 1]).to_list()[0].ravel().tolist()
            [1.0, 2.0]
        """
        check_side(side)
        if lengths is not None and mask is not None:
            raise ConfigError("pass lengths= or mask= to from_padded, not both")
        arr = np.asarray(padded)
        if arr.ndim == 2:
            arr = arr[:, :, None]  # (N, T, 1)
        elif arr.ndim != 3:
            raise DataError(
                f"padded input is {arr.ndim}-D with shape {arr.shape}; expected (N, T, F) or (N, T)"
            )
        if arr.dtype.kind not in "fiub":
            float_values(arr, "padded input")  # raises with the dtype
        n, total, _ = arr.shape  # (N, T, F)
        if n == 0:
            raise DataError("padded input holds no sequences (N = 0); pass at least one row")
        if mask is not None:
            lens = mask_lengths(mask, n, total, side)
        elif lengths is not None:
            lens = as_lengths(lengths, n, total, f"(padded has shape {np.shape(padded)})")
        else:
            lens = np.full(n, total, dtype=np.int64)
        real = step_mask(lens, total, side)  # (N, T)
        values = float_values(arr[real], "padded input")  # (sum T, F), row-major = sequence order
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        return cls(values, offsets, allow_nonfinite=allow_nonfinite, allow_empty=allow_empty)

    @classmethod
    def from_packed(cls, packed: PackedSequence, *, allow_nonfinite: bool = False) -> RaggedArray:
        """Build from a ``torch.nn.utils.rnn.PackedSequence`` (inverse of :meth:`to_packed`).

        The original (unsorted) order is restored from ``packed.unsorted_indices``.

        Args:
            packed: A PackedSequence with data of shape (sum T_i, F) or (sum T_i,), on any device.
            allow_nonfinite: See :class:`RaggedArray`.

        Returns:
            A new RaggedArray on the CPU (bfloat16 data becomes float32).

        Raises:
            DataError: Inconsistent batch sizes or data shape.

        Example:
            >>> import torch
            >>> from torch.nn.utils.rnn import pack_sequence
            >>> p = pack_sequence([torch.ones(2, 1), torch.ones(3, 1)], enforce_sorted=False)
            >>> RaggedArray.from_packed(p).lengths.tolist()
            [2, 3]
        """
        from padless.data import _packing  # imports torch

        values, offsets = _packing.from_packed(packed)
        return cls(values, offsets, allow_nonfinite=allow_nonfinite)

    # ---------------------------------------------------------------------------------------- properties
    @property
    def values(self) -> np.ndarray:
        """All time steps, shape (sum T_i, F)."""
        return self._values

    @property
    def offsets(self) -> np.ndarray:
        """Sequence boundaries, int64 shape (N+1,)."""
        return self._offsets

    @property
    def lengths(self) -> np.ndarray:
        """Per-sequence lengths, int64 shape (N,)."""
        if self._lengths is None:
            self._lengths = np.diff(self._offsets)
        return self._lengths

    @property
    def num_features(self) -> int:
        """F, the number of features per time step."""
        return int(self._values.shape[1])

    @property
    def total_steps(self) -> int:
        """Sum of all lengths."""
        return int(self._offsets[-1])

    @property
    def dtype(self) -> np.dtype:
        """The values' dtype."""
        return self._values.dtype

    def __len__(self) -> int:
        return int(self._offsets.shape[0] - 1)

    def __repr__(self) -> str:
        lens = self.lengths
        span = f"{int(lens.min())}..{int(lens.max())}" if lens.size else "none"
        mm = ", memory-mapped" if isinstance(self._values, np.memmap) else ""
        return (
            f"RaggedArray(num_sequences={len(self)}, num_features={self.num_features}, dtype={self.dtype}, "
            f"lengths={span}, total_steps={self.total_steps}{mm})"
        )

    def __iter__(self) -> Iterator[np.ndarray]:
        offs = self._offsets
        for i in range(len(self)):
            yield self._values[offs[i] : offs[i + 1]]

    # ------------------------------------------------------------------------------------------ indexing
    def __getitem__(self, key: Any) -> Any:
        """``ra[i]`` -> (T_i, F) view; ``ra[a:b]`` -> RaggedArray view; int array / bool mask -> copy."""
        n = len(self)
        if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
            i = int(key)
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise IndexError(f"sequence index {int(key)} is out of range for {n} sequences")
            return self._values[self._offsets[i] : self._offsets[i + 1]]  # (T_i, F) view
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step != 1:
                return self.take(np.arange(start, stop, step))
            stop = max(stop, start)
            offs = self._offsets[start : stop + 1]
            lo, hi = int(offs[0]), int(offs[-1])
            src = self._mmap_source
            sub = None if src is None else (src[0], src[1] + lo, src[1] + hi)
            return self._derive(self._values[lo:hi], offs - lo, sub)
        arr = np.asarray(key)
        if arr.dtype == np.bool_:
            if arr.shape != (n,):
                raise IndexError(f"boolean mask has shape {arr.shape}, expected ({n},)")
            return self.take(np.flatnonzero(arr))
        return self.take(arr)

    def take(self, indices: Any) -> RaggedArray:
        """Return a new RaggedArray with sequences ``indices`` (any order, repeats allowed; copies values).

        Args:
            indices: 1-D integer array-like; negative indices count from the end.

        Returns:
            A RaggedArray whose sequence ``k`` is ``self[indices[k]]``.

        Raises:
            IndexError: Out-of-range or non-integer indices.

        Example:
            >>> ra = RaggedArray.from_list([[1.0], [2.0, 2.0], [3.0, 3.0, 3.0]])
            >>> ra.take([2, 0]).lengths.tolist()
            [3, 1]
        """
        n = len(self)
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or idx.dtype == np.bool_:
            raise IndexError(f"indices must be a 1-D integer array, got shape {idx.shape} and dtype {idx.dtype}")
        idx = np.where(idx < 0, idx + n, idx).astype(np.int64)
        out = np.flatnonzero((idx < 0) | (idx >= n))
        if out.size:
            raise IndexError(f"index {int(np.asarray(indices)[out[0]])} is out of range for {n} sequences")
        lens = self.lengths[idx]  # (K,)
        offsets = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        src = np.repeat(self._offsets[idx] - offsets[:-1], lens) + np.arange(int(offsets[-1]))  # (sum T,)
        return self._derive(np.asarray(self._values[src]), offsets)

    # ---------------------------------------------------------------------------------------- conversions
    def astype(self, dtype: Any) -> RaggedArray:
        """Return a copy with values cast to a floating ``dtype``.

        Args:
            dtype: A numpy floating dtype (e.g. ``np.float32``).

        Returns:
            A new RaggedArray (values copied).

        Raises:
            DataError: A non-floating dtype, or a cast that overflows to inf.

        Example:
            >>> RaggedArray.from_list([[1.0, 2.0]]).astype(np.float16).dtype
            dtype('float16')
        """
        target = np.dtype(dtype)
        if target.kind != "f":
            raise DataError(f"astype needs a floating dtype (float16/32/64), got {target}")
        with np.errstate(over="ignore"):  # overflow is reported below as a DataError
            values = self._values.astype(target, copy=True)
        if not self.allow_nonfinite:
            check_finite(values, self._offsets)
        return self._derive(values, self._offsets.copy())

    def to_list(self) -> list[np.ndarray]:
        """Return the sequences as a list of (T_i, F) views (no copies).

        Example:
            >>> [s.shape for s in RaggedArray.from_list([np.ones((2, 3)), np.ones((1, 3))]).to_list()]
            [(2, 3), (1, 3)]
        """
        return list(self)

    def to_padded(self, side: Side = "right", value: float = 0.0) -> np.ndarray:
        """Return a padded copy of shape (N, max_T, F).

        Args:
            side: ``"right"`` puts padding after the real steps, ``"left"`` before them.
            value: The padding value.

        Returns:
            New ndarray (N, max_T, F) of the values' dtype; invert with
            ``RaggedArray.from_padded(x, lengths=ra.lengths, side=side)``.

        Raises:
            ConfigError: An unknown ``side``.

        Example:
            >>> RaggedArray.from_list([[1.0, 2.0], [3.0]]).to_padded(side="left")[:, :, 0].tolist()
            [[1.0, 2.0], [0.0, 3.0]]
        """
        check_side(side)
        lens = self.lengths
        total = int(lens.max()) if lens.size else 0
        out = np.full((len(self), total, self.num_features), value, dtype=self.dtype)  # (N, T, F)
        out[step_mask(lens, total, side)] = self._values
        return out

    def to_packed(self) -> PackedSequence:
        """Return a ``torch.nn.utils.rnn.PackedSequence`` built without padding.

        Same semantics as ``pack_sequence(seqs, enforce_sorted=False)``: ``sorted_indices`` /
        ``unsorted_indices`` record the order, so unpacking restores it. Ties are sorted stably.

        Returns:
            PackedSequence with data (sum T_i, F) on the CPU, sharing no memory with ``values``.

        Raises:
            DataError: No sequences, or a zero-length sequence (a PackedSequence cannot hold one).

        Example:
            >>> p = RaggedArray.from_list([[1.0], [2.0, 3.0]]).to_packed()
            >>> p.batch_sizes.tolist(), p.data.ravel().tolist()
            ([2, 1], [2.0, 1.0, 3.0])
        """
        from padless.data import _packing  # imports torch

        return _packing.to_packed(self)

    # ------------------------------------------------------------------------------------------ disk I/O
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write a directory ``path`` with ``values.npy``, ``offsets.npy`` and ``meta.json``, atomically.

        The files are written to a temporary sibling directory that is renamed into place, so readers
        never see a half-written data set. The format (with the fields of ``meta.json``) is described in
        :mod:`padless.data._storage`; ``values.npy`` opens with ``np.load(..., mmap_mode="r")``.

        Args:
            path: Target directory (must not exist unless ``overwrite``).
            overwrite: Replace an existing *saved RaggedArray* at ``path``. Anything else at ``path`` (a file,
                another directory) is never replaced.

        Returns:
            The path written.

        Raises:
            DataError: ``path`` exists and ``overwrite`` is False, or ``path`` is not a saved RaggedArray.

        Example:
            >>> import tempfile, os
            >>> d = tempfile.mkdtemp()
            >>> _ = RaggedArray.from_list([[1.0], [2.0, 3.0]]).save(os.path.join(d, "ds"))
            >>> RaggedArray.load(os.path.join(d, "ds")).lengths.tolist()
            [1, 2]
        """
        return _storage.save(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, mmap: bool = True) -> RaggedArray:
        """Open a directory written by :meth:`save`.

        With ``mmap=True`` the values are memory-mapped read-only: nothing is read until a sequence is
        touched, so data sets larger than RAM open instantly. Offsets are read and checked (O(N)); values
        are not scanned for NaN/inf when memory-mapped (they were checked when the array was built).

        Args:
            path: The directory.
            mmap: Memory-map ``values.npy`` (True) or read it into RAM (False, then NaN/inf are re-checked).

        Returns:
            The RaggedArray.

        Raises:
            DataError: Missing, truncated or inconsistent files (the message names the path).

        Example:
            >>> import tempfile, os
            >>> d = os.path.join(tempfile.mkdtemp(), "ds")
            >>> _ = RaggedArray.from_list([np.ones((3, 2), np.float32)]).save(d)
            >>> RaggedArray.load(d, mmap=True)
            RaggedArray(num_sequences=1, num_features=2, dtype=float32, lengths=3..3, total_steps=3, memory-mapped)
        """
        return _storage.load(path, mmap=mmap)

    # ---------------------------------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        """Pickle memory-mapped arrays by file name (not by content), so DataLoader workers stay lean."""
        state: dict[str, Any] = {
            "offsets": self._offsets,
            "allow_nonfinite": self.allow_nonfinite,
            "allow_empty": self.allow_empty,
        }
        if self._mmap_source is not None:
            state["mmap_source"] = self._mmap_source
        else:
            state["values"] = np.asarray(self._values)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        source = state.get("mmap_source")
        if source is not None:
            file, lo, hi = source
            values = np.load(file, mmap_mode="r", allow_pickle=False)[lo:hi]
        else:
            values = state["values"]
        self._values = values
        self._offsets = state["offsets"]
        self._lengths = None
        self.allow_nonfinite = state["allow_nonfinite"]
        self.allow_empty = state["allow_empty"]
        self._mmap_source = source


def concatenate(arrays: Sequence[RaggedArray]) -> RaggedArray:
    """Join RaggedArrays end to end (sequence order kept; values copied).

    Args:
        arrays: One or more RaggedArrays with the same number of features.

    Returns:
        A new RaggedArray; its dtype is the common float dtype of the inputs.

    Raises:
        DataError: An empty list, a non-RaggedArray, or mismatched feature counts.

    Example:
        >>> a = RaggedArray.from_list([[1.0], [2.0, 2.0]])
        >>> len(concatenate([a, a[:1]]))
        3
    """
    items = list(arrays)
    if not items:
        raise DataError("concatenate needs at least one RaggedArray")
    for k, item in enumerate(items):
        if not isinstance(item, RaggedArray):
            raise DataError(
                f"array {k} is a {type(item).__name__}, not a RaggedArray; wrap it with RaggedArray.from_list"
            )
        if item.num_features != items[0].num_features:
            raise DataError(
                f"array {k} has {item.num_features} features, array 0 has {items[0].num_features}; "
                f"all arrays must have the same number of features"
            )
    dtype = np.result_type(*[a.dtype for a in items])
    values = np.concatenate([np.asarray(a.values) for a in items], axis=0, dtype=dtype)  # (sum T, F)
    lengths = np.concatenate([a.lengths for a in items])
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return RaggedArray._trusted(
        values,
        offsets,
        allow_nonfinite=any(a.allow_nonfinite for a in items),
        allow_empty=any(a.allow_empty for a in items),
    )
