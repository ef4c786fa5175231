"""Snapshots of the random-number generators, so that a resumed run draws exactly the same numbers.

Owns: :func:`capture_rng` (a JSON-able snapshot of torch's (and CUDA's), numpy's and python's generators
of this process) and :func:`restore_rng`. Does not own: where snapshots are stored
(:mod:`padless.train.checkpoint`).

Example:
    >>> s = capture_rng(); a = torch.rand(1); restore_rng(s); bool(torch.rand(1) == a)
    True
"""

from __future__ import annotations

import base64
import random
from typing import Any

import numpy as np
import torch

from padless.errors import CheckpointError

__all__ = ["capture_rng", "restore_rng"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def capture_rng() -> dict[str, Any]:
    """A JSON-able snapshot of the torch (and CUDA), numpy and python random generators of this process.

    Example:
        >>> s = capture_rng(); a = torch.rand(1); restore_rng(s); bool(torch.rand(1) == a)
        True
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    version, internal, gauss_next = random.getstate()
    snap: dict[str, Any] = {
        "torch": _b64(torch.get_rng_state().numpy().tobytes()),
        "numpy": {"kind": str(kind), "keys": _b64(np.asarray(keys, dtype=np.uint32).tobytes()), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        snap["cuda"] = [_b64(s.numpy().tobytes()) for s in torch.cuda.get_rng_state_all()]
    return snap


def restore_rng(snap: dict[str, Any]) -> None:
    """Put back a :func:`capture_rng` snapshot.

    Raises:
        CheckpointError: the snapshot is malformed.
    """
    try:
        torch.set_rng_state(torch.frombuffer(bytearray(_unb64(snap["torch"])), dtype=torch.uint8))
        n = snap["numpy"]
        keys = np.frombuffer(_unb64(n["keys"]), dtype=np.uint32).copy()
        np.random.set_state((n["kind"], keys, int(n["pos"]), int(n["has_gauss"]), float(n["cached_gaussian"])))
        version, internal, gauss_next = snap["python"]
        random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))
        if "cuda" in snap and torch.cuda.is_available():
            states = [torch.frombuffer(bytearray(_unb64(s)), dtype=torch.uint8) for s in snap["cuda"]]
            for i, s in enumerate(states[: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(s, i)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"the checkpoint's random-generator state is malformed: {e}") from None


