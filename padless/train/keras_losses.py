"""The rest of Keras' losses, per item, with Keras 3's formulas: regression, probabilistic, hinge, cosine.

Owns: :class:`Huber`, :class:`MeanAbsolutePercentageError`, :class:`MeanSquaredLogarithmicError`,
:class:`LogCosh`, :class:`KLDivergence`, :class:`Poisson`, :class:`Hinge`, :class:`SquaredHinge`,
:class:`CategoricalHinge` and :class:`CosineSimilarity`, registered under Keras' names and aliases
(``"huber"``, ``"mape"``, ``"msle"``, ``"log_cosh"``/``"logcosh"``, ``"kld"``, ``"poisson"``, ``"hinge"``,
``"squared_hinge"``, ``"categorical_hinge"``, ``"cosine_similarity"``). Each returns one value per item
(sequence or real step): the mean over the last axis as Keras computes it (``kl_divergence``,
``categorical_hinge`` and ``cosine_similarity`` reduce the last axis by their own formula), so the
epoch's loss is the exact mean over items. Keras' epsilon is 1e-7.

Does not own: the base class, cross-entropies, MSE/MAE and the registry (:mod:`padless.train.losses`).

Example:
    >>> import torch
    >>> Huber(delta=1.0)(torch.tensor([[0.0], [0.0]]), torch.tensor([[0.5], [3.0]])).item()  # (0.125 + 2.5) / 2
    1.3125
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from padless.errors import ConfigError, DataError
from padless.train.losses import Loss, keras_loss_args, register_loss

__all__ = ["Huber", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "LogCosh", "KLDivergence",
           "Poisson", "Hinge", "SquaredHinge", "CategoricalHinge", "CosineSimilarity", "KERAS_LOSSES",
           "check_one_per_output"]

EPSILON = 1e-7  # keras.backend.epsilon()


class _Elementwise(Loss):
    """A loss that is the mean over the last axis of an elementwise term (targets shaped as the outputs)."""

    def __init__(self, reduction: str = "sum_over_batch_size", name: str | None = None, dtype: Any = None) -> None:
        keras_loss_args(self, reduction, name, dtype)

    def per_item(self, out: torch.Tensor, y: torch.Tensor, from_logits: bool) -> torch.Tensor:
        return self.term(out, y.to(out.dtype).reshape(out.shape)).mean(-1)

    def term(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check_targets(self, y: torch.Tensor, num_outputs: int) -> None:
        check_one_per_output(self.name, y, num_outputs)


def check_one_per_output(name: str, y: torch.Tensor, num_outputs: int) -> None:
    """Raise a DataError unless every item has one target value per output (as Keras' shapes need)."""
    per_item = 1 if y.dim() == 1 else int(y.shape[-1])
    if per_item != num_outputs:
        raise DataError(f"{name} needs one target value per output: the model has {num_outputs} outputs, the targets "
                        f"{per_item} value(s) per item (one-hot encode class labels, or use a loss for class ids)")


class Huber(_Elementwise):
    """``0.5 * e**2`` where ``|e| <= delta``, else ``delta * |e| - 0.5 * delta**2`` (``e = y_pred - y_true``)."""

    name = "huber"

    def __init__(self, delta: float = 1.0, reduction: str = "sum_over_batch_size", name: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__(reduction, name, dtype)
        self.delta = float(delta)

    def get_config(self) -> dict[str, Any]:
        return {"delta": self.delta}

    def term(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = out - y
        a = e.abs()
        return torch.where(a <= self.delta, 0.5 * e * e, self.delta * a - 0.5 * self.delta**2)


class MeanAbsolutePercentageError(_Elementwise):
    """``100 * |y_true - y_pred| / max(|y_true|, epsilon)``."""

    name = "mean_absolute_percentage_error"

    def term(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 100.0 * ((y - out) / y.abs().clamp_min(EPSILON)).abs()


class MeanSquaredLogarithmicError(_Elementwise):
    """``(log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))**2``."""

    name = "mean_squared_logarithmic_error"

    def term(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (torch.log(out.clamp_min(EPSILON) + 1.0) - torch.log(y.clamp_min(EPSILON) + 1.0)) ** 2


class LogCosh(_Elementwise):
    """``log(cosh(y_pred - y_true))``, computed as Keras does: ``x + softplus(-2x) - log(2)``."""

    name = "log_cosh"

    def term(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = out - y
        return x + nn.functional.softplus(-2.0 * x) - math.log(2.0)


class Poisson(_Elementwise):
    """``y_pred - y_true * log(y_pred + epsilon)``."""

    name = "poisson"

    def term(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return out - y * torch.log(out + EPSILON)


class KLDivergence(_Elementwise):
    """``sum(y_true * log(y_true / y_pred))`` over the last axis, both clipped to ``[epsilon, 1]``."""

    name = "kl_divergence"

    def per_item(self, out: torch.Tensor, y: torch.Tensor, from_logits: bool) -> torch.Tensor:
        yt = y.to(out.dtype).reshape(out.shape).clamp(EPSILON, 1.0)
        return (yt * torch.log(yt / out.clamp(EPSILON, 1.0))).sum(-1)


def _hinge_labels(y: torch.Tensor) -> torch.Tensor:
    """Keras: labels in {0, 1} (the whole batch) become {-1, 1}."""
    return 2.0 * y - 1.0 if bool(((y == 0) | (y == 1)).all()) else y


def _check_hinge(name: str, y: torch.Tensor) -> None:
    v = y.reshape(-1)
    other = torch.nonzero((v != 0) & (v != 1))
    if bool((v == 0).any()) and other.numel():
        i = int(other[0, 0])
        raise DataError(f"{name} targets mix 0 with other values than 1 (index {i} has {float(v[i])}): Keras turns "
                        "{0, 1} labels into {-1, 1} only when a whole batch is binary, so the loss would depend on "
                        "the batching; use labels in {-1, 1} or in {0, 1}")


class Hinge(_Elementwise):
    """``max(1 - y_true * y_pred, 0)`` with labels in {-1, 1} (labels in {0, 1} are converted, as Keras)."""

    name = "hinge"

    def per_item(self, out: torch.Tensor, y: torch.Tensor, from_logits: bool) -> torch.Tensor:
        yy = _hinge_labels(y.to(out.dtype).reshape(out.shape))
        return self.term(out, yy).mean(-1)

    def term(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (1.0 - y * out).clamp_min(0.0)

    def check_targets(self, y: torch.Tensor, num_outputs: int) -> None:
        check_one_per_output(self.name, y, num_outputs)
        _check_hinge(self.name, y)


class SquaredHinge(Hinge):
    """``max(1 - y_true * y_pred, 0)**2`` (labels as :class:`Hinge`)."""

    name = "squared_hinge"

    def term(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (1.0 - y * out).clamp_min(0.0) ** 2


class CategoricalHinge(_Elementwise):
    """``max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)`` for one-hot targets (integer labels
    are one-hot encoded)."""

    name = "categorical_hinge"

    def per_item(self, out: torch.Tensor, y: torch.Tensor, from_logits: bool) -> torch.Tensor:
        if y.dtype in (torch.int32, torch.int64) or (y.dim() == 1 and out.shape[-1] > 1):
            y = nn.functional.one_hot(y.long().reshape(-1), out.shape[-1])
        yy = y.to(out.dtype).reshape(out.shape)
        pos = (yy * out).sum(-1)
        neg = ((1.0 - yy) * out).amax(-1)
        return (neg - pos + 1.0).clamp_min(0.0)

    def check_targets(self, y: torch.Tensor, num_outputs: int) -> None:
        if y.dim() > 1 and y.shape[-1] > 1:  # else class labels, one-hot encoded
            check_one_per_output(self.name, y, num_outputs)


class CosineSimilarity(_Elementwise):
    """``-sum(l2_normalize(y_true) * l2_normalize(y_pred))`` over the last axis (Keras' sign: -1 is best);
    ``l2_normalize(x) = x / sqrt(max(sum(x**2), epsilon**2))``."""

    name = "cosine_similarity"

    def __init__(self, axis: int = -1, reduction: str = "sum_over_batch_size", name: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__(reduction, name, dtype)
        if axis != -1:
            raise ConfigError(f"CosineSimilarity(axis={axis}): padless compares the last axis")

    def per_item(self, out: torch.Tensor, y: torch.Tensor, from_logits: bool) -> torch.Tensor:
        return -cosine(y.to(out.dtype).reshape(out.shape), out)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Keras' cosine similarity of the last axis (``x * rsqrt(max(sum(x**2), eps**2))`` normalisation)."""

    def unit(x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt((x * x).sum(-1, keepdim=True).clamp_min(EPSILON * EPSILON))

    return (unit(a) * unit(b)).sum(-1)


register_loss(Huber)
register_loss(MeanAbsolutePercentageError, "mape")
register_loss(MeanSquaredLogarithmicError, "msle")
register_loss(LogCosh, "logcosh")
register_loss(KLDivergence, "kld", "kullback_leibler_divergence")
register_loss(Poisson)
register_loss(Hinge)
register_loss(SquaredHinge)
register_loss(CategoricalHinge)
register_loss(CosineSimilarity)

KERAS_LOSSES = ("huber", "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "log_cosh",
                "kl_divergence", "poisson", "hinge", "squared_hinge", "categorical_hinge", "cosine_similarity")
"""The losses this module adds to the registry."""
