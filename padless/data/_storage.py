"""On-disk format of :class:`~padless.data.RaggedArray` (private): a directory that opens memory-mapped.

Owns: :func:`save` and :func:`load` behind ``RaggedArray.save`` / ``RaggedArray.load``, and the format::

    path/
      values.npy    (sum T_i, F) array, opened with np.load(mmap_mode="r")
      offsets.npy   (N+1,) int64
      meta.json     {"format": "padless.RaggedArray", "version": 1, "num_sequences": N,
                     "num_features": F, "total_steps": sum T_i, "dtype": "float32",
                     "allow_nonfinite": false, "allow_empty": false}

Writes go to a temporary sibling directory renamed into place (atomic on one file system); an existing
saved RaggedArray is replaced only with ``overwrite=True`` and anything else never. Does not own: Parquet
(:mod:`padless.data.parquet`) or the container's checks (:mod:`padless.data._checks`).

Example:
    >>> import tempfile, os
    >>> from padless.data import RaggedArray
    >>> d = os.path.join(tempfile.mkdtemp(), "ds")
    >>> _ = save(RaggedArray.from_list([[1.0], [2.0, 3.0]]), d)
    >>> sorted(os.listdir(d))
    ['meta.json', 'offsets.npy', 'values.npy']
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from padless.data._checks import check_finite, check_offsets
from padless.errors import DataError, one_line

if TYPE_CHECKING:
    from padless.data.ragged import RaggedArray

__all__ = ["FORMAT", "FORMAT_VERSION", "save", "load", "is_saved_ragged"]

FORMAT = "padless.RaggedArray"
FORMAT_VERSION = 1


def is_saved_ragged(path: Path) -> bool:
    """True if ``path`` holds a ``meta.json`` of this format (i.e. it is safe to replace)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def save(ra: RaggedArray, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``ra`` to directory ``path`` atomically (see ``RaggedArray.save``)."""
    target = Path(path)
    exists = target.exists() or target.is_symlink()
    if exists and not overwrite:
        raise DataError(f"{target} already exists; pass overwrite=True to replace it, or choose another path")
    if exists and not (target.is_dir() and not target.is_symlink() and is_saved_ragged(target)):
        raise DataError(
            f"{target} exists and is not a saved RaggedArray; refusing to overwrite it even with "
            f"overwrite=True. Remove it yourself or choose another path"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"  # same file system: rename is atomic
    tmp.mkdir()  # (mkdir honours the umask; mkdtemp would make it private)
    try:
        np.save(tmp / "values.npy", ra.values)
        np.save(tmp / "offsets.npy", ra.offsets)
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "num_sequences": len(ra),
            "num_features": ra.num_features,
            "total_steps": ra.total_steps,
            "dtype": str(ra.dtype),
            "allow_nonfinite": ra.allow_nonfinite,
            "allow_empty": ra.allow_empty,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if exists:
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, target)
            except OSError as exc:
                raise DataError(f"{target} appeared while saving; not overwriting it ({exc})") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load(path: str | os.PathLike[str], *, mmap: bool = True) -> tuple[np.ndarray, np.ndarray, bool, bool, tuple[str, int, int] | None]:
    """Open a directory written by :func:`save`: ``(values, offsets, allow_nonfinite, allow_empty, mmap source)``,
    checked; ``RaggedArray.load`` builds the container from them."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root} is not a saved RaggedArray directory (expected values.npy, offsets.npy, meta.json)")
    try:
        meta = json.loads((root / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{root}: meta.json is missing or unreadable ({one_line(exc)}); re-save the data set") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{root}/meta.json is not a padless RaggedArray description; re-save the data set")
    if int(meta.get("version", 0)) > FORMAT_VERSION:
        raise DataError(f"{root} was written by a newer padless (format {meta['version']}); upgrade padless")
    values_file = root / "values.npy"
    try:
        offsets = np.load(root / "offsets.npy", allow_pickle=False)
        values = np.load(values_file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{root}: cannot read the data files ({one_line(exc)}); the data set is incomplete or corrupted") from exc
    expected = (int(meta.get("total_steps", -1)), int(meta.get("num_features", -1)))
    if values.shape != expected or str(values.dtype) != meta.get("dtype"):
        raise DataError(
            f"{values_file} has shape {values.shape} and dtype {values.dtype}, but meta.json says {expected} "
            f"and {meta.get('dtype')}; the data set is corrupted, re-save it"
        )
    if offsets.shape != (int(meta.get("num_sequences", -1)) + 1,):
        raise DataError(f"{root}/offsets.npy has shape {offsets.shape}, inconsistent with meta.json; re-save it")
    allow_nonfinite = bool(meta.get("allow_nonfinite", False))
    allow_empty = bool(meta.get("allow_empty", False))
    check_offsets(offsets, values.shape[0], allow_empty)
    if not mmap and not allow_nonfinite:
        check_finite(values, offsets)
    source = (str(values_file.resolve()), 0, int(values.shape[0])) if mmap else None
    return values, offsets.astype(np.int64, copy=False), allow_nonfinite, allow_empty, source
