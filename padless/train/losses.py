"""Losses by Keras name, and user losses with Keras' ``loss(y_true, y_pred)`` convention.

Owns: :class:`Loss` (a loss describes itself: its name, whether it takes integer class labels, which
output activation it can fold into a numerically stable form, its per-item values and its target checks),
the built-in losses, :class:`CallableLoss` (a user's function or a ``torch.nn`` loss module) and
:func:`get_loss` (a name, a Loss or a callable -> a Loss, with "did you mean").

A loss returns one value per item - per sequence, or per real step for per-step targets - so an epoch's
loss is an exact mean that does not depend on batch size, batching mode or process count.

Does not own: metrics (:mod:`padless.train.metrics`), compiling (:mod:`padless.train.compile`).

Example:
    >>> import torch
    >>> loss = get_loss("sparse_categorical_crossentropy")
    >>> loss.per_item(torch.zeros(2, 4), torch.tensor([1, 3]), from_logits=True).tolist()  # log(4)
    [1.3862943649291992, 1.3862943649291992]
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from padless.errors import ConfigError, DataError

__all__ = ["Loss", "CallableLoss", "get_loss", "LOSSES", "register_loss", "keras_loss_args", "same_rank",
           "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy", "MeanSquaredError",
           "MeanAbsoluteError"]

_EPS = 1e-7


class Loss:
    """A named loss. Subclasses implement :meth:`per_item`.

    Attributes:
        name: the registered name (``compile(loss=name)``, saved configs).
        integer_labels: takes integer class labels (sparse categorical cross-entropy).
        folds: the output activation this loss folds into a stable form from logits (``"softmax"`` or
            ``"sigmoid"``), or None.
        from_logits: the model's outputs are logits (Keras' ``from_logits=True``).
    """

    name: ClassVar[str] = "loss"
    integer_labels: ClassVar[bool] = False
    folds: ClassVar[str | None] = None
    from_logits: bool = False

    def per_item(self, out: torch.Tensor, y: torch.Tensor, from_logits: bool) -> torch.Tensor:
        """(n,) loss per sample or real step; ``out`` are logits when ``from_logits``."""
        raise NotImplementedError

    def check_targets(self, y: torch.Tensor, num_outputs: int) -> None:
        """Raise a DataError naming the first target this loss cannot take (default: accept all)."""

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that change the loss (Keras ``get_config``; default: none)."""
        return {}

    def config(self) -> str | dict[str, Any] | None:
        """What rebuilds this loss: its name, or ``{"class_name": name, "config": ...}`` when its arguments are
        not the defaults (None: it cannot be saved)."""
        params = self.get_config()
        if not params:
            return self.name
        try:
            default = type(self)().get_config()
        except TypeError:  # a subclass with required arguments
            default = None
        return self.name if params == default else {"class_name": self.name, "config": params}

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> torch.Tensor:
        """Keras' ``loss(y_true, y_pred)``: the mean over items (weighted sum / item count)."""
        pred = torch.as_tensor(y_pred)
        pred = pred if pred.is_floating_point() else pred.float()
        item = self.per_item(pred, torch.as_tensor(y_true), False)
        if sample_weight is not None:
            item = item * torch.as_tensor(sample_weight, dtype=item.dtype).reshape(-1)
        return item.sum() / max(int(item.shape[0]), 1)


def keras_loss_args(owner: Any, reduction: Any, name: Any, dtype: Any) -> None:
    """Check Keras' common loss arguments: padless computes one value per item and averages them, i.e.
    Keras' default ``reduction="sum_over_batch_size"``; ``name`` is kept, ``dtype`` must be float32."""
    cls = type(owner).__name__
    if reduction not in ("sum_over_batch_size", "auto"):
        raise ConfigError(f"{cls}(reduction={reduction!r}): padless averages the per-item losses (Keras' default "
                          "'sum_over_batch_size'); other reductions are not supported")
    if dtype not in (None, "float32", torch.float32):
        raise ConfigError(f"{cls}(dtype={dtype!r}): padless computes losses in float32")
    owner.keras_name = name


def _prob_log(out: torch.Tensor, from_logits: bool) -> torch.Tensor:
    if from_logits:
        return torch.log_softmax(out, -1)
    return torch.log((out / out.sum(-1, keepdim=True)).clamp_min(_EPS))


class CategoricalCrossentropy(Loss):
    """Cross-entropy for one-hot rows (or integer labels, accepted too); Keras' ``from_logits`` and
    ``label_smoothing`` (``y * (1 - s) + s / classes``)."""

    name = "categorical_crossentropy"
    folds = "softmax"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str = "sum_over_batch_size", name: str | None = None, dtype: Any = None) -> None:
        keras_loss_args(self, reduction, name, dtype)
        if axis != -1:
            raise ConfigError(f"{type(self).__name__}(axis={axis}): padless takes the classes on the last axis")
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}

    def per_item(self, out: torch.Tensor, y: torch.Tensor, from_logits: bool) -> torch.Tensor:
        logp = _prob_log(out, from_logits or self.from_logits)
        sparse = y.dtype in (torch.int64, torch.int32) or (y.dim() == 1 and out.shape[-1] > 1)
        if sparse and not self.label_smoothing:
            return -logp.gather(-1, y.long().view(-1, 1)).squeeze(-1)
        if sparse:
            y = nn.functional.one_hot(y.long().view(-1), out.shape[-1])
        y = y.to(logp.dtype)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + self.label_smoothing / out.shape[-1]
        return -(y * logp).sum(-1)

    def check_targets(self, y: torch.Tensor, num_outputs: int) -> None:
        if y.dim() == 1 or y.dtype in (torch.int64, torch.int32):
            yl = y.reshape(-1)
            bad = torch.nonzero((yl < 0) | (yl >= num_outputs))
            if bad.numel():
                i = int(bad[0, 0])
                raise DataError(
                    f"label {int(yl[i])} at index {i} is out of range for {num_outputs} classes "
                    f"(valid: 0..{num_outputs - 1}); check the labels or the last Dense layer's units"
                )
        elif y.shape[-1] != num_outputs:
            raise DataError(f"one-hot targets have {y.shape[-1]} columns but the model outputs {num_outputs}; "
                            "they must match")


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy for integer class labels."""

    name = "sparse_categorical_crossentropy"
    integer_labels = True

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None,
                 reduction: str = "sum_over_batch_size", name: str | None = None, dtype: Any = None) -> None:
        if ignore_class is not None:
            raise ConfigError("SparseCategoricalCrossentropy(ignore_class=...) is not supported by padless; per-step "
                              "outputs of variable-length sequences need no padding class")
        super().__init__(from_logits, 0.0, -1, reduction, name, dtype)

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits}

    def check_targets(self, y: torch.Tensor, num_outputs: int) -> None:
        if not (y.dim() == 1 or y.dtype in (torch.int64, torch.int32)):
            raise DataError("sparse_categorical_crossentropy takes integer labels; got one-hot rows "
                            "(use categorical_crossentropy)")
        super().check_targets(y, num_outputs)


class BinaryCrossentropy(Loss):
    """Binary cross-entropy, averaged over the output columns; Keras' ``from_logits`` and
    ``label_smoothing`` (``y * (1 - s) + 0.5 * s``)."""

    name = "binary_crossentropy"
    folds = "sigmoid"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str = "sum_over_batch_size", name: str | None = None, dtype: Any = None) -> None:
        keras_loss_args(self, reduction, name, dtype)
        if axis != -1:
            raise ConfigError(f"BinaryCrossentropy(axis={axis}): padless averages over the last axis")
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}

    def per_item(self, out: torch.Tensor, y: torch.Tensor, from_logits: bool) -> torch.Tensor:
        yy = y.to(out.dtype).view_as(out)
        if self.label_smoothing:
            yy = yy * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        if from_logits or self.from_logits:
            v = nn.functional.binary_cross_entropy_with_logits(out, yy, reduction="none")
        else:
            v = nn.functional.binary_cross_entropy(out.clamp(_EPS, 1 - _EPS), yy, reduction="none")
        return v.mean(-1)

    def check_targets(self, y: torch.Tensor, num_outputs: int) -> None:
        bad = torch.nonzero((y < 0) | (y > 1))
        if bad.numel():
            i = int(bad[0, 0])
            raise DataError(f"binary_crossentropy needs targets in [0, 1]; index {i} has {float(y.reshape(-1)[i])}")


class _Regression(Loss):
    def __init__(self, reduction: str = "sum_over_batch_size", name: str | None = None, dtype: Any = None) -> None:
        keras_loss_args(self, reduction, name, dtype)

    def per_item(self, out: torch.Tensor, y: torch.Tensor, from_logits: bool) -> torch.Tensor:
        return self.elementwise(out, y.to(out.dtype).view_as(out)).mean(-1)

    def elementwise(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check_targets(self, y: torch.Tensor, num_outputs: int) -> None:
        per_item = 1 if y.dim() == 1 else int(y.shape[-1])
        if per_item != num_outputs:
            raise DataError(f"{self.name} needs one target value per output: the model has {num_outputs} outputs, the "
                            f"targets {per_item} value(s) per item")


class MeanSquaredError(_Regression):
    """Mean squared error over the output columns."""

    name = "mse"

    def elementwise(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (out - y) ** 2


class MeanAbsoluteError(_Regression):
    """Mean absolute error over the output columns."""

    name = "mae"

    def elementwise(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (out - y).abs()


class CallableLoss(Loss):
    """A user's loss: a Keras-style function ``loss(y_true, y_pred)`` or a ``torch.nn`` loss module.

    Keras calls ``loss(y_true, y_pred)``; PyTorch loss modules take ``(input, target)`` = ``(y_pred,
    y_true)``. A ``torch.nn.modules.loss._Loss`` instance is therefore called as ``loss(y_pred, y_true)``
    and any other callable as ``loss(y_true, y_pred)``. The result may be one value per item (summed) or
    one number for the batch (taken as the batch mean, so the epoch mean stays exact).
    """

    name = "custom"

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        self.fn = fn
        self.torch_module = isinstance(fn, nn.modules.loss._Loss)

    def per_item(self, out: torch.Tensor, y: torch.Tensor, from_logits: bool) -> torch.Tensor:
        n = int(out.shape[0])
        y = same_rank(y, out)
        if self.torch_module and y.numel() == out.numel():  # BCELoss, MSELoss...: targets shaped and typed as out
            y = y.reshape(out.shape).to(out.dtype)
        v = self.fn(out, y) if self.torch_module else self.fn(y, out)
        if not isinstance(v, torch.Tensor):
            v = torch.as_tensor(v, dtype=out.dtype, device=out.device)
        if v.dim() == 0:  # a batch mean: spread it over the items so sums and counts stay exact
            return v.expand(n)
        v = v.reshape(n, -1).mean(-1) if v.shape[0] == n else v.reshape(-1)
        if v.shape[0] != n:
            raise DataError(f"the custom loss returned {v.shape[0]} values for {n} items; return one value per "
                            "item (or one number for the batch)")
        return v

    def config(self) -> str | None:
        return None


def same_rank(y: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Keras' ``squeeze_or_expand_to_same_rank`` for targets: ``(N,)`` targets of an ``(N, 1)`` output become
    ``(N, 1)``; ``(N, 1)`` targets of an ``(N,)`` output become ``(N,)``."""
    if y.dim() + 1 == out.dim() and out.shape[-1] == 1:
        return y.unsqueeze(-1)
    if out.dim() + 1 == y.dim() and y.shape[-1] == 1:
        return y.squeeze(-1)
    return y


_BUILTIN: dict[str, type[Loss]] = {}
_ALIASES = {"mean_squared_error": "mse", "mean_absolute_error": "mae", "crossentropy": "categorical_crossentropy"}


def register_loss(cls: type[Loss], *aliases: str) -> type[Loss]:
    """Make a :class:`Loss` subclass available by its ``name``, its class name and ``aliases`` in
    ``compile(loss=...)``."""
    _BUILTIN[cls.name] = cls
    for a in (cls.__name__.lower(), *aliases):
        _ALIASES[a] = cls.name
    return cls


for _cls in (CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy, MeanSquaredError,
             MeanAbsoluteError):
    register_loss(_cls)

LOSSES = tuple(_BUILTIN)


def get_loss(spec: Any) -> Loss:
    """A :class:`Loss` for a name, a Loss class or instance, a saved config or a callable.

    Raises:
        ConfigError: an unknown name (with the closest ones) or something that is not a loss.
    """
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, type) and issubclass(spec, Loss):
        return spec()
    if isinstance(spec, dict):
        return _lookup(str(spec.get("class_name")))(**dict(spec.get("config", {})))
    if isinstance(spec, str):
        return _lookup(spec)()
    if callable(spec):
        return CallableLoss(spec)
    raise ConfigError(f"loss must be a name or a callable; got {type(spec).__name__}")


def _lookup(spec: str) -> type[Loss]:
    key = _ALIASES.get(spec.lower(), spec.lower())
    if key not in _BUILTIN:
        close = difflib.get_close_matches(spec.lower(), list(_BUILTIN) + list(_ALIASES), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"unknown loss {spec!r}.{hint} Valid names: {', '.join(sorted(_BUILTIN))}")
    return _BUILTIN[key]
