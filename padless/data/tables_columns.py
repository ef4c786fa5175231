"""Column roles of the long-table reader (private to :mod:`padless.data.tables`).

Owns: :class:`Columns` (id, time, features, target, forecast columns) and :func:`resolve_columns` (names
checked against the file with "did you mean" hints, default features, overlapping roles refused), the
widening of CSV column types guessed from the start of the file (:func:`handle_conversion`,
:func:`retrying`), the id column checks (:func:`id_array`), :class:`Interner` (distinct values in
first-appearance order -> codes 0, 1, 2, ...; O(distinct) memory) and the value formatting of messages.
Does not own: reading files (:mod:`padless.data.tables_io`) or the passes over them
(:mod:`padless.data.tables_scan`, :mod:`padless.data.tables_convert`).

Default features: every integer, float, decimal or bool column that is not id, time or target (for CSV the
types are guessed from the first 4 MiB; a feature column is then always read as float64).

Example:
    >>> did_you_mean("tme", ["id", "time"])
    " (did you mean 'time'?)"
    >>> fmt_ids(["a", "b", "c", "d", "e"])
    "'a', 'b', 'c' and 2 more"
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from padless.data.tables_io import ConversionError, TableSource
from padless.errors import DataError

__all__ = [
    "Columns", "resolve_columns", "handle_conversion", "retrying", "Interner", "lookup", "id_array",
    "value_kind", "is_numeric", "fmt_value", "fmt_ids", "did_you_mean", "missing_column",
]


def did_you_mean(name: str, names: Sequence[str]) -> str:
    """``" (did you mean 'x'?)"`` when a close match exists, else ``""``.

    Example:
        >>> did_you_mean("tme", ["id", "time"])
        " (did you mean 'time'?)"
    """
    lower = {n.lower(): n for n in names}
    if name.lower() in lower:
        return f" (did you mean {lower[name.lower()]!r}?)"
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def fmt_value(v: Any) -> str:
    """A value for a message: text quoted, numbers plain."""
    if isinstance(v, (np.generic,)):
        v = v.item()
    return repr(v) if isinstance(v, str) else str(v)


def fmt_ids(values: Sequence[Any], k: int = 3) -> str:
    """``'a', 'b', 'c' and 4 more`` for the first ``k`` of ``values``."""
    head = ", ".join(fmt_value(v) for v in list(values)[:k])
    return head + (f" and {len(values) - k} more" if len(values) > k else "")


def value_kind(t: Any) -> str | None:
    """``"bool"``, ``"int"``, ``"float"`` (floats, decimals), ``"str"`` or None for the pyarrow type ``t``."""
    import pyarrow as pa

    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "str"
    return None


def is_numeric(t: Any) -> bool:
    """True for the column types taken as features by default (ints, floats, decimals, bools)."""
    return value_kind(t) in ("int", "float", "bool")


@dataclass
class Columns:
    """Column roles resolved against one file."""

    id: str
    time: str | None
    features: list[str]
    target: str | None  # a per-row target column of this file (None with labels=, forecast or no target)
    forecast: list[int] = field(default_factory=list)  # feature indices whose next values are the targets

    def read(self, with_features: bool, with_target: bool) -> list[str]:
        cols = [self.id] + ([self.time] if self.time else [])
        if with_features:
            cols += self.features
        if with_target and self.target:
            cols.append(self.target)
        return list(dict.fromkeys(cols))


def missing_column(src: TableSource, what: str, name: str) -> DataError:
    """The one-line error for a column the table does not have (with the closest names)."""
    return DataError(
        f"{src.name} has no {what} column {name!r}{did_you_mean(name, src.columns)}; its columns are "
        f"{', '.join(src.columns)}"
    )


def resolve_columns(
    src: TableSource,
    *,
    id: str,
    time: str | None,
    features: Sequence[str] | None,
    target: str | None,
    exclude: Sequence[str] = (),
    forecast: bool = False,
) -> Columns:
    """Check the names against ``src`` and pick the default features.

    Args:
        src: The open table.
        id, time, features, target: As given to ``read_long_table`` (``target`` only when it is a column of this
            file; pass a labels table's target name in ``exclude`` instead).
        exclude: Names never taken as default features.
        forecast: The targets are the next values of the features; ``target`` (if given) must be a feature.

    Raises:
        DataError: Unknown names (with the columns that exist), roles that overlap, no numeric feature,
            a feature column that is not numeric (Parquet / Arrow: the message names the first bad row).
    """
    if id not in src.columns:
        raise missing_column(src, "id", id)
    if time is not None:
        if time not in src.columns:
            raise missing_column(src, "time", time)
        if time == id:
            raise DataError(f"id and time are both {id!r}; the time column must be another column")
    if target is not None and target not in src.columns:
        raise missing_column(src, "target", target)
    if target is not None and target in (id, time):
        raise DataError(f"target {target!r} is also the {'id' if target == id else 'time'} column; pick another target")
    if features is None:
        skip = {id, time, *exclude} | ({target} if target and not forecast else set())
        feats = [c for c in src.columns if c not in skip and is_numeric(src.types[c])]
        if not feats:
            if not src.has_rows(id):
                raise DataError(f"{src.name}: the table has no rows; nothing to read")
            raise DataError(
                f"{src.name} has no numeric feature column besides id/time/target; its columns are "
                f"{', '.join(f'{c} ({src.types[c]})' for c in src.columns)}; pass features=[...]"
            )
    else:
        feats = [features] if isinstance(features, str) else list(features)
        if not feats:
            raise DataError("features is empty; name at least one feature column, or leave features unset")
        for c in feats:
            if c not in src.columns:
                raise missing_column(src, "feature", c)
            if feats.count(c) > 1:
                raise DataError(f"feature {c!r} is listed twice; list each feature once")
            if c in (id, time):
                raise DataError(f"{c!r} is the {'id' if c == id else 'time'} column and cannot also be a feature")
            if c == target and not forecast:
                raise DataError(
                    f"target {c!r} is also listed as a feature; remove it from features (a model must not see its own target)"
                )
            if c in exclude:
                raise DataError(f"{c!r} is the labels' target and cannot also be a feature; remove it from features")
        if src.kind in ("csv", "tsv"):
            pass  # converted to float64 below; a non-number raises with its row while reading
        else:
            for c in feats:
                if not is_numeric(src.types[c]):
                    row, val = src.first_bad_number(c)
                    where = f" (e.g. {val!r} at row {row})" if row >= 0 else ""
                    raise DataError(
                        f"{src.name}: feature {c!r} holds {src.types[c]} values{where}; features must be numbers: "
                        f"convert or drop that column"
                    )
    if src.kind in ("csv", "tsv"):
        import pyarrow as pa

        for c in feats:  # the guess from the start of the file (int, null, text) must not decide a feature's type
            src.overrides[c] = pa.float64()
    idx: list[int] = []
    if forecast:
        if target is not None:
            if target not in feats:
                raise DataError(
                    f"forecast target {target!r} is not one of the features {feats}; add it to features (its past "
                    f"values are inputs) or leave target unset to forecast every feature"
                )
            idx = [feats.index(target)]
        else:
            idx = list(range(len(feats)))
    return Columns(id=id, time=time, features=feats, target=None if forecast else target, forecast=idx)


def handle_conversion(src: TableSource, exc: ConversionError, cols: Columns) -> None:
    """A CSV value did not fit the type guessed from the start of the file: widen id/target, or raise for features/time."""
    import pyarrow as pa

    c = exc.column
    current = src.overrides.get(c, src.types.get(c))
    numeric = _parses_as_float(exc.value)
    if c == cols.id or (c == cols.target and not (pa.types.is_integer(current) and numeric)):
        if pa.types.is_string(current):
            raise DataError(f"{src.name}: column {c!r} could not be read ({exc.value!r}); check the file")
        src.overrides[c] = pa.string()
        return
    if c in (cols.target, cols.time) and pa.types.is_integer(current) and numeric:
        src.overrides[c] = pa.float64()
        return
    row, val = src.first_bad_number(c)
    role = "time" if c == cols.time else "feature"
    need = "numbers or timestamps" if role == "time" else "numbers"
    raise DataError(
        f"{src.name}: {role} {c!r} has the non-numeric value {val or exc.value!r} at row {row}; {role} values must be "
        f"{need}: fix that row or drop the column"
    )


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def retrying(src: TableSource, cols: Columns, fn: Callable[[], Any]) -> Any:
    """Run a pass, restarting it after a CSV column type was widened."""
    for _ in range(8):
        try:
            return fn()
        except ConversionError as exc:
            handle_conversion(src, exc, cols)
    raise DataError(f"{src.name}: column types keep changing while reading; check the file")


class Interner:
    """Distinct values of a column in first-appearance order, mapped to codes 0, 1, 2, ... (O(distinct))."""

    def __init__(self) -> None:
        self._chunks: list[Any] = []
        self._all: Any = None
        self.size = 0

    def values(self) -> Any:
        import pyarrow as pa

        if self._all is None or len(self._chunks) > 1:
            self._all = pa.concat_arrays(self._chunks) if self._chunks else None
            self._chunks = [self._all] if self._all is not None else []
        return self._all

    def intern(self, arr: Any) -> np.ndarray:
        """Codes (B,) int64 for ``arr`` (no nulls), adding unseen values in order of appearance."""
        import pyarrow.compute as pc

        enc = pc.dictionary_encode(arr)
        uniq, local = enc.dictionary, enc.indices.to_numpy(zero_copy_only=False)
        if self.size:
            lut = pc.index_in(uniq, value_set=self.values()).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            lut = np.full(len(uniq), -1, dtype=np.int64)
        new = np.flatnonzero(lut < 0)
        if new.size:
            lut[new] = np.arange(self.size, self.size + new.size)
            self._chunks.append(uniq.take(new))
            self._all = None
            self.size += int(new.size)
        return lut[local]


def lookup(value_set: Any, arr: Any) -> np.ndarray:
    """Positions (B,) int64 of ``arr`` in ``value_set`` (-1 where absent)."""
    import pyarrow.compute as pc

    return pc.index_in(arr, value_set=value_set).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def id_array(src: TableSource, name: str, arr: Any, row0: int) -> Any:
    """The id column of one batch as int64 or string, or a DataError naming the bad row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = value_kind(arr.type)
    if arr.null_count:
        row = row0 + int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{src.name}: id {name!r} is empty at row {row}; every row needs an id: fill or drop that row")
    if kind == "int":
        return arr.cast(pa.int64())
    if kind == "str":
        empty = np.flatnonzero(pc.equal(arr, "").to_numpy(zero_copy_only=False))
        if empty.size:
            raise DataError(f"{src.name}: id {name!r} is empty at row {row0 + int(empty[0])}; every row needs an id")
        return arr
    if kind == "float":
        v = arr.to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(~np.isfinite(v) | (v != np.round(v)))
        if bad.size:
            raise DataError(
                f"{src.name}: id {name!r} has the non-integer value {v[bad[0]]} at row {row0 + int(bad[0])}; ids must be "
                f"integers or text"
            )
        return pa.array(v.astype(np.int64))
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        raise DataError(
            f"{src.name}: id column {name!r} holds bytes that are not UTF-8 text; the file is damaged or in another "
            f"encoding: re-save it as UTF-8"
        )
    raise DataError(f"{src.name}: id column {name!r} has type {arr.type}; ids must be integers or text")
