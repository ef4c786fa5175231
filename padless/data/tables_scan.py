"""Pass 1 of the long-table reader (private to :mod:`padless.data.tables`): what the columns mean.

Owns: resolving column roles (id, time, features, target) with "did you mean" errors, the first pass over
the file (sequence ids in first-appearance order, rows per id, whether rows are already in final order,
duplicate / non-contiguous rows, null ids, times and targets, whether the target is constant within every
id), the second ``labels`` table, task inference and class encoding (:class:`ClassMap`). Memory is
O(number of ids + number of distinct class values); nothing is kept per row. Does not own: file formats
(:mod:`padless.data.tables_io`) or writing values (:mod:`padless.data.tables_convert`).

Task inference (``task="auto"``): a text or bool target is a class label; an integer target is a class
label when it has at most ``max(20, ceil(5% of the number of sequences))`` distinct values; anything else
(floats, many integers) is regression. A target constant within every id is per sequence (``classify`` /
``regress``), otherwise per step (``tag`` / per-step ``regress``). Classes are sorted naturally (numbers
numerically, text alphabetically, False before True) and encoded 0..K-1.

Example:
    >>> decide_task("auto", None, "int", 3, 100, varies=False)
    ('classify', False)
    >>> decide_task("auto", None, "float", None, 100, varies=True)
    ('regress', True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from padless.data.tables_io import ConversionError, TableSource, as_numpy, did_you_mean
from padless.errors import ConfigError, DataError

__all__ = [
    "MAX_CLASSES", "TASKS", "Columns", "ClassMap", "Interner", "ScanResult", "resolve_columns", "scan",
    "decide_task", "read_labels", "fmt_value", "fmt_ids", "handle_conversion", "locate_rows",
]

MAX_CLASSES = 100_000  #: more distinct target values than this cannot be class labels
TASKS = ("auto", "classify", "regress", "tag", "forecast")


def fmt_value(v: Any) -> str:
    """A value for a message: text quoted, numbers plain."""
    if isinstance(v, (np.generic,)):
        v = v.item()
    return repr(v) if isinstance(v, str) else str(v)


def fmt_ids(values: Sequence[Any], k: int = 3) -> str:
    """``'a', 'b', 'c' and 4 more`` for the first ``k`` of ``values``."""
    head = ", ".join(fmt_value(v) for v in list(values)[:k])
    return head + (f" and {len(values) - k} more" if len(values) > k else "")


def _kind(t: Any) -> str | None:
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
    return _kind(t) in ("int", "float", "bool")


# ------------------------------------------------------------------------------------------ columns
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


def _missing(src: TableSource, what: str, name: str) -> DataError:
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
        raise _missing(src, "id", id)
    if time is not None:
        if time not in src.columns:
            raise _missing(src, "time", time)
        if time == id:
            raise DataError(f"id and time are both {id!r}; the time column must be another column")
    if target is not None and target not in src.columns:
        raise _missing(src, "target", target)
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
                raise _missing(src, "feature", c)
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


# ------------------------------------------------------------------------------------------ interning
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

    kind = _kind(arr.type)
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


# ------------------------------------------------------------------------------------------ classes
@dataclass
class ClassMap:
    """Class names in natural order and the encoding of raw target values to 0..K-1.

    Attributes:
        kind: ``"int"``, ``"float"``, ``"bool"`` or ``"str"`` (how to turn ``names`` back into values).
        names: Class names, ``str(value)`` of each class in natural order.
    """

    kind: str
    names: list[str]

    @classmethod
    def from_values(cls, kind: str, values: Any) -> ClassMap:
        vals = values.to_pylist() if hasattr(values, "to_pylist") else list(values)
        uniq = sorted(set(vals))
        if kind == "float":
            return cls(kind, [repr(float(v)) for v in uniq])
        return cls(kind, [str(v) for v in uniq])

    def typed(self) -> list[Any]:
        conv: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "bool": lambda s: s == "True", "str": str}
        return [conv[self.kind](n) for n in self.names]

    def encode(self, arr: Any) -> np.ndarray:
        """Codes (B,) int64 of the pyarrow array ``arr`` (-1 for values that are not a class)."""
        import pyarrow as pa

        vals = self.typed()
        kind = _kind(arr.type)
        if self.kind == "str":
            if kind != "str":
                arr = arr.cast(pa.string())
            return lookup(pa.array(vals, type=pa.string()), arr)
        if kind == "str":
            return np.full(len(arr), -1, dtype=np.int64)
        exact = self.kind in ("int", "bool") and kind in ("int", "bool")
        dtype = np.int64 if exact else np.float64
        table = np.asarray(vals, dtype=dtype)  # sorted ascending
        x = arr.cast(pa.int64() if exact else pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        pos = np.clip(np.searchsorted(table, x), 0, max(len(table) - 1, 0))
        ok = table[pos] == x if len(table) else np.zeros(len(x), bool)
        return np.where(ok, pos, -1).astype(np.int64)


def is_classy(kind: str, n_distinct: int | None, n_seq: int) -> bool:
    """The auto rule: text/bool, or integers with at most max(20, ceil(5% of sequences)) distinct values."""
    if kind in ("str", "bool"):
        return True
    return kind == "int" and n_distinct is not None and n_distinct <= max(20, math.ceil(0.05 * n_seq))


def decide_task(
    task: str, per_step: bool | None, kind: str, n_distinct: int | None, n_seq: int, *, varies: bool
) -> tuple[str, bool]:
    """``(task, per_step)`` from the request and what pass 1 saw (see the module docstring).

    Raises:
        ConfigError: Contradictory ``task`` / ``per_step``.
        DataError: Text targets with ``task="regress"``.
    """
    if task == "classify" and per_step:
        raise ConfigError("task='classify' is one label per sequence; for one label per step pass task='tag'")
    if task == "tag" and per_step is False:
        raise ConfigError("task='tag' is one label per step; for one label per sequence pass task='classify'")
    if task == "regress" and kind == "str":
        raise DataError("the target holds text, but task='regress' needs numbers; pass task='classify' or 'tag'")
    step = varies if per_step is None else bool(per_step)
    if task == "auto":
        task = ("tag" if step else "classify") if is_classy(kind, n_distinct, n_seq) else "regress"
    elif task == "classify":
        step = False
    elif task == "tag":
        step = True
    return task, step


# ------------------------------------------------------------------------------------------ pass 1
@dataclass
class ScanResult:
    """What pass 1 learned (O(number of ids))."""

    ids: Any  # pa.Array (N,) int64 or string, first-appearance order
    counts: np.ndarray  # (N,) int64 rows per id
    ordered: bool  # file order is already the final order
    time_type: Any = None  # pa.DataType of the time column
    kind: str | None = None  # target kind
    first: Any = None  # pa.Array (N,) first target value of every id
    varies: bool = False  # the target changes within some id
    change: tuple[int, int, Any, Any] | None = None  # (seq, row, value, first value) of the first change
    distinct: Any = None  # pa.Array of distinct target values, or None when too many / not tracked


def _grow(a: np.ndarray, n: int, fill: Any) -> np.ndarray:
    if n <= a.shape[0]:
        return a
    out = np.full(max(n, 2 * a.shape[0]), fill, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


def scan(src: TableSource, cols: Columns, *, track: str = "discrete", bar: Any = None) -> ScanResult:
    """Pass 1 over ``src`` (see the module docstring). Restarts itself when a CSV column type is widened.

    ``track`` says which targets' distinct values to collect (for classes): ``"none"``, ``"discrete"``
    (int / bool / text) or ``"all"`` (floats too).
    """

    def run() -> ScanResult:
        if bar is not None:
            bar.reset()
        return _scan_once(src, cols, track, bar)

    return retrying(src, cols, run)


def _scan_once(src: TableSource, cols: Columns, track: str, bar: Any) -> ScanResult:
    import pyarrow as pa

    ids, targets = Interner(), Interner()
    counts = np.zeros(1024, dtype=np.int64)
    first_key: np.ndarray | None = None
    res = ScanResult(ids=None, counts=counts, ordered=True)
    contiguous = True
    prev_seq, prev_t = -1, None
    tracking = track != "none"
    distinct: np.ndarray | None = None
    for row0, batch in src.batches(cols.read(False, True)):
        n = batch.num_rows
        n_before = ids.size
        seq = ids.intern(id_array(src, cols.id, batch.column(0), row0))  # (B,)
        counts = _grow(counts, ids.size, 0)
        counts[: ids.size] += np.bincount(seq, minlength=ids.size)
        prevs = np.concatenate([[prev_seq], seq[:-1]])  # (B,) sequence of the row before
        if contiguous:
            starts = np.flatnonzero(seq != prevs)
            bad = np.flatnonzero(seq[starts] != np.arange(n_before, n_before + starts.size))
            if bad.size:
                r = int(starts[bad[0]])
                if cols.time is None:
                    raise DataError(
                        f"{src.name}: the rows of id {fmt_value(_pyval(ids, seq[r]))} are not contiguous (it appears "
                        f"again at row {row0 + r} after other ids); pass time= (the column that orders the steps) to "
                        f"sort rows within each id, or sort the file by id"
                    )
                contiguous = res.ordered = False
        if cols.time is not None:
            tcol = batch.column(cols.time)
            t = _time_values(src, cols.time, tcol, row0)  # (B,)
            res.time_type = tcol.type
            if res.ordered:
                tprev = np.concatenate([[t[0] if prev_t is None else prev_t], t[:-1]])
                same = seq == prevs
                dup = np.flatnonzero(same & (t == tprev))
                if dup.size:
                    r = int(dup[0])
                    raise DataError(
                        f"{src.name}: duplicate (id, time) pair: id {fmt_value(_pyval(ids, seq[r]))} has time "
                        f"{fmt_value(tcol[r].as_py())} at rows {row0 + r - 1} and {row0 + r}; each id needs one row per "
                        f"time: drop or merge the duplicates"
                    )
                if np.any(same & (t < tprev)):
                    res.ordered = False
            prev_t = t[-1]
        if cols.target is not None:
            arr = batch.column(cols.target)
            kind = _kind(arr.type)
            if kind is None:
                raise DataError(
                    f"{src.name}: target {cols.target!r} has type {arr.type}; targets must be numbers, text or bools"
                )
            res.kind = kind
            _check_target(src, cols.target, arr, kind, row0, ids, seq)
            if kind == "str":
                key = targets.intern(arr)
                if targets.size > MAX_CLASSES:
                    raise DataError(
                        f"{src.name}: target {cols.target!r} has more than {MAX_CLASSES} distinct text values; class "
                        f"labels must be few: check the target column"
                    )
            else:
                key = as_numpy(arr)
                if tracking and (kind != "float" or track == "all"):
                    distinct = np.unique(key) if distinct is None else np.union1d(distinct, key)
                    if distinct.size > MAX_CLASSES:
                        distinct, tracking = None, False
            if first_key is None:
                first_key = np.zeros(1024, dtype=key.dtype)
            first_key = _grow(first_key, ids.size, 0)
            new = np.flatnonzero(seq >= n_before)
            if new.size:
                useq, upos = np.unique(seq[new], return_index=True)
                first_key[useq] = key[new[upos]]
            ch = np.flatnonzero(key != first_key[seq])
            if ch.size and not res.varies:
                r = int(ch[0])
                first_val = _target_value(targets, kind, first_key[seq[r]])
                res.change = (int(seq[r]), row0 + r, _target_value(targets, kind, key[r]), first_val)
                res.varies = True
        prev_seq = int(seq[-1])
        if bar is not None:
            bar.update(n)
    if ids.size == 0:
        raise DataError(f"{src.name}: the table has no rows; nothing to read")
    res.ids = ids.values()
    res.counts = counts[: ids.size].copy()
    if cols.target is not None and first_key is not None:
        fk = first_key[: ids.size]
        res.first = targets.values().take(pa.array(fk)) if res.kind == "str" else pa.array(fk)
        if res.kind == "str":
            res.distinct = targets.values()
        elif distinct is not None and (res.kind != "float" or track == "all"):
            res.distinct = pa.array(distinct.astype(fk.dtype))
    return res


def _pyval(ids: Interner, code: Any) -> Any:
    return ids.values()[int(code)].as_py()


def _target_value(targets: Interner, kind: str, key: Any) -> Any:
    return targets.values()[int(key)].as_py() if kind == "str" else np.asarray(key).item()


def _time_values(src: TableSource, name: str, col: Any, row0: int) -> np.ndarray:
    import pyarrow as pa

    t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)):
        raise DataError(
            f"{src.name}: time column {name!r} has type {t}; it must hold numbers or timestamps (e.g. {col[0].as_py()!r} "
            f"at row {row0})"
        )
    if col.null_count:
        r = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{src.name}: time {name!r} is empty at row {row0 + r}; every row needs a time: fill or drop it")
    v = as_numpy(col)
    if v.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise DataError(f"{src.name}: time {name!r} is {v[bad[0]]} at row {row0 + int(bad[0])}; times must be finite")
    return v


def _check_target(src: TableSource, name: str, arr: Any, kind: str, row0: int, ids: Interner, seq: np.ndarray) -> None:
    import pyarrow.compute as pc

    bad = np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))
    if not bad.size and kind == "float":
        bad = np.flatnonzero(~np.isfinite(arr.to_numpy(zero_copy_only=False)))
    if not bad.size and kind == "str":
        bad = np.flatnonzero(pc.equal(arr, "").to_numpy(zero_copy_only=False))
    if bad.size:
        r = int(bad[0])
        raise DataError(
            f"{src.name}: target {name!r} is empty or NaN at row {row0 + r} (id {fmt_value(_pyval(ids, seq[r]))}); "
            f"every row needs a target: drop or fill those rows"
        )


def locate_rows(src: TableSource, cols: Columns, id_value: Any, time_value: Any, limit: int = 2) -> list[int]:
    """Rows (error path only) where ``(id, time) == (id_value, time_value)``."""
    out: list[int] = []
    for row0, batch in src.batches([cols.id, cols.time or cols.id]):
        i = as_numpy(id_array(src, cols.id, batch.column(0), row0))
        t = as_numpy(batch.column(1))
        hit = np.flatnonzero((i == id_value) & (t == time_value))
        out.extend(int(row0 + h) for h in hit[: limit - len(out)])
        if len(out) >= limit:
            break
    return out


# ------------------------------------------------------------------------------------------ labels table
def read_labels(
    path: Any, ids: Any, *, label_id: str, label_target: str | None, batch_rows: int
) -> tuple[Any, str, str]:
    """Read an ``id -> target`` table and align it with ``ids``.

    Returns:
        ``(targets, kind, label_target)``: a pa.Array (N,) of targets in the order of ``ids``.

    Raises:
        DataError: Missing columns, null targets, duplicate label ids, ids without a label, labels for ids that
            are not in the table (the message names the first few).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    src = TableSource(path, batch_rows)
    if label_id not in src.columns:
        raise _missing(src, "label id", label_id)
    if label_target is None:
        others = [c for c in src.columns if c != label_id]
        if len(others) != 1:
            raise DataError(
                f"{src.name} has columns {', '.join(src.columns)}; pass label_target= to say which holds the target"
            )
        label_target = others[0]
    if label_target not in src.columns:
        raise _missing(src, "label target", label_target)
    cols = Columns(id=label_id, time=None, features=[], target=label_target)

    def run() -> list[Any]:
        return list(src.batches([label_id, label_target]))

    batches = retrying(src, cols, run)
    if not batches:
        raise DataError(f"{src.name}: the labels table has no rows")
    lid = pa.concat_arrays([id_array(src, label_id, b.column(0), r) for r, b in batches])
    tgt = pa.concat_arrays([b.column(1) for _, b in batches])
    kind = _kind(tgt.type)
    if kind is None:
        raise DataError(f"{src.name}: label {label_target!r} has type {tgt.type}; targets must be numbers, text or bools")
    if lid.type != ids.type:
        try:
            lid = lid.cast(ids.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(
                f"{src.name}: label ids are {lid.type} but the table's ids are {ids.type} ({exc}); use the same ids"
            ) from exc
    ok = ~tgt.is_null().to_numpy(zero_copy_only=False)
    if kind == "float":
        ok &= np.isfinite(tgt.to_numpy(zero_copy_only=False))
    if kind == "str":
        ok &= ~pc.equal(tgt, "").fill_null(False).to_numpy(zero_copy_only=False)
    if not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        raise DataError(f"{src.name}: label of id {fmt_value(lid[r].as_py())} (row {r}) is empty or NaN; give every id a label")
    n = len(ids)
    pos = lookup(ids, lid)  # (L,) sequence index of each label row
    unknown = np.flatnonzero(pos < 0)
    if unknown.size:
        raise DataError(
            f"{src.name} has labels for ids that are not in the table: {fmt_ids(lid.take(pa.array(unknown)).to_pylist())}; "
            f"remove them or check the id column"
        )
    seen = np.bincount(pos, minlength=n)
    if (seen > 1).any():
        s = int(np.flatnonzero(seen > 1)[0])
        raise DataError(f"{src.name}: id {fmt_value(ids[s].as_py())} has {int(seen[s])} labels; give each id one label")
    if (seen == 0).any():
        miss = np.flatnonzero(seen == 0)
        raise DataError(
            f"{src.name} has no label for {miss.size} id(s) of the table: {fmt_ids(ids.take(pa.array(miss)).to_pylist())}; "
            f"add their labels or drop those ids"
        )
    order = np.empty(n, dtype=np.int64)
    order[pos] = np.arange(len(pos))
    return tgt.take(pa.array(order)), kind, label_target
