"""Padding-waste accounting and the batch constraints."""

from __future__ import annotations

import numpy as np
import pytest

from padless.data import (
    MaxCount,
    MaxSteps,
    WasteReport,
    compare_batching,
    format_table,
    resolve_constraint,
    validate_lengths,
    waste_report,
)
from padless.errors import ConfigError, DataError


def test_waste_report_by_hand():
    r = waste_report([10, 2, 4, 4, 1], [[0, 1], [2, 3], [4]])
    # computed: 2*10 + 2*4 + 1*1 = 29; real: 21
    assert r == WasteReport(
        real_steps=21, computed_steps=29, waste=1 - 21 / 29, num_batches=3, sequential_steps=15,
        batch_size_min=1, batch_size_median=2.0, batch_size_max=2,
    )


def test_waste_report_pad_to_and_errors():
    r = waste_report([3, 1], [[0], [1]], pad_to=5)
    assert (r.computed_steps, r.sequential_steps, r.real_steps) == (10, 10, 4)
    with pytest.raises(DataError, match="pad_to=2 is shorter than a sequence of length 3 in batch 0"):
        waste_report([3, 1], [[0, 1]], pad_to=2)
    with pytest.raises(DataError, match="batch 1 is empty"):
        waste_report([3, 1], [[0], []])
    with pytest.raises(DataError, match="batch 0 holds an index outside 0..1"):
        waste_report([3, 1], [[2]])
    with pytest.raises(DataError, match="no batches"):
        waste_report([3, 1], [])


def test_compare_batching_rows_and_order():
    lengths = np.random.default_rng(0).integers(5, 200, size=500)
    rows = compare_batching(lengths, batch_size=16, seed=3)
    names = [name for name, _ in rows]
    assert names == [
        "pad to global max",
        "random batches",
        "exact-length batches",
        "bucketed batches",
        "bucketed, step budget = batch_size x mean length",
    ]
    by = dict(rows)
    assert by["pad to global max"].waste == pytest.approx(1 - lengths.sum() / (lengths.size * lengths.max()))
    assert by["exact-length batches"].waste == 0.0
    assert by["bucketed batches"].waste < by["random batches"].waste < by["pad to global max"].waste
    assert all(r.real_steps == int(lengths.sum()) for r in by.values())  # nothing dropped
    assert rows == compare_batching(lengths, batch_size=16, seed=3)  # deterministic


def test_format_table_is_markdown():
    rows = compare_batching([4, 4, 2, 1], batch_size=2)
    table = format_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| batching | padding waste |") and lines[1].startswith("|---|")
    assert len(lines) == 2 + len(rows)
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    assert f"{100 * rows[0][1].waste:.1f}%" in lines[2]


def test_constraints():
    assert MaxCount(3).fits(3, 10**6) and not MaxCount(3).fits(4, 1) and not MaxCount(3).fits(0, 1)
    assert MaxSteps(100).fits(4, 25) and not MaxSteps(100).fits(5, 25)
    assert MaxSteps(100).capacity(30) == 3 and MaxCount(7).capacity(10**6) == 7
    np.testing.assert_array_equal(MaxSteps(100).fits_array(np.array([1, 4, 5]), np.array([100, 25, 25])), [True, True, False])
    assert isinstance(resolve_constraint(8, None), MaxCount) and isinstance(resolve_constraint(None, 8), MaxSteps)
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ConfigError, match="must be a positive integer"):
            MaxSteps(bad)
        with pytest.raises(ConfigError, match="must be a positive integer"):
            MaxCount(bad)
    with pytest.raises(ConfigError, match="exactly one"):
        resolve_constraint(None, None)
    with pytest.raises(DataError, match=r"sequence 1 has 101 steps, more than max_steps=100.*at least 101.*tbptt"):
        MaxSteps(100).check_lengths(np.array([5, 101]))
    MaxCount(1).check_lengths(np.array([10**9]))


def test_validate_lengths():
    src = [3, 1]
    out = validate_lengths(src)
    assert out.dtype == np.int64 and out.tolist() == [3, 1]
    assert validate_lengths(np.array([2.0, 3.0])).tolist() == [2, 3]
    with pytest.raises(DataError, match=r"lengths\[1\] = 2.5 is not a whole number"):
        validate_lengths([1, 2.5])
    with pytest.raises(DataError, match=r"lengths\[2\] = -4"):
        validate_lengths([1, 2, -4])
    with pytest.raises(DataError, match="1-D"):
        validate_lengths([[1, 2]])
    with pytest.raises(DataError, match="integers"):
        validate_lengths(["a"])
