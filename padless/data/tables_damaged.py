"""Damaged or mislabelled input files: one-line errors any padless reader can use.

Owns: :func:`sniff` (what the first bytes of a file look like: Parquet, Arrow, gzip, zip/.npz, .npy, text,
binary...), :func:`damaged_file_error` (the one-line :class:`~padless.errors.DataError` naming the file, the
format expected, the library's own first line and what the file looks like) and the context manager
:func:`reading` that turns low-level read failures (``OSError``, ``EOFError``, ``zipfile.BadZipFile``,
``pyarrow.ArrowException``, ...) into that error. Generic: nothing here knows about tables, so the ``.ts``,
``.npz`` and list-column Parquet readers can use it too. Does not own: any reader.

Example:
    >>> import numpy as np, os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x.npz")
    >>> _ = open(p, "wb").write(b"id,x\\n1,2\\n")
    >>> try:
    ...     with reading(p, ".npz"):
    ...         np.load(p)
    ... except DataError as e:
    ...     print(str(e).split("; ")[1][:40])
    its first bytes look like text (CSV?)
"""

from __future__ import annotations

import gzip
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from padless.errors import DataError, PadlessError

__all__ = ["SNIFF_BYTES", "sniff", "describe", "damaged_file_error", "reading"]

SNIFF_BYTES = 1 << 16  #: bytes read to tell what a file is


def sniff(path: str | os.PathLike[str]) -> str:
    """Describe what the first bytes of ``path`` look like, e.g. ``"a Parquet file"`` or ``"text (CSV?)"``.

    Returns ``"missing"`` for a file that does not exist and ``"empty"`` for a 0-byte file.

    Example:
        >>> import tempfile
        >>> f = tempfile.NamedTemporaryFile(suffix=".bin", delete=False); _ = f.write(b"PAR1xxxx"); f.close()
        >>> sniff(f.name)
        'a Parquet file'
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    return describe(head)


def describe(head: bytes) -> str:
    """What the first bytes ``head`` of a file look like (see :func:`sniff`)."""
    if not head:
        return "empty"
    magics = [
        (b"PAR1", "a Parquet file"), (b"ARROW1", "an Arrow IPC / Feather file"), (b"FEA1", "a Feather v1 file"),
        (b"\xff\xff\xff\xff", "an Arrow IPC stream"), (b"\x1f\x8b", "gzip-compressed data"),
        (b"PK\x03\x04", "a zip archive (e.g. .npz)"), (b"\x93NUMPY", "a NumPy .npy file"),
        (b"BZh", "bzip2-compressed data"), (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    ]
    for magic, what in magics:
        if head.startswith(magic):
            return what
    if b"\x00" in head:
        return "binary data"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a cut multi-byte character at the end is fine
            return "non-UTF-8 text or binary data"
    return "text (CSV?)"


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def damaged_file_error(path: str | os.PathLike[str], exc: BaseException, kind: str | None = None) -> DataError:
    """The one-line :class:`DataError` for a file that could not be read (truncated, corrupted, mislabelled).

    Generic: any reader can wrap the exception its library raised. The message names the file, the format
    expected (``kind``, e.g. ``"Parquet"``, ``"CSV"``, ``".npz"``), the library's own first line and what the
    file's first bytes look like.

    Args:
        path: The file being read.
        exc: The exception the reading library raised.
        kind: Human name of the expected format; None for "the file".

    Returns:
        A DataError to ``raise ... from exc``.

    Example:
        >>> err = damaged_file_error("x.parquet", OSError("Unexpected end of stream"), "Parquet")
        >>> print(err)  # doctest: +ELLIPSIS
        x.parquet: cannot read it as Parquet (Unexpected end of stream); it is missing; ...
    """
    what = sniff(path)
    name = os.fspath(path)
    if what == "missing":
        state = "it is missing; check the path"
    elif what == "empty":
        state = "the file is empty (0 bytes); re-create it"
    else:
        state = f"its first bytes look like {what}; the file is truncated, corrupted or not {kind or 'this format'}: re-create or re-download it"
    reason = f"it as {kind}" if kind else "it"
    return DataError(f"{name}: cannot read {reason} ({_first_line(exc)}); {state}")


def _damage_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [
        OSError, EOFError, ValueError, MemoryError, OverflowError, IndexError, KeyError, UnicodeError,
        zipfile.BadZipFile, zlib.error, struct.error, gzip.BadGzipFile,
    ]
    try:
        import pyarrow as pa

        types.append(pa.ArrowException)
    except ImportError:  # pragma: no cover - pyarrow is optional for other readers
        pass
    return tuple(types)


@contextmanager
def reading(path: str | os.PathLike[str], kind: str | None = None) -> Iterator[None]:
    """Turn any low-level read failure inside the block into :func:`damaged_file_error`.

    :class:`~padless.errors.PadlessError` passes through unchanged (it already is a one-line message).
    Wrap only the library calls that touch the file, not your own processing, so your bugs stay visible.

    Example:
        >>> import numpy as np
        >>> try:
        ...     with reading("nothing.npz", ".npz"):
        ...         np.load("nothing.npz")
        ... except DataError as e:
        ...     print(str(e).split(" (")[0])
        nothing.npz: cannot read it as .npz
    """
    try:
        yield
    except PadlessError:
        raise
    except _damage_types() as exc:
        raise damaged_file_error(path, exc, kind) from exc
