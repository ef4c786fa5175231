"""Keras' ``keras.optimizers.schedules``: learning-rate schedules by their Keras names.

Owns nothing: re-exports :mod:`padless.train.schedules` (Keras 3's formulas, stepped once per optimizer
step, saved with the optimizer and resumed at the same step). Does not own: any schedule's behaviour.

Example:
    >>> from padless.optimizers.schedules import PiecewiseConstantDecay
    >>> s = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    >>> s(10), s(11), s(25)
    (1.0, 0.5, 0.1)
"""

from padless.train.schedules import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
    PolynomialDecay,
    deserialize,
    serialize,
)

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
           "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize"]
