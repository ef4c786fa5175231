"""Keras' ``Sequential``: a linear stack of layers with the Keras model methods.

Owns: :class:`Sequential` (:class:`padless.nn.LayerStack` + :class:`padless.models.keras_model.KerasModel`).
Does not own: running layers (the stack), training or files (the facade's delegations).

Example:
    >>> import numpy as np
    >>> from padless.layers import LSTM, Dense
    >>> model = Sequential([LSTM(8, input_shape=(None, 3)), Dense(2, activation="softmax")])
    >>> model.count_params()
    434
    >>> x = [np.random.rand(t, 3).astype("float32") for t in (5, 9, 2)]
    >>> model.predict(x, verbose=0).shape
    (3, 2)
"""

from __future__ import annotations

from typing import Any, Iterable

from padless.models.keras_model import KerasModel
from padless.nn.base import Layer
from padless.nn.graph import LayerStack

__all__ = ["Sequential"]


class Sequential(KerasModel, LayerStack):
    """A linear stack of layers (Keras ``Sequential``), also a plain ``nn.Module``.

    Args:
        layers: initial layers (more with :meth:`add`).
        name: optional model name.

    Example:
        >>> from padless.layers import GRU, Dense
        >>> m = Sequential()
        >>> m.add(GRU(4, input_shape=(None, 2))); m.add(Dense(1))
        >>> m.output_shape
        (None, 1)
    """

    def __init__(self, layers: Iterable[Layer] | None = None, name: str | None = None) -> None:
        LayerStack.__init__(self, layers, name)
        self.init_facade()

    def get_config(self) -> dict[str, Any]:
        return {"class_name": type(self).__name__, **LayerStack.get_config(self)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Sequential":
        stack = LayerStack.from_config(config)
        return cls(list(stack.layers), name=config.get("name"))  # type: ignore[arg-type]
