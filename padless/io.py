"""Shared low-level I/O: the version, atomic writes, the safetensors header, checksums.

Owns: :data:`VERSION`, :func:`atomic_write_bytes`, :func:`read_safetensors_header` (the metadata of a
safetensors file or buffer, read without loading tensors), :func:`tensor_digest` and
:func:`metadata_digest` (SHA-256 of tensors and metadata, so a flipped byte anywhere is caught). Every
file padless writes - saved models, checkpoints, ONNX graphs, predictions - goes through
:func:`atomic_write_bytes`: a crash while writing leaves the previous file in place.

Does not own: what goes into those files (``padless.train.saving``, ``padless.train.checkpoint``,
``padless.export``). Imports nothing from padless but :mod:`padless.errors`.

Example:
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.bin")
    >>> atomic_write_bytes(p, b"hello"); open(p, "rb").read()
    b'hello'
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Mapping

import torch

from padless.errors import CheckpointError

__all__ = ["VERSION", "atomic_write_bytes", "atomic_write_text", "read_safetensors_header", "tensor_digest",
           "metadata_digest"]

VERSION = "0.2.0"
"""The padless version (also ``padless.__version__``), written into every saved file."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, fsync, rename, fsync folder.

    Args:
        path: the file to (over)write; its folder is created when missing.
        data: the bytes.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_safetensors_header(data: bytes, where: str) -> dict[str, str]:
    """The ``__metadata__`` string map of safetensors bytes (checked, never executed).

    Args:
        data: the file's bytes (or at least its header).
        where: the file name, for error messages.

    Raises:
        CheckpointError: truncated, or a header that is not a JSON string map.

    Example:
        >>> from safetensors.torch import save
        >>> read_safetensors_header(save({"a": torch.zeros(1)}, metadata={"k": "v"}), "x")
        {'k': 'v'}
    """
    if len(data) < 8:
        raise CheckpointError(f"{where!r} is truncated ({len(data)} bytes): not a complete file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 100_000_000:
        raise CheckpointError(f"{where!r} is truncated or corrupted (header of {n} bytes in a {len(data)}-byte file)")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
        meta = header.get("__metadata__") or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise ValueError("metadata is not a string map")
    except (UnicodeDecodeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{where!r} is corrupted (unreadable header: {e})") from None
    return meta


def tensor_digest(tensors: Mapping[str, torch.Tensor], with_dtype: bool = False) -> "hashlib._Hash":
    """A SHA-256 over tensors in key order: names, shapes (and dtypes), raw bytes.

    Returns the hash object, so callers can add more (see :func:`metadata_digest`).
    """
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update((f"{t.dtype}{tuple(t.shape)}" if with_dtype else str(tuple(t.shape))).encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h


def metadata_digest(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> str:
    """SHA-256 hex digest over tensors (with dtypes) and every metadata entry except ``sha256``.

    Example:
        >>> metadata_digest({"a": torch.ones(2)}, {"k": "v"}) == metadata_digest({"a": torch.ones(2)}, {"k": "v"})
        True
    """
    h = tensor_digest(tensors, with_dtype=True)
    for k in sorted(meta):
        if k != "sha256":
            h.update(k.encode())
            h.update(b"\0")
            h.update(meta[k].encode())
            h.update(b"\0")
    return h.hexdigest()
