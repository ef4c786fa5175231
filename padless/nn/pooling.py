"""Global pooling over each sequence's real steps.

Owns: :class:`GlobalAveragePooling1D` and :class:`GlobalMaxPooling1D` (Keras names, with Keras' masked
semantics: padding never enters a mean or a max), and their ONNX form. Input: a
:class:`~padless.data.collate.RaggedBatch`; output: (B, F) in the batch's sorted row order.

Does not own: strided (windowed) pooling or any other layer.

Example:
    >>> import torch
    >>> from padless.data.collate import RaggedBatch
    >>> b = RaggedBatch.from_list([torch.tensor([[1.0], [3.0]]), torch.tensor([[5.0]])])
    >>> b.unsort(GlobalAveragePooling1D()(b)).tolist()
    [[2.0], [5.0]]
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError
from padless.nn.base import Layer, OnnxValue

__all__ = ["GlobalAveragePooling1D", "GlobalMaxPooling1D", "pool_rows"]


def pool_rows(x: RaggedBatch, reduce: str) -> torch.Tensor:
    """Mean (``"mean"``) or max (``"max"``) of each row's real steps: (S, F) layout -> (B, F) sorted rows."""
    p = x.plan
    dev = x.data.device
    rows = p.tensor("row_of_pos", dev)
    data = x.data
    if not p.exact:
        valid = p.tensor("valid", dev)
        rows, data = rows[valid], data[valid]
    out = data.new_zeros((p.batch_size, data.shape[1]))  # (B, F)
    if reduce == "mean":
        out = out.index_add(0, rows, data)
        return out / p.tensor("lengths", dev).to(data.dtype).unsqueeze(1)
    idx = rows.unsqueeze(1).expand_as(data)
    return out.scatter_reduce(0, idx, data, reduce="amax", include_self=False)


class _GlobalPooling1D(Layer):
    """Pool each sequence over its real steps only: RaggedBatch (S, F) -> (B, F) in sorted row order."""

    reduce: ClassVar[str] = "mean"
    requires_sequences = True
    causal = False  # the output needs the whole sequence

    def __init__(self, data_format: str = "channels_last", keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if data_format != "channels_last":
            raise ConfigError(f"{type(self).__name__}: padless sequences are (steps, features); data_format must be "
                              f"'channels_last', got {data_format!r}")
        if keepdims:
            raise ConfigError(f"{type(self).__name__}(keepdims=True) is not supported: the output is one vector "
                              "per sequence")
        self.data_format, self.keepdims = data_format, False
        self.finish_init()

    @property
    def return_sequences(self) -> bool:
        return False

    def sequence_out(self, sequence_in: bool) -> bool:
        return False

    def noncausal_reason(self) -> str:
        return "it pools over the whole sequence"

    def forward(self, x: Any) -> Any:
        if not isinstance(x, RaggedBatch):
            raise ConfigError(f"{self.describe()} pools sequences: put it after a layer with return_sequences=True")
        return pool_rows(x, self.reduce)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if not x.seq:
            raise ConfigError(f"{self.describe()} pools sequences: put it after a layer with return_sequences=True")
        if self.reduce == "mean":
            total = g.reduce("ReduceSum", g.op("Where", [g.mask, x.name, g.const("fzero", 0.0)]), 0, "pool_sum")
            lens = g.op("Unsqueeze", [g.op("Cast", [g.lengths], to=g.FLOAT), g.const("ax1", [1], np.int64)], "lens_f")
            return OnnxValue(g.op("Div", [total, lens], "avgpool"), False, x.size)
        masked = g.op("Where", [g.mask, x.name, g.const("neg_inf", -np.inf)])
        return OnnxValue(g.reduce("ReduceMax", masked, 0, "maxpool"), False, x.size)


class GlobalAveragePooling1D(_GlobalPooling1D):
    """Mean over each sequence's real steps (Keras ``GlobalAveragePooling1D`` with a mask).

    Example:
        >>> GlobalAveragePooling1D().sequence_out(True)
        False
    """

    reduce = "mean"


class GlobalMaxPooling1D(_GlobalPooling1D):
    """Max over each sequence's real steps (Keras ``GlobalMaxPooling1D`` with a mask).

    Example:
        >>> GlobalMaxPooling1D().causal
        False
    """

    reduce = "max"
