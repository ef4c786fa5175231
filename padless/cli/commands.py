"""The commands besides ``train``: evaluate, predict, export, inspect, bench, demo.

Owns: :func:`cmd_evaluate`, :func:`cmd_predict` (and :func:`write_predictions`: CSV rows per sequence or
per step, ``.npy``/``.npz``; written atomically), :func:`cmd_export`, :func:`cmd_inspect`,
:func:`cmd_bench`, :func:`cmd_demo`, and :func:`load_predictor` (a saved model, a run folder, a checkpoint
or an exported ``.onnx``). Every model path accepts a run folder (``padless train --out DIR``).

Does not own: parsing (:mod:`padless.cli`), the library calls' behaviour.

Example:
    >>> import io, numpy as np
    >>> buf = io.StringIO()
    >>> write_predictions_csv(buf, np.array([[0.2, 0.8]]), ["a", "b"])
    >>> buf.getvalue().splitlines()[1]
    '0,b,0.200000,0.800000'
"""

from __future__ import annotations

import argparse
import csv
import io
import runpy
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from padless.data.waste import compare_batching, format_table
from padless.datasets import load_data
from padless.demo import run_demo
from padless.errors import ConfigError, DataError
from padless.export import check_export, load_onnx
from padless.io import atomic_write_bytes
from padless.models import load_model
from padless.plots import length_histogram

__all__ = ["cmd_evaluate", "cmd_predict", "cmd_export", "cmd_inspect", "cmd_bench", "cmd_demo", "load_predictor",
           "write_predictions", "write_predictions_csv"]


def load_predictor(path: str) -> Any:
    """A saved model, run folder or checkpoint (padless) or an exported graph (``.onnx``, onnxruntime)."""
    if Path(path).suffix.lower() == ".onnx":
        return load_onnx(path)
    return load_model(path)


def cmd_evaluate(a: argparse.Namespace) -> int:
    """``padless evaluate MODEL DATA``: loss and metrics, one ``name: value`` line each."""
    model = load_model(a.model)
    names = model.preprocessing.get("classes")
    x, y, _ = load_data(a.data, "test", class_names=names)
    if y is None:
        raise DataError(f"{a.data}: no labels found; evaluate needs labels (use predict for unlabelled data)")
    res = model.evaluate(x, y, batch_size=a.batch_size, verbose=0, return_dict=True)
    for k, v in res.items():
        print(f"{k}: {v:.4f}")
    return 0


def write_predictions_csv(f: TextIO, probs: Any, labels: list[str] | None) -> None:
    """CSV: ``index[,step],prediction,p_<class>...`` (one row per sequence, or per step of each sequence)."""
    per_step = isinstance(probs, list)
    width = (probs[0] if per_step else probs).shape[1]
    labels = labels or [str(i) for i in range(width)]
    w = csv.writer(f)
    w.writerow(["index"] + (["step"] if per_step else []) + ["prediction"] + [f"p_{n}" for n in labels])
    for i, seq in enumerate(probs):
        for t, row in enumerate(seq if per_step else [seq]):
            w.writerow([i] + ([t] if per_step else []) + [labels[int(np.argmax(row))]] + [f"{v:.6f}" for v in row])


def write_predictions(out: Path, probs: Any, labels: list[str] | None) -> None:
    """Write ``predict``'s result to ``out`` (.csv, .npy or .npz), atomically."""
    per_step = isinstance(probs, list)  # a per-step model: one (T_i, K) array per sequence
    buf = io.BytesIO()
    if out.suffix in (".npy", ".npz"):
        if per_step:  # ragged: values (sum T_i, K) + offsets (N+1), like RaggedArray
            offsets = np.concatenate([[0], np.cumsum([len(p) for p in probs])]).astype(np.int64)
            np.savez(buf, values=np.concatenate(probs), offsets=offsets)
        elif out.suffix == ".npz":
            np.savez(buf, values=probs)
        else:
            np.save(buf, probs)
        atomic_write_bytes(out, buf.getvalue())
        return
    text = io.StringIO()
    write_predictions_csv(text, probs, labels)
    atomic_write_bytes(out, text.getvalue().encode())


def cmd_predict(a: argparse.Namespace) -> int:
    """``padless predict MODEL DATA --out FILE``: predictions in input order."""
    out = Path(a.out)
    if out.exists() and not a.overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite or another --out")
    model = load_predictor(a.model)
    names = model.preprocessing.get("classes")
    x, _, _ = load_data(a.data, "test", class_names=names)
    probs = model.predict(x, batch_size=a.batch_size, verbose=0)
    write_predictions(out, probs, names)
    per_step = isinstance(probs, list)
    print(f"predictions: {len(probs)} {'sequences (per step)' if per_step else 'sequences'} -> {out}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    """``padless export MODEL OUT.onnx``: the ONNX graph, its size and its agreement with predict."""
    out = Path(a.out)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"{out}: the exported file must end in .onnx")
    if out.exists() and not a.overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite or another OUT")
    model = load_model(a.model)
    model.export(out, streaming=a.streaming, opset=a.opset)
    ins = f"x (batch, time, {model.input_size}), lengths (batch,)"
    if a.streaming:
        ins += ", state per recurrent layer (batch, units)"
    print(f"exported: {out}")
    print(f"opset: {a.opset}")
    print(f"bytes: {out.stat().st_size}")
    print(f"inputs: {ins}")
    if not a.no_check:
        try:
            import onnxruntime  # noqa: F401  (optional: only to say whether the check can run)
        except ImportError:
            print("check: skipped (pip install onnxruntime to compare with predict)")
            return 0
        print(f"max_abs_diff_vs_predict: {check_export(model, out):.3g} (16 random sequences, lengths 1-40)")
    return 0


def cmd_inspect(a: argparse.Namespace) -> int:
    """``padless inspect DATA``: length statistics and each batching strategy's padding waste."""
    x, y, names = load_data(a.data, a.split)
    L = x.lengths
    print(f"sequences: {len(x)}")
    print(f"features: {x.num_features}")
    print(f"lengths: min {int(L.min())}, median {float(np.median(L)):g}, mean {float(L.mean()):.1f}, max {int(L.max())}, "
          f"total {int(L.sum())}")
    if names:
        print(f"classes: {len(names)}")
    print()
    print(format_table(compare_batching(L, batch_size=a.batch_size, seed=0)))
    if a.plot:
        length_histogram(L, a.plot, batch_size=a.batch_size, title=a.data)
        print(f"\nplot: {a.plot}")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    """``padless bench``: the side-by-side throughput benchmark (from a source tree)."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
    if not script.exists():
        raise ConfigError("the benchmark script ships with the source tree (benchmarks/run.py); run from a clone")
    sys.argv = [str(script)] + (["--quick"] if a.quick else []) + ["--repeats", str(a.repeats)]
    ns = runpy.run_path(str(script))
    return int(ns["main"](sys.argv[1:]))


def cmd_demo(a: argparse.Namespace) -> int:
    """``padless demo``: the quick-start demo."""
    return run_demo(quick=a.quick)
