"""Throughput of padless against the usual ways, measured side by side in one run.

Training model: 2 x LSTM(H) + Dense(K), batch 32, RMSprop(1e-3), cross-entropy; one training epoch per
measurement (H = 100, 64 on the log-normal mix). Training variants (the anchors of
``shared/anchors/RESULTS.md``, reproduced in plain PyTorch, and padless):

  b  pad every sequence to the global max, random batches, gather the last real output
  c  random batches, pad to the batch max, ``pack_padded_sequence`` (PyTorch's "correct" path)
  d  length-sorted batches, shuffled order, pad to the batch max, gather
  e  equal-length ceiling: the same number of real steps laid out as (N, round(mean), F)
  P  padless ``model.fit(x, y, batch_size=32, epochs=1)`` with default settings (the packed engine)
  B  the same with ``PADLESS_ENGINE=blocks`` (one dense call per block: the engine before issue 11)
  T  padless ``fit(..., tbptt=K)``: truncated BPTT in 32 slots (K = 64 on PLAID, 128 on the log-normal mix)
  TB T with the block engine

Inference variants: ``ie`` the dense kernel forward-only at equal length (same real steps), ``ip``/``iv``
padless ``predict``/``evaluate`` at batch 256, ``iB`` predict with the block engine; streaming: ``sr`` a raw
2 x ``nn.LSTM`` step on N rows carrying states, ``sp``/``sB`` :class:`padless.Stream` ``feed_many`` with one
step for each of N live streams (N = 512 and 64; 100 calls per measurement).

Every variant keeps its own model; repeats are interleaved (round 1 of every variant, then round 2, ...) and
*x ceiling* is the median over rounds of the in-round ratio to the reference variant (``e``, ``ie`` or ``sr``),
so slow phases of the machine hit all variants alike. On Linux a round during which other processes used more
than 10% of the machine is discarded and repeated. Each workload is measured twice, in two child processes:
glibc's default allocator settings, and ``padless.runtime.tune_allocator()`` (what the ``padless`` command
line applies). ``--memory`` adds the peak resident memory of one training epoch, packed vs block engine, each in
its own process.

Usage: ``python benchmarks/run.py [--repeats 3] [--only jv,lognormal] [--quick] [--memory] [--out benchmarks/RESULTS.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from padless.bench import (  # noqa: E402
    LABELS,
    make_padless_inference,
    make_padless_variant,
    make_raw_step,
    make_stream_step,
    make_torch_inference,
    make_torch_variant,
    measure,
)
from padless.nn.engine import engine_status  # noqa: E402

# name: (title, variants, reference, default repeats, target for P/T/ip/sp)
WORKLOADS: dict[str, tuple[str, str, str, int]] = {
    "jv": ("JapaneseVowels, 12 features, H 100", "b,c,d,e,P,B", "e", 20),
    "plaid100": ("PLAID lengths, 100 features, H 100", "b,c,d,e,P,B,T,TB", "e", 3),
    "plaid1": ("PLAID lengths, 1 feature, H 100", "d,e,P,B,T,TB", "e", 3),
    "lognormal": ("log-normal mix (median 120, sigma 0.7, 12-1500), 40 features, H 64", "d,e,P,B,T,TB", "e", 3),
    "equal": ("equal lengths (1024 x 100 steps), 40 features, H 100", "e,P,B", "e", 3),
    "infer": ("inference, batch 256, log-normal mix, H 64", "ie,ip,iv,iB", "ie", 10),
    "stream512": ("Stream.feed_many, 512 live streams x 1 step, 2 x LSTM(100), 12 features", "sr,sp,sB", "sr", 10),
    "stream64": ("Stream.feed_many, 64 live streams x 1 step, 2 x LSTM(100), 12 features", "sr,sp,sB", "sr", 10),
}
TARGETS = {"jv": {"P": 1.0}, "plaid100": {"P": 0.95, "T": 0.95}, "plaid1": {"P": 0.95, "T": 0.95},
           "lognormal": {"P": 0.95, "T": 0.95}, "equal": {"P": 0.95}, "infer": {"ip": 0.9, "iv": 0.9},
           "stream512": {"sp": 0.5}, "stream64": {"sp": 0.5}}  # stream: <= 2x the raw step
TBPTT = {"plaid100": 64, "plaid1": 64, "lognormal": 128}
STREAM_CALLS = 100
DATA_FILE: str | None = None  # --data: an .npz written by --export-data (no sktime needed)


def export_data(path: str) -> None:
    """Write the benchmark's inputs (JapaneseVowels train split, PLAID train lengths and labels) to one .npz."""
    import padless.datasets

    (x, y), _ = padless.datasets.load("japanese_vowels")
    (px, py), _ = padless.datasets.load("plaid")
    np.savez_compressed(path, jv_values=np.asarray(x.values), jv_offsets=x.offsets, jv_labels=np.asarray(y),
                        plaid_lengths=px.lengths, plaid_labels=np.asarray(py))


def lognormal_lengths(n: int = 1000, seed: int = 1234) -> np.ndarray:
    """The fixed-seed log-normal (speech-like) length mix: median 120, sigma 0.7, clipped to 12-1500."""
    rng = np.random.default_rng(seed)
    return np.clip(np.round(np.exp(np.log(120) + 0.7 * rng.standard_normal(n))), 12, 1500).astype(np.int64)


def _jv_and_plaid() -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    if DATA_FILE is not None:
        with np.load(DATA_FILE) as z:
            off = z["jv_offsets"]
            xs = [np.asarray(z["jv_values"][off[i] : off[i + 1]], dtype=np.float32) for i in range(len(off) - 1)]
            return xs, np.asarray(z["jv_labels"]), np.asarray(z["plaid_lengths"]), np.asarray(z["plaid_labels"])
    import padless.datasets

    (x, y), _ = padless.datasets.load("japanese_vowels")
    (px, py), _ = padless.datasets.load("plaid")
    return [np.asarray(s, dtype=np.float32) for s in x.to_list()], np.asarray(y), px.lengths, np.asarray(py)


def load(name: str, quick: bool) -> tuple[list[np.ndarray], np.ndarray, int, int]:
    """The inputs of a training/inference workload: (sequences, labels, classes, hidden size)."""
    rng = np.random.default_rng(0)
    if name == "jv":
        xs, y, _, _ = _jv_and_plaid()
        K, hidden = 9, 100
    elif name in ("plaid100", "plaid1"):
        _, _, lengths, y = _jv_and_plaid()
        F = 100 if name == "plaid100" else 1
        xs = [rng.standard_normal((int(t), F)).astype(np.float32) for t in lengths]
        K, hidden = 11, 100
    elif name in ("lognormal", "infer"):
        xs = [rng.standard_normal((int(t), 40)).astype(np.float32) for t in lognormal_lengths()]
        y, K, hidden = rng.integers(0, 5, len(xs)), 5, 64
    elif name == "equal":
        xs = [rng.standard_normal((100, 40)).astype(np.float32) for _ in range(1024)]
        y, K, hidden = rng.integers(0, 5, len(xs)), 5, 100
    else:
        raise ValueError(name)
    if quick:
        xs, y = xs[:64], y[:64]
    return xs, np.asarray(y), K, hidden


def variants_for(name: str, keys: list[str], quick: bool) -> dict[str, Callable[[], int]]:
    if name.startswith("stream"):
        n = int(name[len("stream"):])
        calls = 5 if quick else STREAM_CALLS
        makers = {"sr": lambda: make_raw_step(n, 12, 100, calls), "sp": lambda: make_stream_step(n, 12, 100, calls),
                  "sB": lambda: make_stream_step(n, 12, 100, calls, engine_name="blocks")}
        return {k: makers[k]() for k in keys}
    xs, y, K, hidden = load(name, quick)
    vs: dict[str, Callable[[], int]] = {}
    for k in keys:
        if k == "P":
            vs[k] = make_padless_variant(xs, y, K, 0, hidden)
        elif k == "B":
            vs[k] = make_padless_variant(xs, y, K, 0, hidden, engine_name="blocks")
        elif k in ("T", "TB"):
            vs[k] = make_padless_variant(xs, y, K, 0, hidden, engine_name="blocks" if k == "TB" else None,
                                         tbptt=TBPTT[name])
        elif k == "ie":
            vs[k] = make_torch_inference(xs, K, hidden, 256)
        elif k in ("ip", "iv", "iB"):
            vs[k] = make_padless_inference(xs, y, K, hidden, 256, "evaluate" if k == "iv" else "predict",
                                           engine_name="blocks" if k == "iB" else None)
        else:
            vs[k] = make_torch_variant(k, xs, y, K, 0, hidden)
    return vs


def child(name: str, keys: list[str], repeats: int, tuned: bool, quick: bool, threads: int) -> dict[str, Any]:
    """Measure one workload in this process."""
    if not torch.cuda.is_available():
        torch.set_num_threads(threads)
    if tuned:
        from padless.runtime import tune_allocator

        if not tune_allocator():
            return {"skipped": "allocator tuning not available on this platform"}
    ref = WORKLOADS[name][2]
    return measure(variants_for(name, keys, quick), repeats, ref=ref, max_other=None if quick else 0.10)


def memory_child(name: str, engine_name: str, threads: int, quick: bool) -> dict[str, Any]:
    """Peak resident memory growth over one training epoch (this process, default allocator)."""
    torch.set_num_threads(threads)
    xs, y, K, hidden = load(name, quick)
    engine_status()  # the compiled engine's library is loaded in both runs alike
    epoch = make_padless_variant(xs, y, K, 0, hidden, engine_name=None if engine_name == "packed" else "blocks")
    with open("/proc/self/statm") as f:
        before_kib = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    epoch()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_growth_mib": (peak_kib - before_kib) / 1024}


def run_child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=dict(os.environ))
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULT@@")]
    if proc.returncode != 0 or not line:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(1)
    return json.loads(line[0][len("@@RESULT@@"):])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=None, help="rounds per workload (default: per workload)")
    ap.add_argument("--quick", action="store_true", help="tiny subsets, 1 repeat: a smoke test, not a measurement")
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads: " + ", ".join(WORKLOADS))
    ap.add_argument("--variants", default=None, help="comma-separated variants to keep (default: all of each)")
    ap.add_argument("--allocator", default="both", choices=["default", "tuned", "both"])
    ap.add_argument("--memory", action="store_true", help="also measure peak memory, packed vs block engine")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("--data", default=None, help="read the inputs from an .npz made by --export-data (no sktime)")
    ap.add_argument("--export-data", default=None, help="write the inputs to this .npz and exit")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    global DATA_FILE
    DATA_FILE = a.data
    if a.export_data:
        export_data(a.export_data)
        print(f"wrote {a.export_data}")
        return 0
    if a.memory_child:
        name, eng = a.memory_child.split(":")
        print("@@RESULT@@" + json.dumps(memory_child(name, eng, a.threads, a.quick)))
        return 0
    if a.child:
        name, tuned = a.child.split(":")
        keys = [k for k in WORKLOADS[name][1].split(",") if a.variants is None or k in a.variants.split(",")]
        reps = 1 if a.quick else (a.repeats or WORKLOADS[name][3])
        print("@@RESULT@@" + json.dumps(child(name, keys, reps, tuned == "1", a.quick, a.threads)))
        return 0
    status = engine_status()
    print(status, flush=True)
    names = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {', '.join(unknown)}; use: {', '.join(WORKLOADS)}")
    modes = {"default": ["0"], "tuned": ["1"], "both": ["0", "1"]}[a.allocator]
    common = [*(["--data", a.data] if a.data else []), "--threads", str(a.threads),
              *(["--repeats", str(a.repeats)] if a.repeats else []), *(["--variants", a.variants] if a.variants else []),
              *(["--quick"] if a.quick else [])]
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        for tuned in modes:
            print(f"== {WORKLOADS[name][0]} (allocator {'tuned' if tuned == '1' else 'default'})", flush=True)
            res = run_child(["--child", f"{name}:{tuned}", *common])
            results[f"{name}:{tuned}"] = res
            for k, r in res.items():
                if isinstance(r, dict):
                    print(f"  {k}: median {r['median_s']:.3f}s  {r['steps_per_s']:,.0f} steps/s  "
                          f"x {r.get('x_ref', float('nan')):.3f}", flush=True)
    memory: dict[str, dict[str, float]] = {}
    if a.memory:
        for name in ("plaid100", "lognormal"):
            memory[name] = {}
            for eng in ("packed", "blocks"):
                memory[name][eng] = run_child(["--memory-child", f"{name}:{eng}", *common])["peak_growth_mib"]
                print(f"  memory {name} {eng}: +{memory[name][eng]:.0f} MiB", flush=True)
    text = report(results, memory, a, str(status))
    if not a.quick:
        Path(a.out).write_text(text)
        Path(a.out).with_suffix(".json").write_text(json.dumps({"results": results, "memory": memory}, indent=1))
        print(f"wrote {a.out}")
    print(text)
    return 0


def _label(name: str, k: str) -> str:
    label = LABELS.get(k, k)
    if k in ("T", "TB") and name in TBPTT:
        label = label.replace("tbptt", f"tbptt={TBPTT[name]}")
    return f"{k}: {label}"


def report(results: dict[str, Any], memory: dict[str, dict[str, float]], a: argparse.Namespace, status: str) -> str:
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores), {a.threads} threads"
    lines = [
        "# Benchmark: padless against plain PyTorch, side by side",
        "",
        f"`python benchmarks/run.py{' --memory' if memory else ''}` on {dev}; torch {torch.__version__}, python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}; {status}.",
        "",
        "Training: 2 x LSTM(H) + Dense, batch 32, one epoch per measurement; inference: batch 256; Stream: "
        f"{STREAM_CALLS} feed_many calls per measurement. Median time per measurement after one warm-up, rounds "
        "interleaved across variants. Useful steps/s = real (unpadded) timesteps per second. *x ceiling* = median "
        "over rounds of the in-round ratio to the reference (e, ie or sr) measured in the same process, i.e. "
        "under the same allocator setting. Rounds during which other processes used >10% of the machine were "
        "discarded and repeated.",
        "",
    ]
    for key, res in results.items():
        name, tuned = key.split(":")
        alloc = "tuned allocator (`padless.runtime.tune_allocator()`, applied to every variant)" if tuned == "1" \
            else "default glibc allocator"
        lines += [f"## {WORKLOADS[name][0]} - {alloc}", ""]
        if "skipped" in res:
            lines += [f"skipped: {res['skipped']}", ""]
            continue
        stream = name.startswith("stream")
        unit = "ms per call" if stream else "median s"
        lines += [f"| variant | {unit} | useful steps/s | x ceiling | target |", "|---|---|---|---|---|"]
        for k, r in res.items():
            t = r["median_s"] / (r["real_steps"] / int(name[len("stream"):])) * 1e3 if stream else r["median_s"]
            target = TARGETS.get(name, {}).get(k)
            tgt = "-" if target is None else (f"<= {1 / target:.0f}x the raw step's time" if stream else f">= {target}")
            lines.append(f"| {_label(name, k)} | {t:.3f} | {r['steps_per_s']:,.0f} | {r.get('x_ref', float('nan')):.3f} "
                         f"| {tgt} |")
        rounds = next(iter(res.values())).get("rounds", {})
        if rounds:
            lines.append(f"\n{rounds['kept']} rounds kept, {rounds['discarded']} discarded under load"
                         + (f", {rounds['kept_under_load']} kept under load" if rounds["kept_under_load"] else ""))
        lines.append("")
    if memory:
        lines += ["## Peak training memory, one epoch (growth of the peak resident set, default allocator)", "",
                  "| workload | packed engine | block engine |", "|---|---|---|"]
        for name, m in memory.items():
            lines.append(f"| {WORKLOADS[name][0]} | {m['packed']:.0f} MiB | {m['blocks']:.0f} MiB |")
        lines.append("")
    lines += [
        "## Notes",
        "",
        "- P, T, ip, iv and sp run the packed engine (`padless.nn.engine`): every recurrent layer runs a whole "
        "ragged batch in one compiled call per direction (input projections as one GEMM over all positions, one "
        "GEMM on the active rows per step, fused gates); TBPTT slots start a row's next sequence at the step the "
        "previous one ends (a per-row reset). B, TB and iB run the block engine (one dense oneDNN call per block "
        "of rows that share a length, neighbouring blocks merged when padding costs less than a call, 128-step "
        "calls). Both are exact (tests/nn/test_exactness.py, tests/engine).",
        "- The ceiling's batches are all round(mean) steps long; length-bucketed batches of 32 have more "
        "sequential steps per epoch than that, so the ratio also carries the cost of sequential depth.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
