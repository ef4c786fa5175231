"""The settings of a training run, checked once: :class:`FitOptions`.

Owns: :func:`check_stateful` (what a stateful model needs of the options), :class:`FitOptions` (every ``fit`` keyword that is not data: batch size, epochs, batching, TBPTT,
checkpoints and resuming, processes, step budgets, Keras' ``steps_per_epoch``...), its checks (one
:class:`~padless.errors.ConfigError` naming the argument) and :meth:`FitOptions.fingerprint` (the settings
that change the batches, compared on resume and across processes).

Does not own: running them (:mod:`padless.train.trainer`).

Example:
    >>> FitOptions(batch_size=8, epochs=3).batch_size
    8
    >>> FitOptions(epochs=-1)
    Traceback (most recent call last):
    ...
    padless.errors.ConfigError: epochs must be an integer >= 0; got -1
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from padless.data.sources import check_batching
from padless.errors import ConfigError, StateError

__all__ = ["FitOptions", "check_stateful"]


def _count(value: Any, name: str, low: int, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


@dataclass
class FitOptions:
    """Checked ``fit`` settings (see :meth:`padless.models.Sequential.fit` for what each one does)."""

    batch_size: int | None = None
    epochs: int = 1
    verbose: int | str = "auto"
    shuffle: bool = True
    initial_epoch: int = 0
    batching: str = "auto"
    seed: int | None = None
    tbptt: int | None = None
    checkpoint_dir: str | os.PathLike[str] | None = None
    checkpoint_every: int | None = None
    resume_from: str | os.PathLike[str] | None = None
    distributed: bool | str = "auto"
    keep_checkpoints: int = 2
    overwrite_checkpoints: bool = False
    max_steps: int | None = None
    validation_split: float = 0.0
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    validation_batch_size: int | None = None
    validation_freq: int = 1
    merge_cost: float | str = "auto"
    tbptt_start: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size is None:
            self.batch_size = 32
        b = self.batch_size
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b <= 0:
            raise ConfigError(f"batch_size must be a positive integer; got {b!r}")
        self.batch_size = int(b)
        self.epochs = _count(self.epochs, "epochs", 0, allow_none=False)  # type: ignore[assignment]
        self.initial_epoch = _count(self.initial_epoch, "initial_epoch", 0, allow_none=False)  # type: ignore[assignment]
        self.checkpoint_every = _count(self.checkpoint_every, "checkpoint_every", 1)
        self.keep_checkpoints = _count(self.keep_checkpoints, "keep_checkpoints", 1, allow_none=False)  # type: ignore[assignment]
        self.max_steps = _count(self.max_steps, "max_steps", 1)
        self.steps_per_epoch = _count(self.steps_per_epoch, "steps_per_epoch", 1)
        self.validation_steps = _count(self.validation_steps, "validation_steps", 1)
        self.validation_freq = _count(self.validation_freq, "validation_freq", 1, allow_none=False)  # type: ignore[assignment]
        if self.validation_batch_size is not None:
            _count(self.validation_batch_size, "validation_batch_size", 1)
        if self.tbptt is not None:
            if isinstance(self.tbptt, bool) or not isinstance(self.tbptt, (int, np.integer)) or self.tbptt <= 0:
                raise ConfigError(f"tbptt must be a positive number of steps; got {self.tbptt!r}")
            self.tbptt = int(self.tbptt)
        if self.max_steps is not None and self.tbptt is not None:
            raise ConfigError("max_steps cuts batches by a step budget; it does not combine with tbptt or a stateful model")
        if self.checkpoint_every is not None and self.checkpoint_dir is None:
            raise ConfigError("checkpoint_every needs checkpoint_dir= (the folder to write checkpoints to)")
        check_batching(self.batching)
        if self.distributed not in ("auto", True, False):
            raise ConfigError(f"distributed must be 'auto', True or False; got {self.distributed!r}")

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else Path(self.checkpoint_dir)

    def fingerprint(self, sequences: int, lengths_digest: str, world_size: int, validation: int) -> dict[str, Any]:
        """Every setting that changes the batches (a resumed or distributed run must match all of them)."""
        return {"sequences": sequences, "lengths": lengths_digest, "batch_size": self.batch_size, "tbptt": self.tbptt,
                "batching": self.batching, "shuffle": bool(self.shuffle), "world_size": world_size,
                "validation": validation, "max_steps": self.max_steps, "steps_per_epoch": self.steps_per_epoch,
                "tbptt_start": self.tbptt_start}


def check_stateful(model: Any, o: FitOptions, n: int) -> None:
    """Check (and complete) the options for a stateful model: in-order batches of exactly its batch size.

    Raises:
        ConfigError: a step budget, tbptt or another batching mode; StateError: another batch size, or a
            sample count not divisible by it.
    """
    sbs = model.stateful_batch_size
    if o.max_steps is not None or o.tbptt is not None:
        raise ConfigError("max_steps cuts batches by a step budget; it does not combine with tbptt or a stateful model")
    if o.shuffle:
        warnings.warn("shuffle=True on a stateful model breaks the row-to-row state carry; using shuffle=False "
                      "(as Keras documents, stateful training needs shuffle=False)", stacklevel=5)
        o.shuffle = False
    if o.batching not in ("auto", "sequential"):
        raise ConfigError(f"a stateful model trains on batches in index order (batching='sequential'), so row i "
                          f"of batch k+1 continues row i of batch k; got batching={o.batching!r}")
    o.batching = "sequential"
    if o.batch_size != sbs:
        raise StateError(f"stateful model: Expected batch size {sbs} / Received batch_size={o.batch_size}")
    if n % int(o.batch_size):  # type: ignore[arg-type]
        raise StateError(f"stateful model: Expected a number of samples divisible by {o.batch_size} / Received {n}")
