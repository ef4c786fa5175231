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
    # the issue's plain check: a 2 x LSTM(100) classifier trained with padless' fit, seeds 0-4, with the Keras
    # anchor's settings (RMSprop 1e-3, batch 32, 30 epochs) and with the recipe's training settings
    import padless.datasets as ds
    from padless import Sequential
    from padless.layers import LSTM, Dense, Dropout, Normalization
    from padless.recipes import StepDecay

    (x, y), (xt, yt) = ds.load("japanese_vowels")
    settings = {
        "anchor": dict(opt="rmsprop", lr=1e-3, bs=32, epochs=30, dropout=0.0, decay=False),
        "recipe": dict(opt="adam", lr=3e-3, bs=8, epochs=40, dropout=0.2, decay=True),
    }
    plain: dict[str, list[tuple[int, float, float]]] = {}
    for name, st in settings.items():
        plain[name] = []
        for seed in range(5):
            torch.manual_seed(seed)
            norm = Normalization()
            norm.adapt(x)
            layers = [norm, LSTM(100, return_sequences=True), LSTM(100)]
            layers += [Dropout(st["dropout"])] if st["dropout"] else []
            m = Sequential(layers + [Dense(9, activation="softmax")])
            m.compile(st["opt"], "sparse_categorical_crossentropy", ["accuracy"], lr=st["lr"])
            ep = int(st["epochs"])
            cbs = [StepDecay((int(ep * 0.6), int(ep * 0.85)))] if st["decay"] else []
            t0 = time.perf_counter()
            m.fit(x, y, batch_size=st["bs"], epochs=ep, verbose=0, seed=seed, callbacks=cbs)
            plain[name].append((seed, float(m.evaluate(xt, yt, verbose=0)[1]), time.perf_counter() - t0))
            print(f"2xLSTM(100) {name} seed {seed}: accuracy {plain[name][-1][1]:.4f}", flush=True)
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
        "## A 2 x LSTM(100) classifier (the Keras anchor's model) in padless",
        "",
        "Normalization (z-score, like the anchor's standardised data) + LSTM(100, return_sequences) + LSTM(100) + "
        "Dense(9, softmax), `fit` defaults (bucketed batches), seeds 0-4. *anchor*: the Keras anchor's settings "
        "(RMSprop 1e-3, batch 32, 30 epochs). *recipe*: the recipe's training settings (Adam 3e-3, batch 8, "
        "40 epochs, StepDecay, Dropout 0.2 before the output).",
        "",
        "| settings | accuracies (seeds 0-4) | median | training seconds (median) |",
        "|---|---|---|---|",
        *[f"| {n} | {', '.join(f'{acc:.4f}' for _, acc, _ in r)} | {statistics.median(acc for _, acc, _ in r):.4f} | "
          f"{statistics.median(t for _, _, t in r):.1f} |" for n, r in plain.items()],
        "",
        "Keras 3 (TF backend) with the anchor's settings reached 0.962 (median of 5 seeds, 0.954-0.968).",
        "",
    ]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
