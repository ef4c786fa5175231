"""Attention within each sequence of a ragged batch: multi-head self-attention and attention pooling.

Owns: :class:`MultiHeadAttention` (Keras' layer as a padless sequence layer: *self*-attention, query =
key = value = the sequence, optionally causal) and :class:`AttentionPooling1D` (a learned score per step,
softmax over each sequence's real steps, the weighted sum: one vector per sequence), and their ONNX form.
A step attends only to real steps of its own sequence: no value from another row or from padding ever
enters an output.

Does not own: recurrent layers, global pooling (:mod:`padless.nn.pooling`).

Example:
    >>> import torch
    >>> mha = MultiHeadAttention(num_heads=2, key_dim=4, input_size=3)
    >>> [tuple(o.shape) for o in mha([torch.randn(5, 3), torch.randn(2, 3)])]
    [(5, 3), (2, 3)]
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.data.plan import SegmentPlan
from padless.errors import ConfigError
from padless.nn.activations import Activation, activation_onnx, resolve_activation
from padless.nn.adapters import from_batch
from padless.nn.base import Layer, OnnxValue
from padless.nn.conv import sequence_input

__all__ = ["MultiHeadAttention", "AttentionPooling1D", "padded_view"]


def _glorot(*shape: int) -> nn.Parameter:
    """Keras' glorot_uniform for a kernel of ``shape`` (its fan rule for kernels of 3 axes)."""
    rf = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    bound = math.sqrt(6.0 / (shape[-2] * rf + shape[-1] * rf))
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


def _count(value: Any, what: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    v = value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise ConfigError(f"MultiHeadAttention: {what} must be a positive integer; got {value!r}. Keras' key_dim "
                          "and value_dim are the size of *each* head (PyTorch's embed_dim / num_heads), so any "
                          "positive pair num_heads, key_dim fits: e.g. MultiHeadAttention(num_heads=4, key_dim=16)")
    return int(v)


def padded_view(plan: SegmentPlan, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gather, scatter)`` index tables (cached on the plan): ``ext[gather]`` is the (B * T, F) padded view
    of ``ext = [data; zero row]``, and ``padded[scatter]`` brings (B * T, K) values back to the layout."""
    dev = torch.device(device)

    def make() -> tuple[torch.Tensor, torch.Tensor]:
        table = plan.positions()  # (B, T), -1 after each row's end
        gather = np.where(table >= 0, table, plan.size).reshape(-1).astype(np.int32)
        scatter = (plan.row_of_pos * table.shape[1] + plan.time_of_pos).astype(np.int32)  # (S,)
        return torch.from_numpy(gather).to(dev), torch.from_numpy(scatter).to(dev)

    return plan.cached(("padded_view", str(dev)), make)


class MultiHeadAttention(Layer):
    """Multi-head self-attention within each sequence (Keras ``MultiHeadAttention`` on ``(x, x, x)``).

    Keras' layer is called as ``mha(query, value, key)``; as a padless sequence layer it is self-attention
    on its input (query = key = value = the sequence). Every step attends to the real steps of its own
    sequence only (and only to earlier ones with ``causal=True``).

    With ``causal=True`` every output depends on earlier steps only, yet the layer does not stream
    (:attr:`causal` is False, so ``Stream``, truncated BPTT and streaming export refuse it): a step attends
    to *all* earlier steps of its sequence, and padless carries no attention cache between chunks.

    Args:
        num_heads: attention heads.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value (default ``key_dim``).
        dropout: dropout on the attention weights while training.
        use_bias: biases in the projections.
        output_shape: output features per step (default: the input's, Keras' default).
        causal: each step attends only to itself and earlier steps (Keras ``use_causal_mask=True``).
        **kwargs: the common layer keywords.

    Weights (Keras' shapes and glorot_uniform init): ``query_kernel``/``key_kernel`` (F, heads, key_dim),
    ``value_kernel`` (F, heads, value_dim), ``output_kernel`` (heads, value_dim, out), and their biases.

    Example:
        >>> m = MultiHeadAttention(2, 8, causal=True)
        >>> m.causal_mask, m.causal
        (True, False)
    """

    requires_sequences = True

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None, dropout: float = 0.0,
                 use_bias: bool = True, output_shape: int | Sequence[int] | None = None, causal: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_heads = _count(num_heads, "num_heads")
        self.key_dim = _count(key_dim, "key_dim")
        self.value_dim = _count(value_dim, "value_dim", allow_none=True)
        self.output_shape = _count(output_shape, "output_shape", allow_none=True)
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"MultiHeadAttention: dropout must be in [0, 1); got {dropout!r}")
        self.dropout, self.use_bias, self.causal_mask = float(dropout), bool(use_bias), bool(causal)
        self.finish_init()

    @property  # type: ignore[override]
    def causal(self) -> bool:
        """Always False: even with a causal mask a step needs every earlier step (no cache is carried)."""
        return False

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "causal": self.causal_mask}

    def noncausal_reason(self) -> str:
        if self.causal_mask:
            return ("each step attends to every earlier step of its sequence and padless carries no attention "
                    "cache between chunks; run whole sequences")
        return "each step attends to later steps of its sequence"

    @property
    def output_size(self) -> int:
        if self.output_shape is not None:
            return self.output_shape
        return super().output_size

    def make_weights(self, input_size: int) -> None:
        H, dk, dv = self.num_heads, self.key_dim, self.value_dim or self.key_dim
        out = self.output_shape or input_size
        self.query_kernel, self.key_kernel = _glorot(input_size, H, dk), _glorot(input_size, H, dk)
        self.value_kernel, self.output_kernel = _glorot(input_size, H, dv), _glorot(H, dv, out)
        for name, shape in (("query_bias", (H, dk)), ("key_bias", (H, dk)), ("value_bias", (H, dv)),
                            ("output_bias", (out,))):
            self.register_parameter(name, nn.Parameter(torch.zeros(shape)) if self.use_bias else None)

    def _project(self, xp: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        B, T, F = xp.shape
        y = xp.reshape(B * T, F) @ kernel.reshape(F, -1)  # (B*T, H*d)
        if bias is not None:
            y = y + bias.reshape(-1)
        return y.view(B, T, self.num_heads, -1).transpose(1, 2)  # (B, H, T, d)

    @staticmethod
    def key_mask(plan: SegmentPlan, device: torch.device | str) -> torch.Tensor:
        """(B, 1, 1, T) bool, True on each row's real keys (cached on the plan). Padded queries keep their
        row's real keys, so no softmax row is all -inf (no NaN)."""
        def make() -> torch.Tensor:
            m = np.arange(plan.max_length)[None, :] < plan.lengths[:, None]  # (B, T)
            return torch.from_numpy(np.ascontiguousarray(m[:, None, None, :])).to(device)

        return plan.cached(("key_mask", str(device)), make)

    def forward(self, x: Any) -> Any:
        batch, kind = sequence_input(self, x)
        p, data = batch.plan, batch.data  # (S, F)
        B, T, F = p.batch_size, p.max_length, int(data.shape[1])
        gather, scatter = padded_view(p, data.device)
        xp = torch.cat([data, data.new_zeros((1, F))]).index_select(0, gather).view(B, T, F)  # (B, T, F)
        q = self._project(xp, self.query_kernel, self.query_bias)
        k = self._project(xp, self.key_kernel, self.key_bias)
        v = self._project(xp, self.value_kernel, self.value_bias)
        # causal: a real query at t < L sees keys <= t, all real, so the causal mask alone keeps padding out
        # (a padded query may see padded keys: its output sits at a padded position that nothing reads)
        mask = None if self.causal_mask else self.key_mask(p, data.device)
        o = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=self.causal_mask, dropout_p=self.dropout if self.training else 0.0,
            scale=1.0 / math.sqrt(self.key_dim))  # (B, H, T, dv)
        o = o.transpose(1, 2).reshape(B * T, -1) @ self.output_kernel.reshape(-1, self.output_kernel.shape[-1])
        if self.output_bias is not None:
            o = o + self.output_bias
        return from_batch(batch.with_data(o.index_select(0, scatter)), kind)  # (S, out)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if not x.seq:
            raise ConfigError(f"{self.describe()} needs sequences but the layer before returns one vector per sequence")
        if not self.built:
            raise ConfigError(f"{self.describe()} has no weights yet: build or train the model before exporting")
        H, i64 = self.num_heads, np.int64
        xb = g.op("Transpose", [g.op("Where", [g.mask, x.name, g.const("fzero", 0.0)])], "mha_in", perm=[1, 0, 2])

        def project(kernel: torch.Tensor, bias: torch.Tensor | None, hint: str, perm: list[int]) -> str:
            y = g.op("MatMul", [xb, g.const(hint + "_W", _np(kernel).reshape(x.size, -1))], hint)  # (B, T, H*d)
            if bias is not None:
                y = g.op("Add", [y, g.const(hint + "_b", _np(bias).reshape(-1))])
            y = g.op("Reshape", [y, g.const("heads_shape", [0, 0, H, -1], i64)])  # (B, T, H, d)
            return g.op("Transpose", [y], hint + "_heads", perm=perm)  # type: ignore[no-any-return]

        q = project(self.query_kernel, self.query_bias, "q", [0, 2, 1, 3])  # (B, H, T, dk)
        k = project(self.key_kernel, self.key_bias, "k", [0, 2, 3, 1])  # (B, H, dk, T)
        v = project(self.value_kernel, self.value_bias, "v", [0, 2, 1, 3])  # (B, H, T, dv)
        scores = g.op("Mul", [g.op("MatMul", [q, k]), g.const("mha_scale", 1.0 / math.sqrt(self.key_dim))])
        keys = g.op("Unsqueeze", [g.op("Transpose", [g.mask], perm=[1, 2, 0]), g.const("ax1", [1], i64)])  # (B,1,1,T)
        if self.causal_mask:
            T = g.op("Squeeze", [g.op("Shape", [xb], start=1, end=2), g.const("ax0", [0], i64)])
            steps = g.op("Range", [g.const("zero", 0, i64), T, g.const("one", 1, i64)])
            tri = g.op("GreaterOrEqual", [g.op("Unsqueeze", [steps, g.const("ax1", [1], i64)]),
                                          g.op("Unsqueeze", [steps, g.const("ax0", [0], i64)])])  # (T, T) q >= k
            keys = g.op("And", [keys, tri])
        w = g.op("Softmax", [g.op("Where", [keys, scores, g.const("neg_inf", -np.inf)])], "attn", axis=-1)
        o = g.op("Transpose", [g.op("MatMul", [w, v])], perm=[0, 2, 1, 3])  # (B, T, H, dv)
        o = g.op("Reshape", [o, g.const("merge_shape", [0, 0, -1], i64)])
        o = g.op("MatMul", [o, g.const("o_W", _np(self.output_kernel).reshape(-1, self.output_size))], "mha_out")
        if self.output_bias is not None:
            o = g.op("Add", [o, g.const("o_b", _np(self.output_bias))])
        o = g.op("Transpose", [o], perm=[1, 0, 2])  # (T, B, out)
        return OnnxValue(g.op("Where", [g.mask, o, g.const("fzero", 0.0)], "mha"), True, self.output_size)


class AttentionPooling1D(Layer):
    """Attention pooling: a learned score per step, softmax over each sequence's real steps, the weighted
    sum of the steps: RaggedBatch (S, F) -> (B, F), one vector per sequence.

    Args:
        units: None: the score is ``x @ w``; an int: ``activation(x @ W + b) @ v`` with ``units`` hidden
            units (additive attention).
        activation: the hidden activation when ``units`` is given.
        **kwargs: the common layer keywords.

    Example:
        >>> import torch
        >>> pool = AttentionPooling1D(input_size=2)
        >>> pool([torch.ones(4, 2), torch.ones(1, 2)]).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """

    requires_sequences = True
    causal = False

    def __init__(self, units: int | None = None, activation: str | Activation | None = "tanh",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if units is not None and (isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0):
            raise ConfigError(f"AttentionPooling1D: units must be a positive integer or None; got {units!r}")
        self.units = None if units is None else int(units)
        self.activation_name, self._act = resolve_activation(activation)
        self.finish_init()

    @property
    def activation(self) -> str | None:
        """The hidden activation's Keras name."""
        return self.activation_name

    def noncausal_reason(self) -> str:
        return "it pools over the whole sequence"

    def sequence_out(self, sequence_in: bool) -> bool:
        return False

    def make_weights(self, input_size: int) -> None:
        if self.units is None:
            self.score_kernel = _glorot(input_size, 1)
        else:
            self.hidden_kernel = _glorot(input_size, self.units)
            self.hidden_bias = nn.Parameter(torch.zeros(self.units))
            self.score_kernel = _glorot(self.units, 1)

    def scores(self, t: torch.Tensor) -> torch.Tensor:
        """(N, 1) unnormalized score of every step."""
        if self.units is not None:
            t = self._act(t @ self.hidden_kernel + self.hidden_bias)
        return t @ self.score_kernel

    def forward(self, x: Any) -> Any:
        batch, _ = sequence_input(self, x)
        p = batch.plan
        data = batch.valid_data()  # (N, F): real steps only
        rows = p.tensor("row_of_pos", data.device)
        if not p.exact:
            rows = rows[p.tensor("valid", data.device)]
        s = self.scores(data)[:, 0]  # (N,)
        top = s.new_full((p.batch_size,), -math.inf).scatter_reduce(0, rows, s.detach(), "amax")
        e = torch.exp(s - top[rows])
        w = e / e.new_zeros(p.batch_size).index_add(0, rows, e)[rows]  # softmax within each row
        out = data.new_zeros((p.batch_size, data.shape[1])).index_add(0, rows, data * w[:, None])  # (B, F)
        return out if isinstance(x, RaggedBatch) else batch.unsort(out)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if not x.seq:
            raise ConfigError(f"{self.describe()} pools sequences: put it after a layer with return_sequences=True")
        if not self.built:
            raise ConfigError(f"{self.describe()} has no weights yet: build or train the model before exporting")
        xin = g.op("Where", [g.mask, x.name, g.const("fzero", 0.0)], "attpool_in")  # (T, B, F)
        h = xin
        if self.units is not None:
            h = g.op("Add", [g.op("MatMul", [h, g.const("att_W", _np(self.hidden_kernel))]),
                             g.const("att_b", _np(self.hidden_bias))])
            h = activation_onnx(g, self.activation_name, h, self.describe())
        s = g.op("MatMul", [h, g.const("att_v", _np(self.score_kernel))], "att_score")  # (T, B, 1)
        w = g.op("Softmax", [g.op("Where", [g.mask, s, g.const("neg_inf", -np.inf)])], "att_w", axis=0)
        return OnnxValue(g.reduce("ReduceSum", g.op("Mul", [xin, w]), 0, "attpool"), False, x.size)
