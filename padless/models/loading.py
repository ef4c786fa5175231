"""Loading a saved model: a model file, a run folder, or a checkpoint (folder or file).

Owns: :func:`load_model` (rebuild the facade class named in the config, load and verify the weights,
compile with the saved optimizer, loss and metrics) and :func:`model_from_config`. Never executes code
from the file.

Does not own: the file formats (:mod:`padless.train.saving`, :mod:`padless.train.checkpoint`).

Example:
    >>> import os, tempfile
    >>> from padless import Sequential
    >>> from padless.layers import LSTM, Dense
    >>> m = Sequential([LSTM(4, input_shape=(None, 2)), Dense(1)])
    >>> m.compile("adam", "mse", lr=3e-3)
    >>> p = os.path.join(tempfile.mkdtemp(), "m.safetensors"); m.save(p)
    >>> load_model(p).optimizer.learning_rate
    0.003
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from padless.errors import CheckpointError, ConfigError
from padless.models.keras_model import KerasModel, model_classes
from padless.train.checkpoint import find_checkpoint_folder, load_checkpoint
from padless.train.compile import compile_from_config
from padless.train.saving import MODEL_FILE, read_model

__all__ = ["load_model", "model_from_config"]


def model_from_config(config: dict[str, Any]) -> KerasModel:
    """Rebuild the model a config describes (``class_name`` picks the class; default ``Sequential``).

    Raises:
        ConfigError: an unknown class or layer (define or import it first).
    """
    name = str(config.get("class_name", "Sequential"))
    cls = model_classes().get(name)
    if cls is None:
        raise ConfigError(f"unknown model class {name!r} in the saved config (known: {', '.join(model_classes())})")
    return cls.from_config(config)  # type: ignore[attr-defined,no-any-return]


def _restore(config: dict[str, Any], tensors: dict[str, torch.Tensor], compile_cfg: dict[str, Any] | None,
             preprocessing: dict[str, Any], where: str, compile: bool, device: str) -> KerasModel:
    try:
        model = model_from_config(config)
        model.preprocessing = dict(preprocessing)
        missing, unexpected = model.load_state_dict(tensors, strict=False)  # type: ignore[attr-defined]
    except (ValueError, KeyError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"{where!r}: the config and weights do not fit together: {e}") from None
    if missing or unexpected:
        raise CheckpointError(f"{where!r}: weights do not match the model config (missing {missing}, unexpected {unexpected})")
    if compile and compile_cfg:
        model.compiled = compile_from_config(model, compile_cfg, device)  # type: ignore[arg-type]
    else:
        model.to(device)  # type: ignore[attr-defined]
    return model


def load_model(path: str | os.PathLike[str], compile: bool = True, device: str = "cpu") -> Any:
    """Load a model: a saved file (``model.save``), a run folder (``padless train --out``), or a training
    checkpoint (its folder or one ``ckpt-*.safetensors`` file: the model as of that checkpoint).

    Args:
        path: the file or folder.
        compile: compile with the saved optimizer (class and settings), loss and metrics.
        device: where the weights go.

    Raises:
        CheckpointError: nothing loadable there; a truncated, tampered or foreign file.
    """
    p = Path(path)
    if p.is_dir() and not (p / MODEL_FILE).is_file():
        folder = find_checkpoint_folder(p)
        if folder is None:
            raise CheckpointError(f"no saved model at {str(p)!r}: expected {MODEL_FILE} or a checkpoint folder there")
        p = folder
    if p.is_dir() and not (p / MODEL_FILE).is_file() or p.name.startswith("ckpt-"):
        ckpt = load_checkpoint(p)
        return _restore(ckpt.config, ckpt.weights, ckpt.compile, ckpt.preprocessing, ckpt.path, compile, device)
    saved = read_model(p)
    return _restore(saved.config, saved.tensors, saved.compile, saved.preprocessing, saved.path, compile, device)

