"""Keras-style ``compile``: an optimizer, a loss and metrics for a model, and their saved form.

Owns: :class:`Compiled` (what ``compile`` attaches to a model: the loss and metric objects, the optimizer
- created once the model has weights - and the device), :func:`compile_model`, :func:`ensure_optimizer`,
the optimizer names (``rmsprop``/``adam``/``adamw``/``sgd``/``adagrad`` with Keras defaults) and
:func:`compile_config` / :func:`compile_from_config` (the JSON form saved with a model and in checkpoints:
the optimizer's torch class and every hyper-parameter, so ``load_model`` trains on with the same settings).

Does not own: the losses and metrics themselves (:mod:`padless.train.losses`, :mod:`padless.train.metrics`),
the loop (:mod:`padless.train.trainer`).

Example:
    >>> from padless.nn import GRU, Dense, LayerStack
    >>> m = LayerStack([GRU(4, input_size=2), Dense(3, activation="softmax")])
    >>> c = compile_model(m, "adam", "sparse_categorical_crossentropy", ["accuracy"], lr=3e-3)
    >>> c.loss_name, c.uses_logits, compile_config(c)["optimizer"]["config"]["lr"]
    ('sparse_categorical_crossentropy', True, 0.003)
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from padless.errors import ConfigError
from padless.nn.graph import Graph
from padless.train.losses import Loss, get_loss
from padless.train.metrics import Metric, get_metric

__all__ = ["Compiled", "compile_model", "ensure_optimizer", "compile_config", "compile_from_config", "OPTIMIZERS",
           "resolve_device", "optimizer_config", "optimizer_from_config"]


# Keras defaults: RMSprop(lr=1e-3, rho=0.9, eps=1e-7), Adam(lr=1e-3, eps=1e-7), SGD(lr=0.01).
# foreach=True: one multi-tensor update instead of a Python loop over parameters (same numbers, faster on
# CPU for small recurrent models; PyTorch turns it on by default only on CUDA).
def _rmsprop(p: Any, lr: float = 1e-3, **kw: Any) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(p, lr=lr, alpha=kw.pop("rho", 0.9), eps=kw.pop("epsilon", 1e-7), **{"foreach": True, **kw})


def _adam(p: Any, lr: float = 1e-3, **kw: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(p, lr=lr, eps=kw.pop("epsilon", 1e-7), **{"foreach": True, **kw})


def _adamw(p: Any, lr: float = 1e-3, **kw: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(p, lr=lr, eps=kw.pop("epsilon", 1e-7), **{"foreach": True, **kw})


def _sgd(p: Any, lr: float = 0.01, **kw: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(p, lr=lr, **{"foreach": True, **kw})


def _adagrad(p: Any, lr: float = 1e-3, **kw: Any) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(p, lr=lr, **{"foreach": True, **kw})


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "rmsprop": _rmsprop, "adam": _adam, "adamw": _adamw, "sgd": _sgd, "adagrad": _adagrad,
}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def optimizer_config(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """``{"class": "Adam", "config": {lr, betas, ...}}``: the torch class and the first group's settings."""
    group = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    cfg: dict[str, Any] = {}
    for k, v in group.items():
        if isinstance(v, torch.Tensor):
            v = v.item() if v.numel() == 1 else v.tolist()
        if isinstance(v, tuple):
            v = list(v)
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue  # e.g. a differentiable flag object: torch's default applies
        cfg[k] = v
    return {"class": type(opt).__name__, "config": cfg}


def optimizer_from_config(cfg: dict[str, Any], params: Any) -> torch.optim.Optimizer:
    """Inverse of :func:`optimizer_config` (torch.optim classes only).

    Raises:
        ConfigError: the class is not in ``torch.optim`` or refuses the settings.
    """
    name = str(cfg.get("class"))
    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ConfigError(f"cannot rebuild the optimizer {name!r}: not a torch.optim class; compile the model again")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in dict(cfg.get("config", {})).items()}
    for k in ("initial_lr",):
        kwargs.pop(k, None)
    try:
        return cls(params, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer {name} refused its saved settings {kwargs}: {e}") from None


@dataclass
class Compiled:
    """What :func:`compile_model` attaches to a model.

    Attributes:
        optimizer: the optimizer, or None until the model has weights.
        loss: the :class:`~padless.train.losses.Loss`.
        metrics: the :class:`~padless.train.metrics.Metric` objects.
        device: where the model trains.
        optimizer_spec: what ``compile`` was given (a name, a callable, a saved config) until the optimizer
            is created.
        optimizer_kwargs: keyword arguments for a named optimizer (``lr=...``).
        final_activation: the model's output activation (folded into the loss when possible).
    """

    optimizer: torch.optim.Optimizer | None
    loss: Loss
    metrics: list[Metric]
    device: torch.device
    optimizer_spec: Any = None
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    final_activation: str | None = None

    @property
    def loss_name(self) -> str | None:
        """The loss's name, or None for a custom callable."""
        return self.loss.config()

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    @property
    def uses_logits(self) -> bool:
        """True when the loss is computed from the output layer's pre-activation (stable)."""
        return self.loss.folds is not None and self.final_activation == self.loss.folds

    @property
    def integer_labels(self) -> bool:
        """Whether the loss reads class ids (cross-entropy): targets may be integer labels."""
        return self.loss_name in ("categorical_crossentropy", "sparse_categorical_crossentropy")

    def per_item_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(n,) loss per sample (or per real step). ``out`` are logits when :attr:`uses_logits`."""
        return self.loss.per_item(out, y, self.uses_logits)

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        """Apply the final activation that :meth:`per_item_loss` skipped (for metrics and predict)."""
        if not self.uses_logits:
            return out
        return torch.softmax(out, -1) if self.final_activation == "softmax" else torch.sigmoid(out)

    def metric_sums(self, prob: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each metric's sums vector over the batch."""
        return {m.name: m.sums(prob, y) for m in self.metrics}

    def check_targets(self, y: torch.Tensor, num_outputs: int) -> None:
        """Raise a DataError naming the first target the loss cannot take."""
        self.loss.check_targets(y, num_outputs)


def compile_model(
    model: Graph,
    optimizer: Any = "rmsprop",
    loss: Any = None,
    metrics: Sequence[Any] | None = None,
    device: str | torch.device = "auto",
    **optimizer_kwargs: Any,
) -> Compiled:
    """Configure training for ``model`` (Keras ``compile``); returns the :class:`Compiled`.

    Args:
        model: the model graph (its weights move to ``device``).
        optimizer: a name (``"rmsprop"``, ``"adam"``, ``"adamw"``, ``"sgd"``, ``"adagrad"``), a
            ``torch.optim.Optimizer`` instance, a callable ``params -> Optimizer``, or a saved config
            (``{"class": ..., "config": ...}``).
        loss: a loss name, a :class:`~padless.train.losses.Loss`, a Keras-style callable
            ``loss(y_true, y_pred)`` or a ``torch.nn`` loss module.
        metrics: names (``"accuracy"``, ``"mae"``, ``"mse"``) or Metric objects.
        device: ``"auto"`` (CUDA if present), ``"cpu"``, ``"cuda"``...
        **optimizer_kwargs: e.g. ``lr=3e-3`` (or Keras' ``learning_rate=3e-3``).

    Raises:
        ConfigError: no loss, an unknown name, or settings that cannot apply.
    """
    dev = resolve_device(device)
    if loss is None:
        raise ConfigError("compile needs a loss, e.g. loss='categorical_crossentropy'")
    loss_obj = get_loss(loss)
    metric_objs = [get_metric(m, loss_obj.config()) for m in metrics or []]
    if "learning_rate" in optimizer_kwargs:
        if "lr" in optimizer_kwargs:
            raise ConfigError("pass either lr= or learning_rate=, not both")
        optimizer_kwargs["lr"] = optimizer_kwargs.pop("learning_rate")
    model.to(dev)
    opt: torch.optim.Optimizer | None = None
    if isinstance(optimizer, torch.optim.Optimizer):
        if optimizer_kwargs:
            raise ConfigError(f"compile got an optimizer object and also optimizer settings {sorted(optimizer_kwargs)}; "
                              "set them on the optimizer object instead")
        opt = optimizer
    elif isinstance(optimizer, str):
        if optimizer.lower() not in OPTIMIZERS:
            close = difflib.get_close_matches(optimizer.lower(), list(OPTIMIZERS), n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"unknown optimizer {optimizer!r}.{hint} Valid names: {', '.join(sorted(OPTIMIZERS))}")
    elif not (callable(optimizer) or (isinstance(optimizer, dict) and "class" in optimizer)):
        raise ConfigError(f"optimizer must be a name, a torch optimizer or a callable; got {type(optimizer).__name__}")
    compiled = Compiled(optimizer=opt, loss=loss_obj, metrics=metric_objs, device=dev,
                        optimizer_spec=None if opt is not None else optimizer,
                        optimizer_kwargs=dict(optimizer_kwargs), final_activation=model.output_activation)
    if opt is None and model.built:
        ensure_optimizer(model, compiled)
    return compiled


def ensure_optimizer(model: Graph, c: Compiled) -> torch.optim.Optimizer:
    """Create the optimizer once the model has weights (and return it).

    Raises:
        ConfigError: the optimizer refuses its settings.
    """
    if c.optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        spec = c.optimizer_spec
        try:
            if isinstance(spec, str):
                c.optimizer = OPTIMIZERS[spec.lower()](params, **c.optimizer_kwargs)
            elif isinstance(spec, dict):
                c.optimizer = optimizer_from_config(spec, params)
            else:
                c.optimizer = spec(params)
        except (ValueError, TypeError) as e:  # torch: "Invalid learning rate: -1.0", unknown keyword, ...
            name = spec if isinstance(spec, str) else getattr(spec, "__name__", type(spec).__name__)
            raise ConfigError(f"optimizer {name!r} refused its settings {c.optimizer_kwargs}: {e}") from None
    return c.optimizer  # type: ignore[return-value]


def compile_config(c: Compiled | None) -> dict[str, Any] | None:
    """The JSON form of a compile: loss, metrics and the optimizer's class and settings (None when the loss
    is a custom callable, which cannot be stored)."""
    if c is None or c.loss_name is None:
        return None
    if c.optimizer is not None:
        opt: Any = optimizer_config(c.optimizer)
    elif isinstance(c.optimizer_spec, str):
        opt = {"name": c.optimizer_spec.lower(), "kwargs": dict(c.optimizer_kwargs)}
    elif isinstance(c.optimizer_spec, dict):
        opt = dict(c.optimizer_spec)
    else:
        opt = None
    return {"loss": c.loss_name, "metrics": [m.config() for m in c.metrics], "optimizer": opt}


def compile_from_config(model: Graph, cfg: dict[str, Any], device: str | torch.device = "cpu") -> Compiled:
    """Inverse of :func:`compile_config`: the same loss, metrics and optimizer settings on ``model``.

    Raises:
        ConfigError: the saved settings cannot be rebuilt.
    """
    opt = cfg.get("optimizer")
    if isinstance(opt, str):  # files written by padless 0.1: a bare name
        return compile_model(model, opt, cfg["loss"], cfg.get("metrics"), device)
    if isinstance(opt, dict) and "name" in opt:
        return compile_model(model, opt["name"], cfg["loss"], cfg.get("metrics"), device, **opt.get("kwargs", {}))
    if isinstance(opt, dict) and "class" in opt:
        return compile_model(model, opt, cfg["loss"], cfg.get("metrics"), device)
    return compile_model(model, "rmsprop", cfg["loss"], cfg.get("metrics"), device)
