"""Test accuracy of the classifier recipes, chosen on validation data only (issue 12's protocol).

Two stages, both on 2 threads:

1. ``--stage validate``: for each data set, hold out a stratified 20% of the *training* split (seed 0,
   :func:`padless.recipes.stratified_split`), train every candidate recipe on the other 80% (seed 0), and
   score it on the held-out part. One JSON line per candidate goes to ``benchmarks/validation/DATA.jsonl``.
   The recipe with the best validation accuracy is the data set's choice (ties: the faster one). The test
   split is not loaded in this stage.
2. ``--stage test``: train the chosen recipe, the plain ``lstm`` / ``gru`` baselines and the other recipes
   named by ``--report`` on the whole training split with seeds 0-4, score each on the test split, and write
   ``benchmarks/ACCURACY.md`` (medians, every seed, training seconds, published figures). Nothing from this
   stage feeds back into the choice.

Usage: ``python benchmarks/accuracy.py --stage validate --data jv,plaid`` then
``python benchmarks/accuracy.py --stage test --data jv,plaid``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import padless.datasets as ds  # noqa: E402
from padless.recipes import RECIPES, stratified_split, train_recipe  # noqa: E402
from padless.runtime import tune_allocator  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = {"jv": "japanese_vowels", "plaid": "plaid"}
CANDIDATES = {
    "jv": ["bigru", "lstm", "gru", "fcn", "fcn-z", "lstm-fcn", "lstm-fcn-z", "resnet"],
    "plaid": ["lstm", "gru", "fcn", "fcn-z", "fcn-zd", "lstm-fcn", "lstm-fcn-zd", "fcn-zl", "fcn-zl-dil"],
}
BASELINES = ["lstm", "gru"]
PUBLISHED = {
    "jv": "MLSTM-FCN 1.00, FCN 0.993, ResNet 0.992, ROCKET 0.962 (published, padded/equal-length versions)",
    "plaid": "QUANT 0.948, InceptionTime 0.944, ROCKET 0.903, WEASEL-2.0 0.899 (published, padded versions)",
}
TARGET = {"jv": (0.99, 60.0), "plaid": (0.95, 600.0)}


def validate(key: str, names: list[str]) -> list[dict]:
    (x, y), _ = ds.load(DATA[key])  # the test split is not looked at
    y = np.asarray(y)
    tr, va = stratified_split(y, 0.2, seed=0)
    K = int(y.max()) + 1
    out = HERE / "validation" / f"{key}.jsonl"
    out.parent.mkdir(exist_ok=True)
    rows = []
    for name in names:
        t = train_recipe(name, x.take(tr), y[tr], K, seed=0)
        acc = float(t.model.evaluate(x.take(va), y[va], verbose=0, return_dict=True, distributed=False)["accuracy"])
        row = {"data": key, "recipe": name, "val_accuracy": round(acc, 4), "seconds": round(t.seconds, 1),
               "epochs": t.epochs, "train": int(tr.size), "val": int(va.size), "seed": 0,
               "when": time.strftime("%Y-%m-%d %H:%M")}
        rows.append(row)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    return rows


def chosen(key: str) -> tuple[str, list[dict]]:
    """The best validation accuracy among the newest row of every candidate (ties: fewer seconds)."""
    path = HERE / "validation" / f"{key}.jsonl"
    if not path.exists():
        raise SystemExit(f"no validation results for {key}: run --stage validate --data {key} first")
    latest: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        latest[row["recipe"]] = row
    rows = sorted(latest.values(), key=lambda r: (-r["val_accuracy"], r["seconds"]))
    return rows[0]["recipe"], rows


def test(key: str, names: list[str], seeds: list[int]) -> dict[str, list[tuple[int, float, float]]]:
    (x, y), (xt, yt) = ds.load(DATA[key])
    K = int(np.asarray(y).max()) + 1
    res: dict[str, list[tuple[int, float, float]]] = {}
    for name in names:
        res[name] = []
        for seed in seeds:
            t = train_recipe(name, x, y, K, seed=seed)
            acc = float(t.model.evaluate(xt, yt, verbose=0, return_dict=True, distributed=False)["accuracy"])
            res[name].append((seed, acc, t.seconds))
            print(f"{key} {name} seed {seed}: test {acc:.4f} in {t.seconds:.1f} s", flush=True)
    return res


def report(results: dict[str, tuple[str, list[dict], dict]], out: Path) -> None:
    lines = ["# Test accuracy of the classifier recipes (validation-only protocol)", "",
             f"`python benchmarks/accuracy.py --stage validate` then `--stage test` ({platform.node()}, torch "
             f"{torch.__version__}, 2 threads, CPU, {time.strftime('%Y-%m-%d %H:%M')}).", "",
             "**Protocol.** Every choice was made on a validation part carved from the training split: a stratified "
             "20% of the training sequences held out (seed 0), every candidate trained on the other 80% (seed 0) "
             "with its fixed settings, the best validation accuracy chosen (`benchmarks/validation/*.jsonl`). The "
             "test split was loaded only afterwards, to train the chosen recipe and the baselines on the whole "
             "training split with seeds 0-4 and score them. Test accuracy is the median of seeds 0-4; seconds are "
             "the median training time (the whole training split, every epoch). The same choice by validation "
             "runs inside `padless train DATA` (the default `--model auto`, within `--budget` seconds).", ""]
    for key, (choice, vrows, res) in results.items():
        acc_t, sec_t = TARGET[key]
        lines += [f"## {DATA[key]}", "", f"Published: {PUBLISHED[key]}. Target here: >= {acc_t} in <= {sec_t:.0f} s.",
                  "", "Validation (80/20 of the training split, seed 0):", "",
                  "| recipe | validation accuracy | seconds | epochs |", "|---|---:|---:|---:|"]
        lines += [f"| {r['recipe']}{' (chosen)' if r['recipe'] == choice else ''} | {r['val_accuracy']:.4f} | "
                  f"{r['seconds']:.1f} | {r['epochs']} |" for r in vrows]
        lines += ["", "Test (whole training split, seeds 0-4):", "",
                  "| recipe | test accuracy (median) | seeds 0-4 | training s (median) | target met |",
                  "|---|---:|---|---:|---|"]
        for name, rows in res.items():
            med = statistics.median(a for _, a, _ in rows)
            secs = statistics.median(s for _, _, s in rows)
            tag = " (chosen on validation)" if name == choice else (" (baseline)" if name in BASELINES else "")
            met = "yes" if med >= acc_t and secs <= sec_t else "no"
            lines.append(f"| {name}{tag} | **{med:.4f}** | {', '.join(f'{a:.4f}' for _, a, _ in rows)} | "
                         f"{secs:.1f} | {met} |")
        lines += ["", "Recipes: " + "; ".join(f"`{n}` {RECIPES[n].description}" for n in res), ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", choices=["validate", "test", "all"], default="all")
    ap.add_argument("--data", default="jv,plaid")
    ap.add_argument("--candidates", default=None, help="comma-separated recipes to validate (default: per data set)")
    ap.add_argument("--report", default="", help="comma-separated extra recipes to score on test (never chosen)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", default=str(HERE / "ACCURACY.md"))
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    tune_allocator()  # as the padless command line does
    keys = [k.strip() for k in a.data.split(",") if k.strip()]
    if a.stage in ("validate", "all"):
        for key in keys:
            validate(key, a.candidates.split(",") if a.candidates else CANDIDATES[key])
    if a.stage in ("test", "all"):
        extra = [n for n in a.report.split(",") if n]
        results = {}
        for key in keys:
            choice, vrows = chosen(key)
            names = list(dict.fromkeys([choice, *BASELINES, *extra]))
            results[key] = (choice, vrows, test(key, names, a.seeds))
        report(results, Path(a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
