"""Snapshots of callback state for checkpoints: what a callback has learned so far survives a restart.

Owns: :func:`callback_states` and :func:`restore_callbacks`. A callback with ``state_dict()`` /
``load_state_dict()`` is saved through them; otherwise its JSON-able attributes and its dicts of tensors
(e.g. EarlyStopping's best weights) are saved, and any other attribute is reported with a warning (it is
not restored on resume). Does not own: the callbacks (:mod:`padless.train.callbacks`) or the file format.

Example:
    >>> from padless.train.callbacks import EarlyStopping
    >>> es = EarlyStopping(patience=3); es.wait = 2
    >>> states, _ = callback_states([es]); states[0]["attrs"]["wait"]
    2
"""

from __future__ import annotations

import inspect
import json
import warnings
from typing import Any, Sequence

import torch

from padless.errors import CheckpointError, ConfigError

__all__ = ["callback_states", "restore_callbacks"]


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v, allow_nan=True)
    except (TypeError, ValueError):
        return False
    return True


def _init_args(cls: type) -> set[str]:
    try:
        return {n for n in inspect.signature(cls.__init__).parameters if n != "self"}
    except (TypeError, ValueError):
        return set()


def callback_states(callbacks: Sequence[Any]) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """Snapshot every callback: ``(JSON states, tensors)``.

    A callback with ``state_dict()``/``load_state_dict()`` is saved through them (the dict must be
    JSON-able). Otherwise its attributes are saved when they are JSON-able (numbers, strings, lists and
    dicts of them) or dicts of tensors (e.g. EarlyStopping's best weights). Skipped: ``model``, other
    private attributes, anything else (with a warning that names it), and attributes named like an
    argument of the callback's ``__init__`` (configuration such as ``patience`` comes from the resuming
    run, not from the checkpoint).

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
                elif not k.startswith("_"):
                    warnings.warn(f"callback {i} ({type(cb).__name__}): attribute {k!r} ({type(v).__name__}) cannot be "
                                  "stored in a checkpoint (not JSON, not a dict of tensors), so a resumed run starts "
                                  "without it; give the callback state_dict()/load_state_dict() to save it",
                                  stacklevel=3)
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
        placeholders = ("_Placeholder", "RankZeroPlaceholder")  # ranks > 0 hold these for file-writing callbacks
        if entry.get("class") in placeholders or type(cb).__name__ in placeholders:
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


