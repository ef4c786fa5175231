"""Callbacks: Keras 3's hook order and logs, EarlyStopping's counting rules, ReduceLROnPlateau,
LearningRateScheduler, CSVLogger's format, TerminateOnNaN, ModelCheckpoint, History."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

import padless
from padless import ConfigError, DataError
from padless.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgbarLogger,
    ReduceLROnPlateau,
    TerminateOnNaN,
)

from _kit import classes, model, sequences

HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end",
         "on_predict_begin", "on_predict_end", "on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
         "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end", "on_batch_begin", "on_batch_end"]


class Recorder(Callback):
    """Records (hook, index) for every hook; checks that each one gets a logs dict."""

    def __init__(self):
        self.calls = []
        self.logs = {}

    def __getattribute__(self, name):
        if name in HOOKS:
            base = object.__getattribute__(self, "__class__").__mro__[1].__dict__[name]

            def hook(*args):
                *index, logs = args
                assert isinstance(logs, dict), (name, logs)
                self.calls.append((name, *index))
                self.logs.setdefault(name, []).append(dict(logs))
                base(self, *args)  # the base class forwards on_train_batch_* to on_batch_* (Keras' aliases)
            return hook
        return object.__getattribute__(self, name)


def _compiled():
    m = model()
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    return m


def test_fit_hook_order_is_keras():
    xs, y = sequences(16), classes(16)
    rec = Recorder()
    m = _compiled()
    m.fit(xs, y, batch_size=8, epochs=2, validation_data=(xs[:8], y[:8]), callbacks=[rec], verbose=0)
    epoch = lambda e: [("on_epoch_begin", e),  # noqa: E731
                       ("on_train_batch_begin", 0), ("on_batch_begin", 0), ("on_train_batch_end", 0), ("on_batch_end", 0),
                       ("on_train_batch_begin", 1), ("on_batch_begin", 1), ("on_train_batch_end", 1), ("on_batch_end", 1),
                       ("on_test_begin",), ("on_test_batch_begin", 0), ("on_test_batch_end", 0), ("on_test_end",),
                       ("on_epoch_end", e)]
    # Keras 3 (keras/src/backend/torch/trainer.py fit + evaluate): validation runs inside the epoch, as a test loop
    assert rec.calls == [("on_train_begin",), *epoch(0), *epoch(1), ("on_train_end",)]
    assert set(rec.logs["on_train_batch_end"][0]) >= {"loss", "accuracy"}
    assert set(rec.logs["on_test_end"][0]) == {"loss", "accuracy"}
    last = rec.logs["on_epoch_end"][-1]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(last)
    assert rec.logs["on_train_end"] == [last]  # Keras passes the last epoch's logs
    assert rec.params == {"verbose": 0, "epochs": 2, "steps": 2}


def test_evaluate_and_predict_hook_order_is_keras():
    xs, y = sequences(8), classes(8)
    m = _compiled()
    rec = Recorder()
    m.evaluate(xs, y, batch_size=8, callbacks=[rec], verbose=0)
    assert rec.calls == [("on_test_begin",), ("on_test_batch_begin", 0), ("on_test_batch_end", 0), ("on_test_end",)]
    rec = Recorder()
    m.predict(xs, batch_size=8, callbacks=[rec], verbose=0)
    assert rec.calls == [("on_predict_begin",), ("on_predict_batch_begin", 0), ("on_predict_batch_end", 0),
                         ("on_predict_end",)]


def test_history_holds_losses_and_metrics_and_params():
    m = _compiled()
    h = m.fit(sequences(), classes(), batch_size=4, epochs=2, validation_split=0.25, verbose=0)
    assert list(h.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert set(h.throughput) == {"steps_per_second", "padding_waste"}
    assert h.params == {"verbose": 0, "epochs": 2, "steps": 3} and h.epoch == [0, 1]


# ------------------------------------------------------------------ EarlyStopping, driven by hand
class _Model:
    stop_training = False
    compiled = None


def _drive(es, values, key="val_loss"):
    es.set_model(_Model())
    es.on_train_begin()
    for epoch, v in enumerate(values):
        es.on_epoch_end(epoch, {key: v})
        if es.model.stop_training:
            return epoch
    return None


@pytest.mark.parametrize("values, kwargs, stop", [
    ([1.0, 0.9, 0.95, 0.96, 0.97], dict(patience=2), 3),      # wait 1, 2 -> stop when wait >= patience
    ([1.0, 0.9, 0.95, 0.96, 0.97], dict(patience=3), 4),
    ([1.0, 1.1, 0.9], dict(patience=0), 1),                   # patience 0: the first epoch that does not improve
    ([1.0, 1.1], dict(patience=0, mode="max"), None),         # max: 1.1 improves
    ([1.0, 0.95, 0.92], dict(patience=1, min_delta=0.1), 1),  # 0.95 is not better by more than 0.1
    ([0.8, 0.7, 0.75], dict(patience=2, baseline=0.5), 2),   # improvements that miss the baseline do not reset wait
    ([0.8, 0.7, 0.75], dict(patience=2), None),
    ([0.8, 0.4, 0.45, 0.46], dict(patience=2, baseline=0.5), 3),  # beating it resets wait (at epoch 1)
    ([5.0, 6.0, 7.0, 1.0, 1.1, 1.2], dict(patience=1, start_from_epoch=3), 4),
    ([1.0] * 5, dict(patience=0), 1),                          # no change is no improvement
])
def test_early_stopping_counts_like_keras(values, kwargs, stop):
    es = EarlyStopping(**kwargs)
    assert _drive(es, values) == stop
    assert es.stopped_epoch == (stop or 0)


def test_early_stopping_in_fit_restores_best_weights_and_skips_missing_monitor(capsys):
    score = [3.0, 1.0, 2.0, 2.5, 2.8, 3.0]
    seen = {}
    inject = LambdaCallback(on_epoch_end=lambda e, logs: logs.update(score=score[e]))  # logs are shared, as Keras
    keep = LambdaCallback(on_epoch_end=lambda e, logs: seen.__setitem__(e, {k: v.clone() for k, v in
                                                                             m.state_dict().items()}))
    es = EarlyStopping(monitor="score", mode="min", patience=2, restore_best_weights=True, verbose=1)
    m = _compiled()
    h = m.fit(sequences(), classes(), epochs=6, verbose=0, callbacks=[inject, keep, es])
    assert h.epoch == [0, 1, 2, 3] and es.stopped_epoch == 3 and es.best == 1.0 and h.history["score"] == score[:4]
    for k, v in m.state_dict().items():
        assert torch.equal(v, seen[1][k])
    assert "Epoch 4: early stopping" in capsys.readouterr().out
    # val_loss exists only on validation epochs: the other epochs are skipped with a warning, as Keras
    m2 = _compiled()
    with pytest.warns(UserWarning, match="`val_loss` which is not available"):
        h = m2.fit(sequences(), classes(), epochs=2, validation_split=0.25, validation_freq=2, verbose=0,
                   callbacks=[EarlyStopping(patience=0)])
    assert len(h.epoch) == 2
    with pytest.raises(ConfigError, match="maximized or minimized"):
        m2.fit(sequences(), classes(), epochs=1, verbose=0, callbacks=[EarlyStopping(monitor="steps_per_second")])


def test_auto_mode_follows_the_metric_direction():
    m = _compiled()
    m.compile("adam", "sparse_categorical_crossentropy", ["acc", padless.metrics.AUC(name="a"), "mae"])
    es = EarlyStopping(monitor="val_acc", patience=0)
    es.set_model(m)
    es.on_train_begin()
    es.on_epoch_end(0, {"val_acc": 0.5})
    es.on_epoch_end(1, {"val_acc": 0.6})  # larger accuracy is better
    assert not m.stop_training
    for monitor, expect in [("a", "max"), ("val_mae", "min"), ("loss", "min")]:
        from padless.train.callbacks import monitor_mode

        assert monitor_mode(monitor, "auto", m, "X") == expect


# ------------------------------------------------------------------ ReduceLROnPlateau
class _Opt:
    def __init__(self, lr):
        self.learning_rate = lr


def test_reduce_lr_on_plateau_follows_keras():
    cb = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1, min_lr=0.03, min_delta=0.0)
    m = _Model()
    m.optimizer = _Opt(0.2)
    cb.set_model(m)
    cb.on_train_begin()
    values = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6]
    lrs, logged = [], []
    for epoch, v in enumerate(values):
        logs = {"val_loss": v}
        cb.on_epoch_end(epoch, logs)
        lrs.append(m.optimizer.learning_rate)
        logged.append(logs["learning_rate"])
    # Keras 3's rule, epoch by epoch (w: wait, cd: cooldown counter; a cooldown epoch resets wait, then counts):
    # 0 best | 1 w1 | 2 w2 -> 0.1, cd1 | 3 cd0 w1 | 4 w2 -> 0.05, cd1 | 5 cd0 w1 | 6 best w0 | 7 w1
    # 8 w2 -> max(0.025, min_lr) = 0.03, cd1 | 9 cd0 w1 | 10 w2 -> stays 0.03 | 11 cd0 w1
    assert lrs == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.03, 0.03, 0.03, 0.03])
    assert logged[4] == pytest.approx(0.1)  # the logs get the rate the epoch ran with (Keras 3)
    with pytest.raises(ConfigError, match="factor >= 1.0"):
        ReduceLROnPlateau(factor=1.0)


def test_lr_callbacks_in_fit_log_the_learning_rate():
    m = _compiled()
    h = m.fit(sequences(), classes(), epochs=3, verbose=0,
              callbacks=[LearningRateScheduler(lambda epoch, lr: 0.01 * 0.5**epoch)])
    assert h.history["learning_rate"] == pytest.approx([0.01, 0.005, 0.0025])
    h = m.fit(sequences(), classes(), epochs=2, verbose=0, callbacks=[LearningRateScheduler(lambda epoch: 1e-3)])
    assert h.history["learning_rate"] == pytest.approx([1e-3, 1e-3])  # the 1-argument form
    with pytest.raises(ConfigError, match="should be a float"):
        m.fit(sequences(), classes(), epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: 1)])
    m.compile("adam", "sparse_categorical_crossentropy")
    h = m.fit(sequences(), classes(), epochs=3, verbose=0, callbacks=[ReduceLROnPlateau("loss", patience=0,
                                                                                         min_delta=100.0)])
    assert h.history["learning_rate"] == pytest.approx([1e-3, 1e-3, 1e-4])  # reduced at the end of epoch 1
    assert float(m.optimizer.learning_rate) == pytest.approx(1e-5)


# ------------------------------------------------------------------ CSVLogger
def test_csv_logger_writes_keras_rows(tmp_path):
    f = tmp_path / "log.csv"
    m = _compiled()
    h = m.fit(sequences(), classes(), epochs=2, verbose=0, validation_split=0.25, callbacks=[CSVLogger(f)])
    rows = list(csv.reader(f.open()))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]  # sorted log names
    assert [r[0] for r in rows[1:]] == ["0", "1"]
    assert float(rows[2][2]) == h.history["loss"][1]
    m.fit(sequences(), classes(), epochs=1, verbose=0, callbacks=[CSVLogger(f, separator=";", append=True)])
    lines = f.read_text().splitlines()
    assert len(lines) == 4 and lines[3].startswith("0;") and lines[3].endswith(";NA;NA")  # no header again
    g = tmp_path / "no_val.csv"
    m.fit(sequences(), classes(), epochs=1, verbose=0, callbacks=[CSVLogger(g)])
    assert g.read_text().splitlines()[0] == "epoch,accuracy,loss,val_accuracy,val_loss"


# ------------------------------------------------------------------ TerminateOnNaN
def _nan_after(k):
    calls = {"n": 0}

    def loss(y_true, y_pred):
        calls["n"] += 1
        v = torch.mean((y_pred - y_true) ** 2, dim=-1)
        return v * float("nan") if calls["n"] == k else v

    return loss


def test_terminate_on_nan_stops_after_the_batch(capsys):
    xs, y = sequences(16), np.linspace(0, 1, 16).astype(np.float32)
    m = model(out=1, activation=None)
    m.compile("sgd", _nan_after(3))
    h = m.fit(xs, y, batch_size=4, epochs=3, verbose=0, callbacks=[TerminateOnNaN()])
    assert h.epoch == [0] and math.isnan(h.history["loss"][0])
    assert all(bool(torch.isfinite(v).all()) for v in m.state_dict().values())  # the NaN step was not applied
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out
    m.compile("sgd", _nan_after(2))
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 1"):
        m.fit(xs, y, batch_size=4, verbose=0, callbacks=[TerminateOnNaN(raise_error=True)])
    m.compile("sgd", _nan_after(2))
    with pytest.raises(DataError, match="loss became nan at batch 1"):  # without the callback padless refuses
        m.fit(xs, y, batch_size=4, verbose=0)


# ------------------------------------------------------------------ ModelCheckpoint
def test_model_checkpoint_options(tmp_path):
    m = _compiled()
    xs, y = sequences(), classes()
    cb = ModelCheckpoint(str(tmp_path / "w-{epoch}-{batch}.safetensors"), save_weights_only=True, save_freq=3)
    m.fit(xs, y, batch_size=4, epochs=2, verbose=0, callbacks=[cb])  # 8 batches: saves after batches 3 and 6
    assert [p.split("/")[-1] for p in cb.saved] == ["w-1-3.safetensors", "w-2-2.safetensors"]
    m.load_weights(cb.saved[-1])
    best = ModelCheckpoint(str(tmp_path / "best.safetensors"), monitor="loss", save_best_only=True,
                           initial_value_threshold=-1.0)
    m.fit(xs, y, epochs=2, verbose=0, callbacks=[best])
    assert best.saved == []  # nothing beats a loss of -1
    cb = ModelCheckpoint(str(tmp_path / "m.safetensors"), save_best_only=True, verbose=1)  # no val_loss: saves
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available"):
        m.fit(xs, y, epochs=1, verbose=0, callbacks=[cb])
    assert padless.load_model(cb.saved[0]).count_params() == m.count_params()


def test_lambda_and_progbar_callbacks():
    seen = []
    cb = LambdaCallback(on_train_begin=lambda logs: seen.append("begin"),
                        on_epoch_end=lambda epoch, logs: seen.append(epoch),
                        on_test_end=lambda logs: seen.append(sorted(logs)))
    m = _compiled()
    m.fit(sequences(), classes(), epochs=2, validation_split=0.25, verbose=0, callbacks=[cb, ProgbarLogger()])
    assert seen == ["begin", ["accuracy", "loss"], 0, ["accuracy", "loss"], 1]
