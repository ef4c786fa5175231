"""Saving and loading models: safetensors weights + a JSON config, written atomically, loaded safely.

Owns: :func:`save_model`, :func:`load_model`, :func:`atomic_write_bytes`. A saved model is ONE
safetensors file whose metadata holds the model config (JSON), the compile settings, any preprocessing
statistics, the padless version and a SHA-256 of the tensor bytes, so a flipped byte anywhere is caught.
Loading never unpickles anything.

Does not own: training checkpoints with optimizer/sampler state (``padless.train.checkpoint``, later).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from padless.errors import CheckpointError

__all__ = ["save_model", "load_model", "atomic_write_bytes", "compile_config", "FORMAT"]

FORMAT = "padless.model.v1"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, fsync, rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def compile_config(model: Any) -> dict[str, Any] | None:
    """The JSON-able part of ``model.compile(...)`` (loss, metrics, optimizer name), or None."""
    c = getattr(model, "compiled", None)
    if c is None or c.loss_name is None:
        return None
    spec = c.optimizer_spec if isinstance(c.optimizer_spec, str) else None
    return {"loss": c.loss_name, "metrics": c.metric_names, "optimizer": spec or "rmsprop"}


def save_model(model: Any, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> None:
    """Save config + weights to one safetensors file, atomically.

    Args:
        model: a built :class:`~padless.nn.sequential.Sequential`.
        path: target file (conventionally ``*.safetensors``).
        extra: JSON-able additions (e.g. normalisation statistics) stored in the metadata.

    Example:
        >>> import tempfile, os
        >>> from padless import Sequential, load_model
        >>> from padless.layers import LSTM, Dense
        >>> m = Sequential([LSTM(4, input_shape=(None, 2)), Dense(1)])
        >>> p = os.path.join(tempfile.mkdtemp(), "m.safetensors"); m.save(p)
        >>> load_model(p).count_params() == m.count_params()
        True
    """
    from safetensors.torch import save as st_save

    import padless

    if not model.built:
        from padless.errors import ConfigError

        raise ConfigError("the model is not built yet (no weights): train it or give input_shape before saving")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    compile_cfg = compile_config(model)
    meta = {
        "format": FORMAT,
        "padless_version": padless.__version__,
        "config": json.dumps(model.get_config()),
        "compile": json.dumps(compile_cfg),
        "preprocessing": json.dumps(getattr(model, "preprocessing", {}) or {}),
        "extra": json.dumps(extra or {}),
        "sha256": _digest(tensors),
    }
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


def load_model(path: str | os.PathLike[str], compile: bool = True, device: str = "cpu") -> Any:
    """Load a model written by :func:`save_model` (or ``model.save``). Never executes code from the file.

    Raises:
        CheckpointError: missing, truncated, tampered (checksum mismatch) or foreign file.
    """
    from safetensors import safe_open

    from padless.nn.sequential import Sequential

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"no saved model at {str(p)!r}: check the path (save with model.save(path))")
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for bad headers/truncation
        raise CheckpointError(f"{str(p)!r} is not a readable padless model (truncated or corrupted?): {e}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(p)!r} is a safetensors file but not a padless model (format {meta.get('format')!r})")
    if _digest(tensors) != meta.get("sha256"):
        raise CheckpointError(f"{str(p)!r} failed its checksum: the weights were modified or damaged; re-save the model")
    try:
        config = json.loads(meta["config"])
        model = Sequential.from_config(config)
        model.preprocessing = json.loads(meta.get("preprocessing", "{}")) or {}
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except (ValueError, KeyError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"{str(p)!r}: the config and weights do not fit together: {e}") from None
    if missing or unexpected:
        raise CheckpointError(f"{str(p)!r}: weights do not match the model config (missing {missing}, unexpected {unexpected})")
    compile_cfg = json.loads(meta.get("compile", "null"))
    if compile and compile_cfg:
        model.compile(optimizer=compile_cfg["optimizer"], loss=compile_cfg["loss"], metrics=compile_cfg["metrics"],
                      device=device)
    else:
        model.to(device)
    return model
