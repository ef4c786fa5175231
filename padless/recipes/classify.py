"""Sequence-classification recipes: a model, its input normalisation and its training settings, by name.

Owns: :class:`Recipe` (name, description, builder, fit settings, normalisation), :data:`RECIPES` and the
builders: ``bigru`` (data-set standardisation, a bidirectional GRU, dropout, softmax), ``fcn`` (the fully
convolutional network of Wang et al. 2017: three ``Conv1D`` + ``BatchNormalization`` + ReLU blocks and global
average pooling, every window stopping at each sequence's own end), ``lstm-fcn`` (Karim et al. 2018: the FCN
branch beside an LSTM branch, concatenated) and ``resnet`` (three residual blocks of the FCN's shape), each
with data-set standardisation of the features, (``-z``) each sequence z-normalised on its own, or
(``-zd``) both side by side as ``2F`` input channels (the shape of a series and its amplitude), or
(``-zl``) the z-normalised channels beside standardised ``asinh(x)``, a signed log for amplitudes that span
decades. Plain baselines: ``lstm`` and ``gru`` (data-set standardisation, two recurrent layers of 100,
softmax). The
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

import numpy as np

from padless.errors import ConfigError
from padless.models import Model, Sequential
from padless.nn.bidirectional import Bidirectional
from padless.nn.conv import Conv1D
from padless.nn.core import Activation, Dense, Dropout, Normalization, ReLU
from padless.nn.functional import Input
from padless.nn.merge import Add, Concatenate
from padless.nn.normalization import BatchNormalization
from padless.nn.pooling import GlobalAveragePooling1D
from padless.nn.recurrent import GRU, LSTM
from padless.nn.sequence_norm import SequenceStandardization
from padless.recipes.tasks import StepDecay
from padless.train.callbacks import Callback

__all__ = ["Recipe", "RECIPES", "recipe", "fcn", "lstm_fcn", "resnet", "bigru", "stacked"]


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


def _inputs(F: int, x_train: Any, standardise: str) -> tuple[Any, Any]:
    """``(Input, normalised tensor)``: ``"dataset"`` statistics, ``"sequence"`` z-normalisation, ``"both"``
    concatenated (``2F`` channels), or ``"log"``: the z-normalised channels beside data-set standardised
    ``asinh(x)`` (a signed log: amplitudes that span decades, such as appliance currents, stay comparable)."""
    if standardise not in ("dataset", "sequence", "both", "log"):
        raise ConfigError(f"standardise must be 'dataset', 'sequence', 'both' or 'log'; got {standardise!r}")
    inp = Input(shape=(None, F))
    if standardise == "dataset":
        return inp, _norm(F, x_train)(inp)
    if standardise == "sequence":
        return inp, SequenceStandardization()(inp)
    if standardise == "both":
        return inp, Concatenate()([SequenceStandardization()(inp), _norm(F, x_train)(inp)])
    logs = Normalization(input_size=F)
    if x_train is not None:  # the statistics of asinh(x), the values the layer will see
        logs.adapt(np.arcsinh(np.asarray(x_train.values, np.float64))[None])  # (1, sum T, F)
    return inp, Concatenate()([SequenceStandardization()(inp), logs(Activation("asinh")(inp))])


def _conv_block(x: Any, filters: int, kernel: int, activation: bool = True, dilation: int = 1) -> Any:
    """``Conv1D(filters, kernel, same) -> BatchNormalization [-> ReLU]`` (windows stop at each sequence's end)."""
    x = BatchNormalization()(Conv1D(filters, kernel, padding="same", dilation_rate=dilation)(x))
    return ReLU()(x) if activation else x


def fcn(F: int, K: int, x_train: Any = None, filters: tuple[int, int, int] = (128, 256, 128),
        standardise: str = "dataset", dilations: tuple[int, int, int] = (1, 1, 1)) -> Model:
    """The FCN: ``[Conv1D(f, k, same) -> BatchNorm -> ReLU] x 3 -> GlobalAveragePooling1D -> softmax``
    (``dilations`` widen the receptive field at no extra cost: (1, 8, 64) sees 167 steps instead of 14)."""
    inp, x = _inputs(F, x_train, standardise)
    for f, k, d in zip(filters, (8, 5, 3), dilations):
        x = _conv_block(x, f, k, dilation=d)
    out = Dense(K, activation="softmax")(GlobalAveragePooling1D()(x))
    return Model(inp, out, name="fcn")


def lstm_fcn(F: int, K: int, x_train: Any = None, filters: tuple[int, int, int] = (128, 256, 128),
             units: int = 64, dropout: float = 0.8, standardise: str = "dataset",
             dilations: tuple[int, int, int] = (1, 1, 1)) -> Model:
    """LSTM-FCN: the FCN branch beside ``LSTM(units) -> Dropout``, concatenated, softmax."""
    inp, x = _inputs(F, x_train, standardise)
    c = x
    for f, k, d in zip(filters, (8, 5, 3), dilations):
        c = _conv_block(c, f, k, dilation=d)
    c = GlobalAveragePooling1D()(c)
    r = Dropout(dropout)(LSTM(units)(x))
    out = Dense(K, activation="softmax")(Concatenate()([c, r]))
    return Model(inp, out, name="lstm_fcn")


def resnet(F: int, K: int, x_train: Any = None, filters: tuple[int, int, int] = (64, 128, 128),
           standardise: str = "dataset") -> Model:
    """ResNet (Wang et al. 2017): three residual blocks of three conv layers (8, 5, 3), GAP, softmax."""
    inp, x = _inputs(F, x_train, standardise)
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


def stacked(F: int, K: int, x_train: Any = None, kind: str = "lstm", units: int = 100) -> Sequential:
    """The plain baseline: data-set standardisation, ``LSTM|GRU(units, return_sequences) -> LSTM|GRU(units)``,
    softmax (the classic Keras stack)."""
    cls = {"lstm": LSTM, "gru": GRU}[kind]
    return Sequential([_norm(F, x_train), cls(units, return_sequences=True), cls(units),
                       Dense(K, activation="softmax")])


_CONV_FIT = {"epochs": 60, "batch_size": 16}
_Z = {"standardise": "sequence"}
_ZD = {"standardise": "both"}
_ZL = {"standardise": "log"}
_RNN_FIT = {"epochs": 40, "batch_size": 16}

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
    "fcn-zd": Recipe("fcn-zd", "per-sequence z-normalised and data-set standardised channels side by side, FCN", fcn,
                     dict(_CONV_FIT), options=dict(_ZD)),
    "lstm-fcn-zd": Recipe("lstm-fcn-zd", "both normalisations side by side, LSTM-FCN", lstm_fcn, dict(_CONV_FIT),
                          options=dict(_ZD)),
    "fcn-zl": Recipe("fcn-zl", "per-sequence z-normalised channels beside standardised asinh(x), FCN", fcn,
                     dict(_CONV_FIT), options=dict(_ZL)),
    "lstm-fcn-zl": Recipe("lstm-fcn-zl", "z-normalised and standardised asinh(x) channels, LSTM-FCN", lstm_fcn,
                          dict(_CONV_FIT), options=dict(_ZL)),
    "fcn-zl-dil": Recipe("fcn-zl-dil", "z-normalised and asinh channels, FCN with dilations 1/8/64 (a 167-step view)",
                         fcn, dict(_CONV_FIT), options={**_ZL, "dilations": (1, 8, 64)}),
    "lstm": Recipe("lstm", "baseline: data-set standardisation, LSTM(100) -> LSTM(100), softmax", stacked,
                   dict(_RNN_FIT), options={"kind": "lstm"}),
    "gru": Recipe("gru", "baseline: data-set standardisation, GRU(100) -> GRU(100), softmax", stacked,
                  dict(_RNN_FIT), options={"kind": "gru"}),
}


def recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises:
        ConfigError: an unknown name (with the valid ones).
    """
    if name not in RECIPES:
        raise ConfigError(f"unknown model recipe {name!r}; valid: {', '.join(RECIPES)} (or 'auto')")
    return RECIPES[name]
