"""The command line end to end, in subprocesses: train -> evaluate -> predict on built-in data, a .npz and a
Parquet file; inspect; and the one-line errors (exit code 2, no traceback)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from padless.data import RaggedArray, write_parquet


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "padless.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def _metrics(out: str) -> dict[str, float]:
    res = {}
    for line in out.splitlines():
        k, sep, v = line.partition(": ")
        if sep:
            try:
                res[k.strip()] = float(v)
            except ValueError:
                pass
    return res


@pytest.fixture(scope="module")
def user_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 15, 60)
    labels = rng.integers(0, 2, 60)
    # class 1 sequences drift upwards: learnable
    xs = [rng.standard_normal((t, 2)).astype(np.float32) + lab * np.linspace(0, 2, t)[:, None] for t, lab in zip(lengths, labels)]
    ra = RaggedArray.from_list(xs)
    names = np.array(["down", "up"])[labels]
    np.savez(d / "data.npz", values=ra.values, offsets=ra.offsets, labels=names)
    write_parquet(ra, d / "data.parquet", labels=names)
    return d


def test_train_evaluate_predict_builtin(tmp_path):
    out = tmp_path / "run"
    r = run("train", "japanese_vowels", "--epochs", "2", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    m = _metrics(r.stdout)
    assert 0.0 <= m["accuracy"] <= 1.0 and m["loss"] > 0
    for f in ("model.safetensors", "history.csv", "curves.png"):
        assert (out / f).exists(), f
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and "loss" in rows[0]
    r = run("evaluate", str(out / "model.safetensors"), "japanese_vowels")
    assert r.returncode == 0, r.stderr
    assert set(_metrics(r.stdout)) >= {"loss", "accuracy"}
    r = run("predict", str(out / "model.safetensors"), "japanese_vowels", "--out", str(tmp_path / "p.csv"))
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "p.csv") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == 371 and rows[0][:2] == ["index", "prediction"]
    # refusing to overwrite what is on disk
    r = run("predict", str(out / "model.safetensors"), "japanese_vowels", "--out", str(tmp_path / "p.csv"))
    assert r.returncode == 2 and "exists" in r.stderr


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_user_files_and_class_names(tmp_path, user_data, fmt):
    data = user_data / f"data.{fmt}"
    out = tmp_path / "m"
    r = run("train", str(data), "--epochs", "15", "--layers", "gru:16", "--out", str(out), "--quiet", "--seed", "1")
    assert r.returncode == 0, r.stderr
    r = run("evaluate", str(out / "model.safetensors"), str(data))
    assert r.returncode == 0, r.stderr
    assert _metrics(r.stdout)["accuracy"] >= 0.8
    r = run("predict", str(out / "model.safetensors"), str(data), "--out", str(tmp_path / "p.npy"))
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "p.npy").shape == (60, 2)
    r = run("predict", str(out / "model.safetensors"), str(data), "--out", str(tmp_path / "p.csv"))
    with open(tmp_path / "p.csv") as fh:
        preds = {row["prediction"] for row in csv.DictReader(fh)}
    assert preds <= {"down", "up"}


def test_inspect_prints_waste_and_plots(tmp_path):
    r = run("inspect", "plaid", "--plot", str(tmp_path / "h.png"))
    assert r.returncode == 0, r.stderr
    assert "75.9%" in r.stdout and "sequences: 537" in r.stdout
    assert (tmp_path / "h.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "no_such_data"], "no file or built-in data set"),
        (["evaluate", "missing.safetensors", "japanese_vowels"], "no saved model"),
        (["train", "japanese_vowels", "--layers", "lstm:x"], "--layers item 0"),
    ],
)
def test_errors_are_one_line(args, message, tmp_path):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_feature_mismatch_with_model(tmp_path, user_data):
    out = tmp_path / "m"
    assert run("train", str(user_data / "data.npz"), "--epochs", "1", "--out", str(out), "--quiet").returncode == 0
    r = run("evaluate", str(out / "model.safetensors"), "japanese_vowels")
    assert r.returncode == 2 and "features" in r.stderr


def test_help_has_examples():
    for cmd in ("train", "evaluate", "predict", "inspect", "demo", "bench"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "Example" in r.stdout, cmd


def test_demo_quick_runs():
    r = run("demo", "--quick")
    assert r.returncode == 0, r.stderr
    assert "161,802" in r.stdout and "accuracy:" in r.stdout and "75.9%" in r.stdout


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_train_config_file_max_steps_and_tbptt(tmp_path, user_data, fmt):
    cfg = tmp_path / f"cfg.{fmt}"
    if fmt == "json":
        cfg.write_text('{"layers": ["gru:8", "gru:8"], "epochs": 2, "max_steps": 64}')
    else:
        cfg.write_text('layers = "gru:8"\nepochs = 2\ntbptt = 4\nbatch_size = 4\n')
    r = run("train", str(user_data / "data.npz"), "--config", str(cfg), "--quiet", "--out", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "m" / "history.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2  # epochs from the file
    bad = tmp_path / "bad.json"
    bad.write_text('{"epochz": 2}')
    r = run("train", str(user_data / "data.npz"), "--config", str(bad))
    assert r.returncode == 2 and "unknown option 'epochz'" in r.stderr


def test_predict_per_step_model(tmp_path, user_data):
    from padless import Sequential
    from padless.layers import GRU, Dense

    m = Sequential([GRU(4, return_sequences=True, input_shape=(None, 2)), Dense(2, activation="softmax")])
    m.preprocessing = {"classes": ["down", "up"]}
    m.save(tmp_path / "steps.safetensors")
    data = user_data / "data.npz"
    r = run("predict", str(tmp_path / "steps.safetensors"), str(data), "--out", str(tmp_path / "s.csv"))
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "s.csv") as fh:
        rows = list(csv.DictReader(fh))
    with np.load(data) as z:
        total = int(z["offsets"][-1])
    assert len(rows) == total and rows[0]["step"] == "0" and rows[0]["prediction"] in ("down", "up")
    r = run("predict", str(tmp_path / "steps.safetensors"), str(data), "--out", str(tmp_path / "s.npz"))
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "s.npz") as z:
        assert z["values"].shape == (total, 2) and z["offsets"][-1] == total
