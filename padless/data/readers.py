"""Reading labelled sequence files: one entry point for every file format padless takes.

Owns: :func:`read_data` (a sktime ``.ts`` file, a directory written by ``RaggedArray.save`` with an
optional ``labels.npy``, an ``.npz`` with ``values``/``offsets`` (and ``labels``), or a Parquet file with
one list column per sequence) and :class:`LabeledData`, what it returns. Class labels of every format are
encoded the same way (:mod:`padless.data.labels`). Every problem is one :class:`~padless.errors.DataError`
line naming the file and the fix.

Does not own: the built-in data sets by name (:func:`padless.datasets.load_data` resolves a name, then
calls this), the formats' details (:mod:`padless.data.ts`, :mod:`padless.data.parquet`,
:class:`padless.data.RaggedArray`), or long tables with one row per step (:mod:`padless.data.tables`).

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "d.npz")
    >>> np.savez(p, values=np.ones((5, 2)), offsets=np.array([0, 2, 5]), labels=np.array(["a", "b"]))
    >>> d = read_data(p)
    >>> len(d.x), d.y.tolist(), d.classes
    (2, [0, 1], ['a', 'b'])
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from padless.data.labels import sort_class_names
from padless.data.parquet import read_parquet
from padless.data.ragged import RaggedArray
from padless.data.tables_damaged import reading
from padless.data.ts import load_ts
from padless.errors import DataError

__all__ = ["LabeledData", "read_data", "encode_known_classes", "FILE_FORMATS"]

FILE_FORMATS = (".ts", ".parquet", ".pq", ".npz", "RaggedArray directory")


@dataclass
class LabeledData:
    """Sequences and (optionally) one class label per sequence.

    Attributes:
        x: the sequences.
        y: (N,) int64 class ids, or None when the file has no labels.
        classes: class names (``classes[y[i]]`` is sequence i's label), or None.
    """

    x: RaggedArray
    y: np.ndarray | None
    classes: list[str] | None

    def __iter__(self):  # type: ignore[no-untyped-def]
        """Unpack as ``x, y, classes``."""
        return iter((self.x, self.y, self.classes))


def encode_known_classes(labels: np.ndarray, class_names: Sequence[str] | None, source: str) -> tuple[np.ndarray, list[str]]:
    """One class label per sequence -> int64 ids, in ``class_names`` order when given (a trained model's).

    Raises:
        DataError: not one label per sequence, or a label the model does not know.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"{source}: labels must hold one class per sequence (a 1-D array); got shape {labels.shape}")
    raw = [str(v) for v in labels.tolist()]
    names = list(class_names) if class_names else sort_class_names(set(raw))
    index = {n: i for i, n in enumerate(names)}
    out = np.empty(len(raw), dtype=np.int64)
    for i, r in enumerate(raw):
        if r not in index:
            raise DataError(f"label {r!r} of sequence {i} is not a class the model knows ({', '.join(names)})")
        out[i] = index[r]
    return out, names


def _no_labels(x: RaggedArray, class_names: Sequence[str] | None) -> LabeledData:
    return LabeledData(x, None, list(class_names) if class_names else None)


def _read_npz(p: Path, class_names: Sequence[str] | None) -> LabeledData:
    try:
        with np.load(p, allow_pickle=False) as z:
            if "values" not in z or "offsets" not in z:
                raise DataError(f"{p}: an .npz needs arrays 'values' (sum T, F) and 'offsets' (N+1); found {list(z)}")
            values, offsets = np.asarray(z["values"]), np.asarray(z["offsets"])
            labels = z["labels"] if "labels" in z else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:  # object arrays, not a zip, damaged
        raise DataError(f"{p}: not a readable .npz of numeric arrays ({str(e).splitlines()[0][:120]})") from None
    x = RaggedArray(values, offsets)
    if labels is None:
        return _no_labels(x, class_names)
    y, names = encode_known_classes(labels, class_names, str(p))
    return LabeledData(x, y, names)


def _read_dir(p: Path, class_names: Sequence[str] | None) -> LabeledData:
    x = RaggedArray.load(p, mmap=True)
    lab = p / "labels.npy"
    if not lab.exists():
        return _no_labels(x, class_names)
    try:
        raw = np.load(lab, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # object arrays are refused: loading them runs pickle
        raise DataError(f"{lab}: not a readable numeric .npy ({str(e).splitlines()[0][:120]})") from None
    y, names = encode_known_classes(raw, class_names, str(lab))
    return LabeledData(x, y, names)


def _read_parquet(p: Path, class_names: Sequence[str] | None, column: str, label_column: str) -> LabeledData:
    try:
        x, labels = read_parquet(p, column=column, label_column=label_column)  # type: ignore[misc]
    except DataError as e:
        if "no column" in str(e) and label_column in str(e):
            return _no_labels(read_parquet(p, column=column), class_names)  # type: ignore[arg-type]
        raise
    y, names = encode_known_classes(np.asarray(labels), class_names, str(p))
    return LabeledData(x, y, names)


def read_data(path: str | os.PathLike[str], class_names: Sequence[str] | None = None, label_column: str = "y",
              column: str = "x") -> LabeledData:
    """Read a labelled (or unlabelled) sequence file; see the module docstring for the formats.

    Args:
        path: the file or RaggedArray directory.
        class_names: the class order to encode labels in (a trained model's); default: sorted labels.
        label_column: Parquet column with the labels.
        column: Parquet list column with the sequences.

    Raises:
        DataError: a missing file, an unknown format, damaged contents, or a label outside ``class_names``.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or directory")
    suffix = p.suffix.lower()
    with reading(p, suffix or "a RaggedArray directory"):  # a damaged file: one line naming it, never a traceback
        if suffix == ".ts":
            x, y, names = load_ts(p, class_names=class_names)
            return LabeledData(x, y, names)
        if suffix in (".parquet", ".pq"):
            return _read_parquet(p, class_names, column, label_column)
        if suffix == ".npz":
            return _read_npz(p, class_names)
        if p.is_dir():
            return _read_dir(p, class_names)
    raise DataError(f"{p}: unknown data format {suffix or '(none)'}; use {', '.join(FILE_FORMATS)}")
