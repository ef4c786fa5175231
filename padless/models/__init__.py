"""The Keras-style models: the facade that wires training, saving and export to a model graph.

Owns: :class:`Sequential`, :class:`Model` (the functional API), :class:`KerasModel` (the mixin) and
:func:`load_model`. Does not own: layers
and graphs (:mod:`padless.nn`), training (:mod:`padless.train`), export (:mod:`padless.export`).

Example:
    >>> from padless.models import Sequential
    >>> from padless.layers import GRU
    >>> Sequential([GRU(2, input_shape=(None, 1))]).count_params()
    30
"""

from padless.models.functional import Model
from padless.models.keras_model import KerasModel, OptimizerView, model_classes
from padless.models.loading import load_model, model_from_config
from padless.models.sequential import Sequential

__all__ = ["KerasModel", "OptimizerView", "Sequential", "Model", "load_model", "model_from_config", "model_classes"]
