"""Writing predictions back as a long table: :func:`write_long_predictions`.

Owns: turning per-step predictions (one (T_i, K) block per sequence) or per-sequence predictions (N, K)
into a CSV / TSV (``.gz`` too), Parquet or Arrow / Feather file with an id column, a time column (per-step
only: the times read with the table, or the step numbers 0..T_i-1) and K prediction columns, written in
chunks of about ``batch_rows`` rows to a temporary sibling file that is renamed into place (readers never
see a half-written file; a failed write leaves nothing behind). Does not own: reading tables
(:mod:`padless.data.tables`).

Example:
    >>> import os, tempfile, numpy as np
    >>> from padless.data.ragged import RaggedArray
    >>> p = os.path.join(tempfile.mkdtemp(), "pred.csv")
    >>> preds = RaggedArray.from_list([np.array([[0.5], [0.7]]), np.array([[0.1]])])
    >>> _ = write_long_predictions(p, np.array([7, 9]), None, preds, "rul", time_name="step")
    >>> print(open(p).read().replace('"', ''))
    id,step,rul
    7,0,0.5
    7,1,0.7
    9,0,0.1
    <BLANKLINE>
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from padless.data.ragged import RaggedArray
from padless.data.tables_convert import chunks
from padless.data.tables_io import detect_format, from_numpy, type_from_str
from padless.errors import DataError

__all__ = ["write_long_predictions"]

Rows = Callable[[int, int], np.ndarray]


def _blocks(x: Any, n: int, what: str) -> tuple[np.ndarray, Rows] | None:
    """``(offsets (n+1,), rows(s0, s1) -> (R, K))`` for a RaggedArray or a list of (T_i[, K]) arrays."""
    if x is None:
        return None
    if isinstance(x, RaggedArray):
        if len(x) != n:
            raise DataError(f"{what} has {len(x)} sequences but there are {n} ids; pass one per id")
        off = x.offsets
        return off, lambda a, b: np.asarray(x.values[off[a] : off[b]]).reshape(int(off[b] - off[a]), -1)
    items = [np.asarray(s) for s in x]
    if len(items) != n:
        raise DataError(f"{what} has {len(items)} sequences but there are {n} ids; pass one per id")
    items = [s.reshape(len(s), -1) if s.ndim != 2 else s for s in items]
    if len({s.shape[1] for s in items}) > 1:
        raise DataError(f"the {what} blocks have different widths {sorted({s.shape[1] for s in items})}; they must match")
    off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(s) for s in items], out=off[1:])
    return off, lambda a, b: np.concatenate(items[a:b], axis=0)


def write_long_predictions(
    path: str | os.PathLike[str],
    ids: Any,
    times: Any,
    preds: Any,
    columns: str | Sequence[str] | None = None,
    *,
    id_name: str = "id",
    time_name: str = "time",
    time_type: Any = None,
    labels: Sequence[str] | None = None,
    batch_rows: int = 1_000_000,
) -> Path:
    """Write predictions as a long table (format by suffix, like :func:`~padless.data.tables.read_long_table`).

    Args:
        path: Output file (``.csv``, ``.csv.gz``, ``.tsv``, ``.parquet``/``.pq``, ``.arrow``/``.feather``/``.ipc``);
            an existing file is replaced atomically.
        ids: (N,) sequence ids (``LongTable.ids``).
        times: Per-step only: a RaggedArray / list of (T_i,) times (``LongTable.times``), or None to write the
            step numbers 0..T_i-1. Ignored for per-sequence predictions.
        preds: Per-step: a RaggedArray or a list of (T_i[, K]) arrays; per-sequence: an (N,) or (N, K) ndarray.
        columns: Names of the K prediction columns (a str when K = 1); default ``prediction`` or
            ``prediction_0..K-1``.
        id_name: Name of the id column.
        time_name: Name of the time (or step) column.
        time_type: pyarrow type (or its text, e.g. ``"timestamp[ns]"``) to restore int64 time counts to
            (``LongTable.schema.time_type``).
        labels: Class names, one per prediction column (the columns are class probabilities): adds a first
            column ``prediction`` holding the most probable class's name.
        batch_rows: Rows per written chunk.

    Returns:
        The path written.

    Raises:
        DataError: Counts or lengths that do not match, duplicate column names, an unknown suffix.

    Example:
        See the module docstring.
    """
    import pyarrow as pa

    target = Path(path)
    kind = detect_format(target)
    idv = np.asarray(ids)
    if idv.ndim != 1:
        raise DataError(f"ids must be 1-D (one per sequence), got shape {idv.shape}")
    n = idv.shape[0]
    if isinstance(preds, np.ndarray) or (not isinstance(preds, (RaggedArray, list, tuple))):
        arr = np.asarray(preds)
        arr = arr.reshape(arr.shape[0], -1) if arr.ndim >= 1 else arr.reshape(1, 1)
        if arr.shape[0] != n:
            raise DataError(f"got {arr.shape[0]} per-sequence predictions for {n} ids; pass one row per id")
        offsets, rows, tb, per_step = np.arange(n + 1, dtype=np.int64), (lambda a, b: arr[a:b]), None, False
    else:
        offsets, rows = _blocks(preds, n, "preds")  # type: ignore[misc]
        tb, per_step = _blocks(times, n, "times"), True
        if tb is not None and not np.array_equal(tb[0], offsets):
            i = int(np.flatnonzero(np.diff(tb[0]) != np.diff(offsets))[0])
            raise DataError(
                f"sequence {i} has {int(offsets[i + 1] - offsets[i])} predictions but {int(tb[0][i + 1] - tb[0][i])} "
                f"times; pass the times of the table the predictions were made for"
            )
    width = rows(0, min(1, n)).shape[1] if n else 1
    names = [columns] if isinstance(columns, str) else list(columns) if columns is not None else (
        ["prediction"] if width == 1 else [f"prediction_{k}" for k in range(width)])
    if len(names) != width:
        raise DataError(f"got {len(names)} column names for {width} prediction columns; name each column once")
    if labels is not None and len(labels) != width:
        raise DataError(f"got {len(labels)} class names for {width} probability columns; give one name per class")
    header = [id_name] + ([time_name] if per_step else []) + (["prediction"] if labels is not None else []) + names
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise DataError(f"column name {dup[0]!r} is used twice in {header}; rename the prediction columns")
    ttype = type_from_str(time_type) if isinstance(time_type, str) else time_type
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    writer: Any = None
    try:
        for s0, s1 in chunks(offsets, batch_rows):
            lens = np.diff(offsets[s0 : s1 + 1])
            cols: dict[str, Any] = {id_name: pa.array(np.repeat(idv[s0:s1], lens))}
            if per_step:
                if tb is not None:
                    cols[time_name] = from_numpy(tb[1](s0, s1)[:, 0], ttype)
                else:
                    cols[time_name] = pa.array(np.arange(int(lens.sum())) - np.repeat(offsets[s0:s1] - offsets[s0], lens))
            block = rows(s0, s1)  # (R, K)
            if labels is not None:
                cols["prediction"] = pa.array(np.asarray(list(labels), dtype=object)[np.argmax(block, axis=1)])
            for k, name in enumerate(names):
                cols[name] = pa.array(block[:, k])
            table = pa.table(cols)
            if writer is None:
                writer = _open(kind, tmp, table.schema, target.name.lower().endswith(".gz"))
            writer.write_table(table) if kind == "parquet" else writer.write(table)
        if writer is None:
            raise DataError("there are no predictions to write (0 ids)")
        writer.close()
        writer = None
        os.replace(tmp, target)
    finally:
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - already failing; the temp file is removed below
                pass
        tmp.unlink(missing_ok=True)
    return target


class _Closing:
    """A writer plus the stream under it, closed together."""

    def __init__(self, writer: Any, sink: Any) -> None:
        self.writer, self.sink = writer, sink

    def write(self, table: Any) -> None:
        self.writer.write(table)

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.sink.close()


def _open(kind: str, tmp: Path, schema: Any, gz: bool) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if kind == "parquet":
        return pq.ParquetWriter(os.fspath(tmp), schema)
    sink = pa.CompressedOutputStream(os.fspath(tmp), "gzip") if gz else pa.OSFile(os.fspath(tmp), "wb")
    if kind == "ipc":
        return _Closing(pa.ipc.new_file(sink, schema), sink)
    opts = pcsv.WriteOptions(delimiter="\t" if kind == "tsv" else ",")
    return _Closing(pcsv.CSVWriter(sink, schema, write_options=opts), sink)
