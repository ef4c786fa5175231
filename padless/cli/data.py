"""What the command line reads as DATA, for every task: sequence files and long tables.

Owns: :class:`TaskData` (inputs, targets, task, class or target names, and for a long table its ids, times
and schema), :func:`read_train_data` (DATA and the train flags: a built-in name, a sequence file, or a long
table with ``--id``/``--time``/``--target``/``--labels``/``--task``/``--fill``/``--horizon``),
:func:`read_data_for` (new DATA for a trained model: a long table is read with the model's saved schema,
so ``padless predict runs/x new.csv`` needs no flags), :func:`preprocessing_of` (what a model remembers of
its data) and :func:`write_task_predictions` (per sequence: a CSV row per id; per step: a long table with the
id and time columns).

Does not own: the readers (:mod:`padless.data.tables`, :mod:`padless.data.readers`, :mod:`padless.datasets`),
the models (:mod:`padless.recipes`).

Example:
    >>> is_long_table("runs.csv", None), is_long_table("seqs.parquet", None), is_long_table("t.parquet", "unit")
    (True, False, True)
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from padless.cli.config import TrainConfig
from padless.data.ragged import RaggedArray
from padless.data.tables import LongTable, LongTableSchema, read_long_table, write_long_predictions
from padless.datasets import load_data
from padless.errors import ConfigError, DataError
from padless.io import atomic_write_bytes

__all__ = ["TaskData", "read_train_data", "read_data_for", "preprocessing_of", "write_task_predictions",
           "is_long_table", "LONG_TABLE_SUFFIXES"]

LONG_TABLE_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz", ".arrow", ".feather", ".ipc")


def is_long_table(spec: str, id_column: str | None) -> bool:
    """A long table: CSV/TSV/Arrow/Feather always; Parquet when an id column is given (else a list column)."""
    name = str(spec).lower()
    if name.endswith(LONG_TABLE_SUFFIXES):
        return True
    return name.endswith((".parquet", ".pq")) and id_column is not None


@dataclass
class TaskData:
    """DATA as the model sees it.

    Attributes:
        x: inputs; y: per-sequence targets (N,)/(N, K), per-step targets (RaggedArray), or None.
        task: ``classify``, ``regress``, ``tag`` or ``forecast``; per_step: targets per step.
        classes: class names (classify, tag); targets: target column names (regress, forecast).
        table: the long table it came from (ids, times, schema), or None.
    """

    x: RaggedArray
    y: Any
    task: str
    per_step: bool = False
    classes: list[str] | None = None
    targets: list[str] = field(default_factory=list)
    table: LongTable | None = None

    @property
    def num_outputs(self) -> int:
        if self.classes:
            return len(self.classes)
        if isinstance(self.y, RaggedArray):
            return int(self.y.num_features)
        return 1 if self.y is None or np.ndim(self.y) == 1 else int(np.shape(self.y)[1])


def _table_data(lt: LongTable) -> TaskData:
    if lt.task is None:
        raise DataError(f"{lt.schema.id!r} table has no targets: give --target (or --labels, or --task forecast)")
    y = lt.y
    if lt.task == "regress" and not lt.per_step and y is not None:
        y = np.asarray(y, dtype=np.float32).reshape(len(lt.x), -1)  # (N, K)
    return TaskData(lt.x, y, lt.task, lt.per_step, lt.classes, list(lt.target_names), lt)


def read_train_data(cfg: TrainConfig) -> TaskData:
    """DATA for ``padless train``: a long table (with its flags) or a labelled sequence file / built-in set.

    Raises:
        DataError: unreadable or unusable data (one line naming the file, row or id and the fix).
        ConfigError: long-table flags given for a sequence file, or an unknown task.
    """
    flags = {"--time": cfg.time, "--features": cfg.features, "--target": cfg.target, "--labels": cfg.labels,
             "--fill": cfg.fill, "--horizon": cfg.horizon}
    if is_long_table(cfg.data, cfg.id):
        if cfg.id is None:
            raise ConfigError(f"{cfg.data} is a long table (one row per step): give --id COLUMN (the sequence id), "
                              "and --target COLUMN (or --labels FILE, or --task forecast)")
        feats = [c.strip() for c in cfg.features.split(",") if c.strip()] if cfg.features else None
        lt = read_long_table(cfg.data, id=cfg.id, time=cfg.time, features=feats, target=cfg.target,
                             labels=cfg.labels, task=cfg.task or "auto", fill=cfg.fill,
                             horizon=cfg.horizon if cfg.horizon is not None else 1, drop_short=cfg.drop_short,
                             progress=not cfg.quiet)
        return _table_data(lt)
    given = [k for k, v in flags.items() if v is not None]
    if given or cfg.id is not None:
        raise ConfigError(f"{given[0] if given else '--id'} is for long tables (.csv, .tsv, .feather, .parquet with "
                          f"--id); {cfg.data} is read as one sequence per row")
    if cfg.task not in (None, "classify"):
        raise ConfigError(f"--task {cfg.task} needs a long table with a target column; {cfg.data} holds class labels")
    x, y, names = load_data(cfg.data, "train")
    if y is None:
        raise DataError(f"{cfg.data}: no labels found; training needs one label per sequence")
    if len(np.unique(y)) < 2:
        raise DataError(f"{cfg.data}: every sequence has the same label ({(names or ['0'])[int(y[0])]!r}); a "
                        "classifier needs at least two classes")
    return TaskData(x, y, "classify", classes=names)


def preprocessing_of(data: TaskData, spec: str) -> dict[str, Any]:
    """What a trained model remembers of its data (saved with it): task, classes, target names, schema."""
    pre: dict[str, Any] = {"data": spec, "task": data.task, "per_step": data.per_step}
    if data.classes:
        pre["classes"] = list(data.classes)
    if data.targets:
        pre["targets"] = list(data.targets)
    if data.table is not None:
        pre["table"] = data.table.schema.to_dict()
        pre["drop_short"] = data.table.dropped_ids is not None
    return pre


def read_data_for(spec: str, preprocessing: dict[str, Any], split: str = "test", targets: bool = True) -> TaskData:
    """New DATA for a trained model, read the way its training data was (a long table: the saved schema).

    Raises:
        DataError: unreadable data, or (``targets``) data without the targets evaluation needs.
    """
    schema = preprocessing.get("table")
    task = preprocessing.get("task", "classify")
    if schema is not None:
        lt = read_long_table(spec, schema=LongTableSchema.from_dict(schema), targets=targets, progress=False,
                             drop_short=bool(preprocessing.get("drop_short", False)))
        if targets and lt.y is None:
            raise DataError(f"{spec}: the table has no {lt.schema.target!r} column; evaluate needs the targets "
                            "(use predict for new data without them)")
        y = lt.y
        if task == "regress" and not lt.per_step and y is not None:
            y = np.asarray(y, dtype=np.float32).reshape(len(lt.x), -1)
        return TaskData(lt.x, y, task, lt.per_step, lt.classes, list(preprocessing.get("targets", [])), lt)
    x, y, names = load_data(spec, split, class_names=preprocessing.get("classes"))
    if targets and y is None:
        raise DataError(f"{spec}: no labels found; evaluate needs labels (use predict for unlabelled data)")
    return TaskData(x, y, task, classes=names)


def _prob_columns(names: list[str]) -> list[str]:
    return [f"p_{n}" for n in names]


def write_task_predictions(out: Path, data: TaskData, preds: Any, preprocessing: dict[str, Any]) -> str:
    """Write ``predict``'s result for ``data``; returns a one-line description of what was written.

    Per sequence: CSV ``id,prediction[,p_<class>...]`` (class names for classifiers). Per step from a long
    table: a long table (format by suffix) with the id and time columns. ``.npy``/``.npz``: raw arrays.
    """
    classes = preprocessing.get("classes")
    targets = preprocessing.get("targets") or None
    lt = data.table
    per_step = isinstance(preds, list)
    if out.suffix in (".npy", ".npz"):
        buf = io.BytesIO()
        if per_step:  # ragged: values (sum T_i, K) + offsets (N+1), like RaggedArray
            offsets = np.concatenate([[0], np.cumsum([len(p) for p in preds])]).astype(np.int64)
            np.savez(buf, values=np.concatenate(preds), offsets=offsets)
        elif out.suffix == ".npz":
            np.savez(buf, values=preds)
        else:
            np.save(buf, preds)
        atomic_write_bytes(out, buf.getvalue())
        return f"{len(preds)} sequences{' (per step)' if per_step else ''} -> {out}"
    if per_step and lt is not None:
        cols = _prob_columns(classes) if classes else (targets or None)
        if cols is not None and len(cols) != np.shape(preds[0])[-1]:
            cols = None
        write_long_predictions(out, lt.ids, lt.times, preds, cols, id_name=lt.id_name,
                               time_name=lt.time_name or "step", time_type=lt.schema.time_type,
                               labels=classes)
        return f"{len(preds)} sequences (per step, {sum(len(p) for p in preds)} rows) -> {out}"
    if lt is not None and not per_step:
        cols = _prob_columns(classes) if classes else (targets or None)
        write_long_predictions(out, lt.ids, None, np.asarray(preds), cols, id_name=lt.id_name, labels=classes)
        return f"{len(preds)} sequences -> {out}"
    text = io.StringIO()
    _csv_rows(text, preds, classes)
    atomic_write_bytes(out, text.getvalue().encode())
    return f"{len(preds)} {'sequences (per step)' if per_step else 'sequences'} -> {out}"


def _csv_rows(f: io.StringIO, probs: Any, labels: list[str] | None) -> None:
    """CSV: ``index[,step],prediction,p_<class>...`` (one row per sequence, or per step of each sequence)."""
    per_step = isinstance(probs, list)
    width = (probs[0] if per_step else probs).shape[1]
    labels = labels or [str(i) for i in range(width)]
    w = csv.writer(f)
    w.writerow(["index"] + (["step"] if per_step else []) + ["prediction"] + [f"p_{n}" for n in labels])
    for i, seq in enumerate(probs):
        for t, row in enumerate(seq if per_step else [seq]):
            w.writerow([i] + ([t] if per_step else []) + [labels[int(np.argmax(row))]] + [f"{v:.6f}" for v in row])
