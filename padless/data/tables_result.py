"""The result of the long-table reader: :class:`LongTable` and :class:`LongTableSchema`.

Owns: the two dataclasses, the JSON-able schema dict (``to_dict`` / ``from_dict``) a saved model keeps to read
new tables with the same columns and no flags, and the directory format of a saved long table (written
atomically: a temporary sibling directory renamed into place)::

    out_dir/
      table.json    {"format": "padless.LongTable", "version": 1, "schema": {...}, "num_sequences": N}
      x/            RaggedArray directory (values.npy (sum T, F) float32, offsets.npy, meta.json)
      times/        RaggedArray directory (sum T, 1) float64 or int64 (only with a time column)
      y/ or y.npy   per-step targets (RaggedArray directory) or per-sequence targets (N,)
      ids.npy       (N,) int64 or unicode
      dropped_ids.npy  ids dropped as too short to forecast (only with drop_short=True)

Does not own: reading tables (:mod:`padless.data.tables`), the RaggedArray format (:mod:`padless.data.ragged`).

Example:
    >>> s = LongTableSchema(id="unit", features=["temp"], time="t")
    >>> LongTableSchema.from_dict(s.to_dict()) == s
    True
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from padless.data.ragged import RaggedArray
from padless.data.tables_damaged import reading
from padless.data.tables_write import write_long_predictions
from padless.errors import ConfigError, DataError

__all__ = ["SCHEMA_FORMAT", "TABLE_FORMAT", "VERSION", "LongTableSchema", "LongTable", "start_dir", "commit",
           "abort", "write_ragged_meta", "write_extras", "merge_schema"]

SCHEMA_FORMAT, TABLE_FORMAT, VERSION = "padless.LongTableSchema", "padless.LongTable", 1


@dataclass
class LongTableSchema:
    """How a long table was read: enough to read another table with the same columns and no flags.

    ``to_dict()`` gives (JSON-able)::

        {"format": "padless.LongTableSchema", "version": 1, "id": "unit", "time": "t", "features": ["temp"],
         "target": "label", "target_source": "table", "label_id": null, "label_target": null,
         "task": "classify", "per_step": false, "classes": ["bad", "ok"], "class_type": "str",
         "horizon": null, "forecast_columns": null, "fill": null, "fill_values": null,
         "id_type": "int", "time_type": "int64"}

    ``target_source`` is ``"table"`` (a column of the long table), ``"labels"`` (a second id -> target table)
    or None; ``class_type`` (``int`` / ``float`` / ``bool`` / ``str``) turns ``classes`` back into values;
    ``fill_values`` holds the training means of ``fill="mean"``; ``time_type`` is the pyarrow type of the
    time column (times of integer / temporal columns are kept as exact int64 counts).
    """

    id: str
    features: list[str]
    time: str | None = None
    target: str | None = None
    target_source: str | None = None
    label_id: str | None = None
    label_target: str | None = None
    task: str | None = None
    per_step: bool = False
    classes: list[str] | None = None
    class_type: str | None = None
    horizon: int | None = None
    forecast_columns: list[str] | None = None
    fill: str | None = None
    fill_values: list[float] | None = None
    id_type: str = "int"
    time_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (see the class docstring)."""
        return {"format": SCHEMA_FORMAT, "version": VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LongTableSchema:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` on a dict that is not a schema."""
        if not isinstance(d, dict) or d.get("format") != SCHEMA_FORMAT:
            raise ConfigError(f"not a padless long-table schema (expected format {SCHEMA_FORMAT!r})")
        if int(d.get("version", 0)) > VERSION:
            raise ConfigError(f"the schema is version {d['version']}, newer than this padless; upgrade padless")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names - {"format", "version"})
        if unknown:
            raise ConfigError(f"unknown schema field {unknown[0]!r}; the schema was written by another padless")
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError as exc:
            raise ConfigError(f"incomplete long-table schema ({exc})") from exc


@dataclass
class LongTable:
    """A long table as ragged arrays (see :func:`read_long_table`).

    Attributes:
        x: Features, float32 values (sum T, F); memory-mapped when read with ``out_dir``.
        y: Per-sequence targets (N,) (int64 class codes or float32 values), per-step targets (a RaggedArray
            of float32 (sum T, 1) class codes or values; forecast: (sum T, H*K)), or None.
        ids: (N,) sequence ids (int64 or str) in first-appearance order.
        times: (sum T, 1) time of every step (float64, or int64 counts of ``schema.time_type``), or None.
        task: ``"classify"``, ``"regress"``, ``"tag"``, ``"forecast"`` or None (no targets).
        per_step: True when ``y`` has one target per step.
        feature_names, target_name, classes, id_name, time_name: Column names; class names (code k is
            ``classes[k]``).
        schema: How the table was read (:class:`LongTableSchema`).
        dropped_ids: Ids dropped as too short to forecast (``drop_short=True``), else None.
        path: The directory holding the arrays, when memory-mapped.
    """

    x: RaggedArray
    y: np.ndarray | RaggedArray | None
    ids: np.ndarray
    times: RaggedArray | None
    task: str | None
    per_step: bool
    feature_names: list[str]
    target_name: str | None
    classes: list[str] | None
    id_name: str
    time_name: str | None
    schema: LongTableSchema
    dropped_ids: np.ndarray | None = None
    path: Path | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def target_names(self) -> list[str]:
        """Names of the columns of ``y`` (forecast: ``"col+h"`` step-major)."""
        s = self.schema
        if s.task == "forecast":
            return [f"{c}+{h}" for h in range(1, (s.horizon or 1) + 1) for c in (s.forecast_columns or [])]
        return [self.target_name] if self.target_name else []

    def to_dict(self) -> dict[str, Any]:
        """The schema as a JSON-able dict (:meth:`LongTableSchema.to_dict`)."""
        return self.schema.to_dict()

    @staticmethod
    def from_dict(d: dict[str, Any]) -> LongTableSchema:
        """The schema from :meth:`to_dict`; pass it as ``read_long_table(path, schema=...)``."""
        return LongTableSchema.from_dict(d)

    def write_predictions(self, path: str | os.PathLike[str], preds: Any, columns: Any = None) -> Path:
        """:func:`write_long_predictions` with this table's ids, times and column names."""
        return write_long_predictions(
            path, self.ids, self.times, preds, columns, id_name=self.id_name, time_name=self.time_name or "step",
            time_type=self.schema.time_type,
        )

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the table to directory ``path`` atomically (reopen with :meth:`load`, memory-mapped)."""
        target, work, made = start_dir(path, overwrite)
        try:
            self.x.save(work / "x")
            if self.times is not None:
                self.times.save(work / "times")
            y = self.y
            if isinstance(y, RaggedArray):
                y.save(work / "y")
            write_extras(work, self.ids, None if isinstance(y, RaggedArray) else y, self.schema, self.dropped_ids)
            commit(work, target)
        except BaseException:
            abort(work, made)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LongTable:
        """Open a directory written by :meth:`save` or ``read_long_table(out_dir=...)`` (arrays memory-mapped)."""
        root = Path(path)
        with reading(root / "table.json", "a saved long table"):
            meta = json.loads((root / "table.json").read_text())
            if not isinstance(meta, dict) or meta.get("format") != TABLE_FORMAT:
                raise DataError(f"{root} is not a saved long table (table.json has another format)")
            schema = LongTableSchema.from_dict(meta["schema"])
            ids = np.load(root / "ids.npy", allow_pickle=False)
            y: Any = None
            if (root / "y").is_dir():
                y = RaggedArray.load(root / "y")
            elif (root / "y.npy").exists():
                y = np.load(root / "y.npy", allow_pickle=False)
            dropped = np.load(root / "dropped_ids.npy", allow_pickle=False) if (root / "dropped_ids.npy").exists() else None
            x = RaggedArray.load(root / "x")
            times = RaggedArray.load(root / "times") if (root / "times").is_dir() else None
        has_task = y is not None or schema.task == "forecast"
        return cls(
            x=x, y=y, ids=ids, times=times, task=schema.task if has_task else None, per_step=schema.per_step and has_task,
            feature_names=list(schema.features),
            target_name=schema.label_target if schema.target_source == "labels" else schema.target,
            classes=schema.classes, id_name=schema.id, time_name=schema.time, schema=schema, dropped_ids=dropped,
            path=root,
        )


def start_dir(path: str | os.PathLike[str], overwrite: bool) -> tuple[Path, Path, list[Path]]:
    """Prepare writing a result folder: ``(target, temporary folder, paths to remove on success)``."""
    target = Path(path)
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise DataError(f"{target} already exists; pass overwrite=True to replace it, or choose another out_dir")
        if not (target.is_dir() and (target / "table.json").is_file()):
            raise DataError(f"{target} exists and is not a saved long table; refusing to replace it: remove it yourself")
    made = [p for p in reversed(target.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    work.mkdir()
    return target, work, made


def commit(work: Path, target: Path) -> None:
    """Move the finished temporary folder into place (one rename)."""
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
        os.rename(target, old)
        os.rename(work, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(work, target)


def abort(work: Path, made: list[Path]) -> None:
    """Remove the temporary folder and anything made for it (nothing is left after a failure)."""
    shutil.rmtree(work, ignore_errors=True)
    for p in reversed(made):  # parents this call created, deepest first
        try:
            p.rmdir()
        except OSError:
            break


def write_ragged_meta(root: Path, offsets: np.ndarray, shape: tuple[int, ...], dtype: Any) -> None:
    """offsets.npy + meta.json next to a values.npy written in place (the RaggedArray directory format)."""
    np.save(root / "offsets.npy", offsets.astype(np.int64))
    meta = {"format": "padless.RaggedArray", "version": 1, "num_sequences": int(offsets.shape[0] - 1),
            "num_features": int(shape[1]), "total_steps": int(shape[0]), "dtype": str(np.dtype(dtype)),
            "allow_nonfinite": False, "allow_empty": False}
    (root / "meta.json").write_text(json.dumps(meta, indent=2))


def write_extras(work: Path, ids: np.ndarray, y: np.ndarray | None, schema: LongTableSchema, dropped: Any) -> None:
    """Write ``ids.npy``, per-sequence targets and ``table.json`` (the schema) into the result folder."""
    np.save(work / "ids.npy", ids, allow_pickle=False)
    if y is not None:
        np.save(work / "y.npy", y, allow_pickle=False)
    if dropped is not None:
        np.save(work / "dropped_ids.npy", dropped, allow_pickle=False)
    meta = {"format": TABLE_FORMAT, "version": VERSION, "schema": schema.to_dict(), "num_sequences": int(len(ids))}
    (work / "table.json").write_text(json.dumps(meta, indent=2))


def merge_schema(fresh: LongTableSchema, old: LongTableSchema) -> LongTableSchema:
    """The schema of a read with ``schema=old``: what this read found, and the old values for what it did not see."""
    d = asdict(fresh)
    for k, v in asdict(old).items():
        if d.get(k) is None:
            d[k] = v
    if fresh.task is None:  # no targets this time: keep the task as it was
        d["per_step"] = old.per_step
    return LongTableSchema(**d)
