"""padless: train recurrent networks on variable-length sequences, exactly and fast, with no padding waste.

Owns: the Keras-style entry points (``Sequential``, ``load_model``, ``Stream``, ``layers``, ``optimizers``,
``losses``, ``metrics``, ``callbacks``, the errors)
and ``__version__``. The PyTorch-level pieces are in :mod:`padless.data` (ragged containers, samplers,
collation), :mod:`padless.nn` (layers and graphs as plain ``nn.Module`` objects), :mod:`padless.train`
(the trainer), :mod:`padless.export` (ONNX). Does not own: any behaviour; see ``docs/architecture.md``.

Example:
    >>> import padless
    >>> padless.Sequential([padless.layers.GRU(2, input_shape=(None, 1))]).count_params()
    30
"""

from __future__ import annotations

from padless import callbacks, layers, losses, metrics, optimizers
from padless.errors import CheckpointError, ConfigError, DataError, PadlessError, StateError
from padless.io import VERSION as __version__
from padless.models import Model, Sequential, load_model
from padless.nn.functional import Input
from padless.nn.stream import Stream

__all__ = [
    "__version__",
    "Sequential",
    "Model",
    "Input",
    "Stream",
    "load_model",
    "layers",
    "optimizers",
    "losses",
    "metrics",
    "callbacks",
    "PadlessError",
    "DataError",
    "ConfigError",
    "StateError",
    "CheckpointError",
]
