"""Keras' ``keras.callbacks``: ``from padless.callbacks import EarlyStopping, ReduceLROnPlateau``.

Owns nothing: re-exports the callbacks of :mod:`padless.train.callbacks` and
:mod:`padless.train.keras_callbacks` (Keras 3's hooks, rules and defaults; their state survives padless'
exact checkpoint resume). Does not own: any callback's behaviour.

Example:
    >>> from padless.callbacks import EarlyStopping
    >>> EarlyStopping(patience=3).patience
    3
"""

from padless.train.callbacks import Callback, CallbackList, EarlyStopping, History, ModelCheckpoint
from padless.train.keras_callbacks import (
    BackupAndRestore,
    CSVLogger,
    LambdaCallback,
    LearningRateScheduler,
    ProgbarLogger,
    ReduceLROnPlateau,
    TerminateOnNaN,
)

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau",
           "LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "BackupAndRestore", "LambdaCallback",
           "ProgbarLogger"]
