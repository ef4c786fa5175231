"""The functional API: a conv branch beside an LSTM branch, merged, is exact (outputs and gradients equal each
sequence run alone, every batching mode, lengths shorter than the kernel), and every feature of Sequential
works on it: fit, evaluate, predict, TBPTT, Stream, save/load, checkpoints and resume, export, summary."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import padless
from padless import ConfigError, Input, Model, Stream
from padless.data.collate import RaggedBatch
from padless.export import check_export
from padless.layers import (
    GRU,
    LSTM,
    Add,
    BatchNormalization,
    Concatenate,
    Conv1D,
    Dense,
    GlobalAveragePooling1D,
    MaxPooling1D,
    Multiply,
)

TOL = dict(rtol=1e-5, atol=1e-5)


def hybrid(F=3, K=3, seed=0, per_step=False, kernel=5):
    torch.manual_seed(seed)
    inp = Input(shape=(None, F))
    c = Conv1D(6, kernel, padding="same", activation="relu")(inp)
    c = Conv1D(4, 3, padding="same")(c)
    r = LSTM(4, return_sequences=per_step)(inp)
    if not per_step:
        c = GlobalAveragePooling1D()(c)
    out = Dense(K, activation="softmax")(Concatenate()([c, r]))
    return Model(inp, out, name="hybrid")


def _data(lengths, F=3, seed=0):
    rng = np.random.default_rng(seed)
    return [torch.as_tensor(rng.standard_normal((int(t), F)), dtype=torch.float32) for t in lengths]


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=7), merge=st.sampled_from([0.0, 1e9]),
       per_step=st.booleans(), kernel=st.sampled_from([1, 3, 5, 8]))
def test_hybrid_equals_each_sequence_alone(lengths, merge, per_step, kernel):
    m = hybrid(per_step=per_step, kernel=kernel)
    xs = _data(lengths)
    w = torch.randn(3)
    batch = RaggedBatch.from_list(xs, merge_cost=merge)
    out, _ = m.run_states(batch)
    got = out.to_list() if per_step else list(batch.unsort(out))
    loss = sum((g * w).sum() for g in got)
    m.zero_grad()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    ref_loss = 0.0
    for x, g in zip(xs, got):
        o = m([x])
        o = o[0] if per_step else o[0]
        torch.testing.assert_close(g, o, **TOL)
        ref_loss = ref_loss + (o * w).sum()
    ref_loss.backward()
    for n, p in m.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, **TOL, msg=n)


@pytest.mark.parametrize("batching", ["bucket", "exact", "random"])
def test_predict_and_evaluate_agree_over_batching_modes(batching):
    m = hybrid()
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    xs = [x.numpy() for x in _data([1, 2, 9, 4, 4, 13, 6])]
    y = np.array([0, 1, 2, 0, 1, 2, 0])
    ref = np.stack([m.predict([x], verbose=0)[0] for x in xs])
    np.testing.assert_allclose(m.predict(xs, batch_size=3, batching=batching, verbose=0), ref, **TOL)
    losses = [m.evaluate(xs, y, batch_size=bs, verbose=0)[0] for bs in (1, 3, 7)]
    assert max(losses) - min(losses) < 1e-5


def test_fit_save_load_resume_export_summary(tmp_path):
    xs = [x.numpy() for x in _data(np.random.default_rng(1).integers(1, 15, 24))]
    y = np.array([int(x[:, 0].mean() > 0) for x in xs])

    def build():
        m = hybrid(K=2)
        m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"], lr=1e-2)
        return m

    full = build()
    full.fit(xs, y, batch_size=4, epochs=2, seed=3, verbose=0)
    ck = tmp_path / "ck"
    part = build()
    part.fit(xs, y, batch_size=4, epochs=1, seed=3, verbose=0, checkpoint_dir=ck)
    resumed = build()
    resumed.fit(xs, y, batch_size=4, epochs=2, seed=3, verbose=0, checkpoint_dir=ck, resume_from=ck)
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    full.save(tmp_path / "m.safetensors")
    back = padless.load_model(tmp_path / "m.safetensors")
    assert isinstance(back, Model) and back.count_params() == full.count_params()
    np.testing.assert_array_equal(back.predict(xs, verbose=0), full.predict(xs, verbose=0))
    assert check_export(full, full.export(tmp_path / "m.onnx")) < 1e-5
    text = full.summary(print_fn=None)
    assert "Concatenate <- GlobalAveragePooling1D, LSTM" in text and f"{full.count_params():,}" in text


def test_strided_branches_and_per_step_merges_export(tmp_path):
    torch.manual_seed(0)
    inp = Input(shape=(None, 2))
    a = MaxPooling1D(2, padding="same")(Conv1D(4, 3, padding="same")(inp))
    b = MaxPooling1D(2, padding="same")(Dense(4)(inp))
    s = Multiply()([a, b])  # both branches halved the same way: per-step merge is fine
    out = Dense(2)(GlobalAveragePooling1D()(BatchNormalization()(Add()([s, a]))))
    m = Model(inp, out)
    xs = [x.numpy() for x in _data([1, 2, 3, 7, 10], F=2)]
    ref = np.stack([m.predict([x], verbose=0)[0] for x in xs])
    np.testing.assert_allclose(m.predict(xs, verbose=0), ref, **TOL)
    assert check_export(m, m.export(tmp_path / "s.onnx"), x=xs) < 1e-5


def test_causal_model_streams_and_trains_with_tbptt():
    torch.manual_seed(0)
    inp = Input(shape=(None, 3))
    a = Conv1D(4, 3, padding="causal")(inp)
    b = GRU(4, return_sequences=True)(inp)
    out = Dense(2, activation="softmax")(LSTM(3)(Add()([a, b])))
    m = Model(inp, out)
    m.compile("adam", "sparse_categorical_crossentropy")
    xs = [x.numpy() for x in _data([5, 9, 2, 14, 7])]
    y = np.array([0, 1, 0, 1, 0])
    full = m.predict(xs, verbose=0)
    np.testing.assert_allclose(m.predict(xs, batch_size=2, tbptt=3, verbose=0), full, **TOL)
    s = Stream(m)
    for x, f in zip(xs, full):
        for a0 in range(0, len(x), 4):
            last = s.feed("k", x[a0 : a0 + 4])
        np.testing.assert_allclose(last, f, **TOL)
        s.end("k")
    h = m.fit(xs, y, batch_size=2, tbptt=3, epochs=1, verbose=0)
    assert np.isfinite(h.history["loss"][0])


def test_graph_errors_name_the_layer():
    inp = Input(shape=(None, 3))
    seq, vec = Conv1D(4, 3, padding="same")(inp), LSTM(4)(inp)
    with pytest.raises(ConfigError, match="Concatenate: branches .* per step .* pool the per-step"):
        Concatenate()([seq, vec])
    with pytest.raises(ConfigError, match="change the sequence lengths differently"):
        Add()([seq, Conv1D(4, 3, strides=2, padding="same")(inp)])
    with pytest.raises(ConfigError, match="needs branches of the same size"):
        Add()([seq, Dense(5)(inp)])
    with pytest.raises(ConfigError, match="needs sequences but its input is one vector per sequence"):
        LSTM(2)(vec)
    shared = GRU(3)
    shared(inp)
    with pytest.raises(ConfigError, match="cannot be shared"):
        shared(inp)
    with pytest.raises(ConfigError, match="not computed from its input"):
        Model(Input(shape=(None, 3)), vec)
    with pytest.raises(ConfigError, match="unknown layer class 'Nope'"):
        Model.from_config({"class_name": "Model", "input": {"shape": [None, 3]}, "nodes": [[0, [0]]],
                           "layers": [{"class_name": "Nope", "config": {}}]})
