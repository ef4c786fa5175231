"""Pass 1 of the long-table reader (private to :mod:`padless.data.tables`): what the rows say.

Owns: the first pass over the file (:func:`scan`): sequence ids in first-appearance order, rows per id,
whether rows are already in final order, non-contiguous ids without a time column, duplicate (id, time)
pairs of ordered files, null ids / times / targets, whether the target is constant within every id, the
distinct target values (for classes), and :func:`locate_rows` (error path: where a duplicate is). Memory is
O(number of ids + number of distinct class values); nothing is kept per row. Does not own: column roles
(:mod:`padless.data.tables_columns`), task inference (:mod:`padless.data.tables_targets`) or writing values
(:mod:`padless.data.tables_convert`).

Example:
    >>> import os, tempfile
    >>> from padless.data.tables_columns import Columns
    >>> p = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> _ = open(p, "w").write("id,t,v\\nb,1,0.5\\nb,0,0.1\\na,0,0.2\\n")
    >>> r = scan(TableSource(p), Columns(id="id", time="t", features=["v"], target=None))
    >>> r.ids.to_pylist(), r.counts.tolist(), r.ordered
    (['b', 'a'], [2, 1], False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from padless.data.tables_columns import Columns, Interner, fmt_value, id_array, retrying, value_kind
from padless.data.tables_io import TableSource, as_numpy
from padless.data.tables_targets import MAX_CLASSES
from padless.errors import DataError

__all__ = ["ScanResult", "scan", "locate_rows"]


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
            kind = value_kind(arr.type)
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
