"""ONNX export: onnxruntime (CPU) gives what ``predict`` gives, to 1e-5, for every exportable layer.

Covers LSTM, GRU, SimpleRNN, stacked and bidirectional layers (backward pass from each true end),
go_backwards, per-step and per-sequence heads, Dropout/GaussianNoise (identity), Normalization,
Masking, global pooling and the Dense activations; mixed lengths in one batch, batch size 1, lengths
never seen in training, NaN in the padding; the streaming graph fed in chunks; the errors for what cannot
be exported; ``padless export`` and ``padless predict`` on an ``.onnx`` file.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from padless import Sequential  # noqa: E402
from padless.data import RaggedArray  # noqa: E402
from padless.errors import CheckpointError, ConfigError, DataError  # noqa: E402
from padless.export import DEFAULT_OPSET, check_export, export_onnx, load_onnx  # noqa: E402
from padless.layers import (  # noqa: E402
    GRU,
    LSTM,
    Bidirectional,
    Dense,
    Dropout,
    Embedding,
    GaussianNoise,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    Masking,
    Normalization,
    SimpleRNN,
)

TOL = 1e-5
F = 3
LENGTHS = (1, 7, 3, 23, 12, 1, 5, 16)  # mixed lengths in one batch, two of length 1


def _seqs(lengths=LENGTHS, seed=0, f=F):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(t), f)).astype(np.float32) for t in lengths]


def _maxdiff(got, ref) -> float:
    if isinstance(ref, list):
        assert len(got) == len(ref)
        for a, b in zip(got, ref):
            assert a.shape == b.shape
        return max(float(np.abs(a - b).max()) for a, b in zip(got, ref))
    assert got.shape == ref.shape
    return float(np.abs(got - ref).max())


def _normalization(seed=0):
    norm = Normalization(input_size=F)
    rng = np.random.default_rng(seed + 100)
    norm.adapt([rng.normal(2.0, 3.0, (20, F)), rng.normal(-1.0, 0.5, (7, F))])
    return norm


MODELS = {
    "lstm": lambda: [LSTM(6, input_size=F), Dense(4, activation="softmax")],
    "gru": lambda: [GRU(6, input_size=F), Dense(4, activation="softmax")],
    "simplernn": lambda: [SimpleRNN(6, input_size=F), Dense(2)],
    "stacked": lambda: [LSTM(6, return_sequences=True, input_size=F), GRU(5, return_sequences=True),
                        SimpleRNN(4), Dense(3, activation="softmax")],
    "bidirectional": lambda: [Bidirectional(LSTM(5, return_sequences=True, input_size=F)),
                              Bidirectional(GRU(4)), Dense(3, activation="softmax")],
    "bidirectional_merge": lambda: [Bidirectional(GRU(4, return_sequences=True, input_size=F), merge_mode="sum"),
                                    Bidirectional(LSTM(4, return_sequences=True), merge_mode="ave"),
                                    Bidirectional(SimpleRNN(3), merge_mode="mul"), Dense(2)],
    "go_backwards": lambda: [LSTM(5, return_sequences=True, go_backwards=True, input_size=F),
                             GRU(4, go_backwards=True), Dense(2)],
    "per_step": lambda: [GRU(6, return_sequences=True, input_size=F), Dense(3, activation="softmax")],
    "per_step_bidirectional": lambda: [Bidirectional(LSTM(5, return_sequences=True, input_size=F)),
                                       Dense(4, activation="relu"), Dense(2, activation="softmax")],
    "per_step_go_backwards": lambda: [LSTM(5, return_sequences=True, go_backwards=True, input_size=F), Dense(2)],
    "recipe": lambda: [_normalization(), GaussianNoise(0.3), Bidirectional(GRU(5, return_sequences=True)),
                       GRU(5), Dropout(0.5), Dense(4, activation="softmax")],
    "avg_pool": lambda: [_normalization(), LSTM(5, return_sequences=True, input_size=F), GlobalAveragePooling1D(),
                         Dense(3, activation="softmax")],
    "max_pool": lambda: [Bidirectional(GRU(4, return_sequences=True, input_size=F)), GlobalMaxPooling1D(),
                         Dropout(0.2), Dense(3)],
    "dropout_in_rnn": lambda: [LSTM(5, dropout=0.5, return_sequences=True, input_size=F), Dropout(0.3),
                               GRU(4, dropout=0.3), Dense(2, activation="sigmoid")],
}


def _model(kind: str, seed: int = 0) -> Sequential:
    torch.manual_seed(seed)
    m = Sequential(MODELS[kind]())
    with torch.no_grad():  # non-zero biases so that every bias path is checked
        for name, p in m.named_parameters():
            if "bias" in name:
                p.uniform_(-0.5, 0.5)
    return m


@pytest.mark.parametrize("kind", list(MODELS))
def test_parity_with_predict(kind, tmp_path):
    m = _model(kind)
    path = m.export(tmp_path / f"{kind}.onnx")
    om = load_onnx(path)
    x = _seqs()
    ref = m.predict(x, verbose=0)
    assert om.returns_sequences == m.returns_sequences
    # one call with every length mixed, rows grouped by length, and batch size 1
    for bs in (len(x), 3, 1):
        assert _maxdiff(om.predict(x, batch_size=bs), ref) < TOL, (kind, bs)
    # the raw graph: padded batch + lengths in, padded steps zeroed on a per-step model
    padded = RaggedArray.from_list(x).to_padded()
    y = om.run(padded, np.array(LENGTHS))
    if m.returns_sequences:
        assert y.shape[:2] == padded.shape[:2]
        for i, t in enumerate(LENGTHS):
            assert np.abs(y[i, :t] - ref[i]).max() < TOL
            assert np.all(y[i, t:] == 0.0)
    else:
        assert np.abs(y - ref).max() < TOL


@pytest.mark.parametrize("opset", [18, 21])
def test_newer_opsets(opset, tmp_path):
    import onnx

    for kind in ("max_pool", "avg_pool", "go_backwards"):  # ReduceMax takes its axes as an input from 18
        m = _model(kind)
        path = m.export(tmp_path / f"{kind}.onnx", opset=opset)
        assert onnx.load(path).opset_import[0].version == opset
        assert check_export(m, path, _seqs()) < TOL


def test_padding_values_never_matter(tmp_path):
    m = _model("bidirectional")
    om = load_onnx(m.export(tmp_path / "m.onnx"))
    x = _seqs()
    padded = RaggedArray.from_list(x).to_padded()
    clean = om.run(padded, np.array(LENGTHS))
    for value in (np.nan, 1e30, -7.0):
        dirty = padded.copy()
        for i, t in enumerate(LENGTHS):
            dirty[i, t:] = value
        assert np.array_equal(om.run(dirty, np.array(LENGTHS)), clean)
    # longer padding than needed changes nothing either
    wider = np.concatenate([padded, np.full((len(x), 9, F), 3.0, np.float32)], 1)
    assert np.abs(om.run(wider, np.array(LENGTHS)) - clean).max() < TOL


def test_lengths_never_seen_in_training(tmp_path):
    torch.manual_seed(0)
    m = Sequential([_normalization(), LSTM(6, return_sequences=True, input_size=F), GRU(5),
                    Dense(2, activation="softmax")])
    rng = np.random.default_rng(3)
    xtr = [rng.standard_normal((t, F)).astype(np.float32) for t in rng.choice([5, 6], 24)]
    m.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    m.fit(xtr, rng.integers(0, 2, 24), batch_size=8, epochs=1, verbose=0)
    om = load_onnx(m.export(tmp_path / "m.onnx"))
    x = _seqs((1, 2, 41, 97, 13), seed=5)
    assert _maxdiff(om.predict(x, batch_size=2), m.predict(x, verbose=0)) < TOL


def test_masking_model_and_padded_input(tmp_path):
    torch.manual_seed(0)
    m = Sequential([Masking(mask_value=0.0, input_shape=(None, F)), GRU(5), Dense(2)])
    om = load_onnx(m.export(tmp_path / "m.onnx"))
    x = _seqs()
    padded = RaggedArray.from_list(x).to_padded()  # zeros after each end: Masking finds the lengths
    assert _maxdiff(om.predict(padded), m.predict(padded, verbose=0)) < TOL
    assert _maxdiff(om.predict(padded, lengths=np.array(LENGTHS)), m.predict(x, verbose=0)) < TOL


@pytest.mark.parametrize("act", ["linear", "relu", "elu", "selu", "gelu", "softplus", "swish", "tanh", "sigmoid",
                                 "softmax", "log_softmax", "asinh"])
def test_dense_activations(act, tmp_path):
    torch.manual_seed(1)
    m = Sequential([GRU(4, return_sequences=True, input_size=F), Dense(5, activation=act)])
    with torch.no_grad():
        m.layers[1].linear.weight.mul_(30.0)  # reach the tails (softplus above 20, saturated gelu/selu)
    x = _seqs(seed=2)
    scale = max(1.0, max(float(np.abs(r).max()) for r in m.predict(x, verbose=0)))  # outputs reach ~60
    assert check_export(m, m.export(tmp_path / "m.onnx"), x) < TOL * scale


# ---------------------------------------------------------------------------------------------- streaming
def _feed_in_chunks(om, x, chunks):
    """Feed each row's sequence in the given chunk lengths (one column per call; 0 = row idle)."""
    B = len(x)
    states = om.initial_states(B)
    pos = np.zeros(B, dtype=int)
    per_step: list[list[np.ndarray]] = [[] for _ in range(B)]
    last: list[np.ndarray | None] = [None] * B
    for c in chunks:
        c = np.asarray(c)
        xb = np.zeros((B, max(1, int(c.max())), x[0].shape[1]), np.float32)
        for i in range(B):
            xb[i, : c[i]] = x[i][pos[i] : pos[i] + c[i]]
        y, states = om.run(xb, c, states)
        for i in range(B):
            if c[i]:
                if om.returns_sequences:
                    per_step[i].append(y[i, : c[i]])
                else:
                    last[i] = y[i]
        pos += c
    assert pos.tolist() == [len(s) for s in x]
    return [np.concatenate(p) for p in per_step] if om.returns_sequences else np.stack(last)


@pytest.mark.parametrize("per_step", [False, True])
def test_streaming_graph_fed_in_chunks(per_step, tmp_path):
    torch.manual_seed(0)
    m = Sequential([_normalization(), LSTM(5, return_sequences=True, input_size=F), Dropout(0.2),
                    GRU(4, return_sequences=per_step), *([SimpleRNN(3, return_sequences=True)] if per_step else []),
                    Dense(3, activation="softmax")])
    om = load_onnx(m.export(tmp_path / "s.onnx", streaming=True))
    assert om.streaming
    assert om.state_names == ["state_h_0", "state_c_0", "state_h_1"] + (["state_h_2"] if per_step else [])
    x = _seqs((9, 4, 7, 1), seed=4)
    ref = m.predict(x, verbose=0)
    chunks = [[3, 2, 0, 1], [0, 2, 4, 0], [5, 0, 3, 0], [1, 0, 0, 0]]  # uneven chunks, idle rows (length 0)
    assert _maxdiff(_feed_in_chunks(om, x, chunks), ref) < TOL
    # one step at a time, batch of one
    one = [x[2]]
    steps = [[1]] * len(x[2])
    assert _maxdiff(_feed_in_chunks(om, one, steps), m.predict(one, verbose=0)) < TOL
    # whole sequences in one call from zero states = the plain graph
    assert _maxdiff(om.predict(x), ref) < TOL


def test_streaming_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"layer 0 \(Bidirectional\(GRU\)\) cannot stream"):
        _model("bidirectional_merge").export(tmp_path / "b.onnx", streaming=True)
    with pytest.raises(ConfigError, match=r"layer 0 \(LSTM\).*go_backwards"):
        _model("go_backwards").export(tmp_path / "g.onnx", streaming=True)
    with pytest.raises(ConfigError, match=r"GlobalAveragePooling1D.*cannot stream"):
        _model("avg_pool").export(tmp_path / "p.onnx", streaming=True)
    om = load_onnx(_model("gru").export(tmp_path / "s.onnx", streaming=True))
    with pytest.raises(DataError, match="state 'state_h_0' must be"):
        om.run(np.zeros((2, 3, F), np.float32), [3, 1], {"state_h_0": np.zeros((1, 6), np.float32)})
    plain = load_onnx(_model("gru").export(tmp_path / "p2.onnx"))
    with pytest.raises(DataError, match="without streaming"):
        plain.run(np.zeros((1, 3, F), np.float32), [3], {"state_h_0": np.zeros((1, 6), np.float32)})


# ---------------------------------------------------------------------------------------------- errors
class Scale(nn.Module):
    def forward(self, x):  # pragma: no cover - never run
        return x


def test_clear_errors_for_what_cannot_be_exported(tmp_path):
    m = Sequential([GRU(4, input_size=F), Dense(2)])
    m.add(Scale())
    with pytest.raises(ConfigError, match=r"layer 2 \(Scale\) cannot be exported to ONNX"):
        m.export(tmp_path / "c.onnx")

    class MyGRU(GRU):  # a subclass that computes something else without its own emitter: refused
        def run(self, batch, initial_state=None, want_states=False):  # pragma: no cover - never run
            return super().run(batch, initial_state, want_states)

    with pytest.raises(ConfigError, match=r"layer 0 \(MyGRU\)"):
        Sequential([MyGRU(4, input_size=F), Dense(2)]).export(tmp_path / "s.onnx")
    with pytest.raises(ConfigError, match=r"layer 0 \(Embedding\) cannot be exported"):
        Sequential([Embedding(10, 4), GRU(3), Dense(2)]).export(tmp_path / "e.onnx")
    with pytest.raises(ConfigError, match="not built"):
        Sequential([GRU(4), Dense(2)]).export(tmp_path / "u.onnx")
    with pytest.raises(ConfigError, match="opset must be between 17 and"):
        _model("gru").export(tmp_path / "o.onnx", opset=12)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_runner_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no ONNX model"):
        load_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        load_onnx(tmp_path / "junk.onnx")
    import onnx

    foreign = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["a"], ["b"])], "g",
        [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [1])]),
        opset_imports=[onnx.helper.make_opsetid("", 17)])
    foreign.ir_version = 8
    onnx.save(foreign, tmp_path / "foreign.onnx")
    with pytest.raises(CheckpointError, match="not one exported by padless"):
        load_onnx(tmp_path / "foreign.onnx")
    om = load_onnx(_model("lstm").export(tmp_path / "m.onnx"))
    with pytest.raises(DataError, match=r"lengths\[1\] = 5 is outside 1..4"):
        om.run(np.zeros((2, 4, F), np.float32), [2, 5])
    with pytest.raises(DataError, match=r"lengths\[0\] = 0"):
        om.run(np.zeros((2, 4, F), np.float32), [0, 4])
    with pytest.raises(DataError, match="3 features"):
        om.predict([np.zeros((4, F + 1), np.float32)])


def test_metadata_opset_and_classes(tmp_path):
    import onnx

    m = _model("recipe")
    m.preprocessing = {"classes": ["a", "b", "c", "d"], "data": "x"}
    path = export_onnx(m, tmp_path / "m.onnx")
    proto = onnx.load(path)
    assert proto.opset_import[0].version == DEFAULT_OPSET == 17
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["padless.classes"]) == ["a", "b", "c", "d"]
    assert json.loads(props["padless.config"]) == m.get_config()
    ins = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert ins == {"x": ["batch", "time", F], "lengths": ["batch"]}
    outs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in proto.graph.output}
    assert outs == {"y": ["batch", 4]}
    om = load_onnx(path)
    assert om.classes == ["a", "b", "c", "d"] and om.preprocessing["classes"] == om.classes


# ---------------------------------------------------------------------------------------------- command line
def test_cli_export_and_predict_onnx(tmp_path, monkeypatch, capsys):
    from padless.cli import main

    monkeypatch.setenv("PADLESS_TUNE_MALLOC", "0")
    m = _model("recipe")
    m.preprocessing = {"classes": ["w", "x", "y", "z"]}
    m.save(tmp_path / "model.safetensors")
    ra = RaggedArray.from_list(_seqs())
    np.savez(tmp_path / "data.npz", values=ra.values, offsets=ra.offsets)

    assert main(["export", str(tmp_path / "model.safetensors"), str(tmp_path / "model.onnx")]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert lines["opset"] == "17" and int(lines["bytes"]) == (tmp_path / "model.onnx").stat().st_size
    assert float(lines["max_abs_diff_vs_predict"].split()[0]) < TOL

    for name in ("model.safetensors", "model.onnx"):
        assert main(["predict", str(tmp_path / name), str(tmp_path / "data.npz"),
                     "--out", str(tmp_path / f"{name}.csv")]) == 0
    rows = [list(csv.reader(open(tmp_path / f"{n}.csv"))) for n in ("model.safetensors", "model.onnx")]
    assert rows[0][0] == rows[1][0] == ["index", "prediction", "p_w", "p_x", "p_y", "p_z"]
    assert [r[1] for r in rows[0]] == [r[1] for r in rows[1]]  # same labels
    a = np.array([[float(v) for v in r[2:]] for r in rows[0][1:]])
    b = np.array([[float(v) for v in r[2:]] for r in rows[1][1:]])
    assert np.abs(a - b).max() <= 2e-6  # printed with 6 decimals

    # one-line errors, exit code 2
    capsys.readouterr()
    assert main(["export", str(tmp_path / "model.safetensors"), str(tmp_path / "model.onnx")]) == 2
    assert "exists" in capsys.readouterr().err
    bi = _model("bidirectional")
    bi.save(tmp_path / "bi.safetensors")
    assert main(["export", str(tmp_path / "bi.safetensors"), str(tmp_path / "s.onnx"), "--streaming"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("padless export: error: layer 0 (Bidirectional(LSTM)) cannot stream") and err.count("\n") == 1
    assert main(["predict", str(tmp_path / "nothing.onnx"), str(tmp_path / "data.npz"), "--out",
                 str(tmp_path / "p.csv")]) == 2
    assert "no ONNX model" in capsys.readouterr().err
    assert not Path(tmp_path / "s.onnx").exists()
