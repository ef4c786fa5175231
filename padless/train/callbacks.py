"""Training callbacks with Keras names and Keras' hook set: History, EarlyStopping, ModelCheckpoint.

Owns: :class:`Callback` (every Keras hook: ``on_(train|test|predict)_(begin|end)``,
``on_epoch_(begin|end)``, ``on_(train|test|predict)_batch_(begin|end)`` and the Keras 2 aliases
``on_batch_begin``/``on_batch_end``, each with a ``logs`` dict), :class:`CallbackList`, :class:`History`,
:class:`EarlyStopping` (Keras' patience rule: stop once ``wait >= patience``) and :class:`ModelCheckpoint`.

Does not own: the loops that call them (:mod:`padless.train.trainer`, :mod:`padless.train.inference`).

Example:
    >>> es = EarlyStopping(monitor="loss", patience=2)
    >>> class M: stop_training = False
    >>> es.set_model(M()); es.on_train_begin()
    >>> for epoch, loss in enumerate([1.0, 1.1, 1.2]):
    ...     es.on_epoch_end(epoch, {"loss": loss})
    >>> es.stopped_epoch, es.model.stop_training
    (2, True)
"""

from __future__ import annotations

import copy
import math
from typing import Any, Sequence

from padless.errors import ConfigError

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint"]

Logs = dict[str, float]


class Callback:
    """Base class: override any hook. ``self.model`` is set before training starts; ``self.params`` holds
    ``epochs``, ``steps`` and ``verbose``."""

    model: Any = None
    params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = dict(params)

    def on_train_begin(self, logs: Logs | None = None) -> None: ...
    def on_train_end(self, logs: Logs | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None: ...
    def on_test_begin(self, logs: Logs | None = None) -> None: ...
    def on_test_end(self, logs: Logs | None = None) -> None: ...
    def on_predict_begin(self, logs: Logs | None = None) -> None: ...
    def on_predict_end(self, logs: Logs | None = None) -> None: ...

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self.on_batch_end(batch, logs)

    def on_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: Logs | None = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: Logs | None = None) -> None: ...


_HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end",
          "on_predict_begin", "on_predict_end", "on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
          "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end")


class CallbackList:
    """Calls every callback's hook in order: ``callbacks.on_epoch_end(epoch, logs)`` and so on.

    Args:
        callbacks: the callbacks (each a :class:`Callback`).
        model: what the callbacks see as ``self.model``.
        params: ``epochs``, ``steps``, ``verbose`` (Keras ``callback.params``).
    """

    def __init__(self, callbacks: Sequence[Callback], model: Any, params: dict[str, Any] | None = None) -> None:
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise ConfigError(f"callbacks must be padless Callback objects; got {type(cb).__name__}")
            cb.set_model(model)
            cb.set_params(params or {})
        self.callbacks = list(callbacks)

    def __getattr__(self, hook: str) -> Any:
        if hook not in _HOOKS:
            raise AttributeError(hook)

        def call(*args: Any) -> None:
            *head, logs = args if args and isinstance(args[-1], (dict, type(None))) else (*args, None)
            for cb in self.callbacks:
                getattr(cb, hook)(*head, dict(logs) if logs is not None else {})

        return call


class History(Callback):
    """Records every epoch's logs: ``history.history["loss"]``, ``["val_accuracy"]``, ...

    Attributes:
        history: log name -> one value per epoch (losses and metrics only).
        epoch: the epoch numbers recorded.
        throughput: ``steps_per_second`` and ``padding_waste`` per epoch (kept apart from the losses, so
            ``pd.DataFrame(history.history).plot()`` shows the learning curves).
    """

    THROUGHPUT_KEYS = ("steps_per_second", "padding_waste")

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.throughput: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            target = self.throughput if k in self.THROUGHPUT_KEYS else self.history
            target.setdefault(k, []).append(float(v))


def _better(mode: str, monitor: str) -> str:
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.endswith("auc") or "precision" in monitor
                         or "recall" in monitor) else "min"
    if mode not in ("min", "max"):
        raise ConfigError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}")
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs (Keras rules).

    Args:
        monitor: a log name, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement after which training stops (``wait >= patience``, as Keras).
        verbose: 1 prints a line when stopping.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        baseline: training stops if the monitored value does not beat this within ``patience`` epochs.
        restore_best_weights: put back the weights of the best epoch when stopping or at the end.
        start_from_epoch: epochs to wait before counting (warm-up).
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        self.monitor, self.min_delta, self.patience = monitor, abs(float(min_delta)), int(patience)
        self.verbose = int(verbose)
        self.mode = _better(mode, monitor)
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = int(start_from_epoch)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.best_epoch = -1
        self.stopped_epoch: int | None = None
        self._best_state: dict[str, Any] | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait, self.best_epoch, self.stopped_epoch, self._best_state = 0, -1, None, None

    def _improved(self, v: float, ref: float) -> bool:
        return v < ref - self.min_delta if self.mode == "min" else v > ref + self.min_delta

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise ConfigError(
                f"EarlyStopping monitors {self.monitor!r} but the logs have {sorted(logs)}; "
                "pass validation_data or monitor another name"
            )
        if epoch < self.start_from_epoch:
            return
        v = logs[self.monitor]
        self.wait += 1
        if self._improved(v, self.best):
            self.best, self.best_epoch = v, epoch
            if self.restore_best_weights:
                self._best_state = copy.deepcopy(self.model.state_dict())
            if self.baseline is None or self._improved(v, self.baseline):
                self.wait = 0  # only when it beats both the baseline and the best so far (Keras)
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping")

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.restore_best_weights and self._best_state is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.load_state_dict(self._best_state)


class ModelCheckpoint(Callback):
    """Save the model after every epoch, every ``save_freq`` batches, or only when ``monitor`` improves.

    Args:
        filepath: target path; may hold ``{epoch}`` and log names, e.g. ``"ckpt-{epoch:02d}.safetensors"``.
        monitor: log name used with ``save_best_only``.
        verbose: 1 prints a line per save.
        save_best_only: save only when ``monitor`` improves.
        save_weights_only: save the weights only (``model.save_weights``) instead of the whole model.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        save_freq: ``"epoch"`` or a number of training batches.
    """

    def __init__(self, filepath: str, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", save_freq: str | int = "epoch") -> None:
        self.filepath, self.monitor, self.save_best_only = str(filepath), monitor, save_best_only
        self.verbose, self.save_weights_only = int(verbose), bool(save_weights_only)
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ConfigError(f"save_freq must be 'epoch' or a positive number of batches; got {save_freq!r}")
        self.save_freq = save_freq
        self.mode = _better(mode, monitor)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: list[str] = []
        self._batches = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if self.save_freq == "epoch":
            return
        self._batches += 1
        if self._batches % int(self.save_freq) == 0:
            self._save(self._epoch, logs or {})

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.save_freq == "epoch":
            self._save(epoch, logs or {})

    def _save(self, epoch: int, logs: Logs) -> None:
        if self.save_best_only:
            if self.monitor not in logs:
                raise ConfigError(f"ModelCheckpoint monitors {self.monitor!r} but the logs have {sorted(logs)}")
            v = logs[self.monitor]
            if not (v < self.best if self.mode == "min" else v > self.best):
                return
            self.best = v
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.saved.append(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")
