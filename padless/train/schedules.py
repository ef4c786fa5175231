"""Keras' learning-rate schedules: a learning rate per optimizer step, with a JSON config.

Owns: :class:`LearningRateSchedule` (the base class: ``schedule(step) -> float``, ``get_config`` /
``from_config``, and a registry filled by subclassing, so a user's schedule saves and loads by class name),
the Keras 3 schedules :class:`ExponentialDecay`, :class:`PiecewiseConstantDecay`, :class:`PolynomialDecay`,
:class:`InverseTimeDecay`, :class:`CosineDecay` (with Keras 3's linear warmup) and
:class:`CosineDecayRestarts`, and :func:`serialize` / :func:`deserialize`.

Each ``__call__`` is Keras' formula; ``step`` is the optimizer's ``iterations`` before the update, as in
Keras (the first step uses ``schedule(0)``). Keras evaluates the formulas in float32; padless in float64,
so values agree to about 1e-7 relative.

Does not own: when the step advances or where it is stored (:mod:`padless.train.optimizers`: the step
count travels with the optimizer state, so a checkpoint resumes the schedule exactly).

Example:
    >>> s = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    >>> round(s(0), 6), round(s(10), 6), round(s(20), 6)
    (0.1, 0.05, 0.025)
    >>> deserialize(serialize(s))(10) == s(10)
    True
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from padless.errors import ConfigError

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
           "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize", "schedule_classes"]

_CLASSES: dict[str, type["LearningRateSchedule"]] = {}


def schedule_classes() -> dict[str, type["LearningRateSchedule"]]:
    """Schedule classes by name (built-in and every subclass defined so far)."""
    return dict(_CLASSES)


class LearningRateSchedule:
    """Base class of learning-rate schedules (Keras ``keras.optimizers.schedules.LearningRateSchedule``).

    Subclass it and implement ``__call__(step) -> float`` and ``get_config()`` (the constructor's keyword
    arguments); the subclass registers itself by class name, so an optimizer using it saves and loads.
    """

    name: str = "LearningRateSchedule"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _CLASSES[cls.__name__] = cls

    def __call__(self, step: int) -> float:
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`.")

    def get_config(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON-able)."""
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override `get_config()` in "
                                  "order to be serializable.")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "LearningRateSchedule":
        """Inverse of :meth:`get_config`."""
        return cls(**config)


def _positive(value: Any, arg: str) -> None:
    if not value > 0:
        raise ConfigError(f"Argument `{arg}` must be > 0. Received: {arg}={value}")


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (``floor`` of the exponent when
    ``staircase``)."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False,
                 name: str = "ExponentialDecay") -> None:
        _positive(decay_steps, "decay_steps")
        self.initial_learning_rate, self.decay_steps, self.decay_rate = initial_learning_rate, decay_steps, decay_rate
        self.staircase, self.name = staircase, name

    def __call__(self, step: int) -> float:
        p = float(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate) * float(self.decay_rate) ** p

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` for ``boundaries[i-1] < step <=
    boundaries[i]``, ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries: Sequence[float], values: Sequence[float], name: str = "PiecewiseConstant") -> None:
        if len(boundaries) != len(values) - 1:
            raise ConfigError("The length of boundaries should be 1 less than the length of values. Received: "
                              f"boundaries={list(boundaries)} of length {len(boundaries)}, and values={list(values)} "
                              f"of length {len(values)}.")
        self.boundaries, self.values, self.name = list(boundaries), list(values), name

    def __call__(self, step: int) -> float:
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return float(v)
        return float(self.values[-1])

    def get_config(self) -> dict[str, Any]:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - min(step, decay_steps) / decay_steps) ** power + end``; with ``cycle`` the
    decay restarts over ``decay_steps * ceil(step / decay_steps)``."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, end_learning_rate: float = 0.0001,
                 power: float = 1.0, cycle: bool = False, name: str = "PolynomialDecay") -> None:
        _positive(decay_steps, "decay_steps")
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, decay_steps
        self.end_learning_rate, self.power, self.cycle, self.name = end_learning_rate, power, cycle, name

    def __call__(self, step: int) -> float:
        s, d = float(step), float(self.decay_steps)
        if self.cycle:
            d *= 1.0 if s == 0 else math.ceil(s / self.decay_steps)
        else:
            s = min(s, d)
        lo = float(self.end_learning_rate)
        return (float(self.initial_learning_rate) - lo) * (1.0 - s / d) ** float(self.power) + lo

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (``floor`` of the ratio when
    ``staircase``)."""

    def __init__(self, initial_learning_rate: float, decay_steps: float, decay_rate: float, staircase: bool = False,
                 name: str = "InverseTimeDecay") -> None:
        _positive(decay_steps, "decay_steps")
        self.initial_learning_rate, self.decay_steps, self.decay_rate = initial_learning_rate, decay_steps, decay_rate
        self.staircase, self.name = staircase, name

    def __call__(self, step: int) -> float:
        p = float(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate) / (1.0 + float(self.decay_rate) * p)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warmup (Keras 3).

    Without ``warmup_target``: ``initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) /
    decay_steps)) + alpha)``. With it: a linear ramp from ``initial_learning_rate`` to ``warmup_target``
    over ``warmup_steps`` steps, then the cosine decay from ``warmup_target`` over ``decay_steps``.
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0, name: str = "CosineDecay",
                 warmup_target: float | None = None, warmup_steps: int = 0) -> None:
        _positive(decay_steps, "decay_steps")
        self.initial_learning_rate, self.decay_steps, self.alpha, self.name = initial_learning_rate, decay_steps, alpha, name
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def _decay(self, step: float, decay_from: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / float(self.decay_steps)))
        return decay_from * ((1.0 - float(self.alpha)) * cosine + float(self.alpha))

    def __call__(self, step: int) -> float:
        s, lr0 = float(step), float(self.initial_learning_rate)
        if self.warmup_target is None:
            return self._decay(min(s, float(self.decay_steps)), lr0)
        target, warm = float(self.warmup_target), float(self.warmup_steps)
        s = min(s, float(self.decay_steps) + warm)
        if s < warm:
            return (target - lr0) * (s / warm) + lr0
        return self._decay(s - warm, target)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): periods of ``first_decay_steps * t_mul**i`` steps, the i-th
    starting at ``initial_learning_rate * m_mul**i``."""

    def __init__(self, initial_learning_rate: float, first_decay_steps: int, t_mul: float = 2.0, m_mul: float = 1.0,
                 alpha: float = 0.0, name: str = "SGDRDecay") -> None:
        _positive(first_decay_steps, "first_decay_steps")
        self.initial_learning_rate, self.first_decay_steps = initial_learning_rate, first_decay_steps
        self.t_mul, self.m_mul, self.alpha, self.name = t_mul, m_mul, alpha, name

    def __call__(self, step: int) -> float:
        frac = float(step) / float(self.first_decay_steps)
        t_mul = float(self.t_mul)
        if t_mul == 1.0:
            i = math.floor(frac)
            frac -= i
        else:
            i = math.floor(math.log(1.0 - frac * (1.0 - t_mul)) / math.log(t_mul))
            frac = (frac - (1.0 - t_mul**i) / (1.0 - t_mul)) / t_mul**i
        cosine = 0.5 * float(self.m_mul) ** i * (1.0 + math.cos(math.pi * frac))
        return float(self.initial_learning_rate) * ((1.0 - float(self.alpha)) * cosine + float(self.alpha))

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self.t_mul, "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` for a schedule (Keras' ``schedules.serialize``)."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict[str, Any]) -> LearningRateSchedule:
    """Inverse of :func:`serialize`.

    Raises:
        ConfigError: an unknown class (define or import the schedule first).
    """
    name = str(config.get("class_name"))
    cls = _CLASSES.get(name)
    if cls is None:
        raise ConfigError(f"unknown learning-rate schedule {name!r} (known: {', '.join(sorted(_CLASSES))}); define or "
                          "import its class before loading")
    return cls.from_config(dict(config.get("config", {})))
