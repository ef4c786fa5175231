"""Training callbacks with Keras names: History, EarlyStopping, ModelCheckpoint.

Owns: :class:`Callback` (hooks), :class:`CallbackList`, :class:`History`, :class:`EarlyStopping`,
:class:`ModelCheckpoint`. Does not own: the loop that calls them (``padless.train.loop``).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Sequence

from padless.errors import ConfigError

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint"]


class Callback:
    """Base class: override any hook. ``self.model`` is set before training starts."""

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None: ...
    def on_train_end(self, logs: dict[str, float] | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None: ...


class CallbackList:
    """Calls every callback's hook in order."""

    def __init__(self, callbacks: Sequence[Callback], model: Any) -> None:
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise ConfigError(f"callbacks must be padless Callback objects; got {type(cb).__name__}")
            cb.set_model(model)
        self.callbacks = list(callbacks)

    def on_train_begin(self) -> None:
        for cb in self.callbacks:
            cb.on_train_begin()

    def on_train_end(self) -> None:
        for cb in self.callbacks:
            cb.on_train_end()

    def on_epoch_begin(self, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_batch_end(self, batch: int) -> None:
        for cb in self.callbacks:
            cb.on_batch_end(batch)


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]``, ``["val_accuracy"]``, ..."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))


def _better(mode: str, monitor: str) -> str:
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
    if mode not in ("min", "max"):
        raise ConfigError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}")
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: a log name, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        restore_best_weights: put back the weights of the best epoch when stopping or at the end.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, mode: str = "auto",
                 restore_best_weights: bool = False) -> None:
        self.monitor, self.min_delta, self.patience = monitor, abs(float(min_delta)), int(patience)
        self.mode = _better(mode, monitor)
        self.restore_best_weights = restore_best_weights
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.best_epoch = -1
        self.stopped_epoch: int | None = None
        self._best_state: dict[str, Any] | None = None

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait, self.best_epoch, self.stopped_epoch, self._best_state = 0, -1, None, None

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise ConfigError(
                f"EarlyStopping monitors {self.monitor!r} but the logs have {sorted(logs)}; "
                "pass validation_data or monitor another name"
            )
        v = logs[self.monitor]
        improved = v < self.best - self.min_delta if self.mode == "min" else v > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.wait = v, epoch, 0
            if self.restore_best_weights:
                self._best_state = copy.deepcopy(self.model.state_dict())
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self.restore_best_weights and self._best_state is not None:
            self.model.load_state_dict(self._best_state)


class ModelCheckpoint(Callback):
    """Save the model after every epoch (or only when ``monitor`` improves).

    Args:
        filepath: target path; may hold ``{epoch}`` and log names, e.g. ``"ckpt-{epoch:02d}.safetensors"``.
        monitor: log name used with ``save_best_only``.
        save_best_only: save only when ``monitor`` improves.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
    """

    def __init__(self, filepath: str, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto") -> None:
        self.filepath, self.monitor, self.save_best_only = str(filepath), monitor, save_best_only
        self.mode = _better(mode, monitor)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: list[str] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        if self.save_best_only:
            if self.monitor not in logs:
                raise ConfigError(f"ModelCheckpoint monitors {self.monitor!r} but the logs have {sorted(logs)}")
            v = logs[self.monitor]
            if not (v < self.best if self.mode == "min" else v > self.best):
                return
            self.best = v
        path = self.filepath.format(epoch=epoch + 1, **logs)
        self.model.save(path)
        self.saved.append(path)
