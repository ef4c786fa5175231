"""Non-recurrent Keras-style layers that work on per-row tensors and on ragged batches alike.

Owns: :class:`Dense`, :class:`Dropout`, :class:`Masking`, :class:`Embedding` and the activation names.
A layer applied to a :class:`~padless.data.collate.RaggedBatch` transforms every position of the layout
(so per-step heads cost nothing extra); applied to a (B, F) tensor it transforms each row.

Does not own: recurrent layers (``padless.nn.recurrent``), models (``padless.nn.sequential``).
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError, DataError

__all__ = ["Dense", "Dropout", "GaussianNoise", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "Masking", "Embedding", "Normalization", "ACTIVATIONS", "get_activation"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda t: t,
    "softmax": lambda t: torch.softmax(t, -1),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": nn.functional.elu,
    "selu": torch.selu,
    "gelu": nn.functional.gelu,
    "softplus": nn.functional.softplus,
    "swish": nn.functional.silu,
    "silu": nn.functional.silu,
    "log_softmax": lambda t: torch.log_softmax(t, -1),
}


def get_activation(name: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the activation function called ``name`` (None means linear).

    Raises:
        ConfigError: unknown name, with the closest valid names.
    """
    key = "linear" if name is None else str(name).lower()
    if key not in ACTIVATIONS:
        close = difflib.get_close_matches(key, list(ACTIVATIONS), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"unknown activation {name!r}.{hint} Valid: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[key]


def _map(x: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(x, RaggedBatch):
        return x.with_data(fn(x.data))
    return fn(x)


class Dense(nn.Module):
    """Fully connected layer ``activation(x @ W + b)`` (Keras ``Dense``).

    Args:
        units: output size.
        activation: name (``"softmax"``, ``"relu"``, ...) or None.
        use_bias: add a bias.
        input_size: input features; inferred on first use when omitted.

    Example:
        >>> import torch
        >>> Dense(2, activation="softmax", input_size=3)(torch.randn(4, 3)).sum(-1).allclose(torch.ones(4))
        True
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        input_size: int | None = None,
        input_shape: Sequence[int | None] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise ConfigError(f"units must be a positive integer; got {units!r}")
        self.units = int(units)
        self.activation = None if activation is None else str(activation).lower()
        self._act = get_activation(activation)
        self.use_bias = bool(use_bias)
        self.name = name
        self.linear: nn.Linear | None = None
        self.input_size: int | None = None
        if input_shape is not None:
            input_size = input_size or input_shape[-1]
        if input_size is not None:
            self.build(int(input_size))

    def build(self, input_size: int) -> int:
        if self.linear is not None:
            if input_size != self.input_size:
                raise DataError(f"layer {self.describe()} was built for {self.input_size} inputs; received {input_size}")
            return self.units
        self.input_size = int(input_size)
        self.linear = nn.Linear(self.input_size, self.units, bias=self.use_bias)
        bound = math.sqrt(6.0 / (self.input_size + self.units))  # Keras glorot_uniform
        nn.init.uniform_(self.linear.weight, -bound, bound)
        if self.linear.bias is not None:
            nn.init.zeros_(self.linear.bias)
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    def describe(self) -> str:
        return self.name or "Dense"

    def logits(self, x: Any) -> Any:
        """The layer before its activation (used for numerically stable losses)."""
        if self.linear is None:
            self.build(int((x.data if isinstance(x, RaggedBatch) else x).shape[-1]))
        lin = self.linear
        return _map(x, lin)  # type: ignore[arg-type]

    def forward(self, x: Any) -> Any:
        return _map(self.logits(x), self._act)


class Dropout(nn.Module):
    """Drop inputs with probability ``rate`` while training (Keras ``Dropout``)."""

    def __init__(self, rate: float, name: str | None = None) -> None:
        super().__init__()
        if not 0.0 <= float(rate) < 1.0:
            raise ConfigError(f"Dropout rate must be in [0, 1); got {rate!r}")
        self.rate = float(rate)
        self.name = name
        self.input_size: int | None = None

    def build(self, input_size: int) -> int:
        self.input_size = input_size
        return input_size

    def describe(self) -> str:
        return self.name or "Dropout"

    def forward(self, x: Any) -> Any:
        return _map(x, lambda t: nn.functional.dropout(t, self.rate, self.training))


class GaussianNoise(nn.Module):
    """Add zero-mean Gaussian noise of std ``stddev`` while training (Keras ``GaussianNoise``)."""

    def __init__(self, stddev: float, name: str | None = None) -> None:
        super().__init__()
        if float(stddev) < 0:
            raise ConfigError(f"GaussianNoise stddev must be >= 0; got {stddev!r}")
        self.stddev = float(stddev)
        self.name = name
        self.input_size: int | None = None

    def build(self, input_size: int) -> int:
        self.input_size = input_size
        return input_size

    def describe(self) -> str:
        return self.name or "GaussianNoise"

    def forward(self, x: Any) -> Any:
        if not self.training or self.stddev == 0:
            return x
        return _map(x, lambda t: t + self.stddev * torch.randn_like(t))


class Masking(nn.Module):
    """Declare that padded input arrays use ``mask_value`` for padding steps (Keras ``Masking``).

    padless never computes padding: when a model whose first layer is ``Masking`` receives a dense
    ``(N, T, F)`` array, each row's length is the number of steps before its trailing run of steps whose
    features all equal ``mask_value`` (leading padding is accepted too). A masked step in the *middle* of a
    sequence is an error (Keras would skip it silently). On ragged input the layer is the identity.
    """

    def __init__(self, mask_value: float = 0.0, input_shape: Sequence[int | None] | None = None,
                 name: str | None = None) -> None:
        super().__init__()
        self.mask_value = float(mask_value)
        self.name = name
        self.input_size: int | None = None if input_shape is None else input_shape[-1]

    def build(self, input_size: int) -> int:
        self.input_size = input_size
        return input_size

    def describe(self) -> str:
        return self.name or "Masking"

    def forward(self, x: Any) -> Any:
        return x


class Embedding(nn.Module):
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

    def __init__(self, input_dim: int, output_dim: int, mask_zero: bool = False,
                 input_shape: Sequence[int | None] | None = None, name: str | None = None) -> None:
        super().__init__()
        if input_dim <= 0 or output_dim <= 0:
            raise ConfigError(f"Embedding needs positive sizes; got input_dim={input_dim}, output_dim={output_dim}")
        self.input_dim, self.output_dim, self.mask_zero = int(input_dim), int(output_dim), bool(mask_zero)
        self.name = name
        self.embedding = nn.Embedding(self.input_dim, self.output_dim)
        nn.init.uniform_(self.embedding.weight, -0.05, 0.05)  # Keras default
        self.input_size: int | None = 1

    def build(self, input_size: int) -> int:
        if input_size != 1:
            raise DataError(f"Embedding takes one integer token per step; received {input_size} features per step")
        return self.output_dim

    @property
    def output_size(self) -> int:
        return self.output_dim

    def describe(self) -> str:
        return self.name or "Embedding"

    def _embed(self, t: torch.Tensor) -> torch.Tensor:
        tok = t.reshape(t.shape[0], -1)[:, 0].long()  # (S,)
        if tok.numel() and (int(tok.min()) < 0 or int(tok.max()) >= self.input_dim):
            bad = int(tok.max()) if int(tok.max()) >= self.input_dim else int(tok.min())
            raise DataError(f"token {bad} is outside the vocabulary 0..{self.input_dim - 1}; raise input_dim")
        return self.embedding(tok)

    def forward(self, x: Any) -> Any:
        return _map(x, self._embed)


class Normalization(nn.Module):
    """Standardise every feature with statistics learned by :meth:`adapt` (Keras ``Normalization``).

    The mean and variance are buffers, so they are saved with the weights and travel with the model.
    Statistics count every real step once (no padding enters them).

    Args:
        input_size: number of features (inferred by ``adapt`` when omitted).
        epsilon: added to the variance.

    Example:
        >>> import numpy as np
        >>> norm = Normalization()
        >>> norm.adapt([np.array([[0.0], [2.0]]), np.array([[4.0]])])
        >>> norm(torch.tensor([[2.0]])).item()
        0.0
    """

    def __init__(self, input_size: int | None = None, epsilon: float = 1e-7,
                 input_shape: Sequence[int | None] | None = None, name: str | None = None) -> None:
        super().__init__()
        if input_shape is not None:
            input_size = input_size or input_shape[-1]
        self.epsilon = float(epsilon)
        self.name = name
        self.input_size: int | None = None
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("variance", torch.ones(0))
        if input_size is not None:
            self.build(int(input_size))

    def build(self, input_size: int) -> int:
        if self.input_size is not None:
            if input_size != self.input_size:
                raise DataError(f"Normalization was built for {self.input_size} features; received {input_size}")
            return input_size
        self.input_size = int(input_size)
        self.mean = torch.zeros(self.input_size)
        self.variance = torch.ones(self.input_size)
        return self.input_size

    def adapt(self, data: Any) -> None:
        """Learn per-feature mean and variance from a RaggedArray, a list of (T_i, F) arrays or (N, T, F)."""
        from padless.train.inputs import as_ragged

        ra = as_ragged(data)
        values = np.asarray(ra.values, dtype=np.float64)  # (sum T, F)
        self.build(int(values.shape[1]))
        self.mean = torch.as_tensor(values.mean(0), dtype=torch.float32)
        self.variance = torch.as_tensor(values.var(0), dtype=torch.float32)

    @property
    def output_size(self) -> int | None:
        return self.input_size

    def describe(self) -> str:
        return self.name or "Normalization"

    def forward(self, x: Any) -> Any:
        scale = torch.rsqrt(self.variance + self.epsilon)
        return _map(x, lambda t: (t - self.mean) * scale)


class _GlobalPooling1D(nn.Module):
    """Pool each sequence over its real steps only: RaggedBatch (S, F) -> (B, F) in sorted row order."""

    reduce = "mean"

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.input_size: int | None = None
        self.return_sequences = False

    def build(self, input_size: int) -> int:
        self.input_size = input_size
        return input_size

    def describe(self) -> str:
        return self.name or type(self).__name__

    def forward(self, x: Any) -> Any:
        if not isinstance(x, RaggedBatch):
            raise ConfigError(f"{self.describe()} pools sequences: put it after a layer with return_sequences=True")
        p = x.plan
        dev = x.data.device
        rows = p.tensor("row_of_pos", dev)
        data = x.data
        if not p.exact:
            valid = p.tensor("valid", dev)
            rows, data = rows[valid], data[valid]
        out = data.new_zeros((p.batch_size, data.shape[1]))  # (B, F)
        if self.reduce == "mean":
            out = out.index_add(0, rows, data)
            return out / p.tensor("lengths", dev).to(data.dtype).unsqueeze(1)
        idx = rows.unsqueeze(1).expand_as(data)
        return out.scatter_reduce(0, idx, data, reduce="amax", include_self=False)


class GlobalAveragePooling1D(_GlobalPooling1D):
    """Mean over each sequence's real steps (Keras ``GlobalAveragePooling1D`` with a mask)."""

    reduce = "mean"


class GlobalMaxPooling1D(_GlobalPooling1D):
    """Max over each sequence's real steps (Keras ``GlobalMaxPooling1D`` with a mask)."""

    reduce = "max"
