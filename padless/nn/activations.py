"""Activation functions by Keras name or as callables, and their ONNX form.

Owns: :data:`ACTIVATIONS`, :func:`get_activation` (a name -> function, with "did you mean"),
:func:`resolve_activation` (a name, ``None`` or any callable -> ``(name, function)``; a known torch function
such as ``torch.sigmoid`` gets its Keras name back, so the layer stays savable) and :func:`activation_onnx`
(the ONNX nodes of a named activation). Does not own: the layers that use them.

Example:
    >>> import torch
    >>> resolve_activation(torch.sigmoid)[0], resolve_activation("relu")[0], resolve_activation(None)[0]
    ('sigmoid', 'relu', 'linear')
    >>> get_activation("softmax")(torch.zeros(1, 2)).tolist()
    [[0.5, 0.5]]
"""

from __future__ import annotations

import difflib
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from padless.errors import ConfigError

__all__ = ["ACTIVATIONS", "get_activation", "resolve_activation", "activation_onnx", "Activation"]

Activation = Callable[[torch.Tensor], torch.Tensor]


def _linear(t: torch.Tensor) -> torch.Tensor:
    return t


def _softmax(t: torch.Tensor) -> torch.Tensor:
    return torch.softmax(t, -1)


def _log_softmax(t: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(t, -1)


def _hard_sigmoid(t: torch.Tensor) -> torch.Tensor:  # Keras 3: relu6(x + 3) / 6
    return nn.functional.hardsigmoid(t)


ACTIVATIONS: dict[str, Activation] = {
    "linear": _linear,
    "softmax": _softmax,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": nn.functional.elu,
    "selu": torch.selu,
    "gelu": nn.functional.gelu,
    "softplus": nn.functional.softplus,
    "softsign": nn.functional.softsign,
    "swish": nn.functional.silu,
    "silu": nn.functional.silu,
    "hard_sigmoid": _hard_sigmoid,
    "log_softmax": _log_softmax,
    "exponential": torch.exp,
    "asinh": torch.asinh,  # not a Keras name: a signed log (asinh(x) ~ sign(x) log 2|x|) for heavy-tailed inputs
}

_BY_FUNCTION: dict[Any, str] = {
    torch.sigmoid: "sigmoid", torch.tanh: "tanh", torch.relu: "relu", torch.selu: "selu", torch.exp: "exponential",
    torch.asinh: "asinh",
    nn.functional.sigmoid: "sigmoid", nn.functional.tanh: "tanh", nn.functional.relu: "relu",
    nn.functional.elu: "elu", nn.functional.gelu: "gelu", nn.functional.softplus: "softplus",
    nn.functional.silu: "swish", nn.functional.softsign: "softsign", nn.functional.hardsigmoid: "hard_sigmoid",
}


def get_activation(name: str | None) -> Activation:
    """Return the activation function called ``name`` (None means linear).

    Raises:
        ConfigError: unknown name, with the closest valid names.
    """
    key = "linear" if name is None else str(name).lower()
    if key not in ACTIVATIONS:
        close = difflib.get_close_matches(key, list(ACTIVATIONS), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"unknown activation {name!r}.{hint} Valid: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[key]


def resolve_activation(spec: str | Activation | None) -> tuple[str | None, Activation]:
    """``(name, function)`` for a name, None (linear) or a callable.

    A callable torch knows (``torch.sigmoid``, ``nn.functional.relu``, ``nn.ReLU()``, ...) comes back with
    its Keras name; any other callable comes back with name ``None`` (it runs, but a model holding it
    cannot be saved or exported: pass a name for that).
    """
    if spec is None or isinstance(spec, str):
        fn = get_activation(spec)
        return ("linear" if spec is None else str(spec).lower()), fn
    if not callable(spec):
        raise ConfigError(f"activation must be a name or a callable; got {type(spec).__name__}")
    name = _BY_FUNCTION.get(spec)
    if name is None and isinstance(spec, nn.Module):
        name = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ReLU: "relu", nn.ELU: "elu", nn.SELU: "selu",
                nn.GELU: "gelu", nn.SiLU: "swish", nn.Softplus: "softplus", nn.Identity: "linear"}.get(type(spec))
    return name, spec


def activation_onnx(g: Any, name: str | None, x: str, where: str) -> str:
    """Emit the ONNX nodes of activation ``name`` applied to value ``x``; return the result's name.

    Raises:
        ConfigError: an activation with no ONNX form (or a custom callable).
    """
    key = "linear" if name is None else name
    if key == "linear":
        return x
    if key == "softmax":
        return g.op("Softmax", [x], "softmax", axis=-1)
    if key == "log_softmax":
        return g.op("LogSoftmax", [x], "log_softmax", axis=-1)
    simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "elu": "Elu", "selu": "Selu",
              "softsign": "Softsign", "exponential": "Exp", "asinh": "Asinh"}
    if key in simple:
        return g.op(simple[key], [x], key)
    if key in ("swish", "silu"):
        return g.op("Mul", [x, g.op("Sigmoid", [x])], "silu")
    if key == "hard_sigmoid":  # torch/Keras 3: relu6(x + 3) / 6 = HardSigmoid(alpha=1/6, beta=0.5)
        return g.op("HardSigmoid", [x], "hard_sigmoid", alpha=1.0 / 6.0, beta=0.5)
    if key == "gelu":  # exact erf form, as torch.nn.functional.gelu
        half = g.op("Mul", [x, g.const("half", 0.5)])
        erf = g.op("Erf", [g.op("Mul", [x, g.const("inv_sqrt2", 1.0 / np.sqrt(2.0))])])
        return g.op("Mul", [half, g.op("Add", [erf, g.const("one", 1.0)])], "gelu")
    if key == "softplus":  # torch: linear above 20, log1p(exp(x)) below
        soft = g.op("Log", [g.op("Add", [g.op("Exp", [x]), g.const("one", 1.0)])])
        return g.op("Where", [g.op("Greater", [x, g.const("twenty", 20.0)]), x, soft], "softplus")
    raise ConfigError(f"{where}: activation {name!r} cannot be exported to ONNX")
