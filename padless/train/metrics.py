"""Metrics by Keras name, computed as sums so that epochs, batches and processes combine exactly.

Owns: :class:`Metric` (a metric describes itself: its log name, the vector of sums one batch contributes,
how the epoch's figure follows from the summed vector and the item count, whether larger is better, and
its saved config), the accuracy metrics (:class:`AutoAccuracy`: Keras' ``"accuracy"``/``"acc"`` strings,
:class:`BinaryAccuracy`,
:class:`CategoricalAccuracy`, :class:`SparseCategoricalAccuracy`, :class:`TopKCategoricalAccuracy`,
:class:`SparseTopKCategoricalAccuracy`), :class:`MeanMetricWrapper` (a Keras-style metric function
``fn(y_true, y_pred)``), the registry and :func:`get_metric` (a name, class, object, saved config or
function -> a Metric, with "did you mean").

Sums are plain vectors, so the trainer adds them over batches, all-reduces them over processes and stores
them in checkpoints without knowing any metric. For per-step outputs every real step is one item (padding
never counts). As in Keras, a metric given by a string logs under that string (``"acc"`` -> ``acc``,
``"mae"`` -> ``mae``); a metric object under its ``name`` (``AUC()`` -> ``auc``). Metrics are not weighted
by ``sample_weight``/``class_weight`` (Keras weighs only ``weighted_metrics``).

Does not own: losses (:mod:`padless.train.losses`), the metrics built on losses and confusion counts
(:mod:`padless.train.keras_metrics`), the loop.

Example:
    >>> import torch
    >>> acc = get_metric("accuracy")
    >>> s = acc.sums(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 0]))
    >>> acc.result(s, 2.0)
    0.5
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from padless.errors import ConfigError

__all__ = ["Metric", "get_metric", "METRICS", "register_metric", "metric_classes", "class_ids", "AutoAccuracy",
           "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
           "SparseTopKCategoricalAccuracy", "MeanMetricWrapper"]

_CLASSES: dict[str, type["Metric"]] = {}


def metric_classes() -> dict[str, type["Metric"]]:
    """Metric classes by class name (built-in and every subclass defined so far), for saved configs."""
    return dict(_CLASSES)


class Metric:
    """A metric. Subclasses implement :meth:`sums` (and :meth:`result` when it is not ``sum / count``).

    Args:
        name: the log name (default: the class's Keras name).
        dtype: Keras' metric dtype; padless sums in float64 (only None/float32/float64 accepted).

    Attributes:
        name: the name in the logs (``history.history[name]``).
        size: length of the sums vector.
        direction: ``"up"`` when larger is better (callbacks' ``mode="auto"``), ``"down"`` when smaller is,
            None when unknown.
    """

    name: str = "metric"
    size: int = 1
    direction: ClassVar[str | None] = "up"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _CLASSES[cls.__name__] = cls

    def __init__(self, name: str | None = None, dtype: Any = None, *, loss_name: str | None = None) -> None:
        if dtype not in (None, "float32", "float64", torch.float32, torch.float64):
            raise ConfigError(f"{type(self).__name__}(dtype={dtype!r}): padless sums metrics in float64")
        if name is not None:
            self.name = str(name)
        self.loss_name = loss_name
        self.spec: str | None = None  # the string it was compiled from, if any

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(size,) sums over the batch's items (prob: activated outputs, y: targets)."""
        raise NotImplementedError

    def result(self, sums: np.ndarray, count: float) -> float:
        """The epoch's value from the summed vector and the item count (default: mean)."""
        return float(sums[0]) / max(count, 1.0)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments besides ``name`` (Keras ``get_config``; default: none)."""
        return {}

    def config(self) -> str | dict[str, Any] | None:
        """What rebuilds this metric: the string it came from, or ``{"class_name", "config"}``."""
        if self.spec is not None:
            return self.spec
        return {"class_name": type(self).__name__, "config": {**self.get_config(), "name": self.name}}


def class_ids(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer class per item from integer labels ``(n,)``/``(n, 1)`` or one-hot rows ``(n, K)``."""
    if y.dim() == 1 or (y.shape[-1] == 1 and num_classes > 1):
        return y.reshape(-1).long()
    return y.argmax(-1)


def _mean_over_items(hit: torch.Tensor) -> torch.Tensor:
    """Sum over items of each item's mean (over its output columns)."""
    h = hit.float()
    return (h.reshape(h.shape[0], -1).mean(-1) if h.dim() > 1 else h).sum().reshape(1)


class BinaryAccuracy(Metric):
    """How often ``(y_pred > threshold) == y_true`` (averaged over the output columns of an item)."""

    name = "binary_accuracy"

    def __init__(self, name: str | None = None, dtype: Any = None, threshold: float = 0.5, **kw: Any) -> None:
        super().__init__(name, dtype, **kw)
        self.threshold = float(threshold)

    def get_config(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        yy = y.reshape(prob.shape).to(prob.dtype)
        return _mean_over_items((prob > self.threshold).to(prob.dtype) == yy)


class SparseCategoricalAccuracy(Metric):
    """How often ``argmax(y_pred)`` is the integer label."""

    name = "sparse_categorical_accuracy"

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (prob.argmax(-1) == y.reshape(-1).long()).float().sum().reshape(1)


class CategoricalAccuracy(Metric):
    """How often ``argmax(y_pred) == argmax(y_true)`` (one-hot targets; integer labels accepted too)."""

    name = "categorical_accuracy"

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (prob.argmax(-1) == class_ids(y, prob.shape[-1])).float().sum().reshape(1)


class AutoAccuracy(Metric):
    """Keras' ``"accuracy"``: picked by the shapes as Keras 3 does - binary accuracy (threshold 0.5) for one
    output column, sparse categorical accuracy when the targets are class ids, else categorical accuracy."""

    name = "accuracy"

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if prob.shape[-1] == 1:
            return BinaryAccuracy().sums(prob, y)
        if y.dim() < prob.dim() or y.shape[-1] == 1:
            return SparseCategoricalAccuracy().sums(prob, y)
        return CategoricalAccuracy().sums(prob, y)


def _in_top_k(prob: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    kth = prob.topk(min(int(k), prob.shape[-1]), dim=-1).values[:, -1:]
    return prob.gather(-1, target.view(-1, 1)) >= kth  # ties with the k-th value count, as Keras' in_top_k


class TopKCategoricalAccuracy(Metric):
    """How often the one-hot target's class is among the ``k`` largest outputs."""

    name = "top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str | None = None, dtype: Any = None, **kw: Any) -> None:
        super().__init__(name, dtype, **kw)
        self.k = int(k)

    def get_config(self) -> dict[str, Any]:
        return {"k": self.k}

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _in_top_k(prob, class_ids(y, prob.shape[-1]), self.k).float().sum().reshape(1)


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """How often the integer label is among the ``k`` largest outputs."""

    name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name: str | None = None, dtype: Any = None, from_sorted_ids: bool = False,
                 **kw: Any) -> None:
        if from_sorted_ids:
            raise ConfigError("SparseTopKCategoricalAccuracy(from_sorted_ids=True) is not supported by padless")
        super().__init__(k, name, dtype, **kw)

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _in_top_k(prob, y.reshape(-1).long(), self.k).float().sum().reshape(1)


class MeanMetricWrapper(Metric):
    """A Keras-style metric function ``fn(y_true, y_pred)``: the mean of its per-item values (values with
    more axes are averaged per item first, as Keras' ``MeanMetricWrapper``). Cannot be saved by name."""

    name = "mean_metric_wrapper"
    direction = None  # unknown: mode="auto" callbacks refuse it, as Keras

    def __init__(self, fn: Callable[..., Any], name: str | None = None, dtype: Any = None, **kw: Any) -> None:
        super().__init__(name or getattr(fn, "__name__", "metric"), dtype, **kw)
        self.fn = fn

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        yy = y.unsqueeze(-1) if y.dim() + 1 == prob.dim() and prob.shape[-1] == 1 else y
        v = torch.as_tensor(self.fn(yy, prob), dtype=torch.float64)
        if v.dim() == 0:  # one number for the batch: its mean
            return (v * prob.shape[0]).reshape(1)
        return v.reshape(prob.shape[0], -1).mean(-1).sum().reshape(1)

    def config(self) -> None:  # type: ignore[override]
        return None


_BUILTIN: dict[str, type[Metric]] = {}
_ALIASES: dict[str, str] = {"acc": "accuracy"}


def register_metric(cls: type[Metric], *aliases: str) -> type[Metric]:
    """Make a :class:`Metric` subclass available by its ``name``, its class name and ``aliases`` in
    ``compile(metrics=...)``."""
    _BUILTIN[cls.name] = cls
    for a in (cls.__name__.lower(), *aliases):
        _ALIASES.setdefault(a, cls.name)
    return cls


for _cls in (AutoAccuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
             SparseTopKCategoricalAccuracy):
    register_metric(_cls)

METRICS = tuple(_BUILTIN)


def get_metric(spec: Any, loss_name: str | None = None) -> Metric:
    """A :class:`Metric` for a name (which becomes its log name, as in Keras), a Metric class or object, a
    saved config or a Keras-style function ``fn(y_true, y_pred)``.

    Raises:
        ConfigError: an unknown name, with the closest valid ones.
    """
    if isinstance(spec, Metric):
        m = spec
    elif isinstance(spec, type) and issubclass(spec, Metric):
        m = spec()
    elif isinstance(spec, dict):
        name = str(spec.get("class_name"))
        if name not in _CLASSES:
            raise ConfigError(f"unknown metric class {name!r} in the saved config; define or import it first")
        m = _CLASSES[name](**dict(spec.get("config", {})))
    elif isinstance(spec, str):
        key = _ALIASES.get(spec.lower(), spec.lower())
        if key not in _BUILTIN:
            close = difflib.get_close_matches(spec.lower(), list(_BUILTIN) + list(_ALIASES), n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"unknown metric {spec!r}.{hint} Valid names: {', '.join(sorted(_BUILTIN))}")
        m = _BUILTIN[key]()
        m.name, m.spec = spec, spec
    elif callable(spec):
        m = MeanMetricWrapper(spec)
    else:
        raise ConfigError(f"a metric must be a name, a Metric or a function; got {type(spec).__name__}")
    if m.loss_name is None:
        m.loss_name = loss_name
    return m
