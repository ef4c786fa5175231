"""Per-step Keras layers that work on ragged batches and on per-sequence vectors alike.

Owns: :class:`Dense`, :class:`Dropout`, :class:`GaussianNoise`, :class:`Normalization`,
:class:`Activation` / :class:`ReLU`, each with its config and its ONNX form, and
:class:`TorchModule` (any plain
``torch.nn.Module`` used as a per-step layer). Applied to a
:class:`~padless.data.collate.RaggedBatch` a layer transforms every real position of the layout (so
per-step heads cost nothing extra); applied to a (B, F) tensor it transforms each row.

Does not own: the input layers ``Masking`` and ``Embedding`` (:mod:`padless.nn.inputs`), recurrent layers
(:mod:`padless.nn.recurrent`), pooling (:mod:`padless.nn.pooling`), composition (:mod:`padless.nn.graph`).

Example:
    >>> import torch
    >>> Dense(2, activation="softmax", input_size=3)(torch.randn(4, 3)).sum(-1).allclose(torch.ones(4))
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.data.inputs import as_ragged
from padless.errors import ConfigError
from padless.nn.activations import Activation as ActivationFn
from padless.nn.activations import activation_onnx, resolve_activation
from padless.nn.base import Layer, OnnxValue, map_values
from padless.nn.weights import get_constraint, get_regularizer, initialize, initializer_config

__all__ = ["Dense", "Dropout", "GaussianNoise", "Normalization", "TorchModule", "Activation", "ReLU"]


def _positive(value: Any, what: str, layer: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{layer}: {what} must be a positive integer; got {value!r}")
    return int(value)


def _torch_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


class Dense(Layer):
    """Fully connected layer ``activation(x @ W + b)`` (Keras ``Dense``), per step or per sequence.

    Args:
        units: output size.
        activation: a name (``"softmax"``, ``"relu"``, ...), None (linear) or a callable.
        use_bias: add a bias.
        kernel_initializer / bias_initializer: Keras names or config dicts (glorot_uniform, zeros).
        kernel_regularizer / bias_regularizer / activity_regularizer: ``"l1"``, ``"l2"``, ``"l1_l2"`` or dicts.
        kernel_constraint / bias_constraint: ``"max_norm"``, ``"non_neg"``, ``"unit_norm"``, ...
        seed: seed of the initial weights.
        **kwargs: the common layer keywords (``name``, ``input_shape``, ``input_size``, ...).

    Example:
        >>> import torch
        >>> Dense(3, input_size=2)(torch.ones(5, 2)).shape
        torch.Size([5, 3])
    """

    def __init__(self, units: int, activation: str | ActivationFn | None = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None, activity_regularizer: Any = None,
                 kernel_constraint: Any = None, bias_constraint: Any = None, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = _positive(units, "units", "Dense")
        self.activation_name, self._act = resolve_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer, self.bias_initializer, self.seed = kernel_initializer, bias_initializer, seed
        self.kernel_regularizer, self.bias_regularizer = get_regularizer(kernel_regularizer), get_regularizer(bias_regularizer)
        self.activity_regularizer = get_regularizer(activity_regularizer)
        self.kernel_constraint, self.bias_constraint = get_constraint(kernel_constraint), get_constraint(bias_constraint)
        self.linear: nn.Linear | None = None
        self._activity: torch.Tensor | None = None
        self.finish_init()

    @property
    def activation(self) -> str | None:
        """The activation's Keras name (None for a custom callable)."""
        return self.activation_name

    def make_weights(self, input_size: int) -> None:
        self.linear = nn.Linear(input_size, self.units, bias=self.use_bias)
        initialize(self.linear.weight, self.kernel_initializer, self.seed)  # Keras default glorot_uniform
        if self.linear.bias is not None:
            initialize(self.linear.bias, self.bias_initializer, None if self.seed is None else self.seed + 1)

    def weight_penalty(self) -> torch.Tensor | None:
        terms = []
        if self.linear is not None and self.kernel_regularizer is not None:
            terms.append(self.kernel_regularizer(self.linear.weight))
        if self.linear is not None and self.linear.bias is not None and self.bias_regularizer is not None:
            terms.append(self.bias_regularizer(self.linear.bias))
        if self._activity is not None:
            terms.append(self._activity)
            self._activity = None
        return sum(terms[1:], terms[0]) if terms else None

    def apply_constraints(self) -> None:
        if self.linear is None:
            return
        if self.kernel_constraint is not None:
            self.kernel_constraint(self.linear.weight.data)  # torch (out, in): row norms = Keras axis 0
        if self.bias_constraint is not None and self.linear.bias is not None:
            self.bias_constraint(self.linear.bias.data)

    @property
    def output_size(self) -> int:
        return self.units

    def get_config(self) -> dict[str, Any]:
        if self.activation_name is None:
            raise ConfigError(f"layer {self.describe()} uses a custom activation callable, which cannot be saved: "
                              "pass the activation by name (e.g. 'relu')")
        cfg = super().get_config()
        cfg["activation"] = self.activation_name
        for k in ("kernel_initializer", "bias_initializer"):
            cfg[k] = initializer_config(cfg[k], f"{self.describe()}.{k}")
        for k in ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                  "bias_constraint"):
            cfg[k] = None if cfg[k] is None else cfg[k].get_config()
        return cfg

    def logits(self, x: Any) -> Any:
        """The layer before its activation (used for numerically stable losses)."""
        if self.linear is None:
            self.build(int((x.data if isinstance(x, RaggedBatch) else x).shape[-1]))
        return map_values(x, self.linear)  # type: ignore[arg-type]

    def forward(self, x: Any) -> Any:
        y = map_values(self.logits(x), self._act)
        if self.activity_regularizer is not None and self.training:  # Keras: the outputs' penalty, per sample
            vals = y.valid_data() if isinstance(y, RaggedBatch) else y
            rows = y.batch_size if isinstance(y, RaggedBatch) else vals.shape[0]
            self._activity = self.activity_regularizer(vals) / rows
        return y

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if self.linear is None:
            raise ConfigError(f"{self.describe()} has no weights yet: build or train the model before exporting")
        y = g.op("MatMul", [x.name, g.const("dense_W", _torch_np(self.linear.weight).T)], "dense")  # (.., out)
        if self.linear.bias is not None:
            y = g.op("Add", [y, g.const("dense_b", _torch_np(self.linear.bias))], "dense_b")
        return OnnxValue(activation_onnx(g, self.activation_name, y, self.describe()), x.seq, self.units)


class Activation(Layer):
    """An activation as a layer of its own (Keras ``Activation``), per step or per sequence.

    Example:
        >>> import torch
        >>> Activation("relu")(torch.tensor([[-1.0, 2.0]])).tolist()
        [[0.0, 2.0]]
    """

    def __init__(self, activation: str | ActivationFn | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation_name, self._act = resolve_activation(activation)
        self.finish_init()

    @property
    def activation(self) -> str | None:
        return self.activation_name

    def get_config(self) -> dict[str, Any]:
        if self.activation_name is None:
            raise ConfigError(f"layer {self.describe()} uses a custom activation callable, which cannot be saved: "
                              "pass the activation by name (e.g. 'relu')")
        return super().get_config()

    def forward(self, x: Any) -> Any:
        return map_values(x, self._act)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        return OnnxValue(activation_onnx(g, self.activation_name, x.name, self.describe()), x.seq, x.size)


class ReLU(Activation):
    """``max(x, 0)`` as a layer (Keras ``ReLU``, default arguments).

    Example:
        >>> ReLU().activation
        'relu'
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("relu", **kwargs)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.pop("activation", None)
        return cfg


class Dropout(Layer):
    """Drop inputs with probability ``rate`` while training (Keras ``Dropout``).

    Example:
        >>> Dropout(0.5).eval()(torch.ones(2, 3)).tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ConfigError(f"Dropout rate must be in [0, 1); got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.noise_shape = None if noise_shape is None else [None if d is None else int(d) for d in noise_shape]
        ns = self.noise_shape
        if ns is not None and not (len(ns) == 3 and ns[1] == 1) and not (len(ns) == 3 and ns[1] is None):
            raise ConfigError(f"Dropout(noise_shape={noise_shape!r}): padless supports (batch, 1, features) - one mask "
                              "per sequence, shared by its steps - or (batch, None, features); the time axis of "
                              "ragged sequences has no fixed size")
        self.finish_init()

    def forward(self, x: Any) -> Any:
        shared = self.noise_shape is not None and self.noise_shape[1] == 1
        if shared and self.training and self.rate > 0 and isinstance(x, RaggedBatch):
            keep = 1.0 - self.rate  # one mask per sequence (noise_shape=(batch, 1, features))
            mask = torch.bernoulli(x.data.new_full((x.batch_size, x.data.shape[1]), keep)) / keep  # (B, F)
            return x.with_data(x.data * mask.index_select(0, x.plan.tensor("row_of_pos", x.data.device)))
        return map_values(x, lambda t: nn.functional.dropout(t, self.rate, self.training))

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        return x  # identity at inference


class GaussianNoise(Layer):
    """Add zero-mean Gaussian noise of std ``stddev`` while training (Keras ``GaussianNoise``).

    Example:
        >>> GaussianNoise(0.1).eval()(torch.zeros(1, 2)).tolist()
        [[0.0, 0.0]]
    """

    def __init__(self, stddev: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if float(stddev) < 0:
            raise ConfigError(f"GaussianNoise stddev must be >= 0; got {stddev!r}")
        self.stddev = float(stddev)
        self.finish_init()

    def forward(self, x: Any) -> Any:
        if not self.training or self.stddev == 0:
            return x
        return map_values(x, lambda t: t + self.stddev * torch.randn_like(t))

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        return x


class Normalization(Layer):
    """Standardise every feature with statistics learned by :meth:`adapt` (Keras ``Normalization``).

    The mean and variance are buffers, so they are saved with the weights and travel with the model.
    Statistics count every real step once (no padding enters them).

    Args:
        epsilon: added to the variance.
        **kwargs: the common layer keywords (``input_size``, ``input_shape``, ``name``, ...).

    Example:
        >>> import numpy as np
        >>> norm = Normalization()
        >>> norm.adapt([np.array([[0.0], [2.0]]), np.array([[4.0]])])
        >>> norm(torch.tensor([[2.0]])).item()
        0.0
    """

    def __init__(self, epsilon: float = 1e-7, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("variance", torch.ones(0))
        self.finish_init()

    def make_weights(self, input_size: int) -> None:
        self.mean = torch.zeros(input_size)
        self.variance = torch.ones(input_size)

    def adapt(self, data: Any) -> None:
        """Learn per-feature mean and variance from a RaggedArray, a list of (T_i, F) arrays or (N, T, F)."""
        ra = as_ragged(data)
        values = np.asarray(ra.values, dtype=np.float64)  # (sum T, F)
        self.build(int(values.shape[1]))
        self.mean = torch.as_tensor(values.mean(0), dtype=torch.float32)
        self.variance = torch.as_tensor(values.var(0), dtype=torch.float32)

    def forward(self, x: Any) -> Any:
        scale = torch.rsqrt(self.variance + self.epsilon)
        return map_values(x, lambda t: (t - self.mean) * scale)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if self.input_size is None or self.mean.numel() != x.size:
            raise ConfigError(f"{self.describe()} is not adapted/built for {x.size} features: call adapt() before "
                              "exporting")
        scale = torch.rsqrt(self.variance.detach().cpu().float() + self.epsilon)  # the exact float32 factors
        y = g.op("Sub", [x.name, g.const("norm_mean", _torch_np(self.mean))], "centred")
        return OnnxValue(g.op("Mul", [y, g.const("norm_scale", _torch_np(scale))], "normalized"), x.seq, x.size)


class TorchModule(Layer):
    """Any ``torch.nn.Module`` as a per-step layer: applied to every real step (or every per-sequence row).

    ``Sequential.add(nn.ReLU())`` wraps the module in this layer. Its output size is found by running it on
    one zero row when the model is built. It trains and predicts like any layer; it cannot be saved by config
    or exported (write a :class:`~padless.nn.base.Layer` subclass with ``get_config``/``to_onnx`` for that).

    Example:
        >>> import torch
        >>> TorchModule(torch.nn.Linear(3, 5), input_size=3).output_size
        5
    """

    def __init__(self, module: nn.Module, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(module, nn.Module):
            raise ConfigError(f"TorchModule wraps a torch.nn.Module; got {type(module).__name__}")
        self.module = module
        self._out: int | None = None
        self.finish_init()

    def describe(self) -> str:
        return self.name or type(self.module).__name__

    def make_weights(self, input_size: int) -> None:
        p = next(iter(self.module.parameters()), None)
        probe = torch.zeros(1, input_size, dtype=p.dtype if p is not None else torch.float32,
                            device=p.device if p is not None else "cpu")
        with torch.no_grad():
            out = self.module(probe)
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
            raise ConfigError(f"{self.describe()}: a wrapped module must map (N, F) rows to (N, K) rows; it returned "
                              f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
        self._out = int(out.shape[1])

    @property
    def output_size(self) -> int:
        if self._out is None:
            raise ConfigError(f"layer {self.describe()} is not built yet: its input size is unknown")
        return self._out

    def get_config(self) -> dict[str, Any]:
        raise ConfigError(f"layer {self.describe()} is a plain torch module and cannot be saved by config: subclass "
                          "padless.nn.Layer (with its constructor arguments as attributes) to make it savable")

    def forward(self, x: Any) -> Any:
        return map_values(x, self.module)
