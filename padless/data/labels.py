"""Class labels: numeric-aware ordering of class names and their encoding to integer ids.

Owns: :func:`sort_class_names`, :func:`encode_labels` and :func:`encode_classes` (raw labels of any kind
-> int64 ids plus the class names). Every reader that meets class labels (``.ts`` files, Parquet, ``.npz``,
long tables) uses these, so the same labels always map to the same ids. Does not own: reading files.

Example:
    >>> sort_class_names(["10", "2", "b", "a"])
    ['2', '10', 'a', 'b']
    >>> ids, names = encode_classes(np.array(["b", "a", "b"]))
    >>> ids.tolist(), names
    ([1, 0, 1], ['a', 'b'])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from padless.errors import DataError

__all__ = ["sort_class_names", "encode_labels", "encode_classes"]


def sort_class_names(names: Iterable[str]) -> list[str]:
    """Sort class names numeric-aware: numbers by value first (``"2"`` before ``"10"``), then text.

    Args:
        names: Class names (duplicates are removed).

    Returns:
        The sorted unique names.
    """

    def key(name: str) -> tuple[int, float, str]:
        try:
            value = float(name)
        except ValueError:
            return (1, 0.0, name)
        return (0, value, name) if math.isfinite(value) else (1, 0.0, name)

    return sorted({str(n) for n in names}, key=key)




def encode_labels(labels: Sequence[str], class_names: Sequence[str], source: str) -> np.ndarray:
    """Map string labels to int64 indices into ``class_names``; unknown labels raise DataError."""
    index = {name: i for i, name in enumerate(class_names)}
    out = np.empty(len(labels), dtype=np.int64)
    for row, label in enumerate(labels):
        if label not in index:
            raise DataError(
                f"{source}: row {row} has label {label!r}, which is not among the class names {list(class_names)}; "
                f"pass class_names= covering every label"
            )
        out[row] = index[label]
    return out


def encode_classes(labels: np.ndarray | Sequence[object], class_names: Sequence[str] | None = None,
                   source: str = "labels") -> tuple[np.ndarray, list[str]]:
    """Encode one class label per sequence as int64 ids; return ``(ids, class names)``.

    Args:
        labels: (N,) labels of any kind (numbers, strings, bools); compared by their string form.
        class_names: a fixed order (e.g. a trained model's classes); default: the labels sorted
            numeric-aware.
        source: what the labels came from, for error messages.

    Raises:
        DataError: labels that are not one per sequence, or a label outside ``class_names``.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise DataError(f"{source}: labels must hold one class per sequence (a 1-D array); got shape {arr.shape}")
    raw = [str(v) for v in arr.tolist()]
    names = [str(c) for c in class_names] if class_names else sort_class_names(set(raw))
    return encode_labels(raw, names, source), names
