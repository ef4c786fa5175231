"""The user's Keras program runs unchanged (only the import differs), plus the length-60 fit and one fit
on a list mixing lengths; the parameter count never changes."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np

from padless import Sequential
from padless.layers import LSTM, Dense


def test_seed_program_unchanged(capsys):
    model = Sequential()
    model.add(LSTM(100, return_sequences=True, input_shape=(None, 100)))
    model.add(LSTM(100))
    model.add(Dense(2, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    before = model.count_params()
    assert before == 161_802  # Keras: 161,002 (PyTorch keeps two bias vectors per gate)

    n = 400  # the seed uses 1000; fewer keeps the suite fast, nothing else changes
    x_train = np.random.random((n, 50, 100)); y_train = np.random.random((n, 2))
    x_train_2 = np.random.random((n, 10, 100)); y_train_2 = np.random.random((n, 2))
    x_val = np.random.random((200, 50, 100)); y_val = np.random.random((200, 2))
    h1 = model.fit(x_train, y_train, batch_size=200, epochs=1, shuffle=False, validation_data=(x_val, y_val), verbose=1)
    assert model.count_params() == before
    model.fit(x_train_2, y_train_2, batch_size=200, epochs=1, shuffle=False, validation_data=(x_val, y_val), verbose=1)
    assert model.count_params() == before
    score = model.evaluate(x_val, y_val, batch_size=200, verbose=1)
    assert len(score) == 2 and np.isfinite(score[0]) and 0.0 <= score[1] <= 1.0

    x_train_3 = np.random.random((n, 60, 100)); y_train_3 = np.random.random((n, 2))
    model.fit(x_train_3, y_train_3, batch_size=200, epochs=1, shuffle=False, validation_data=(x_val, y_val), verbose=0)
    mixed = list(x_train) + list(x_train_2) + list(x_train_3)
    h4 = model.fit(mixed, np.concatenate([y_train, y_train_2, y_train_3]), batch_size=200, epochs=1, verbose=0)
    assert model.count_params() == before
    assert set(h1.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert h4.throughput["padding_waste"][0] == 0.0
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "val_accuracy" in out
    preds = model.predict([x_train_2[0], x_train_3[0], x_train[0]], verbose=0)
    assert preds.shape == (3, 2) and np.allclose(preds.sum(1), 1.0, atol=1e-5)


def test_summary_shows_per_layer_counts():
    model = Sequential([LSTM(100, return_sequences=True, input_shape=(None, 100)), LSTM(100), Dense(2, activation="softmax")])
    text = model.summary(print_fn=None)
    assert "80,800" in text and "202" in text and "161,802" in text
    assert "(None, None, 100)" in text and "(None, 2)" in text


def test_example_script_runs():
    path = Path(__file__).resolve().parents[2] / "examples" / "seed_scenario.py"
    ns = runpy.run_path(str(path))
    model = ns["main"](n=200, verbose=0)
    assert model.count_params() == 161_802
