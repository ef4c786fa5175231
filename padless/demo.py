"""``padless demo``: the README's main job, on built-in data, in about a minute on 2 CPU cores.

Owns: the demo's three parts and what it prints - (1) the classic Keras question (fit on lengths 50,
10, 60 and one mixed list; the parameter count never changes), (2) the library's recipe trained on
JapaneseVowels with its test accuracy, (3) the padding waste of each batching strategy on the PLAID and
JapaneseVowels lengths and a side-by-side throughput measurement on PLAID.

Does not own: any of the machinery (it uses the public API like a user).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

import padless.datasets as ds
from padless.bench import LABELS, make_padless_variant, make_torch_variant, measure
from padless.data.waste import compare_batching, format_table
from padless.models import Sequential
from padless.nn.core import Dense
from padless.nn.recurrent import LSTM
from padless.recipes import CLASSIFIER_FIT, StepDecay, sequence_classifier

__all__ = ["run_demo", "seed_scenario", "jv_classifier", "waste_tables", "throughput"]


def _h(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def seed_scenario(n: int = 1000) -> dict[str, Any]:
    """The Keras program from the question, with a length-60 fit and a mixed-length list fit."""

    model = Sequential()
    model.add(LSTM(100, return_sequences=True, input_shape=(None, 100)))
    model.add(LSTM(100))
    model.add(Dense(2, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    params = model.count_params()
    rng = np.random.default_rng(0)
    x_val, y_val = rng.random((200, 50, 100)), rng.random((200, 2))
    data = {T: (rng.random((n, T, 100)), rng.random((n, 2))) for T in (50, 10, 60)}
    counts = []
    for T, (x, y) in data.items():
        t = time.perf_counter()
        h = model.fit(x, y, batch_size=200, epochs=1, shuffle=False, validation_data=(x_val, y_val), verbose=0)
        counts.append(model.count_params())
        print(f"fit on ({n}, {T:>2}, 100): loss {h.history['loss'][0]:.4f}  val_loss {h.history['val_loss'][0]:.4f}"
              f"  {time.perf_counter() - t:.2f}s  params {counts[-1]:,}")
    mixed = [s for T in (50, 10, 60) for s in data[T][0]]
    ym = np.concatenate([data[T][1] for T in (50, 10, 60)])
    t = time.perf_counter()
    h = model.fit(mixed, ym, batch_size=200, epochs=1, verbose=0)
    counts.append(model.count_params())
    print(f"fit on a list of {len(mixed)} sequences of lengths 50/10/60 mixed: loss {h.history['loss'][0]:.4f}  "
          f"{time.perf_counter() - t:.2f}s  padding waste {100 * h.throughput['padding_waste'][0]:.1f}%  params {counts[-1]:,}")
    score = model.evaluate(x_val, y_val, batch_size=200, verbose=0)
    print(f"evaluate (200, 50, 100): loss {score[0]:.4f}, accuracy {score[1]:.4f}")
    print(f"parameter count before and after every fit: {params:,} (unchanged: a cell is not a time step; "
          "Keras reports 161,002 because PyTorch keeps two bias vectors per gate)")
    return {"params": params, "unchanged": all(c == params for c in counts)}


def jv_classifier(seed: int = 0, epochs: int | None = None) -> dict[str, float]:
    """Train the library's recipe on JapaneseVowels; return test accuracy and training seconds."""

    (x, y), (xt, yt) = ds.load("japanese_vowels")
    torch.manual_seed(seed)
    model = sequence_classifier(x.num_features, len(ds.classes("japanese_vowels")), x)
    ep = epochs or CLASSIFIER_FIT["epochs"]
    t = time.perf_counter()
    model.fit(x, y, batch_size=CLASSIFIER_FIT["batch_size"], epochs=ep, verbose=0, seed=seed,
              callbacks=[StepDecay((int(ep * 0.6), int(ep * 0.85)))])
    secs = time.perf_counter() - t
    loss, acc = model.evaluate(xt, yt, verbose=0)
    return {"accuracy": float(acc), "loss": float(loss), "train_seconds": secs, "epochs": ep}


def waste_tables(batch_size: int = 32) -> None:
    """Print the padding waste of each batching strategy on the built-in length distributions."""

    for name, label in (("plaid", "PLAID train (537 sequences, lengths 100-1344)"),
                        ("japanese_vowels", "JapaneseVowels train (270 sequences, lengths 7-26)")):
        (x, _), _ = ds.load(name)
        print(f"\n{label}, batch {batch_size}: padding waste = padded steps / computed steps")
        print(format_table(compare_batching(x.lengths, batch_size=batch_size, seed=0)))


def throughput(quick: bool = False) -> dict[str, float]:
    """One epoch each, side by side, on PLAID (real data, 1 feature): padless vs plain-PyTorch baselines."""

    (x, y), _ = ds.load("plaid")
    xs = [np.asarray(s, dtype=np.float32) for s in x.to_list()]
    y = np.asarray(y)
    if quick:
        xs, y = xs[:96], y[:96]
    variants = {"b": make_torch_variant("b", xs, y, 11, 0), "d": make_torch_variant("d", xs, y, 11, 0),
                "e": make_torch_variant("e", xs, y, 11, 0), "P": make_padless_variant(xs, y, 11, 0)}
    res = measure(variants, repeats=1)
    ceil = res["e"]["steps_per_s"]
    print("\nPLAID (real, 1 feature), 2 x LSTM(100) + Dense, batch 32, one epoch each (after one warm-up epoch):")
    print("| variant | epoch s | useful steps/s | x ceiling |\n|---|---|---|---|")
    for k, r in res.items():
        print(f"| {LABELS[k].replace('*', '')} | {r['median_s']:.2f} | {r['steps_per_s']:,.0f} | {r['steps_per_s'] / ceil:.2f} |")
    print("(single repeats are noisy on a shared machine; benchmarks/RESULTS.md has the medians)")
    return {k: r["steps_per_s"] for k, r in res.items()}


def run_demo(quick: bool = False) -> int:
    """Run the three parts; return 0."""
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)) if quick else torch.get_num_threads())
    t0 = time.perf_counter()
    _h("1. The classic question: one model, sequences of length 50, 10, 60 - and a mixed list")
    seed_scenario(n=200 if quick else 1000)
    _h("2. A recurrent classifier on JapaneseVowels (library recipe, test split)")
    r = jv_classifier(epochs=3 if quick else None)
    print(f"accuracy: {r['accuracy']:.4f}")
    print(f"trained {r['epochs']} epochs in {r['train_seconds']:.1f}s")
    _h("3. Where the padding goes, and what it costs")
    waste_tables()
    throughput(quick=quick)
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f}s")
    return 0
