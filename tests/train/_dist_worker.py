"""One rank of a distributed test run (started by tests/train/test_distributed.py with the variables that
torchrun sets: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

Usage: python _dist_worker.py SCENARIO OUTDIR. Each rank writes OUTDIR/rank<r>.json (and weights) for the
test to compare. Scenarios:

* ``equiv``: random batching (batch 4 per rank) and TBPTT (3 slots per rank); the test compares the loss
  curve and final weights with one process on batch 8 / 6 slots. Then a checkpointed run and a fresh
  model resumed from one of its mid-epoch checkpoint files (batches and TBPTT).
* ``many``: 20 seeded length distributions x (bucket, exact, random, tbptt): the number of steps each
  rank ran, and a digest of its weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

from padless import Input, Model, Sequential  # noqa: E402
from padless.layers import GRU, LSTM, Concatenate, Conv1D, Dense, GlobalMaxPooling1D  # noqa: E402
from padless.train.callbacks import Callback  # noqa: E402
from padless.train.checkpoint import load_checkpoint  # noqa: E402


class CountSteps(Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_batch_end(self, batch, logs=None) -> None:  # type: ignore[no-untyped-def]
        self.steps += 1


def data(n: int, seed: int, F: int = 3, lo: int = 1, hi: int = 20) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(lo, hi, n)
    xs = [rng.standard_normal((int(t), F)).astype(np.float32) for t in lengths]
    y = np.array([int(x[:, 0].sum() > 0) + int(len(x) > (lo + hi) // 2) for x in xs])
    return xs, y


def model(kind: str = "gru", seed: int = 0, dropout: float = 0.0) -> Sequential:
    torch.manual_seed(seed)
    cls = GRU if kind == "gru" else LSTM
    rec = cls(6, input_size=3, return_sequences=True, dropout=dropout)
    m = Sequential([rec, LSTM(5), Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"], lr=0.01)
    return m


def fmodel(seed: int = 0) -> Model:
    """A functional hybrid: a conv branch beside a GRU branch."""
    torch.manual_seed(seed)
    inp = Input(shape=(None, 3))
    conv = GlobalMaxPooling1D()(Conv1D(5, 3, padding="same", activation="relu")(inp))
    m = Model(inp, Dense(3, activation="softmax")(Concatenate()([conv, GRU(5)(inp)])))
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"], lr=0.01)
    return m


def weights(m: Sequential) -> dict[str, list[float]]:
    return {k: v.detach().cpu().reshape(-1).tolist() for k, v in m.state_dict().items()}


def digest(m: Sequential) -> str:
    h = hashlib.sha256()
    for k, v in m.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def equiv(out: Path, rank: int) -> None:
    xs, y = data(64, 0)  # 48 training sequences: 12 batches of 4 = 6 global batches of 8
    res: dict[str, object] = {}
    m = model()
    h = m.fit(xs, y, batch_size=4, epochs=4, batching="random", seed=3, verbose=0, validation_split=0.25)
    res["batch"] = {"history": h.history, "weights": weights(m), "digest": digest(m)}
    m = model("lstm")
    h = m.fit(xs, y, batch_size=3, epochs=3, tbptt=5, seed=4, verbose=0)
    res["tbptt"] = {"history": h.history, "weights": weights(m), "digest": digest(m)}
    m = fmodel()
    h = m.fit(xs, y, batch_size=4, epochs=2, batching="random", seed=3, verbose=0)
    res["functional"] = {"history": h.history, "weights": weights(m), "digest": digest(m)}
    res["resume"] = resume(out)
    (out / f"rank{rank}.json").write_text(json.dumps(res))


def many(out: Path, rank: int) -> None:
    res = []
    for case in range(20):
        rng = np.random.default_rng(1000 + case)
        n = int(rng.integers(1, 30))
        if case == 2:  # all-equal lengths
            n = 1  # fewer sequences than ranks: batches must be repeated, never a hang
        shape = case % 4
        if shape == 0:
            lengths = rng.integers(1, 40, n)
        elif shape == 1:
            lengths = np.maximum(1, rng.geometric(0.1, n))  # heavy tail
        elif shape == 2:
            lengths = np.full(n, int(rng.integers(1, 10)))  # all equal
        else:
            lengths = np.concatenate([rng.integers(1, 3, n), [int(rng.integers(50, 80))]])  # one very long
        xs = [rng.standard_normal((int(t), 3)).astype(np.float32) for t in lengths]
        y = rng.integers(0, 3, len(xs))
        bs = int(rng.integers(1, 7))
        for mode in ("bucket", "exact", "random", "tbptt"):
            m = model(seed=case)
            counter = CountSteps()
            kw = {"tbptt": int(rng.integers(1, 12))} if mode == "tbptt" else {"batching": mode}
            m.fit(xs, y, batch_size=bs, epochs=1, seed=case, verbose=0, callbacks=[counter], **kw)
            res.append({"case": case, "mode": mode, "n": len(xs), "batch_size": bs, "steps": counter.steps,
                        "digest": digest(m)})
    (out / f"rank{rank}.json").write_text(json.dumps(res))


def resume(out: Path) -> dict[str, object]:
    xs, y = data(40, 1)
    ck = out / "ckpt"
    res: dict[str, object] = {}
    for mode, kw in (("batch", {"batch_size": 4}), ("tbptt", {"batch_size": 3, "tbptt": 4})):
        d = ck / mode
        m = model(dropout=0.3)  # dropout: every rank's generator state must resume too
        m.fit(xs, y, epochs=2, seed=5, verbose=0, checkpoint_dir=d, checkpoint_every=2, keep_checkpoints=100, **kw)
        full = digest(m)
        files = sorted(d.glob("ckpt-*.safetensors"))
        mids = [p for p in files if load_checkpoint(p).state["position"] > 0]
        mid = mids[len(mids) // 2]  # a mid-epoch checkpoint
        m2 = model(seed=99, dropout=0.3)  # other initial weights: everything must come from the checkpoint
        m2.fit(xs, y, epochs=2, verbose=0, resume_from=mid, **kw)
        res[mode] = {"full": full, "resumed": digest(m2), "from": mid.name, "files": len(files)}
    return res


if __name__ == "__main__":
    scenario, outdir = sys.argv[1], Path(sys.argv[2])
    r = int(os.environ.get("RANK", "0"))
    {"equiv": equiv, "many": many}[scenario](outdir, r)
