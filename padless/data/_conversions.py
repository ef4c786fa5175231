"""Conversions of :class:`~padless.data.ragged.RaggedArray`: from and to lists, padded arrays,
``PackedSequence`` and saved directories (each pair is an inverse pair, tested by round trips).

Owns: :class:`RaggedConversions`, the mixin holding those constructors and converters (they build with
``cls(...)`` and read only the container's public attributes, so this module needs no import of the
container). Does not own: the container (:mod:`padless.data.ragged`), the checks (``_checks``), the
packed-layout arithmetic (``_packing``) or the disk format (``_storage``).

Example:
    >>> from padless.data.ragged import RaggedArray
    >>> RaggedArray.from_list([[1.0, 2.0], [3.0]]).to_padded().shape
    (2, 2, 1)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from padless.data import _packing, _storage
from padless.data._checks import as_lengths, check_side, float_values, mask_lengths, step_mask
from padless.errors import ConfigError, DataError

if TYPE_CHECKING:
    from torch.nn.utils.rnn import PackedSequence

    from padless.data.ragged import RaggedArray

__all__ = ["RaggedConversions"]

Side = Literal["right", "left"]


class RaggedConversions:
    """Constructors and converters of :class:`~padless.data.ragged.RaggedArray` (mixed into it)."""

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
            >>> from padless.data.ragged import RaggedArray
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
            >>> from padless.data.ragged import RaggedArray
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
            >>> from padless.data.ragged import RaggedArray
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
            >>> from padless.data.ragged import RaggedArray
            >>> import torch
            >>> from torch.nn.utils.rnn import pack_sequence
            >>> p = pack_sequence([torch.ones(2, 1), torch.ones(3, 1)], enforce_sorted=False)
            >>> RaggedArray.from_packed(p).lengths.tolist()
            [2, 3]
        """
        values, offsets = _packing.from_packed(packed)
        return cls(values, offsets, allow_nonfinite=allow_nonfinite)


    def to_list(self) -> list[np.ndarray]:
        """Return the sequences as a list of (T_i, F) views (no copies).

        Example:
            >>> from padless.data.ragged import RaggedArray
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
            >>> from padless.data.ragged import RaggedArray
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
            >>> from padless.data.ragged import RaggedArray
            >>> p = RaggedArray.from_list([[1.0], [2.0, 3.0]]).to_packed()
            >>> p.batch_sizes.tolist(), p.data.ravel().tolist()
            ([2, 1], [2.0, 1.0, 3.0])
        """
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
            >>> from padless.data.ragged import RaggedArray
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
            >>> from padless.data.ragged import RaggedArray
            >>> import tempfile, os
            >>> d = os.path.join(tempfile.mkdtemp(), "ds")
            >>> _ = RaggedArray.from_list([np.ones((3, 2), np.float32)]).save(d)
            >>> RaggedArray.load(d, mmap=True)
            RaggedArray(num_sequences=1, num_features=2, dtype=float32, lengths=3..3, total_steps=3, memory-mapped)
        """
        values, offsets, allow_nonfinite, allow_empty, source = _storage.load(path, mmap=mmap)
        return cls._trusted(values, offsets, allow_nonfinite=allow_nonfinite, allow_empty=allow_empty,
                            mmap_source=source)

