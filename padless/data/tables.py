"""Long tables (one row per time step) into padless' ragged containers: :func:`read_long_table`.

Owns: the public API of the long-table reader: :func:`read_long_table` and the re-exports of its result
:class:`~padless.data.tables_result.LongTable` / :class:`~padless.data.tables_result.LongTableSchema` (the
JSON-able description a saved model keeps so it can read a new table with the same columns and no flags),
:func:`~padless.data.tables_write.write_long_predictions` and the generic damaged-file helpers
:func:`~padless.data.tables_damaged.damaged_file_error` / :func:`~padless.data.tables_damaged.reading`. The
work is done by the private pieces ``tables_io`` (formats, streaming batches), ``tables_columns`` (column
roles), ``tables_scan`` (pass 1), ``tables_targets`` (task inference, classes, labels) and
``tables_convert`` (pass 2, sorting, fill, forecast). Does not own: the CLI, the ragged container, models.

Rules:
    - Formats by suffix: ``.csv`` / ``.csv.gz``, ``.tsv`` / ``.tsv.gz``, ``.parquet`` / ``.pq``,
      ``.arrow`` / ``.feather`` / ``.ipc`` (Arrow IPC file or stream, Feather v1 and v2).
    - Sequences (ids) keep the order in which their first row appears in the file. Rows count from 0 in file
      order (a CSV header is not a row); every error names the file and the row or id.
    - Without ``time`` the file order is the step order and each id's rows must be contiguous. With ``time``
      the rows of each id are sorted by time (ascending; stable); rows of an id may be anywhere in the file;
      two rows with the same (id, time) are an error. The times are kept (``LongTable.times``) so predictions
      can be written back with :func:`write_long_predictions`.
    - Default features: every integer / float / decimal / bool column other than id, time and target.
    - Task inference and classes: :mod:`padless.data.tables_targets`; ``fill`` and forecast targets:
      :mod:`padless.data.tables_convert`.
    - Memory: two streaming passes of ``batch_rows`` rows; values go straight into their final place
      (a memory-mapped ``.npy`` with ``out_dir``), so peak memory is one batch plus O(number of ids).
    - Nothing is written on failure: ``out_dir`` is built in a temporary sibling directory renamed into
      place at the end.

Example:
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "runs.csv")
    >>> _ = open(p, "w").write("unit,t,temp,label\\n1,0,0.5,ok\\n2,0,1.5,bad\\n1,1,0.7,ok\\n")
    >>> lt = read_long_table(p, id="unit", time="t", target="label", progress=False)
    >>> lt.ids.tolist(), lt.x.lengths.tolist(), lt.task, lt.classes, lt.y.tolist()
    ([1, 2], [2, 1], 'classify', ['bad', 'ok'], [1, 0])
    >>> read_long_table(p, schema=lt.schema, progress=False).y.tolist()  # same columns, no flags
    [1, 0]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from padless.data.ragged import RaggedArray
from padless.data.tables_columns import Columns, fmt_value, resolve_columns
from padless.data.tables_convert import FILLS, Plan, convert
from padless.data.tables_damaged import damaged_file_error, reading
from padless.data.tables_io import TableSource, type_to_str
from padless.data.tables_result import (
    LongTable,
    LongTableSchema,
    abort,
    commit,
    merge_schema,
    start_dir,
    write_extras,
    write_ragged_meta,
)
from padless.data.tables_scan import scan
from padless.data.tables_targets import TASKS, ClassMap, decide_task, read_labels
from padless.data.tables_write import write_long_predictions
from padless.errors import ConfigError, DataError

__all__ = [
    "LongTable", "LongTableSchema", "read_long_table", "write_long_predictions", "damaged_file_error", "reading",
]


def _ids_numpy(ids: Any) -> np.ndarray:
    import pyarrow as pa

    if pa.types.is_integer(ids.type):
        return ids.to_numpy(zero_copy_only=False).astype(np.int64)
    return np.array(ids.to_pylist(), dtype=str)


def _bar(enabled: bool, total: int | None, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="row", unit_scale=True, file=sys.stderr, disable=None, leave=False)


def read_long_table(
    path: str | os.PathLike[str],
    *,
    id: str | None = None,  # noqa: A002 - the column role, as on the command line
    time: str | None = None,
    features: Sequence[str] | None = None,
    target: str | None = None,
    labels: str | os.PathLike[str] | None = None,
    label_id: str | None = None,
    label_target: str | None = None,
    task: str = "auto",
    per_step: bool | None = None,
    horizon: int = 1,
    drop_short: bool = False,
    fill: str | None = None,
    schema: LongTableSchema | dict[str, Any] | None = None,
    targets: bool = True,
    out_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    batch_rows: int = 1_000_000,
) -> LongTable:
    """Read a long table (one row per time step) into ragged sequences, features and targets.

    Args:
        path: The table (CSV / TSV / Parquet / Arrow / Feather, by suffix).
        id: Sequence id column (integers or text). Required unless ``schema`` is given.
        time: Column ordering the steps of an id (numbers or timestamps); rows are sorted by it within each id.
            Without it the file order is the step order and each id's rows must be contiguous.
        features: Feature columns; default every numeric column except id, time and target.
        target: Per-row target column (constant within every id -> per-sequence target, else per-step); with
            ``labels`` the target column of the labels table; with ``task="forecast"`` the one feature to
            forecast (default: all features).
        labels: A second table ``label_id -> label_target`` with one row per id.
        label_id: Id column of ``labels`` (default: ``id``).
        label_target: Target column of ``labels`` (default: ``target``, or its single non-id column).
        task: ``"auto"``, ``"classify"`` (one class per id), ``"regress"``, ``"tag"`` (one class per step) or
            ``"forecast"`` (targets are the next ``horizon`` values of the features).
        per_step: Force per-step (True) or per-sequence (False) targets; default: per-step when the target
            changes within some id.
        horizon: Forecast only: steps ahead H (see :mod:`padless.data.tables_convert`).
        drop_short: Forecast only: drop ids with at most H steps instead of raising.
        fill: NaN in features: refused by default; ``"ffill"``, ``"bfill"``, ``"zero"`` or ``"mean"``.
        schema: Read with the columns, task, classes and fill of an earlier read (``LongTable.schema`` or its
            dict); the column options must then be left unset. A missing target column gives ``y=None``.
        targets: False reads only the inputs (no target column; a forecast keeps every step).
        out_dir: Write the arrays to this directory (memory-mapped result; reopen with ``LongTable.load``).
        overwrite: Replace an ``out_dir`` holding a saved long table.
        progress: tqdm progress bars on stderr (when it is a terminal and tqdm is installed).
        batch_rows: Rows per batch (memory per batch is about ``batch_rows * (F + 3) * 8`` bytes).

    Returns:
        A :class:`LongTable`.

    Raises:
        DataError: Bad or damaged input; the one-line message names the file and the row or id, and says how
            to fix it. Nothing is written to ``out_dir``.
        ConfigError: Invalid options.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "engines.csv")
        >>> _ = open(p, "w").write("engine,cycle,s1,rul\\n7,2,0.25,0\\n7,1,0.5,1\\n9,1,1.5,0\\n")
        >>> t = read_long_table(p, id="engine", time="cycle", target="rul", task="regress",
        ...                     out_dir=os.path.join(os.path.dirname(p), "ds"), progress=False)
        >>> t.x.values[:, 0].tolist(), t.per_step, t.y.values[:, 0].tolist(), t.times.values[:, 0].tolist()
        ([0.5, 0.25, 1.5], True, [1.0, 0.0, 0.0], [1, 2, 1])
    """
    if schema is not None:
        sch = schema if isinstance(schema, LongTableSchema) else LongTableSchema.from_dict(schema)
        given = [n for n, v in (("id", id), ("time", time), ("features", features), ("target", target), ("fill", fill),
                                ("per_step", per_step)) if v is not None] + (["task"] if task != "auto" else []) + (
            ["horizon"] if horizon != 1 else [])
        if given:
            raise ConfigError(f"pass schema= or the column options ({', '.join(given)}), not both")
        id, time, features, fill, target = sch.id, sch.time, sch.features, sch.fill, sch.target
        task, per_step, horizon = sch.task or "auto", sch.per_step, sch.horizon or 1
        label_id, label_target = label_id or sch.label_id, label_target or sch.label_target
        if sch.task == "forecast" and sch.forecast_columns != sch.features:
            target = (sch.forecast_columns or [None])[0]
    else:
        sch = None
    if id is None:
        raise ConfigError("read_long_table needs id= (the column naming the sequence of each row), or schema=")
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if fill is not None and fill not in FILLS:
        raise ConfigError(f"unknown fill {fill!r}; choose one of {', '.join(FILLS)} (or leave it unset to refuse NaN)")
    if int(batch_rows) < 1 or int(horizon) < 1:
        raise ConfigError("batch_rows and horizon must be at least 1")
    forecast = task == "forecast"
    if forecast and labels is not None:
        raise ConfigError("task='forecast' takes its targets from the features; drop labels=")
    src = TableSource(path, batch_rows)
    use_labels = labels is not None and targets
    row_target = None if (use_labels or not targets) else target
    if sch is not None and row_target is not None and row_target not in src.columns and not forecast:
        row_target = None  # predicting on a table without targets
    exclude = [c for c in ([label_target or target] if labels is not None else []) if c]
    cols = resolve_columns(src, id=id, time=time, features=features, target=row_target if not forecast else target,
                           exclude=exclude, forecast=forecast)
    target_out, made, work = None, [], None
    if out_dir is not None:
        target_out, work, made = start_dir(out_dir, overwrite)
    opts = _Options(
        schema=sch, labels=labels if use_labels else None, label_id=label_id or id, label_target=label_target or target,
        task=task, per_step=per_step, horizon=int(horizon), forecast_targets=forecast and targets,
        drop_short=drop_short, fill=fill, work=work, progress=progress, batch_rows=int(batch_rows),
    )
    try:
        table = _read(src, cols, opts)
        if work is None or target_out is None:
            if table is None:
                raise DataError("the long table produced no arrays; pass out_dir= or check the file has rows")
            return table
        commit(work, target_out)
        return LongTable.load(target_out)
    except BaseException:
        if work is not None:
            abort(work, made)
        raise


@dataclass
class _Options:
    schema: LongTableSchema | None
    labels: Any
    label_id: str
    label_target: str | None
    task: str
    per_step: bool | None
    horizon: int
    forecast_targets: bool
    drop_short: bool
    fill: str | None
    work: Path | None
    progress: bool
    batch_rows: int


def _read(src: TableSource, cols: Columns, o: _Options) -> LongTable | None:
    """Pass 1, targets and task, pass 2; returns the table (RAM), or None after writing ``o.work``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sch, labels, task, work, progress = o.schema, o.labels, o.task, o.work, o.progress
    forecast = task == "forecast"
    fixed = sch.classes is not None if sch else False
    track = "none" if (fixed or task in ("regress", "forecast")) else ("all" if task in ("classify", "tag") else "discrete")
    bar = _bar(progress, src.num_rows, f"scan {Path(src.name).name}")
    try:
        res = scan(src, cols, track=track, bar=bar)
    finally:
        if bar is not None:
            bar.close()
    n = len(res.ids)
    y_seq, cmap, kind, step_target, task_out, step, tname = None, None, None, None, None, False, None
    first, varies, distinct = res.first, res.varies, res.distinct
    if labels is not None:
        first, kind, tname = read_labels(labels, res.ids, label_id=o.label_id, label_target=o.label_target,
                                         batch_rows=o.batch_rows)
        varies, distinct = False, pc.unique(first)
    elif cols.target is not None:
        kind, tname = res.kind, cols.target
    if forecast:
        task_out, step = "forecast", True
    elif kind is not None:
        if sch is not None and sch.task is not None:
            task_out, step = sch.task, sch.per_step
        else:
            task_out, step = decide_task(task, o.per_step, kind, None if distinct is None else len(distinct), n, varies=varies)
        if step and labels is not None:
            raise ConfigError("labels= gives one target per id; per-step tasks need a per-row target column")
        if not step and varies:
            s, row, val, first_val = res.change  # type: ignore[misc]
            raise DataError(
                f"{src.name}: id {fmt_value(res.ids[s].as_py())} has target {fmt_value(val)} at row {row} but "
                f"{fmt_value(first_val)} at its first row; task={task_out!r} needs one target per id: pass task='tag' "
                f"(classes) or per_step=True (regression) for per-step targets, or fix the file"
            )
        if task_out in ("classify", "tag"):
            if sch is not None and sch.classes is not None:
                cmap = ClassMap(sch.class_type or "str", list(sch.classes))
            elif distinct is None:
                raise DataError(f"{src.name}: target {tname!r} has too many distinct values to be class labels; use task='regress'")
            else:
                cmap = ClassMap.from_values(kind, distinct)
        if step:
            step_target = "classes" if cmap is not None else "regress"
        elif cmap is not None:
            y_seq = cmap.encode(first)
            if (y_seq < 0).any():
                s = int(np.flatnonzero(y_seq < 0)[0])
                raise DataError(
                    f"{src.name}: id {fmt_value(res.ids[s].as_py())} has target {fmt_value(first[s].as_py())}, which is "
                    f"not one of the classes {cmap.names[:10]}; the model only knows those classes"
                )
        else:
            try:
                y_seq = first.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float32)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(f"{src.name}: target {tname!r} is not numeric ({exc}); task='regress' needs numbers") from exc
    time_float = res.time_type is not None and pa.types.is_floating(res.time_type)
    plan = Plan(
        src=src, cols=cols, ids=res.ids, counts=res.counts, ordered=res.ordered, time_float=time_float,
        time_type=res.time_type, fill=o.fill,
        fill_values=np.asarray(sch.fill_values, np.float64) if sch is not None and sch.fill_values else None,
        step_target=step_target, classes=cmap, horizon=o.horizon if o.forecast_targets else None,
        drop_short=o.drop_short, work=work, batch_rows=o.batch_rows,
    )
    bar = _bar(progress, int(res.counts.sum()), f"convert {Path(src.name).name}")
    try:
        conv = convert(plan, bar)
    finally:
        if bar is not None:
            bar.close()
    ids = _ids_numpy(res.ids)
    dropped = None
    if conv.keep is not None:
        mask = np.ones(n, dtype=bool)
        mask[conv.keep] = False
        dropped, ids = (ids[mask] if mask.any() else None), ids[conv.keep]
    fc = [cols.features[i] for i in cols.forecast] if forecast else None
    fresh = LongTableSchema(
        id=cols.id, features=list(cols.features), time=cols.time,
        target=(fc[0] if fc != cols.features else None) if fc else (tname if labels is None else None),
        target_source=("labels" if labels is not None else "table") if tname else None,
        label_id=o.label_id if labels is not None else None, label_target=tname if labels is not None else None,
        task=task_out, per_step=step, classes=cmap.names if cmap else None, class_type=cmap.kind if cmap else None,
        horizon=o.horizon if forecast else None, forecast_columns=fc, fill=o.fill,
        fill_values=[float(v) for v in conv.means] if conv.means is not None else None,
        id_type="int" if ids.dtype.kind == "i" else "str", time_type=type_to_str(res.time_type),
    )
    out_schema = fresh if sch is None else merge_schema(fresh, sch)
    if work is not None:
        for name, arr in (("x", conv.x), ("times", conv.times), ("y", conv.y)):
            if arr is not None:
                write_ragged_meta(work / name, conv.offsets, arr.shape, arr.dtype)
        write_extras(work, ids, y_seq, out_schema, dropped)
        return None  # the caller commits the directory and loads it memory-mapped
    x = RaggedArray(conv.x.data, conv.offsets, validate=False)
    times = None
    if conv.times is not None:  # int64 times stay exact (the constructor would cast them to float32)
        times = RaggedArray._trusted(conv.times.data, conv.offsets, allow_nonfinite=False, allow_empty=False)  # noqa: SLF001
    y: Any = RaggedArray(conv.y.data, conv.offsets, validate=False) if conv.y is not None else y_seq
    return LongTable(
        x=x, y=y, ids=ids, times=times, task=out_schema.task if y is not None or forecast else None,
        per_step=out_schema.per_step if y is not None or forecast else False, feature_names=list(cols.features),
        target_name=tname, classes=out_schema.classes, id_name=cols.id, time_name=cols.time, schema=out_schema,
        dropped_ids=dropped,
    )
