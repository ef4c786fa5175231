"""Keras optimizers (``SGD``, ``RMSprop``, ``Adam``, ``AdamW``, ``Adagrad``, ``Nadam``) backed by ``torch.optim``.

Owns: the six Keras optimizer classes and their mapping onto torch classes, and :func:`get` /
:func:`serialize` / :func:`deserialize` (names, objects and saved configs -> optimizers). What they share
(learning rate and schedules, clipping, weight decay, the step count) is
:class:`padless.train.optimizer_base.Optimizer`.

Keras -> torch mapping (Keras 3 update rules; "exact" = the same formula, up to float rounding):

=========  =================================================  ==============================================
Keras      torch                                              formula difference
=========  =================================================  ==============================================
SGD        ``SGD(lr, momentum, nesterov)``                    exact for a constant learning rate. Keras keeps
                                                              ``m = momentum*m - lr*g``, torch ``b = momentum*b
                                                              + g`` and steps ``lr*b``: when the rate changes
                                                              (schedule, ReduceLROnPlateau) Keras' velocity
                                                              keeps the old rates, torch's is rescaled.
RMSprop    ``RMSprop(lr, alpha=rho, eps=epsilon, momentum,    Keras divides by ``sqrt(v + epsilon)``, torch
           centered)``                                        by ``sqrt(v) + eps`` (relative difference below
                                                              1e-5 once ``v`` exceeds ~1e-4; larger for tiny
                                                              gradients); momentum as SGD.
Adam       ``Adam(lr, betas=(beta_1, beta_2), eps, amsgrad)``  exact: Keras' epsilon is "epsilon hat" (added
                                                              to ``sqrt(v)`` before bias correction); padless
                                                              sets torch's ``eps = epsilon / sqrt(1 -
                                                              beta_2**t)`` before each step.
AdamW      ``AdamW(..., weight_decay)``                       exact, as Adam (torch's decoupled decay is
                                                              Keras' ``w -= lr*wd*w``).
Adagrad    ``Adagrad(lr, initial_accumulator_value=initial    exact: Keras divides by ``sqrt(acc +
           + epsilon, eps=0)``                                epsilon)``; folding epsilon into the start of
                                                              the accumulator gives the same numbers.
Nadam      ``NAdam(lr, betas, eps, momentum_decay=1.0)``      exact: Keras' ``0.96 ** t`` momentum schedule is
                                                              torch's ``0.96 ** (t * momentum_decay)``.
=========  =================================================  ==============================================

``weight_decay`` is Keras' decoupled decay for every optimizer (torch's own ``weight_decay`` adds ``wd*w``
to the gradient instead; padless never uses that form). Adam's epsilon adjustment uses the step count of
the first parameter with a gradient (all parameters of a padless model step together). Refused, with a
message naming the argument: ``use_ema=True``, ``loss_scale_factor``, ``gradient_accumulation_steps``, a
plain callable ``learning_rate`` (it could not be saved), more than one clipping argument (Keras refuses
that too). ``torch_options={...}`` (padless only) passes extra settings to the torch class.

Does not own: the shared step logic (:mod:`padless.train.optimizer_base`), the schedules
(:mod:`padless.train.schedules`), compiling (:mod:`padless.train.compile`).

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = SGD(learning_rate=0.1, clipvalue=0.5)
    >>> torch_opt = opt.build([w])
    >>> w.grad = torch.tensor([3.0]); torch_opt.step()
    >>> round(float(w.detach()), 6), opt.iterations          # 1 - 0.1 * clip(3, -0.5, 0.5)
    (0.95, 1)
"""

from __future__ import annotations

import difflib
import inspect
import math
from typing import Any

import torch

from padless.errors import ConfigError
from padless.train.optimizer_base import Optimizer, optimizer_classes

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Nadam", "get", "serialize", "deserialize"]


class SGD(Optimizer):
    """Keras ``SGD``: ``m = momentum * m - lr * g; w += m`` (Nesterov: ``w += momentum * m - lr * g``)."""

    torch_class = torch.optim.SGD

    def __init__(self, learning_rate: Any = 0.01, momentum: float = 0.0, nesterov: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        if not isinstance(momentum, (int, float)) or isinstance(momentum, bool) or not 0 <= momentum <= 1:
            raise ConfigError(f"`momentum` must be a float between [0, 1]. Received: momentum={momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def torch_kwargs(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "nesterov": self.nesterov and self.momentum > 0}

    def own_config(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """Keras ``RMSprop``: ``v = rho * v + (1 - rho) * g**2; w -= lr * g / sqrt(v + epsilon)`` (torch: ``sqrt(v)
    + epsilon``; see the module table)."""

    torch_class = torch.optim.RMSprop

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,
                 centered: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, bool(centered)

    def torch_kwargs(self) -> dict[str, Any]:
        return {"alpha": self.rho, "eps": self.epsilon, "momentum": self.momentum, "centered": self.centered}

    def own_config(self) -> dict[str, Any]:
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}


class Adam(Optimizer):
    """Keras ``Adam``: ``w -= lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)``."""

    torch_class = torch.optim.Adam

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, bool(amsgrad)

    def torch_kwargs(self) -> dict[str, Any]:
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon, "amsgrad": self.amsgrad}

    def own_config(self) -> dict[str, Any]:
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad}

    def prepare_step(self, opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
        # Keras adds epsilon to sqrt(v) before the bias correction sqrt(1 - beta_2**t); torch after it
        if not params:
            return
        st = opt.state.get(params[0]) or {}
        t = int(st["step"]) + 1 if "step" in st else 1
        eps = float(self.epsilon) / math.sqrt(1.0 - float(self.beta_2) ** t)
        for g in opt.param_groups:
            g["eps"] = eps


class AdamW(Adam):
    """Keras ``AdamW``: Adam with the decoupled weight decay ``w -= lr * weight_decay * w`` (default 0.004)."""

    torch_class = torch.optim.AdamW
    decays_natively = True

    def __init__(self, learning_rate: Any = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, **kwargs: Any) -> None:
        if weight_decay is None:
            raise ConfigError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs)

    def torch_kwargs(self) -> dict[str, Any]:
        return {**super().torch_kwargs(), "weight_decay": float(self.weight_decay or 0.0)}


class Adagrad(Optimizer):
    """Keras ``Adagrad``: ``acc += g**2; w -= lr * g / sqrt(acc + epsilon)``, ``acc`` starting at
    ``initial_accumulator_value``."""

    torch_class = torch.optim.Adagrad

    def __init__(self, learning_rate: Any = 0.001, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def torch_kwargs(self) -> dict[str, Any]:
        # sqrt(acc + epsilon) == sqrt((initial + epsilon) + sum g**2): fold epsilon into the start value
        return {"initial_accumulator_value": float(self.initial_accumulator_value) + float(self.epsilon), "eps": 0.0}

    def own_config(self) -> dict[str, Any]:
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}


class Nadam(Optimizer):
    """Keras ``Nadam`` (Adam with Nesterov momentum and Keras' ``0.96 ** t`` momentum schedule)."""

    torch_class = torch.optim.NAdam

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 **kwargs: Any) -> None:
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def torch_kwargs(self) -> dict[str, Any]:
        return {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon, "momentum_decay": 1.0}

    def own_config(self) -> dict[str, Any]:
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


# torch spellings accepted by compile("adam", lr=..., betas=...) (padless' compile always took them)
_TORCH_ALIASES = {"lr": "learning_rate", "eps": "epsilon", "alpha": "rho"}


def get(identifier: Any, **kwargs: Any) -> Optimizer:
    """An :class:`Optimizer` from a name (``"adam"``) or class (``kwargs`` are its settings, Keras names or
    torch's ``lr``/``betas``/``eps``/``alpha``; any other torch setting goes to ``torch_options``), an Optimizer
    object, or a saved config.

    Raises:
        ConfigError: an unknown name or setting.
    """
    if isinstance(identifier, Optimizer):
        if kwargs:
            raise ConfigError(f"got an optimizer object and also optimizer settings {sorted(kwargs)}; set them on "
                              "the optimizer object instead")
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier(**_keras_kwargs(identifier, kwargs))
    key = str(identifier).lower()
    cls = optimizer_classes().get(key)
    if cls is None:
        close = difflib.get_close_matches(key, list(optimizer_classes()), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"unknown optimizer {identifier!r}.{hint} Valid names: {', '.join(sorted(optimizer_classes()))}")
    return cls(**_keras_kwargs(cls, kwargs))


def _keras_kwargs(cls: type[Optimizer], kwargs: dict[str, Any]) -> dict[str, Any]:
    keras_names = set()
    for c in cls.__mro__:
        if c is not object and "__init__" in vars(c):
            keras_names |= set(inspect.signature(c.__init__).parameters) - {"self", "kwargs"}
    torch_names = set(inspect.signature(cls.torch_class.__init__).parameters) - {"self", "params"}
    out: dict[str, Any] = {}
    torch_opts: dict[str, Any] = dict(kwargs.pop("torch_options", None) or {})
    for k, v in kwargs.items():
        if k == "betas":
            out["beta_1"], out["beta_2"] = v
            continue
        name = _TORCH_ALIASES.get(k, k) if _TORCH_ALIASES.get(k, k) in keras_names else k
        if name in out:
            raise ConfigError(f"{k}= and {name}= set the same thing; pass one of them")
        if name in keras_names:
            out[name] = v
        elif k in torch_names:
            torch_opts[k] = v
        else:
            raise ConfigError(f"{cls.__name__} does not take the setting {k!r} (Keras settings: "
                              f"{', '.join(sorted(keras_names - {'torch_options'}))})")
    if torch_opts:
        out["torch_options"] = torch_opts
    return out


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """``{"class_name", "config", "iterations"}``: everything that rebuilds ``optimizer`` with its step count."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config(),
            "iterations": optimizer.iterations}


def deserialize(config: dict[str, Any]) -> Optimizer:
    """Inverse of :func:`serialize` (the schedule continues at the saved ``iterations``).

    Raises:
        ConfigError: an unknown optimizer class.
    """
    name = str(config.get("class_name", ""))
    cls = optimizer_classes().get(name.lower())
    if cls is None:
        raise ConfigError(f"unknown optimizer class {name!r} in the saved config (known: {', '.join(sorted(optimizer_classes()))})")
    opt = cls.from_config(dict(config.get("config", {})))
    opt._start_iterations = int(config.get("iterations", 0))
    return opt
