"""Ragged storage of variable-length sequences: :class:`RaggedArray`.

Owns: the ``RaggedArray`` container (N sequences of shape (T_i, F) kept as one ``values`` array of shape
(sum T_i, F) plus int64 ``offsets`` of shape (N+1,)), its validation, its conversions to and from lists,
padded arrays and ``torch.nn.utils.rnn.PackedSequence``, indexing, :func:`concatenate`, and saving to /
loading from a directory of ``.npy`` files that opens memory-mapped (the checks, the packing arithmetic
and the disk format live in the private helpers ``_checks``, ``_packing`` and ``_storage``; the
conversions in the mixin of ``_conversions``). Does not own: Parquet files
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

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from padless.data._checks import check_finite, check_offsets, float_values
from padless.data._conversions import RaggedConversions
from padless.errors import DataError

if TYPE_CHECKING:
    pass

__all__ = ["RaggedArray", "concatenate"]

Side = Literal["right", "left"]



# ------------------------------------------------------------------------------------------------- class
class RaggedArray(RaggedConversions):
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
