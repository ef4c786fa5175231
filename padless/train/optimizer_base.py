"""The base of padless' Keras optimizers: hyper-parameters, learning rate, clipping, decay, step count.

Owns: :class:`Optimizer` (what every Keras optimizer shares: ``learning_rate`` as a number or a
:class:`~padless.train.schedules.LearningRateSchedule`, ``clipnorm`` / ``clipvalue`` /
``global_clipnorm``, Keras' decoupled ``weight_decay``, ``iterations``, ``get_config`` / ``from_config``,
and :meth:`Optimizer.build`, which creates the torch optimizer and hooks the Keras parts of a step into
it) and :class:`LearningRateValue`. A registry of subclasses by lower-case class name.

``build(params)`` hooks one function before each torch ``step()``: it sets the learning rate from the
schedule at ``iterations`` (Keras: the first step uses ``schedule(0)``), clips the gradients with Keras'
formulas (``clipnorm``: each tensor ``g * c / max(||g||, c)``; ``global_clipnorm``: all of them by
``c / max(global norm, c)``; ``clipvalue``: elementwise), applies Keras' weight decay ``w -= lr *
weight_decay * w`` before the update, and after the step counts ``iterations``. The count lives in the
torch param groups, so it is part of every checkpoint's optimizer state and a resumed run continues a
schedule at exactly the same step. Under torchrun the hooks run after DDP has averaged the gradients.

Does not own: the concrete optimizers and their torch mapping (:mod:`padless.train.optimizers`), the
schedules (:mod:`padless.train.schedules`).

Example:
    >>> import torch
    >>> from padless.train.optimizers import SGD
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = SGD(learning_rate=0.1, clipvalue=0.5)
    >>> torch_opt = opt.build([w])
    >>> w.grad = torch.tensor([3.0]); torch_opt.step()
    >>> round(float(w.detach()), 6), opt.iterations          # 1 - 0.1 * clip(3, -0.5, 0.5)
    (0.95, 1)
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar, Iterable

import numpy as np
import torch

from padless.errors import ConfigError
from padless.train.schedules import LearningRateSchedule
from padless.train.schedules import deserialize as deserialize_schedule
from padless.train.schedules import serialize as serialize_schedule

__all__ = ["Optimizer", "LearningRateValue", "optimizer_classes", "PADLESS_GROUP_KEYS"]

_CLASSES: dict[str, type["Optimizer"]] = {}
PADLESS_GROUP_KEYS = ("iterations",)
"""What padless keeps in the torch param groups besides torch's own settings (the Keras step count)."""


def optimizer_classes() -> dict[str, type["Optimizer"]]:
    """Optimizer classes by lower-case name (``"adam"``, ``"rmsprop"``...), built-in and user subclasses."""
    return dict(_CLASSES)


class LearningRateValue(float):
    """The value ``optimizer.learning_rate`` returns: a float with Keras' variable methods ``assign`` and
    ``numpy`` (``model.optimizer.learning_rate.assign(1e-4)`` works as in Keras).

    Example:
        >>> v = LearningRateValue(0.5); float(v.numpy()) * 2
        1.0
    """

    _owner: Any = None

    def assign(self, value: float) -> None:
        """Set the optimizer's learning rate (Keras ``variable.assign``)."""
        if self._owner is None:
            raise ConfigError("this learning rate is not attached to an optimizer")
        self._owner.learning_rate = value

    def numpy(self) -> Any:
        """The value as a numpy float32 (Keras variables are float32)."""
        return np.float32(self)


class Optimizer:
    """A Keras optimizer. Subclasses name their torch class and map their hyper-parameters.

    Args:
        learning_rate: a float or a :class:`~padless.train.schedules.LearningRateSchedule`.
        weight_decay: Keras' decoupled weight decay (``w -= lr * weight_decay * w`` before each update).
        clipnorm: clip each gradient tensor to this L2 norm.
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: clip all gradients together to this global L2 norm.
        use_ema, ema_momentum, ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps:
            Keras arguments padless cannot honour except at their defaults (refused otherwise).
        name: the optimizer's name.
        torch_options: extra keyword arguments for the torch class (padless only), e.g. ``{"foreach": False}``.
    """

    torch_class: ClassVar[type[torch.optim.Optimizer]] = torch.optim.SGD
    decays_natively: ClassVar[bool] = False  # the torch class applies Keras' decoupled decay itself

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _CLASSES[cls.__name__.lower()] = cls

    def __init__(self, learning_rate: Any, weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, use_ema: bool = False,
                 ema_momentum: float = 0.99, ema_overwrite_frequency: int | None = None,
                 loss_scale_factor: float | None = None, gradient_accumulation_steps: int | None = None,
                 name: str | None = None, torch_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        cls = type(self).__name__
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.", stacklevel=3)
        if kwargs:
            raise ConfigError(f"{cls}: Argument(s) not recognized: {kwargs}")
        refused = {"use_ema": use_ema, "loss_scale_factor": loss_scale_factor,
                   "gradient_accumulation_steps": gradient_accumulation_steps}
        for arg, value in refused.items():
            if value not in (None, False):
                raise ConfigError(f"{cls}({arg}={value!r}): padless does not implement {arg}; leave it at its "
                                  "default")
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        if sum(v is not None for v in clips.values()) > 1:
            raise ConfigError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                              + ", ".join(f"{k}={v}" for k, v in clips.items()))
        for k, v in {**clips, "weight_decay": weight_decay}.items():
            if v is not None and not (isinstance(v, (int, float)) and v >= 0):
                raise ConfigError(f"{cls}({k}={v!r}): must be a number >= 0 or None")
        self.weight_decay, self.clipnorm, self.clipvalue, self.global_clipnorm = weight_decay, clipnorm, clipvalue, global_clipnorm
        self.use_ema, self.ema_momentum, self.ema_overwrite_frequency = use_ema, ema_momentum, ema_overwrite_frequency
        self.loss_scale_factor, self.gradient_accumulation_steps = loss_scale_factor, gradient_accumulation_steps
        self.name = name or cls.lower()
        self.torch_options = dict(torch_options or {})
        self._learning_rate = _check_lr(learning_rate, cls)
        self._start_iterations = 0
        self._opt: torch.optim.Optimizer | None = None

    # ------------------------------------------------------------------ what subclasses define
    def torch_kwargs(self) -> dict[str, Any]:
        """The torch class's settings for these hyper-parameters (without ``lr``)."""
        return {}

    def own_config(self) -> dict[str, Any]:
        """This class's own hyper-parameters (Keras ``get_config`` adds them to the common ones)."""
        return {}

    def prepare_step(self, opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
        """Adjust the torch settings right before a step (default: nothing)."""

    # ------------------------------------------------------------------ the torch optimizer
    def build(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """The torch optimizer for ``params`` with padless' step hooks (reused when ``params`` are the ones it
        already trains)."""
        params = list(params)
        if self._opt is not None:
            mine = [p for g in self._opt.param_groups for p in g["params"]]
            if len(mine) == len(params) and all(a is b for a, b in zip(mine, params)):
                return self._opt
        kw = {"foreach": True, **self.torch_kwargs(), **self.torch_options}
        try:
            opt = self.torch_class(params, lr=self._lr_at(self._start_iterations), **kw)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{type(self).__name__}: torch.optim.{self.torch_class.__name__} refused {kw}: {e}") from None
        for g in opt.param_groups:
            g["iterations"] = int(self._start_iterations)
        opt.register_step_pre_hook(self._before_step)
        opt.register_step_post_hook(self._after_step)
        self._opt = opt
        return opt

    __call__ = build

    @property
    def torch_optimizer(self) -> torch.optim.Optimizer | None:
        """The torch optimizer (None until the model has weights)."""
        return self._opt

    @property
    def built(self) -> bool:
        return self._opt is not None

    def _lr_at(self, step: int) -> float:
        lr = self._learning_rate
        return float(lr(step)) if isinstance(lr, LearningRateSchedule) else float(lr)

    def _before_step(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        groups = opt.param_groups
        if isinstance(self._learning_rate, LearningRateSchedule):
            lr = self._lr_at(int(groups[0].get("iterations", 0)))
            for g in groups:
                g["lr"] = lr
        params = [p for g in groups for p in g["params"] if p.grad is not None]
        with torch.no_grad():
            _clip([p.grad for p in params], self.clipnorm, self.global_clipnorm, self.clipvalue)  # type: ignore[misc]
            if self.weight_decay and not self.decays_natively:
                for g in groups:
                    ps = [p for p in g["params"] if p.grad is not None]
                    if ps:
                        torch._foreach_mul_(ps, 1.0 - float(g["lr"]) * float(self.weight_decay))
            self.prepare_step(opt, params)

    def _after_step(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for g in opt.param_groups:
            g["iterations"] = int(g.get("iterations", 0)) + 1

    # ------------------------------------------------------------------ Keras attributes
    @property
    def iterations(self) -> int:
        """Optimizer steps taken (Keras ``optimizer.iterations``); the schedule's step."""
        if self._opt is not None:
            return int(self._opt.param_groups[0].get("iterations", 0))
        return int(self._start_iterations)

    @property
    def learning_rate(self) -> LearningRateValue:
        """The current learning rate (with a schedule: its value at :attr:`iterations`). Settable to a float
        (not when built with a schedule, as Keras) or to a new schedule."""
        if isinstance(self._learning_rate, LearningRateSchedule):
            value = self._lr_at(self.iterations)
        elif self._opt is not None:
            value = float(self._opt.param_groups[0]["lr"])
        else:
            value = float(self._learning_rate)
        out = LearningRateValue(value)
        out._owner = self
        return out

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        if not isinstance(value, LearningRateSchedule) and isinstance(self._learning_rate, LearningRateSchedule):
            raise ConfigError("This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
                              "constructor argument, hence its learning rate is not settable. If you need the learning "
                              "rate to be settable, you should instantiate the optimizer with a float `learning_rate` "
                              "argument.")
        self._learning_rate = _check_lr(value if isinstance(value, LearningRateSchedule) else float(value),
                                        type(self).__name__)
        if self._opt is not None:
            for g in self._opt.param_groups:
                g["lr"] = self._lr_at(self.iterations)

    lr = learning_rate

    def get_config(self) -> dict[str, Any]:
        """Keras' config: every hyper-parameter, the learning rate as its current value or the schedule's config."""
        lr = self._learning_rate
        cfg: dict[str, Any] = {
            "name": self.name,
            "learning_rate": serialize_schedule(lr) if isinstance(lr, LearningRateSchedule) else float(self.learning_rate),
            "weight_decay": self.weight_decay, "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue, "use_ema": self.use_ema, "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency, "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps, **self.own_config(),
        }
        if self.torch_options:
            cfg["torch_options"] = dict(self.torch_options)
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Optimizer":
        """Inverse of :meth:`get_config`."""
        cfg = dict(config)
        if isinstance(cfg.get("learning_rate"), dict):
            cfg["learning_rate"] = deserialize_schedule(cfg["learning_rate"])
        return cls(**cfg)

    def __getattr__(self, name: str) -> Any:
        # everything else (param_groups, state_dict, zero_grad...) is the torch optimizer's
        opt = self.__dict__.get("_opt")
        if name.startswith("__") or opt is None:
            raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}"
                                 + ("" if opt is not None else " (its torch optimizer is created once the model has "
                                    "weights)"))
        return getattr(opt, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self._learning_rate!r})"


def _check_lr(lr: Any, cls: str) -> Any:
    if isinstance(lr, LearningRateSchedule):
        return lr
    if callable(lr):
        raise ConfigError(f"{cls}(learning_rate=<callable>): padless takes a float or a LearningRateSchedule "
                          "(a plain function could not be saved); subclass padless.optimizers.schedules."
                          "LearningRateSchedule instead")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(float(lr)) or lr < 0:
        raise ConfigError(f"Invalid learning rate: {lr!r} (learning_rate must be a number >= 0 or a "
                          "LearningRateSchedule)")
    return float(lr)


def _clip(grads: list[torch.Tensor], clipnorm: float | None, global_clipnorm: float | None,
          clipvalue: float | None) -> None:
    if not grads:
        return
    if clipnorm:  # Keras: each tensor g * c / max(||g||, c)
        for g in grads:
            g.mul_(clipnorm / torch.linalg.vector_norm(g).clamp(min=clipnorm))
    elif global_clipnorm:  # Keras: all of them by c / max(global norm, c)
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        torch._foreach_mul_(grads, global_clipnorm / norm.clamp(min=global_clipnorm))
    elif clipvalue:
        for g in grads:
            g.clamp_(-clipvalue, clipvalue)
