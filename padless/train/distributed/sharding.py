"""Splitting evaluation across processes, and fingerprints that prove every process has the same run.

Owns: :func:`shard_eval` (evaluation batches split across ranks; sums and counts are all-reduced after,
so nothing is counted twice) and :func:`fingerprint_digest` (a short hash of the data's lengths and the
settings, compared across ranks and against a checkpoint). Training batches are sharded by the batch
sources themselves (``padless.data.samplers``, ``padless.train.tbptt.SlotScheduler``): every rank gets the
same number of steps.

Does not own: the process group or the collectives (:mod:`padless.train.distributed.context`).

Example:
    >>> shard_eval([[0], [1], [2]], None)
    [[0], [1], [2]]
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from padless.train.distributed.context import DistContext

__all__ = ["shard_eval", "fingerprint_digest"]


def shard_eval(batches: Sequence[Any], ctx: DistContext | None) -> list[Any]:
    """Evaluation batches of this rank: ``batches[rank::world_size]`` (no padding or repeats)."""
    batches = list(batches)
    if ctx is None:
        return batches
    return batches[ctx.rank :: ctx.world_size]


def fingerprint_digest(lengths: np.ndarray, **settings: Any) -> str:
    """A short hash of the data's lengths and the training settings (to compare ranks and checkpoints).

    Example:
        >>> fingerprint_digest(np.array([3, 4]), batch_size=2) == fingerprint_digest(np.array([3, 4]), batch_size=2)
        True
    """
    h = hashlib.sha256(np.ascontiguousarray(lengths, dtype=np.int64).tobytes())
    h.update(repr(sorted(settings.items())).encode())
    return h.hexdigest()[:16]
