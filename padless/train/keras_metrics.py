"""Keras' metrics built on losses and on confusion counts, as all-reducible sums.

Owns: Keras' exact-equality :class:`Accuracy` class, the mean-of-a-loss metrics (:class:`MeanSquaredError`, :class:`MeanAbsoluteError`,
:class:`MeanAbsolutePercentageError`, :class:`MeanSquaredLogarithmicError`, :class:`LogCoshError`,
:class:`CosineSimilarity`, :class:`KLDivergence`, :class:`Poisson`, :class:`Hinge`, :class:`SquaredHinge`,
:class:`CategoricalHinge`, :class:`BinaryCrossentropy`, :class:`CategoricalCrossentropy`,
:class:`SparseCategoricalCrossentropy`), :class:`RootMeanSquaredError` (the square root of the summed
squared errors over the count), and the confusion-count metrics :class:`Precision`, :class:`Recall` (true
and false positive / negative counts at a threshold) and :class:`AUC` (counts at ``num_thresholds`` fixed
thresholds, bucketed exactly as Keras' evenly-spaced fast path, then Keras' Riemann sum or its
interpolated PR integral). Every one is a vector of sums, so batches and processes add up exactly.

For outputs with several columns, integer class labels are one-hot encoded before Precision, Recall and
AUC count them (Keras needs one-hot targets there). Registered under Keras' names and aliases (``"mse"``,
``"mae"``, ``"mape"``, ``"msle"``, ``"rmse"``, ``"auc"``, ``"precision"``, ``"recall"``...).

Does not own: the base class, the accuracies and the registry (:mod:`padless.train.metrics`), the loss
formulas (:mod:`padless.train.losses`, :mod:`padless.train.keras_losses`).

Example:
    >>> import torch
    >>> auc = AUC()
    >>> s = auc.sums(torch.tensor([[0.1], [0.4], [0.35], [0.8]]), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    >>> round(auc.result(s.numpy(), 4.0), 4)
    0.75
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from padless.errors import ConfigError, DataError
from padless.train import keras_losses as kl
from padless.train import losses as pl
from padless.train.metrics import Metric, register_metric

__all__ = ["Accuracy", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
           "LogCoshError", "CosineSimilarity", "KLDivergence", "Poisson", "Hinge", "SquaredHinge", "CategoricalHinge",
           "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "RootMeanSquaredError",
           "Precision", "Recall", "AUC", "KERAS_METRICS"]

NEG_INF = -1e10  # Keras' metrics_utils.NEG_INF


class _LossMetric(Metric):
    """The mean over items of a loss's per-item value (Keras' ``MeanMetricWrapper`` of the loss function)."""

    direction = "down"
    loss_cls: ClassVar[type[pl.Loss]] = pl.MeanSquaredError
    sign: ClassVar[float] = 1.0

    def __init__(self, name: str | None = None, dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name, dtype, loss_name=kwargs.pop("loss_name", None))
        self.kwargs = kwargs
        try:
            self.loss = self.loss_cls(**kwargs)
        except TypeError as e:
            raise ConfigError(f"{type(self).__name__}: {e}") from None

    def get_config(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        try:
            item = self.loss.per_item(prob, pl.same_rank(y, prob), False)
        except RuntimeError as e:  # shapes that cannot pair up
            raise DataError(f"metric {self.name!r}: the targets ({tuple(y.shape)}) do not fit the outputs "
                            f"({tuple(prob.shape)}): {str(e).splitlines()[0]}") from None
        return (self.sign * item.double()).sum().reshape(1)


def _loss_metric(cls_name: str, name: str, loss_cls: type[pl.Loss], direction: str = "down",
                 sign: float = 1.0, doc: str = "") -> type[_LossMetric]:
    return type(cls_name, (_LossMetric,), {"name": name, "loss_cls": loss_cls, "direction": direction, "sign": sign,
                                           "__doc__": doc or f"Keras ``{cls_name}``: the mean of ``{name}`` per item.",
                                           "__module__": __name__})


MeanSquaredError = _loss_metric("MeanSquaredError", "mean_squared_error", pl.MeanSquaredError)
MeanAbsoluteError = _loss_metric("MeanAbsoluteError", "mean_absolute_error", pl.MeanAbsoluteError)
MeanAbsolutePercentageError = _loss_metric("MeanAbsolutePercentageError", "mean_absolute_percentage_error",
                                           kl.MeanAbsolutePercentageError)
MeanSquaredLogarithmicError = _loss_metric("MeanSquaredLogarithmicError", "mean_squared_logarithmic_error",
                                           kl.MeanSquaredLogarithmicError)
LogCoshError = _loss_metric("LogCoshError", "logcosh", kl.LogCosh)
CosineSimilarity = _loss_metric("CosineSimilarity", "cosine_similarity", kl.CosineSimilarity, "up", -1.0,
                                "Keras ``CosineSimilarity``: the mean cosine similarity (1 is best; the loss is its negative).")
KLDivergence = _loss_metric("KLDivergence", "kl_divergence", kl.KLDivergence)
Poisson = _loss_metric("Poisson", "poisson", kl.Poisson)
Hinge = _loss_metric("Hinge", "hinge", kl.Hinge)
SquaredHinge = _loss_metric("SquaredHinge", "squared_hinge", kl.SquaredHinge)
CategoricalHinge = _loss_metric("CategoricalHinge", "categorical_hinge", kl.CategoricalHinge)
BinaryCrossentropy = _loss_metric("BinaryCrossentropy", "binary_crossentropy", pl.BinaryCrossentropy)
CategoricalCrossentropy = _loss_metric("CategoricalCrossentropy", "categorical_crossentropy", pl.CategoricalCrossentropy)
SparseCategoricalCrossentropy = _loss_metric("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy",
                                             pl.SparseCategoricalCrossentropy)


class Accuracy(Metric):
    """Keras' ``Accuracy`` class: how often ``y_pred == y_true`` exactly (per item, averaged over the columns).
    The strings ``"accuracy"``/``"acc"`` pick a classification accuracy instead, as in Keras."""

    name = "accuracy"

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        yy = pl.same_rank(y, prob).to(prob.dtype).reshape(prob.shape)
        return (prob == yy).double().reshape(prob.shape[0], -1).mean(-1).sum().reshape(1)


class RootMeanSquaredError(Metric):
    """``sqrt(sum of per-item mean squared errors / items)``."""

    name = "root_mean_squared_error"
    direction = "down"

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        err = prob - pl.same_rank(y, prob).to(prob.dtype).reshape(prob.shape)
        return (err.double() ** 2).reshape(prob.shape[0], -1).mean(-1).sum().reshape(1)

    def result(self, sums: np.ndarray, count: float) -> float:
        return math.sqrt(float(sums[0]) / max(count, 1.0))


def _columns(prob: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, K) predictions and (n, K) boolean labels (integer labels one-hot encoded for K > 1)."""
    p = prob if prob.dim() > 1 else prob.unsqueeze(-1)
    k = p.shape[-1]
    if k > 1 and (y.dim() == 1 or (y.shape[-1] == 1 and y.dim() == p.dim())):
        y = nn.functional.one_hot(y.reshape(-1).long(), k)
    return p, y.reshape(p.shape) != 0


def _select(p: torch.Tensor, lab: torch.Tensor, top_k: int | None, class_id: int | None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras' ``top_k`` and ``class_id`` options, then everything flattened."""
    if top_k is not None:  # Keras' _filter_top_k: everything outside the top k becomes NEG_INF
        keep = torch.zeros_like(p, dtype=torch.bool).scatter_(-1, p.topk(min(top_k, p.shape[-1]), -1).indices, True)
        p = torch.where(keep, p, torch.full_like(p, NEG_INF))
    if class_id is not None:
        p, lab = p[:, class_id], lab[:, class_id]
    return p.reshape(-1), lab.reshape(-1)


class _AtThreshold(Metric):
    """Precision or recall at one threshold, from true-positive and false-positive / -negative counts."""

    size = 2
    other: ClassVar[str] = "fp"

    def __init__(self, thresholds: float | Sequence[float] | None = None, top_k: int | None = None,
                 class_id: int | None = None, name: str | None = None, dtype: Any = None, **kw: Any) -> None:
        super().__init__(name, dtype, **kw)
        th = thresholds if thresholds is None or isinstance(thresholds, (int, float)) else list(thresholds)
        if isinstance(th, list):
            if len(th) != 1:
                raise ConfigError(f"{type(self).__name__}(thresholds={th}): padless logs one number per metric; give "
                                  "one threshold (make one metric per threshold, each with its own name)")
            th = th[0]
        if th is not None and not 0.0 <= float(th) <= 1.0:
            raise ConfigError(f"Threshold values must be in [0, 1]. Received: {th}")
        self.init_thresholds, self.top_k, self.class_id = thresholds, top_k, class_id
        self.threshold = float(th) if th is not None else (0.5 if top_k is None else NEG_INF)

    def get_config(self) -> dict[str, Any]:
        return {"thresholds": self.init_thresholds, "top_k": self.top_k, "class_id": self.class_id}

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        p, lab = _select(*_columns(prob, y), self.top_k, self.class_id)
        pos = p > self.threshold
        other = pos & ~lab if self.other == "fp" else ~pos & lab
        return torch.stack([(pos & lab).sum(), other.sum()]).double()

    def result(self, sums: np.ndarray, count: float) -> float:
        tp, other = float(sums[0]), float(sums[1])
        return tp / (tp + other) if tp + other > 0 else 0.0


class Precision(_AtThreshold):
    """``tp / (tp + fp)`` with predictions above ``thresholds`` (default 0.5) counted positive."""

    name = "precision"


class Recall(_AtThreshold):
    """``tp / (tp + fn)`` with predictions above ``thresholds`` (default 0.5) counted positive."""

    name = "recall"
    other = "fn"


def _nan0(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Keras' ``divide_no_nan``: 0 where the denominator is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))


class AUC(Metric):
    """Area under the ROC or PR curve from confusion counts at ``num_thresholds`` thresholds (Keras' ``AUC``:
    same thresholds, bucketing, Riemann sums and interpolated PR integral).

    ``multi_label=True`` needs ``num_labels`` here (the length of the summed vector is fixed before the
    first batch).
    """

    name = "auc"

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", summation_method: str = "interpolation",
                 name: str | None = None, dtype: Any = None, thresholds: Sequence[float] | None = None,
                 multi_label: bool = False, num_labels: int | None = None, label_weights: Sequence[float] | None = None,
                 from_logits: bool = False, **kw: Any) -> None:
        super().__init__(name, dtype, **kw)
        self.curve, self.summation_method = str(curve).upper(), str(summation_method).lower()
        if self.curve not in ("ROC", "PR", "PRGAIN"):
            raise ConfigError(f'Invalid AUC curve value "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]')
        if self.summation_method not in ("interpolation", "minoring", "majoring"):
            raise ConfigError(f'Invalid AUC summation method value "{summation_method}". Expected values are '
                              '["interpolation", "majoring", "minoring"]')
        self.init_thresholds = None if thresholds is None else sorted(float(t) for t in thresholds)
        if self.init_thresholds is not None:
            self.num_thresholds = len(self.init_thresholds) + 2
            th = self.init_thresholds
            even_ref = np.arange(self.num_thresholds, dtype=np.float32) / (self.num_thresholds - 1)
            self.even = self.num_thresholds >= 3 and bool(np.allclose([0.0, *th, 1.0], even_ref, atol=1e-7))
        else:
            if num_thresholds <= 1:
                raise ConfigError(f"Argument `num_thresholds` must be an integer > 1. Received: num_thresholds="
                                  f"{num_thresholds}")
            self.num_thresholds = int(num_thresholds)
            th = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self.even = True
        self.thresholds = [0.0 - 1e-7, *th, 1.0 + 1e-7]
        if multi_label and not num_labels:
            raise ConfigError("AUC(multi_label=True) needs num_labels= in padless (the summed vector's length must be "
                              "known before the first batch, so that processes can add them)")
        if num_labels and not multi_label:
            raise ConfigError("`num_labels` is needed only when `multi_label` is True.")
        self.multi_label, self.num_labels, self.from_logits = bool(multi_label), num_labels, bool(from_logits)
        self.label_weights = None if label_weights is None else [float(w) for w in label_weights]
        self.size = (int(num_labels) if multi_label else 1) * (2 * self.num_thresholds + 2)  # type: ignore[arg-type]

    def get_config(self) -> dict[str, Any]:
        cfg = {"num_thresholds": self.num_thresholds, "curve": self.curve, "summation_method": self.summation_method,
               "multi_label": self.multi_label, "num_labels": self.num_labels, "label_weights": self.label_weights,
               "from_logits": self.from_logits}
        if self.init_thresholds is not None:
            cfg["thresholds"] = self.init_thresholds
        return cfg

    def sums(self, prob: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.from_logits:
            prob = torch.sigmoid(prob)
        p, lab = _columns(prob.float(), y)
        w = torch.ones_like(p)
        if self.label_weights is not None and not self.multi_label:
            w = w * torch.tensor(self.label_weights, dtype=p.dtype, device=p.device)
        if not self.multi_label:
            p, lab, w = p.reshape(-1, 1), lab.reshape(-1, 1), w.reshape(-1, 1)
        true, false = lab.to(p.dtype) * w, (~lab).to(p.dtype) * w  # (n, L)
        n = self.num_thresholds
        if self.even:  # Keras' fast path: bucket = ceil(p * (n - 1)) - 1, then a reverse cumulative sum
            idx = (torch.ceil(p.clamp(0.0, 1.0) * (n - 1)) - 1).clamp_min(0).long().T  # (L, n_items)
            tp = torch.zeros(p.shape[1], n, dtype=p.dtype, device=p.device).scatter_add_(1, idx, true.T)
            fp = torch.zeros_like(tp).scatter_add_(1, idx, false.T)
            tp, fp = tp.flip(1).cumsum(1).flip(1), fp.flip(1).cumsum(1).flip(1)
        else:
            thr = torch.tensor(self.thresholds, dtype=p.dtype, device=p.device)
            above = (p.unsqueeze(-1) > thr).to(p.dtype)  # (n_items, L, n)
            tp, fp = (above * true.unsqueeze(-1)).sum(0), (above * false.unsqueeze(-1)).sum(0)
        out = torch.cat([tp, fp, true.sum(0).unsqueeze(1), false.sum(0).unsqueeze(1)], 1)  # (L, 2n + 2)
        return out.double().reshape(-1)

    def result(self, sums: np.ndarray, count: float) -> float:
        n = self.num_thresholds
        v = np.asarray(sums, dtype=np.float64).reshape(-1, 2 * n + 2)
        tp, fp = v[:, :n], v[:, n : 2 * n]
        fn, tn = v[:, 2 * n : 2 * n + 1] - tp, v[:, 2 * n + 1 :] - fp
        per_label = np.array([self._area(tp[i], fp[i], tn[i], fn[i]) for i in range(v.shape[0])])
        if not self.multi_label:
            return float(per_label[0])
        if self.label_weights is None:
            return float(per_label.mean())
        lw = np.asarray(self.label_weights, dtype=np.float64)
        return float(_nan0(np.sum(per_label * lw), np.sum(lw)))

    def _area(self, tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> float:
        if self.curve == "PR" and self.summation_method == "interpolation":
            return _interpolate_pr_auc(tp, fp, fn)
        recall = _nan0(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _nan0(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _nan0(tp, tp + fp)
        else:  # PRGAIN
            scale = _nan0(tp + fn, tn + fp)
            x = np.maximum(np.where(tp == 0, 0.0, 1.0 - scale * _nan0(fn, tp)), 0.0)
            y = np.where(tp == 0, 1.0, 1.0 - scale * _nan0(fp, tp))
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))


def _interpolate_pr_auc(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> float:
    """Keras' ``AUC.interpolate_pr_auc`` (Davis & Goadrich 2006): precision interpolated between thresholds."""
    dtp = tp[:-1] - tp[1:]
    p = tp + fp
    dp = p[:-1] - p[1:]
    slope = _nan0(dtp, np.maximum(dp, 0.0))
    intercept = tp[1:] - slope * p[1:]
    ratio = np.where((p[:-1] > 0) & (p[1:] > 0), _nan0(p[:-1], np.maximum(p[1:], 0.0)), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        inc = _nan0(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0.0))
    return float(np.sum(inc))


for _cls, _aliases in ((MeanSquaredError, ("mse",)), (MeanAbsoluteError, ("mae",)),
                       (MeanAbsolutePercentageError, ("mape",)), (MeanSquaredLogarithmicError, ("msle",)),
                       (LogCoshError, ("log_cosh_error",)), (CosineSimilarity, ()), (KLDivergence, ("kld",)),
                       (Poisson, ()), (Hinge, ()), (SquaredHinge, ()), (CategoricalHinge, ()),
                       (BinaryCrossentropy, ("bce",)), (CategoricalCrossentropy, ()), (SparseCategoricalCrossentropy, ()),
                       (RootMeanSquaredError, ("rmse",)), (Precision, ()), (Recall, ()), (AUC, ())):
    register_metric(_cls, *_aliases)

KERAS_METRICS = ("mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
                 "mean_squared_logarithmic_error", "logcosh", "cosine_similarity", "kl_divergence", "poisson", "hinge",
                 "squared_hinge", "categorical_hinge", "binary_crossentropy", "categorical_crossentropy",
                 "sparse_categorical_crossentropy", "root_mean_squared_error", "precision", "recall", "auc")
"""The metric names this module adds to the registry."""
