"""Data layer: ragged storage, batching constraints, batch samplers, padding-waste accounting, Parquet I/O.

Owns: the re-exports below. Does not own: collation into model inputs (:mod:`padless.data.collate`,
imported on its own), models or training. Nothing here pads data to train on it.

Example:
    >>> from padless.data import RaggedArray, BucketBatchSampler
    >>> ra = RaggedArray.from_list([[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]])
    >>> list(BucketBatchSampler(ra.lengths, batch_size=2, shuffle=False))
    [[1], [0, 2]]
"""

from __future__ import annotations

from padless.data.constraints import BatchConstraint, MaxCount, MaxSteps, resolve_constraint, validate_lengths
from padless.data.parquet import read_parquet, write_parquet
from padless.data.ragged import RaggedArray, concatenate
from padless.data.samplers import BucketBatchSampler, EpochIterator, ExactLengthBatchSampler, RandomBatchSampler
from padless.data.waste import WasteReport, compare_batching, format_table, waste_report

__all__ = [
    "RaggedArray",
    "concatenate",
    "BatchConstraint",
    "MaxCount",
    "MaxSteps",
    "resolve_constraint",
    "validate_lengths",
    "BucketBatchSampler",
    "ExactLengthBatchSampler",
    "RandomBatchSampler",
    "EpochIterator",
    "WasteReport",
    "waste_report",
    "compare_batching",
    "format_table",
    "read_parquet",
    "write_parquet",
]
