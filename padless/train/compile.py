"""Keras-style ``compile``: optimizers, losses and metrics by name.

Owns: the name registries (``rmsprop``/``adam``/``sgd``; the five losses; ``accuracy``/``mae``/``mse``),
:class:`Compiled` (what ``compile`` leaves on the model) and the loss/metric *sums* a batch contributes.
Losses and metrics are returned as sums with a count (samples, or real steps for per-step targets) so an
epoch's figures are exact means that do not depend on batch size or batching mode.

Does not own: the loop (``padless.train.loop``) or the inputs' conversion (``padless.train.inputs``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from padless.errors import ConfigError, DataError

__all__ = ["Compiled", "compile_model", "OPTIMIZERS", "LOSSES", "METRICS", "resolve_device"]


def _suggest(name: str, valid: Sequence[str], what: str) -> ConfigError:
    close = difflib.get_close_matches(str(name).lower(), list(valid), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"unknown {what} {name!r}.{hint} Valid names: {', '.join(sorted(valid))}")


# Keras defaults: RMSprop(lr=1e-3, rho=0.9, eps=1e-7), Adam(lr=1e-3, eps=1e-7), SGD(lr=0.01).
# foreach=True: one multi-tensor update instead of a Python loop over parameters (same numbers, faster on
# CPU for small recurrent models; PyTorch turns it on by default only on CUDA).
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "rmsprop": lambda p, lr=1e-3, **kw: torch.optim.RMSprop(
        p, lr=lr, alpha=kw.pop("rho", 0.9), eps=kw.pop("epsilon", 1e-7), **{"foreach": True, **kw}),
    "adam": lambda p, lr=1e-3, **kw: torch.optim.Adam(p, lr=lr, eps=kw.pop("epsilon", 1e-7), **{"foreach": True, **kw}),
    "adamw": lambda p, lr=1e-3, **kw: torch.optim.AdamW(p, lr=lr, eps=kw.pop("epsilon", 1e-7), **{"foreach": True, **kw}),
    "sgd": lambda p, lr=0.01, **kw: torch.optim.SGD(p, lr=lr, **{"foreach": True, **kw}),
    "adagrad": lambda p, lr=1e-3, **kw: torch.optim.Adagrad(p, lr=lr, **{"foreach": True, **kw}),
}

LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy", "mse", "mae")
_LOSS_ALIASES = {"mean_squared_error": "mse", "mean_absolute_error": "mae", "crossentropy": "categorical_crossentropy"}
METRICS = ("accuracy", "acc", "mae", "mse")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class Compiled:
    """What :func:`compile_model` attaches to a model as ``model.compiled``."""

    optimizer: torch.optim.Optimizer
    loss_name: str | None
    loss_fn: Callable[..., torch.Tensor] | None
    metric_names: list[str]
    device: torch.device
    optimizer_spec: Any = None
    final_activation: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_logits(self) -> bool:
        """True when the loss is computed from the final Dense layer's pre-activation (stable)."""
        return (self.loss_name in ("categorical_crossentropy", "sparse_categorical_crossentropy")
                and self.final_activation == "softmax") or (
            self.loss_name == "binary_crossentropy" and self.final_activation == "sigmoid")

    # ---------------------------------------------------------------- per-batch sums
    def per_item_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(n,) loss per sample (or per real step). ``out`` are logits when :attr:`uses_logits`."""
        name = self.loss_name
        if self.loss_fn is not None and name is None:
            v = self.loss_fn(out, y)
            return v.reshape(-1) if v.dim() else v.reshape(1)
        if name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
            logp = torch.log_softmax(out, -1) if self.uses_logits else torch.log(
                (out / out.sum(-1, keepdim=True)).clamp_min(1e-7))
            if y.dtype in (torch.int64, torch.int32) or (y.dim() == 1 and out.shape[-1] > 1):
                return -logp.gather(-1, y.long().view(-1, 1)).squeeze(-1)
            return -(y * logp).sum(-1)
        if name == "binary_crossentropy":
            yy = y.to(out.dtype).view_as(out)
            if self.uses_logits:
                v = nn.functional.binary_cross_entropy_with_logits(out, yy, reduction="none")
            else:
                v = nn.functional.binary_cross_entropy(out.clamp(1e-7, 1 - 1e-7), yy, reduction="none")
            return v.mean(-1)
        yy = y.to(out.dtype).view_as(out)
        if name == "mse":
            return ((out - yy) ** 2).mean(-1)
        return (out - yy).abs().mean(-1)  # mae

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        """Apply the final activation that :meth:`per_item_loss` skipped (for metrics and predict)."""
        if not self.uses_logits:
            return out
        return torch.softmax(out, -1) if self.final_activation == "softmax" else torch.sigmoid(out)

    def metric_sums(self, prob: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sum over the batch of each metric (divide by the item count for the mean)."""
        sums: dict[str, torch.Tensor] = {}
        for m in self.metric_names:
            if m == "accuracy":
                if prob.shape[-1] == 1 or self.loss_name == "binary_crossentropy":
                    hit = ((prob > 0.5).to(y.dtype) == y.view_as(prob)).float().mean(-1)
                else:
                    pred = prob.argmax(-1)
                    target = y.long().view(-1) if (y.dim() == 1 or y.dtype in (torch.int64, torch.int32)) else y.argmax(-1)
                    hit = (pred == target).float()
                sums[m] = hit.sum()
            elif m == "mae":
                sums[m] = (prob - y.to(prob.dtype).view_as(prob)).abs().mean(-1).sum()
            elif m == "mse":
                sums[m] = ((prob - y.to(prob.dtype).view_as(prob)) ** 2).mean(-1).sum()
        return sums

    def check_targets(self, y: torch.Tensor, num_outputs: int) -> None:
        """Raise a DataError naming the first bad label for the loss."""
        if self.loss_name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
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
                raise DataError(
                    f"one-hot targets have {y.shape[-1]} columns but the model outputs {num_outputs}; "
                    "they must match"
                )
            elif self.loss_name == "sparse_categorical_crossentropy":
                raise DataError("sparse_categorical_crossentropy takes integer labels; got one-hot rows "
                                "(use categorical_crossentropy)")
        elif self.loss_name == "binary_crossentropy":
            bad = torch.nonzero((y < 0) | (y > 1))
            if bad.numel():
                i = int(bad[0, 0])
                raise DataError(f"binary_crossentropy needs targets in [0, 1]; index {i} has {float(y.reshape(-1)[i])}")


def _final_activation(model: nn.Module) -> str | None:
    from padless.nn.layers import Dense

    layers = list(getattr(model, "layers", []))
    if layers and isinstance(layers[-1], Dense):
        return layers[-1].activation
    return None


def compile_model(
    model: Any,
    optimizer: Any = "rmsprop",
    loss: Any = None,
    metrics: Sequence[Any] | None = None,
    device: str | torch.device = "auto",
    **optimizer_kwargs: Any,
) -> Compiled:
    """Attach optimizer, loss and metrics to ``model`` (Keras ``compile``).

    Args:
        model: a :class:`~padless.nn.sequential.Sequential`.
        optimizer: a name (``"rmsprop"``, ``"adam"``, ``"adamw"``, ``"sgd"``, ``"adagrad"``), a
            ``torch.optim.Optimizer`` instance, or a callable ``params -> Optimizer``.
        loss: a loss name or a callable ``(output, target) -> per-item loss``.
        metrics: names (``"accuracy"``, ``"mae"``, ``"mse"``).
        device: ``"auto"`` (CUDA if present), ``"cpu"``, ``"cuda"``...
        **optimizer_kwargs: e.g. ``lr=3e-3``.

    Example:
        >>> from padless import Sequential
        >>> from padless.layers import GRU, Dense
        >>> m = Sequential([GRU(4, input_shape=(None, 2)), Dense(3, activation="softmax")])
        >>> m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
        >>> m.compiled.loss_name
        'sparse_categorical_crossentropy'
    """
    dev = resolve_device(device)
    if loss is None:
        raise ConfigError("compile needs a loss, e.g. loss='categorical_crossentropy'")
    loss_name: str | None = None
    loss_fn = None
    if isinstance(loss, str):
        key = _LOSS_ALIASES.get(loss.lower(), loss.lower())
        if key not in LOSSES:
            raise _suggest(loss, LOSSES, "loss")
        loss_name = key
    elif callable(loss):
        loss_fn = loss
    else:
        raise ConfigError(f"loss must be a name or a callable; got {type(loss).__name__}")
    names = []
    for m in metrics or []:
        key = str(m).lower()
        if key == "acc":
            key = "accuracy"
        if key not in METRICS:
            raise _suggest(m, METRICS, "metric")
        names.append(key)
    model.to(dev)
    built = bool(getattr(model, "built", True))
    spec = optimizer
    if isinstance(optimizer, torch.optim.Optimizer):
        opt = optimizer
    elif isinstance(optimizer, str) or callable(optimizer):
        opt = None  # created when the model is built (weights may not exist yet)
    else:
        raise ConfigError(f"optimizer must be a name, a torch optimizer or a callable; got {type(optimizer).__name__}")
    if isinstance(optimizer, str) and optimizer.lower() not in OPTIMIZERS:
        raise _suggest(optimizer, list(OPTIMIZERS), "optimizer")
    compiled = Compiled(
        optimizer=opt,  # type: ignore[arg-type]
        loss_name=loss_name,
        loss_fn=loss_fn,
        metric_names=names,
        device=dev,
        optimizer_spec=spec if opt is None else None,
        final_activation=_final_activation(model),
        extras=dict(optimizer_kwargs),
    )
    model.compiled = compiled
    if opt is None and built:
        ensure_optimizer(model)
    return compiled


def ensure_optimizer(model: Any) -> torch.optim.Optimizer:
    """Create the optimizer once the model has weights."""
    c: Compiled = model.compiled
    if c.optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        spec = c.optimizer_spec
        try:
            if isinstance(spec, str):
                c.optimizer = OPTIMIZERS[spec.lower()](params, **c.extras)
            else:
                c.optimizer = spec(params)
        except (ValueError, TypeError) as e:  # torch: "Invalid learning rate: -1.0", unknown keyword, ...
            name = spec if isinstance(spec, str) else getattr(spec, "__name__", type(spec).__name__)
            raise ConfigError(f"optimizer {name!r} refused its settings {c.extras}: {e}") from None
    return c.optimizer
