"""Pass 2 of the long-table reader (private to :mod:`padless.data.tables`): values into their final place.

Owns: :class:`Arr` (a preallocated array in RAM, or a ``.npy`` file opened window by window so the memory
mapped at any moment is one batch), pass 2 (every batch's features, times and per-step targets written at
their final rows; NaN / inf refused with the row and id unless ``fill``), and the finishing pass over
whole sequences in chunks of about ``batch_rows`` rows: sorting each id's rows by time (and finding
duplicate (id, time) pairs), filling NaN, and building forecast targets. Peak memory is one batch plus
O(number of ids). Does not own: column roles (:mod:`padless.data.tables_columns`), pass 1
(:mod:`padless.data.tables_scan`) or the result type (:mod:`padless.data.tables_result`).

Fill rules (``fill=``), applied per column after sorting by time:
    - ``"ffill"``: a NaN takes the last earlier value of the same id; NaN at the start of an id then take the
      first later value; a column that is NaN for the whole id becomes 0.
    - ``"bfill"``: the mirror image (next later value, then last earlier value, then 0).
    - ``"zero"``: NaN becomes 0.
    - ``"mean"``: NaN becomes the column mean over all rows of the table (0 if the column is all NaN); the
      means are kept in the schema so a new table is filled with the training means.
    Infinite values are always refused (they are not "missing").

Forecast targets (``horizon=H``): for a sequence of T steps the inputs are steps 0..T-H-1 and the target of
step t is the forecast columns at steps t+1..t+H, flattened step-major (column k of step t+h is at index
(h-1)*K + k). A sequence with T <= H has no target and is an error, or is dropped with ``drop_short=True``.

Example:
    >>> v = np.array([[np.nan], [1.0], [np.nan], [np.nan], [5.0]], np.float32)
    >>> fill_chunk(v, np.array([0, 3, 5]), "ffill", None); v.ravel().tolist()
    [1.0, 1.0, 1.0, 5.0, 5.0]
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from padless.data.tables_columns import Columns, fmt_ids, fmt_value, id_array, lookup, retrying
from padless.data.tables_io import TableSource, as_numpy, from_numpy
from padless.data.tables_scan import locate_rows
from padless.data.tables_targets import ClassMap
from padless.errors import DataError

__all__ = ["FILLS", "Arr", "Plan", "Converted", "convert", "fill_chunk", "chunks"]

FILLS = ("ffill", "bfill", "zero", "mean")
SCATTER_BYTES = 1 << 25  # rows out of order are written through windows of about this many bytes of x


class Arr:
    """A preallocated (rows, ...) array: in RAM (``path=None``) or a ``.npy`` file opened one window at a time."""

    def __init__(self, path: Path | None, shape: tuple[int, ...], dtype: Any) -> None:
        self.path, self.shape, self.dtype = path, tuple(int(s) for s in shape), np.dtype(dtype)
        self.data: np.ndarray | None = None
        if path is None:
            self.data = np.empty(self.shape, self.dtype)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        m = np.lib.format.open_memmap(path, mode="w+", dtype=self.dtype, shape=self.shape)
        self.offset = int(m.offset)
        del m

    @contextmanager
    def window(self, lo: int, hi: int) -> Iterator[np.ndarray]:
        """Writable rows ``[lo, hi)`` (a view in RAM, or a memory map of just those rows)."""
        if self.data is not None:
            yield self.data[lo:hi]
            return
        tail = self.shape[1:]
        if hi <= lo:
            yield np.empty((0, *tail), self.dtype)
            return
        row = self.dtype.itemsize * math.prod(tail)
        m = np.memmap(self.path, dtype=self.dtype, mode="r+", offset=self.offset + lo * row, shape=(hi - lo, *tail))
        try:
            yield m
        finally:
            del m

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self.data = None


@dataclass
class Plan:
    """Everything pass 2 needs (decided by ``read_long_table`` after pass 1)."""

    src: TableSource
    cols: Columns
    ids: Any  # pa.Array (N,)
    counts: np.ndarray  # (N,) rows per id
    ordered: bool
    time_float: bool  # times are float64 (else int64)
    time_type: Any = None  # pa.DataType of the time column (for messages)
    fill: str | None = None
    fill_values: np.ndarray | None = None  # (F,) preset means (from a schema)
    step_target: str | None = None  # None, "regress" or "classes": a per-step target column is read
    classes: ClassMap | None = None
    horizon: int | None = None  # forecast
    drop_short: bool = False
    work: Path | None = None  # directory of the output arrays; None keeps them in RAM
    batch_rows: int = 1_000_000


@dataclass
class Converted:
    """The arrays of the result (final order)."""

    offsets: np.ndarray  # (N'+1,)
    x: Arr  # (sum T, F) float32
    times: Arr | None  # (sum T,) int64 or float64
    y: Arr | None  # (sum T, K) float32 per-step targets
    keep: np.ndarray | None  # (N',) indices of the ids kept (forecast with drop_short)
    means: np.ndarray | None  # (F,) column means used by fill="mean"


def chunks(offsets: np.ndarray, limit: int) -> Iterator[tuple[int, int]]:
    """Runs ``[s0, s1)`` of whole sequences with about ``limit`` rows (at least one sequence each)."""
    n = offsets.shape[0] - 1
    s0 = 0
    while s0 < n:
        s1 = int(np.searchsorted(offsets, offsets[s0] + limit, side="right")) - 1
        s1 = min(max(s1, s0 + 1), n)
        yield s0, s1
        s0 = s1


def _ffill(v: np.ndarray, starts: np.ndarray) -> None:
    """Forward-fill NaN in ``v`` (R, F) in place without crossing the rows where ``starts`` (R,) is True."""
    nan = np.isnan(v)
    if not nan.any():
        return
    idx = np.where(~nan | starts[:, None], np.arange(v.shape[0])[:, None], 0)  # (R, F)
    np.maximum.accumulate(idx, axis=0, out=idx)
    v[...] = v[idx, np.arange(v.shape[1])[None, :]]


def fill_chunk(v: np.ndarray, offsets: np.ndarray, how: str, means: np.ndarray | None) -> None:
    """Fill NaN of the sequences ``offsets`` (local, (n+1,)) of ``v`` (R, F) in place (rules: module docstring)."""
    if how == "zero":
        v[np.isnan(v)] = 0.0
        return
    if how == "mean":
        nan = np.isnan(v)
        if nan.any():
            v[nan] = np.broadcast_to(np.asarray(means, dtype=v.dtype), v.shape)[nan]
        return
    r = v.shape[0]
    starts = np.zeros(r, dtype=bool)
    starts[offsets[:-1]] = True
    ends = np.zeros(r, dtype=bool)
    ends[offsets[1:] - 1] = True
    if how == "ffill":
        _ffill(v, starts)
        _ffill(v[::-1], ends[::-1])
    else:
        _ffill(v[::-1], ends[::-1])
        _ffill(v, starts)
    v[np.isnan(v)] = 0.0


def _features(batch: Any, names: list[str]) -> np.ndarray:
    import pyarrow as pa

    out = np.empty((batch.num_rows, len(names)), dtype=np.float32)  # (B, F)
    with np.errstate(over="ignore", invalid="ignore"):
        for j, c in enumerate(names):
            out[:, j] = batch.column(c).cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return out


def convert(plan: Plan, bar: Any = None) -> Converted:
    """Pass 2 and the finishing pass; arrays land in ``plan.work`` (or RAM)."""
    counts = plan.counts
    n = counts.shape[0]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    rows, f = int(offsets[-1]), len(plan.cols.features)
    forecast = plan.horizon is not None
    full = plan.work / "_full" if (forecast and plan.work is not None) else plan.work

    def path(name: str) -> Path | None:
        return None if full is None else full / name / "values.npy"

    x = Arr(path("x"), (rows, f), np.float32)
    times = Arr(path("times"), (rows, 1), np.float64 if plan.time_float else np.int64) if plan.cols.time else None
    y = Arr(path("y"), (rows, 1), np.float32) if plan.step_target else None
    sums = np.zeros(f, dtype=np.float64)
    seen = np.zeros(f, dtype=np.int64)

    def run() -> None:
        if bar is not None:
            bar.reset(total=rows)
        sums[:] = 0
        seen[:] = 0
        cursor = np.zeros(n, dtype=np.int64)
        for row0, batch in plan.src.batches(plan.cols.read(True, plan.step_target is not None)):
            _convert_batch(plan, row0, batch, offsets, cursor, x, times, y, sums, seen)
            if bar is not None:
                bar.update(batch.num_rows)

    retrying(plan.src, plan.cols, run)
    means = None
    if plan.fill == "mean":
        means = plan.fill_values if plan.fill_values is not None else np.where(seen > 0, sums / np.maximum(seen, 1), 0.0)
    if plan.ordered and plan.fill is None and not forecast:
        return Converted(offsets, x, times, y, None, means)
    return _finish(plan, offsets, x, times, y, means)


def _convert_batch(
    plan: Plan, row0: int, batch: Any, offsets: np.ndarray, cursor: np.ndarray,
    x: Arr, times: Arr | None, y: Arr | None, sums: np.ndarray, seen: np.ndarray,
) -> None:
    src, cols = plan.src, plan.cols
    seq = lookup(plan.ids, id_array(src, cols.id, batch.column(cols.id), row0))  # (B,)
    if (seq < 0).any():
        raise DataError(f"{src.name} changed while it was being read (an id appeared in the second pass); read it again")
    b = seq.shape[0]
    dest = None
    if not plan.ordered:  # rank of each row among the batch's rows of its id, after the rows of earlier batches
        order = np.argsort(seq, kind="stable")
        s = seq[order]
        first = np.r_[True, s[1:] != s[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(b), 0))
        occ = np.empty(b, dtype=np.int64)
        occ[order] = np.arange(b) - start
        dest = offsets[seq] + cursor[seq] + occ  # (B,)
        cursor += np.bincount(seq, minlength=cursor.shape[0])
    vals = _features(batch, cols.features)  # (B, F)
    bad = ~np.isfinite(vals)
    if bad.any():
        check = np.isinf(vals) if plan.fill else bad
        if check.any():
            r, j = (int(k) for k in np.argwhere(check)[0])
            if np.isnan(vals[r, j]):
                what, fix = "NaN (missing)", "pass fill='ffill', 'bfill', 'zero' or 'mean', or clean the file"
            else:
                what, fix = "infinite (or too large for float32)", "replace or drop that value (fill= only fills NaN)"
            raise DataError(
                f"{src.name}: feature {cols.features[j]!r} is {what} at row {row0 + r} "
                f"(id {fmt_value(plan.ids[int(seq[r])].as_py())}); {fix}"
            )
    if plan.fill == "mean" and plan.fill_values is None:
        ok = ~np.isnan(vals)
        sums += np.where(ok, vals, 0).sum(axis=0, dtype=np.float64)
        seen += ok.sum(axis=0)
    tv = as_numpy(batch.column(cols.time)) if times is not None else None
    yv = _step_targets(plan, row0, batch) if y is not None else None
    if dest is None:  # rows already in final order: one contiguous window
        lo, hi = row0, row0 + b
        with x.window(lo, hi) as w:
            w[...] = vals
        if times is not None:
            with times.window(lo, hi) as w:
                w[:, 0] = tv
        if y is not None:
            with y.window(lo, hi) as w:
                w[:, 0] = yv
        return
    d = dest[order]  # ascending: ``order`` sorts by id, and ranks grow within an id
    # scatter through windows of nearby rows, so that only one window is mapped at a time
    span = max(1, SCATTER_BYTES // (4 * max(len(cols.features), 1)))
    cuts = np.r_[0, np.flatnonzero(np.diff(d // span)) + 1, d.shape[0]]
    for i, j in zip(cuts[:-1], cuts[1:]):
        lo, hi, rows, at = int(d[i]), int(d[j - 1]) + 1, order[i:j], d[i:j] - int(d[i])
        with x.window(lo, hi) as w:
            w[at] = vals[rows]
        if times is not None:
            with times.window(lo, hi) as w:
                w[at, 0] = tv[rows]
        if y is not None:
            with y.window(lo, hi) as w:
                w[at, 0] = yv[rows]


def _step_targets(plan: Plan, row0: int, batch: Any) -> np.ndarray:
    """Per-step targets (B,) float32 of one batch: class codes or values."""
    import pyarrow as pa

    col = batch.column(plan.cols.target)
    if plan.step_target != "classes":
        return col.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False).astype(np.float32)
    codes = plan.classes.encode(col)  # type: ignore[union-attr]
    if (codes < 0).any():
        r = int(np.flatnonzero(codes < 0)[0])
        raise DataError(
            f"{plan.src.name}: target {plan.cols.target!r} at row {r + row0} is {fmt_value(col[r].as_py())}, which is "
            f"not one of the classes {plan.classes.names[:10]}; the model only knows those classes"  # type: ignore[union-attr]
        )
    return codes.astype(np.float32)


def _finish(plan: Plan, offsets: np.ndarray, x: Arr, times: Arr | None, y: Arr | None, means: Any) -> Converted:
    """Sort by time, fill, and (forecast) cut inputs and build targets, sequence chunk by sequence chunk."""
    h = plan.horizon
    counts = np.diff(offsets)
    keep = None
    if h is not None:
        new_len = np.maximum(counts - h, 0)
        short = np.flatnonzero(new_len == 0)
        if short.size and not plan.drop_short:
            raise DataError(
                f"{plan.src.name}: {short.size} id(s) have {h} step(s) or fewer, too short to forecast {h} step(s) ahead: "
                f"{fmt_ids(plan.ids.take(short).to_pylist())}; pass drop_short=True (--drop-short) to drop them or a smaller horizon"
            )
        keep = np.flatnonzero(new_len > 0)
        if keep.size == 0:
            raise DataError(f"{plan.src.name}: no id has more than {h} steps; nothing is left to forecast")
        new_off = np.zeros(offsets.shape[0], dtype=np.int64)
        np.cumsum(new_len, out=new_off[1:])
        k = len(plan.cols.forecast)
        root = plan.work
        fx = Arr(None if root is None else root / "x" / "values.npy", (int(new_off[-1]), x.shape[1]), np.float32)
        ft = None if times is None else Arr(None if root is None else root / "times" / "values.npy", (int(new_off[-1]), 1), times.dtype)
        fy = Arr(None if root is None else root / "y" / "values.npy", (int(new_off[-1]), h * k), np.float32)
    for s0, s1 in chunks(offsets, plan.batch_rows):
        lo, hi = int(offsets[s0]), int(offsets[s1])
        local = offsets[s0 : s1 + 1] - lo
        with x.window(lo, hi) as v:
            if not plan.ordered:
                _sort_chunk(plan, s0, local, v, times, y, lo, hi)
            if plan.fill is not None:
                fill_chunk(v, local, plan.fill, means)
            if h is not None:
                seg_len = np.diff(local)
                pos = np.arange(hi - lo) - np.repeat(local[:-1], seg_len)  # (R,) step index within its sequence
                src = np.flatnonzero(pos < np.repeat(seg_len - h, seg_len))  # rows that have H later steps
                a, b = int(new_off[s0]), int(new_off[s1])
                with fx.window(a, b) as w:
                    w[...] = v[src]
                with fy.window(a, b) as w:
                    for j in range(1, h + 1):
                        w[:, (j - 1) * k : j * k] = v[src + j][:, plan.cols.forecast]
                if ft is not None and times is not None:
                    with times.window(lo, hi) as t, ft.window(a, b) as w:
                        w[...] = t[src]
    if h is None:
        return Converted(offsets, x, times, y, None, means)
    for arr in (x, times, y):
        if arr is not None:
            arr.remove()
    if plan.work is not None:
        shutil.rmtree(plan.work / "_full", ignore_errors=True)
    final_off = np.zeros(keep.size + 1, dtype=np.int64)  # type: ignore[union-attr]
    np.cumsum(np.diff(new_off)[keep], out=final_off[1:])
    return Converted(final_off, fx, ft, fy, keep, means)


def _sort_chunk(
    plan: Plan, s0: int, local: np.ndarray, v: np.ndarray, times: Arr | None, y: Arr | None, lo: int, hi: int
) -> None:
    if times is None:  # rows are only out of order when a time column was given
        raise DataError("rows of an id are out of order but no time column was given; pass time=COLUMN")
    seg = np.repeat(np.arange(local.shape[0] - 1), np.diff(local))  # (R,) sequence within the chunk
    with times.window(lo, hi) as tw:
        t = tw[:, 0]  # (R,)
        perm = np.lexsort((t, seg))
        ts = t[perm]
        dup = np.flatnonzero((ts[1:] == ts[:-1]) & (seg[1:] == seg[:-1]))
        if dup.size:
            s = s0 + int(seg[dup[0]])
            idv, tv = plan.ids[s].as_py(), ts[dup[0]].item()
            rows = locate_rows(plan.src, plan.cols, idv, tv)
            if plan.time_type is not None and not plan.time_float:
                tv = from_numpy(np.array([tv]), plan.time_type)[0].as_py()
            where = f" at rows {rows[0]} and {rows[1]}" if len(rows) == 2 else ""
            raise DataError(
                f"{plan.src.name}: duplicate (id, time) pair: id {fmt_value(idv)} has time {fmt_value(tv)} twice{where}; "
                f"each id needs one row per time: drop or merge the duplicates"
            )
        tw[:, 0] = ts
    v[...] = v[perm]
    if y is not None:
        with y.window(lo, hi) as w:
            w[...] = w[perm]
