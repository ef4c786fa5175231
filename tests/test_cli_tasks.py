"""Your own data, your own task, from the command line: long tables for classify, regress, tag and forecast;
train -> evaluate -> predict (no flags: the model remembers its columns) -> export; the run-to-failure
example; one-line errors with nothing written."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "run_to_failure" / "make_data.py"


def run(*args: str, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "padless", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def _metrics(out: str) -> dict[str, float]:
    res = {}
    for line in out.splitlines():
        k, _, v = line.partition(": ")
        try:
            res[k] = float(v.split()[0])
        except (ValueError, IndexError):
            pass
    return res


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    cls, reg, tag, fc = [], [], [], []
    for i in range(30):
        T = int(rng.integers(1, 15)) if i else 1  # a single-row id is a sequence of length 1
        up = i % 2
        x = rng.standard_normal((T, 2)) + (1.5 if up else -1.5)
        for t in range(T):
            cls.append([f"u{i}", t, *x[t].round(4), "up" if up else "down"])
            reg.append([i, t, *x[t].round(4), round(float(x[:, 0].mean()) * 10 + 50, 4)])
            tag.append([i, t, *x[t].round(4), int(x[t, 0] > 0) + int(x[t, 1] > 1)])
            fc.append([i, t, round(float(np.sin(t / 2 + i)), 4), round(float(np.cos(t / 3)), 4)])
    rows = list(reversed(cls))  # shuffled order: --time sorts the steps
    return {
        "classify": _write(d / "classify.csv", ["unit", "t", "a", "b", "label"], rows),
        "regress": _write(d / "regress.csv", ["unit", "t", "a", "b", "score"], reg),
        "tag": _write(d / "tag.csv", ["unit", "t", "a", "b", "status"], tag),
        "forecast": _write(d / "forecast.csv", ["unit", "t", "v1", "v2"], fc),
        "dir": d,
    }


CASES = {
    "classify": (["--target", "label"], {"loss", "accuracy"}, "prediction"),
    "regress": (["--target", "score"], {"loss", "mae", "rmse"}, "score"),
    "tag": (["--target", "status", "--task", "tag"], {"loss", "accuracy"}, "prediction"),
    "forecast": (["--task", "forecast", "--horizon", "2", "--drop-short"], {"loss", "mae", "rmse"}, "v1+1"),
}


@pytest.mark.parametrize("task", list(CASES))
def test_each_task_trains_evaluates_predicts_and_exports(tables, tmp_path, task):
    flags, metrics, column = CASES[task]
    data, out = str(tables[task]), tmp_path / "run"
    r = run("train", data, "--id", "unit", "--time", "t", *flags, "--epochs", "2", "--units", "4", "--batch-size", "4",
            "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"task: {task}" in r.stdout
    r = run("evaluate", str(out), data)  # no flags: the columns, task and classes come from the model
    assert r.returncode == 0, r.stderr
    m = _metrics(r.stdout)
    assert set(m) >= metrics and all(math.isfinite(v) for v in m.values())
    if "rmse" in m:
        assert m["rmse"] == pytest.approx(math.sqrt(m["loss"]), rel=1e-3)
    pred = tmp_path / "p.csv"
    r = run("predict", str(out), data, "--out", str(pred))
    assert r.returncode == 0, r.stderr
    with open(pred) as f:
        rows = list(csv.DictReader(f))
    assert "unit" in rows[0] and column in rows[0]
    per_step = task in ("tag", "forecast") or (task == "regress" and False)
    if per_step:
        assert "t" in rows[0]
        assert len(rows) > 30  # one row per (id, time)
    else:
        assert len(rows) == 30 and rows[0]["unit"] in ("u29", "0", "u0", "29")
    if task == "classify":
        assert {r_["prediction"] for r_ in rows} <= {"up", "down"}
    r = run("export", str(out), str(tmp_path / "m.onnx"))
    assert r.returncode == 0, r.stderr
    rel = float(r.stdout.split("relative ")[1].split(";")[0])
    assert rel < 1e-5


def test_labels_in_a_second_table_and_per_step_regression_with_tbptt(tables, tmp_path):
    rows = list(csv.reader(open(tables["classify"])))[1:]
    labels = {r[0]: r[4] for r in rows}
    lab = _write(tmp_path / "labels.csv", ["unit", "label"], [[k, v] for k, v in labels.items()])
    feats = _write(tmp_path / "x.csv", ["unit", "t", "a", "b"], [r[:4] for r in rows])
    r = run("train", str(feats), "--id", "unit", "--time", "t", "--labels", str(lab), "--epochs", "1", "--units", "4",
            "--out", str(tmp_path / "c"), "--quiet")
    assert r.returncode == 0 and "task: classify" in r.stdout, r.stderr
    r = run("train", str(tables["tag"]), "--id", "unit", "--time", "t", "--target", "a", "--task", "regress",
            "--tbptt", "4", "--epochs", "1", "--units", "4", "--out", str(tmp_path / "r"), "--quiet")
    assert r.returncode == 0 and "task: regress (per step)" in r.stdout, r.stderr


@pytest.mark.parametrize("args, message", [
    (["--id", "nope", "--target", "label"], "no id column 'nope'"),
    (["--id", "unit", "--target", "a", "--features", "a,b"], "also"),
    (["--target", "label"], "give --id COLUMN"),
    (["--id", "unit", "--time", "t", "--target", "label", "--fill", "sideways"], "invalid choice"),
])
def test_bad_table_input_is_one_line_and_writes_nothing(tables, tmp_path, args, message):
    out = tmp_path / "never"
    r = run("train", str(tables["classify"]), *args, "--out", str(out), "--quiet")
    assert r.returncode == 2, r.stdout
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.timeout(400)
def test_run_to_failure_example_from_the_command_line(tmp_path):
    d = tmp_path / "rtf"
    r = subprocess.run([sys.executable, str(EXAMPLE), str(d), "--seed", "0", "--train-engines", "60", "--test-engines", "40"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "run"
    r = run("train", str(d / "train.csv"), "--id", "engine", "--time", "cycle", "--target", "rul", "--epochs", "12",
            "--out", str(run_dir), "--quiet", "--nproc", "2")
    assert r.returncode == 0, r.stderr
    assert "task: regress (per step)" in r.stdout and "processes: 2" in r.stdout
    r = run("evaluate", str(run_dir), str(d / "test.csv"))
    assert r.returncode == 0, r.stderr
    rmse = _metrics(r.stdout)["rmse"]
    rul = np.array([float(row["rul"]) for row in csv.DictReader(open(d / "test.csv"))])
    baseline = float(np.sqrt(((rul - rul.mean()) ** 2).mean()))  # predicting the mean: what a model must beat
    assert rmse < 0.8 * baseline, (rmse, baseline)
    r = run("predict", str(run_dir), str(d / "test.csv"), "--out", str(tmp_path / "rul.csv"))
    assert r.returncode == 0, r.stderr
    head = next(csv.reader(open(tmp_path / "rul.csv")))
    assert head == ["engine", "cycle", "rul"]
