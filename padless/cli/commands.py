"""The commands besides ``train``: evaluate, predict, export, inspect, bench, demo.

Owns: :func:`cmd_evaluate`, :func:`cmd_predict`, :func:`cmd_export`, :func:`cmd_inspect`,
:func:`cmd_bench`, :func:`cmd_demo`, and :func:`load_predictor` (a saved model, a run folder, a checkpoint
or an exported ``.onnx``). Every model path accepts a run folder (``padless train --out DIR``).

Does not own: parsing (:mod:`padless.cli`), the library calls' behaviour.

Example:
    >>> load_predictor.__name__
    'load_predictor'
"""

from __future__ import annotations

import argparse
import math
import runpy
import sys
from pathlib import Path
from typing import Any

import numpy as np

from padless.cli.data import is_long_table, read_data_for, write_task_predictions
from padless.data.tables import read_long_table
from padless.data.waste import compare_batching, format_table
from padless.datasets import load_data
from padless.demo import run_demo
from padless.errors import ConfigError
from padless.export import check_export, load_onnx
from padless.models import load_model
from padless.plots import length_histogram

__all__ = ["cmd_evaluate", "cmd_predict", "cmd_export", "cmd_inspect", "cmd_bench", "cmd_demo", "load_predictor"]


def load_predictor(path: str) -> Any:
    """A saved model, run folder or checkpoint (padless) or an exported graph (``.onnx``, onnxruntime)."""
    if Path(path).suffix.lower() == ".onnx":
        return load_onnx(path)
    return load_model(path)


def cmd_evaluate(a: argparse.Namespace) -> int:
    """``padless evaluate MODEL DATA``: loss and metrics, one ``name: value`` line each (regression: MAE, RMSE)."""
    model = load_model(a.model)
    data = read_data_for(a.data, model.preprocessing, "test", targets=True)
    res = model.evaluate(data.x, data.y, batch_size=a.batch_size, verbose=0, return_dict=True)
    if model.compiled is not None and model.compiled.loss_name == "mse":
        res["rmse"] = math.sqrt(res["loss"])
    for k, v in res.items():
        print(f"{k}: {v:.4f}")
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    """``padless predict MODEL DATA --out FILE``: predictions in input order (per step: a long table with the id
    and time columns when DATA is a long table)."""
    out = Path(a.out)
    if out.exists() and not a.overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite or another --out")
    model = load_predictor(a.model)
    data = read_data_for(a.data, model.preprocessing, "test", targets=False)
    preds = model.predict(data.x, batch_size=a.batch_size, verbose=0)
    print(f"predictions: {write_task_predictions(out, data, preds, model.preprocessing)}")
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
        diff, rel = check_export(model, out), check_export(model, out, relative=True)
        print(f"max_abs_diff_vs_predict: {diff:.3g} (relative {rel:.3g}; 16 random sequences, lengths 1-40)")
    return 0


def cmd_inspect(a: argparse.Namespace) -> int:
    """``padless inspect DATA``: length statistics and each batching strategy's padding waste."""
    if is_long_table(a.data, a.id):
        if a.id is None:
            raise ConfigError(f"{a.data} is a long table (one row per step): give --id COLUMN")
        lt = read_long_table(a.data, id=a.id, time=a.time, targets=False, progress=False)
        x, names = lt.x, None
    else:
        x, _, names = load_data(a.data, a.split)
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
    sys.argv = [str(script)] + (["--quick"] if a.quick else []) + (["--repeats", str(a.repeats)] if a.repeats else []) \
        + (["--only", a.only] if a.only else [])
    ns = runpy.run_path(str(script))
    return int(ns["main"](sys.argv[1:]))


def cmd_demo(a: argparse.Namespace) -> int:
    """``padless demo``: the quick-start demo."""
    return run_demo(quick=a.quick)
