"""Keras' layer arguments, accepted with Keras semantics (or refused by name): recurrent activations on the
exact per-step path, reset_after=False, biases, initializers, regularizers, constraints, recurrent dropout,
seeds, positional activations; Dense/Embedding/Dropout/Bidirectional arguments; masked steps inside a
sequence. Numbers are checked against hand-written per-sequence references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import padless
from padless import ConfigError, DataError, Sequential
from padless.data.collate import RaggedBatch
from padless.export import check_export
from padless.layers import GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, Masking, SimpleRNN

TOL = dict(rtol=1e-5, atol=1e-5)
ACTS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "hard_sigmoid": torch.nn.functional.hardsigmoid,
        "linear": lambda t: t}


def _reference(layer, x):
    """One sequence (T, F) alone, the Keras formulas written out with the layer's torch weights."""
    rnn, H = layer.rnn, layer.units
    act, rec = ACTS[layer.activation], ACTS.get(getattr(layer, "recurrent_activation", None) or "sigmoid")
    W, U = rnn.weight_ih_l0, rnn.weight_hh_l0
    b = (rnn.bias_ih_l0, rnn.bias_hh_l0) if rnn.bias else (torch.zeros(W.shape[0]), torch.zeros(W.shape[0]))
    h, c, outs = torch.zeros(H), torch.zeros(H), []
    for t in range(x.shape[0]):
        gx, gh = W @ x[t] + b[0], U @ h + b[1]
        if layer.kind == "lstm":
            i, f, g, o = rec(gx[:H] + gh[:H]), rec(gx[H:2*H] + gh[H:2*H]), act(gx[2*H:3*H] + gh[2*H:3*H]), rec(gx[3*H:] + gh[3*H:])
            c = f * c + i * g
            h = o * act(c)
        elif layer.kind == "gru":
            r, z = rec(gx[:H] + gh[:H]), rec(gx[H:2*H] + gh[H:2*H])
            if layer.reset_after:
                n = act(gx[2*H:] + r * gh[2*H:])
            else:  # Keras' classic GRU: the reset gate scales the state before the recurrent matmul
                n = act(gx[2*H:] + U[2*H:] @ (r * h) + b[1][2*H:])
            h = (1 - z) * n + z * h
        else:
            h = act(gx + gh)
        outs.append(h)
    return torch.stack(outs), h, c


LAYERS = [
    lambda: LSTM(4, "relu", input_size=3, return_sequences=True),
    lambda: LSTM(4, recurrent_activation="hard_sigmoid", input_size=3, return_sequences=True),
    lambda: GRU(4, reset_after=False, input_size=3, return_sequences=True),
    lambda: GRU(4, "linear", input_size=3, return_sequences=True, use_bias=False),
    lambda: SimpleRNN(4, "relu", input_size=3, return_sequences=True),
    lambda: SimpleRNN(4, "sigmoid", input_size=3, return_sequences=True),
]


@settings(max_examples=20, deadline=None)
@given(make=st.sampled_from(LAYERS), lengths=st.lists(st.integers(1, 9), min_size=1, max_size=5),
       merge=st.sampled_from([0.0, 1e9]))
def test_non_default_recurrences_equal_keras_formulas(make, lengths, merge):
    torch.manual_seed(0)
    layer = make()
    xs = [torch.randn(t, 3) for t in lengths]
    batch = RaggedBatch.from_list(xs, merge_cost=merge)
    exact = batch.plan.exact  # a merged plan's fused kernels give outputs, not every row's final state
    res = layer.run(batch, want_states=True)
    got = res.seq.to_list()
    w = torch.randn(4)
    (sum((g * w).sum() for g in got) + exact * (res.states[0] * w).sum()).backward()
    grads = [p.grad.clone() for p in layer.rnn.parameters()]
    layer.rnn.zero_grad()
    ref_loss = 0.0
    h_sorted = batch.unsort(res.states[0][0])
    for i, x in enumerate(xs):
        o, h, _ = _reference(layer, x)
        torch.testing.assert_close(got[i], o, **TOL)
        if exact:
            torch.testing.assert_close(h_sorted[i], h, **TOL)
        ref_loss = ref_loss + (o * w).sum() + exact * (h * w).sum()
    ref_loss.backward()
    for a, p in zip(grads, layer.rnn.parameters()):
        torch.testing.assert_close(a, p.grad, **TOL)


def test_paths_keyword_order_and_export(tmp_path):
    assert LSTM(3, input_size=2).path == "fused" and LSTM(3, "relu", input_size=2).path == "per-step"
    assert SimpleRNN(3, "relu").activation == "relu" and not SimpleRNN(3, "relu").return_sequences
    assert GRU(3).reset_after and GRU(3, reset_after=False).path == "per-step"
    m = Sequential([LSTM(5, "relu", return_sequences=True, input_shape=(None, 3)),
                    GRU(4, reset_after=False, return_sequences=True), SimpleRNN(3, "relu"), Dense(2)])
    xs = [np.random.default_rng(0).standard_normal((t, 3)).astype("float32") for t in (1, 4, 9)]
    m.save(tmp_path / "m.safetensors")
    back = padless.load_model(tmp_path / "m.safetensors")
    np.testing.assert_allclose(back.predict(xs, verbose=0), m.predict(xs, verbose=0), **TOL)
    assert check_export(m, m.export(tmp_path / "m.onnx"), x=xs) < 1e-5
    with pytest.raises(ConfigError, match="LSTM does not take the argument 'unitz'"):
        LSTM(3, unitz=2)
    with pytest.raises(ConfigError, match="custom activation callable, which cannot be saved"):
        Sequential([LSTM(3, lambda t: t, input_shape=(None, 2))]).save(tmp_path / "c.safetensors")


def test_biases_initializers_and_seeds():
    a, b = LSTM(4, input_size=3, seed=7), LSTM(4, input_size=3, seed=7)
    for p, q in zip(a.rnn.parameters(), b.rnn.parameters()):
        assert torch.equal(p, q)  # seeded: the same initial weights
    U = a.rnn.weight_hh_l0.detach()  # Keras' orthogonal on the whole (units, 4 units) recurrent kernel
    torch.testing.assert_close(U.T @ U, torch.eye(4), atol=1e-5, rtol=0)
    assert torch.equal(a.rnn.bias_ih_l0[4:8], torch.ones(4))  # unit_forget_bias
    assert torch.equal(LSTM(4, input_size=3, unit_forget_bias=False).rnn.bias_ih_l0, torch.zeros(16))
    assert LSTM(4, input_size=3, use_bias=False).rnn.bias is False
    z = GRU(3, kernel_initializer="zeros", recurrent_initializer="ones", bias_initializer="ones", input_size=2)
    assert z.rnn.weight_ih_l0.abs().sum() == 0 and torch.all(z.rnn.weight_hh_l0 == 1)
    d = Dense(3, kernel_initializer={"class_name": "Constant", "config": {"value": 0.5}}, input_size=2)
    assert torch.all(d.linear.weight == 0.5)
    with pytest.raises(ConfigError, match="unknown initializer 'glorot_uniformm'"):
        Dense(3, kernel_initializer="glorot_uniformm", input_size=2)


def test_regularizers_add_to_the_loss_and_constraints_hold():
    xs = [np.ones((3, 2), "float32"), np.ones((2, 2), "float32")]
    y = np.array([[1.0], [1.0]], "float32")
    torch.manual_seed(0)
    m = Sequential([GRU(3, input_shape=(None, 2)), Dense(1, kernel_regularizer={"class_name": "L2", "config": {"l2": 0.1}},
                                                        kernel_constraint="non_neg")])
    m.compile(torch.optim.SGD(m.parameters(), lr=0.0), "mse")
    data_loss = m.evaluate(xs, y, verbose=0)  # evaluation: data loss only
    penalty = 0.1 * float((m.layers[1].linear.weight ** 2).sum())
    loss = m.train_on_batch(xs, y)  # Keras: training loss = data loss + penalties
    assert loss == pytest.approx(data_loss + penalty, rel=1e-5)
    m.compile(torch.optim.SGD(m.parameters(), lr=1.0), "mse")
    with torch.no_grad():
        m.layers[1].linear.weight.fill_(-1.0)
    m.fit(xs, y, epochs=1, verbose=0)
    assert float(m.layers[1].linear.weight.min()) >= 0.0  # non_neg after every update
    cfg = m.get_config()["layers"][1]["config"]
    assert cfg["kernel_regularizer"]["config"]["l2"] == 0.1 and cfg["kernel_constraint"]["class_name"] == "non_neg"


def test_recurrent_dropout_masks_the_state_in_training_only():
    torch.manual_seed(0)
    layer = LSTM(4, recurrent_dropout=0.5, input_size=3, return_sequences=True)
    xs = [torch.randn(6, 3), torch.randn(3, 3)]
    batch = RaggedBatch.from_list(xs)
    layer.eval()
    evald = layer.run(batch).seq.data
    ref = torch.cat([_reference(layer, x)[0] for x in batch.to_list()], 0)
    torch.testing.assert_close(torch.sort(evald.flatten())[0], torch.sort(ref.flatten())[0], **TOL)  # no dropout
    layer.train()
    trained = layer.run(batch).seq.data
    assert not torch.allclose(trained, evald)


def test_embedding_dropout_and_bidirectional_arguments():
    M = np.arange(12, dtype="float32").reshape(6, 2)
    e = Embedding(6, 2, weights=[M], input_length=4, trainable=False, mask_zero=True)
    m = Sequential([e, GRU(2), Dense(1)])
    m.compile("adam", "mse")
    m.fit(np.array([[1, 2, 3, 0], [4, 5, 0, 0]]), np.zeros((2, 1)), epochs=1, verbose=0)
    np.testing.assert_array_equal(e.embedding.weight.detach().numpy(), M)  # trainable=False: unchanged
    with pytest.raises(ConfigError, match="Expected shape \\(6, 2\\) / Received \\(2, 2\\)"):
        Embedding(6, 2, weights=[np.ones((2, 2))])
    d = Dropout(0.5, noise_shape=(None, 1, 8))
    batch = RaggedBatch.from_list([torch.ones(5, 8), torch.ones(3, 8)])
    out = d.train()(batch).to_list()
    for o in out:
        assert torch.equal(o[0], o[-1])  # one mask per sequence, shared by its steps
    with pytest.raises(ConfigError, match="noise_shape"):
        Dropout(0.5, noise_shape=(None, 3, 8))
    back = GRU(4, go_backwards=True, return_sequences=True)
    bi = Bidirectional(GRU(4, return_sequences=True), backward_layer=back, input_shape=(None, 3))
    assert bi.backward_layer is back and bi.output_size == 8
    with pytest.raises(ConfigError, match="merge_mode=None"):
        Bidirectional(GRU(4), merge_mode=None)
    with pytest.raises(ConfigError, match="Expected go_backwards=True / Received False"):
        Bidirectional(GRU(4), backward_layer=GRU(4))


def test_masked_steps_inside_a_sequence_are_refused_by_name():
    x = np.ones((2, 5, 2), "float32")
    x[1, 2] = 0.0
    m = Sequential([Masking(0.0, input_shape=(None, 2)), GRU(2)])
    with pytest.raises(DataError, match="sequence 1 has a masked step at step 2 .*Keras would skip that step"):
        m.predict(x, verbose=0)
    x[1, 2] = 1.0
    x[1, 3:] = 0.0  # trailing padding is fine
    assert m.predict(x, verbose=0).shape == (2, 2)
    plain = Sequential([GRU(2, input_shape=(None, 2))])  # no Masking: no mask is blamed, zeros are data
    assert plain.predict(x, verbose=0).shape == (2, 2)
