"""Targets of the long-table reader (private to :mod:`padless.data.tables`): task inference, classes, labels.

Owns: the task rule (:func:`decide_task`), class encoding (:class:`ClassMap`) and the second ``labels``
table (:func:`read_labels`: one ``label_id -> label_target`` row per id; ids without a label and labels of
unknown ids are errors naming the first few). Does not own: reading the long table
(:mod:`padless.data.tables_scan`).

Task inference (``task="auto"``): a text or bool target is a class label; an integer target is a class
label when it has at most ``max(20, ceil(5% of the number of sequences))`` distinct values; anything else
(floats, many integers) is regression. A target constant within every id is per sequence (``classify`` /
``regress``), otherwise per step (``tag`` / per-step ``regress``); ``per_step=`` overrides that. Classes
are sorted naturally (numbers numerically, text alphabetically, False before True) and encoded 0..K-1.
A CSV column of whole numbers reads as integers (pass ``task="regress"`` for a numeric target that only
looks like classes).

Example:
    >>> decide_task("auto", None, "int", 3, 100, varies=False)
    ('classify', False)
    >>> decide_task("auto", None, "float", None, 100, varies=True)
    ('regress', True)
    >>> ClassMap.from_values("int", [10, 2, 100, 2]).names
    ['2', '10', '100']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from padless.data.tables_columns import (
    Columns,
    fmt_ids,
    fmt_value,
    id_array,
    lookup,
    missing_column,
    retrying,
    value_kind,
)
from padless.data.tables_io import TableSource
from padless.errors import ConfigError, DataError

__all__ = ["MAX_CLASSES", "TASKS", "ClassMap", "is_classy", "decide_task", "read_labels"]

MAX_CLASSES = 100_000  #: more distinct target values than this cannot be class labels

TASKS = ("auto", "classify", "regress", "tag", "forecast")


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
        kind = value_kind(arr.type)
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
        raise missing_column(src, "label id", label_id)
    if label_target is None:
        others = [c for c in src.columns if c != label_id]
        if len(others) != 1:
            raise DataError(
                f"{src.name} has columns {', '.join(src.columns)}; pass label_target= to say which holds the target"
            )
        label_target = others[0]
    if label_target not in src.columns:
        raise missing_column(src, "label target", label_target)
    cols = Columns(id=label_id, time=None, features=[], target=label_target)

    def run() -> list[Any]:
        return list(src.batches([label_id, label_target]))

    batches = retrying(src, cols, run)
    if not batches:
        raise DataError(f"{src.name}: the labels table has no rows")
    lid = pa.concat_arrays([id_array(src, label_id, b.column(0), r) for r, b in batches])
    tgt = pa.concat_arrays([b.column(1) for _, b in batches])
    kind = value_kind(tgt.type)
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
