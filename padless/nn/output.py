"""Output scaling: Keras' ``Rescaling`` (``y = x * scale + offset``), fixed, saved and exported with the model.

Owns: :class:`Rescaling`. A regression head predicts standardised targets and this layer maps them back to
the targets' units, so a saved model returns real values and remembers its scaling. Scale and offset are
buffers (saved with the weights, never trained). Does not own: choosing them (the recipes fit them to the
training targets).

Example:
    >>> import torch
    >>> Rescaling([2.0], [10.0], input_size=1)(torch.tensor([[1.0]])).tolist()
    [[12.0]]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from padless.errors import ConfigError
from padless.nn.base import Layer, OnnxValue, map_values

__all__ = ["Rescaling"]


class Rescaling(Layer):
    """``x * scale + offset`` per feature (or one scalar for all), as Keras' ``Rescaling``.

    Args:
        scale: a number or one per feature.
        offset: a number or one per feature.
        **kwargs: the common layer keywords.

    Example:
        >>> Rescaling(0.5).get_config()["scale"]
        0.5
    """

    def __init__(self, scale: float | Sequence[float] = 1.0, offset: float | Sequence[float] = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = [float(v) for v in scale] if isinstance(scale, (list, tuple, np.ndarray)) else float(scale)
        self.offset = [float(v) for v in offset] if isinstance(offset, (list, tuple, np.ndarray)) else float(offset)
        self.register_buffer("_scale", torch.as_tensor(self.scale, dtype=torch.float32))
        self.register_buffer("_offset", torch.as_tensor(self.offset, dtype=torch.float32))
        self.finish_init()

    def make_weights(self, input_size: int) -> None:
        for name, v in (("scale", self._scale), ("offset", self._offset)):
            if v.dim() and v.numel() not in (1, input_size):
                raise ConfigError(f"{self.describe()}: {name} has {v.numel()} values for {input_size} features; "
                                  "give one number or one per feature")

    def forward(self, x: Any) -> Any:
        return map_values(x, lambda t: t * self._scale + self._offset)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        s = g.const("rescale_scale", self._scale.detach().cpu().numpy())
        o = g.const("rescale_offset", self._offset.detach().cpu().numpy())
        return OnnxValue(g.op("Add", [g.op("Mul", [x.name, s]), o], "rescaled"), x.seq, x.size)
