"""Recurrent layers that run ragged batches exactly: LSTM, GRU and SimpleRNN.

Owns: :class:`Recurrent` (the Keras contract: ``units``, ``return_sequences``, ``return_state``,
``stateful`` with per-row ``reset_states``, ``dropout``, ``go_backwards``), :class:`LSTM`, :class:`GRU`,
:class:`SimpleRNN`, :class:`RunOutput`, :func:`keras_call` (what a Keras layer call returns), and their ONNX form (one ONNX
``LSTM``/``GRU``/``RNN`` node with ``sequence_lens`` per direction). The weights live in a plain
``torch.nn.LSTM``/``GRU``/``RNN`` (``layer.rnn``); a batch arrives as a
:class:`~padless.data.collate.RaggedBatch` and runs through the block engine (:func:`padless.nn.blocks.scan`),
so no step of padding is computed on an exact plan and final states are each row's own.

Also accepted as input (PyTorch users): a ``PackedSequence``, a ``(padded, lengths)`` pair, or an
equal-length ``(B, T, F)`` tensor; the output has the same kind.

Does not own: the batch layout (``padless.data.plan``), the kernels (:mod:`padless.nn.blocks`),
:class:`~padless.nn.bidirectional.Bidirectional`, training (``padless.train``).

Example:
    >>> import torch
    >>> lstm = LSTM(8, input_size=3, return_state=True)
    >>> out, h, c = lstm([torch.randn(5, 3), torch.randn(2, 3)])
    >>> out.shape, h.shape, c.shape
    (torch.Size([2, 8]), torch.Size([2, 8]), torch.Size([2, 8]))
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError, DataError, StateError
from padless.nn.adapters import from_batch, to_batch
from padless.nn.base import Layer, OnnxValue, State
from padless.nn.blocks import scan

__all__ = ["RunOutput", "Recurrent", "LSTM", "GRU", "SimpleRNN", "row_mask", "keras_call"]


class RunOutput(NamedTuple):
    """What a recurrent layer's ``run`` returns (rows in sorted order)."""

    seq: RaggedBatch  # (S, out) output sequence in the batch layout
    last: torch.Tensor  # (B, out) output at each row's last step
    states: State | None  # final states, each (1, B, H), when asked for


def row_mask(rows: Any, B: int) -> torch.Tensor:
    """(B,) bool mask from row indices or a boolean mask, checked against ``B`` rows.

    Raises:
        StateError: an index out of range, or a mask of the wrong size.
    """
    r = torch.as_tensor(np.asarray(rows) if not isinstance(rows, torch.Tensor) else rows)
    if r.dtype == torch.bool:
        if r.numel() != B:
            raise StateError(f"reset mask has {r.numel()} entries; Expected {B} (one per row)")
        return r.reshape(B)
    r = r.reshape(-1).long()
    bad = r[(r < 0) | (r >= B)]
    if bad.numel():
        raise StateError(f"row {int(bad[0])} is out of range for a stateful batch of {B} rows (valid: 0..{B - 1})")
    mask = torch.zeros(B, dtype=torch.bool)
    mask[r] = True
    return mask


def _keras_init(rnn: nn.RNNBase, gates: int, forget_bias: bool) -> None:
    """Keras defaults: glorot-uniform kernel, orthogonal recurrent kernel, zero bias (forget gate 1)."""
    H = rnn.hidden_size
    for name, p in rnn.named_parameters():
        if name.startswith("weight_ih"):
            fan_in, fan_out = p.shape[1], p.shape[0]
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            nn.init.uniform_(p, -bound, bound)
        elif name.startswith("weight_hh"):
            with torch.no_grad():
                for g in range(gates):
                    nn.init.orthogonal_(p[g * H : (g + 1) * H])
        elif name.startswith("bias"):
            nn.init.zeros_(p)
            if forget_bias and name.startswith("bias_ih"):
                with torch.no_grad():
                    p[H : 2 * H] = 1.0  # torch gate order i, f, g, o


def _sorted_state(batch: RaggedBatch, states: Sequence[torch.Tensor]) -> State:
    """States given per batch row (each (1, B, H) or (B, H)) -> (1, B, H) in the batch's sorted row order."""
    st = tuple(s if s.dim() == 3 else s.unsqueeze(0) for s in states)
    return tuple(batch.sort(s.transpose(0, 1)).transpose(0, 1) for s in st)


class Recurrent(Layer):
    """Base of the Keras-style recurrent layers (one direction, one layer).

    Args:
        units: hidden size H (Keras ``units``). The parameter count never depends on sequence length.
        return_sequences: return the whole output sequence instead of each row's last output.
        return_state: also return the final state(s), each (B, H), taken at each row's *own* last step.
        stateful: carry the final state of row i into row i of the next batch (fixed batch size: give
            ``batch_input_shape=(B, None, F)`` or ``batch_size=B``).
        dropout: input dropout rate, one mask per sequence shared across its steps (Keras semantics).
        go_backwards: process each sequence from its true end to its start.
        **kwargs: the common layer keywords (``input_shape=(None, F)``, ``input_size``, ``name``, ...).

    Example:
        >>> import torch
        >>> lstm = LSTM(8, input_size=3, return_state=True)
        >>> out, h, c = lstm([torch.randn(5, 3), torch.randn(2, 3)])
        >>> out.shape, h.shape, c.shape
        (torch.Size([2, 8]), torch.Size([2, 8]), torch.Size([2, 8]))
    """

    requires_sequences = True
    _rnn_cls: ClassVar[type[nn.RNNBase]] = nn.RNN
    _gates: ClassVar[int] = 1
    _num_states: ClassVar[int] = 1
    onnx_op: ClassVar[str] = "RNN"

    def __init__(self, units: int, return_sequences: bool = False, return_state: bool = False,
                 stateful: bool = False, dropout: float = 0.0, go_backwards: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise ConfigError(f"{type(self).__name__}: units must be a positive integer; got {units!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"{type(self).__name__}: dropout must be in [0, 1); got {dropout!r}")
        self.units = int(units)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.stateful = bool(stateful)
        self.dropout = float(dropout)
        self.go_backwards = bool(go_backwards)
        self.rnn: nn.RNNBase | None = None
        self.states: State | None = None
        self.finish_init()

    # -- building
    def _make_rnn(self, input_size: int) -> nn.RNNBase:
        if self._rnn_cls is nn.RNN:
            return nn.RNN(input_size, self.units, nonlinearity="tanh")
        return self._rnn_cls(input_size, self.units)

    def make_weights(self, input_size: int) -> None:
        self.rnn = self._make_rnn(input_size)
        _keras_init(self.rnn, self._gates, forget_bias=self._gates == 4)

    @property
    def output_size(self) -> int:
        return self.units

    def sequence_out(self, sequence_in: bool) -> bool:
        return self.return_sequences

    @property
    def causal(self) -> bool:  # type: ignore[override]
        return not self.go_backwards

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.units,) * self._num_states

    def noncausal_reason(self) -> str:
        return "it reads sequences backwards (go_backwards=True)"

    @property
    def needs_exact_states(self) -> bool:
        return self.return_state or self.stateful

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg["batch_size"] = self.batch_size
        return cfg

    # -- state (Keras contract)
    def reset_states(self, rows: Sequence[int] | np.ndarray | torch.Tensor | None = None) -> None:
        """Zero the carried state of every row, or only of ``rows`` (indices or a boolean mask).

        Raises:
            StateError: if a row index is out of range or the mask has the wrong size.
        """
        if rows is None or self.states is None:
            if rows is not None and self.batch_size is not None:
                row_mask(rows, self.batch_size)  # validate even when nothing is carried yet
            self.states = None
            return
        B = self.states[0].shape[1]
        mask = row_mask(rows, B).to(self.states[0].device)  # (B,) True = reset
        keep = (~mask).to(self.states[0].dtype).view(1, B, 1)
        self.states = tuple(s * keep for s in self.states)

    def _initial_state(self, batch: RaggedBatch, initial_state: Sequence[torch.Tensor] | None) -> State | None:
        B = batch.batch_size
        if initial_state is not None:
            if len(initial_state) != self._num_states:
                raise StateError(
                    f"{self.describe()} takes {self._num_states} initial state tensor(s); got {len(initial_state)}"
                )
            return _sorted_state(batch, initial_state)
        if not self.stateful:
            return None
        if self.batch_size is None:
            raise StateError(
                f"stateful layer {self.describe()} needs a fixed batch size: pass batch_input_shape=(B, None, F) "
                "on the model's first layer or batch_size=B"
            )
        if B != self.batch_size:
            raise StateError(
                f"stateful layer {self.describe()}: Expected batch size {self.batch_size} / Received {B}. "
                "A stateful layer keeps one state per row: feed batches of exactly that size."
            )
        if self.states is None:
            return None
        return _sorted_state(batch, self.states)

    # -- running
    def _input_dropout(self, data: torch.Tensor, batch: RaggedBatch) -> torch.Tensor:
        if not (self.training and self.dropout > 0):
            return data
        keep = 1.0 - self.dropout
        mask = torch.bernoulli(data.new_full((batch.batch_size, data.shape[1]), keep)) / keep  # (B, F)
        return data * mask.index_select(0, batch.plan.tensor("row_of_pos", data.device))

    def run(self, batch: RaggedBatch, initial_state: Sequence[torch.Tensor] | None = None,
            want_states: bool = False) -> RunOutput:
        """Run over a batch; return the output sequence, each row's last output and (optionally) the
        final states, rows in sorted order."""
        if self.rnn is None:
            self.build(int(batch.data.shape[1]))
        if batch.data.shape[1] != self.input_size:
            raise DataError(
                f"layer {self.describe()} expects {self.input_size} features per step; received "
                f"{batch.data.shape[1]}"
            )
        want = want_states or self.needs_exact_states
        hx = self._initial_state(batch, initial_state)
        data = self._input_dropout(batch.data, batch)
        rev = batch.plan.tensor("reverse_index", data.device) if self.go_backwards else None
        if rev is not None:
            data = data.index_select(0, rev)
        out, states = scan(self.rnn, data, batch, hx, want)  # type: ignore[arg-type]
        if self.stateful and states is not None:
            self.states = tuple(batch.unsort(s.detach().transpose(0, 1)).transpose(0, 1) for s in states)
        seq = batch.with_data(out)
        return RunOutput(seq, seq.last(), states)

    def call_with_state(self, x: Any, initial_state: Sequence[torch.Tensor] | None = None,
                        want_state: bool = False) -> tuple[Any, State | None]:
        if not isinstance(x, RaggedBatch):
            raise ConfigError(f"{self.describe()} needs sequences but its input is one vector per sequence: set "
                              "return_sequences=True on the recurrent layer before it")
        res = self.run(x, initial_state, want_state)
        return (res.seq if self.return_sequences else res.last), res.states

    def forward(self, x: Any, initial_state: Sequence[torch.Tensor] | None = None) -> Any:
        """Keras-style call: see the class docstring for what comes back."""
        return keras_call(self, x, initial_state)

    # -- export
    def onnx_direction(self, g: Any, x: str, init: Sequence[str] | None) -> tuple[str, list[str]]:
        """One direction on a (T, B, F) value: ``(seq (T, B, H) in this layer's time order, [h] or [h, c])``."""
        return _onnx_direction(g, self, x, init)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if not x.seq:
            raise ConfigError(f"{self.describe()} needs sequences but the layer before returns one vector per sequence")
        init = None
        if g.streaming:
            if self.go_backwards:
                raise ConfigError(f"{self.describe()} reads sequences backwards (go_backwards=True) and cannot stream")
            init = g.state_inputs(["h", "c"][: self._num_states], self.units)
        seq, states = self.onnx_direction(g, x.name, init)
        if init is not None:
            g.state_outputs(init, states)
        if self.return_sequences:
            return OnnxValue(seq, True, self.units)
        return OnnxValue(states[0], False, self.units)


def keras_call(layer: Any, x: Any, initial_state: Sequence[torch.Tensor] | None) -> Any:
    """What calling a Keras recurrent layer returns: the output (sequence or last step, in the input's kind and
    row order) and, with ``return_state``, the final states per row."""
    batch, kind = to_batch(x)
    res = layer.run(batch, initial_state, want_states=layer.return_state)
    out: Any = from_batch(res.seq, kind) if layer.return_sequences else batch.unsort(res.last)
    if not layer.return_state:
        return out
    if res.states is None:  # pragma: no cover - return_state always asks for states
        raise StateError("internal: states were not computed")
    return (out,) + tuple(batch.unsort(s[0]) for s in res.states)


def _torch_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


def _onnx_direction(g: Any, layer: Recurrent, x: str, init: Sequence[str] | None) -> tuple[str, list[str]]:
    rnn = layer.rnn
    if rnn is None:
        raise ConfigError(f"{layer.describe()} has no weights yet: build or train the model before exporting")
    H = rnn.hidden_size
    order = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN": [0]}[layer.onnx_op]  # torch -> ONNX gate order

    def reorder(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[k * H : (k + 1) * H] for k in order], 0)

    w, r = _torch_np(rnn.weight_ih_l0), _torch_np(rnn.weight_hh_l0)
    bw, br = _torch_np(rnn.bias_ih_l0), _torch_np(rnn.bias_hh_l0)
    W, R, B = reorder(w)[None], reorder(r)[None], np.concatenate([reorder(bw), reorder(br)])[None]
    if layer.go_backwards:
        x = g.op("ReverseSequence", [x, g.lengths], "rev_in", batch_axis=1, time_axis=0)
    inputs = [x, g.const("W", W), g.const("R", R), g.const("B", B), g.lens32]
    ax0, ax1 = g.const("ax0", [0], np.int64), g.const("ax1", [1], np.int64)
    if init is not None:
        inputs += [g.op("Unsqueeze", [s, ax0], "init") for s in init]
    attrs: dict[str, Any] = {"hidden_size": int(H)}
    if layer.onnx_op == "GRU":
        attrs["linear_before_reset"] = 1  # PyTorch's GRU (Keras reset_after=True)
    if layer.onnx_op == "RNN":
        attrs["activations"] = ["Tanh"]
    outs = g.op(layer.onnx_op, inputs, layer.onnx_op.lower(), n_out=1 + layer._num_states, **attrs)
    seq = g.op("Squeeze", [outs[0], ax1], "rnn_y")  # (T, 1, B, H) -> (T, B, H)
    states = [g.op("Squeeze", [s, ax0], "rnn_state") for s in outs[1:]]  # (1, B, H) -> (B, H)
    if init is not None:
        # a row with no step in this chunk keeps its state (whatever the runtime does with length 0)
        has = g.op("Unsqueeze", [g.op("Greater", [g.lengths, g.const("zero", 0, np.int64)]), ax1], "has_steps")
        states = [g.op("Where", [has, s, i], "kept") for s, i in zip(states, init)]
    return seq, states


class LSTM(Recurrent):
    __doc__ = Recurrent.__doc__
    _rnn_cls = nn.LSTM
    _gates = 4
    _num_states = 2
    onnx_op = "LSTM"


class GRU(Recurrent):
    """Gated recurrent unit (PyTorch's formulation = Keras ``reset_after=True``). See :class:`Recurrent`.

    Example:
        >>> GRU(4, input_size=2).state_sizes
        (4,)
    """

    _rnn_cls = nn.GRU
    _gates = 3
    _num_states = 1
    onnx_op = "GRU"


class SimpleRNN(Recurrent):
    """Elman RNN with tanh. See :class:`Recurrent`.

    Example:
        >>> SimpleRNN(3, input_size=1).output_size
        3
    """

    _rnn_cls = nn.RNN
    _gates = 1
    _num_states = 1
    onnx_op = "RNN"
