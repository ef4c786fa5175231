"""Training: compile, the fit/evaluate/predict loop, callbacks, saving.

Owns the training side of the Keras API; the model and layers live in :mod:`padless.nn`.
"""

from padless.train.callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from padless.train.compile import compile_model
from padless.train.loop import evaluate, fit, predict
from padless.train.checkpoint import latest_checkpoint, load_checkpoint
from padless.train.saving import load_model, save_model

__all__ = ["Callback", "EarlyStopping", "History", "ModelCheckpoint", "compile_model", "fit", "evaluate", "predict",
           "load_model", "save_model", "load_checkpoint", "latest_checkpoint"]
