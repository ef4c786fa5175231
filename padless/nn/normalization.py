"""Batch and layer normalization on ragged batches, with statistics that never see padding.

Owns: :class:`BatchNormalization` (Keras semantics: training statistics over the batch's *real* steps
only, per feature, with the biased variance; moving statistics updated as ``moving = momentum * moving +
(1 - momentum) * batch``; inference and ``trainable=False`` use the moving statistics) and
:class:`LayerNormalization` (per step, over the features), both on a
:class:`~padless.data.collate.RaggedBatch` or on (B, F) per-sequence vectors, and their ONNX form.

In training, BatchNormalization's statistics depend on the batch by definition: a batch's outputs equal
the same normalization computed over the concatenation of its real steps, whatever the layout (exact or
merged plan, row order); padding never enters them.

Does not own: :class:`~padless.nn.core.Normalization` (statistics learned once by ``adapt``).

Example:
    >>> import torch
    >>> from padless.data.collate import RaggedBatch
    >>> bn = BatchNormalization(input_size=1)
    >>> b = RaggedBatch.from_list([torch.tensor([[1.0], [3.0]]), torch.tensor([[5.0]])], merge_cost=1e9)
    >>> [round(v, 3) for v in bn(b).valid_data()[:, 0].tolist()]  # mean 3 over the 3 real steps
    [-1.225, 1.225, 0.0]
    >>> round(bn.moving_mean.item(), 4)
    0.03
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError
from padless.nn.base import Layer, OnnxValue, map_values

__all__ = ["BatchNormalization", "LayerNormalization"]


def _feature_axis(axis: Any, layer: str) -> int:
    a = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if a != -1:
        raise ConfigError(f"{layer}: padless normalizes the feature axis of each step; axis must be -1, got {axis!r}")
    return -1


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


class BatchNormalization(Layer):
    """Normalize each feature with the batch's statistics over its real steps (Keras ``BatchNormalization``).

    Args:
        axis: the feature axis (-1).
        momentum: weight of the old moving statistics.
        epsilon: added to the variance.
        center: learn an offset ``beta``.
        scale: learn a factor ``gamma``.
        **kwargs: the common layer keywords; ``trainable=False`` also freezes the statistics (Keras).

    Buffers ``moving_mean`` and ``moving_variance`` are saved with the weights. Under DDP every process
    normalizes with its own batch's statistics (as Keras without SyncBatchNormalization).

    Example:
        >>> import torch
        >>> [round(v, 4) for v in BatchNormalization(input_size=2).eval()(torch.ones(3, 2))[0].tolist()]
        [0.9995, 0.9995]
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        me = "BatchNormalization"
        self.axis = _feature_axis(axis, me)
        if not 0.0 <= float(momentum) <= 1.0:
            raise ConfigError(f"{me}: momentum must be in [0, 1]; got {momentum!r}")
        if float(epsilon) <= 0:
            raise ConfigError(f"{me}: epsilon must be > 0; got {epsilon!r}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.gamma: nn.Parameter | None = None
        self.beta: nn.Parameter | None = None
        self.finish_init()

    def make_weights(self, input_size: int) -> None:
        self.gamma = nn.Parameter(torch.ones(input_size)) if self.scale else None
        self.beta = nn.Parameter(torch.zeros(input_size)) if self.center else None
        self.register_buffer("moving_mean", torch.zeros(input_size))
        self.register_buffer("moving_variance", torch.ones(input_size))

    def statistics(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, variance)`` used for ``x``: the batch's over real steps while training (updating the
        moving statistics), the moving ones otherwise."""
        if not (self.training and self.trainable):
            return self.moving_mean, self.moving_variance
        real = x.valid_data() if isinstance(x, RaggedBatch) else x  # (N, F): padding never enters
        mean = real.mean(0)
        var = real.var(0, unbiased=False)  # Keras: the biased variance, for both uses
        with torch.no_grad():
            m = self.momentum
            self.moving_mean.mul_(m).add_(mean.detach(), alpha=1.0 - m)
            self.moving_variance.mul_(m).add_(var.detach(), alpha=1.0 - m)
        return mean, var

    def forward(self, x: Any) -> Any:
        if not self.built:
            self.build(int((x.data if isinstance(x, RaggedBatch) else x).shape[-1]))
        mean, var = self.statistics(x)
        inv = torch.rsqrt(var + self.epsilon)

        def norm(t: torch.Tensor) -> torch.Tensor:
            y = (t - mean) * inv
            if self.gamma is not None:
                y = y * self.gamma
            return y + self.beta if self.beta is not None else y

        return map_values(x, norm)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if not self.built:
            raise ConfigError(f"{self.describe()} has no weights yet: build or train the model before exporting")
        inv = torch.rsqrt(self.moving_variance.detach().cpu().float() + self.epsilon)  # torch's float32 factors
        y = g.op("Sub", [x.name, g.const("bn_mean", _np(self.moving_mean))], "bn_centred")
        y = g.op("Mul", [y, g.const("bn_inv", _np(inv))], "bn_scaled")
        if self.gamma is not None:
            y = g.op("Mul", [y, g.const("bn_gamma", _np(self.gamma))], "bn_gamma")
        if self.beta is not None:
            y = g.op("Add", [y, g.const("bn_beta", _np(self.beta))], "bn_beta")
        return OnnxValue(y, x.seq, x.size)


class LayerNormalization(Layer):
    """Normalize each step over its features (Keras ``LayerNormalization``; per step, so trivially exact).

    Args:
        axis: the feature axis (-1).
        epsilon: added to the variance.
        center: learn an offset ``beta``.
        scale: learn a factor ``gamma``.
        **kwargs: the common layer keywords.

    Example:
        >>> import torch
        >>> [round(v, 4) for v in LayerNormalization(input_size=2)(torch.tensor([[1.0, 3.0]]))[0].tolist()]
        [-0.9995, 0.9995]
    """

    def __init__(self, axis: int = -1, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        me = "LayerNormalization"
        self.axis = _feature_axis(axis, me)
        if float(epsilon) <= 0:
            raise ConfigError(f"{me}: epsilon must be > 0; got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.gamma: nn.Parameter | None = None
        self.beta: nn.Parameter | None = None
        self.finish_init()

    def make_weights(self, input_size: int) -> None:
        self.gamma = nn.Parameter(torch.ones(input_size)) if self.scale else None
        self.beta = nn.Parameter(torch.zeros(input_size)) if self.center else None

    def forward(self, x: Any) -> Any:
        if not self.built:
            self.build(int((x.data if isinstance(x, RaggedBatch) else x).shape[-1]))
        if self.input_size is None:
            raise ConfigError(f"{self.describe()} has no input size yet: build it (call it on data or give input_size)")
        shape = (self.input_size,)
        return map_values(x, lambda t: nn.functional.layer_norm(t, shape, self.gamma, self.beta, self.epsilon))

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if not self.built:
            raise ConfigError(f"{self.describe()} has no weights yet: build or train the model before exporting")
        F = x.size
        gamma = _np(self.gamma) if self.gamma is not None else np.ones(F, np.float32)
        inputs = [x.name, g.const("ln_gamma", gamma)]
        if self.beta is not None:
            inputs.append(g.const("ln_beta", _np(self.beta)))
        y = g.op("LayerNormalization", inputs, "layernorm", axis=-1, epsilon=self.epsilon)
        return OnnxValue(y, x.seq, F)
