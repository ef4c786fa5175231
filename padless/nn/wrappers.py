"""Layers that wrap per-step work: applying a layer to every step, and dropping whole channels per sequence.

Owns: :class:`TimeDistributed` (any per-step layer applied to every real step; its config holds the
inner layer, so it saves, loads and exports through the inner layer) and :class:`SpatialDropout1D` (one
channel mask per sequence, shared by all its steps).

Does not own: the inner layers, plain per-step application (every padless per-step layer already maps
each step of a :class:`~padless.data.collate.RaggedBatch`).

Example:
    >>> import torch
    >>> from padless.nn.core import Dense
    >>> td = deserialize_layer(serialize_layer(TimeDistributed(Dense(3), input_size=2)))
    >>> [tuple(o.shape) for o in td([torch.ones(4, 2), torch.ones(1, 2)])]
    [(4, 3), (1, 3)]
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError
from padless.nn.adapters import from_batch, to_batch
from padless.nn.base import Layer, OnnxValue, deserialize_layer, serialize_layer
from padless.nn.conv import sequence_input
from padless.nn.core import TorchModule

__all__ = ["TimeDistributed", "SpatialDropout1D"]


class TimeDistributed(Layer):
    """Apply a per-step layer to every step of each sequence (Keras ``TimeDistributed``).

    Args:
        layer: a layer that maps one vector to one vector (``Dense``, ``Dropout``, a user's
            :class:`~padless.nn.base.Layer`, or a plain ``torch.nn.Module``, which is then not savable).
        **kwargs: the common layer keywords.

    Also accepts one vector per sequence (B, F) and applies the layer to it. Causal when the inner layer is.

    Raises:
        ConfigError: an inner layer that reads whole sequences (recurrent, convolution, pooling).

    Example:
        >>> from padless.nn.core import Dense
        >>> TimeDistributed(Dense(4), input_size=3).output_size
        4
    """

    def __init__(self, layer: Layer | nn.Module | Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(layer, Mapping):
            layer = deserialize_layer(layer)
        if isinstance(layer, nn.Module) and not isinstance(layer, Layer):
            layer = TorchModule(layer)
        if not isinstance(layer, Layer):
            raise ConfigError(f"TimeDistributed wraps a layer; got {type(layer).__name__}")
        if layer.requires_sequences or layer.state_sizes or not layer.sequence_out(True):
            raise ConfigError(f"TimeDistributed({layer.describe()}): the inner layer must map each step on its own, "
                              f"but {type(layer).__name__} reads whole sequences; use it directly on the sequence")
        self.layer = layer
        self.finish_init()

    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"layer": serialize_layer(self.layer), "name": self.name}
        if self.input_size is not None:
            cfg["input_size"] = self.input_size
        if not self.trainable:
            cfg["trainable"] = False
        return cfg

    @property  # type: ignore[override]
    def causal(self) -> bool:
        """The inner layer's causality."""
        return bool(self.layer.causal)

    def noncausal_reason(self) -> str:
        return self.layer.noncausal_reason()

    def make_weights(self, input_size: int) -> None:
        self.layer.build(input_size)

    @property
    def output_size(self) -> int:
        return self.layer.output_size

    @property
    def activation(self) -> str | None:
        """The inner layer's activation name, when it has one (folded into the loss like ``Dense``'s)."""
        return getattr(self.layer, "activation", None)

    def _map(self, x: Any, fn: Any) -> Any:
        if not self.built:
            self.build(int((x.data if isinstance(x, RaggedBatch) else x).shape[-1]))
        if isinstance(x, RaggedBatch):
            return x.with_data(fn(x.data))  # (S, F) -> (S, K): every position of the layout
        if isinstance(x, torch.Tensor) and x.dim() == 2:
            return fn(x)  # (B, F) per-sequence vectors
        batch, kind = to_batch(x)
        return from_batch(self._map(batch, fn), kind)

    def logits(self, x: Any) -> Any:
        """The inner layer's output before its activation (when it has ``logits``)."""
        inner = getattr(self.layer, "logits", None)
        return self._map(x, inner if callable(inner) else self.layer)

    def forward(self, x: Any) -> Any:
        return self._map(x, self.layer)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        return self.layer.to_onnx(g, x)  # per-step emitters work on (T, B, F) and (B, F) alike


class SpatialDropout1D(Layer):
    """Drop whole feature channels while training, one mask per sequence shared by all its steps (Keras
    ``SpatialDropout1D``); kept channels are scaled by ``1 / (1 - rate)``; the identity at inference.

    Example:
        >>> import torch
        >>> SpatialDropout1D(0.5).eval()([torch.ones(2, 3)])[0].tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    requires_sequences = True

    def __init__(self, rate: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ConfigError(f"SpatialDropout1D rate must be in [0, 1); got {rate!r}")
        self.rate = float(rate)
        self.finish_init()

    def forward(self, x: Any) -> Any:
        batch, kind = sequence_input(self, x)
        if not self.training or self.rate == 0.0:
            return x
        data = batch.data  # (S, F)
        keep = torch.empty((batch.batch_size, data.shape[1]), device=data.device, dtype=data.dtype)
        keep = keep.bernoulli_(1.0 - self.rate) / (1.0 - self.rate)  # (B, F): one mask per sorted row
        out = data * keep.index_select(0, batch.plan.tensor("row_of_pos", data.device))
        return from_batch(batch.with_data(out), kind)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if not x.seq:
            raise ConfigError(f"{self.describe()} needs sequences but the layer before returns one vector per sequence")
        return x  # identity at inference
