"""Keras code as Keras users write it, with only the imports changed (``keras`` -> ``padless``): it runs, and
gives Keras' names, shapes and semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest

# import keras / from keras import ...  ->
import padless as keras
from padless import callbacks, losses, metrics, optimizers
from padless.layers import GRU, LSTM, Dense, Masking

RNG = np.random.default_rng(0)
X = [RNG.standard_normal((int(t), 4)).astype("float32") for t in RNG.integers(3, 12, 40)]
Y_BIN = np.array([float(x[:, 0].mean() > 0) for x in X], dtype="float32")
Y_REG = np.array([[x[:, 1].sum()] for x in X], dtype="float32")
Y_CLS = np.array([int(np.argmax(x.mean(0)[:3])) for x in X])


def test_binary_classifier_with_confusion_metrics_and_callbacks(tmp_path):
    model = keras.Sequential([
        LSTM(8, input_shape=(None, 4)),
        Dense(1, activation="sigmoid"),
    ])
    model.compile(
        optimizer=optimizers.Adam(learning_rate=1e-2),
        loss=losses.BinaryCrossentropy(),
        metrics=[metrics.AUC(), metrics.Precision(), metrics.Recall(), "accuracy"],
    )
    history = model.fit(
        X, Y_BIN, epochs=4, batch_size=8, validation_split=0.25, verbose=0,
        callbacks=[
            callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=2, restore_best_weights=True),
            callbacks.ModelCheckpoint(str(tmp_path / "best.safetensors"), monitor="val_auc", save_best_only=True),
            callbacks.CSVLogger(str(tmp_path / "training.log")),
        ],
    )
    assert list(history.history)[:5] == ["loss", "auc", "precision", "recall", "accuracy"]
    assert "val_auc" in history.history and all(0 <= v <= 1 for v in history.history["val_auc"])
    best = keras.load_model(tmp_path / "best.safetensors")
    assert [m.name for m in best.compiled.metrics] == ["auc", "precision", "recall", "accuracy"]
    header = (tmp_path / "training.log").read_text().splitlines()[0].split(",")
    assert header[:3] == ["epoch", "accuracy", "auc"] and "val_recall" in header


def test_regression_with_huber_rmse_and_reduce_lr():
    model = keras.Sequential([GRU(8, input_shape=(None, 4)), Dense(1)])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True, clipnorm=1.0),
                  loss=losses.Huber(delta=1.0), metrics=[metrics.RootMeanSquaredError(), "mae"])
    reduce_lr = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=1, min_lr=0.001)
    history = model.fit(X, Y_REG, validation_data=(X[:10], Y_REG[:10]), epochs=3, batch_size=10, verbose=0,
                        callbacks=[reduce_lr, callbacks.TerminateOnNaN()])
    assert set(history.history) == {"loss", "root_mean_squared_error", "mae", "val_loss",
                                    "val_root_mean_squared_error", "val_mae", "learning_rate"}
    assert float(model.optimizer.learning_rate) <= 0.01
    loss, rmse, mae = model.evaluate(X, Y_REG, verbose=0)
    assert rmse >= mae * 0.99  # RMSE >= MAE


def test_logits_model_with_sparse_crossentropy_from_logits():
    model = keras.Sequential([Masking(mask_value=0.0, input_shape=(None, 4)), GRU(8), Dense(3)])
    model.compile(optimizer="adam", loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy", metrics.SparseTopKCategoricalAccuracy(k=2)])
    padded = np.zeros((40, 11, 4), "float32")
    for i, x in enumerate(X):
        padded[i, : len(x)] = x
    model.fit(padded, Y_CLS, epochs=2, batch_size=8, verbose=0)
    logits = model.predict(padded, verbose=0)
    assert logits.shape == (40, 3) and not np.allclose(logits.sum(1), 1.0)  # raw logits, as Keras
    loss, acc, top2 = model.evaluate(padded, Y_CLS, verbose=0)
    assert acc == pytest.approx(float(np.mean(logits.argmax(1) == Y_CLS)))
    assert top2 >= acc


def test_custom_training_loop_with_train_on_batch():
    model = keras.Sequential([GRU(6, input_shape=(None, 4)), Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.RMSprop(learning_rate=1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    for epoch in range(2):
        for i in range(0, 40, 10):
            loss, acc = model.train_on_batch(X[i:i + 10], Y_CLS[i:i + 10])
        val = model.test_on_batch(X[:10], Y_CLS[:10], return_dict=True)
    assert model.optimizer.iterations == 8 and set(val) == {"loss", "accuracy"}
    assert model.predict_on_batch(X[:5]).shape == (5, 3)


def test_custom_callback_in_keras_style():
    class LowerLROnEpochEnd(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            lr = float(self.model.optimizer.learning_rate)
            self.model.optimizer.learning_rate.assign(lr * 0.5)
            if logs.get("loss") is not None and epoch == 1:
                self.model.stop_training = True

    model = keras.Sequential([GRU(4, input_shape=(None, 4)), Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy")
    history = model.fit(X, Y_BIN, epochs=5, verbose=0, callbacks=[LowerLROnEpochEnd()])
    assert history.epoch == [0, 1] and float(model.optimizer.learning_rate) == pytest.approx(0.0025)


def test_keras_docs_learning_rate_scheduler_and_schedules():
    def scheduler(epoch, lr):  # the Keras documentation's example
        if epoch < 1:
            return lr
        return lr * math.exp(-0.1)

    model = keras.Sequential([GRU(4, input_shape=(None, 4)), Dense(1)])
    model.compile(optimizer=optimizers.SGD(), loss="mse")
    assert float(model.optimizer.learning_rate) == 0.01
    history = model.fit(X, Y_REG, epochs=3, verbose=0, callbacks=[callbacks.LearningRateScheduler(scheduler)])
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.01 * math.exp(-0.1), 0.01 * math.exp(-0.2)])

    warmup = optimizers.schedules.CosineDecay(0.0, decay_steps=20, warmup_target=0.1, warmup_steps=5)
    model.compile(optimizer=optimizers.AdamW(learning_rate=warmup, weight_decay=0.004), loss="mse")
    model.fit(X, Y_REG, epochs=1, batch_size=8, verbose=0)  # 5 steps: warmup done
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)


def test_save_load_and_continue_training(tmp_path):
    model = keras.Sequential([GRU(4, input_shape=(None, 4)), Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Nadam(learning_rate=2e-3), loss="sparse_categorical_crossentropy",
                  metrics=[metrics.SparseCategoricalAccuracy()])
    model.fit(X, Y_CLS, epochs=1, verbose=0)
    model.save(tmp_path / "model.safetensors")
    reloaded = keras.load_model(tmp_path / "model.safetensors")
    assert type(reloaded.optimizer) is optimizers.Nadam and float(reloaded.optimizer.learning_rate) == 2e-3
    np.testing.assert_allclose(reloaded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)
    history = reloaded.fit(X, Y_CLS, epochs=1, verbose=0)
    assert list(history.history) == ["loss", "sparse_categorical_accuracy"]
