"""Training checkpoints: everything needed to continue a run exactly, written atomically, loaded safely.

Owns: the checkpoint file format and folder: :func:`save_checkpoint`, :func:`load_checkpoint`,
:func:`read_checkpoint_bytes`, :func:`parse_checkpoint`, :func:`latest_checkpoint`, :func:`has_checkpoints`,
:func:`clear_checkpoints`, :func:`find_checkpoint_folder` and :class:`Checkpoint`.

A checkpoint is ONE safetensors file ``ckpt-s<global step>-e<epoch>.safetensors`` in the checkpoint
folder, plus ``latest.json`` naming the newest one with the SHA-256 of the whole file:

* tensors: the model weights (``model/...``; the normalisation statistics are buffers, so they are
  here), the optimizer state (``optimizer``: the bytes of ``torch.save(optimizer.state_dict())``, read
  back with ``torch.load(weights_only=True)``), and extra tensors (``extra/...``: TBPTT carried state,
  stateful layers' state, callback tensors such as EarlyStopping's best weights);
* metadata (JSON): the model config, compile settings and preprocessing, the padless and torch versions,
  the training state (epoch, position in the epoch, global step, sampler state, partial sums of the epoch
  in progress, callback states, a fingerprint of data and settings), the RNG states (torch, CUDA, numpy,
  python) of every rank, and a SHA-256 over all tensors and metadata.

Writing: the file is written atomically (temporary file, fsync, rename), then ``latest.json`` is
replaced atomically, then older checkpoints beyond ``keep`` are deleted. A crash at any point leaves
``latest.json`` naming a complete, earlier checkpoint. Loading never executes code from the file; a
truncated, tampered or foreign file raises :class:`~padless.errors.CheckpointError`.

Does not own: when checkpoints are written or how a run continues (:class:`padless.train.trainer.Trainer`
with ``checkpoint_dir=``, ``checkpoint_every=``, ``resume_from=``), what the training state holds
(:mod:`padless.train.state`), RNG and callback snapshots (:mod:`padless.train.rng`,
:mod:`padless.train.callback_state`), or saved models (:mod:`padless.train.saving`).

Example:
    >>> import tempfile
    >>> from padless.nn import GRU, Dense, LayerStack
    >>> m = LayerStack([GRU(3, input_size=2), Dense(1)])
    >>> d = tempfile.mkdtemp()
    >>> p = save_checkpoint(d, m, None, {"global_step": 5, "epoch": 0})
    >>> load_checkpoint(d).state["global_step"], p.name
    (5, 'ckpt-s000000005-e00000.safetensors')
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from padless.errors import CheckpointError, ConfigError
from padless.io import VERSION, atomic_write_bytes, metadata_digest, read_safetensors_header
from padless.nn.graph import Graph
from padless.train.rng import capture_rng
from padless.train.state import RunState

__all__ = [
    "FORMAT",
    "LATEST",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_bytes",
    "parse_checkpoint",
    "latest_checkpoint",
    "has_checkpoints",
    "clear_checkpoints",
    "find_checkpoint_folder",
]

FORMAT = "padless.checkpoint.v1"
LATEST = "latest.json"
_NAME = re.compile(r"^ckpt-s(\d{9})-e(\d{5})\.safetensors$")
_TMP = re.compile(r"^\.(ckpt-s\d{9}-e\d{5}\.safetensors|latest\.json)\..*\.tmp$")


# ------------------------------------------------------------------------------------------------ files
def _checkpoint_files(directory: Path) -> list[tuple[int, int, Path]]:
    if not directory.is_dir():
        return []
    out = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), p))
    return sorted(out)


def has_checkpoints(directory: str | os.PathLike[str]) -> bool:
    """True when ``directory`` holds a ``latest.json`` or any checkpoint file.

    Example:
        >>> import tempfile; has_checkpoints(tempfile.mkdtemp())
        False
    """
    d = Path(directory)
    return (d / LATEST).exists() or bool(_checkpoint_files(d))


def clear_checkpoints(directory: str | os.PathLike[str]) -> int:
    """Delete the checkpoint files and ``latest.json`` in ``directory`` (nothing else); return how many.

    Example:
        >>> import tempfile; clear_checkpoints(tempfile.mkdtemp())
        0
    """
    d = Path(directory)
    n = 0
    for _, _, p in _checkpoint_files(d):
        p.unlink(missing_ok=True)
        n += 1
    if (d / LATEST).exists():
        (d / LATEST).unlink()
        n += 1
    return n


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The checkpoint file that ``directory/latest.json`` names, or None when there is none.

    Raises:
        CheckpointError: ``latest.json`` is unreadable or names a file that is missing.
    """
    d = Path(directory)
    info = _read_latest(d)
    return None if info is None else d / info["file"]


def _read_latest(d: Path) -> dict[str, Any] | None:
    p = d / LATEST
    if not p.exists():
        return None
    try:
        info = json.loads(p.read_text())
        name = str(info["file"])
        str(info["sha256"])
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{str(p)!r} is damaged ({e}); it should name the newest checkpoint file") from None
    if not _NAME.match(name):  # never follow a path out of the folder
        raise CheckpointError(f"{str(p)!r} names {name!r}, which is not a padless checkpoint file name")
    if not (d / name).is_file():
        raise CheckpointError(f"{str(p)!r} names {name!r}, which is missing from {str(d)!r}")
    return info


def save_checkpoint(
    directory: str | os.PathLike[str],
    model: Graph,
    optimizer: torch.optim.Optimizer | None,
    state: RunState | Mapping[str, Any],
    *,
    compile_config: dict[str, Any] | None = None,
    preprocessing: dict[str, Any] | None = None,
    rng: Sequence[dict[str, Any]] | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
    keep: int = 2,
) -> Path:
    """Write a checkpoint atomically and point ``latest.json`` at it.

    Args:
        directory: the checkpoint folder (created if needed).
        model: the model graph (config + weights).
        optimizer: its optimizer (state saved through ``torch.save``; loaded with ``weights_only=True``).
        state: the training state (a :class:`~padless.train.state.RunState` or its dict); ``global_step`` and
            ``epoch`` name the file.
        compile_config: the JSON compile settings (``padless.train.compile.compile_config``).
        preprocessing: the model's preprocessing dict (class names, data columns...).
        rng: one :func:`~padless.train.rng.capture_rng` snapshot per rank (default: this process's).
        tensors: extra tensors (stored under ``extra/``).
        keep: how many checkpoint files to keep (the newest; at least 1).

    Returns:
        The checkpoint file's path.
    """
    if not model.built:
        raise ConfigError("the model is not built yet (no weights): nothing to checkpoint")
    state_d = state.to_dict() if isinstance(state, RunState) else dict(state)
    keep = max(int(keep), 1)
    d = Path(directory)
    all_t: dict[str, torch.Tensor] = {f"model/{k}": v.detach().cpu().contiguous().clone()
                                      for k, v in model.state_dict().items()}
    if optimizer is not None:
        buf = io.BytesIO()
        torch.save(optimizer.state_dict(), buf)
        all_t["optimizer"] = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
    for k, v in (tensors or {}).items():
        all_t[f"extra/{k}"] = v.detach().cpu().contiguous().clone()
    meta = {
        "format": FORMAT,
        "padless_version": VERSION,
        "torch_version": torch.__version__,
        "config": json.dumps(model.get_config()),
        "compile": json.dumps(compile_config),
        "preprocessing": json.dumps(preprocessing or {}),
        "state": json.dumps(state_d, allow_nan=True),
        "rng": json.dumps(list(rng) if rng is not None else [capture_rng()]),
    }
    meta["sha256"] = metadata_digest(all_t, meta)
    data = st_save(all_t, metadata=meta)
    step, epoch = int(state_d.get("global_step", 0)), int(state_d.get("epoch", 0))
    name = f"ckpt-s{step:09d}-e{epoch:05d}.safetensors"
    d.mkdir(parents=True, exist_ok=True)
    for p in d.iterdir():  # temporary files of a save that crashed earlier
        if _TMP.match(p.name):
            p.unlink(missing_ok=True)
    atomic_write_bytes(d / name, data)
    latest = {"format": FORMAT, "file": name, "sha256": hashlib.sha256(data).hexdigest(), "global_step": step,
              "epoch": epoch, "position": int(state_d.get("position", 0))}
    atomic_write_bytes(d / LATEST, (json.dumps(latest, indent=1) + "\n").encode())
    files = _checkpoint_files(d)
    for _, _, p in files[:-keep]:
        if p.name != name:
            p.unlink(missing_ok=True)
    return d / name


@dataclass
class Checkpoint:
    """A loaded checkpoint (see the module docstring for what it holds).

    Attributes:
        path: the file it came from.
        padless_version: the version that wrote it.
        config: the model config (``model.get_config()``).
        compile: compile settings or None.
        preprocessing: the model's preprocessing dict.
        state: the training state.
        rng: RNG snapshots, one per rank.
        weights: the model's state dict.
        optimizer: the optimizer's state dict, or None.
        tensors: extra tensors (keys without the ``extra/`` prefix).
    """

    path: str
    padless_version: str
    config: dict[str, Any]
    compile: dict[str, Any] | None
    preprocessing: dict[str, Any]
    state: dict[str, Any]
    rng: list[dict[str, Any]]
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def check_model(self, model: Graph) -> None:
        """Raise :class:`CheckpointError` naming the first difference between this checkpoint's model and
        ``model``."""
        mine = model.get_config()
        if mine == self.config:
            return
        la, lb = self.config.get("layers", []), mine.get("layers", [])
        if len(la) != len(lb):
            why = f"it has {len(la)} layers, the model has {len(lb)}"
        else:
            why = "the configs differ"
            for i, (a, b) in enumerate(zip(la, lb)):
                if a != b:
                    if a.get("class_name") != b.get("class_name"):
                        why = f"layer {i} is {a.get('class_name')} in the checkpoint but {b.get('class_name')} in the model"
                    else:
                        ca, cb = a.get("config", {}), b.get("config", {})
                        keys = [k for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)]
                        diffs = ", ".join(f"{k} {ca.get(k)!r} vs {cb.get(k)!r}" for k in keys[:3])
                        why = f"layer {i} ({a.get('class_name')}) differs: {diffs} (checkpoint vs model)"
                    break
        raise CheckpointError(f"{self.path!r} was written for a different model: {why}; build the same model "
                              "(same layers and sizes) to resume from it")

    def restore_model(self, model: Graph) -> None:
        """Check the config and copy the weights into ``model`` (in place, on its device)."""
        self.check_model(model)
        try:
            missing, unexpected = model.load_state_dict(self.weights, strict=False)
        except RuntimeError as e:
            raise CheckpointError(f"{self.path!r}: the weights do not fit the model: {str(e).splitlines()[0]}") from None
        if missing or unexpected:
            raise CheckpointError(f"{self.path!r}: weights do not match the model (missing {missing}, "
                                  f"unexpected {unexpected})")

    @property
    def run(self) -> RunState:
        """The training state as a :class:`~padless.train.state.RunState`."""
        return RunState.from_dict(self.state)


def read_checkpoint_bytes(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    """The bytes of the checkpoint at ``path`` (a folder: the one ``latest.json`` names, checked against its
    SHA-256; a file: that file). Returns ``(file path, bytes)``.

    Raises:
        CheckpointError: nothing there, an unreadable ``latest.json``, or a checksum mismatch.
    """
    p = Path(path)
    if p.is_dir():
        info = _read_latest(p)
        if info is None:
            files = _checkpoint_files(p)
            if files:
                raise CheckpointError(f"{str(p)!r} has checkpoint files but no {LATEST}: pass one file as resume_from")
            raise CheckpointError(f"no checkpoint in {str(p)!r} (no {LATEST}): check the folder, or start without "
                                  "resuming")
        f = p / info["file"]
        data = f.read_bytes()
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise CheckpointError(f"{str(f)!r} failed its checksum: the file was modified or damaged")
        return str(f), data
    if not p.is_file():
        raise CheckpointError(f"no checkpoint at {str(p)!r}: give the checkpoint folder or one ckpt-*.safetensors file")
    return str(p), p.read_bytes()


def parse_checkpoint(data: bytes, where: str = "<bytes>") -> Checkpoint:
    """Verify and decode checkpoint bytes (see :func:`load_checkpoint`)."""
    meta = read_safetensors_header(data, where)
    if meta.get("format") != FORMAT:
        if meta.get("format", "").startswith("padless.model"):
            raise CheckpointError(f"{where!r} is a saved model, not a training checkpoint: load it with "
                                  "padless.load_model, or resume from a checkpoint folder")
        raise CheckpointError(f"{where!r} is not a padless checkpoint (format {meta.get('format')!r})")
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error types for bad offsets/truncation
        raise CheckpointError(f"{where!r} is truncated or corrupted: {e}") from None
    if metadata_digest(tensors, meta) != meta.get("sha256"):
        raise CheckpointError(f"{where!r} failed its checksum: the checkpoint was modified or damaged")
    try:
        config = json.loads(meta["config"])
        compile_cfg = json.loads(meta.get("compile", "null"))
        pre = json.loads(meta.get("preprocessing", "{}")) or {}
        state = json.loads(meta["state"])
        rng = json.loads(meta.get("rng", "[]"))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{where!r} has damaged metadata: {e}") from None
    opt = None
    if "optimizer" in tensors:
        try:
            opt = torch.load(io.BytesIO(tensors["optimizer"].numpy().tobytes()), map_location="cpu", weights_only=True)
        except Exception as e:  # weights_only refuses anything but tensors and plain containers
            raise CheckpointError(f"{where!r}: the optimizer state cannot be read safely: {str(e).splitlines()[0]}") from None
    weights = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    extra = {k[len("extra/"):]: v for k, v in tensors.items() if k.startswith("extra/")}
    return Checkpoint(path=where, padless_version=str(meta.get("padless_version", "?")), config=config,
                      compile=compile_cfg, preprocessing=pre, state=state, rng=list(rng), weights=weights,
                      optimizer=opt, tensors=extra)


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load the latest checkpoint of a folder (or one checkpoint file). Never executes code from the file.

    Args:
        path: a checkpoint folder (its ``latest.json`` names the file) or a ``ckpt-*.safetensors`` file.

    Raises:
        CheckpointError: missing, truncated, tampered, foreign, or not a checkpoint.

    Example:
        >>> # ckpt = load_checkpoint("runs/jv/checkpoints"); ckpt.state["epoch"]
    """
    where, data = read_checkpoint_bytes(path)
    return parse_checkpoint(data, where)


def find_checkpoint_folder(path: str | os.PathLike[str]) -> Path | None:
    """The checkpoint folder of ``path``: ``path`` itself or its ``checkpoints/`` subfolder (a run folder
    written by ``padless train --out``), whichever holds ``latest.json``; None when neither does.

    Example:
        >>> import tempfile; find_checkpoint_folder(tempfile.mkdtemp()) is None
        True
    """
    d = Path(path)
    for cand in (d, d / "checkpoints"):
        if (cand / LATEST).is_file():
            return cand
    return None
