"""The sequence layers in whole models: a convolutional Sequential trains, saves and loads with identical
predictions and exports; a strided stack followed by an LSTM predicts each sequence as if it ran alone,
whatever the batching; a causal convolution streams (``Stream``) and runs under truncated BPTT with the
same outputs as one pass over each whole sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import padless
from padless import Sequential
from padless.layers import (
    LSTM,
    AttentionPooling1D,
    BatchNormalization,
    Conv1D,
    Dense,
    GlobalAveragePooling1D,
    LayerNormalization,
    MaxPooling1D,
    MultiHeadAttention,
    SpatialDropout1D,
    TimeDistributed,
)
from padless.nn import Stream

torch.set_num_threads(1)
F = 3


def _data(n=24, seed=0, low=1, high=30):
    rng = np.random.default_rng(seed)
    x = [rng.standard_normal((int(t), F)).astype(np.float32) for t in rng.integers(low, high, n)]
    y = np.array([int(s[:, 0].mean() > 0) for s in x])
    return x, y


def _alone(model, x):
    """Each sequence predicted alone (a batch of one)."""
    return np.concatenate([model.predict([s], verbose=0, batch_size=1) for s in x])


def test_conv_batchnorm_stack_fits_saves_loads_exports(tmp_path):
    torch.manual_seed(0)
    m = Sequential([Conv1D(8, 3, padding="same", activation="relu", input_shape=(None, F)), BatchNormalization(),
                    Conv1D(8, 3, strides=2, padding="causal"), SpatialDropout1D(0.1), GlobalAveragePooling1D(),
                    Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data()
    before = m.get_weights()
    hist = m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert len(hist.history["loss"]) == 2 and np.isfinite(hist.history["loss"]).all()
    bn = m.layers[1]
    assert bn.moving_mean.abs().sum() > 0  # moving statistics moved during fit
    assert any(not np.array_equal(a, b) for a, b in zip(before, m.get_weights(), strict=True))
    p = m.predict(x, verbose=0)
    np.testing.assert_allclose(_alone(m, x), p, atol=1e-5)  # inference: batching never changes a row
    m.save(tmp_path / "m.safetensors")
    loaded = padless.load_model(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), p)
    path = m.export(tmp_path / "m.onnx")
    assert padless.export.check_export(m, path, x) < 1e-5


def test_strided_stack_then_lstm_equals_each_sequence_alone(tmp_path):
    torch.manual_seed(1)
    m = Sequential([Conv1D(6, 4, strides=2, padding="same", input_shape=(None, F)), MaxPooling1D(2, padding="same"),
                    Conv1D(5, 2, padding="valid", activation="tanh"), LSTM(4, return_sequences=True),
                    MultiHeadAttention(2, 3, causal=True), LayerNormalization(), AttentionPooling1D(3), Dense(2)])
    x, y = _data(30, seed=2, low=5, high=60)  # >= 5 steps: 3 after the strides, 2 after the valid kernel
    p = m.predict(x, verbose=0, batch_size=16)
    np.testing.assert_allclose(_alone(m, x), p, atol=1e-5)
    np.testing.assert_allclose(m.predict(x, verbose=0, batch_size=7, batching="random"), p, atol=1e-5)
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert padless.export.check_export(m, m.export(tmp_path / "s.onnx"), x) < 1e-5
    with pytest.raises(padless.errors.DataError, match=r"Conv1D: sequence \d+ of the batch has 1 step.*padding='same'"):
        m.predict([np.ones((2, F), np.float32)], verbose=0)  # 2 -> 1 -> 1 step: the valid kernel of 2 does not fit


def _causal_model():
    torch.manual_seed(2)
    return Sequential([Conv1D(4, 3, padding="causal", dilation_rate=2, input_shape=(None, F)),
                       LSTM(5, return_sequences=True), Conv1D(3, 2, padding="causal", activation="relu"),
                       TimeDistributed(Dense(2))])


def test_causal_conv_streams_chunk_by_chunk():
    m = _causal_model()
    assert m.non_causal_layer() is None
    assert [type(layer).__name__ for layer in m.state_layers] == ["Conv1D", "LSTM", "Conv1D"]
    x, _ = _data(4, seed=3, low=3, high=12)
    ref = m.predict(x, verbose=0)
    s = Stream(m)
    got: list[list[np.ndarray]] = [[] for _ in x]
    pos = [0] * len(x)
    for cut in ([1, 2, 1, 3], [2, 1, 5, 1], [100] * 4):  # chunks shorter than the context, then the rest
        feed = {i: x[i][pos[i]: pos[i] + c] for i, c in enumerate(cut) if pos[i] < len(x[i])}
        for i, out in s.feed_many(feed).items():
            got[i].append(out)
            pos[i] += len(feed[i])
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(np.concatenate(g), r, atol=1e-5)


def test_causal_conv_under_truncated_bptt():
    m = _causal_model()
    x, _ = _data(10, seed=4, low=2, high=25)
    ref = m.predict(x, verbose=0)
    for k in (3, 7):
        got = m.predict(x, verbose=0, tbptt=k, batch_size=4)
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(g, r, atol=1e-5)
    m.compile("adam", "mse")
    y = [np.ones((len(s), 2), np.float32) for s in x]
    hist = m.fit(x, y, epochs=1, batch_size=4, tbptt=5, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    with pytest.raises(padless.errors.ConfigError, match="tbptt cannot train Conv1D: padding='same'"):
        Sequential([Conv1D(2, 3, padding="same", input_shape=(None, F)), LSTM(2)]).predict(x, tbptt=3, verbose=0)
    att = Sequential([MultiHeadAttention(2, 2, causal=True, input_shape=(None, F)), Dense(1)])
    with pytest.raises(padless.errors.ConfigError, match="tbptt cannot train MultiHeadAttention.*no attention cache"):
        att.predict(x, tbptt=3, verbose=0)  # a causal mask, but each step needs all earlier steps
    with pytest.raises(padless.errors.ConfigError, match="cannot stream"):
        Stream(att)
