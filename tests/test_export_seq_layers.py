"""ONNX export of the ragged-exact sequence layers: onnxruntime gives what ``predict`` gives, to 1e-5.

Covers Conv1D (valid/same/causal, strides, dilations), windowed max/average pooling, the new lengths of
strided layers flowing to later layers (pooling, LSTM), batch and layer normalization, multi-head and
pooling attention, TimeDistributed, SpatialDropout1D; per-step and per-sequence models, lengths shorter
than a window, NaN in the padding; a causal convolution in a streaming graph fed in chunks; the errors
for what cannot be exported.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from padless import Sequential  # noqa: E402
from padless.errors import ConfigError  # noqa: E402
from padless.export import check_export, load_onnx  # noqa: E402
from padless.layers import (  # noqa: E402
    LSTM,
    AttentionPooling1D,
    Bidirectional,
    AveragePooling1D,
    BatchNormalization,
    Conv1D,
    Dense,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    LayerNormalization,
    MaxPooling1D,
    MultiHeadAttention,
    SpatialDropout1D,
    TimeDistributed,
)

TOL = 1e-5
F = 3
LENGTHS = (1, 7, 3, 23, 12, 1, 5, 16, 2)


def _seqs(lengths=LENGTHS, seed=0, f=F):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(t), f)).astype(np.float32) for t in lengths]


def _random_stats(model):
    g = torch.Generator().manual_seed(3)
    for m in model.all_layers:
        inner = getattr(m, "layer", m)
        if isinstance(inner, BatchNormalization):
            inner.moving_mean.copy_(torch.randn(inner.moving_mean.shape, generator=g))
            inner.moving_variance.copy_(torch.rand(inner.moving_variance.shape, generator=g) + 0.5)
            if inner.gamma is not None:
                with torch.no_grad():
                    inner.gamma.copy_(torch.randn(inner.gamma.shape, generator=g))
    return model


def _check(model, tmp_path, lengths=LENGTHS, name="m"):
    torch.manual_seed(0)
    _random_stats(model)
    x = _seqs(lengths)
    path = model.export(tmp_path / f"{name}.onnx")
    assert check_export(model, path, x) < TOL
    return load_onnx(path), x


CONVS = [(k, s, d, p) for p in ("same", "causal") for k, s, d in ((3, 1, 1), (4, 1, 2), (3, 2, 1), (4, 3, 1),
                                                                  (5, 2, 2), (2, 4, 1), (1, 1, 1))]


@pytest.mark.parametrize("k,s,d,padding", CONVS, ids=[f"{p}-k{k}s{s}d{d}" for k, s, d, p in CONVS])
def test_conv_same_causal_per_sequence(k, s, d, padding, tmp_path):
    m = Sequential([Conv1D(4, k, strides=s, padding=padding, dilation_rate=d, activation="tanh", input_shape=(None, F)),
                    GlobalMaxPooling1D()])
    _check(m, tmp_path)  # lengths 1 and 2: shorter than most windows


@pytest.mark.parametrize("k,s,d", [(3, 1, 1), (2, 2, 1), (3, 2, 2), (1, 3, 1)])
def test_conv_valid_and_strides_then_lstm(k, s, d, tmp_path):
    span = d * (k - 1) + 1
    m = Sequential([Conv1D(5, k, strides=s, dilation_rate=d, activation="relu", input_shape=(None, F)),
                    LSTM(4), Dense(2)])
    _check(m, tmp_path, [max(L, span) for L in LENGTHS])


def test_strides_then_bidirectional_reverses_within_new_lengths(tmp_path):
    m = Sequential([Conv1D(4, 3, strides=3, padding="same", input_shape=(None, F)),
                    Bidirectional(LSTM(3, return_sequences=True)), MaxPooling1D(2, padding="same"),
                    Bidirectional(LSTM(2)), Dense(2)])
    _check(m, tmp_path)


@pytest.mark.parametrize("padding", ["same", "causal"])
def test_conv_per_step_stride_one(padding, tmp_path):
    m = Sequential([Conv1D(4, 3, padding=padding, dilation_rate=2, input_shape=(None, F)),
                    Conv1D(3, 4, padding=padding, activation="softmax")])
    om, _ = _check(m, tmp_path)
    assert om.returns_sequences


POOLS = [(kind, k, s, p) for kind in (MaxPooling1D, AveragePooling1D) for p in ("valid", "same")
         for k, s in ((2, None), (3, 1), (3, 2), (4, 3))]


@pytest.mark.parametrize("kind,k,s,padding", POOLS, ids=[f"{c.__name__}-{p}-k{k}s{s}" for c, k, s, p in POOLS])
def test_pooling(kind, k, s, padding, tmp_path):
    m = Sequential([Conv1D(4, 2, padding="same", input_shape=(None, F)), kind(k, strides=s, padding=padding),
                    Conv1D(3, 3, padding="same"), GlobalAveragePooling1D()])
    _check(m, tmp_path, [max(L, k) for L in LENGTHS] if padding == "valid" else LENGTHS)


@pytest.mark.parametrize("kind", [MaxPooling1D, AveragePooling1D])
def test_pooling_per_step(kind, tmp_path):
    m = Sequential([kind(3, strides=1, padding="same", input_shape=(None, F)), Dense(2)])
    _check(m, tmp_path)


def test_stacked_strides_lengths_flow(tmp_path):
    m = Sequential([Conv1D(6, 3, strides=2, padding="same", input_shape=(None, F)), BatchNormalization(),
                    MaxPooling1D(2, padding="same"), Conv1D(4, 2, padding="causal", strides=2),
                    AveragePooling1D(3, strides=1, padding="same"), GlobalAveragePooling1D(), Dense(2)])
    _check(m, tmp_path, LENGTHS + (40, 33, 8))


@pytest.mark.parametrize("causal", [False, True])
def test_attention(causal, tmp_path):
    m = Sequential([Conv1D(4, 3, padding="same", input_shape=(None, F)),
                    MultiHeadAttention(2, 3, value_dim=4, causal=causal), LayerNormalization(),
                    MultiHeadAttention(1, 2, output_shape=5, use_bias=False, causal=causal)])
    om, _ = _check(m, tmp_path)
    assert om.returns_sequences


@pytest.mark.parametrize("units", [None, 3])
def test_attention_pooling(units, tmp_path):
    m = Sequential([Dense(4, activation="relu", input_shape=(None, F)), AttentionPooling1D(units), Dense(2)])
    _check(m, tmp_path)


def test_normalizations_wrappers_on_steps_and_vectors(tmp_path):
    m = Sequential([BatchNormalization(input_shape=(None, F)), SpatialDropout1D(0.3),
                    TimeDistributed(Dense(4, activation="relu")), LayerNormalization(center=False),
                    LSTM(5), BatchNormalization(scale=False), TimeDistributed(Dense(2)), LayerNormalization()])
    om, _ = _check(m, tmp_path)
    assert not om.returns_sequences


def test_padding_values_never_matter(tmp_path):
    m = Sequential([Conv1D(4, 3, strides=2, padding="same", input_shape=(None, F)), MaxPooling1D(2, padding="same"),
                    MultiHeadAttention(2, 2), AttentionPooling1D()])
    om, x = _check(m, tmp_path)
    L = np.array([len(s) for s in x])
    padded = np.full((len(x), int(L.max()), F), np.nan, np.float32)
    for i, s in enumerate(x):
        padded[i, : len(s)] = s
    got = om.run(padded, L)
    assert np.abs(got - m.predict(x, verbose=0)).max() < TOL


def test_streaming_causal_conv_fed_in_chunks(tmp_path):
    torch.manual_seed(1)
    m = Sequential([Conv1D(4, 3, padding="causal", dilation_rate=2, input_shape=(None, F)),
                    LSTM(5, return_sequences=True),
                    Conv1D(3, 2, padding="causal"), BatchNormalization(), Dense(2)])
    _random_stats(m)
    om = load_onnx(m.export(tmp_path / "s.onnx", streaming=True))
    assert om.state_names == ["state_ctx_0", "state_h_1", "state_c_1", "state_ctx_2"]
    x = _seqs((9, 4, 7, 1), seed=4)
    ref = m.predict(x, verbose=0)
    B = len(x)
    states = om.initial_states(B)
    chunks = [[3, 2, 0, 1], [1, 2, 4, 0], [5, 0, 3, 0]]  # uneven chunks, idle rows (length 0), 1-step chunks
    pos = np.zeros(B, dtype=int)
    pieces: list[list[np.ndarray]] = [[] for _ in range(B)]
    for c in chunks:
        c = np.asarray(c)
        xb = np.zeros((B, int(c.max()), F), np.float32)
        for i in range(B):
            xb[i, : c[i]] = x[i][pos[i]: pos[i] + c[i]]
        y, states = om.run(xb, c, states)
        for i in range(B):
            pieces[i].append(y[i, : c[i]])
        pos += c
    for got, r in zip(pieces, ref, strict=True):
        assert np.abs(np.concatenate(got) - r).max() < TOL


def test_what_cannot_be_exported(tmp_path):
    strided = Sequential([Conv1D(2, 3, strides=2, padding="same", input_shape=(None, F))])
    with pytest.raises(ConfigError, match="change the sequence length.*cannot be exported"):
        strided.export(tmp_path / "a.onnx")
    same = Sequential([Conv1D(2, 3, padding="same", input_shape=(None, F)), Dense(1)])
    with pytest.raises(ConfigError, match=r"layer 0 \(Conv1D\) cannot stream: padding='same' reads later steps"):
        same.export(tmp_path / "b.onnx", streaming=True)
    pooled = Sequential([MaxPooling1D(2, input_shape=(None, F)), LSTM(2)])
    with pytest.raises(ConfigError, match=r"layer 0 \(MaxPooling1D\) cannot stream"):
        pooled.export(tmp_path / "c.onnx", streaming=True)
    att = Sequential([MultiHeadAttention(2, 2, input_shape=(None, F)), GlobalAveragePooling1D()])
    with pytest.raises(ConfigError, match="cannot stream: each step attends to later steps"):
        att.export(tmp_path / "d.onnx", streaming=True)
    causal_att = Sequential([MultiHeadAttention(2, 2, causal=True, input_shape=(None, F)), Dense(1)])
    with pytest.raises(ConfigError, match="cannot stream: each step attends to every earlier step.*no attention cache"):
        causal_att.export(tmp_path / "e.onnx", streaming=True)
