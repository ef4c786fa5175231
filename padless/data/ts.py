"""Reading sktime ``.ts`` files into a :class:`~padless.data.RaggedArray` with integer labels.

Owns: :func:`read_ts` (sequences + raw labels), :func:`load_ts` (a user's own ``.ts`` file, labels encoded)
and the "is sktime installed" check. Does not own: the built-in data sets or their cache
(:mod:`padless.datasets`), class-name ordering (:mod:`padless.data.labels`). Parsing is done by sktime's
own ``load_from_tsfile``; there is no hand-written parser here.

Example:
    >>> x, raw = read_ts(sktime_root() / "datasets/data/JapaneseVowels/JapaneseVowels_TEST.ts")
    >>> len(x), x.num_features, sorted(set(raw.tolist()))[:2]
    (370, 12, ['1', '2'])
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from padless.data.labels import encode_labels, sort_class_names
from padless.data.ragged import RaggedArray
from padless.errors import DataError, PadlessError, one_line

__all__ = ["load_ts", "read_ts", "sktime_version", "sktime_root"]

_INSTALL_HINT = "the data-set loaders need sktime, which is not installed; run: pip install 'padless[datasets]'"


def _sktime_spec() -> Any:
    try:
        spec = importlib.util.find_spec("sktime")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PadlessError(_INSTALL_HINT)
    return spec


def sktime_version() -> str:
    """Installed sktime version, without importing sktime (fast).

    Raises:
        PadlessError: sktime is not installed (the message says how to install it).
    """
    _sktime_spec()
    try:
        return importlib.metadata.version("sktime")
    except importlib.metadata.PackageNotFoundError as exc:
        raise PadlessError(_INSTALL_HINT) from exc


def sktime_root() -> Path:
    """Directory of the installed sktime package (where its bundled data files live)."""
    return Path(list(_sktime_spec().submodule_search_locations)[0])


def _loader() -> Any:
    try:
        from sktime.datasets import load_from_tsfile
    except ImportError as exc:
        raise PadlessError(_INSTALL_HINT) from exc
    return load_from_tsfile


def _declared_labels(file: Path) -> list[str] | None:
    """The class labels that the header's ``@classLabel true ...`` line declares (None: no such list)."""
    with open(file, encoding="utf-8", errors="replace") as f:
        for line in f:
            words = line.strip().split()
            if not words:
                continue
            key = words[0].lower()
            if key == "@data":
                return None
            if key == "@classlabel" and len(words) > 2 and words[1].lower() == "true":
                return words[2:]
    return None


def read_ts(path: str | os.PathLike[str], *, allow_nonfinite: bool = False) -> tuple[RaggedArray, np.ndarray]:
    """Read a ``.ts`` file with sktime's loader; return float32 sequences and the raw string labels.

    Raises:
        DataError: The file is missing or sktime cannot parse it (the message names the file).
        PadlessError: sktime is not installed.
    """
    file = Path(path)
    load_from_tsfile = _loader()
    if not file.is_file():
        raise DataError(f"{file}: no such .ts file")
    try:
        frames, labels = load_from_tsfile(os.fspath(file), return_data_type="df-list")
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, OSError) as exc:
        raise DataError(
            f"{file}: sktime could not parse this .ts file ({type(exc).__name__}: {one_line(exc)}); check its header and "
            f"that every line is 'v,v,...[:v,v,...]:label' (class labels are required)"
        ) from exc
    declared = _declared_labels(file)
    if declared is not None:  # sktime does not check the body against the header's @classLabel list
        for row, label in enumerate(labels):
            if str(label) not in declared:
                raise DataError(
                    f"{file}: row {row} has class label {str(label)!r}, which the header's @classLabel does not list "
                    f"({', '.join(declared)}); fix the header or that row"
                )
    arrays = [np.asarray(frame.to_numpy(dtype=np.float64), dtype=np.float32) for frame in frames]  # (T_i, F)
    try:
        x = RaggedArray.from_list(arrays, allow_nonfinite=allow_nonfinite)
    except DataError as exc:
        raise DataError(f"{file}: {exc}") from exc
    return x, np.asarray([str(v) for v in labels])


def load_ts(
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    allow_nonfinite: bool = False,
) -> tuple[RaggedArray, np.ndarray, list[str]]:
    """Load your own sktime ``.ts`` classification file.

    Args:
        path: The ``.ts`` file (it must carry class labels).
        class_names: Fixed label order (e.g. the training file's, so that a test file maps the same way).
            Default: the file's own labels, sorted numeric-aware.
        allow_nonfinite: Keep missing values (``?`` in the file, read as NaN) instead of raising.

    Returns:
        ``(x, y, class_names)``: float32 RaggedArray, int64 labels in ``0..K-1`` and the K names.

    Raises:
        DataError: Missing or malformed file, NaN values, or a label outside ``class_names``.
        PadlessError: sktime is not installed.

    Example:
        >>> x, y, names = load_ts(sktime_root() / "datasets/data/PLAID/PLAID_TEST.ts")
        >>> len(x), x.num_features, names[:3], int(y.max())
        (537, 1, ['0', '1', '2'], 10)
    """
    x, raw = read_ts(path, allow_nonfinite=allow_nonfinite)
    names = sort_class_names(raw) if class_names is None else [str(c) for c in class_names]
    return x, encode_labels([str(v) for v in raw], names, os.fspath(path)), names
