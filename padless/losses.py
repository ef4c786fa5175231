"""Keras' ``keras.losses``: loss classes by their Keras names (``from padless.losses import Huber``).

Owns nothing: re-exports the losses of :mod:`padless.train.losses` and :mod:`padless.train.keras_losses`
(one value per item, Keras 3's formulas) and :func:`get`. Every class also works by its string name in
``compile(loss=...)``. Does not own: any loss's behaviour.

Example:
    >>> import torch
    >>> from padless.losses import MeanSquaredError
    >>> MeanSquaredError()(torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [4.0]])).item()
    2.0
"""

from padless.train.keras_losses import (
    CategoricalHinge,
    CosineSimilarity,
    Hinge,
    Huber,
    KLDivergence,
    LogCosh,
    MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError,
    Poisson,
    SquaredHinge,
)
from padless.train.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    SparseCategoricalCrossentropy,
    register_loss,
)
from padless.train.losses import get_loss as get

__all__ = ["Loss", "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
           "Huber", "LogCosh", "KLDivergence", "Poisson", "Hinge", "SquaredHinge", "CategoricalHinge",
           "CosineSimilarity", "get", "register_loss"]
