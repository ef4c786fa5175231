"""Sequence-classification recipes: a model, its input normalisation and its training settings, by name.

Owns: :class:`Recipe` (name, description, builder, fit settings, normalisation), :data:`RECIPES` and the
builders: ``bigru`` (data-set standardisation, a bidirectional GRU, dropout, softmax), ``fcn`` (the fully
convolutional network of Wang et al. 2017: three ``Conv1D`` + ``BatchNormalization`` + ReLU blocks and global
average pooling, every window stopping at each sequence's own end), ``lstm-fcn`` (Karim et al. 2018: the FCN
branch beside an LSTM branch, concatenated) and ``resnet`` (three residual blocks of the FCN's shape), each
with data-set standardisation of the features, or (``-z``) each sequence z-normalised on its own. The
recipes' hyper-parameters were chosen on validation data carved from training splits only (see
``benchmarks/ACCURACY.md`` for the protocol and the figures).

LSTM-FCN here runs its LSTM over time, not over the features ("dimension shuffle"): the shuffle needs one
length for every series, which variable-length data does not have.

Does not own: the layers, the loop, choosing among recipes (:mod:`padless.recipes.selection`).

Example:
    >>> m = RECIPES["lstm-fcn"].build(3, 4, None)
    >>> m.output_shape, RECIPES["lstm-fcn"].fit["batch_size"]
    ((None, 4), 16)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from padless.errors import ConfigError
from padless.models import Model, Sequential
from padless.nn.bidirectional import Bidirectional
from padless.nn.conv import Conv1D
from padless.nn.core import Dense, Dropout, Normalization, ReLU
from padless.nn.functional import Input
from padless.nn.merge import Add, Concatenate
from padless.nn.normalization import BatchNormalization
from padless.nn.pooling import GlobalAveragePooling1D
from padless.nn.recurrent import GRU, LSTM
from padless.nn.sequence_norm import SequenceStandardization
from padless.recipes.tasks import StepDecay
from padless.train.callbacks import Callback

__all__ = ["Recipe", "RECIPES", "recipe", "fcn", "lstm_fcn", "resnet", "bigru"]


@dataclass
class Recipe:
    """A classifier recipe.

    Attributes:
        name: what ``padless train --model NAME`` takes.
        description: one line for help texts and reports.
        builder: ``(num_features, num_classes, x_train, **options) -> model``.
        fit: ``fit`` settings (epochs, batch_size).
        lr: Adam learning rate.
        decay: epochs (as fractions of the training) where the learning rate is cut to 0.3x.
        options: keyword arguments of the builder (e.g. ``standardise="sequence"``).
    """

    name: str
    description: str
    builder: Callable[..., Any]
    fit: dict[str, Any] = field(default_factory=dict)
    lr: float = 3e-3
    decay: tuple[float, ...] = (0.6, 0.85)
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, num_features: int, num_classes: int, x_train: Any = None, lr: float | None = None) -> Any:
        """The compiled model for these sizes (the input normalisation adapted on ``x_train``)."""
        model = self.builder(num_features, num_classes, x_train, **self.options)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      lr=self.lr if lr is None else lr)
        return model

    def callbacks(self, epochs: int) -> list[Callback]:
        """The learning-rate schedule for ``epochs`` epochs."""
        return [StepDecay(tuple(int(epochs * f) for f in self.decay))] if self.decay else []


def _norm(F: int, x_train: Any) -> Normalization:
    norm = Normalization(input_size=F)
    if x_train is not None:
        norm.adapt(x_train)
    return norm


def _conv_block(x: Any, filters: int, kernel: int, activation: bool = True) -> Any:
    """``Conv1D(filters, kernel, same) -> BatchNormalization [-> ReLU]`` (windows stop at each sequence's end)."""
    x = BatchNormalization()(Conv1D(filters, kernel, padding="same")(x))
    return ReLU()(x) if activation else x


def fcn(F: int, K: int, x_train: Any = None, filters: tuple[int, int, int] = (128, 256, 128),
        standardise: str = "dataset") -> Model:
    """The FCN: ``[Conv1D(f, k, same) -> BatchNorm -> ReLU] x 3 -> GlobalAveragePooling1D -> softmax``."""
    inp = Input(shape=(None, F))
    x = SequenceStandardization()(inp) if standardise == "sequence" else _norm(F, x_train)(inp)
    for f, k in zip(filters, (8, 5, 3)):
        x = _conv_block(x, f, k)
    out = Dense(K, activation="softmax")(GlobalAveragePooling1D()(x))
    return Model(inp, out, name="fcn")


def lstm_fcn(F: int, K: int, x_train: Any = None, filters: tuple[int, int, int] = (128, 256, 128),
             units: int = 64, dropout: float = 0.8, standardise: str = "dataset") -> Model:
    """LSTM-FCN: the FCN branch beside ``LSTM(units) -> Dropout``, concatenated, softmax."""
    inp = Input(shape=(None, F))
    x = SequenceStandardization()(inp) if standardise == "sequence" else _norm(F, x_train)(inp)
    c = x
    for f, k in zip(filters, (8, 5, 3)):
        c = _conv_block(c, f, k)
    c = GlobalAveragePooling1D()(c)
    r = Dropout(dropout)(LSTM(units)(x))
    out = Dense(K, activation="softmax")(Concatenate()([c, r]))
    return Model(inp, out, name="lstm_fcn")


def resnet(F: int, K: int, x_train: Any = None, filters: tuple[int, int, int] = (64, 128, 128),
           standardise: str = "dataset") -> Model:
    """ResNet (Wang et al. 2017): three residual blocks of three conv layers (8, 5, 3), GAP, softmax."""
    inp = Input(shape=(None, F))
    x = SequenceStandardization()(inp) if standardise == "sequence" else _norm(F, x_train)(inp)
    for f in filters:
        h = _conv_block(x, f, 8)
        h = _conv_block(h, f, 5)
        h = _conv_block(h, f, 3, activation=False)
        short = BatchNormalization()(Conv1D(f, 1, padding="same")(x))
        x = ReLU()(Add()([h, short]))
    out = Dense(K, activation="softmax")(GlobalAveragePooling1D()(x))
    return Model(inp, out, name="resnet")


def bigru(F: int, K: int, x_train: Any = None, units: int = 64, dropout: float = 0.2) -> Sequential:
    """Data-set standardisation, ``Bidirectional(GRU(units))``, dropout, softmax."""
    return Sequential([_norm(F, x_train), Bidirectional(GRU(units)), Dropout(dropout), Dense(K, activation="softmax")])


_CONV_FIT = {"epochs": 60, "batch_size": 16}
_Z = {"standardise": "sequence"}

RECIPES: dict[str, Recipe] = {
    "bigru": Recipe("bigru", "data-set standardisation, bidirectional GRU(64), dropout 0.2", bigru,
                    {"epochs": 40, "batch_size": 8}),
    "fcn": Recipe("fcn", "data-set standardisation, FCN (Conv1D 128/256/128 + BatchNorm + ReLU, GAP)", fcn,
                  dict(_CONV_FIT)),
    "fcn-z": Recipe("fcn-z", "per-sequence z-normalisation, FCN", fcn, dict(_CONV_FIT), options=dict(_Z)),
    "lstm-fcn": Recipe("lstm-fcn", "data-set standardisation, FCN branch + LSTM(64) branch, concatenated", lstm_fcn,
                       dict(_CONV_FIT)),
    "lstm-fcn-z": Recipe("lstm-fcn-z", "per-sequence z-normalisation, LSTM-FCN", lstm_fcn, dict(_CONV_FIT),
                         options=dict(_Z)),
    "resnet": Recipe("resnet", "data-set standardisation, ResNet (3 residual conv blocks), GAP", resnet, dict(_CONV_FIT)),
    "resnet-z": Recipe("resnet-z", "per-sequence z-normalisation, ResNet", resnet, dict(_CONV_FIT), options=dict(_Z)),
}


def recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises:
        ConfigError: an unknown name (with the valid ones).
    """
    if name not in RECIPES:
        raise ConfigError(f"unknown model recipe {name!r}; valid: {', '.join(RECIPES)} (or 'auto')")
    return RECIPES[name]
