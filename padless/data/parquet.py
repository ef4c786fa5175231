"""Parquet files of variable-length sequences (optional dependency ``pyarrow``).

Owns: :func:`write_parquet` and :func:`read_parquet`. Each row of the file is one sequence stored in a
``list<fixed_size_list<float, F>>`` column (one inner list of F features per time step), optionally with
a label column; pandas reads it as an object column of arrays. On reading, ``list<list<float>>`` (what
pandas writes for nested lists) and ``list<float>`` (F = 1) columns are accepted too. Does not own: the
in-memory container (:mod:`padless.data.ragged`) or the ``.npy`` directory format
(:meth:`RaggedArray.save`). ``pyarrow`` is imported only when a function here is called.

Example:
    >>> import tempfile, os, numpy as np
    >>> from padless.data.ragged import RaggedArray
    >>> path = os.path.join(tempfile.mkdtemp(), "seqs.parquet")
    >>> ra = RaggedArray.from_list([np.ones((2, 3), np.float32), np.zeros((4, 3), np.float32)])
    >>> write_parquet(ra, path, labels=[0, 1])
    >>> x, y = read_parquet(path, label_column="y")
    >>> x.lengths.tolist(), y.tolist()
    ([2, 4], [0, 1])
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from padless.data.ragged import RaggedArray
from padless.errors import DataError, PadlessError, one_line

__all__ = ["write_parquet", "read_parquet"]


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise PadlessError(
            "reading and writing Parquet needs pyarrow, which is not installed; run: pip install 'padless[parquet]'"
        ) from exc
    return pa, pq


def write_parquet(
    ra: RaggedArray,
    path: str | os.PathLike[str],
    labels: Any = None,
    column: str = "x",
    label_column: str = "y",
) -> None:
    """Write one row per sequence to a Parquet file.

    Args:
        ra: The sequences.
        path: File to write (replaced if it exists, like any file writer).
        labels: Optional 1-D array-like with one label per sequence.
        column: Name of the sequence column.
        label_column: Name of the label column (used only with ``labels``).

    Raises:
        DataError: ``labels`` has the wrong length or shape, or the column names clash.
        PadlessError: pyarrow is not installed.

    Example:
        See the module docstring.
    """
    pa, pq = _pyarrow()
    if not isinstance(ra, RaggedArray):
        raise DataError(
            f"write_parquet needs a RaggedArray, got {type(ra).__name__}; wrap it with RaggedArray.from_list"
        )
    values = np.ascontiguousarray(ra.values).reshape(-1)  # (sum T * F,)
    steps = pa.FixedSizeListArray.from_arrays(pa.array(values), ra.num_features)  # (sum T,) of F floats
    large = ra.total_steps >= 2**31 - 1
    list_type = pa.LargeListArray if large else pa.ListArray
    offsets = pa.array(ra.offsets, type=pa.int64() if large else pa.int32())  # (N+1,)
    columns = {column: list_type.from_arrays(offsets, steps)}
    if labels is not None:
        lab = np.asarray(labels)
        if lab.ndim != 1 or lab.shape[0] != len(ra):
            raise DataError(
                f"labels has shape {lab.shape} but there are {len(ra)} sequences; pass one label per sequence"
            )
        if label_column == column:
            raise DataError(f"label_column and column are both {column!r}; give them different names")
        columns[label_column] = pa.array(lab)
    pq.write_table(pa.table(columns), os.fspath(path))


def _row_of(step_offsets: np.ndarray, step: int) -> int:
    return int(np.searchsorted(step_offsets, step, side="right") - 1)


def read_parquet(
    path: str | os.PathLike[str], column: str = "x", label_column: str | None = None
) -> RaggedArray | tuple[RaggedArray, np.ndarray]:
    """Read sequences (and optionally labels) from a Parquet file.

    Args:
        path: The file.
        column: Sequence column: ``list<fixed_size_list<float, F>>``, ``list<list<float>>`` or
            ``list<float>`` (F = 1); large lists are accepted too.
        label_column: Also return this column as a numpy array.

    Returns:
        A :class:`RaggedArray`, or ``(RaggedArray, labels)`` when ``label_column`` is given.

    Raises:
        DataError: A missing column, an unsupported column type, nulls (the message names the row),
            steps with differing feature counts, or anything :class:`RaggedArray` rejects.
        PadlessError: pyarrow is not installed.

    Example:
        See the module docstring.
    """
    pa, pq = _pyarrow()
    wanted = [column] + ([label_column] if label_column is not None else [])
    try:
        schema = pq.read_schema(os.fspath(path))
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read Parquet file {os.fspath(path)}: {one_line(exc)}") from exc
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise DataError(f"{os.fspath(path)} has no column {missing[0]!r}; its columns are {schema.names}")
    try:
        table = pq.read_table(os.fspath(path), columns=wanted)
    except (OSError, pa.ArrowException) as exc:  # truncated or corrupted pages
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read Parquet file {os.fspath(path)} (damaged or truncated?): {first}") from None
    seqs = table.column(column).combine_chunks()
    if isinstance(seqs, pa.ChunkedArray):  # pyarrow may return a ChunkedArray for nested types
        seqs = pa.concat_arrays(seqs.chunks) if seqs.num_chunks else pa.array([], type=seqs.type)
    if not (pa.types.is_list(seqs.type) or pa.types.is_large_list(seqs.type)):
        raise DataError(f"column {column!r} has type {seqs.type}; expected a list of time steps per row")
    if seqs.null_count:
        row = int(np.flatnonzero(seqs.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"row {row} of column {column!r} is null; drop or fill that row before reading")
    outer = seqs.offsets.to_numpy().astype(np.int64)
    outer = outer - outer[0]  # (N+1,) step offsets (the array may be a slice)
    steps = seqs.flatten()  # (sum T,) one entry per time step
    inner_type = steps.type
    if pa.types.is_fixed_size_list(inner_type) or pa.types.is_list(inner_type) or pa.types.is_large_list(inner_type):
        if steps.null_count:
            step = int(np.flatnonzero(steps.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"row {_row_of(outer, step)} of column {column!r} has a null time step; fill or drop it")
        flat = steps.flatten()  # (sum T * F,)
        if pa.types.is_fixed_size_list(inner_type):
            num_features = inner_type.list_size
        else:
            widths = np.diff(steps.offsets.to_numpy().astype(np.int64))  # (sum T,)
            num_features = int(widths[0]) if widths.size else 1
            bad = np.flatnonzero(widths != num_features)
            if bad.size:
                raise DataError(
                    f"row {_row_of(outer, int(bad[0]))} of column {column!r} has a time step with "
                    f"{int(widths[bad[0]])} features, but the first step has {num_features}; every step needs the "
                    f"same feature count"
                )
    else:
        flat, num_features = steps, 1
    if not (pa.types.is_floating(flat.type) or pa.types.is_integer(flat.type)):
        raise DataError(f"column {column!r} holds {flat.type} values; expected numbers")
    if flat.null_count:
        pos = int(np.flatnonzero(flat.is_null().to_numpy(zero_copy_only=False))[0])
        row = _row_of(outer, pos // max(num_features, 1))
        raise DataError(f"row {row} of column {column!r} has a null value; fill or drop it")
    values = flat.to_numpy(zero_copy_only=False).reshape(-1, num_features)  # (sum T, F)
    if int(outer[-1]) != values.shape[0]:
        raise DataError(
            f"column {column!r} is inconsistent: {int(outer[-1])} steps but {values.shape[0]} rows of values"
        )
    ra = RaggedArray(values, outer)
    if label_column is None:
        return ra
    labels = table.column(label_column)
    if labels.null_count:
        row = int(np.flatnonzero(labels.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"row {row} of label column {label_column!r} is null; drop or fill that row")
    return ra, labels.to_numpy()
