"""The rest of Keras 3's callbacks: learning-rate control, CSV logs, NaN guard, backups, lambdas.

Owns: :class:`ReduceLROnPlateau`, :class:`LearningRateScheduler` (both add ``learning_rate`` to the epoch
logs, as Keras 3, so it lands in ``history.history``), :class:`CSVLogger`, :class:`TerminateOnNaN`,
:class:`BackupAndRestore` (mapped onto padless' exact checkpoints: :func:`backup_options` turns it into
``fit(checkpoint_dir=..., resume_from=...)``), :class:`LambdaCallback` and :class:`ProgbarLogger`.

Their state survives an exact resume from a checkpoint: ReduceLROnPlateau's ``wait``, ``cooldown_counter``
and ``best`` are plain attributes saved with the callbacks (the reduced learning rate itself is in the
optimizer state); CSVLogger saves how far its file was written and, resuming, cuts what an interrupted run
wrote after the checkpoint and appends from there.

Does not own: the base class, History, EarlyStopping, ModelCheckpoint and the monitor rules
(:mod:`padless.train.callbacks`), the checkpoint files (:mod:`padless.train.checkpoint`).

Example:
    >>> cb = LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    >>> class Opt: learning_rate = 0.1
    >>> class M: optimizer = Opt()
    >>> cb.set_model(M()); cb.on_epoch_begin(0); M.optimizer.learning_rate
    0.05
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from padless.errors import ConfigError
from padless.train.callbacks import Callback, History, Logs, check_mode, improved, monitor_mode
from padless.train.checkpoint import clear_checkpoints, has_checkpoints

__all__ = ["ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "BackupAndRestore",
           "LambdaCallback", "ProgbarLogger", "backup_options"]


def _optimizer(model: Any) -> Any:
    opt = getattr(model, "optimizer", None)
    if opt is None or not hasattr(opt, "learning_rate"):
        raise ConfigError('Optimizer must have a "learning_rate" attribute (compile the model, and train it through '
                          "model.fit)")
    return opt


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` once ``monitor`` has not improved for ``patience`` epochs
    (Keras 3's rules: ``min_delta`` margin, ``cooldown`` epochs without counting after a reduction, never
    below ``min_lr``).

    Args:
        monitor: the log to watch.
        factor: the multiplier (< 1).
        patience: epochs without improvement before a reduction.
        verbose: 1 prints each reduction.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        min_delta: smallest change that counts as an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the lower bound.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0,
                 **kwargs: Any) -> None:
        if kwargs:
            raise ConfigError(f"ReduceLROnPlateau does not take {sorted(kwargs)}")
        if factor >= 1.0:
            raise ConfigError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), int(patience), int(verbose)
        self.mode, self.min_delta = check_mode(mode), abs(float(min_delta))
        self.cooldown, self.min_lr = int(cooldown), float(min_lr)
        self.best: float | None = None
        self.wait = 0
        self.cooldown_counter = 0
        self._mode: str | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def in_cooldown(self) -> bool:
        """True while the cooldown after a reduction runs."""
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self._mode is None:
            self._mode = monitor_mode(self.monitor, self.mode, self.model, "ReduceLROnPlateau")
        logs = logs if logs is not None else {}
        opt = _optimizer(self.model)
        logs["learning_rate"] = float(opt.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs)}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if improved(current, self.best, self._mode, self.min_delta):
            self.best, self.wait = float(current), 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old = float(opt.learning_rate)
                if old > np.float32(self.min_lr):
                    new = max(old * self.factor, self.min_lr)
                    opt.learning_rate = new
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch's start to ``schedule(epoch, lr)`` (or ``schedule(epoch)``).

    Args:
        schedule: a function of the epoch index (0-based) and the current learning rate; returns a float.
        verbose: 1 prints the new rate.
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        self.schedule, self.verbose = schedule, int(verbose)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        opt = _optimizer(self.model)
        try:
            lr = self.schedule(epoch, float(opt.learning_rate))
        except TypeError:  # the Keras 1-argument form
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.float32, np.float64)):
            raise ConfigError(f"The output of the `schedule` function should be a float. Got: {lr}")
        opt.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(_optimizer(self.model).learning_rate)


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or infinite (``raise_error=True``: raise).

    Without this callback padless raises a DataError on a non-finite loss. With it (one process) the batch
    is logged with its non-finite loss, its optimizer step is skipped (Keras applies it, which makes every
    weight NaN; padless keeps the weights of before that batch), and training stops after the batch.
    """

    handles_nan = True  # the trainer lets a non-finite loss through to this callback

    def __init__(self, raise_error: bool = False) -> None:
        self.raise_error = bool(raise_error)

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. Terminating "
                                   "training immediately.")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Write each epoch's logs as a CSV row (Keras' format: ``epoch`` then the log names sorted; when the
    first epoch has no ``val_`` logs, ``val_`` columns for each name are added, filled with ``NA``).

    Throughput figures (``steps_per_second``, ``padding_waste``) stay out of the file, as out of
    ``history.history``. Resuming from a checkpoint continues the file where the checkpoint left it.

    Args:
        filename: the CSV file.
        separator: the field separator.
        append: append to an existing file instead of overwriting it.
    """

    rank_zero_only = True

    def __init__(self, filename: str | os.PathLike[str], separator: str = ",", append: bool = False) -> None:
        self.filename, self.sep, self.append = os.fspath(filename), separator, bool(append)
        self.keys: list[str] | None = None
        self.append_header = True
        self._file: Any = None
        self._writer: Any = None
        self._resume: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """How far this run has written the file (saved in checkpoints)."""
        if self._file is None or self._file.closed:
            return {"opened": False}
        self._file.flush()
        return {"opened": True, "offset": self._file.tell(), "keys": self.keys}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a checkpointed run's file (after :meth:`on_train_begin`)."""
        self._resume = dict(state) if state.get("opened") else None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._close()
        self.keys, self._resume = None, None

    def _open(self) -> None:
        if self._resume is not None and Path(self.filename).exists():
            # resuming: cut what an interrupted run wrote after its checkpoint, then append
            self._file = open(self.filename, "r+", newline="")  # noqa: SIM115 - closed at train end
            self._file.truncate(int(self._resume["offset"]))
            self._file.seek(int(self._resume["offset"]))
            self.keys, self.append_header = self._resume.get("keys"), False
            return
        if self.append and Path(self.filename).exists():
            with open(self.filename) as f:
                self.append_header = not bool(len(f.readline()))
        else:
            self.append_header = True
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = {k: v for k, v in (logs or {}).items() if k not in History.THROUGHPUT_KEYS}
        if self._file is None:
            self._open()
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self._writer is None:
            dialect = type("Dialect", (csv.excel,), {"delimiter": self.sep})
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self.keys], dialect=dialect)
            if self.append_header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: _cell(logs.get(k, "NA")) for k in self.keys}})
        self._file.flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._file = self._writer = None


def _cell(v: Any) -> Any:
    if isinstance(v, str) or not isinstance(v, (list, tuple, np.ndarray)) or np.ndim(v) == 0:
        return v
    return f'"[{", ".join(map(str, v))}]"'


class BackupAndRestore(Callback):
    """Keras' fault tolerance on padless' exact checkpoints: ``fit`` writes checkpoints to ``backup_dir``
    (every epoch; with an integer ``save_freq`` also every that many batches) and, when ``backup_dir``
    already holds one, resumes from it - weights, optimizer state, position in the epoch, random
    generators and callbacks (Keras restores the weights and the epoch only), so the resumed run ends
    bitwise where an uninterrupted one would. Its History holds the whole run, as after any padless resume
    (Keras': only the epochs after the restore). After a run that finishes, the checkpoints are deleted
    when ``delete_checkpoint`` (and the folder, once empty).

    Args:
        backup_dir: the checkpoint folder.
        save_freq: ``"epoch"`` or a number of batches.
        double_checkpoint: accepted (padless always keeps the previous checkpoint too).
        delete_checkpoint: delete the backup after a run that finished.
    """

    rank_zero_only = True

    def __init__(self, backup_dir: str | os.PathLike[str], save_freq: str | int = "epoch",
                 double_checkpoint: bool = False, delete_checkpoint: bool = True) -> None:
        if not backup_dir:
            raise ConfigError("Empty `backup_dir` argument passed")
        if save_freq != "epoch" and not (isinstance(save_freq, int) and not isinstance(save_freq, bool) and save_freq > 0):
            raise ConfigError(f"Invalid value for argument `save_freq`. Received: save_freq={save_freq}. Expected "
                              "either 'epoch' or an integer value.")
        self.backup_dir, self.save_freq = os.fspath(backup_dir), save_freq
        self.double_checkpoint, self.delete_checkpoint = bool(double_checkpoint), bool(delete_checkpoint)

    def fit_options(self) -> dict[str, Any]:
        """The ``fit`` options that implement this callback."""
        opts: dict[str, Any] = {"checkpoint_dir": self.backup_dir}
        if self.save_freq != "epoch":
            opts["checkpoint_every"] = int(self.save_freq)
        if has_checkpoints(self.backup_dir):
            opts["resume_from"] = self.backup_dir
        return opts

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.delete_checkpoint and Path(self.backup_dir).is_dir():
            clear_checkpoints(self.backup_dir)
            if not any(Path(self.backup_dir).iterdir()):
                Path(self.backup_dir).rmdir()


def backup_options(callbacks: Sequence[Any] | None, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the checkpoint settings of a :class:`BackupAndRestore` among ``callbacks``.

    Raises:
        ConfigError: two BackupAndRestore callbacks, or one together with ``checkpoint_dir``/``resume_from``.
    """
    found = [cb for cb in callbacks or [] if isinstance(cb, BackupAndRestore)]
    if not found:
        return options
    if len(found) > 1 or options.get("checkpoint_dir") is not None or options.get("resume_from") is not None:
        raise ConfigError("BackupAndRestore sets fit's checkpoint_dir and resume_from; use one BackupAndRestore and "
                          "no checkpoint_dir/resume_from of your own")
    return {**options, **found[0].fit_options()}


class LambdaCallback(Callback):
    """A callback from functions: ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch, logs)``,
    ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_train_batch_begin(batch, logs)``,
    ``on_train_batch_end(batch, logs)``; any other hook as a keyword (e.g. ``on_test_end=...``)."""

    def __init__(self, on_epoch_begin: Callable[..., Any] | None = None, on_epoch_end: Callable[..., Any] | None = None,
                 on_train_begin: Callable[..., Any] | None = None, on_train_end: Callable[..., Any] | None = None,
                 on_train_batch_begin: Callable[..., Any] | None = None,
                 on_train_batch_end: Callable[..., Any] | None = None, **kwargs: Any) -> None:
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_train_begin": on_train_begin,
                 "on_train_end": on_train_end, "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end, **kwargs}
        self._hooks = [k for k, fn in hooks.items() if fn is not None]
        for k, fn in hooks.items():
            if fn is not None:
                setattr(self, k, fn)

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save (the functions come from the resuming run)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""


class ProgbarLogger(Callback):
    """Accepted for Keras code that passes it: padless prints its own progress (``verbose=1``: a bar, ``2``: a
    line per epoch), so this callback adds nothing."""
