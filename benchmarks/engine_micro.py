"""Micro-benchmark of the packed recurrent engine against the dense oneDNN kernel, side by side.

Scenarios (CPU, torch's default thread count unless ``--threads``):

  jv        JapaneseVowels-like: F=12, H=100, B=32, lengths uniform in 7..26, one LSTM layer
  jv2       the same with 2 stacked layers (the second takes H=100 inputs)
  long      F=40, H=64, B=32, lengths uniform in 60..400
  infer     inference only: F=40, H=64, B=256, log-normal lengths (median 120, sigma 0.7, clipped 12..1500)
  stream    one step for 512 rows, F=12, H=100 (streaming inference), packed call vs a raw nn.LSTM step

Variants of each batch: ``dense`` = ``torch.nn.LSTM`` on an equal-length (T, B, F) tensor with
T = round(mean length) - the same number of real steps with no padding, the ceiling the padded kernel
can reach; ``packed`` = :func:`padless.nn.engine.packed_rnn` (compiled engine); ``blocks`` = one dense
call per block of the exact plan (``engine="blocks"``); ``scan`` = today's layer path
(``padless.nn.recurrent.scan`` on the default plan, ``merge_cost=100``, 128-step calls). Training
variants run forward + backward of ``y.sum() + h_n.sum()``; ``no_grad`` variants run forward only.

Method: every repeat runs each variant once on each of several batches (different length draws),
variants interleaved (A, B, C, A, B, C, ...). Reported: the median time per batch, useful (real) steps
per second, and ``x dense`` = the median over repeats of (variant steps/s) / (dense steps/s), a ratio
taken inside each repeat so slow phases of the machine hit both sides alike. On Linux a repeat during
which other processes used more than 10% of the machine (``/proc/stat`` minus this process) is discarded
and run again; the count is printed under each table.

The whole run happens twice, in two child processes: glibc's default allocator, and
``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824`` (large buffers stay on the heap).

Usage: ``python benchmarks/engine_micro.py [--repeats 30] [--batches 4] [--threads N] [--only jv,long]``
(``--child`` runs one allocator setting in this process and prints its table).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from padless.data.collate import RaggedBatch
from padless.nn.engine import engine_status, packed_rnn
from padless.nn.recurrent import scan

TARGETS = {"jv": 1.0, "jv2": 1.0, "long": 0.95, "infer": 0.9}
TUNED_ENV = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824"}


def lengths_for(name: str, rng: np.random.Generator) -> np.ndarray:
    if name in ("jv", "jv2"):
        L = rng.integers(7, 27, 32)
    elif name == "long":
        L = rng.integers(60, 401, 32)
    else:
        L = np.clip(np.round(np.exp(rng.normal(np.log(120.0), 0.7, 256))), 12, 1500).astype(np.int64)
    return np.sort(L)[::-1].copy()


class Case:
    """One batch of one scenario, with every variant as a zero-argument callable."""

    def __init__(self, name: str, lengths: np.ndarray, F: int, H: int, layers: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.real = sum(int(v) for v in lengths)
        B = len(lengths)
        self.T = max(1, round(self.real / B))
        self.dense_steps = self.T * B
        self.lstm = torch.nn.LSTM(F, H, num_layers=layers)
        seqs = [torch.randn(int(L), F, generator=g) for L in lengths]
        packed = torch.nn.utils.rnn.pack_sequence(seqs)
        self.bs = packed.batch_sizes
        self.x = packed.data.clone().requires_grad_()
        self.xd = torch.randn(self.T, B, F, generator=g, requires_grad=True)
        self.layers = layers
        self.rb = RaggedBatch.from_list(seqs, merge_cost=100.0)  # today's default plan
        self.rb_x = self.rb.data.clone().requires_grad_()
        self.single = [torch.nn.LSTM(F if i == 0 else H, H) for i in range(layers)]
        for i, m in enumerate(self.single):  # same weights as the stacked module
            for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(m, f"{n}_l0").data = getattr(self.lstm, f"{n}_l{i}").data

    def _w(self, i: int) -> list[torch.Tensor]:
        return [getattr(self.lstm, f"{n}_l{i}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def dense(self) -> None:
        y, (h, _) = self.lstm(self.xd)
        (y.sum() + h[-1].sum()).backward()

    def dense_ng(self) -> None:
        with torch.no_grad():
            self.lstm(self.xd)

    def _packed(self, engine: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.x
        for i in range(self.layers):
            y, h, _ = packed_rnn("lstm", y, self.bs, *self._w(i), engine=engine)
        return y, h

    def packed(self) -> None:
        y, h = self._packed("packed")
        (y.sum() + h.sum()).backward()

    def packed_ng(self) -> None:
        with torch.no_grad():
            self._packed("packed")

    def blocks(self) -> None:
        y, h = self._packed("blocks")
        (y.sum() + h.sum()).backward()

    def blocks_ng(self) -> None:
        with torch.no_grad():
            self._packed("blocks")

    def _scan(self) -> torch.Tensor:
        y = self.rb_x
        for m in self.single:
            y, _ = scan(m, y, self.rb, None, False)
        return y

    def scan(self) -> None:
        self._scan().sum().backward()

    def scan_ng(self) -> None:
        with torch.no_grad():
            self._scan()


SCENARIOS: dict[str, tuple[int, int, int]] = {"jv": (12, 100, 1), "jv2": (12, 100, 2), "long": (40, 64, 1),
                                               "infer": (40, 64, 1)}


class OtherLoad:
    """CPU used by *other* processes during an interval, as a fraction of the machine (Linux; else 0).

    The machine this was written on is shared: a round during which another process ran is not a
    measurement of this code, so such rounds are discarded and repeated.
    """

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


LOAD = OtherLoad()
MAX_OTHER = 0.10  # discard a round if other processes used more than this share of the machine
DISCARDED: list[int] = [0, 0, 0]  # rounds discarded, rounds kept, rounds kept under load (gave up waiting)


def measure(fns: dict[str, Callable[[], None]], steps: dict[str, float], repeats: int,
            warmup: int = 3) -> dict[str, tuple[float, float]]:
    """Interleaved timing; returns variant -> (median seconds, median x-dense ratio)."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    kept, tries = 0, 0
    while kept < repeats and tries < 8 * repeats:
        tries += 1
        a = LOAD.snap()
        row = {}
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            row[k] = time.perf_counter() - t0
        loaded = LOAD.fraction(a, LOAD.snap()) > MAX_OTHER
        if loaded and tries < 8 * repeats:
            DISCARDED[0] += 1
            time.sleep(0.2)
            continue
        kept += 1
        DISCARDED[1] += 1
        DISCARDED[2] += int(loaded)
        for k, v in row.items():
            times[k].append(v)
    base = next(iter(fns))
    out = {}
    for k, ts in times.items():
        ratios = [(steps[k] / t) / (steps[base] / tb) for t, tb in zip(ts, times[base])]
        out[k] = (float(np.median(ts)), float(np.median(ratios)))
    return out


def run_scenario(name: str, repeats: int, batches: int, rows: list[list[str]]) -> None:
    F, H, layers = SCENARIOS[name]
    rng = np.random.default_rng(1234)
    cases = [Case(name, lengths_for(name, rng), F, H, layers, seed=i) for i in range(batches)]
    real = sum(c.real for c in cases)
    dense_steps = sum(c.dense_steps for c in cases)
    modes = [("no_grad", True)] if name == "infer" else [("train", False), ("no_grad", True)]
    for label, ng in modes:
        names = ["dense", "packed", "blocks", "scan"]
        fns = {}
        for v in names:
            attr = v + ("_ng" if ng else "")
            fns[v] = (lambda a=attr: [getattr(c, a)() for c in cases])
        steps = {v: float(dense_steps if v == "dense" else real) for v in names}
        reps = max(3, repeats // (4 if name in ("long", "infer") else 1))
        before = DISCARDED[2]
        res = measure(fns, steps, reps)
        flag = " (load!)" if DISCARDED[2] > before else ""
        for v in names:
            sec, ratio = res[v]
            target = TARGETS.get(name) if v == "packed" else None
            verdict = "" if target is None else (f">= {target:.2f}: " + ("yes" if ratio >= target else "NO") + flag)
            rows.append([name, label, v, f"{sec / batches * 1e3:.2f}", f"{steps[v] / sec:,.0f}",
                         f"{ratio:.2f}", verdict])


def run_stream(repeats: int, rows: list[list[str]]) -> None:
    F, H, B = 12, 100, 512
    lstm = torch.nn.LSTM(F, H)
    x = torch.randn(B, F)
    h, c = torch.randn(B, H), torch.randn(B, H)
    bs = torch.tensor([B])
    w = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0]
    x3, h3, c3 = x.unsqueeze(0), h.unsqueeze(0), c.unsqueeze(0)

    def raw() -> None:
        with torch.no_grad():
            lstm(x3, (h3, c3))

    def packed() -> None:
        with torch.no_grad():
            packed_rnn("lstm", x, bs, *w, h0=h, c0=c)

    n = 20

    def rep(f: Callable[[], None]) -> Callable[[], None]:
        return lambda: [f() for _ in range(n)]

    before = DISCARDED[2]
    res = measure({"dense": rep(raw), "packed": rep(packed)}, {"dense": 1.0, "packed": 1.0}, repeats * 2)
    flag = " (load!)" if DISCARDED[2] > before else ""
    for v in ("dense", "packed"):
        sec, ratio = res[v]
        cost = 1 / ratio  # time relative to the raw step
        verdict = "" if v == "dense" else ("<= 2.00x the raw step: " + ("yes" if cost <= 2.0 else "NO") + flag)
        rows.append(["stream", "no_grad", "raw nn.LSTM step" if v == "dense" else "packed",
                     f"{sec / n * 1e3:.3f}", f"{B / (sec / n):,.0f}", f"{ratio:.2f}", verdict])


def child(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    st = engine_status()
    load_s = time.perf_counter() - t0
    if not st.available:
        print(f"packed engine unavailable: {st.reason}")
        sys.exit(1)
    alloc = "tuned (MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ = 1 GiB)" if os.environ.get(
        "MALLOC_MMAP_THRESHOLD_") else "glibc default"
    print(f"### allocator: {alloc}\n")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"engine: {st.info} ({'compiled' if st.compiled_now else 'loaded'} in {load_s:.1f} s); "
          f"repeats {args.repeats}, {args.batches} batches per scenario\n")
    rows: list[list[str]] = []
    only = args.only.split(",") if args.only else ["jv", "jv2", "long", "infer", "stream"]
    for name in only:
        if name == "stream":
            run_stream(args.repeats, rows)
        else:
            run_scenario(name, args.repeats, args.batches, rows)
    head = ["scenario", "mode", "variant", "ms / batch", "useful steps/s", "x dense", "target"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\n{DISCARDED[1]} rounds kept, {DISCARDED[0]} discarded because other processes used more than "
          f"{MAX_OTHER:.0%} of the machine during them" + (
              f"; {DISCARDED[2]} rounds kept although loaded (rows marked 'load!')" if DISCARDED[2] else "") + ".\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--only", default="")
    ap.add_argument("--allocator", choices=["both", "default", "tuned"], default="both")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    print(f"# packed engine micro-benchmark ({time.strftime('%Y-%m-%d %H:%M')})\n")
    settings = {"both": ["default", "tuned"], "default": ["default"], "tuned": ["tuned"]}[args.allocator]
    for s in settings:
        env = {k: v for k, v in os.environ.items() if k not in TUNED_ENV}
        if s == "tuned":
            env.update(TUNED_ENV)
        cmd = [sys.executable, __file__, "--child", "--repeats", str(args.repeats), "--batches", str(args.batches),
               "--threads", str(args.threads), "--only", args.only]
        sys.stdout.flush()
        subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
