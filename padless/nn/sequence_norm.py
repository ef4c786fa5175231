"""Per-sequence standardisation: every series z-normalised by its own mean and spread (the norm in
time-series classification), over its real steps only.

Owns: :class:`SequenceStandardization` and its ONNX form. Exact per sequence by construction (a row's
statistics come from its own real steps). Not causal: the statistics need the whole sequence.

Does not own: data-set statistics (:class:`~padless.nn.core.Normalization`), batch statistics
(:class:`~padless.nn.normalization.BatchNormalization`).

Example:
    >>> import torch
    >>> from padless.data.collate import RaggedBatch
    >>> b = RaggedBatch.from_list([torch.tensor([[1.0], [3.0]]), torch.tensor([[5.0]])])
    >>> [round(v, 3) for v in SequenceStandardization()(b).to_list()[0][:, 0].tolist()]
    [-1.0, 1.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError
from padless.nn.base import Layer, OnnxValue

__all__ = ["SequenceStandardization"]


class SequenceStandardization(Layer):
    """``(x - mean) / sqrt(var + epsilon)`` per sequence and feature, statistics over the real steps.

    Args:
        epsilon: added to each sequence's variance (a constant sequence becomes zeros).
        **kwargs: the common layer keywords.

    Example:
        >>> SequenceStandardization().causal
        False
    """

    requires_sequences = True
    causal = False

    def __init__(self, epsilon: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.finish_init()

    def noncausal_reason(self) -> str:
        return "it standardises each sequence with the statistics of all its steps"

    def forward(self, x: Any) -> Any:
        if not isinstance(x, RaggedBatch):
            raise ConfigError(f"{self.describe()} standardises sequences: put it where the input is one vector per step")
        p, data = x.plan, x.data  # (S, F)
        dev = data.device
        rows = p.tensor("row_of_pos", dev)
        if not p.exact:
            valid = p.tensor("valid", dev)
            rows_v, data_v = rows[valid], data[valid]
        else:
            rows_v, data_v = rows, data
        n = p.tensor("lengths", dev).to(data.dtype).unsqueeze(1)  # (B, 1)
        mean = data.new_zeros((p.batch_size, data.shape[1])).index_add(0, rows_v, data_v) / n  # (B, F)
        dev2 = (data_v - mean.index_select(0, rows_v)) ** 2
        var = data.new_zeros((p.batch_size, data.shape[1])).index_add(0, rows_v, dev2) / n  # (B, F) biased
        scale = torch.rsqrt(var + self.epsilon)
        out = (data - mean.index_select(0, rows)) * scale.index_select(0, rows)
        return x.with_data(out)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if not x.seq:
            raise ConfigError(f"{self.describe()} standardises sequences: its input must be one vector per step")
        ax1 = g.const("ax1", [1], np.int64)
        zero = g.const("fzero", 0.0)
        lens = g.op("Unsqueeze", [g.op("Cast", [g.lengths], to=g.FLOAT), ax1], "lens_f")  # (B, 1)
        xm = g.op("Where", [g.mask, x.name, zero])  # (T, B, F) padding zeroed
        mean = g.op("Div", [g.reduce("ReduceSum", xm, 0, "seq_sum"), lens], "seq_mean")  # (B, F)
        cen = g.op("Where", [g.mask, g.op("Sub", [x.name, mean]), zero], "centred")
        var = g.op("Div", [g.reduce("ReduceSum", g.op("Mul", [cen, cen]), 0, "seq_ss"), lens], "seq_var")
        inv = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [var, g.const("eps", self.epsilon)])])], "inv_std")
        return OnnxValue(g.op("Mul", [cen, inv], "standardised"), True, x.size)
