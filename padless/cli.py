"""The ``padless`` command line: demo, train, evaluate, predict, export, inspect, bench.

Owns: argument parsing, reading a DATA argument (built-in name, ``.ts``, RaggedArray directory, ``.npz``,
Parquet), printing ``name: value`` metric lines, and turning every padless error into one line on stderr
with exit code 2 (a traceback only with ``--debug``). Does not own: training or models (it calls the
library like any user would).

Examples:
    padless demo
    padless train japanese_vowels --epochs 40 --out runs/jv
    padless evaluate runs/jv/model.safetensors japanese_vowels
    padless predict runs/jv/model.safetensors my_data.parquet --out preds.csv
    padless export runs/jv/model.safetensors runs/jv/model.onnx
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
        import zipfile

        try:
            with np.load(p, allow_pickle=False) as z:
                if "values" not in z or "offsets" not in z:
                    raise CliError(f"{spec}: an .npz needs arrays 'values' (sum T, F) and 'offsets' (N+1); found {list(z)}")
                values, offsets = np.asarray(z["values"]), np.asarray(z["offsets"])
                labels = z["labels"] if "labels" in z else None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # object arrays, not a zip
            raise CliError(f"{spec}: not a readable .npz of numeric arrays ({str(e).splitlines()[0][:120]})") from None
        x = RaggedArray(values, offsets)
        if labels is None:
            return x, None, list(class_names) if class_names else None
        y, names = _encode(np.asarray(labels), class_names)
        return x, y, names
    if p.is_dir():
        x = RaggedArray.load(p, mmap=True)
        lab = p / "labels.npy"
        if not lab.exists():
            return x, None, list(class_names) if class_names else None
        try:
            raw = np.load(lab, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:  # object arrays are refused: loading them runs pickle
            raise CliError(f"{lab}: not a readable numeric .npy ({str(e).splitlines()[0][:120]})") from None
        y, names = _encode(raw, class_names)
        return x, y, names
    raise CliError(f"{spec}: unknown data format {suffix or '(none)'}; use .ts, .parquet, .npz or a RaggedArray directory")


def _encode(labels: np.ndarray, class_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    from padless.datasets._ts import sort_class_names

    if labels.ndim != 1:
        raise CliError(f"labels must hold one class per sequence (a 1-D array); got shape {labels.shape}")
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
def _checkpoint_folder(spec: str) -> Path:
    """``--resume DIR``: a checkpoint folder, or an ``--out`` folder holding ``checkpoints/``."""
    from padless.train.checkpoint import LATEST

    d = Path(spec)
    for cand in (d, d / "checkpoints"):
        if (cand / LATEST).is_file():
            return cand
    if not d.exists():
        raise CliError(f"--resume {spec}: no such folder")
    raise CliError(f"--resume {spec}: no checkpoint there (no {LATEST} in it or in its checkpoints/ folder)")


def _check_train_args(a: argparse.Namespace) -> None:
    """Refuse numbers that would fail deep inside training (or silently train on a default)."""
    import math

    if a.nproc is not None and a.nproc < 1:
        raise CliError(f"--nproc must be >= 1; got {a.nproc}")
    if a.batch_size is not None and a.batch_size < 1:
        raise CliError(f"--batch-size must be >= 1; got {a.batch_size}")
    if not (math.isfinite(a.lr) and a.lr > 0):
        raise CliError(f"--lr must be a positive number; got {a.lr}")
    if a.units < 1:
        raise CliError(f"--units must be >= 1; got {a.units}")
    if a.patience < 0:
        raise CliError(f"--patience must be >= 0 epochs; got {a.patience}")
    if a.checkpoint_every is not None and a.checkpoint_every < 1:
        raise CliError(f"--checkpoint-every must be >= 1 step; got {a.checkpoint_every}")


def _train_data(a: argparse.Namespace) -> tuple[Any, np.ndarray, list[str] | None, tuple[Any, Any] | None]:
    """``(x, y, class names, validation data)`` for ``padless train``, refusing data it cannot learn from."""
    x, y, names = load_data(a.data, "train")
    if y is None:
        raise CliError(f"{a.data}: no labels found; training needs one label per sequence")
    if len(np.unique(y)) < 2:
        raise CliError(f"{a.data}: every sequence has the same label ({(names or ['0'])[int(y[0])]!r}); a classifier "
                       "needs at least two classes")
    val = None
    if a.val:
        vx, vy, _ = load_data(a.val, "test", class_names=names)
        if vy is None:
            raise CliError(f"{a.val}: no labels found for validation")
        val = (vx, vy)
    return x, y, names, val


def _train_plan(a: argparse.Namespace) -> tuple[Path | None, Path | None, Path | None]:
    """``(out, checkpoint folder, resume folder)`` after checking that nothing on disk gets overwritten."""
    from padless.train.checkpoint import has_checkpoints

    out = Path(a.out) if a.out else None
    resume = _checkpoint_folder(a.resume) if a.resume else None
    ckdir = Path(a.checkpoint_dir) if a.checkpoint_dir else None
    if ckdir is None and resume is not None:
        ckdir = resume
    if ckdir is None and a.checkpoint_every is not None:
        if out is None:
            raise CliError("--checkpoint-every needs --out or --checkpoint-dir (where to write checkpoints)")
        ckdir = out / "checkpoints"
    if out is not None and (out / "model.safetensors").exists() and not a.overwrite and resume is None:
        raise CliError(f"{out / 'model.safetensors'} exists; pass --overwrite or another --out")
    if ckdir is not None and resume is None and has_checkpoints(ckdir) and not a.overwrite:
        raise CliError(f"{ckdir} already holds checkpoints; pass --resume {ckdir} to continue that run, "
                       "--overwrite to start over, or another --out")
    return out, ckdir, resume


def _launch_train(a: argparse.Namespace) -> int:
    """``padless train --nproc N``: check what can be checked here, then run N processes through torchrun."""
    import re
    import subprocess

    import torch

    if torch.cuda.is_available() and a.nproc > torch.cuda.device_count():
        raise CliError(f"--nproc {a.nproc} but this machine has {torch.cuda.device_count()} GPU(s): NCCL needs one "
                       "process per GPU")
    _train_data(a)  # bad data fails here, in one line, before any process starts
    _, _, resume = _train_plan(a)
    if resume is not None:
        from padless.train.checkpoint import load_checkpoint

        load_checkpoint(resume)  # a damaged checkpoint fails here, in one line
    argv = list(getattr(a, "argv", None) or [])
    rest: list[str] = []
    skip = False
    for tok in argv:
        if skip:
            skip = False
        elif tok == "--nproc":
            skip = True
        elif not tok.startswith("--nproc="):
            rest.append(tok)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // a.nproc)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={a.nproc}",
           "-m", "padless", *rest]
    proc = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True, errors="replace")
    lines = proc.stderr.splitlines()
    if proc.returncode == 0:
        launcher_log = re.compile(r"^[EWI]\d{4} \d\d:\d\d:\d\d")
        for line in lines:  # worker warnings, without the launcher's own log lines
            if not launcher_log.match(line):
                print(line, file=sys.stderr)
        return 0
    if a.debug:
        print(proc.stderr, file=sys.stderr, end="")
    errors = [ln[len(_ERROR_PREFIX):] for ln in lines if ln.startswith(_ERROR_PREFIX)]
    if errors:  # rank 0's line first (the others end in "[rank r]")
        raise CliError(sorted(errors, key=lambda m: m.endswith("]"))[0])
    last = [m.group(1) for m in (re.match(r"^(?:\[rank\d+\]:\s*)?(\w+(?:\.\w+)*(?:Error|Exception)\b.*)$", ln)
                                 for ln in lines) if m and "ChildFailedError" not in m.group(1)]
    codes = sorted({c for c in re.findall(r"exitcode\s*:\s*(-?\d+)", proc.stderr) if c not in ("0", "1")})
    why = f": {last[-1][:300]}" if last else (f" (worker exit codes {', '.join(codes)})" if codes else "")
    raise CliError(f"a training process failed (torchrun exit code {proc.returncode}){why}; rerun with --debug to "
                   "see its output")


_ERROR_PREFIX = "padless train: error: "


def cmd_train(a: argparse.Namespace) -> int:
    import torch

    from padless.errors import PadlessError
    from padless.recipes import CLASSIFIER_FIT, StepDecay, sequence_classifier
    from padless.train.callbacks import EarlyStopping
    from padless.train.distributed import env_world_size, setup_distributed

    _check_train_args(a)
    if a.nproc is not None and a.nproc > 1 and env_world_size() <= 1:
        return _launch_train(a)
    ctx = setup_distributed("auto", torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    main_rank = ctx is None or ctx.is_main
    torch.manual_seed(a.seed)
    x, y, names, val = _train_data(a)
    num_classes = len(names) if names else int(y.max()) + 1
    model = sequence_classifier(x.num_features, num_classes, x, units=a.units, layers=a.layers, lr=a.lr)
    model.preprocessing = {"classes": names or [str(i) for i in range(num_classes)], "data": a.data}
    epochs = a.epochs if a.epochs is not None else CLASSIFIER_FIT["epochs"]
    callbacks: list[Any] = [StepDecay((int(epochs * 0.6), int(epochs * 0.85)))]
    if a.patience and (val is not None or a.val_split):
        callbacks.append(EarlyStopping("val_loss", patience=a.patience, restore_best_weights=True))
    err: BaseException | None = None
    out = ckdir = resume = None
    if main_rank:  # rank 0 decides (the others may not see the same disk), then every rank agrees
        try:
            out, ckdir, resume = _train_plan(a)
        except CliError as e:
            err = e
    if ctx is not None:
        ctx.check(err)
        paths = json.dumps([str(ckdir) if ckdir else None, str(resume) if resume else None])
        ck, rs = json.loads(ctx.broadcast_bytes(paths.encode() if main_rank else None).decode())
        ckdir, resume = (Path(ck) if ck else None), (Path(rs) if rs else None)  # only rank 0 reads or writes them
    elif err is not None:
        raise err
    t0 = time.perf_counter()
    batch_size = CLASSIFIER_FIT["batch_size"] if a.batch_size is None else a.batch_size
    hist = model.fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=val,
                     validation_split=a.val_split if val is None else 0.0, batching=a.batching, seed=a.seed,
                     max_steps=a.max_steps, tbptt=a.tbptt,
                     callbacks=callbacks, verbose=0 if a.quiet else 1,
                     checkpoint_dir=ckdir, checkpoint_every=a.checkpoint_every, resume_from=resume,
                     overwrite_checkpoints=bool(a.overwrite))
    secs = time.perf_counter() - t0
    err = None
    if main_rank:  # rank 0 writes and prints; the others wait for it, then every process leaves together
        try:
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
            if ctx is not None:
                print(f"processes: {ctx.world_size}")
            if out is not None:
                print(f"saved: {out / 'model.safetensors'}")
        except (OSError, PadlessError) as e:
            err = e
    if ctx is not None:
        ctx.check(err)
        ctx.close()
    elif err is not None:
        raise err
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


def _load_predictor(path: str) -> Any:
    """A saved model (``.safetensors``) or an exported ONNX graph (``.onnx``, run by onnxruntime)."""
    if Path(path).suffix.lower() == ".onnx":
        from padless.export import load_onnx

        return load_onnx(path)
    return _load_model(path)


def cmd_export(a: argparse.Namespace) -> int:
    from padless.export import check_export

    out = Path(a.out)
    if out.suffix.lower() != ".onnx":
        raise CliError(f"{out}: the exported file must end in .onnx")
    if out.exists() and not a.overwrite:
        raise CliError(f"{out} exists; pass --overwrite or another OUT")
    model = _load_model(a.model)
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
            import onnxruntime  # noqa: F401
        except ImportError:
            print("check: skipped (pip install onnxruntime to compare with predict)")
            return 0
        print(f"max_abs_diff_vs_predict: {check_export(model, out):.3g} (16 random sequences, lengths 1-40)")
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    model = _load_predictor(a.model)
    names = model.preprocessing.get("classes")
    x, _, _ = load_data(a.data, "test", class_names=names)
    probs = model.predict(x, batch_size=a.batch_size, verbose=0)
    out = Path(a.out)
    if out.exists() and not a.overwrite:
        raise CliError(f"{out} exists; pass --overwrite or another --out")
    import io

    from padless.train.saving import atomic_write_bytes

    per_step = isinstance(probs, list)  # a per-step model: one (T_i, K) array per sequence
    if out.suffix in (".npy", ".npz"):
        buf = io.BytesIO()
        if per_step:  # ragged: values (sum T_i, K) + offsets (N+1), like RaggedArray
            offsets = np.concatenate([[0], np.cumsum([len(p) for p in probs])]).astype(np.int64)
            np.savez(buf, values=np.concatenate(probs), offsets=offsets)
        elif out.suffix == ".npz":
            np.savez(buf, values=probs)
        else:
            np.save(buf, probs)
        atomic_write_bytes(out, buf.getvalue())
    else:
        buf2 = io.StringIO()
        w = csv.writer(buf2)
        width = (probs[0] if per_step else probs).shape[1]
        labels = names or [str(i) for i in range(width)]
        w.writerow(["index"] + (["step"] if per_step else []) + ["prediction"] + [f"p_{n}" for n in labels])
        for i, seq in enumerate(probs):
            for t, row in enumerate(seq if per_step else [seq]):
                w.writerow([i] + ([t] if per_step else []) + [labels[int(np.argmax(row))]] + [f"{v:.6f}" for v in row])
        atomic_write_bytes(out, buf2.getvalue().encode())
    print(f"predictions: {len(probs)} {'sequences (per step)' if per_step else 'sequences'} -> {out}")
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
                              "  padless train my.parquet --layers bilstm:64,lstm:64 --epochs 30 --val-split 0.2\n"
                              "  padless train plaid --out runs/p --checkpoint-every 50 --nproc 2\n"
                              "  padless train plaid --out runs/p --checkpoint-every 50 --nproc 2 --resume runs/p\n"
                              "  torchrun --nproc-per-node 4 -m padless train plaid --out runs/p",
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
    t.add_argument("--overwrite", action="store_true",
                   help="replace OUT/model.safetensors and start the checkpoints over (the old ones are deleted when "
                        "the first new one is written)")
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--max-steps", type=int, default=None, metavar="STEPS",
                   help="cut batches by a budget of computed steps (rows x longest) instead of --batch-size")
    t.add_argument("--tbptt", type=int, default=None, metavar="K",
                   help="truncated BPTT: --batch-size slots, windows of K steps, exact per-sequence resets")
    t.add_argument("--config", default=None, metavar="FILE",
                   help="TOML or JSON file with any of these options (e.g. layers = \"lstm:100,lstm:100\", "
                        "epochs = 30); flags given on the command line win")
    t.add_argument("--nproc", type=int, default=None,
                   help="train data-parallel in N processes on this machine (runs torchrun; gloo on CPU, NCCL on GPU)")
    t.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                   help="checkpoint every STEPS training steps (and at every epoch end) into OUT/checkpoints")
    t.add_argument("--checkpoint-dir", default=None, help="where checkpoints go (default OUT/checkpoints)")
    t.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run checkpointed in DIR (a checkpoint folder or an earlier --out)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="loss and metrics of a saved model on DATA",
                       epilog="Example: padless evaluate runs/jv/model.safetensors japanese_vowels")
    e.add_argument("model")
    e.add_argument("data")
    e.add_argument("--batch-size", type=int, default=32)
    e.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="class probabilities for DATA (CSV, .npy or .npz; per sequence or per step)",
                       epilog="Examples:\n  padless predict runs/jv/model.safetensors japanese_vowels --out preds.csv\n"
                              "  padless predict runs/jv/model.onnx japanese_vowels --out preds.csv",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a saved model (.safetensors) or an exported one (.onnx, run by onnxruntime)")
    p.add_argument("data")
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_predict)

    ex = sub.add_parser("export", help="write a saved model as ONNX (inputs: padded batch + lengths)",
                       epilog="Examples:\n  padless export runs/jv/model.safetensors runs/jv/model.onnx\n"
                              "  padless export runs/gru/model.safetensors stream.onnx --streaming",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("model", help="a saved model (.safetensors)")
    ex.add_argument("out", help="the .onnx file to write")
    ex.add_argument("--streaming", action="store_true",
                   help="also take and return each recurrent layer's state (feed chunks; unidirectional models)")
    ex.add_argument("--opset", type=int, default=17)
    ex.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-predict comparison")
    ex.add_argument("--overwrite", action="store_true")
    ex.set_defaults(func=cmd_export)

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


def _config_defaults(ap: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """``train --config FILE``: the file's options become the train parser's defaults (flags still win)."""
    args = list(argv)
    if "train" not in args or not any(x == "--config" or x.startswith("--config=") for x in args):
        return
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(args)
    path = Path(known.config)
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            cfg = tomllib.loads(path.read_text())
        else:
            cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read --config {path}: {e}") from None
    if not isinstance(cfg, dict):
        raise CliError(f"--config {path}: expected a table/object of options")
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    train = sub.choices["train"]
    known_keys = {act.dest for act in train._actions}
    clean = {}
    for k, v in cfg.items():
        key = str(k).replace("-", "_")
        if key not in known_keys or key in ("data", "config", "help"):
            raise CliError(f"--config {path}: unknown option {k!r}; valid: {', '.join(sorted(known_keys - {'help'}))}")
        clean[key] = ",".join(v) if key == "layers" and isinstance(v, list) else v
    train.set_defaults(**clean)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``padless`` console script."""
    ap = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    try:
        _config_defaults(ap, raw)
    except CliError as e:
        print(f"padless train: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    a = ap.parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)  # padless train --nproc N re-runs it under torchrun
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
        rank = os.environ.get("RANK", "0") if os.environ.get("WORLD_SIZE", "1") not in ("", "1") else "0"
        print(f"padless {a.cmd}: error: {msg}" + (f" [rank {rank}]" if rank != "0" else ""), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
