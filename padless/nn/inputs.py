"""Layers that describe a model's input: ``Masking`` (padding value of dense arrays) and ``Embedding``
(integer tokens, ``mask_zero``), with Keras' arguments.

Owns: :class:`Masking` and :class:`Embedding` (``input_dim``, ``output_dim``, ``embeddings_initializer``,
``embeddings_regularizer``, ``embeddings_constraint``, ``mask_zero``, ``weights=[matrix]``,
``input_length``, ``trainable``). Does not own: how padded input is cut into sequences
(:mod:`padless.data.inputs` reads the first layer's ``input_mask_value``/``token_input``).

Example:
    >>> import numpy as np, torch
    >>> e = Embedding(3, 2, weights=[np.eye(3, 2)], trainable=False)
    >>> e(torch.tensor([[1], [2]])).tolist(), e.embedding.weight.requires_grad
    ([[0.0, 1.0], [0.0, 0.0]], False)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from padless.errors import ConfigError, DataError
from padless.nn.base import Layer, OnnxValue, map_values
from padless.nn.weights import get_constraint, get_regularizer, initialize, initializer_config

__all__ = ["Masking", "Embedding"]


class Masking(Layer):
    """Declare that padded input arrays use ``mask_value`` for padding steps (Keras ``Masking``).

    padless never computes padding: when a model whose first layer is ``Masking`` receives a dense
    ``(N, T, F)`` array, each row's length is the number of steps before its trailing run of steps whose
    features all equal ``mask_value`` (leading padding is accepted too). A masked step in the *middle* of a
    sequence is an error (Keras would skip it silently). On ragged input the layer is the identity.

    Example:
        >>> Masking(-1.0).input_mask_value
        -1.0
    """

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)
        self.finish_init()

    @property
    def input_mask_value(self) -> float | None:
        return self.mask_value

    def forward(self, x: Any) -> Any:
        return x

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        return x


class Embedding(Layer):
    """Map integer tokens to vectors (Keras ``Embedding``).

    Args:
        input_dim: vocabulary size.
        output_dim: vector size.
        mask_zero: token 0 is padding: dense ``(N, T)`` integer input is cut at its trailing zeros.

    Example:
        >>> import torch
        >>> Embedding(10, 4)(torch.tensor([[1], [2]])).shape
        torch.Size([2, 4])
    """

    token_input = True

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 embeddings_regularizer: Any = None, embeddings_constraint: Any = None, mask_zero: bool = False,
                 weights: Any = None, input_length: int | None = None, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(input_dim, (int, np.integer)) or not isinstance(output_dim, (int, np.integer)) \
                or input_dim <= 0 or output_dim <= 0:
            raise ConfigError(f"Embedding needs positive sizes; got input_dim={input_dim}, output_dim={output_dim}")
        self.input_dim, self.output_dim, self.mask_zero = int(input_dim), int(output_dim), bool(mask_zero)
        self.embeddings_initializer = embeddings_initializer
        self.embeddings_regularizer = get_regularizer(embeddings_regularizer)
        self.embeddings_constraint = get_constraint(embeddings_constraint)
        self.input_length = None if input_length is None else int(input_length)  # Keras 2: accepted, not needed
        self.seed = seed
        self.embedding = nn.Embedding(self.input_dim, self.output_dim)
        if embeddings_initializer == "uniform":
            nn.init.uniform_(self.embedding.weight, -0.05, 0.05)  # Keras default: RandomUniform(-0.05, 0.05)
        else:
            initialize(self.embedding.weight, embeddings_initializer, seed)
        if weights is not None:
            self._load_weights(weights)
        if not self.trainable:
            self.embedding.weight.requires_grad_(False)
        self.build(1)

    def _load_weights(self, weights: Any) -> None:
        arrays = list(weights) if isinstance(weights, (list, tuple)) else [weights]
        if len(arrays) != 1:
            raise ConfigError(f"Embedding(weights=...) takes one matrix (in a list, as Keras); got {len(arrays)}")
        m = np.asarray(arrays[0], dtype=np.float32)
        if m.shape != (self.input_dim, self.output_dim):
            raise ConfigError(f"Embedding weights: Expected shape ({self.input_dim}, {self.output_dim}) / Received "
                              f"{m.shape}")
        with torch.no_grad():
            self.embedding.weight.copy_(torch.from_numpy(m))

    def get_config(self) -> dict[str, Any]:
        """Everything but the matrix itself (it travels with the weights file)."""
        reg, con = self.embeddings_regularizer, self.embeddings_constraint
        cfg: dict[str, Any] = {
            "input_dim": self.input_dim, "output_dim": self.output_dim, "mask_zero": self.mask_zero,
            "embeddings_initializer": initializer_config(self.embeddings_initializer,
                                                         f"{self.describe()}.embeddings_initializer"),
            "embeddings_regularizer": None if reg is None else reg.get_config(),
            "embeddings_constraint": None if con is None else con.get_config(),
            "input_length": self.input_length, "seed": self.seed, "name": self.name}
        if not self.trainable:
            cfg["trainable"] = False
        return cfg

    def weight_penalty(self) -> torch.Tensor | None:
        r = self.embeddings_regularizer
        return None if r is None else r(self.embedding.weight)

    def apply_constraints(self) -> None:
        if self.embeddings_constraint is not None:
            self.embeddings_constraint(self.embedding.weight.data.T)  # Keras' (input_dim, output_dim) axis 0

    def make_weights(self, input_size: int) -> None:
        if input_size != 1:
            raise DataError(f"Embedding takes one integer token per step; received {input_size} features per step")

    def build(self, input_size: int) -> int:
        if input_size != 1:
            raise DataError(f"Embedding takes one integer token per step; received {input_size} features per step")
        self.input_size = 1
        return self.output_dim

    @property
    def output_size(self) -> int:
        return self.output_dim

    @property
    def input_mask_value(self) -> float | None:
        return 0.0 if self.mask_zero else None

    def _embed(self, t: torch.Tensor) -> torch.Tensor:
        tok = t.reshape(t.shape[0], -1)[:, 0].long()  # (S,)
        if tok.numel() and (int(tok.min()) < 0 or int(tok.max()) >= self.input_dim):
            bad = int(tok.max()) if int(tok.max()) >= self.input_dim else int(tok.min())
            raise DataError(f"token {bad} is outside the vocabulary 0..{self.input_dim - 1}; raise input_dim")
        return self.embedding(tok)

    def forward(self, x: Any) -> Any:
        return map_values(x, self._embed)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        raise ConfigError(f"{self.describe()} cannot be exported to ONNX: token (Embedding) models are not "
                          "supported yet")
