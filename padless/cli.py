"""The ``padless`` command line: demo, train, evaluate, predict, inspect, bench.

Owns: argument parsing, reading a DATA argument (built-in name, ``.ts``, RaggedArray directory, ``.npz``,
Parquet), printing ``name: value`` metric lines, and turning every padless error into one line on stderr
with exit code 2 (a traceback only with ``--debug``). Does not own: training or models (it calls the
library like any user would).

Examples:
    padless demo
    padless train japanese_vowels --epochs 40 --out runs/jv
    padless evaluate runs/jv/model.safetensors japanese_vowels
    padless predict runs/jv/model.safetensors my_data.parquet --out preds.csv
    padless inspect plaid --batch-size 32 --plot lengths.png
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["main", "load_data"]

EXIT_USAGE = 2


class CliError(Exception):
    """A one-line error for the user (exit code 2)."""


# ---------------------------------------------------------------------------------------------- data
def load_data(spec: str, split: str = "train", class_names: Sequence[str] | None = None,
              label_column: str = "y", column: str = "x") -> tuple[Any, np.ndarray | None, list[str] | None]:
    """Read a DATA argument: ``(x RaggedArray, y int labels or None, class names or None)``.

    DATA is a built-in name (``japanese_vowels``, ``plaid``: ``split`` picks train/test), a sktime ``.ts``
    file, a directory written by ``RaggedArray.save`` (labels from ``labels.npy`` inside it, if present),
    an ``.npz`` with ``values``/``offsets`` (and ``labels``), or a Parquet file with a list column.
    """
    import padless.datasets as ds
    from padless.data import RaggedArray, read_parquet

    p = Path(spec)
    if not p.exists():
        builtin = {n.lower() for n in ds.names()}
        if spec.lower() in builtin:
            (xtr, ytr), (xte, yte) = ds.load(spec)
            x, y = (xtr, ytr) if split == "train" else (xte, yte)
            return x, np.asarray(y), list(ds.classes(spec))
        raise CliError(f"no file or built-in data set named {spec!r} (built-in: {', '.join(ds.names())})")
    suffix = p.suffix.lower()
    if suffix == ".ts":
        x, y, names = ds.load_ts(p, class_names=class_names)
        return x, y, names
    if suffix == ".parquet" or suffix == ".pq":
        try:
            x, labels = read_parquet(p, column=column, label_column=label_column)  # type: ignore[misc]
        except Exception as e:
            if "no column" in str(e) and label_column in str(e):
                return read_parquet(p, column=column), None, list(class_names) if class_names else None  # type: ignore[return-value]
            raise
        y, names = _encode(np.asarray(labels), class_names)
        return x, y, names
    if suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if "values" not in z or "offsets" not in z:
                raise CliError(f"{spec}: an .npz needs arrays 'values' (sum T, F) and 'offsets' (N+1); found {list(z)}")
            x = RaggedArray(np.asarray(z["values"]), np.asarray(z["offsets"]))
            labels = z["labels"] if "labels" in z else None
        if labels is None:
            return x, None, list(class_names) if class_names else None
        y, names = _encode(np.asarray(labels), class_names)
        return x, y, names
    if p.is_dir():
        x = RaggedArray.load(p, mmap=True)
        lab = p / "labels.npy"
        if not lab.exists():
            return x, None, list(class_names) if class_names else None
        y, names = _encode(np.load(lab, allow_pickle=False), class_names)
        return x, y, names
    raise CliError(f"{spec}: unknown data format {suffix or '(none)'}; use .ts, .parquet, .npz or a RaggedArray directory")


def _encode(labels: np.ndarray, class_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    from padless.datasets._ts import sort_class_names

    raw = [str(v) for v in labels.tolist()]
    names = list(class_names) if class_names else sort_class_names(set(raw))
    index = {n: i for i, n in enumerate(names)}
    out = np.empty(len(raw), dtype=np.int64)
    for i, r in enumerate(raw):
        if r not in index:
            raise CliError(f"label {r!r} of sequence {i} is not a class the model knows ({', '.join(names)})")
        out[i] = index[r]
    return out, names


# ---------------------------------------------------------------------------------------------- commands
def cmd_train(a: argparse.Namespace) -> int:
    import torch

    from padless.recipes import CLASSIFIER_FIT, StepDecay, sequence_classifier
    from padless.train.callbacks import EarlyStopping

    torch.manual_seed(a.seed)
    x, y, names = load_data(a.data, "train")
    if y is None:
        raise CliError(f"{a.data}: no labels found; training needs one label per sequence")
    val = None
    if a.val:
        vx, vy, _ = load_data(a.val, "test", class_names=names)
        if vy is None:
            raise CliError(f"{a.val}: no labels found for validation")
        val = (vx, vy)
    num_classes = len(names) if names else int(y.max()) + 1
    model = sequence_classifier(x.num_features, num_classes, x, units=a.units, layers=a.layers, lr=a.lr)
    model.preprocessing = {"classes": names or [str(i) for i in range(num_classes)], "data": a.data}
    epochs = a.epochs if a.epochs is not None else CLASSIFIER_FIT["epochs"]
    callbacks: list[Any] = [StepDecay((int(epochs * 0.6), int(epochs * 0.85)))]
    if a.patience and (val is not None or a.val_split):
        callbacks.append(EarlyStopping("val_loss", patience=a.patience, restore_best_weights=True))
    out = Path(a.out) if a.out else None
    if out is not None and (out / "model.safetensors").exists() and not a.overwrite:
        raise CliError(f"{out / 'model.safetensors'} exists; pass --overwrite or another --out")
    t0 = time.perf_counter()
    hist = model.fit(x, y, batch_size=a.batch_size or CLASSIFIER_FIT["batch_size"], epochs=epochs,
                     validation_data=val, validation_split=a.val_split if val is None else 0.0,
                     batching=a.batching, seed=a.seed, callbacks=callbacks, verbose=0 if a.quiet else 1)
    secs = time.perf_counter() - t0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / "model.safetensors")
        _write_history(out / "history.csv", hist.history)
        _plot_history(out / "curves.png", hist.history)
    last = {k: v[-1] for k, v in hist.history.items()}
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if k in last:
            print(f"{k}: {last[k]:.4f}")
    print(f"train_seconds: {secs:.1f}")
    if out is not None:
        print(f"saved: {out / 'model.safetensors'}")
    return 0


def _write_history(path: Path, history: dict[str, list[float]]) -> None:
    keys = list(history)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch"] + keys)
        for i in range(len(history[keys[0]]) if keys else 0):
            w.writerow([i + 1] + [history[k][i] for k in keys])


def _plot_history(path: Path, history: dict[str, list[float]]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for k in (key, f"val_{key}"):
            if k in history:
                ax.plot(range(1, len(history[k]) + 1), history[k], label=k)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _load_model(path: str) -> Any:
    import padless

    return padless.load_model(path)


def cmd_evaluate(a: argparse.Namespace) -> int:
    model = _load_model(a.model)
    names = model.preprocessing.get("classes")
    x, y, _ = load_data(a.data, "test", class_names=names)
    if y is None:
        raise CliError(f"{a.data}: no labels found; evaluate needs labels (use predict for unlabelled data)")
    res = model.evaluate(x, y, batch_size=a.batch_size, verbose=0, return_dict=True)
    for k, v in res.items():
        print(f"{k}: {v:.4f}")
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    model = _load_model(a.model)
    names = model.preprocessing.get("classes")
    x, _, _ = load_data(a.data, "test", class_names=names)
    probs = model.predict(x, batch_size=a.batch_size, verbose=0)
    out = Path(a.out)
    if out.exists() and not a.overwrite:
        raise CliError(f"{out} exists; pass --overwrite or another --out")
    if out.suffix == ".npy":
        from padless.train.saving import atomic_write_bytes
        import io

        buf = io.BytesIO()
        np.save(buf, probs)
        atomic_write_bytes(out, buf.getvalue())
    else:
        import io

        from padless.train.saving import atomic_write_bytes

        buf2 = io.StringIO()
        w = csv.writer(buf2)
        labels = names or [str(i) for i in range(probs.shape[1])]
        w.writerow(["index", "prediction"] + [f"p_{n}" for n in labels])
        for i, row in enumerate(probs):
            w.writerow([i, labels[int(np.argmax(row))]] + [f"{v:.6f}" for v in row])
        atomic_write_bytes(out, buf2.getvalue().encode())
    print(f"predictions: {len(probs)} -> {out}")
    return 0


def cmd_inspect(a: argparse.Namespace) -> int:
    from padless.data import compare_batching, format_table

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
        from padless.plots import length_histogram

        length_histogram(L, a.plot, batch_size=a.batch_size, title=a.data)
        print(f"\nplot: {a.plot}")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
    if not script.exists():
        raise CliError("the benchmark script ships with the source tree (benchmarks/run.py); run from a clone")
    import runpy

    sys.argv = [str(script)] + (["--quick"] if a.quick else []) + ["--repeats", str(a.repeats)]
    ns = runpy.run_path(str(script))
    return int(ns["main"](sys.argv[1:]))


def cmd_demo(a: argparse.Namespace) -> int:
    from padless.demo import run_demo

    return run_demo(quick=a.quick)


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="padless",
        description="Train LSTM/GRU on variable-length sequences exactly and fast, with no padding waste.",
        epilog="Examples:\n  padless demo\n  padless train japanese_vowels --out runs/jv\n"
               "  padless evaluate runs/jv/model.safetensors japanese_vowels\n"
               "  padless inspect plaid --plot plaid.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")

    d = sub.add_parser("demo", help="the quick-start demo on built-in data (about a minute on 2 cores)",
                       epilog="Example: padless demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--quick", action="store_true", help="smaller, faster run (for tests)")
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("train", help="train a classifier on DATA",
                       epilog="Examples:\n  padless train japanese_vowels --out runs/jv\n"
                              "  padless train my.parquet --layers bilstm:64,lstm:64 --epochs 30 --val-split 0.2",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("data", help="built-in name (japanese_vowels, plaid), .ts, .parquet, .npz or RaggedArray dir")
    t.add_argument("--layers", default=None, help="recurrent stack, e.g. lstm:100,lstm:100 or bigru:64,gru:64")
    t.add_argument("--units", type=int, default=64, help="width of the default recipe's layers")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--batching", default="auto", choices=["auto", "bucket", "exact", "random"])
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--val-split", type=float, default=0.0)
    t.add_argument("--val", default=None, help="validation DATA")
    t.add_argument("--patience", type=int, default=0, help="early stopping patience (needs validation)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="folder for model.safetensors, history.csv, curves.png")
    t.add_argument("--overwrite", action="store_true")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="loss and metrics of a saved model on DATA",
                       epilog="Example: padless evaluate runs/jv/model.safetensors japanese_vowels")
    e.add_argument("model")
    e.add_argument("data")
    e.add_argument("--batch-size", type=int, default=32)
    e.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="class probabilities for DATA (CSV or .npy)",
                       epilog="Example: padless predict runs/jv/model.safetensors japanese_vowels --out preds.csv")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_predict)

    i = sub.add_parser("inspect", help="length statistics and the padding waste of each batching strategy",
                       epilog="Example: padless inspect plaid --batch-size 32 --plot plaid.png")
    i.add_argument("data")
    i.add_argument("--split", default="train", choices=["train", "test"])
    i.add_argument("--batch-size", type=int, default=32)
    i.add_argument("--plot", default=None, help="write a length histogram with bucket boundaries (PNG)")
    i.set_defaults(func=cmd_inspect)

    b = sub.add_parser("bench", help="run the throughput benchmark and print its table",
                       epilog="Example: padless bench --repeats 5")
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--quick", action="store_true")
    b.set_defaults(func=cmd_bench)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``padless`` console script."""
    ap = build_parser()
    a = ap.parse_args(argv)
    if not getattr(a, "func", None):
        ap.print_help()
        return EXIT_USAGE
    from padless.errors import PadlessError

    if os.environ.get("PADLESS_TUNE_MALLOC", "1") != "0":
        from padless.runtime import tune_allocator

        tune_allocator()  # this process is ours: keep freed tensor memory for reuse (see padless.runtime)
    try:
        return int(a.func(a) or 0)
    except (CliError, PadlessError, FileNotFoundError, PermissionError) as e:
        if a.debug:
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"padless {a.cmd}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
