"""Padding-waste accounting: how many computed time steps are spent on padding.

Owns: :class:`WasteReport` and :func:`waste_report` (the numbers for one list of batches),
:func:`compare_batching` (the standard comparison of batching strategies the demo prints) and
:func:`format_table` (a Markdown table of such rows). Does not own: making batches
(:mod:`padless.data.samplers`) or timing anything.

A batch of ``rows`` sequences padded to its longest sequence computes ``rows x longest`` steps; the real
work is the sum of its lengths. ``waste = 1 - real_steps / computed_steps``. ``sequential_steps`` (the sum
of each batch's longest length) is the number of RNN time steps run one after another in an epoch.

Example:
    >>> r = waste_report([4, 2, 2], [[0, 1], [2]])
    >>> r.real_steps, r.computed_steps, round(r.waste, 3), r.sequential_steps
    (8, 10, 0.2, 6)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from padless.data.constraints import validate_lengths
from padless.data.samplers import BucketBatchSampler, ExactLengthBatchSampler, RandomBatchSampler
from padless.errors import DataError

__all__ = ["WasteReport", "waste_report", "compare_batching", "format_table"]


@dataclass(frozen=True)
class WasteReport:
    """Padding cost of one epoch of batches.

    Attributes:
        real_steps: Sum of the lengths of all sequences in the batches.
        computed_steps: Sum over batches of rows x padded length.
        waste: ``1 - real_steps / computed_steps`` (0 = no padding).
        num_batches: Number of batches.
        sequential_steps: Sum over batches of the padded length (time steps run in sequence).
        batch_size_min: Fewest rows in a batch.
        batch_size_median: Median rows per batch.
        batch_size_max: Most rows in a batch.
    """

    real_steps: int
    computed_steps: int
    waste: float
    num_batches: int
    sequential_steps: int
    batch_size_min: int
    batch_size_median: float
    batch_size_max: int


def waste_report(
    lengths: Any, batches: Iterable[Sequence[int] | np.ndarray], *, pad_to: int | None = None
) -> WasteReport:
    """Measure the padding of ``batches`` (lists of indices into ``lengths``).

    Args:
        lengths: 1-D positive integer lengths, one per sequence.
        batches: Iterable of index lists/arrays (e.g. a sampler, or ``sampler.epoch_batches()``).
        pad_to: Pad every batch to this length instead of its longest (e.g. the global maximum).

    Returns:
        A :class:`WasteReport`.

    Raises:
        DataError: Bad lengths, no batches, an empty batch, an out-of-range index, or ``pad_to`` shorter
            than a sequence.

    Example:
        >>> waste_report([3, 1], [[0, 1]], pad_to=4).computed_steps
        8
    """
    lens = validate_lengths(lengths)
    sizes: list[int] = []
    real = computed = sequential = 0
    for k, batch in enumerate(batches):
        idx = np.asarray(batch, dtype=np.int64)
        if idx.ndim != 1 or idx.size == 0:
            raise DataError(f"batch {k} is empty or not a 1-D list of indices")
        if idx.min() < 0 or idx.max() >= lens.size:
            raise DataError(f"batch {k} holds an index outside 0..{lens.size - 1}")
        b = lens[idx]  # (rows,)
        longest = int(b.max())
        if pad_to is not None:
            if pad_to < longest:
                raise DataError(f"pad_to={pad_to} is shorter than a sequence of length {longest} in batch {k}")
            longest = int(pad_to)
        sizes.append(int(idx.size))
        real += int(b.sum())
        computed += idx.size * longest
        sequential += longest
    if not sizes:
        raise DataError("no batches to measure; pass at least one batch")
    return WasteReport(
        real_steps=real,
        computed_steps=computed,
        waste=1.0 - real / computed,
        num_batches=len(sizes),
        sequential_steps=sequential,
        batch_size_min=min(sizes),
        batch_size_median=float(np.median(sizes)),
        batch_size_max=max(sizes),
    )


def compare_batching(lengths: Any, batch_size: int = 32, seed: int = 0) -> list[tuple[str, WasteReport]]:
    """Compare the padding waste of the standard batching strategies on one epoch.

    Rows, in order: ``"pad to global max"`` (random batches, all padded to the longest sequence),
    ``"random batches"``, ``"exact-length batches"``, ``"bucketed batches"`` and
    ``"bucketed, step budget = batch_size x mean length"`` (``max_steps = round(batch_size * mean)``).

    Args:
        lengths: 1-D positive integer lengths.
        batch_size: Rows per batch for the count-based strategies.
        seed: Seed of the epoch-0 plans.

    Returns:
        A list of ``(name, WasteReport)``.

    Example:
        >>> rows = compare_batching([5, 5, 1, 1], batch_size=2)
        >>> [(name, round(r.waste, 2)) for name, r in rows][:2]
        [('pad to global max', 0.4), ('random batches', 0.4)]
    """
    lens = validate_lengths(lengths)
    budget = max(int(round(batch_size * float(lens.mean()))), int(lens.max()))
    random_batches = RandomBatchSampler(lens, batch_size, seed=seed).epoch_batches()
    exact = ExactLengthBatchSampler(lens, batch_size, seed=seed).epoch_batches()
    bucketed = BucketBatchSampler(lens, batch_size, seed=seed).epoch_batches()
    budgeted = BucketBatchSampler(lens, max_steps=budget, seed=seed).epoch_batches()
    return [
        ("pad to global max", waste_report(lens, random_batches, pad_to=int(lens.max()))),
        ("random batches", waste_report(lens, random_batches)),
        ("exact-length batches", waste_report(lens, exact)),
        ("bucketed batches", waste_report(lens, bucketed)),
        ("bucketed, step budget = batch_size x mean length", waste_report(lens, budgeted)),
    ]


def format_table(rows: Iterable[tuple[str, WasteReport]]) -> str:
    """Render ``(name, WasteReport)`` rows as a Markdown table.

    Args:
        rows: E.g. the result of :func:`compare_batching`.

    Returns:
        The table as one string (no trailing newline).

    Example:
        >>> print(format_table([("x", waste_report([2, 1], [[0, 1]]))]).splitlines()[2])
        | x | 25.0% | 4 | 2 | 1 | 2 / 2 / 2 |
    """
    lines = [
        "| batching | padding waste | computed steps | sequential steps | batches | batch size min / median / max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        med = f"{r.batch_size_median:g}"
        lines.append(
            f"| {name} | {100 * r.waste:.1f}% | {r.computed_steps} | {r.sequential_steps} | {r.num_batches} | "
            f"{r.batch_size_min} / {med} / {r.batch_size_max} |"
        )
    return "\n".join(lines)
