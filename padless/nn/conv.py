"""1-D convolution and windowed pooling over ragged batches, each sequence exactly as if it ran alone.

Owns: :class:`Conv1D`, :class:`MaxPooling1D` and :class:`AveragePooling1D` (Keras names, arguments and
defaults, ``channels_last``), their ONNX form, and the context a ``padding="causal"`` convolution
carries between chunks (so streaming and truncated BPTT stay exact). Every sequence is padded at its own
ends (Keras' ``"same"``/``"causal"`` rules, per sequence), never by its neighbours' padding; a batch is
one gather of each output position's window (an im2col table cached per plan, no loop over rows) and, for
``Conv1D``, one matmul ``(S_out, k*F) @ (k*F, filters)``. Strides and ``"valid"`` windows change the
lengths: the output is a new :class:`~padless.data.collate.RaggedBatch` with the new lengths (same rows,
same sorted order, an exact plan), which every later layer and the ONNX graph follow.

Does not own: the window arithmetic and tables (:mod:`padless.nn.windows`), global pooling
(:mod:`padless.nn.pooling`).

Example:
    >>> import torch
    >>> conv = Conv1D(4, 3, strides=2, padding="same", input_size=2)
    >>> out = conv([torch.randn(7, 2), torch.randn(2, 2)])
    >>> [tuple(o.shape) for o in out]
    [(4, 4), (1, 4)]
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError, DataError
from padless.nn.activations import Activation, activation_onnx, resolve_activation
from padless.nn.adapters import from_batch, to_batch
from padless.nn.base import Layer, OnnxValue, State
from padless.nn.windows import (
    PADDINGS,
    Window,
    check_window_lengths,
    context_index,
    gather_windows,
    onnx_window,
)

__all__ = ["Conv1D", "MaxPooling1D", "AveragePooling1D", "one_int", "sequence_input"]


def one_int(value: Any, what: str, layer: str) -> int:
    """A positive int given as ``3`` or Keras' ``(3,)``; a ConfigError otherwise."""
    v = value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise ConfigError(f"{layer}: {what} must be a positive integer (or a 1-tuple of one); got {value!r}")
    return int(v)


def _channels_last(data_format: str, layer: str) -> str:
    if data_format != "channels_last":
        raise ConfigError(f"{layer}: padless sequences are (steps, features); data_format must be 'channels_last', "
                          f"got {data_format!r}")
    return data_format


def sequence_input(layer: Layer, x: Any) -> tuple[RaggedBatch, str]:
    """``x`` as a RaggedBatch (and its kind, for :func:`~padless.nn.adapters.from_batch`), built for its size.

    Raises:
        ConfigError: ``x`` is one vector per sequence.
    """
    if isinstance(x, torch.Tensor) and x.dim() == 2:
        raise ConfigError(f"{layer.describe()} needs sequences but its input is one vector per sequence: put it "
                          "before pooling, or set return_sequences=True on the recurrent layer before it")
    batch, kind = to_batch(x)
    if not layer.built:
        layer.build(int(batch.data.shape[1]))
    return batch, kind


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


class Conv1D(Layer):
    """1-D convolution over each sequence's steps (Keras ``Conv1D``, ``channels_last``).

    Each sequence gets exactly what the convolution of that sequence alone gives: ``"valid"`` has
    ``floor((L - d*(k-1) - 1) / s) + 1`` steps, ``"same"`` and ``"causal"`` have ``ceil(L / s)`` (``"same"``
    pads each sequence with zeros at its own ends, Keras' rule; ``"causal"`` pads on the left only).

    Args:
        filters: output features per step.
        kernel_size: taps per window (int or 1-tuple).
        strides: steps between outputs; > 1 shortens every sequence (the new lengths flow on).
        padding: ``"valid"`` (default), ``"same"`` or ``"causal"``.
        data_format: ``"channels_last"`` only.
        dilation_rate: steps between taps.
        activation: a name, None (linear) or a callable.
        use_bias: add a bias.
        **kwargs: the common layer keywords (``input_shape``, ``input_size``, ``name``, ...).

    Weights: ``kernel`` (kernel_size, F, filters) (Keras' layout and ``glorot_uniform`` init) and ``bias``.
    With ``padding="causal"`` and ``strides=1`` the layer is causal: it carries the last
    ``dilation_rate * (kernel_size - 1)`` input steps as its state, so streaming and TBPTT are exact.

    Raises:
        DataError: (when called) a ``"valid"`` window longer than a sequence, naming the sequence and the fix.

    Example:
        >>> import torch
        >>> Conv1D(2, 3, padding="causal", input_size=1).state_sizes
        (2,)
    """

    requires_sequences = True

    def __init__(self, filters: int, kernel_size: int | Sequence[int], strides: int | Sequence[int] = 1,
                 padding: str = "valid", data_format: str = "channels_last", dilation_rate: int | Sequence[int] = 1,
                 activation: str | Activation | None = None, use_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        me = "Conv1D"
        self.filters = one_int(filters, "filters", me)
        self.kernel_size = one_int(kernel_size, "kernel_size", me)
        self.strides = one_int(strides, "strides", me)
        self.dilation_rate = one_int(dilation_rate, "dilation_rate", me)
        self.padding = str(padding).lower()
        if self.padding not in PADDINGS:
            raise ConfigError(f"{me}: padding must be one of {', '.join(PADDINGS)}; got {padding!r}")
        self.data_format = _channels_last(data_format, me)
        self.activation_name, self._act = resolve_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        self.finish_init()

    @property
    def activation(self) -> str | None:
        """The activation's Keras name (None for a custom callable)."""
        return self.activation_name

    @property
    def window(self) -> Window:
        """The window this layer slides."""
        return Window(self.kernel_size, self.strides, self.dilation_rate, self.padding)

    def lengths_key(self) -> Any:
        w = self.window
        keeps = w.stride == 1 and (w.padding != "valid" or w.span == 1)
        return None if keeps else ("window", w.padding, w.span, w.stride)

    @property  # type: ignore[override]
    def causal(self) -> bool:
        """True for ``padding="causal"`` with ``strides=1`` (the last inputs travel as state)."""
        return self.padding == "causal" and self.strides == 1

    def noncausal_reason(self) -> str:
        if self.strides > 1:
            return "strides > 1 shorten the sequence, so its outputs do not line up with chunks of input steps"
        return f"padding={self.padding!r} reads later steps (use padding='causal')"

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """``(context * F,)`` for a causal convolution once built (the last input steps); else ``()``."""
        C = self.window.context
        if not self.causal or not C or self.input_size is None:
            return ()
        return (C * self.input_size,)

    @property
    def output_size(self) -> int:
        return self.filters

    def make_weights(self, input_size: int) -> None:
        k = self.kernel_size
        bound = math.sqrt(6.0 / (k * input_size + k * self.filters))  # Keras glorot_uniform on (k, F, filters)
        self.kernel = nn.Parameter(torch.empty(k, input_size, self.filters).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(self.filters)) if self.use_bias else None

    # ------------------------------------------------------------------ running
    def call_with_state(self, x: Any, initial_state: Sequence[torch.Tensor] | None = None,
                        want_state: bool = False) -> tuple[Any, State | None]:
        batch, _ = sequence_input(self, x)
        w = self.window
        check_window_lengths(w, batch.plan, batch.sorted_indices, self.describe(), f"kernel_size={self.kernel_size}",
                             "padding='same' or 'causal', or a shorter kernel_size / dilation_rate")
        B, F, C = batch.batch_size, int(batch.data.shape[1]), w.context
        context = None
        if initial_state is not None and C:
            s = initial_state[0]
            s = s[0] if s.dim() == 3 else s  # (B, C*F) in batch order
            if tuple(s.shape) != (B, C * F):
                raise DataError(f"{self.describe()}: the initial state must be ({B}, {C * F}) (the last {C} input "
                                f"steps of each row); got {tuple(s.shape)}")
            context = batch.sort(s.to(batch.data.dtype)).view(B, C, F)
        tab, cols = gather_windows(batch, w, 0.0, context)  # (S_out, k, F)
        if self.kernel is None:
            raise ConfigError(f"{self.describe()} has no weights yet: build it (call it on data or give input_size)")
        K = self.kernel.reshape(-1, self.filters)  # (k*F, filters)
        flat = cols.reshape(cols.shape[0], -1)  # (S_out, k*F)
        y = torch.addmm(self.bias, flat, K) if self.bias is not None else flat @ K  # (S_out, filters)
        y = self._act(y)
        out = batch.with_data(y) if tab.plan is batch.plan else batch.with_lengths(tab.plan.lengths, y)
        state = None
        if want_state and self.state_sizes:
            parts = [batch.data, context.reshape(B * C, F) if context is not None else batch.data.new_zeros((B * C, F))]
            last = torch.cat(parts).index_select(0, context_index(batch.plan, C, batch.data.device))
            state = (last.view(1, B, C * F),)  # sorted rows
        return out, state

    def forward(self, x: Any) -> Any:
        batch, kind = sequence_input(self, x)
        return from_batch(self.call_with_state(batch)[0], kind)

    # ------------------------------------------------------------------ export
    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if not x.seq:
            raise ConfigError(f"{self.describe()} needs sequences but the layer before returns one vector per sequence")
        if self.kernel is None:
            raise ConfigError(f"{self.describe()} has no weights yet: build or train the model before exporting")
        w = self.window
        inputs = [g.const("conv_W", _np(self.kernel).transpose(2, 1, 0))]  # (filters, F, k)
        if self.bias is not None:
            inputs.append(g.const("conv_b", _np(self.bias)))
        xin = g.op("Where", [g.mask, x.name, g.const("fzero", 0.0)], "conv_in")  # zeros after each row's end

        def conv(xb: str, pads: list[int], stride: int) -> str:
            return g.op("Conv", [xb] + inputs, "conv", pads=pads, strides=[stride],  # type: ignore[no-any-return]
                        dilations=[self.dilation_rate], kernel_shape=[self.kernel_size])

        if g.streaming and self.state_sizes:
            y = self._onnx_streaming(g, xin, x.size, conv)
        else:
            y = onnx_window(g, xin, w, self.filters, conv)
        y = activation_onnx(g, self.activation_name, y, self.describe())
        y = g.op("Where", [g.mask, y, g.const("fzero", 0.0)], "conv_out")
        return OnnxValue(y, True, self.filters)

    def _onnx_streaming(self, g: Any, xin: str, F: int, conv: Any) -> str:
        """Causal, streaming: the state holds the last ``C`` inputs; they stand in for the left padding."""
        C = self.window.context
        (name,) = g.state_inputs(["ctx"], C * F)
        ctx = g.op("Transpose", [g.op("Reshape", [name, g.const("ctx_shape", [0, C, F], np.int64)])], "ctx",
                   perm=[1, 0, 2])  # (C, B, F)
        full = g.op("Concat", [ctx, xin], "with_ctx", axis=0)  # (C + T, B, F)
        y = g.op("Transpose", [conv(g.op("Transpose", [full], "x_bft", perm=[1, 2, 0]), [0, 0], 1)], "conv_tbf",
                 perm=[2, 0, 1])  # (T, B, filters)
        steps = g.const("ctx_steps", np.arange(C), np.int64)  # (C,)
        idx = g.op("Add", [g.op("Unsqueeze", [steps, g.const("ax1", [1], np.int64)]),
                           g.op("Unsqueeze", [g.lengths, g.const("ax0", [0], np.int64)])])  # (C, B): last C inputs
        shape = g.op("Concat", [g.op("Shape", [idx]), g.const("feat", [F], np.int64)], axis=0)
        idx3 = g.op("Expand", [g.op("Unsqueeze", [idx, g.const("ax2", [2], np.int64)]), shape])
        last = g.op("GatherElements", [full, idx3], "ctx_last", axis=0)  # (C, B, F)
        state = g.op("Reshape", [g.op("Transpose", [last], perm=[1, 0, 2]), g.const("st_shape", [0, C * F], np.int64)])
        g.state_outputs([name], [state])
        return y  # type: ignore[no-any-return]


class _Pooling1D(Layer):
    """Max or mean over windows of each sequence's real steps (Keras ``MaxPooling1D``/``AveragePooling1D``)."""

    requires_sequences = True
    reduce: ClassVar[str] = "max"

    def __init__(self, pool_size: int | Sequence[int] = 2, strides: int | Sequence[int] | None = None,
                 padding: str = "valid", data_format: str = "channels_last", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        me = type(self).__name__
        self.pool_size = one_int(pool_size, "pool_size", me)
        self.strides = self.pool_size if strides is None else one_int(strides, "strides", me)
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same"):
            raise ConfigError(f"{me}: padding must be 'valid' or 'same'; got {padding!r}")
        self.data_format = _channels_last(data_format, me)
        self.finish_init()

    @property
    def window(self) -> Window:
        """The window this layer slides."""
        return Window(self.pool_size, self.strides, 1, self.padding)

    def lengths_key(self) -> Any:
        w = self.window
        keeps = w.stride == 1 and (w.padding != "valid" or w.span == 1)
        return None if keeps else ("window", w.padding, w.span, w.stride)

    @property  # type: ignore[override]
    def causal(self) -> bool:
        """Only the trivial window (``pool_size=1``, ``strides=1``) is causal."""
        return self.pool_size == 1 and self.strides == 1

    def noncausal_reason(self) -> str:
        return f"its pool_size={self.pool_size}, strides={self.strides} window reads later steps"

    def forward(self, x: Any) -> Any:
        batch, kind = sequence_input(self, x)
        w = self.window
        check_window_lengths(w, batch.plan, batch.sorted_indices, self.describe(), f"pool_size={self.pool_size}",
                             "padding='same' or a smaller pool_size")
        if self.reduce == "max":
            tab, cols = gather_windows(batch, w, -math.inf)  # (S_out, k, F); -inf never wins
            y = cols.max(1).values  # the first maximum takes the gradient (as TF and torch's max_pool)
            if not tab.plan.exact:  # windows of padded output positions hold only -inf
                y = torch.where(tab.plan.tensor("valid", y.device)[:, None], y, y.new_zeros(()))
        else:
            tab, cols = gather_windows(batch, w, 0.0)
            inside = (tab.index.view(-1, w.size) < batch.plan.size).sum(1, keepdim=True)  # taps in the sequence
            y = cols.sum(1) / inside.clamp_min(1).to(cols.dtype)  # Keras: the mean of the steps inside it
        out = batch.with_data(y) if tab.plan is batch.plan else batch.with_lengths(tab.plan.lengths, y)
        return from_batch(out, kind)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if not x.seq:
            raise ConfigError(f"{self.describe()} needs sequences but the layer before returns one vector per sequence")
        w, k, F = self.window, self.pool_size, x.size
        if self.reduce == "max":
            xin = g.op("Where", [g.mask, x.name, g.const("neg_inf", -np.inf)], "pool_in")

            def maxpool(xb: str, pads: list[int], stride: int) -> str:
                return g.op("MaxPool", [xb], "maxpool", kernel_shape=[k], pads=pads,  # type: ignore[no-any-return]
                            strides=[stride])

            return OnnxValue(onnx_window(g, xin, w, F, maxpool), True, F)
        xin = g.op("Where", [g.mask, x.name, g.const("fzero", 0.0)], "pool_in")
        both = g.op("Concat", [xin, g.op("Cast", [g.mask], to=g.FLOAT)], "with_count", axis=2)  # (T, B, F + 1)
        ones = g.const("pool_ones", np.ones((F + 1, 1, k), np.float32))

        def window_sum(xb: str, pads: list[int], stride: int) -> str:
            return g.op("Conv", [xb, ones], "winsum", group=F + 1, kernel_shape=[k],  # type: ignore[no-any-return]
                        pads=pads, strides=[stride])

        y = onnx_window(g, both, w, F + 1, window_sum)  # (T', B, F + 1): sums and counts of real steps
        total = g.op("Slice", [y, g.const("s0", [0], np.int64), g.const("sF", [F], np.int64),
                               g.const("ax2", [2], np.int64)], "pool_sum")
        count = g.op("Slice", [y, g.const("sF", [F], np.int64), g.const("sF1", [F + 1], np.int64),
                               g.const("ax2", [2], np.int64)], "pool_count")
        count = g.op("Max", [count, g.const("fone", 1.0)])
        return OnnxValue(g.op("Div", [total, count], "avgpool"), True, F)


class MaxPooling1D(_Pooling1D):
    """Max over windows of each sequence (Keras ``MaxPooling1D``: ``pool_size=2``, ``strides=pool_size``,
    ``padding="valid"`` or ``"same"``; padding never wins a max).

    Example:
        >>> import torch
        >>> MaxPooling1D(2)([torch.tensor([[1.0], [3.0], [2.0]])])[0].tolist()
        [[3.0]]
    """

    reduce = "max"


class AveragePooling1D(_Pooling1D):
    """Mean over windows of each sequence (Keras ``AveragePooling1D``): with ``padding="same"`` a window at
    a sequence's end averages only the steps inside the sequence (TF/Keras' rule).

    Example:
        >>> import torch
        >>> AveragePooling1D(2, padding="same")([torch.tensor([[1.0], [3.0], [2.0]])])[0].tolist()
        [[2.0], [2.0]]
    """

    reduce = "mean"
