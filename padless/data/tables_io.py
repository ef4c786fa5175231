"""File side of the long-table reader (private to :mod:`padless.data.tables`): formats and streaming batches.

Owns: format detection by suffix, the magic-byte checks (a CSV named ``.parquet`` is refused before any
parsing), :class:`TableSource`: a streaming reader that yields ``(first_row, RecordBatch)`` pairs of a CSV /
TSV (optionally ``.gz``), Parquet or Arrow IPC / Feather file with bounded memory (every pyarrow call wrapped
by :func:`~padless.data.tables_damaged.reading`), and the numpy <-> Arrow conversions of time values.
Does not own: the damaged-file messages (:mod:`padless.data.tables_damaged`), what the columns mean
(:mod:`padless.data.tables_columns`, :mod:`padless.data.tables_scan`) or the conversion into ragged arrays
(:mod:`padless.data.tables_convert`).

Rows are numbered from 0 in file order, not counting a CSV header; every message says "row N" in this sense.

Example:
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "t.parquet")
    >>> _ = open(p, "w").write("id,x\\n1,2\\n")
    >>> try:
    ...     TableSource(p)
    ... except DataError as e:
    ...     print(str(e).split(": ", 1)[1][:52])
    not a Parquet file: its first bytes look like text (
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from padless.data.tables_damaged import SNIFF_BYTES, describe, reading
from padless.errors import DataError

__all__ = [
    "FORMATS",
    "detect_format",
    "ConversionError",
    "TableSource",
    "as_numpy",
    "from_numpy",
    "type_to_str",
    "type_from_str",
]

#: suffix -> format kind (longest suffixes are tried first)
FORMATS: dict[str, str] = {
    ".csv.gz": "csv", ".tsv.gz": "tsv", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".pq": "parquet",
    ".arrow": "ipc", ".feather": "ipc", ".ipc": "ipc",
}

_CSV_BLOCK = 1 << 18  # bytes per CSV block while streaming
_CSV_PROBE = 1 << 22  # bytes of CSV the column types are guessed from
_KIND_NAMES = {"csv": "CSV", "tsv": "TSV", "parquet": "Parquet", "ipc": "Arrow/Feather"}


def detect_format(path: str | os.PathLike[str]) -> str:
    """Return ``"csv"``, ``"tsv"``, ``"parquet"`` or ``"ipc"`` from the file name, or raise :class:`DataError`.

    Example:
        >>> detect_format("runs/train.csv.gz"), detect_format("t.feather")
        ('csv', 'ipc')
    """
    name = os.fspath(path).lower()
    for suffix, kind in FORMATS.items():
        if name.endswith(suffix):
            return kind
    raise DataError(
        f"{os.fspath(path)}: unknown table format; name the file with one of the suffixes "
        f"{', '.join(FORMATS)} (the suffix decides how it is read)"
    )


class ConversionError(Exception):
    """Internal: a CSV column did not convert to the type guessed from the start of the file."""

    def __init__(self, column: str, value: str, target: str) -> None:
        super().__init__(column, value, target)
        self.column, self.value, self.target = column, value, target

_CSV_CONVERSION = re.compile(r"In CSV column #(\d+): .*CSV conversion error to (\S+?): invalid value '(.*)'", re.S)


def _normalize(arr: Any) -> Any:
    """Decode dictionary columns and make large strings plain strings (so set lookups match types)."""
    import pyarrow as pa

    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _value_type(t: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.string() if pa.types.is_large_string(t) else t


class TableSource:
    """Streaming reader of one long table file with bounded memory.

    Args:
        path: CSV / TSV (``.gz`` too), Parquet or Arrow IPC / Feather file.
        batch_rows: About how many rows each batch holds (CSV: estimated from the bytes per line).

    Attributes:
        kind: ``"csv"``, ``"tsv"``, ``"parquet"`` or ``"ipc"``.
        columns: Column names in file order.
        types: Column name -> ``pyarrow.DataType`` (for CSV: guessed from the first 4 MiB).
        num_rows: Row count from the file's metadata, or None for CSV.

    Raises:
        DataError: Unknown suffix, a missing/empty/damaged file, duplicate column names.
    """

    def __init__(self, path: str | os.PathLike[str], batch_rows: int = 1_000_000) -> None:
        self.path = Path(path)
        self.name = os.fspath(path)
        self.kind = detect_format(path)
        self.kind_name = _KIND_NAMES[self.kind]
        self.batch_rows = int(batch_rows)
        self.overrides: dict[str, Any] = {}  # CSV column types forced by the caller
        if not self.path.is_file():
            raise DataError(f"{self.name}: no such file; check the path")
        if self.path.stat().st_size == 0:
            raise DataError(f"{self.name}: the file is empty (0 bytes); re-create it")
        self._check_magic()
        with reading(self.name, self.kind_name):
            schema, self.num_rows = self._open_schema()
            self.columns: list[str] = list(schema.names)  # (decoding damaged names can fail)
            self.types: dict[str, Any] = {f.name: _value_type(f.type) for f in schema}
        dup = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if dup:
            raise DataError(f"{self.name}: column name {dup[0]!r} appears more than once; give every column its own name")

    # -------------------------------------------------------------------------------- opening
    def _check_magic(self) -> None:
        with open(self.path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
            fh.seek(max(0, self.path.stat().st_size - 8))
            tail = fh.read()
        what = describe(head)
        gz = self.name.lower().endswith(".gz")
        if self.kind in ("csv", "tsv"):
            ok = ("gzip-compressed data",) if gz else ("text (CSV?)", "non-UTF-8 text or binary data")
            if what not in ok:
                raise DataError(
                    f"{self.name}: not a {'gzip-compressed ' if gz else ''}{self.kind_name} text file: its first bytes "
                    f"look like {what}; name it by its real format or re-export it as {self.kind_name}"
                )
        elif self.kind == "parquet":
            if not head.startswith(b"PAR1"):
                raise DataError(
                    f"{self.name}: not a Parquet file: its first bytes look like {what} (no PAR1 magic); name it by its "
                    f"real format (e.g. .csv) or re-export it as Parquet"
                )
            if not tail.endswith(b"PAR1"):
                raise DataError(f"{self.name}: truncated Parquet file (the footer is missing); re-create or re-download it")
        elif what not in ("an Arrow IPC / Feather file", "an Arrow IPC stream", "a Feather v1 file"):
            raise DataError(
                f"{self.name}: not an Arrow IPC / Feather file: its first bytes look like {what}; name it by its real "
                f"format or re-export it with pyarrow.feather.write_feather"
            )
        elif head.startswith(b"ARROW1") and not tail.endswith(b"ARROW1"):
            raise DataError(f"{self.name}: truncated Arrow/Feather file (the footer is missing); re-create or re-download it")
        self._ipc_flavour = {"an Arrow IPC / Feather file": "file", "an Arrow IPC stream": "stream"}.get(what, "v1")

    def _open_schema(self) -> tuple[Any, int | None]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.kind == "parquet":
            meta = pq.ParquetFile(self.name).metadata
            return meta.schema.to_arrow_schema(), int(meta.num_rows)
        if self.kind == "ipc":
            if self._ipc_flavour == "file":
                with pa.OSFile(self.name) as f:
                    return pa.ipc.open_file(f).schema, None
            if self._ipc_flavour == "stream":
                with pa.OSFile(self.name) as f:
                    return pa.ipc.open_stream(f).schema, None
            import pyarrow.feather as pf

            return pf.read_table(self.name, memory_map=False).schema, None
        self._block = self._block_size()
        # column types are guessed from the first _CSV_PROBE bytes, then passed explicitly to every read
        reader = self._csv_reader(None, {}, max(self._block, _CSV_PROBE))
        return reader.schema, None

    def _block_size(self) -> int:
        """CSV block size in bytes for about ``batch_rows`` rows, from the first 256 KiB of (decompressed) text."""
        import pyarrow as pa

        with reading(self.name, self.kind_name):
            with pa.input_stream(self.name, compression="detect") as s:
                head = s.read(1 << 18)
        lines = max(head.count(b"\n"), 1)
        per_row = max(len(head) / lines, 1.0)
        # Small blocks: the streaming reader reads dozens of blocks ahead, so its memory is a multiple of the
        # block size; blocks are joined into batches of ``batch_rows`` rows afterwards.
        return int(min(max(self.batch_rows * per_row * 1.05, 1 << 16), _CSV_BLOCK))

    def _csv_reader(self, columns: Sequence[str] | None, types: dict[str, Any], block: int) -> Any:
        import pyarrow.csv as pcsv

        return pcsv.open_csv(
            self.name,
            read_options=pcsv.ReadOptions(block_size=block),
            parse_options=pcsv.ParseOptions(delimiter="\t" if self.kind == "tsv" else ","),
            convert_options=pcsv.ConvertOptions(
                include_columns=list(columns) if columns is not None else None, column_types=types
            ),
        )

    # -------------------------------------------------------------------------------- batches
    def batches(self, columns: Sequence[str], types: dict[str, Any] | None = None) -> Iterator[tuple[int, Any]]:
        """Yield ``(first_row, RecordBatch)`` with the given columns (dictionary columns decoded).

        Args:
            columns: Names to read (must exist).
            types: CSV only: column -> pyarrow type to convert to (other columns keep the inferred type).

        Raises:
            ConversionError: CSV only: a value did not convert to the column's type.
            DataError: The file is damaged (via :func:`damaged_file_error`).
        """
        import pyarrow as pa

        cols = list(dict.fromkeys(columns))
        row = 0
        for batch in self._raw_batches(cols, types or {}):
            with reading(self.name, self.kind_name):
                arrays = [_normalize(batch.column(c)) for c in cols]
                for a in arrays:
                    if pa.types.is_string(a.type):
                        a.validate(full=True)  # Parquet does not check UTF-8; broken text must not reach .as_py()
                out = pa.RecordBatch.from_arrays(arrays, names=cols)
            for lo in range(0, max(out.num_rows, 1), self.batch_rows):
                part = out.slice(lo, self.batch_rows)
                if part.num_rows:
                    yield row, part
                    row += part.num_rows

    def _raw_batches(self, cols: list[str], types: dict[str, Any]) -> Iterator[Any]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.kind in ("csv", "tsv"):
            full = {c: self.types[c] for c in cols}
            full.update(self.overrides)
            full.update(types)
            yield from self._csv_batches(cols, {c: t for c, t in full.items() if c in cols})
            return
        with reading(self.name, self.kind_name):
            if self.kind == "parquet":
                # buffered reads (not whole column chunks) keep memory near one batch
                pf = pq.ParquetFile(self.name, buffer_size=1 << 20, pre_buffer=False)
                it = pf.iter_batches(batch_size=self.batch_rows, columns=cols, use_threads=True)
            elif self._ipc_flavour == "v1":
                import pyarrow.feather as pfe

                it = iter(pfe.read_table(self.name, columns=cols, memory_map=False).to_batches(self.batch_rows))
            else:
                it = self._ipc_batches(pa.OSFile(self.name), cols)
        while True:
            with reading(self.name, self.kind_name):
                try:
                    batch = next(it)
                except StopIteration:
                    return
                if self.kind == "ipc":
                    batch.validate(full=True)  # corrupted offsets must not reach compute kernels
            yield batch

    def _ipc_batches(self, fh: Any, cols: list[str]) -> Iterator[Any]:
        import pyarrow as pa

        try:
            if self._ipc_flavour == "file":
                r = pa.ipc.open_file(fh)
                idx = [r.schema.get_field_index(c) for c in cols]
                for i in range(r.num_record_batches):
                    yield r.get_batch(i).select(idx)
            else:
                r = pa.ipc.open_stream(fh)
                idx = [r.schema.get_field_index(c) for c in cols]
                for b in r:
                    yield b.select(idx)
        finally:
            fh.close()

    def _csv_batches(self, cols: list[str], types: dict[str, Any]) -> Iterator[Any]:
        import pyarrow as pa

        with reading(self.name, self.kind_name):
            try:
                reader = self._csv_reader(cols, types, self._block)
            except pa.ArrowInvalid as exc:
                self._raise_conversion(exc)
                raise
        pending: list[Any] = []
        rows = 0
        while True:
            with reading(self.name, self.kind_name):
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    batch = None
                except pa.ArrowInvalid as exc:
                    self._raise_conversion(exc)
                    raise
            if batch is not None and batch.num_rows:
                pending.append(batch)
                rows += batch.num_rows
            if pending and (batch is None or rows >= self.batch_rows):
                yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)
                pending, rows = [], 0
            if batch is None:
                return

    def _raise_conversion(self, exc: Exception) -> None:
        m = _CSV_CONVERSION.search(str(exc))
        if m and int(m.group(1)) < len(self.columns):
            raise ConversionError(self.columns[int(m.group(1))], m.group(3), m.group(2)) from exc

    def has_rows(self, column: str) -> bool:
        """True if the table has at least one row (reads at most one batch of ``column``)."""
        if self.num_rows is not None:
            return self.num_rows > 0
        return next(iter(self.batches([column])), None) is not None

    # -------------------------------------------------------------------------------- error paths
    def first_bad_number(self, column: str) -> tuple[int, str]:
        """Row and text of the first value of ``column`` that is not a number (rescan as text; error path only)."""
        import pyarrow as pa

        nulls = _CSV_NULLS
        for row, batch in self.batches([column], {column: pa.string()}):
            for k, v in enumerate(batch.column(0).to_pylist()):
                if v is None or v in nulls:
                    continue
                try:
                    float(v)
                except ValueError:
                    return row + k, v
        return -1, ""

_CSV_NULLS = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "N/A", "NA",
     "NULL", "NaN", "n/a", "nan", "null"]
)


def as_numpy(arr: Any) -> np.ndarray:
    """A pyarrow array as numpy (nulls become NaN for numbers); temporal types as their int64 counts."""
    import pyarrow as pa

    t = arr.type
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_date64(t) or pa.types.is_time64(t):
        arr = arr.cast(pa.int64())
    elif pa.types.is_date32(t) or pa.types.is_time32(t):
        arr = arr.cast(pa.int32()).cast(pa.int64())
    return arr.to_numpy(zero_copy_only=False)


def from_numpy(values: np.ndarray, arrow_type: Any = None) -> Any:
    """Inverse of :func:`as_numpy`: int64 counts back to a temporal ``arrow_type`` (or a plain array)."""
    import pyarrow as pa

    if arrow_type is None or not pa.types.is_temporal(arrow_type):
        return pa.array(values) if arrow_type is None else pa.array(values).cast(arrow_type)
    if pa.types.is_date32(arrow_type) or pa.types.is_time32(arrow_type):
        return pa.array(np.asarray(values, dtype=np.int32)).cast(arrow_type)
    return pa.array(np.asarray(values, dtype=np.int64)).cast(arrow_type)


def type_to_str(t: Any) -> str | None:
    """A pyarrow type as text for JSON (``"int64"``, ``"timestamp[ns, tz=UTC]"``...)."""
    return None if t is None else str(t)


def type_from_str(text: str | None) -> Any:
    """Inverse of :func:`type_to_str` for the types a time column can have."""
    import re as _re

    import pyarrow as pa

    if text is None:
        return None
    m = _re.fullmatch(r"(timestamp|duration|time32|time64)\[(\w+)(?:, tz=(.+))?\]", text)
    if m:
        kind, unit, tz = m.groups()
        return pa.timestamp(unit, tz) if kind == "timestamp" else getattr(pa, kind)(unit)
    simple = {"date32[day]": pa.date32(), "date64[ms]": pa.date64(), "double": pa.float64(), "float": pa.float32(),
              "halffloat": pa.float16()}
    if text in simple:
        return simple[text]
    try:
        return pa.type_for_alias(text)
    except (ValueError, KeyError) as exc:
        raise DataError(f"unknown time type {text!r} in the schema; re-create the schema") from exc
