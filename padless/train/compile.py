"""Keras-style ``compile``: an optimizer, a loss and metrics for a model, and their saved form.

Owns: :class:`Compiled` (what ``compile`` attaches to a model: the loss and metric objects, the Keras
optimizer object and its torch optimizer - created once the model has weights - and the device),
:func:`compile_model` (names -> Keras optimizers with Keras' defaults: ``rmsprop``, ``adam``, ``adamw``,
``sgd``, ``adagrad``, ``nadam``; Keras' other ``compile`` arguments), :func:`ensure_optimizer`, and
:func:`compile_config` / :func:`compile_from_config` (the JSON form saved with a model and in checkpoints:
the torch class and every setting, plus for a Keras optimizer its Keras config - schedule included - and
its step count, so ``load_model`` trains on with the same optimizer at the same schedule step).

Does not own: the losses, metrics and optimizers themselves (:mod:`padless.train.losses`,
:mod:`padless.train.metrics`, :mod:`padless.train.optimizers`), the loop (:mod:`padless.train.trainer`).

Example:
    >>> from padless.nn import GRU, Dense, LayerStack
    >>> m = LayerStack([GRU(4, input_size=2), Dense(3, activation="softmax")])
    >>> c = compile_model(m, "adam", "sparse_categorical_crossentropy", ["accuracy"], lr=3e-3)
    >>> c.loss_name, c.uses_logits, compile_config(c)["optimizer"]["config"]["lr"]
    ('sparse_categorical_crossentropy', True, 0.003)
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from padless.errors import ConfigError
from padless.nn.graph import Graph
from padless.train import keras_losses, keras_metrics  # noqa: F401 - they register the Keras losses and metrics
from padless.train.losses import Loss, get_loss
from padless.train.metrics import Metric, get_metric
from padless.train.optimizer_base import PADLESS_GROUP_KEYS, Optimizer, optimizer_classes
from padless.train.optimizers import deserialize as deserialize_optimizer
from padless.train.optimizers import get as get_optimizer
from padless.train.optimizers import serialize as serialize_optimizer

__all__ = ["Compiled", "compile_model", "ensure_optimizer", "compile_config", "compile_from_config", "OPTIMIZERS",
           "resolve_device", "optimizer_config", "optimizer_from_config"]


# Named optimizers are the Keras classes (padless.train.optimizers), with Keras' defaults.
OPTIMIZERS: dict[str, type[Optimizer]] = optimizer_classes()

# Keras compile() arguments that only tune execution speed in Keras: accepted, no effect here.
_SPEED_ONLY = ("run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def optimizer_config(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """``{"class": "Adam", "config": {lr, betas, ...}}``: the torch class and the first group's settings."""
    group = {k: v for k, v in opt.param_groups[0].items() if k != "params" and k not in PADLESS_GROUP_KEYS}
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
        optimizer: the torch optimizer, or None until the model has weights.
        loss: the :class:`~padless.train.losses.Loss`.
        metrics: the :class:`~padless.train.metrics.Metric` objects.
        device: where the model trains.
        optimizer_spec: what ``compile`` was given (a Keras optimizer, a callable, a saved config) until the
            optimizer is created; a Keras optimizer stays here (it is ``model.optimizer``).
        optimizer_kwargs: keyword arguments ``compile`` passed on to the optimizer.
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
    def keras_optimizer(self) -> Optimizer | None:
        """The Keras optimizer object (None for a torch optimizer or a callable)."""
        return self.optimizer_spec if isinstance(self.optimizer_spec, Optimizer) else None

    @property
    def loss_name(self) -> str | None:
        """The loss's registered name, or None for a custom callable (which cannot be saved)."""
        return None if self.loss.config() is None else self.loss.name

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    @property
    def sum_sizes(self) -> dict[str, int]:
        """Length of each log's sums vector (``loss``: 1)."""
        return {"loss": 1, **{m.name: int(m.size) for m in self.metrics}}

    @property
    def uses_logits(self) -> bool:
        """True when the loss is computed from the output layer's pre-activation (stable)."""
        return (self.loss.folds is not None and self.final_activation == self.loss.folds
                and not getattr(self.loss, "from_logits", False))

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


def _keras_compile_args(kwargs: dict[str, Any]) -> None:
    """Take Keras' other ``compile`` arguments out of ``kwargs``: speed settings have no effect here; loss
    weights and weighted metrics are refused unless empty."""
    for k in _SPEED_ONLY:
        kwargs.pop(k, None)
    for k in ("loss_weights", "weighted_metrics"):
        if kwargs.pop(k, None) not in (None, [], {}, ()):
            raise ConfigError(f"compile({k}=...) is not supported by padless (one output, plain metrics); "
                              f"remove {k}")


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
        optimizer: a name (``"rmsprop"``, ``"adam"``, ``"adamw"``, ``"sgd"``, ``"adagrad"``, ``"nadam"``: the
            Keras optimizer with Keras' defaults), a Keras optimizer object (``padless.optimizers.Adam(3e-3)``),
            a ``torch.optim.Optimizer`` instance, a callable ``params -> Optimizer``, or a saved config.
        loss: a loss name, a :class:`~padless.train.losses.Loss`, a Keras-style callable
            ``loss(y_true, y_pred)`` or a ``torch.nn`` loss module.
        metrics: names (the name is also the log name, as in Keras) or Metric objects.
        device: ``"auto"`` (CUDA if present), ``"cpu"``, ``"cuda"``...
        **optimizer_kwargs: settings of a named optimizer, e.g. ``learning_rate=3e-3`` (or torch's ``lr=``).
            Keras' ``run_eagerly``, ``steps_per_execution``, ``jit_compile`` and ``auto_scale_loss`` are
            accepted and have no effect; ``loss_weights`` and ``weighted_metrics`` are refused.

    Raises:
        ConfigError: no loss, an unknown name, or settings that cannot apply.
    """
    dev = resolve_device(device)
    _keras_compile_args(optimizer_kwargs)
    if loss is None:
        raise ConfigError("compile needs a loss, e.g. loss='categorical_crossentropy'")
    if isinstance(loss, str) and loss.lower() in ("crossentropy", "ce"):  # Keras picks by the output's shape
        loss = "binary_crossentropy" if model.output_size == 1 else "categorical_crossentropy"
    loss_obj = get_loss(loss)
    loss_key = None if loss_obj.config() is None else loss_obj.name
    metric_objs = [get_metric(m, loss_key) for m in metrics or []]
    names = [m.name for m in metric_objs]
    dup = sorted({n for n in names if names.count(n) > 1 or n == "loss"})
    if dup:
        raise ConfigError(f"two metrics would log under the name {dup[0]!r} (or it clashes with 'loss'); give one "
                          "of them another name, e.g. AUC(curve='PR', name='pr_auc')")
    if getattr(loss_obj, "from_logits", False) and model.output_activation in ("softmax", "sigmoid"):
        warnings.warn(f"the loss has from_logits=True but the model ends with a {model.output_activation} "
                      "activation, so its outputs are not logits (Keras warns about this too)", stacklevel=3)
    model.to(dev)
    opt: torch.optim.Optimizer | None = None
    spec: Any = optimizer
    if isinstance(optimizer, torch.optim.Optimizer):
        if optimizer_kwargs:
            raise ConfigError(f"compile got an optimizer object and also optimizer settings {sorted(optimizer_kwargs)}; "
                              "set them on the optimizer object instead")
        opt, spec = optimizer, None
    elif (isinstance(optimizer, (str, Optimizer)) or (isinstance(optimizer, type) and issubclass(optimizer, Optimizer))
          or (isinstance(optimizer, dict) and "keras" in optimizer)):
        spec = get_optimizer(optimizer["keras"] if isinstance(optimizer, dict) else optimizer, **optimizer_kwargs)
    elif not (callable(optimizer) or (isinstance(optimizer, dict) and "class" in optimizer)):
        raise ConfigError(f"optimizer must be a name, a Keras optimizer, a torch optimizer or a callable; got "
                          f"{type(optimizer).__name__}")
    compiled = Compiled(optimizer=opt, loss=loss_obj, metrics=metric_objs, device=dev, optimizer_spec=spec,
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
            if isinstance(spec, Optimizer):
                c.optimizer = spec.build(params)
            elif isinstance(spec, dict):
                c.optimizer = optimizer_from_config(spec, params)
            else:
                c.optimizer = spec(params)
        except (ValueError, TypeError) as e:  # torch: "Invalid learning rate: -1.0", unknown keyword, ...
            if isinstance(e, ConfigError):
                raise
            name = getattr(spec, "__name__", type(spec).__name__)
            raise ConfigError(f"optimizer {name!r} refused its settings {c.optimizer_kwargs}: {e}") from None
    return c.optimizer  # type: ignore[return-value]


def compile_config(c: Compiled | None) -> dict[str, Any] | None:
    """The JSON form of a compile: loss, metrics and the optimizer (its torch class and settings; for a Keras
    optimizer also its Keras config and step count under ``"keras"``). None when the loss is a custom
    callable, which cannot be stored."""
    if c is None or c.loss.config() is None:
        return None
    opt: Any = None
    if c.optimizer is not None:
        opt = optimizer_config(c.optimizer)
    elif isinstance(c.optimizer_spec, dict):
        opt = dict(c.optimizer_spec)
    if c.keras_optimizer is not None:
        opt = {"class": c.keras_optimizer.torch_class.__name__, "config": {}, **(opt or {}),
               "keras": serialize_optimizer(c.keras_optimizer)}
    metrics = [m.config() for m in c.metrics]
    if None in metrics:
        warnings.warn("custom metric functions cannot be saved: the saved compile settings leave out "
                      f"{[m.name for m, cfg in zip(c.metrics, metrics) if cfg is None]}", stacklevel=2)
    return {"loss": c.loss.config(), "metrics": [m for m in metrics if m is not None], "optimizer": opt}


def compile_from_config(model: Graph, cfg: dict[str, Any], device: str | torch.device = "cpu") -> Compiled:
    """Inverse of :func:`compile_config`: the same loss, metrics and optimizer settings on ``model``.

    Raises:
        ConfigError: the saved settings cannot be rebuilt.
    """
    opt = cfg.get("optimizer")
    if isinstance(opt, str):  # files written by padless 0.1: a bare name
        return compile_model(model, opt, cfg["loss"], cfg.get("metrics"), device)
    if isinstance(opt, dict) and "keras" in opt:
        return compile_model(model, deserialize_optimizer(opt["keras"]), cfg["loss"], cfg.get("metrics"), device)
    if isinstance(opt, dict) and "name" in opt:
        return compile_model(model, opt["name"], cfg["loss"], cfg.get("metrics"), device, **opt.get("kwargs", {}))
    if isinstance(opt, dict) and "class" in opt:
        return compile_model(model, opt, cfg["loss"], cfg.get("metrics"), device)
    return compile_model(model, "rmsprop", cfg["loss"], cfg.get("metrics"), device)
