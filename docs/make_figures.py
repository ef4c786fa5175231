"""Regenerate the figures of docs/concepts.md from real data with padless' own plotting code.

Run: ``python docs/make_figures.py`` (needs the ``plots`` and ``datasets`` extras).
"""

from __future__ import annotations

from pathlib import Path

import padless.datasets as ds
from padless.plots import length_histogram, unrolled_recurrence

HERE = Path(__file__).resolve().parent


def main() -> None:
    (x, _), _ = ds.load("japanese_vowels")
    # two (and three) real JapaneseVowels sequences of different lengths
    lengths = sorted({int(t) for t in x.lengths[[0, 50, 120]]}, reverse=True)
    unrolled_recurrence(lengths, HERE / "unrolled.png")
    for name in ("plaid", "japanese_vowels"):
        (xx, _), _ = ds.load(name)
        length_histogram(xx.lengths, HERE / f"{name}_lengths.png", batch_size=32, title=name)
    print("wrote", ", ".join(p.name for p in sorted(HERE.glob("*.png"))))


if __name__ == "__main__":
    main()
