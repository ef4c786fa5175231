"""Bad input, all the way through: the Python API, the data files and the command line.

Every case must be answered by the project's own exception (PadlessError and its subclasses) - or, on the
command line, by ONE line on stderr and exit code 2 - naming the problem (and the index where there is
one). No internal traceback, no hang, no silent training on garbage, and nothing already on disk
(model, checkpoints, predictions) is touched by a failing run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from padless import CheckpointError, ConfigError, DataError, PadlessError, Sequential, StateError
from padless.cli import main
from padless.data import BucketBatchSampler, RaggedArray, write_parquet
from padless.layers import GRU, LSTM, Bidirectional, Dense
from padless.train.callbacks import Callback

F = 3


def _xs(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(t), F)).astype(np.float32) for t in rng.integers(2, 9, n)]


Y = np.array([0, 1, 0, 1, 1, 0])


def _model(K=2, loss="sparse_categorical_crossentropy", act="softmax", **kw):
    torch.manual_seed(0)
    m = Sequential([LSTM(4, input_shape=(None, F), **kw), Dense(K, activation=act)])
    m.compile("adam", loss, ["accuracy"] if "crossentropy" in loss else None)
    return m


def _with(i, value):
    xs = _xs()
    xs[i] = value
    return xs


def _fit(x=None, y=Y, model=None, **kw):
    m = model if model is not None else _model()
    return m.fit(_xs() if x is None else x, y, verbose=0, **kw)


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("api_ckpt")
    _fit(epochs=1, batch_size=2, checkpoint_dir=d)
    return d


# (id, call, exception, message pattern)
API_CASES = [
    ("empty list", lambda d: _fit([], []), DataError, "empty"),
    ("empty array", lambda d: _fit(np.zeros((0, 5, F)), np.zeros(0)), DataError, "empty"),
    ("zero-length sequence", lambda d: _fit(_with(2, np.zeros((0, F), np.float32))), DataError, "sequence 2 has length 0"),
    ("NaN in inputs", lambda d: _fit(_with(4, np.full((3, F), np.nan, np.float32))), DataError, "sequence 4 has NaN at step 0"),
    ("inf in inputs", lambda d: _fit(_with(1, np.full((2, F), np.inf, np.float32))), DataError, r"sequence 1 has \+inf"),
    ("strings", lambda d: _fit([np.array([["a"] * F])] * 6), DataError, "dtype <U1, which is not numeric"),
    ("object array", lambda d: _fit(np.array(_xs(), dtype=object)), DataError, "object array"),
    ("complex values", lambda d: _fit([x.astype(np.complex64) for x in _xs()]), DataError, "complex"),
    ("1-D array", lambda d: _fit(np.zeros(10)), DataError, r"got an array of shape \(10,\)"),
    ("4-D array", lambda d: _fit(np.zeros((6, 2, 3, 3))), DataError, r"shape \(6, 2, 3, 3\)"),
    ("None as x", lambda d: _model().fit(None, Y, verbose=0), DataError, "got NoneType"),
    ("a file name as x", lambda d: _fit("data.npz"), DataError, "got str"),
    ("dict as x", lambda d: _fit({"x": 1}), DataError, "got dict"),
    ("ragged steps inside a sequence", lambda d: _fit([[[1.0, 2.0, 3.0], [1.0, 2.0]]] * 6), DataError,
     "sequence 0 is not a rectangular"),
    ("inconsistent feature counts", lambda d: _fit(_with(3, np.zeros((4, 5), np.float32))), DataError,
     "sequence 3 has 5 features, sequence 0 has 3"),
    ("data with other feature count than model", lambda d: _fit([np.zeros((3, 5), np.float32)] * 6), DataError,
     "expects 3 features per step; the data has 5"),
    ("padded lengths beyond T", lambda d: _fit(np.zeros((6, 4, F)), lengths=[1, 2, 9, 1, 1, 1]), DataError, r"lengths\[2\] = 9"),
    ("too few labels", lambda d: _fit(y=Y[:5]), DataError, "got 5 targets for 6 input sequences"),
    ("labels of the wrong shape", lambda d: _fit(y=np.zeros((6, 2, 2))), DataError, r"got shape \(6, 2, 2\)"),
    ("one-hot of the wrong width", lambda d: _fit(y=np.eye(3)[[0, 1, 2, 0, 1, 2]], model=_model(loss="categorical_crossentropy")),
     DataError, "one-hot targets have 3 columns but the model outputs 2"),
    ("string labels", lambda d: _fit(y=np.array(list("abcabc"))), DataError, "targets must be numeric"),
    ("label out of range", lambda d: _fit(y=np.array([0, 1, 5, 0, 1, 0])), DataError, "label 5 at index 2 is out of range"),
    ("fractional label", lambda d: _fit(y=np.array([0, 1, 0.5, 0, 1, 0])), DataError, "label at index 2"),
    ("NaN regression target", lambda d: _fit(y=np.array([[0.0, 1], [np.nan, 1]] * 3), model=_model(loss="mse", act=None)),
     DataError, "target at index 1 is NaN"),
    ("loss blows up (garbage scale)", lambda d: _fit(y=np.full((6, 2), 1e30), model=_model(loss="mse", act=None)),
     DataError, "the loss became inf at batch 0"),
    ("per-step targets of wrong length", lambda d: _fit(y=[np.zeros(len(x) + (i == 3), int) for i, x in enumerate(_xs())],
                                                        model=_model(return_sequences=True)),
     DataError, "sequence 3 have"),
    ("negative batch_size", lambda d: _fit(batch_size=-1), ConfigError, "batch_size must be a positive integer; got -1"),
    ("negative epochs", lambda d: _fit(epochs=-1), ConfigError, "epochs must be an integer >= 0; got -1"),
    ("fractional epochs", lambda d: _fit(epochs=2.5), ConfigError, "epochs must be an integer"),
    ("tbptt = 0", lambda d: _fit(tbptt=0), ConfigError, "tbptt must be a positive number of steps; got 0"),
    ("tbptt < 0", lambda d: _fit(tbptt=-3), ConfigError, "tbptt must be a positive"),
    ("tbptt with a bidirectional layer", lambda d: _tbptt_bidirectional(), ConfigError, "needs the whole sequence"),
    ("sequence longer than the max_steps budget", lambda d: BucketBatchSampler([3, 50, 4], max_steps=10), DataError,
     "sequence 1 has 50 steps, more than max_steps=10"),
    ("unknown batching", lambda d: _fit(batching="buckets"), ConfigError, "Did you mean 'bucket'"),
    ("bad verbose", lambda d: _model().fit(_xs(), Y, verbose="loud"), ConfigError, "verbose must be"),
    ("bad validation_split", lambda d: _fit(validation_split=1.5), ConfigError, "validation_split must be in"),
    ("validation_data not a pair", lambda d: _fit(validation_data=_xs()), ConfigError, "validation_data must be a tuple"),
    ("not a callback", lambda d: _fit(callbacks=[print]), ConfigError, "callbacks must be padless Callback objects"),
    ("negative learning rate", lambda d: _model().compile("adam", "mse", lr=-1), ConfigError, "Invalid learning rate"),
    ("stateful batch size mismatch", lambda d: Sequential([LSTM(4, stateful=True, batch_input_shape=(4, None, F)), Dense(2)])
     .predict(_xs(3), batch_size=3, verbose=0), StateError, "Expected batch size 4 / Received 3"),
    ("distributed=True outside torchrun", lambda d: _fit(distributed=True), ConfigError, "torchrun"),
    ("checkpoint_every without a folder", lambda d: _fit(checkpoint_every=2), ConfigError, "needs checkpoint_dir"),
    ("resume from nothing", lambda d: _fit(resume_from=d / "nope"), CheckpointError, "no checkpoint at"),
    ("checkpoint from a different model", lambda d: _fit(model=_model(K=3), y=Y, resume_from=d, batch_size=2),
     CheckpointError, r"different model: layer 1 \(Dense\) differs: units 2 vs 3"),
    ("checkpoint of other data", lambda d: _fit(x=_xs(seed=5), resume_from=d, batch_size=2), CheckpointError,
     "lengths="),
    ("fresh run into a used checkpoint folder", lambda d: _fit(checkpoint_dir=d), ConfigError, "already holds checkpoints"),
]


def _tbptt_bidirectional():
    m = Sequential([Bidirectional(GRU(3, input_size=F)), Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    return m.fit(_xs(), Y, tbptt=4, verbose=0)


@pytest.mark.parametrize("call, exc, pattern", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_python_api(call, exc, pattern, ckpt_dir):
    before = {p.name: p.read_bytes() for p in ckpt_dir.iterdir()}
    with pytest.raises(exc, match=pattern) as info:
        call(ckpt_dir)
    assert isinstance(info.value, PadlessError)
    assert {p.name: p.read_bytes() for p in ckpt_dir.iterdir()} == before  # failing runs leave checkpoints alone


def test_tbptt_longer_than_every_sequence_is_fine():
    """Documented: a window longer than every sequence is plain BPTT with slot packing."""
    h = _fit(tbptt=1000, epochs=2)
    assert len(h.history["loss"]) == 2 and all(np.isfinite(h.history["loss"]))


def test_a_failing_rank_does_not_hang_the_others_in_one_process():
    """The per-step error agreement: in one process an error simply propagates (no collective waits)."""

    class Boom(Callback):
        def on_batch_end(self, batch, logs=None):
            raise DataError("boom at 1")

    with pytest.raises(DataError, match="boom"):
        _fit(callbacks=[Boom()])


# ------------------------------------------------------------------------------------------ files + CLI
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((int(t), 2)).astype(np.float32) for t in rng.integers(3, 10, 20)]
    ra = RaggedArray.from_list(xs)
    lab = np.array(["a", "b"])[rng.integers(0, 2, 20)]
    np.savez(d / "ok.npz", values=ra.values, offsets=ra.offsets, labels=lab)
    np.savez(d / "object.npz", values=np.array([np.zeros(3), np.zeros(2)], dtype=object), offsets=np.array([0, 1, 2]))
    np.savez(d / "badoffsets.npz", values=ra.values, offsets=ra.offsets[::-1], labels=lab)
    np.savez(d / "nolabels.npz", values=ra.values, offsets=ra.offsets)
    np.savez(d / "labelcount.npz", values=ra.values, offsets=ra.offsets, labels=lab[:5])
    np.savez(d / "unknownclass.npz", values=ra.values, offsets=ra.offsets, labels=np.array(["a", "zzz"] * 10))
    v = ra.values.copy()
    v[7, 1] = np.nan
    np.savez(d / "nan.npz", values=v, offsets=ra.offsets, labels=lab)
    np.savez(d / "threefeatures.npz", values=np.zeros((int(ra.offsets[-1]), 3), np.float32), offsets=ra.offsets, labels=lab)
    np.savez(d / "strings.npz", values=np.full(ra.values.shape, "x"), offsets=ra.offsets, labels=lab)
    np.savez(d / "oneclass.npz", values=ra.values, offsets=ra.offsets, labels=np.array(["a"] * 20))
    np.savez(d / "labels2d.npz", values=ra.values, offsets=ra.offsets, labels=np.zeros((20, 2)))
    (d / "junk.npz").write_bytes(b"not a zip file")
    write_parquet(ra, d / "ok.parquet", labels=lab)
    pq.write_table(pa.table({"x": pa.array([[[1.0, 2.0]], None, [[3.0, 4.0]]]), "y": ["a", "b", "a"]}), d / "nullrow.parquet")
    pq.write_table(pa.table({"x": pa.array([[[1.0, 2.0]], [[1.0, None]], [[3.0, 4.0]]]), "y": ["a", "b", "a"]}),
                   d / "nullvalue.parquet")
    pq.write_table(pa.table({"x": pa.array([[[1.0, 2.0]], [None], [[3.0, 4.0]]]), "y": ["a", "b", "a"]}), d / "nullstep.parquet")
    pq.write_table(pa.table({"x": pa.array([[[1.0, 2.0]]] * 3), "y": ["a", None, "b"]}), d / "nulllabel.parquet")
    (d / "junk.parquet").write_bytes(b"PAR1 garbage")
    head = "@problemName X\n@timeStamps false\n@univariate true\n@classLabel true a b\n@data\n"
    (d / "dims.ts").write_text(head + "1,2,3:a\n1,2:4,5:b\n")
    (d / "label.ts").write_text(head + "1,2,3:a\n1,2:c\n")
    (d / "nodata.ts").write_text(head.replace("@data\n", ""))
    (d / "data.csv").write_text("1,2\n")
    (d / "data.xyz").write_text("1,2\n")
    (d / "emptydir").mkdir()
    return d


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(files, tmp_path_factory):
    """A finished run: OUT/model.safetensors, OUT/checkpoints, and a predictions file."""
    os.environ["PADLESS_TUNE_MALLOC"] = "0"
    out = tmp_path_factory.mktemp("run") / "run"
    rc, _, err = cli("train", files / "ok.npz", "--epochs", "1", "--layers", "gru:4", "--quiet", "--out", out,
                     "--checkpoint-every", "1")
    assert rc == 0, err
    rc, _, err = cli("predict", out / "model.safetensors", files / "ok.npz", "--out", out / "p.csv")
    assert rc == 0, err
    return out


T = ("--epochs", "1", "--layers", "gru:4", "--quiet")

# (id, argv (with {f} = the files folder, {run} = the finished run), pattern)
CLI_CASES = [
    ("npz with object arrays", ["train", "{f}/object.npz", *T], "not a readable .npz of numeric arrays"),
    ("npz that is not a zip", ["train", "{f}/junk.npz", *T], "not a readable .npz"),
    ("npz with broken offsets", ["train", "{f}/badoffsets.npz", *T], r"offsets\[0\] must be 0"),
    ("npz without labels", ["train", "{f}/nolabels.npz", *T], "no labels found"),
    ("npz with too few labels", ["train", "{f}/labelcount.npz", *T], "got 5 targets for 20 input sequences"),
    ("npz with NaN", ["train", "{f}/nan.npz", *T], "sequence 0 has NaN at step 7, feature 1"),
    ("npz with strings", ["train", "{f}/strings.npz", *T], "not numeric"),
    ("one class only", ["train", "{f}/oneclass.npz", *T], "needs at least two classes"),
    ("2-D labels", ["train", "{f}/labels2d.npz", *T], r"got shape \(20, 2\)"),
    ("parquet row null", ["train", "{f}/nullrow.parquet", *T], "row 1 of column 'x' is null"),
    ("parquet value null", ["train", "{f}/nullvalue.parquet", *T], "row 1 of column 'x' has a null value"),
    ("parquet step null", ["train", "{f}/nullstep.parquet", *T], "row 1 of column 'x' has a null time step"),
    ("parquet label null", ["train", "{f}/nulllabel.parquet", *T], "row 1 of label column 'y' is null"),
    ("parquet that is not parquet", ["train", "{f}/junk.parquet", *T], "cannot read Parquet file"),
    (".ts body/header dimensions", ["train", "{f}/dims.ts", *T], "inconsistent number of dimensions"),
    (".ts label not in the header", ["train", "{f}/label.ts", *T], "row 1 has class label 'c'"),
    (".ts without data", ["train", "{f}/nodata.ts", *T], "could not parse"),
    ("long table without --id", ["train", "{f}/data.csv", *T], r"is a long table \(one row per step\): give --id COLUMN"),
    ("unknown format", ["train", "{f}/data.xyz", *T], "unknown data format .xyz"),
    ("folder that is no data set", ["train", "{f}/emptydir", *T], "meta.json is missing"),
    ("missing file", ["train", "{f}/nope.npz", *T], "no file or built-in data set"),
    ("batch size 0", ["train", "{f}/ok.npz", *T, "--batch-size", "0"], "--batch-size must be >= 1; got 0"),
    ("negative batch size", ["train", "{f}/ok.npz", *T, "--batch-size", "-4"], "--batch-size must be >= 1"),
    ("negative epochs", ["train", "{f}/ok.npz", "--epochs", "-1", "--quiet"], "epochs must be an integer >= 0"),
    ("learning rate NaN", ["train", "{f}/ok.npz", *T, "--lr", "nan"], "--lr must be a positive number"),
    ("negative patience", ["train", "{f}/ok.npz", *T, "--patience", "-1"], "--patience must be >= 0"),
    ("bad layer spec", ["train", "{f}/ok.npz", "--layers", "lstm:0", "--quiet"], "--layers item 0"),
    ("nproc 0", ["train", "{f}/ok.npz", *T, "--nproc", "0"], "--nproc must be >= 1"),
    ("checkpoint-every 0", ["train", "{f}/ok.npz", *T, "--checkpoint-every", "0", "--out", "{run}"], "--checkpoint-every must be"),
    ("validation with an unknown class", ["train", "{f}/ok.npz", *T, "--val", "{f}/unknownclass.npz"],
     "label 'zzz' of sequence 1 is not a class"),
    ("out exists", ["train", "{f}/ok.npz", *T, "--out", "{run}"], "model.safetensors exists"),
    ("overwrite, but bad data", ["train", "{f}/nan.npz", *T, "--out", "{run}", "--overwrite"], "NaN"),
    ("resume from nothing", ["train", "{f}/ok.npz", *T, "--resume", "{f}/emptydir"], "no checkpoint there"),
    ("resume another model", ["train", "{f}/ok.npz", "--epochs", "2", "--layers", "gru:5", "--quiet", "--resume", "{run}"],
     r"different model: layer 1 \(GRU\) differs: units 4 vs 5"),
    ("resume other data", ["train", "{f}/threefeatures.npz", *T, "--resume", "{run}"], "different model"),
    ("evaluate a truncated model", ["evaluate", "{f}/trunc.safetensors", "{f}/ok.npz"], "truncated or corrupted"),
    ("evaluate a checkpoint pointer", ["evaluate", "{run}/checkpoints/latest.json", "{f}/ok.npz"], "not a readable padless model"),
    ("evaluate other feature count", ["evaluate", "{run}/model.safetensors", "{f}/threefeatures.npz"],
     "expects 2 features per step; the data has 3"),
    ("evaluate unlabelled data", ["evaluate", "{run}/model.safetensors", "{f}/nolabels.npz"], "evaluate needs labels"),
    ("predict unknown class names", ["predict", "{run}/model.safetensors", "{f}/unknownclass.npz", "--out", "{run}/p.csv",
                                     "--overwrite"], "label 'zzz' of sequence 1 is not a class the model knows"),
    ("predict batch size -1", ["predict", "{run}/model.safetensors", "{f}/ok.npz", "--out", "{run}/q.csv", "--batch-size", "-1"],
     "batch_size must be a positive integer"),
    ("predict over existing output", ["predict", "{run}/model.safetensors", "{f}/ok.npz", "--out", "{run}/p.csv"], "exists"),
]


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv, pattern", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_and_files(argv, pattern, files, run, monkeypatch):
    monkeypatch.setenv("PADLESS_TUNE_MALLOC", "0")
    trunc = files / "trunc.safetensors"
    if not trunc.exists():
        trunc.write_bytes((run / "model.safetensors").read_bytes()[:300])
    before = _snapshot(run)
    rc, out, err = cli(*[a.format(f=files, run=run) for a in argv])
    assert rc == 2, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"padless {argv[0]}: error: ")
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert _snapshot(run) == before, "a failing run changed files on disk"


def test_tampered_checkpoint_on_resume_fails_in_one_line_and_touches_nothing(files, run, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("PADLESS_TUNE_MALLOC", "0")
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    latest = json.loads((copy / "checkpoints" / "latest.json").read_text())
    f = copy / "checkpoints" / latest["file"]
    data = bytearray(f.read_bytes())
    data[-10] ^= 0x55
    f.write_bytes(bytes(data))
    before = _snapshot(copy)
    rc, _, err = cli("train", files / "ok.npz", *T, "--out", copy, "--resume", copy)
    assert rc == 2 and "failed its checksum" in err and len(err.strip().splitlines()) == 1, err
    assert _snapshot(copy) == before


def test_real_process_prints_one_line_and_no_traceback(files):
    r = subprocess.run([sys.executable, "-m", "padless", "train", str(files / "object.npz"), "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
