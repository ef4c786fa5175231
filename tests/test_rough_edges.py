"""Each behaviour a new user met (issue 10), fixed and kept fixed."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import padless
from padless import ConfigError, Sequential, StateError
from padless.errors import CheckpointError
from padless.layers import GRU, LSTM, Bidirectional, Dense, Layer
from padless.nn import registered_layers
from padless.train.callbacks import Callback

ROOT = Path(__file__).resolve().parents[1]


def _data(n=16, F=3, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((int(t), F)).astype(np.float32) for t in rng.integers(1, 12, n)]
    return xs, rng.integers(0, 2, n)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "padless", *args], capture_output=True, text=True, timeout=240,
                          cwd=cwd or ROOT)


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    d = tmp_path_factory.mktemp("edges")
    xs, y = _data(40)
    ra = padless.data.RaggedArray.from_list(xs)
    np.savez(d / "d.npz", values=np.asarray(ra.values), offsets=ra.offsets, labels=np.array(["a", "b"])[y])
    return d / "d.npz"


def test_run_folder_accepted_wherever_a_model_path_is_and_out_always_checkpoints(npz, tmp_path):
    out = tmp_path / "run"
    r = _cli("train", str(npz), "--epochs", "1", "--units", "4", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "checkpoints" / "latest.json").is_file()  # no --checkpoint-every needed
    r = _cli("evaluate", str(out), str(npz))
    assert r.returncode == 0 and "accuracy:" in r.stdout, r.stderr
    r = _cli("predict", str(out), str(npz), "--out", str(tmp_path / "p.csv"))
    assert r.returncode == 0, r.stderr
    r = _cli("export", str(out), str(tmp_path / "m.onnx"), "--no-check")
    assert r.returncode == 0, r.stderr
    # after a crash (here: the model file is gone), the run folder resumes from its checkpoint
    (out / "model.safetensors").unlink()
    r = _cli("train", str(npz), "--epochs", "2", "--units", "4", "--out", str(out), "--quiet", "--resume", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["epoch"] == 2


def test_every_layer_takes_the_keras_constructor_keywords():
    bi = Bidirectional(GRU(10, return_sequences=True), input_shape=(None, 7), name="bi")  # the Keras 2 idiom
    assert bi.input_size == 7 and bi.name == "bi"
    needs = {"Dense": (3,), "Dropout": (0.1,), "GaussianNoise": (0.1,), "Embedding": (5, 2), "LSTM": (3,), "GRU": (3,),
             "SimpleRNN": (3,), "Bidirectional": (GRU(2),), "Conv1D": (4, 3), "MultiHeadAttention": (2, 3),
             "TimeDistributed": (Dense(2),), "SpatialDropout1D": (0.1,), "Activation": ("relu",)}
    for name, cls in registered_layers().items():
        if cls.__module__.split(".")[0] != "padless" or name in ("TorchModule", "Recurrent"):
            continue
        layer = cls(*needs.get(name, ()), name=f"my_{name}", input_shape=(None, 4))
        assert layer.name == f"my_{name}"
        layer2 = cls(*needs.get(name, ()), batch_input_shape=(8, None, 4))
        assert layer2.batch_size == 8, name
    with pytest.raises(ConfigError, match="LSTM does not take the argument 'unitz'"):
        LSTM(3, unitz=4)


def test_predict_never_compiles_and_fit_needs_compile():
    xs, y = _data()
    m = Sequential([GRU(4, input_shape=(None, 3)), Dense(2, activation="softmax")])
    m.predict(xs, verbose=0)
    assert m.compiled is None
    with pytest.raises(ConfigError, match="must be compiled"):
        m.fit(xs, y, verbose=0)


@pytest.mark.parametrize("how", ["name", "object"])
def test_optimizer_class_and_settings_survive_save_load_fit(tmp_path, how):
    xs, y = _data()
    m = Sequential([GRU(4, input_shape=(None, 3)), Dense(2, activation="softmax")])
    if how == "name":
        m.compile("adam", "sparse_categorical_crossentropy", lr=3e-3, betas=(0.8, 0.95))
    else:
        m.compile(torch.optim.Adam(m.parameters(), lr=3e-3, betas=(0.8, 0.95)), "sparse_categorical_crossentropy")
    m.save(tmp_path / "m.safetensors")
    back = padless.load_model(tmp_path / "m.safetensors")
    opt = back.compiled.optimizer
    assert type(opt) is torch.optim.Adam
    assert opt.param_groups[0]["lr"] == pytest.approx(3e-3) and tuple(opt.param_groups[0]["betas"]) == (0.8, 0.95)
    back.fit(xs, y, epochs=1, verbose=0)
    assert back.optimizer.learning_rate == pytest.approx(3e-3)


def test_fingerprint_has_every_setting_that_changes_batches(tmp_path):
    xs, y = _data(24)

    def model():
        torch.manual_seed(0)
        m = Sequential([GRU(4, input_shape=(None, 3)), Dense(2, activation="softmax")])
        m.compile("sgd", "sparse_categorical_crossentropy")
        return m

    model().fit(xs, y, epochs=1, verbose=0, max_steps=40, checkpoint_dir=tmp_path, seed=1)
    with pytest.raises(CheckpointError, match="max_steps=40; this run has max_steps=60"):
        model().fit(xs, y, epochs=2, verbose=0, max_steps=60, checkpoint_dir=tmp_path, resume_from=tmp_path)
    with pytest.raises(CheckpointError, match="steps_per_epoch"):
        model().fit(xs, y, epochs=2, verbose=0, max_steps=40, steps_per_epoch=1, checkpoint_dir=tmp_path,
                    resume_from=tmp_path)


def test_stateful_model_refuses_another_batching_instead_of_switching():
    xs, y = _data(8)
    m = Sequential([GRU(4, stateful=True, batch_input_shape=(4, None, 3)), Dense(2, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="batching='sequential'"):
        m.fit(xs, y, batch_size=4, shuffle=False, batching="bucket", verbose=0)
    with pytest.warns(UserWarning, match="shuffle=True on a stateful model"):
        m.fit(xs, y, batch_size=4, verbose=0)
    with pytest.raises(StateError, match="Expected batch size 4"):
        m.fit(xs, y, batch_size=2, shuffle=False, verbose=0)


def test_callback_state_that_cannot_be_checkpointed_is_reported(tmp_path):
    class Keeps(Callback):
        def __init__(self) -> None:
            self.seen = object()  # not JSON: cannot go into a checkpoint

    xs, y = _data(8)
    m = Sequential([GRU(4, input_shape=(None, 3)), Dense(2, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match="attribute 'seen'.*cannot be stored in a checkpoint"):
        m.fit(xs, y, epochs=1, verbose=0, callbacks=[Keeps()], checkpoint_dir=tmp_path)


def test_config_file_reader_works_without_tomllib_being_special(tmp_path):
    from padless.cli.config import TrainConfig, read_config_file

    (tmp_path / "c.toml").write_text('epochs = 3\nlayers = ["lstm:8", "gru:4"]\n')
    cfg = TrainConfig.merge(read_config_file(str(tmp_path / "c.toml")), {"data": "x"})
    assert cfg.epochs == 3 and cfg.layers == "lstm:8,gru:4"
    with pytest.raises(ConfigError, match="option 'epochs' must be int"):
        TrainConfig.merge({"epochs": "three"}, {"data": "x"})
    text = (ROOT / "pyproject.toml").read_text()
    assert "tomli" in text and "python_version < '3.11'" in text  # Python 3.10 gets tomli, as requires-python allows


def test_pyproject_uses_the_current_license_form():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'license = "MIT"' in text and "license = {" not in text  # the table form prints a deprecation wall


def test_a_custom_layer_needs_no_edit_of_padless(tmp_path):
    class Scale2(Layer):
        """Multiply by a learned per-feature vector."""

        def __init__(self, init: float = 1.0, **kwargs):
            super().__init__(**kwargs)
            self.init = init
            self.finish_init()

        def make_weights(self, input_size):
            self.w = torch.nn.Parameter(torch.full((input_size,), float(self.init)))

        def forward(self, x):
            return padless.nn.map_values(x, lambda t: t * self.w)

        def to_onnx(self, g, x):
            return padless.nn.OnnxValue(g.op("Mul", [x.name, g.const("w", self.w.detach().numpy())]), x.seq, x.size)

    class NoExport(Scale2):
        def to_onnx(self, g, x):  # explicitly not exportable
            return Layer.to_onnx(self, g, x)

    xs, y = _data()
    m = Sequential([Scale2(0.5, input_shape=(None, 3)), GRU(4), Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    m.fit(xs, y, epochs=2, verbose=0)
    m.save(tmp_path / "m.safetensors")
    back = padless.load_model(tmp_path / "m.safetensors")
    assert isinstance(back.layers[0], Scale2) and back.layers[0].init == 0.5
    np.testing.assert_allclose(back.predict(xs, verbose=0), m.predict(xs, verbose=0), atol=1e-6)
    from padless.export import check_export

    assert check_export(m, m.export(tmp_path / "m.onnx")) < 1e-5
    bad = Sequential([NoExport(input_shape=(None, 3)), GRU(4), Dense(2)])
    with pytest.raises(ConfigError, match=r"layer 0 \(NoExport\) cannot be exported to ONNX"):
        bad.export(tmp_path / "bad.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Sequential([torch.nn.Linear(3, 5), GRU(2)]).predict(xs[:2], verbose=0)  # a plain torch module as a layer
