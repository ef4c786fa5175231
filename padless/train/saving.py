"""The saved-model file: safetensors weights + a JSON config, written atomically, read without unpickling.

Owns: :func:`write_model` and :func:`read_model` (and :class:`SavedModel`, what reading returns), and the
weights-only file (:func:`write_weights`, :func:`read_weights`, Keras' ``save_weights``). A saved
model is ONE safetensors file whose metadata holds the model config (JSON), the compile settings
(optimizer class and every setting, loss, metrics), the preprocessing (class names, data columns, task),
the padless version and a SHA-256 of the tensor bytes, so a flipped byte anywhere is caught.

Does not own: rebuilding a model object from the config (the model facade, ``padless.load_model``),
training checkpoints (:mod:`padless.train.checkpoint`), atomic writes (:mod:`padless.io`).

Example:
    >>> import os, tempfile
    >>> from padless.nn import LSTM, Dense, LayerStack
    >>> m = LayerStack([LSTM(4, input_size=2), Dense(1)])
    >>> p = os.path.join(tempfile.mkdtemp(), "m.safetensors"); _ = write_model(m, p)
    >>> saved = read_model(p); saved.config == m.get_config(), sorted(saved.tensors) == sorted(m.state_dict())
    (True, True)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from padless.errors import CheckpointError, ConfigError
from padless.io import VERSION, atomic_write_bytes, read_safetensors_header, tensor_digest
from padless.nn.graph import Graph

__all__ = ["write_model", "read_model", "write_weights", "read_weights", "SavedModel", "FORMAT", "WEIGHTS_FORMAT",
           "MODEL_FILE"]

FORMAT = "padless.model.v1"
WEIGHTS_FORMAT = "padless.weights.v1"
MODEL_FILE = "model.safetensors"
"""The model file's name inside a run folder (``padless train --out DIR``)."""


@dataclass
class SavedModel:
    """What a saved-model file holds.

    Attributes:
        path: the file.
        config: the model config (``model.get_config()``).
        tensors: the state dict.
        compile: the compile settings, or None (not compiled, or a custom loss).
        preprocessing: class names, data columns, task...
        version: the padless version that wrote it.
    """

    path: str
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    compile: dict[str, Any] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    version: str = "?"


def write_model(model: Graph, path: str | os.PathLike[str], compile_config: dict[str, Any] | None = None,
                preprocessing: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Save config + weights to one safetensors file, atomically.

    Args:
        model: a built model graph.
        path: target file (conventionally ``*.safetensors``).
        compile_config: JSON compile settings (``padless.train.compile.compile_config``).
        preprocessing: JSON-able description of the inputs (class names, columns...).
        extra: JSON-able additions stored in the metadata.

    Raises:
        ConfigError: the model is not built, or its config cannot be stored.
    """
    if not model.built:
        raise ConfigError("the model is not built yet (no weights): train it or give input_shape before saving")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "padless_version": VERSION,
        "config": json.dumps(model.get_config()),
        "compile": json.dumps(compile_config),
        "preprocessing": json.dumps(preprocessing or {}),
        "extra": json.dumps(extra or {}),
        "sha256": tensor_digest(tensors).hexdigest(),
    }
    atomic_write_bytes(path, st_save(tensors, metadata=meta))
    return Path(path)


def read_model(path: str | os.PathLike[str]) -> SavedModel:
    """Read and verify a saved-model file (or a run folder holding ``model.safetensors``).

    Raises:
        CheckpointError: missing, truncated, tampered (checksum mismatch) or foreign file.
    """
    p = Path(path)
    if p.is_dir() and (p / MODEL_FILE).is_file():
        p = p / MODEL_FILE
    if not p.is_file():
        raise CheckpointError(f"no saved model at {str(p)!r}: check the path (save with model.save(path))")
    data = p.read_bytes()
    try:
        meta = read_safetensors_header(data, str(p))
        tensors = st_load(data)
    except Exception as e:  # our header check, or safetensors' own error types for bad offsets/truncation
        raise CheckpointError(f"{str(p)!r} is not a readable padless model (truncated or corrupted?): {e}") from None
    if meta.get("format") != FORMAT:
        if str(meta.get("format", "")).startswith("padless.checkpoint"):
            raise CheckpointError(f"{str(p)!r} is a training checkpoint, not a saved model: pass its folder to "
                                  "padless.load_model, or resume from it")
        raise CheckpointError(f"{str(p)!r} is a safetensors file but not a padless model (format {meta.get('format')!r})")
    if tensor_digest(tensors).hexdigest() != meta.get("sha256"):
        raise CheckpointError(f"{str(p)!r} failed its checksum: the weights were modified or damaged; re-save the model")
    try:
        config = json.loads(meta["config"])
        compile_cfg = json.loads(meta.get("compile", "null"))
        pre = json.loads(meta.get("preprocessing", "{}")) or {}
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{str(p)!r} has damaged metadata: {e}") from None
    return SavedModel(str(p), config, tensors, compile_cfg, pre, str(meta.get("padless_version", "?")))


def write_weights(model: Graph, path: str | os.PathLike[str]) -> Path:
    """The model's weights (state dict) alone as one safetensors file, atomically, with a checksum."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": WEIGHTS_FORMAT, "padless_version": VERSION, "sha256": tensor_digest(tensors).hexdigest()}
    atomic_write_bytes(path, st_save(tensors, metadata=meta))
    return Path(path)


def read_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict in a weights file (:func:`write_weights`) or a saved-model file, checksum verified.

    Raises:
        CheckpointError: missing, damaged or foreign file.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"no weights file at {str(p)!r}")
    data = p.read_bytes()
    try:
        meta = read_safetensors_header(data, str(p))
        tensors = st_load(data)
    except Exception as e:  # our header check, or safetensors' own error types
        raise CheckpointError(f"{str(p)!r} is not a readable weights file (truncated or corrupted?): {e}") from None
    if meta.get("format") not in (WEIGHTS_FORMAT, FORMAT):
        raise CheckpointError(f"{str(p)!r} is not a padless weights or model file (format {meta.get('format')!r})")
    if tensor_digest(tensors).hexdigest() != meta.get("sha256"):
        raise CheckpointError(f"{str(p)!r} failed its checksum: the weights were modified or damaged")
    return tensors
