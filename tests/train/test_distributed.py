"""Data-parallel training on two CPU processes (gloo), started the way torchrun starts them (RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT on 127.0.0.1 with a free port), plus ``padless train --nproc 2``.

What "the same global batch" means here: with ``batching="random"`` the plan of an epoch is one
permutation of the sequences (a function of seed and epoch only), cut into batches in that order. Two ranks
with batch 4 take batches ``2k`` and ``2k+1``, i.e. rows ``8k .. 8k+7`` of the permutation - exactly batch
``k`` of one process with batch 8. The loss is scaled by ``world_size / global item count`` and DDP
averages the gradients, so both runs take the gradient of the same token-weighted mean: the loss curves
and weights agree to float rounding. For TBPTT, two ranks with 3 slots each run slots 0-2 and 3-5 of the
one-process 6-slot schedule: the same windows, the same gradients.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from padless import ConfigError
from padless.data.sources import make_sampler
from padless.train.distributed import setup_distributed
from padless.train.tbptt import shard_windows
from padless.train.tbptt import SlotScheduler

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKER = HERE / "_dist_worker.py"
sys.path.insert(0, str(HERE))
import _dist_worker as worker  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(scenario: str, out: Path, world_size: int = 2, timeout: float = 150.0) -> list[dict]:
    """Start ``world_size`` worker processes like torchrun does; fail (and kill them) if they hang."""
    port = _free_port()
    procs = []
    for r in range(world_size):
        env = dict(os.environ, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, str(WORKER), scenario, str(out)], env=env, cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + timeout
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=max(deadline - time.monotonic(), 1.0)))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"distributed scenario {scenario!r} hung (killed after {timeout:.0f} s)")
    for r, (p, (_, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"rank {r} failed:\n{err[-4000:]}"
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(world_size)]


def _max_diff(a: dict[str, list[float]], b: dict[str, list[float]]) -> float:
    return max(float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) if a[k] else 0.0 for k in a)


@pytest.mark.timeout(240)
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    r0, r1 = launch("equiv", tmp_path)
    xs, y = worker.data(64, 0)
    # batches: one process, batch 8 = two ranks x batch 4 (see the module docstring)
    m = worker.model()
    h = m.fit(xs, y, batch_size=8, epochs=4, batching="random", seed=3, verbose=0, validation_split=0.25,
              distributed=False)
    # TBPTT: one process, 6 slots = two ranks x 3 slots
    mt = worker.model("lstm")
    ht = mt.fit(xs, y, batch_size=6, epochs=3, tbptt=5, seed=4, verbose=0, distributed=False)
    mf = worker.fmodel()  # the functional API (conv branch + GRU branch) under DDP too
    hf = mf.fit(xs, y, batch_size=8, epochs=2, batching="random", seed=3, verbose=0, distributed=False)
    report = {}
    for key, hist, model in (("batch", h, m), ("tbptt", ht, mt), ("functional", hf, mf)):
        assert r0[key]["digest"] == r1[key]["digest"], f"{key}: the ranks' parameters differ after training"
        assert r0[key]["history"] == r1[key]["history"], f"{key}: the ranks report different (unreduced?) metrics"
        curve = {k: hist.history[k] for k in ("loss", "accuracy") + (("val_loss",) if key == "batch" else ())}
        loss_diff = _max_diff(curve, {k: r0[key]["history"][k] for k in curve})
        w_diff = _max_diff(worker.weights(model), r0[key]["weights"])
        report[key] = (loss_diff, w_diff)
        assert loss_diff < 1e-5, f"{key}: 1 vs 2 processes, loss curves differ by {loss_diff}"
        assert w_diff < 1e-4, f"{key}: 1 vs 2 processes, weights differ by {w_diff}"
    print(f"\n1 vs 2 processes, max abs diff (loss curve, weights): {report}")
    # checkpoint + resume across 2 processes (dropout on: each rank's generator resumes) is bitwise exact
    for key in ("batch", "tbptt"):
        for r in (r0, r1):
            res = r["resume"][key]
            assert res["resumed"] == res["full"], f"{key}: resumed from {res['from']} but the weights differ"


@pytest.mark.timeout(240)
def test_equal_step_counts_and_no_hang_over_20_length_distributions(tmp_path):
    r0, r1 = launch("many", tmp_path)
    assert len(r0) == len(r1) == 80
    for a, b in zip(r0, r1):
        assert a["steps"] == b["steps"] > 0, a
        assert a["digest"] == b["digest"], f"parameters differ across ranks: {a}"
    assert any(a["n"] < 2 for a in r0)  # the distributions include a tiny data set (fewer rows than ranks)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_every_rank_gets_the_same_number_of_batches_and_windows(world_size):
    for case in range(20):
        rng = np.random.default_rng(case)
        n = int(rng.integers(1, 60))
        lengths = rng.integers(1, 50, n) if case % 2 else np.maximum(1, rng.geometric(0.05, n))
        bs = int(rng.integers(1, 9))
        for mode in ("bucket", "exact", "random"):
            counts = {len(make_sampler(mode, lengths, bs, True, case, rank=r, world_size=world_size))
                      for r in range(world_size)}
            assert len(counts) == 1 and counts.pop() > 0, (case, mode)
            seen = sorted(i for r in range(world_size)
                          for b in make_sampler(mode, lengths, bs, True, case, rank=r, world_size=world_size) for i in b)
            assert set(seen) == set(range(n)), (case, mode)  # every sequence trains
        sched = SlotScheduler(lengths, bs * world_size, int(rng.integers(1, 20)), seed=case)
        shards = [shard_windows(sched.windows(), r, world_size, bs) for r in range(world_size)]
        assert len({len(s) for s in shards}) == 1  # one window per global window on every rank
        steps = sorted((p.seq, p.start, p.length) for s in shards for w in s for p in w.pieces)
        assert steps == sorted((p.seq, p.start, p.length) for w in sched.windows() for p in w.pieces)


def test_one_process_without_torchrun(monkeypatch):
    for v in ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(v, raising=False)
    assert setup_distributed("auto", torch.device("cpu")) is None
    assert setup_distributed(False, torch.device("cpu")) is None
    with pytest.raises(ConfigError, match="torchrun"):
        setup_distributed(True, torch.device("cpu"))
    with pytest.raises(ConfigError, match="distributed must be"):
        setup_distributed("yes", torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="MASTER_ADDR"):
        setup_distributed("auto", torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="not an integer"):
        setup_distributed("auto", torch.device("cpu"))


@pytest.mark.timeout(240)
def test_cli_nproc_2_trains_checkpoints_and_fails_in_one_line(tmp_path):
    from padless.data import RaggedArray

    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((int(t), 2)).astype(np.float32) for t in rng.integers(3, 15, 40)]
    ra = RaggedArray.from_list(xs)
    np.savez(tmp_path / "d.npz", values=ra.values, offsets=ra.offsets, labels=rng.integers(0, 2, 40))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "padless", "train", str(tmp_path / "d.npz"), "--epochs", "2", "--layers", "gru:4",
           "--batch-size", "4", "--out", str(out), "--quiet", "--nproc", "2", "--checkpoint-every", "3"]
    # --debug: should it fail, the assertion shows the workers' whole output
    r = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True, timeout=200, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("processes: 2") == 1 and r.stdout.count("loss:") == 1  # rank 0 prints, once
    assert (out / "model.safetensors").exists() and (out / "checkpoints" / "latest.json").exists()
    assert len((out / "history.csv").read_text().splitlines()) == 3
    before = (out / "model.safetensors").read_bytes()
    # a worker-side failure (resuming with another batch size) is one line, exit code 2, no traceback
    r = subprocess.run(cmd[:-2] + ["--resume", str(out), "--batch-size", "8"], capture_output=True, text=True,
                       timeout=200, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "batch_size=4" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert (out / "model.safetensors").read_bytes() == before
