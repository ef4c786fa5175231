"""Data layer: ragged storage, batching constraints, batch samplers, padding-waste accounting, Parquet I/O.

Owns: the re-exports below: storage (:mod:`~padless.data.ragged`), batch sources (samplers and their
constraints), execution plans and collation into :class:`RaggedBatch` (:mod:`~padless.data.plan`,
:mod:`~padless.data.collate`), reading what users pass (:mod:`~padless.data.inputs`) and files
(:mod:`~padless.data.readers`) and long tables (:mod:`~padless.data.tables`), waste accounting. Does not own: models or training. Nothing here pads
data to train on it.

Example:
    >>> from padless.data import RaggedArray, BucketBatchSampler
    >>> ra = RaggedArray.from_list([[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]])
    >>> list(BucketBatchSampler(ra.lengths, batch_size=2, shuffle=False))
    [[1], [0, 2]]
"""

from __future__ import annotations

from padless.data.collate import RaggedBatch, collate, collate_values
from padless.data.constraints import BatchConstraint, MaxCount, MaxSteps, resolve_constraint, validate_lengths
from padless.data.inputs import Targets, as_ragged, as_targets
from padless.data.labels import encode_classes, sort_class_names
from padless.data.parquet import read_parquet, write_parquet
from padless.data.ragged import RaggedArray, concatenate
from padless.data.readers import LabeledData, read_data
from padless.data.samplers import BucketBatchSampler, EpochIterator, ExactLengthBatchSampler, RandomBatchSampler
from padless.data.sources import BATCHING_MODES, BatchSource, SequentialBatchSampler, make_sampler
from padless.data.tables import LongTable, LongTableSchema, read_long_table, write_long_predictions
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
    "SequentialBatchSampler",
    "BatchSource",
    "BATCHING_MODES",
    "make_sampler",
    "WasteReport",
    "waste_report",
    "compare_batching",
    "format_table",
    "read_parquet",
    "write_parquet",
    "RaggedBatch",
    "collate",
    "collate_values",
    "as_ragged",
    "as_targets",
    "Targets",
    "sort_class_names",
    "encode_classes",
    "read_data",
    "LabeledData",
    "read_long_table",
    "write_long_predictions",
    "LongTable",
    "LongTableSchema",
]
