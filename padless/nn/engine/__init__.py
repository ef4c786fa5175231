"""The packed recurrent engine: one call per layer and direction for a whole ragged batch.

Owns: :func:`packed_rnn` (LSTM / GRU / tanh-RNN over a batch in ``PackedSequence`` layout, exact per row,
differentiable, with per-row resets), the engines behind it - a compiled CPU kernel built on first use
(``packed``), cuDNN's packed call (``cudnn``), one dense call per block (``blocks``) and a plain PyTorch
loop (``reference``) - and the choice between them (:func:`select_engine`, :func:`engine_status`, the
``PADLESS_ENGINE`` setting).

Does not own: layers, batch layout or training (``padless.nn``, ``padless.data``, ``padless.train``);
this package imports only torch, numpy, the standard library and ``padless.errors``.

Example:
    >>> import torch
    >>> from torch.nn.utils.rnn import pack_sequence
    >>> gru = torch.nn.GRU(2, 4)
    >>> p = pack_sequence([torch.randn(3, 2), torch.randn(1, 2)])
    >>> y, h_n, c_n = packed_rnn("gru", p.data, p.batch_sizes, gru.weight_ih_l0, gru.weight_hh_l0,
    ...                          gru.bias_ih_l0, gru.bias_hh_l0)
    >>> y.shape, h_n.shape, c_n
    (torch.Size([4, 4]), torch.Size([2, 4]), None)
"""

from __future__ import annotations

from padless.nn.engine._build import BuildResult, load_engine
from padless.nn.engine._select import (
    SETTINGS,
    EngineChoice,
    EngineStatus,
    engine_setting,
    engine_status,
    select_engine,
)
from padless.nn.engine.api import ENGINES, MODES, packed_rnn

__all__ = [
    "ENGINES",
    "MODES",
    "SETTINGS",
    "BuildResult",
    "EngineChoice",
    "EngineStatus",
    "engine_setting",
    "engine_status",
    "load_engine",
    "packed_rnn",
    "select_engine",
]
