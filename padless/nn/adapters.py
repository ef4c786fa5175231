"""What a padless layer or model accepts when called like a PyTorch module, and the way back.

Owns: :func:`to_batch` (a :class:`~padless.data.collate.RaggedBatch`, a ``PackedSequence``, a
``(padded, lengths)`` pair, an equal-length ``(B, T, F)`` tensor or a list of ``(T_i, F)`` tensors ->
RaggedBatch plus the input's kind) and its inverse :func:`from_batch` for sequence outputs.

Does not own: the batch layout (``padless.data``), the layers.

Example:
    >>> import torch
    >>> b, kind = to_batch([torch.ones(2, 3), torch.ones(1, 3)])
    >>> kind, [t.shape[0] for t in from_batch(b, kind)]
    ('list', [2, 1])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence

from padless.data.collate import RaggedBatch
from padless.errors import DataError

__all__ = ["to_batch", "from_batch"]


def to_batch(x: Any) -> tuple[RaggedBatch, str]:
    """Turn any accepted input into a RaggedBatch; return it with the input's kind."""
    if isinstance(x, RaggedBatch):
        return x, "ragged"
    if isinstance(x, PackedSequence):
        return RaggedBatch.from_packed(x), "packed"
    if isinstance(x, (tuple, list)) and len(x) == 2 and isinstance(x[0], torch.Tensor) and x[0].dim() == 3:
        return RaggedBatch.from_padded(x[0], x[1]), "padded"
    if isinstance(x, torch.Tensor):
        if x.dim() != 3:
            raise DataError(f"expected a (B, T, F) tensor; got shape {tuple(x.shape)}")
        B, T, _ = x.shape
        return RaggedBatch.from_padded(x, np.full(B, T, dtype=np.int64)), "dense"
    if isinstance(x, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in x):
        return RaggedBatch.from_list(list(x)), "list"
    raise DataError(
        f"cannot read input of type {type(x).__name__}: pass a RaggedBatch, PackedSequence, "
        "(padded, lengths), a (B, T, F) tensor or a list of (T_i, F) tensors"
    )


def from_batch(b: RaggedBatch, kind: str) -> Any:
    """Inverse of :func:`to_batch` for sequence outputs."""
    if kind == "ragged":
        return b
    if kind == "packed":
        return b.to_packed()
    if kind == "padded":
        return b.to_padded(), torch.as_tensor(b.lengths)
    if kind == "dense":
        return b.to_padded()
    return b.to_list()
