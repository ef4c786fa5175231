"""Checkpoints: a run SIGKILLed mid-epoch resumes to bitwise the same final weights; files are written
atomically, loaded without executing code, and a damaged or foreign checkpoint fails with CheckpointError."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

import padless
import pytest
import torch
from safetensors.torch import load_file

from padless import CheckpointError, ConfigError, DataError, Sequential
from padless.layers import GRU, LSTM, Dense, Dropout
from padless.io import metadata_digest, read_safetensors_header
from padless.train import run_checkpoints as trainer_mod
from padless.train.checkpoint import (
    LATEST,
    load_checkpoint,
    save_checkpoint,
)
from padless.train.rng import capture_rng, restore_rng

HERE = Path(__file__).resolve().parent
CHILD = HERE / "_resume_child.py"


def _child(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(CHILD), *args], capture_output=True, text=True, timeout=200, env=env)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("variant", ["batch", "tbptt"])
def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path, variant):
    full = str(tmp_path / "full.safetensors")
    r = _child(variant, "-", full, "0")
    assert r.returncode == 0, r.stderr
    ck = tmp_path / "ck"
    resumed = str(tmp_path / "resumed.safetensors")
    r = _child(variant, str(ck), resumed, "7")  # kills itself (SIGKILL) after 7 training steps
    assert r.returncode == -9, (r.returncode, r.stderr)
    assert not Path(resumed).exists()
    latest = json.loads((ck / LATEST).read_text())
    assert latest["position"] > 0, latest  # the newest checkpoint is mid-epoch
    at_kill = load_checkpoint(ck).weights
    r = _child(variant, str(ck), resumed, "0", "resume")
    assert r.returncode == 0, r.stderr
    a, b = load_file(full), load_file(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resuming"
    ha, hb = (json.loads(Path(p + ".json").read_text()) for p in (full, resumed))
    ha.pop("steps_per_second"), hb.pop("steps_per_second")  # wall-clock figures
    assert ha == hb  # loss, accuracy, val_*, padding waste: the same numbers, mid-epoch sums included
    assert not all(torch.equal(at_kill[k], a[k]) for k in a)  # training really went on after the checkpoint


# ------------------------------------------------------------------------------------------ in-process
def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((int(t), 3)).astype(np.float32) for t in rng.integers(1, 15, n)]
    return xs, rng.integers(0, 3, n)


def _model(seed=0, units=5, dropout=0.2):
    torch.manual_seed(seed)
    m = Sequential([GRU(units, input_size=3, return_sequences=True, dropout=dropout), LSTM(4), Dropout(0.2),
                    Dense(3, activation="softmax")])
    m.compile("rmsprop", "sparse_categorical_crossentropy", ["accuracy"])
    return m


@pytest.fixture(scope="module")
def _trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpts")
    xs, y = _data()
    m = _model()
    m.fit(xs, y, batch_size=4, epochs=2, verbose=0, checkpoint_dir=d, checkpoint_every=2, keep_checkpoints=50)
    return d, m, xs, y


@pytest.fixture
def run_dir(_trained, tmp_path):
    """A private copy of one checkpointed run (tests damage the files)."""
    import shutil

    d, m, xs, y = _trained
    shutil.copytree(d, tmp_path / "run")
    return tmp_path / "run", m, xs, y


def test_resume_from_each_checkpoint_file_in_process(run_dir):
    d, m, xs, y = run_dir
    files = sorted(d.glob("ckpt-*.safetensors"))
    assert len(files) >= 5
    for f in files[::2]:
        m2 = _model(seed=7)
        h = m2.fit(xs, y, batch_size=4, epochs=2, verbose=0, resume_from=f)
        for k, v in m.state_dict().items():
            assert torch.equal(v, m2.state_dict()[k]), (f.name, k)
        assert len(h.history["loss"]) == 2
    # the checkpoint -> a model: load_model takes a checkpoint folder or file
    ck = load_checkpoint(d)
    assert ck.state["epoch"] == 2 and ck.state["position"] == 0
    for src in (d, ck.path):
        m3 = padless.load_model(src)
        np.testing.assert_array_equal(m3.predict(xs, verbose=0), m.predict(xs, verbose=0))
        assert m3.optimizer is not None and type(m3.optimizer._opt) is type(m.compiled.optimizer)


def test_keep_prunes_old_files_and_fresh_run_refuses_a_used_folder(tmp_path):
    xs, y = _data()
    _model().fit(xs, y, batch_size=4, epochs=2, verbose=0, checkpoint_dir=tmp_path, checkpoint_every=1)
    assert len(list(tmp_path.glob("ckpt-*.safetensors"))) == 2
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        _model().fit(xs, y, batch_size=4, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing touched


def test_overwrite_replaces_old_checkpoints_only_once_the_new_run_writes(tmp_path):
    xs, y = _data()
    _model().fit(xs, y, batch_size=4, epochs=3, verbose=0, checkpoint_dir=tmp_path, checkpoint_every=5)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    bad = [np.full((3, 3), 1e30, np.float32)] * 4  # finite, but the regression loss overflows at batch 0
    m = _model()
    m.compile("sgd", "mse")
    with pytest.raises(DataError, match="the loss became inf"):
        m.fit(bad, np.full((4, 3), 1e30), batch_size=2, verbose=0, checkpoint_dir=tmp_path, overwrite_checkpoints=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # the failed run touched nothing
    _model().fit(xs, y, batch_size=4, epochs=1, verbose=0, checkpoint_dir=tmp_path, overwrite_checkpoints=True)
    ck = load_checkpoint(tmp_path)
    assert ck.state["global_step"] == 6 and ck.state["epoch"] == 1
    assert {p.name for p in tmp_path.glob("ckpt-*")} == {"ckpt-s000000006-e00001.safetensors"}


def test_stateful_model_resumes_exactly(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6, 2)).astype(np.float32)
    y = rng.integers(0, 2, 16)

    def model():
        torch.manual_seed(1)
        m = Sequential([LSTM(4, stateful=True, batch_input_shape=(4, None, 2)), Dense(2, activation="softmax")])
        m.compile("adam", "sparse_categorical_crossentropy")
        return m

    a = model()
    a.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, checkpoint_dir=tmp_path, checkpoint_every=3,
          keep_checkpoints=50)
    f = sorted(tmp_path.glob("ckpt-*.safetensors"))[0]  # after 3 of 4 steps: state carried mid-epoch
    assert load_checkpoint(f).state["position"] == 3
    b = model()
    b.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, resume_from=f)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_rng_snapshot_roundtrip():
    import random

    s = capture_rng()
    a = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng(s)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


# ------------------------------------------------------------------------------------------ damage
def _one_file(run_dir):
    d = run_dir[0]
    return d / json.loads((d / LATEST).read_text())["file"]


@pytest.mark.parametrize("where", [0, 3, 8, 20, 200, -600, -100, -5, -1])
def test_flipped_byte_is_caught(run_dir, where):
    f = _one_file(run_dir)
    data = bytearray(f.read_bytes())
    pos = where % len(data)
    data[pos] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(f)  # the file alone: its own SHA-256 (or its header) catches it
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(run_dir[0])  # through latest.json: the whole-file SHA-256 catches it


@pytest.mark.parametrize("keep", [0, 4, 7, 100, 0.5, -1])
def test_truncated_file_is_caught(run_dir, keep):
    f = _one_file(run_dir)
    data = f.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (len(data) - 1 if keep == -1 else keep)
    f.write_bytes(data[:n])
    with pytest.raises(CheckpointError):
        load_checkpoint(f)


def test_damaged_or_hostile_latest_json(run_dir):
    d = run_dir[0]
    (d / LATEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(d)
    (d / LATEST).write_text(json.dumps({"file": "../../etc/passwd", "sha256": "0"}))
    with pytest.raises(CheckpointError, match="not a padless checkpoint file name"):
        load_checkpoint(d)
    (d / LATEST).write_text(json.dumps({"file": "ckpt-s000009999-e00001.safetensors", "sha256": "0"}))
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(d)
    (d / LATEST).unlink()
    with pytest.raises(CheckpointError, match="no latest.json"):
        load_checkpoint(d)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(d / "nope")


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch " + str(Path(os.environ.get("TMPDIR", "/tmp")) / "padless-pwned"),))


def test_pickle_in_optimizer_state_is_refused_without_running_it(run_dir, tmp_path):
    from safetensors.torch import save as st_save

    f = _one_file(run_dir)
    meta = read_safetensors_header(f.read_bytes(), str(f))
    tensors = load_file(f)
    tensors["optimizer"] = torch.frombuffer(bytearray(pickle.dumps({"state": _Boom()}, protocol=2)), dtype=torch.uint8)
    meta["sha256"] = metadata_digest(tensors, meta)  # a valid checksum: the attacker rewrote it
    bad = tmp_path / "ckpt-s000000001-e00000.safetensors"
    bad.write_bytes(st_save(tensors, metadata=meta))
    marker = Path(os.environ.get("TMPDIR", "/tmp")) / "padless-pwned"
    marker.unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_a_crash_while_saving_leaves_the_previous_checkpoint(run_dir, monkeypatch):
    d, m, xs, y = run_dir
    before = load_checkpoint(d)
    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == which:
            raise OSError("disk full (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    for which in (1, 2):  # the checkpoint file, then latest.json
        calls["n"] = 0
        with pytest.raises(OSError, match="disk full"):
            save_checkpoint(d, m, m.compiled.optimizer, {"global_step": 999, "epoch": 9})
        assert load_checkpoint(d).path == before.path  # latest still names the old, complete checkpoint
        assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(os, "replace", real_replace)
    # and in fit: a failing write is a CheckpointError, never a half-written latest
    xs2, y2 = _data(8)
    monkeypatch.setattr(trainer_mod, "save_checkpoint", lambda *a, **k: (_ for _ in ()).throw(OSError("read-only")))
    with pytest.raises(CheckpointError, match="could not write a checkpoint"):
        _model().fit(xs2, y2, batch_size=4, epochs=1, verbose=0, checkpoint_dir=d / "sub")


def test_resume_refuses_other_model_data_or_settings(run_dir):
    d, _, xs, y = run_dir
    with pytest.raises(CheckpointError, match=r"different model: layer 0 \(GRU\) differs: units 5 vs 6"):
        _model(units=6).fit(xs, y, batch_size=4, epochs=2, verbose=0, resume_from=d)
    with pytest.raises(CheckpointError, match="batch_size=4; this run has batch_size=8"):
        _model().fit(xs, y, batch_size=8, epochs=2, verbose=0, resume_from=d)
    xs2, y2 = _data(seed=1)
    with pytest.raises(CheckpointError, match="lengths"):
        _model().fit(xs2, y2, batch_size=4, epochs=2, verbose=0, resume_from=d)
    with pytest.raises(CheckpointError, match="seed"):
        _model().fit(xs, y, batch_size=4, epochs=2, verbose=0, resume_from=d, seed=12345)
    with pytest.raises(CheckpointError, match="saved model, not a training checkpoint"):
        m = _model()
        m.build(3)
        m.save(str(d / "model.safetensors"))
        _model().fit(xs, y, batch_size=4, epochs=2, verbose=0, resume_from=d / "model.safetensors")


def test_checkpoint_args_are_checked(tmp_path):
    xs, y = _data(8)
    with pytest.raises(ConfigError, match="checkpoint_every needs checkpoint_dir"):
        _model().fit(xs, y, checkpoint_every=3, verbose=0)
    with pytest.raises(ConfigError, match="checkpoint_every must be an integer >= 1"):
        _model().fit(xs, y, checkpoint_dir=tmp_path, checkpoint_every=0, verbose=0)


@pytest.mark.parametrize("name", ["padless.train.checkpoint", "padless.train.distributed", "padless.train.trainer"])
def test_module_hygiene_and_examples(name):
    import doctest
    import importlib
    import inspect

    module = importlib.import_module(name)
    doc = inspect.getdoc(module) or ""
    assert "Owns" in doc and "Does not own" in doc and "Example" in doc
    for public in module.__all__:
        obj = getattr(module, public)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"{name}.{public} has no docstring"
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
