"""Keras' functional ``Model``: layers called on ``padless.Input``, with branches and merges.

Owns: :class:`Model` (:class:`padless.nn.functional.FunctionalGraph` + the Keras model methods of
:class:`padless.models.keras_model.KerasModel`). Every feature of ``Sequential`` works on it: fit,
evaluate, predict, every batching mode, TBPTT (causal models), save/load, checkpoints and resume, DDP,
ONNX export, summary, count_params. Does not own: the graph (:mod:`padless.nn.functional`).

Example:
    >>> import numpy as np
    >>> import padless
    >>> from padless.layers import LSTM, Conv1D, Dense, GlobalAveragePooling1D, Concatenate
    >>> inp = padless.Input(shape=(None, 3))
    >>> conv = GlobalAveragePooling1D()(Conv1D(8, 3, padding="same", activation="relu")(inp))
    >>> out = Dense(2, activation="softmax")(Concatenate()([conv, LSTM(8)(inp)]))
    >>> model = Model(inp, out)
    >>> model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    >>> x = [np.random.rand(t, 3).astype("float32") for t in (5, 9, 2)]
    >>> model.predict(x, verbose=0).shape
    (3, 2)
"""

from __future__ import annotations

from typing import Any

from padless.models.keras_model import KerasModel
from padless.nn.functional import FunctionalGraph, SymbolicTensor

__all__ = ["Model"]


class Model(KerasModel, FunctionalGraph):
    """A model from ``Model(inputs, outputs)`` (Keras' functional API), also a plain ``nn.Module``.

    Args:
        inputs: the ``padless.Input(...)`` tensor.
        outputs: the tensor the layers computed from it.
        name: optional model name.

    Example:
        >>> import padless
        >>> from padless.layers import GRU, Dense
        >>> inp = padless.Input(shape=(None, 2))
        >>> Model(inp, Dense(1)(GRU(4)(inp))).output_shape
        (None, 1)
    """

    def __init__(self, inputs: SymbolicTensor, outputs: SymbolicTensor, name: str | None = None) -> None:
        FunctionalGraph.__init__(self, inputs, outputs, name)
        self.init_facade()

    def get_config(self) -> dict[str, Any]:
        return {"class_name": type(self).__name__, **FunctionalGraph.get_config(self)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Model":
        inp, out, name = FunctionalGraph.replay(config)
        return cls(inp, out, name=name)
