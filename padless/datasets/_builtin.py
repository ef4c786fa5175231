"""The built-in data sets shipped inside the sktime wheel, and their on-disk cache.

Owns: the registry of built-in names (:func:`names`), :func:`load` and :func:`classes`, and the cache of
converted arrays under ``$PADLESS_CACHE`` (default ``$XDG_CACHE_HOME/padless`` or ``~/.cache/padless``),
one directory per data set and sktime version, written atomically and rebuilt if it is found corrupted.
Does not own: ``.ts`` parsing (sktime's loader, wrapped in :mod:`padless.data.ts`).

Example:
    >>> names()
    ['japanese_vowels', 'plaid']
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from padless.data.labels import encode_labels, sort_class_names
from padless.data.ragged import RaggedArray
from padless.data.ts import read_ts, sktime_root, sktime_version
from padless.errors import DataError, PadlessError

__all__ = ["load", "classes", "names", "cache_dir"]

_CACHE_FORMAT = 1

Split = tuple[RaggedArray, np.ndarray]


@dataclass(frozen=True)
class _Builtin:
    name: str
    folder: str  # under sktime/datasets/data/
    summary: str


_REGISTRY = {
    "japanese_vowels": _Builtin(
        "japanese_vowels", "JapaneseVowels", "speaker from 12 LPC cepstra; 9 classes, 270/370, lengths 7-29"
    ),
    "plaid": _Builtin("plaid", "PLAID", "appliance from its current draw; 11 classes, 537/537, lengths 100-1344"),
}


def names() -> list[str]:
    """Names accepted by :func:`load`.

    Example:
        >>> "plaid" in names()
        True
    """
    return sorted(_REGISTRY)


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _lookup(name: str) -> _Builtin:
    if not isinstance(name, str):
        raise PadlessError(f"data set name must be a string, got {type(name).__name__}; choose one of {names()}")
    by_key = {_normalise(k): v for k, v in _REGISTRY.items()}
    if _normalise(name) in by_key:
        return by_key[_normalise(name)]
    close = difflib.get_close_matches(_normalise(name), list(by_key), n=1, cutoff=0.5)
    hint = f"; did you mean {by_key[close[0]].name!r}?" if close else ""
    raise PadlessError(f"unknown data set {name!r}{hint} Available: {names()}")


def cache_dir() -> Path:
    """Root of padless's cache: ``$PADLESS_CACHE``, else ``$XDG_CACHE_HOME/padless``, else ``~/.cache/padless``."""
    if os.environ.get("PADLESS_CACHE"):
        return Path(os.environ["PADLESS_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "padless"
    return Path.home() / ".cache" / "padless"


def _entry_dir(spec: _Builtin) -> Path:
    return cache_dir() / "datasets" / f"{spec.name}-sktime{sktime_version()}-v{_CACHE_FORMAT}"


def _read_cache(entry: Path) -> tuple[Split, Split, list[str]]:
    """Load a cache entry; raise DataError (or OSError/ValueError) if anything is off."""
    meta = json.loads((entry / "meta.json").read_text())
    if meta.get("format") != _CACHE_FORMAT:
        raise DataError(f"{entry}: unknown cache format")
    class_names = [str(c) for c in meta["classes"]]
    splits = []
    for split in ("train", "test"):
        x = RaggedArray.load(entry / split, mmap=False)  # small: read into RAM (also re-checks NaN/inf)
        y = np.load(entry / f"y_{split}.npy", allow_pickle=False)
        if y.shape != (len(x),) or y.dtype != np.int64 or len(x) != meta[f"{split}_size"]:
            raise DataError(f"{entry}: {split} labels do not match the sequences")
        if y.size and (y.min() < 0 or y.max() >= len(class_names)):
            raise DataError(f"{entry}: {split} labels outside 0..{len(class_names) - 1}")
        splits.append((x, y))
    return splits[0], splits[1], class_names


def _convert(spec: _Builtin) -> tuple[Split, Split, list[str]]:
    """Read sktime's bundled .ts files (train and test) into RaggedArrays and int64 labels."""
    folder = sktime_root() / "datasets" / "data" / spec.folder
    raw = [read_ts(folder / f"{spec.folder}_{split}.ts") for split in ("TRAIN", "TEST")]
    class_names = sort_class_names([str(v) for _, labels in raw for v in labels])
    train, test = ((x, encode_labels([str(v) for v in labels], class_names, spec.name)) for x, labels in raw)
    return train, test, class_names


def _write_cache(entry: Path, train: Split, test: Split, class_names: list[str]) -> None:
    """Write a cache entry to a temporary sibling directory, then rename it into place (atomic)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".{entry.name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    try:
        for split, (x, y) in (("train", train), ("test", test)):
            x.save(tmp / split)
            np.save(tmp / f"y_{split}.npy", y)
        meta = {
            "format": _CACHE_FORMAT,
            "sktime": sktime_version(),
            "classes": class_names,
            "train_size": len(train[0]),
            "test_size": len(test[0]),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.rename(tmp, entry)
        except OSError:
            pass  # another process finished first; its entry is used
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _cached(name: str) -> tuple[Split, Split, list[str]]:
    spec = _lookup(name)
    entry = _entry_dir(spec)
    if entry.exists():
        try:
            return _read_cache(entry)
        except (DataError, OSError, ValueError, KeyError, TypeError):
            shutil.rmtree(entry, ignore_errors=True)  # corrupted: rebuilt below
    train, test, class_names = _convert(spec)
    try:
        _write_cache(entry, train, test, class_names)
    except OSError as exc:  # e.g. a read-only cache directory: work without the cache
        warnings.warn(f"padless could not write its data-set cache at {entry} ({exc}); set PADLESS_CACHE", stacklevel=3)
    return train, test, class_names


def load(name: str) -> tuple[Split, Split]:
    """Load a built-in data set, Keras style: ``(x_train, y_train), (x_test, y_test)``.

    ``x`` is a float32 :class:`~padless.data.RaggedArray`; ``y`` holds int64 labels ``0..K-1`` in the order
    of :func:`classes` (class names sorted numeric-aware). The first call converts sktime's bundled
    ``.ts`` files and caches the result (see :func:`cache_dir`); later calls read the cache.

    Built-in names: ``"japanese_vowels"`` (12 features, 9 classes, 270 train / 370 test, lengths 7-29) and
    ``"plaid"`` (1 feature, 11 classes, 537 / 537, lengths 100-1344).

    Args:
        name: One of :func:`names` (case, ``-`` and ``_`` are ignored).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``.

    Raises:
        PadlessError: Unknown name (with a "did you mean"), or sktime is not installed.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load("japanese_vowels")
        >>> len(x_train), x_train.num_features, int(y_train.max()) + 1
        (270, 12, 9)
    """
    train, test, _ = _cached(name)
    return train, test


def classes(name: str) -> list[str]:
    """Class names of a built-in data set; label ``k`` means ``classes(name)[k]``.

    Example:
        >>> classes("plaid")[-3:]
        ['8', '9', '10']
    """
    return _cached(name)[2]
