"""Training callbacks with Keras names and Keras' hook set: History, EarlyStopping, ModelCheckpoint.

Owns: :class:`Callback` (every Keras hook: ``on_(train|test|predict)_(begin|end)``,
``on_epoch_(begin|end)``, ``on_(train|test|predict)_batch_(begin|end)`` and the Keras 2 aliases
``on_batch_begin``/``on_batch_end``, each with a ``logs`` dict), :class:`CallbackList` (one logs dict per
call, shared by all callbacks as in Keras, so a log added by one - e.g. ``learning_rate`` - reaches
History), :class:`History`, :class:`EarlyStopping` (Keras 3's patience rule: stop once ``wait >=
patience``), :class:`ModelCheckpoint`, and the monitor rules shared by callbacks that watch a log
(:func:`check_mode`, :func:`monitor_mode`: ``"auto"`` = min for a loss, the metric's direction for a
metric; :func:`improved`: Keras' ``min_delta`` comparison).

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
import warnings
from typing import Any, Sequence

from padless.errors import ConfigError

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint", "check_mode", "monitor_mode",
           "improved"]

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
            shared = dict(logs) if logs is not None else {}  # one dict for all, as Keras: additions are seen by later ones
            for cb in self.callbacks:
                getattr(cb, hook)(*head, shared)

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


def check_mode(mode: str) -> str:
    """``mode`` as given, checked: ``"auto"``, ``"min"`` or ``"max"``."""
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}")
    return mode


def monitor_mode(monitor: str, mode: str, model: Any, owner: str) -> str:
    """``"min"`` or ``"max"`` for ``monitor`` (Keras 3's ``MonitorCallback``): an explicit mode, else ``min``
    for a loss and the compiled metric's direction for a metric.

    Raises:
        ConfigError: ``mode="auto"`` on a log that is neither the loss nor a compiled metric.
    """
    if mode in ("min", "max"):
        return mode
    name = monitor[len("val_"):] if monitor.startswith("val_") else monitor
    if name == "loss":
        return "min"
    compiled = getattr(model, "compiled", None)
    for m in getattr(compiled, "metrics", None) or []:
        if m.name == name and getattr(m, "direction", None) in ("up", "down"):
            return "max" if m.direction == "up" else "min"
    raise ConfigError(f"{owner} callback received monitor={monitor}, but padless isn't able to automatically determine "
                      "whether that metric should be maximized or minimized. Pass `mode='max'` in order to monitor "
                      "based on the highest metric value, or pass `mode='min'` in order to use the lowest value.")


def improved(value: float, reference: float | None, mode: str, min_delta: float) -> bool:
    """Keras' ``_is_improvement``: better than ``reference`` by more than ``min_delta`` (always, without one)."""
    if reference is None:
        return True
    return value + min_delta < reference if mode == "min" else value - min_delta > reference


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs (Keras 3's rules).

    Each counted epoch adds one to ``wait``; an improvement on the best so far resets it (only if it also
    beats ``baseline``, when given); training stops once ``wait >= patience`` (never after the first epoch).
    A missing ``monitor`` (e.g. ``val_loss`` on an epoch without validation) is skipped with a warning.

    Args:
        monitor: a log name, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement after which training stops.
        verbose: 1 prints a line when training stopped early and when weights are restored.
        mode: ``"auto"`` (loss: min; a metric: its direction), ``"min"`` or ``"max"``.
        baseline: the value to beat; ``wait`` only resets on epochs that beat it.
        restore_best_weights: put back the weights of the best epoch at the end of training.
        start_from_epoch: epochs to wait before counting (warm-up).
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        self.monitor, self.min_delta, self.patience = monitor, abs(float(min_delta)), int(patience)
        self.verbose = int(verbose)
        self.mode = check_mode(mode)
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = int(start_from_epoch)
        self.best: float | None = None
        self.wait = 0
        self.best_epoch = 0
        self.stopped_epoch = 0
        self._mode: str | None = None
        self._best_state: dict[str, Any] | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.best, self.wait, self.best_epoch, self.stopped_epoch, self._best_state = None, 0, 0, 0, None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self._mode is None:
            self._mode = monitor_mode(self.monitor, self.mode, self.model, "EarlyStopping")
        logs = logs or {}
        v = logs.get(self.monitor)
        if v is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. Available "
                          f"metrics are: {','.join(logs)}", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        self.wait += 1
        if improved(v, self.best, self._mode, self.min_delta):
            self.best, self.best_epoch = float(v), epoch
            if self.restore_best_weights:
                self._best_state = copy.deepcopy(self.model.state_dict())
            if self.baseline is None or improved(v, self.baseline, self._mode, self.min_delta):
                self.wait = 0  # only when it beats both the baseline and the best so far (Keras)
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if (self.stopped_epoch or 0) > 0 and self.verbose > 0:  # None: restored from an older checkpoint
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self._best_state is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.load_state_dict(self._best_state)


class ModelCheckpoint(Callback):
    """Save the model after every epoch, every ``save_freq`` batches, or only when ``monitor`` improves.

    Args:
        filepath: target path; may hold ``{epoch}``, ``{batch}`` (batch saves) and log names, e.g.
            ``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``.
        monitor: log name used with ``save_best_only``.
        verbose: 1 prints a line per save.
        save_best_only: save only when ``monitor`` improves (a missing ``monitor`` saves, with a warning,
            as Keras).
        save_weights_only: save the weights only (``model.save_weights``) instead of the whole model.
        mode: ``"auto"`` (loss: min; a metric: its direction), ``"min"`` or ``"max"``.
        save_freq: ``"epoch"`` or a number of training batches.
        initial_value_threshold: the value ``monitor`` must beat for the first save (``save_best_only``).
    """

    def __init__(self, filepath: str, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", save_freq: str | int = "epoch",
                 initial_value_threshold: float | None = None) -> None:
        self.filepath, self.monitor, self.save_best_only = str(filepath), monitor, save_best_only
        self.verbose, self.save_weights_only = int(verbose), bool(save_weights_only)
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ConfigError(f"save_freq must be 'epoch' or a positive number of batches; got {save_freq!r}")
        self.save_freq = save_freq
        self.mode = check_mode(mode)
        self.initial_value_threshold = initial_value_threshold
        self.best: float | None = None if initial_value_threshold is None else float(initial_value_threshold)
        self.saved: list[str] = []
        self._batches = 0
        self._epoch = 0
        self._mode: str | None = None

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if self.save_freq == "epoch":
            return
        self._batches += 1
        if self._batches % int(self.save_freq) == 0:
            self._save(self._epoch, batch, logs or {})

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _save(self, epoch: int, batch: int | None, logs: Logs) -> None:
        fields = dict(logs) if batch is None or "batch" in logs else {**logs, "batch": batch + 1}
        path = self.filepath.format(epoch=epoch + 1, **fields)
        if self.save_best_only:
            if self._mode is None:
                self._mode = monitor_mode(self.monitor, self.mode, self.model, "ModelCheckpoint")
            v = logs.get(self.monitor)
            if v is None:
                warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
            elif improved(v, self.best, self._mode, 0.0):
                if self.verbose:
                    best = "None" if self.best is None else f"{self.best:.5f}"
                    print(f"Epoch {epoch + 1}: {self.monitor} improved from {best} to {v:.5f}, saving model to {path}")
                self.best = float(v)
            else:
                if self.verbose:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
        elif self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.saved.append(path)
