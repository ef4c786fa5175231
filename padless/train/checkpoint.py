"""Training checkpoints: everything needed to continue a run exactly, written atomically, loaded safely.

Owns: :func:`save_checkpoint`, :func:`load_checkpoint`, :func:`latest_checkpoint`, :func:`has_checkpoints`,
:func:`clear_checkpoints`, :class:`Checkpoint`, the random-number-generator snapshots
(:func:`capture_rng`, :func:`restore_rng`) and the generic callback snapshots
(:func:`callback_states`, :func:`restore_callbacks`).

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

Does not own: when checkpoints are written or how a run continues (``padless.train.loop.fit`` with
``checkpoint_dir=``, ``checkpoint_every=``, ``resume_from=``), or exported models (``padless.train.saving``).

Example:
    >>> # model.fit(x, y, epochs=5, checkpoint_dir="ckpt", checkpoint_every=100)     # writes ckpt/
    >>> # ckpt = load_checkpoint("ckpt"); ckpt.state["epoch"], ckpt.state["position"]
    >>> # model.fit(x, y, epochs=5, checkpoint_dir="ckpt", resume_from="ckpt")       # continues exactly
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from padless.errors import CheckpointError, ConfigError

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
    "capture_rng",
    "restore_rng",
    "callback_states",
    "restore_callbacks",
]

FORMAT = "padless.checkpoint.v1"
LATEST = "latest.json"
_NAME = re.compile(r"^ckpt-s(\d{9})-e(\d{5})\.safetensors$")
_TMP = re.compile(r"^\.(ckpt-s\d{9}-e\d{5}\.safetensors|latest\.json)\..*\.tmp$")


# ------------------------------------------------------------------------------------------------ RNG
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def capture_rng() -> dict[str, Any]:
    """A JSON-able snapshot of the torch (and CUDA), numpy and python random generators of this process.

    Example:
        >>> s = capture_rng(); a = torch.rand(1); restore_rng(s); bool(torch.rand(1) == a)
        True
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    version, internal, gauss_next = random.getstate()
    snap: dict[str, Any] = {
        "torch": _b64(torch.get_rng_state().numpy().tobytes()),
        "numpy": {"kind": str(kind), "keys": _b64(np.asarray(keys, dtype=np.uint32).tobytes()), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        snap["cuda"] = [_b64(s.numpy().tobytes()) for s in torch.cuda.get_rng_state_all()]
    return snap


def restore_rng(snap: dict[str, Any]) -> None:
    """Put back a :func:`capture_rng` snapshot.

    Raises:
        CheckpointError: the snapshot is malformed.
    """
    try:
        torch.set_rng_state(torch.frombuffer(bytearray(_unb64(snap["torch"])), dtype=torch.uint8))
        n = snap["numpy"]
        keys = np.frombuffer(_unb64(n["keys"]), dtype=np.uint32).copy()
        np.random.set_state((n["kind"], keys, int(n["pos"]), int(n["has_gauss"]), float(n["cached_gaussian"])))
        version, internal, gauss_next = snap["python"]
        random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))
        if "cuda" in snap and torch.cuda.is_available():
            states = [torch.frombuffer(bytearray(_unb64(s)), dtype=torch.uint8) for s in snap["cuda"]]
            for i, s in enumerate(states[: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(s, i)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"the checkpoint's random-generator state is malformed: {e}") from None


# ------------------------------------------------------------------------------------------------ callbacks
def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v, allow_nan=True)
    except (TypeError, ValueError):
        return False
    return True


def _init_args(cls: type) -> set[str]:
    import inspect

    try:
        return {n for n in inspect.signature(cls.__init__).parameters if n != "self"}
    except (TypeError, ValueError):
        return set()


def callback_states(callbacks: Sequence[Any]) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """Snapshot every callback: ``(JSON states, tensors)``.

    A callback with ``state_dict()``/``load_state_dict()`` is saved through them (the dict must be
    JSON-able). Otherwise its attributes are saved when they are JSON-able (numbers, strings, lists and
    dicts of them) or dicts of tensors (e.g. EarlyStopping's best weights). Skipped: ``model``, anything
    else, and attributes named like an argument of the callback's ``__init__`` (configuration such as
    ``patience`` comes from the resuming run, not from the checkpoint).

    Example:
        >>> from padless.train.callbacks import EarlyStopping
        >>> es = EarlyStopping(patience=3); es.wait = 2
        >>> states, _ = callback_states([es]); states[0]["attrs"]["wait"]
        2
    """
    states: list[dict[str, Any]] = []
    tensors: dict[str, torch.Tensor] = {}
    for i, cb in enumerate(callbacks):
        entry: dict[str, Any] = {"class": type(cb).__name__}
        if callable(getattr(cb, "state_dict", None)) and callable(getattr(cb, "load_state_dict", None)):
            sd = cb.state_dict()
            if not _jsonable(sd):
                raise ConfigError(f"callback {i} ({type(cb).__name__}).state_dict() must return JSON-able values")
            entry["state_dict"] = sd
        else:
            attrs: dict[str, Any] = {}
            tensor_attrs: dict[str, list[str]] = {}
            config = _init_args(type(cb))
            for k, v in vars(cb).items():
                if k == "model" or k in config:
                    continue
                if isinstance(v, dict) and v and all(isinstance(t, torch.Tensor) for t in v.values()):
                    names = [str(n) for n in v]
                    for n, t in v.items():
                        tensors[f"callback/{i}/{k}/{n}"] = t.detach().cpu().contiguous().clone()
                    tensor_attrs[k] = names
                elif _jsonable(v):
                    attrs[k] = v
            entry["attrs"] = attrs
            entry["tensor_attrs"] = tensor_attrs
        states.append(entry)
    return states, tensors


def restore_callbacks(callbacks: Sequence[Any], states: Sequence[dict[str, Any]],
                      tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`callback_states` (callbacks are matched by position and class name).

    Raises:
        CheckpointError: the callbacks of this run do not match the checkpoint's.
    """
    if len(states) != len(callbacks):
        raise CheckpointError(
            f"the checkpoint holds {len(states)} callbacks' states but this run has {len(callbacks)} callbacks: "
            "resume with the same callbacks"
        )
    for i, (cb, entry) in enumerate(zip(callbacks, states)):
        if entry.get("class") == "_Placeholder" or type(cb).__name__ == "_Placeholder":
            continue
        if entry.get("class") != type(cb).__name__:
            raise CheckpointError(f"callback {i} is a {type(cb).__name__} but the checkpoint saved a "
                                  f"{entry.get('class')}: resume with the same callbacks in the same order")
        if "state_dict" in entry:
            cb.load_state_dict(entry["state_dict"])
            continue
        for k, v in entry.get("attrs", {}).items():
            setattr(cb, k, v)
        for k, names in entry.get("tensor_attrs", {}).items():
            setattr(cb, k, {n: tensors[f"callback/{i}/{k}/{n}"] for n in names})


# ------------------------------------------------------------------------------------------------ files
def _digest(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    for k in sorted(meta):
        if k != "sha256":
            h.update(k.encode())
            h.update(b"\0")
            h.update(meta[k].encode())
            h.update(b"\0")
    return h.hexdigest()


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
    model: Any,
    optimizer: torch.optim.Optimizer | None,
    state: dict[str, Any],
    *,
    rng: Sequence[dict[str, Any]] | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
    keep: int = 2,
) -> Path:
    """Write a checkpoint atomically and point ``latest.json`` at it.

    Args:
        directory: the checkpoint folder (created if needed).
        model: the :class:`~padless.nn.sequential.Sequential` (config + weights).
        optimizer: its optimizer (state saved through ``torch.save``; loaded with ``weights_only=True``).
        state: JSON-able training state; ``global_step`` and ``epoch`` name the file.
        rng: one :func:`capture_rng` snapshot per rank (default: this process's).
        tensors: extra tensors (stored under ``extra/``).
        keep: how many checkpoint files to keep (the newest; at least 1).

    Returns:
        The checkpoint file's path.

    Example:
        >>> import tempfile
        >>> from padless import Sequential
        >>> from padless.layers import GRU, Dense
        >>> m = Sequential([GRU(3, input_size=2), Dense(1)])
        >>> d = tempfile.mkdtemp()
        >>> p = save_checkpoint(d, m, None, {"global_step": 5, "epoch": 0})
        >>> load_checkpoint(d).state["global_step"], p.name
        (5, 'ckpt-s000000005-e00000.safetensors')
    """
    from safetensors.torch import save as st_save

    import padless
    from padless.train.saving import atomic_write_bytes

    if not model.built:
        raise ConfigError("the model is not built yet (no weights): nothing to checkpoint")
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
    from padless.train.saving import compile_config

    compile_cfg = compile_config(model)
    meta = {
        "format": FORMAT,
        "padless_version": padless.__version__,
        "torch_version": torch.__version__,
        "config": json.dumps(model.get_config()),
        "compile": json.dumps(compile_cfg),
        "preprocessing": json.dumps(getattr(model, "preprocessing", {}) or {}),
        "state": json.dumps(state, allow_nan=True),
        "rng": json.dumps(list(rng) if rng is not None else [capture_rng()]),
    }
    meta["sha256"] = _digest(all_t, meta)
    data = st_save(all_t, metadata=meta)
    step, epoch = int(state.get("global_step", 0)), int(state.get("epoch", 0))
    name = f"ckpt-s{step:09d}-e{epoch:05d}.safetensors"
    d.mkdir(parents=True, exist_ok=True)
    for p in d.iterdir():  # temporary files of a save that crashed earlier
        if _TMP.match(p.name):
            p.unlink(missing_ok=True)
    atomic_write_bytes(d / name, data)
    latest = {"format": FORMAT, "file": name, "sha256": hashlib.sha256(data).hexdigest(), "global_step": step,
              "epoch": epoch, "position": int(state.get("position", 0))}
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
        config: the model config (``Sequential.get_config()``).
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

    def check_model(self, model: Any) -> None:
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

    def restore_model(self, model: Any) -> None:
        """Check the config and copy the weights into ``model`` (in place, on its device)."""
        self.check_model(model)
        try:
            missing, unexpected = model.load_state_dict(self.weights, strict=False)
        except RuntimeError as e:
            raise CheckpointError(f"{self.path!r}: the weights do not fit the model: {str(e).splitlines()[0]}") from None
        if missing or unexpected:
            raise CheckpointError(f"{self.path!r}: weights do not match the model (missing {missing}, "
                                  f"unexpected {unexpected})")

    def to_model(self, compile: bool = True, device: str = "cpu") -> Any:
        """A new model built from the config with the checkpoint's weights (like ``load_model``).

        Example:
            >>> # model = load_checkpoint("runs/x/checkpoints").to_model()
        """
        from padless.nn.sequential import Sequential

        try:
            model = Sequential.from_config(self.config)
        except (ConfigError, TypeError, ValueError) as e:
            raise CheckpointError(f"{self.path!r}: the model config cannot be rebuilt: {e}") from None
        model.preprocessing = dict(self.preprocessing)
        self.restore_model(model)
        if compile and self.compile:
            model.compile(optimizer=self.compile["optimizer"], loss=self.compile["loss"],
                          metrics=self.compile["metrics"], device=device)
        else:
            model.to(device)
        return model


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


def _header(data: bytes, where: str) -> dict[str, str]:
    if len(data) < 8:
        raise CheckpointError(f"{where!r} is truncated ({len(data)} bytes): not a complete checkpoint")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 100_000_000:
        raise CheckpointError(f"{where!r} is truncated or corrupted (header of {n} bytes in a {len(data)}-byte file)")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
        meta = header.get("__metadata__") or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise ValueError("metadata is not a string map")
    except (UnicodeDecodeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{where!r} is corrupted (unreadable header: {e})") from None
    return meta


def parse_checkpoint(data: bytes, where: str = "<bytes>") -> Checkpoint:
    """Verify and decode checkpoint bytes (see :func:`load_checkpoint`)."""
    from safetensors.torch import load as st_load

    meta = _header(data, where)
    if meta.get("format") != FORMAT:
        if meta.get("format", "").startswith("padless.model"):
            raise CheckpointError(f"{where!r} is a saved model, not a training checkpoint: load it with "
                                  "padless.load_model, or resume from a checkpoint folder")
        raise CheckpointError(f"{where!r} is not a padless checkpoint (format {meta.get('format')!r})")
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error types for bad offsets/truncation
        raise CheckpointError(f"{where!r} is truncated or corrupted: {e}") from None
    if _digest(tensors, meta) != meta.get("sha256"):
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
