"""Real data sets for examples, tests and benchmarks, and reading a DATA argument by name or path.

Owns: the public data-set API: :func:`load` / :func:`classes` / :func:`names` for the built-in data sets
(``"japanese_vowels"`` and ``"plaid"``, both shipped inside the ``sktime`` wheel), :func:`load_ts` for
your own sktime ``.ts`` files, and :func:`load_data` - what the command line reads as DATA: a built-in
name (with its train or test split) or any file :func:`padless.data.readers.read_data` reads.
Does not own: any parsing (sktime's ``load_from_tsfile``, :mod:`padless.data.readers`), the container
(:class:`padless.data.RaggedArray`) or batching. Needs the optional extra for the built-in sets and
``.ts`` files: ``pip install 'padless[datasets]'``.

Example:
    >>> import padless.datasets
    >>> (x_train, y_train), (x_test, y_test) = padless.datasets.load("plaid")
    >>> x_train.num_features, len(padless.datasets.classes("plaid"))
    (1, 11)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from padless.data.readers import LabeledData, read_data
from padless.data.ts import load_ts
from padless.datasets._builtin import cache_dir, classes, load, names
from padless.errors import DataError

__all__ = ["load", "classes", "names", "load_ts", "cache_dir", "load_data", "LabeledData"]


def load_data(spec: str | os.PathLike[str], split: str = "train", class_names: Sequence[str] | None = None,
              label_column: str = "y", column: str = "x") -> LabeledData:
    """Read DATA as the command line does: a built-in name (``split`` picks train or test) or a file.

    Args:
        spec: ``"japanese_vowels"``, ``"plaid"``, or a path (see :func:`padless.data.readers.read_data`).
        split: ``"train"`` or ``"test"`` for a built-in name (ignored for files).
        class_names: the class order to encode file labels in (a trained model's classes).
        label_column: Parquet column holding the labels.
        column: Parquet list column holding the sequences.

    Returns:
        :class:`LabeledData` (unpacks as ``x, y, classes``).

    Raises:
        DataError: neither a built-in name nor an existing file, or a file that cannot be read.

    Example:
        >>> x, y, classes = load_data("japanese_vowels", "test")
        >>> len(x), len(classes)
        (370, 9)
    """
    p = Path(spec)
    if not p.exists():
        if str(spec).lower() in {n.lower() for n in names()}:
            (xtr, ytr), (xte, yte) = load(str(spec))
            x, y = (xtr, ytr) if split == "train" else (xte, yte)
            return LabeledData(x, np.asarray(y), list(classes(str(spec))))
        raise DataError(f"no file or built-in data set named {str(spec)!r} (built-in: {', '.join(names())})")
    return read_data(p, class_names=class_names, label_column=label_column, column=column)
