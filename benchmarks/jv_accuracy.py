"""JapaneseVowels test accuracy of the library's recipe (what ``padless demo`` trains), seeds 0, 1, 2.

Writes ``benchmarks/ACCURACY.md`` with every seed's accuracy and training time, and the median.
Usage: ``python benchmarks/jv_accuracy.py [--seeds 0 1 2]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from padless.demo import jv_classifier  # noqa: E402
from padless.recipes import CLASSIFIER_FIT  # noqa: E402
from padless.runtime import tune_allocator  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=str(Path(__file__).with_name("ACCURACY.md")))
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    tune_allocator()  # as the padless command line does
    rows = []
    for seed in a.seeds:
        r = jv_classifier(seed=seed)
        rows.append((seed, r["accuracy"], r["train_seconds"]))
        print(f"seed {seed}: accuracy {r['accuracy']:.4f}, trained in {r['train_seconds']:.1f}s", flush=True)
    med = statistics.median(acc for _, acc, _ in rows)
    lines = [
        "# JapaneseVowels accuracy of the default recipe",
        "",
        f"`python benchmarks/jv_accuracy.py` ({platform.node()}, torch {torch.__version__}, 2 threads, "
        f"{time.strftime('%Y-%m-%d %H:%M')}). Recipe: `padless.recipes.sequence_classifier` "
        f"({CLASSIFIER_FIT}), trained on the 270 training sequences, scored on the 370 test sequences.",
        "",
        "| seed | test accuracy | training seconds |",
        "|---|---|---|",
        *[f"| {s} | {acc:.4f} | {t:.1f} |" for s, acc, t in rows],
        "",
        f"**Median accuracy: {med:.4f}** (Keras 3 2xLSTM(100) here: 0.962).",
        "",
    ]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
