"""Throughput comparison of batching strategies: plain-PyTorch baselines and padless, side by side.

Owns: the baseline training epochs (pad to global max, packed, sorted buckets, equal-length ceiling),
the padless epoch (either recurrent engine), the inference passes (padless ``predict``/``evaluate`` against
the dense kernel at equal length; :class:`~padless.nn.stream.Stream` against a raw ``nn.LSTM`` step), and
:func:`measure` (interleaved repeats, medians). Used by ``padless demo``, ``padless bench`` and
``benchmarks/run.py`` (which writes ``benchmarks/RESULTS.md``).

Does not own: data sets or report files.

Example:
    >>> import numpy as np
    >>> xs = [np.random.rand(t, 3).astype("float32") for t in (4, 6, 5, 3)]
    >>> res = measure({"P": make_padless_variant(xs, np.array([0, 1, 0, 1]), 2, seed=0)}, repeats=1)
    >>> res["P"]["real_steps"]
    18
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from padless.data.ragged import RaggedArray
from padless.models import Sequential
from padless.nn.core import Dense
from padless.nn.recurrent import LSTM
from padless.nn.stream import Stream

__all__ = ["make_torch_variant", "make_padless_variant", "make_torch_inference", "make_padless_inference",
           "make_raw_step", "make_stream_step", "measure", "OtherLoad", "engine", "LABELS", "B", "H", "DEVICE"]

B, H = 32, 100
# Everything runs on the GPU when there is one (cuDNN underneath nn.LSTM), else on the CPU.
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


class TorchNet(nn.Module):
    """The baselines' network: 2 x ``nn.LSTM(H)`` + ``nn.Linear`` (the same sizes as the padless model)."""

    def __init__(self, F: int, K: int, hidden: int = H) -> None:
        super().__init__()
        self.l1, self.l2 = nn.LSTM(F, hidden, batch_first=True), nn.LSTM(hidden, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, K)


@contextlib.contextmanager
def engine(name: str | None) -> Iterator[None]:
    """Run the block with ``PADLESS_ENGINE=name`` (None: leave the setting alone)."""
    if name is None:
        yield
        return
    old = os.environ.get("PADLESS_ENGINE")
    os.environ["PADLESS_ENGINE"] = name
    try:
        yield
    finally:
        if old is None:
            del os.environ["PADLESS_ENGINE"]
        else:
            os.environ["PADLESS_ENGINE"] = old


def _opt(params: Any) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, eps=1e-7)


def make_torch_variant(kind: str, xs: list[np.ndarray], y: np.ndarray, K: int, seed: int,
                       hidden: int = H) -> Callable[[], int]:
    """Return a function running one epoch of baseline ``kind``; it returns the real steps trained."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    F = xs[0].shape[1]
    net = TorchNet(F, K, hidden).to(DEVICE)
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


def _padless_model(F: int, K: int, hidden: int) -> Sequential:
    model = Sequential([LSTM(hidden, return_sequences=True, input_shape=(None, F)), LSTM(hidden),
                        Dense(K, activation="softmax")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    return model.to(DEVICE)


def make_padless_variant(xs: list[np.ndarray], y: np.ndarray, K: int, seed: int, hidden: int = H,
                         engine_name: str | None = None, **fit_kw: Any) -> Callable[[], int]:
    """Return a function running one padless ``fit`` epoch (2 x LSTM(hidden) + Dense); it returns the real steps.

    ``engine_name`` sets ``PADLESS_ENGINE`` for the epoch (``"blocks"``: the block engine)."""
    torch.manual_seed(seed)
    model = _padless_model(xs[0].shape[1], K, hidden)
    ra = RaggedArray.from_list(xs)
    state = {"epoch": 0}

    def epoch() -> int:
        with engine(engine_name):
            model.fit(ra, y, batch_size=B, epochs=state["epoch"] + 1, initial_epoch=state["epoch"], verbose=0,
                      seed=seed, **fit_kw)
        _sync()
        state["epoch"] += 1
        return ra.total_steps

    return epoch


def make_torch_inference(xs: list[np.ndarray], K: int, hidden: int, batch: int) -> Callable[[], int]:
    """The dense kernel's inference ceiling: the same real steps as ``xs`` laid out at equal length
    (N, round(mean), F), forward only in batches of ``batch``."""
    torch.manual_seed(0)
    lengths = np.array([len(s) for s in xs])
    T = int(round(lengths.mean()))
    N = int(lengths.sum() // T)
    net = TorchNet(xs[0].shape[1], K, hidden).to(DEVICE).eval()
    X = torch.randn(N, T, xs[0].shape[1], device=DEVICE)  # (N, T, F)

    def run() -> int:
        with torch.no_grad():
            for a in range(0, N, batch):
                o, _ = net.l1(X[a : a + batch])
                _, (h, _) = net.l2(o)
                net.fc(h[-1]).softmax(-1).cpu()
        return N * T

    return run


def make_padless_inference(xs: list[np.ndarray], y: np.ndarray, K: int, hidden: int, batch: int, what: str = "predict",
                           engine_name: str | None = None) -> Callable[[], int]:
    """padless ``predict`` (or ``evaluate``) on ``xs`` in batches of ``batch``; returns the real steps."""
    torch.manual_seed(0)
    model = _padless_model(xs[0].shape[1], K, hidden)
    ra = RaggedArray.from_list(xs)

    def run() -> int:
        with engine(engine_name):
            if what == "evaluate":
                model.evaluate(ra, y, batch_size=batch, verbose=0)
            else:
                model.predict(ra, batch_size=batch, verbose=0)
        return ra.total_steps

    return run


def make_raw_step(n: int, F: int, hidden: int = H, calls: int = 100) -> Callable[[], int]:
    """``calls`` single steps of a raw 2 x ``nn.LSTM`` (+ Linear) on ``n`` rows carrying their states."""
    torch.manual_seed(0)
    net = TorchNet(F, 2, hidden).to(DEVICE).eval()
    x = torch.randn(n, 1, F, device=DEVICE)  # (N, 1, F)

    def run() -> int:
        with torch.no_grad():
            s1 = s2 = None
            for _ in range(calls):
                o, s1 = net.l1(x, s1)
                o, s2 = net.l2(o, s2)
                net.fc(o[:, -1]).cpu()
        _sync()
        return n * calls

    return run


def make_stream_step(n: int, F: int, hidden: int = H, calls: int = 100,
                     engine_name: str | None = None) -> Callable[[], int]:
    """``calls`` rounds of :meth:`Stream.feed_many` feeding one step to each of ``n`` live streams."""
    torch.manual_seed(0)
    model = _padless_model(F, 2, hidden)
    rng = np.random.default_rng(0)
    chunks = {i: rng.standard_normal((1, F)).astype(np.float32) for i in range(n)}
    stream = Stream(model)

    def run() -> int:
        with engine(engine_name):
            for _ in range(calls):
                stream.feed_many(chunks)
        _sync()
        return n * calls

    return run


class OtherLoad:
    """CPU used by *other* processes during an interval, as a fraction of the machine (Linux; else 0)."""

    def __init__(self) -> None:
        self.ok = os.path.exists("/proc/stat")
        self.tck = os.sysconf("SC_CLK_TCK") if self.ok else 100
        self.ncpu = os.cpu_count() or 1

    def snap(self) -> tuple[float, float, float]:
        if not self.ok:
            return 0.0, 0.0, time.perf_counter()
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        t = os.times()
        return float(sum(v) - v[3] - v[4]), (t.user + t.system) * self.tck, time.perf_counter()

    def fraction(self, a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
        if not self.ok:
            return 0.0
        dt = max(b[2] - a[2], 1e-9)
        return max(0.0, ((b[0] - a[0]) - (b[1] - a[1])) / (dt * self.tck * self.ncpu))


def measure(variants: dict[str, Callable[[], int]], repeats: int, ref: str | None = None,
            max_other: float | None = None) -> dict[str, dict[str, Any]]:
    """Interleaved: a warm-up run of each, then ``repeats`` rounds of one run of each.

    Args:
        variants: name -> function running one epoch (or pass); returns the real steps it ran.
        repeats: rounds kept.
        ref: a variant whose steps/s each round's ratios are taken against (``x_ref``: the median over
            rounds of the in-round ratio, so slow phases of the machine hit both sides alike).
        max_other: discard (and repeat, up to 4x ``repeats`` tries) a round during which other processes
            used more than this share of the machine; rounds kept under load anyway are counted.
    """
    load = OtherLoad()
    times: dict[str, list[float]] = {k: [] for k in variants}
    steps: dict[str, int] = {}
    warm: dict[str, float] = {}
    for k, f in variants.items():
        t = time.perf_counter()
        steps[k] = f()
        warm[k] = time.perf_counter() - t
    kept = tries = discarded = loaded_kept = 0
    while kept < repeats:
        tries += 1
        a = load.snap()
        row = {}
        for k, f in variants.items():
            t = time.perf_counter()
            f()
            row[k] = time.perf_counter() - t
        loaded = max_other is not None and load.fraction(a, load.snap()) > max_other
        if loaded and tries < 4 * repeats:
            discarded += 1
            continue
        kept += 1
        loaded_kept += int(loaded)
        for k, v in row.items():
            times[k].append(v)
    out: dict[str, dict[str, Any]] = {}
    rounds = {"kept": kept, "discarded": discarded, "kept_under_load": loaded_kept}
    for k in variants:
        med = statistics.median(times[k])
        out[k] = {"warmup_s": warm[k], "epochs_s": times[k], "median_s": med, "real_steps": steps[k],
                  "steps_per_s": steps[k] / med, "rounds": rounds}
        if ref is not None and ref in variants:
            ratios = [(steps[k] / t) / (steps[ref] / r) for t, r in zip(times[k], times[ref])]
            out[k]["x_ref"] = statistics.median(ratios)
    return out


LABELS = {
    "b": "plain torch: pad to global max, random batches",
    "c": "plain torch: random batches + pack_padded_sequence",
    "d": "plain torch: sorted buckets, padded (gather)",
    "e": "plain torch: equal-length ceiling",
    "P": "**padless fit (defaults)**",
    "B": "padless fit, block engine (`PADLESS_ENGINE=blocks`)",
    "T": "**padless fit, tbptt (32 slots)**",
    "TB": "padless fit, tbptt, block engine",
    "ie": "dense kernel, equal length, forward only",
    "ip": "**padless predict**",
    "iv": "**padless evaluate**",
    "iB": "padless predict, block engine",
    "sr": "raw 2 x nn.LSTM step",
    "sp": "**padless Stream.feed_many, 1 step per stream**",
    "sB": "Stream.feed_many, block engine",
}
