"""Throughput comparison of batching strategies: plain-PyTorch baselines and padless, side by side.

Owns: the baseline training epochs (pad to global max, packed, sorted buckets, equal-length ceiling),
the padless epoch, and :func:`measure` (interleaved repeats, medians). Used by ``padless demo``,
``padless bench`` and ``benchmarks/run.py`` (which writes ``benchmarks/RESULTS.md``).

Does not own: data sets or report files.

Example:
    >>> import numpy as np
    >>> xs = [np.random.rand(t, 3).astype("float32") for t in (4, 6, 5, 3)]
    >>> res = measure({"P": make_padless_variant(xs, np.array([0, 1, 0, 1]), 2, seed=0)}, repeats=1)
    >>> res["P"]["real_steps"]
    18
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from padless.data.ragged import RaggedArray
from padless.models import Sequential
from padless.nn.core import Dense
from padless.nn.recurrent import LSTM

__all__ = ["make_torch_variant", "make_padless_variant", "measure", "LABELS", "B", "H", "DEVICE"]

B, H = 32, 100
# Everything runs on the GPU when there is one (cuDNN underneath nn.LSTM), else on the CPU.
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


class TorchNet(nn.Module):
    """The baselines' network: 2 x ``nn.LSTM(H)`` + ``nn.Linear`` (the same sizes as the padless model)."""

    def __init__(self, F: int, K: int) -> None:
        super().__init__()
        self.l1, self.l2, self.fc = nn.LSTM(F, H, batch_first=True), nn.LSTM(H, H, batch_first=True), nn.Linear(H, K)


def _opt(params: Any) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, eps=1e-7)


def make_torch_variant(kind: str, xs: list[np.ndarray], y: np.ndarray, K: int, seed: int) -> Callable[[], int]:
    """Return a function running one epoch of baseline ``kind``; it returns the real steps trained."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    F = xs[0].shape[1]
    net = TorchNet(F, K).to(DEVICE)
    opt = _opt(net.parameters())
    lossf = nn.CrossEntropyLoss()
    lengths = np.array([len(s) for s in xs])
    yt = torch.as_tensor(y, dtype=torch.int64, device=DEVICE)
    tx = [torch.as_tensor(s, dtype=torch.float32, device=DEVICE) for s in xs]
    if kind == "e":
        T = int(round(lengths.mean()))
        N = int(lengths.sum() // T)
        X = torch.randn(N, T, F, device=DEVICE)
        Y = torch.randint(0, K, (N,), device=DEVICE)

        def epoch() -> int:
            perm = rng.permutation(N)
            for a in range(0, N, B):
                bi = torch.as_tensor(perm[a : a + B], device=DEVICE)
                o, _ = net.l1(X[bi])
                _, (h, _) = net.l2(o)
                loss = lossf(net.fc(h[-1]), Y[bi])
                opt.zero_grad()
                loss.backward()
                opt.step()
            _sync()
            return N * T

        return epoch
    if kind == "b":
        Xp = nn.utils.rnn.pad_sequence(tx, batch_first=True)  # (N, Tmax, F)

    def epoch() -> int:
        n = len(xs)
        if kind == "d":
            order = np.argsort(lengths, kind="stable")
            batches = [order[a : a + B] for a in range(0, n, B)]
            rng.shuffle(batches)
        else:
            perm = rng.permutation(n)
            batches = [perm[a : a + B] for a in range(0, n, B)]
        for bi in batches:
            lens = torch.as_tensor(lengths[bi])  # CPU: pack_padded_sequence wants lengths there
            if kind == "b":
                x = Xp[torch.as_tensor(bi, device=DEVICE)]
            else:
                x = nn.utils.rnn.pad_sequence([tx[i] for i in bi], batch_first=True)
            if kind == "c":
                p = nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
                o, _ = net.l1(p)
                _, (h, _) = net.l2(o)
                last = h[-1]
            else:
                o, _ = net.l1(x)
                o, _ = net.l2(o)
                last = o[torch.arange(len(bi), device=DEVICE), (lens - 1).to(DEVICE)]
            loss = lossf(net.fc(last), yt[torch.as_tensor(bi, device=DEVICE)])
            opt.zero_grad()
            loss.backward()
            opt.step()
        _sync()
        return int(lengths.sum())

    return epoch


def make_padless_variant(xs: list[np.ndarray], y: np.ndarray, K: int, seed: int, **fit_kw: Any) -> Callable[[], int]:
    """Return a function running one padless ``fit`` epoch (2 x LSTM(H) + Dense); it returns the real steps."""
    torch.manual_seed(seed)
    F = xs[0].shape[1]
    model = Sequential([LSTM(H, return_sequences=True, input_shape=(None, F)), LSTM(H), Dense(K, activation="softmax")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    ra = RaggedArray.from_list(xs)
    state = {"epoch": 0}

    def epoch() -> int:
        model.fit(ra, y, batch_size=B, epochs=state["epoch"] + 1, initial_epoch=state["epoch"], verbose=0,
                  seed=seed, **fit_kw)
        _sync()
        state["epoch"] += 1
        return ra.total_steps

    return epoch


def measure(variants: dict[str, Callable[[], int]], repeats: int) -> dict[str, dict[str, Any]]:
    """Interleaved: warm-up epoch of each, then ``repeats`` rounds of one epoch of each."""
    times: dict[str, list[float]] = {k: [] for k in variants}
    steps: dict[str, int] = {}
    for k, f in variants.items():
        t = time.perf_counter()
        steps[k] = f()
        times[k].append(time.perf_counter() - t)
    for _ in range(repeats):
        for k, f in variants.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    out = {}
    for k in variants:
        med = statistics.median(times[k][1:])
        out[k] = {"warmup_s": times[k][0], "epochs_s": times[k][1:], "median_s": med, "real_steps": steps[k],
                  "steps_per_s": steps[k] / med}
    return out


LABELS = {
    "b": "plain torch: pad to global max, random batches",
    "c": "plain torch: random batches + pack_padded_sequence",
    "d": "plain torch: sorted buckets, padded (gather)",
    "e": "plain torch: equal-length ceiling",
    "P": "**padless fit (defaults)**",
    "T": "**padless fit, tbptt=64 (32 slots)**",
}
