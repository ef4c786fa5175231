"""padless: train recurrent networks on variable-length sequences, exactly and fast, with no padding waste.

Keras-style entry points live here (``Sequential``, ``load_model``, ``layers``, ``datasets``); the
PyTorch-level pieces are in :mod:`padless.data` (ragged containers, samplers, collation) and
:mod:`padless.nn` (layers as plain ``nn.Module`` objects).
"""

from __future__ import annotations

__version__ = "0.1.0"

from padless.errors import CheckpointError, ConfigError, DataError, PadlessError, StateError
from padless.nn.sequential import Sequential
from padless.nn.stream import Stream
from padless.train.saving import load_model
from padless import layers

__all__ = [
    "__version__",
    "Sequential",
    "Stream",
    "load_model",
    "layers",
    "PadlessError",
    "DataError",
    "ConfigError",
    "StateError",
    "CheckpointError",
]
