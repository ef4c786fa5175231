"""Training: compile, the trainer, evaluation and prediction, callbacks, checkpoints, saved-model files.

Owns: the re-exports below. Works on plain model graphs (:class:`padless.nn.Graph`); the Keras-style
facade (``padless.Sequential``) wires ``compile``/``fit``/``evaluate``/``predict``/``save`` to this package.
Does not own: layers or models (:mod:`padless.nn`), batch sources (:mod:`padless.data`), export.

Example:
    >>> from padless.train import Trainer, FitOptions, compile_model
    >>> FitOptions(epochs=2).epochs
    2
"""

from padless.train.callbacks import Callback, CallbackList, EarlyStopping, History, ModelCheckpoint
from padless.train.checkpoint import Checkpoint, latest_checkpoint, load_checkpoint
from padless.train.compile import Compiled, compile_config, compile_from_config, compile_model
from padless.train.inference import evaluate, predict
from padless.train.options import FitOptions
from padless.train.saving import SavedModel, read_model, write_model
from padless.train.state import EpochTotals, RunState
from padless.train.trainer import Trainer

__all__ = ["Callback", "CallbackList", "EarlyStopping", "History", "ModelCheckpoint", "Checkpoint", "latest_checkpoint",
           "load_checkpoint", "Compiled", "compile_model", "compile_config", "compile_from_config", "evaluate",
           "predict", "FitOptions", "SavedModel", "read_model", "write_model", "EpochTotals", "RunState", "Trainer"]
