"""Metrics by Keras name, computed as sums so that epochs, batches and processes combine exactly.

Owns: :class:`Metric` (a metric describes itself: its log name, the vector of sums one batch contributes,
and how the epoch's figure follows from the summed vector and the item count), the built-in metrics and
:func:`get_metric` (a name or a Metric -> a Metric, with "did you mean"). Sums are plain vectors, so the
trainer adds them over batches, all-reduces them over processes and stores them in checkpoints without
knowing any metric. For per-step outputs every real step is one item (padding never counts).

Does not own: losses (:mod:`padless.train.losses`), the loop.

Example:
    >>> import torch
    >>> acc = get_metric("accuracy", loss_name="sparse_categorical_crossentropy")
    >>> s = acc.sums(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 0]))
    >>> acc.result(s, 2.0)
    0.5
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar

import numpy as np
import torch

from padless.errors import ConfigError

__all__ = ["Metric", "get_metric", "METRICS", "register_metric"]


class Metric:
    """A metric. Subclasses implement :meth:`sums` (and :meth:`result` when it is not ``sum / count``).

    Attributes:
        name: the name in the logs (``history.history[name]``).
        size: length of the sums vector.
    """

    name: ClassVar[str] = "metric"
    size: ClassVar[int] = 1

    def __init__(self, loss_name: str | None = None) -> None:
        self.loss_name = loss_name

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(size,) sums over the batch's items (prob: activated outputs, y: targets)."""
        raise NotImplementedError

    def result(self, sums: np.ndarray, count: float) -> float:
        """The epoch's value from the summed vector and the item count (default: mean)."""
        return float(sums[0]) / max(count, 1.0)

    def config(self) -> str:
        """The name that rebuilds this metric."""
        return self.name


class Accuracy(Metric):
    """Fraction of items classified right: argmax for several outputs, threshold 0.5 for one (or binary
    cross-entropy), as Keras' ``"accuracy"`` picks."""

    name = "accuracy"

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if prob.shape[-1] == 1 or self.loss_name == "binary_crossentropy":
            hit = ((prob > 0.5).to(y.dtype) == y.view_as(prob)).float().mean(-1)
        else:
            pred = prob.argmax(-1)
            target = y.long().view(-1) if (y.dim() == 1 or y.dtype in (torch.int64, torch.int32)) else y.argmax(-1)
            hit = (pred == target).float()
        return hit.sum().reshape(1)


class MeanAbsoluteErrorMetric(Metric):
    """Mean absolute error (per item: averaged over the output columns)."""

    name = "mae"

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (prob - y.to(prob.dtype).view_as(prob)).abs().mean(-1).sum().reshape(1)


class MeanSquaredErrorMetric(Metric):
    """Mean squared error (per item: averaged over the output columns)."""

    name = "mse"

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((prob - y.to(prob.dtype).view_as(prob)) ** 2).mean(-1).sum().reshape(1)


_BUILTIN: dict[str, type[Metric]] = {}
_ALIASES: dict[str, str] = {"acc": "accuracy", "mean_absolute_error": "mae", "mean_squared_error": "mse"}


def register_metric(cls: type[Metric], *aliases: str) -> type[Metric]:
    """Make a :class:`Metric` subclass available by its ``name`` (and aliases) in ``compile(metrics=...)``."""
    _BUILTIN[cls.name] = cls
    for a in aliases:
        _ALIASES[a] = cls.name
    return cls


for _cls in (Accuracy, MeanAbsoluteErrorMetric, MeanSquaredErrorMetric):
    register_metric(_cls)

METRICS = tuple(_BUILTIN)


def get_metric(spec: Any, loss_name: str | None = None) -> Metric:
    """A :class:`Metric` for a name or a Metric instance (``loss_name`` lets ``"accuracy"`` pick its form).

    Raises:
        ConfigError: an unknown name, with the closest valid ones.
    """
    if isinstance(spec, Metric):
        if spec.loss_name is None:
            spec.loss_name = loss_name
        return spec
    if isinstance(spec, type) and issubclass(spec, Metric):
        return spec(loss_name)
    key = str(spec).lower()
    key = _ALIASES.get(key, key)
    if key not in _BUILTIN:
        close = difflib.get_close_matches(key, list(_BUILTIN) + list(_ALIASES), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"unknown metric {spec!r}.{hint} Valid names: {', '.join(sorted(_BUILTIN))}")
    return _BUILTIN[key](loss_name)
