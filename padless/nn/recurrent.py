"""Recurrent layers that run ragged batches exactly, with the dense kernel.

Owns: :class:`LSTM`, :class:`GRU`, :class:`SimpleRNN` and :class:`Bidirectional` - Keras names and
semantics (``units``, ``return_sequences``, ``return_state``, ``stateful``, ``dropout``, ``go_backwards``,
``reset_states``), built on plain ``torch.nn.LSTM``/``GRU``/``RNN`` modules so cuDNN (GPU) or oneDNN (CPU)
runs every block. A batch arrives as a :class:`~padless.data.collate.RaggedBatch`; the layer walks its
segments, running the fused kernel on each rectangular block and carrying ``(h, c)`` into the rows that
continue. No step of padding is computed on an exact plan, and final states are each row's own.

Also accepted as input (PyTorch users): a ``PackedSequence``, a ``(padded, lengths)`` pair, or an
equal-length ``(B, T, F)`` tensor; the output has the same kind.

Does not own: the batch layout (``padless.data.plan``), training (``padless.train``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError, DataError, StateError

__all__ = ["RunOutput", "Recurrent", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "to_batch", "from_batch"]

State = tuple[torch.Tensor, ...]  # each (1, B, H)


# ---------------------------------------------------------------------- input adapters
def to_batch(x: Any) -> tuple[RaggedBatch, str]:
    """Turn any accepted input into a RaggedBatch; return it with the input's kind."""
    if isinstance(x, RaggedBatch):
        return x, "ragged"
    if isinstance(x, PackedSequence):
        return RaggedBatch.from_packed(x), "packed"
    if isinstance(x, (tuple, list)) and len(x) == 2 and isinstance(x[0], torch.Tensor) and x[0].dim() == 3:
        return RaggedBatch.from_padded(x[0], x[1]), "padded"
    if isinstance(x, torch.Tensor):
        if x.dim() != 3:
            raise DataError(f"expected a (B, T, F) tensor; got shape {tuple(x.shape)}")
        B, T, _ = x.shape
        return RaggedBatch.from_padded(x, np.full(B, T, dtype=np.int64)), "dense"
    if isinstance(x, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in x):
        return RaggedBatch.from_list(list(x)), "list"
    raise DataError(
        f"cannot read input of type {type(x).__name__}: pass a RaggedBatch, PackedSequence, "
        "(padded, lengths), a (B, T, F) tensor or a list of (T_i, F) tensors"
    )


def from_batch(b: RaggedBatch, kind: str) -> Any:
    """Inverse of :func:`to_batch` for sequence outputs."""
    if kind == "ragged":
        return b
    if kind == "packed":
        return b.to_packed()
    if kind == "padded":
        return b.to_padded(), torch.as_tensor(b.lengths)
    if kind == "dense":
        return b.to_padded()
    return b.to_list()


# ---------------------------------------------------------------------- the kernel walk
def scan(
    rnn: nn.RNNBase, data: torch.Tensor, batch: RaggedBatch, hx: State | None, want_states: bool
) -> tuple[torch.Tensor, State | None]:
    """Run ``rnn`` (one layer, one direction) over the segments of ``batch``.

    Args:
        rnn: a ``torch.nn.LSTM``/``GRU``/``RNN`` with ``num_layers=1``, ``batch_first=False``.
        data: (S, F) input in the batch's layout.
        batch: gives the layout.
        hx: initial state in *sorted* row order, each (1, B, H), or None for zeros.
        want_states: also return the final state of every row; exact for the rows whose length ends a
            segment (``plan.state_exact``: every row of an exact plan), undefined for the others.

    Returns:
        ``(out, states)``: out (S, H) in the same layout; states each (1, B, H) in sorted order.
    """
    plan = batch.plan
    is_lstm = isinstance(rnn, nn.LSTM)
    outs: list[torch.Tensor] = []
    ended: list[State] = []
    h: State | None = hx
    for seg in plan.segments:
        xs = data[seg.start : seg.start + seg.steps * seg.rows].view(seg.steps, seg.rows, -1)  # (T, r, F)
        if h is not None and h[0].shape[1] != seg.rows:
            if want_states:
                ended.append(tuple(s[:, seg.rows :] for s in h))
            h = tuple(s[:, : seg.rows] for s in h)
        if is_lstm:
            o, (hn, cn) = rnn(xs, None if h is None else (h[0].contiguous(), h[1].contiguous()))
            h = (hn, cn)
        else:
            o, hn = rnn(xs, None if h is None else h[0].contiguous())
            h = (hn,)
        outs.append(o.reshape(seg.steps * seg.rows, -1))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, 0)
    if not want_states:
        return out, None
    if h is None:  # pragma: no cover - a plan always has a segment
        raise StateError("internal: empty plan")
    parts = [h] + ended[::-1]
    states = tuple(torch.cat([p[k] for p in parts], 1) for k in range(len(h)))
    return out, states


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


# ---------------------------------------------------------------------- layers
class Recurrent(nn.Module):
    """Base of the Keras-style recurrent layers (one direction, one layer).

    Args:
        units: hidden size H (Keras ``units``). The parameter count never depends on sequence length.
        return_sequences: return the whole output sequence instead of each row's last output.
        return_state: also return the final state(s), each (B, H), taken at each row's *own* last step.
        stateful: carry the final state of row i into row i of the next batch (fixed batch size).
        dropout: input dropout rate, one mask per sequence shared across its steps (Keras semantics).
        go_backwards: process each sequence from its true end to its start.
        input_size: number of input features F; when omitted the layer is built on first use
            (``input_shape=(None, F)`` and ``batch_input_shape=(B, None, F)`` are accepted too).
        batch_size: fixed batch size of a stateful layer (or give ``batch_input_shape``).
        name: optional layer name.

    Example:
        >>> import torch
        >>> lstm = LSTM(8, input_size=3, return_state=True)
        >>> out, h, c = lstm([torch.randn(5, 3), torch.randn(2, 3)])
        >>> out.shape, h.shape, c.shape
        (torch.Size([2, 8]), torch.Size([2, 8]), torch.Size([2, 8]))
    """

    _rnn_cls: type[nn.RNNBase] = nn.RNN
    _gates = 1
    _num_states = 1

    def __init__(
        self,
        units: int,
        *,
        return_sequences: bool = False,
        return_state: bool = False,
        stateful: bool = False,
        dropout: float = 0.0,
        go_backwards: bool = False,
        input_size: int | None = None,
        input_shape: Sequence[int | None] | None = None,
        batch_input_shape: Sequence[int | None] | None = None,
        batch_size: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise ConfigError(f"units must be a positive integer; got {units!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"dropout must be in [0, 1); got {dropout!r}")
        self.units = int(units)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.stateful = bool(stateful)
        self.dropout = float(dropout)
        self.go_backwards = bool(go_backwards)
        self.name = name
        if batch_input_shape is not None:
            batch_size = batch_size or batch_input_shape[0]
            input_shape = tuple(batch_input_shape[1:])
        if input_shape is not None:
            if len(input_shape) != 2:
                raise ConfigError(f"input_shape must be (timesteps, features), e.g. (None, 100); got {input_shape}")
            input_size = input_size or input_shape[-1]
        self.batch_size = int(batch_size) if batch_size else None  # stateful: set here or by the model
        self.input_size: int | None = None
        self.rnn: nn.RNNBase | None = None
        self.states: State | None = None
        if input_size is not None:
            self.build(int(input_size))

    # -- building
    def _make_rnn(self, input_size: int) -> nn.RNNBase:
        if self._rnn_cls is nn.RNN:
            return nn.RNN(input_size, self.units, nonlinearity="tanh")
        return self._rnn_cls(input_size, self.units)

    def build(self, input_size: int) -> int:
        """Create the weights for ``input_size`` features; return the output feature count."""
        if self.rnn is not None:
            if input_size != self.input_size:
                raise DataError(
                    f"layer {self.describe()} was built for {self.input_size} input features; "
                    f"received {input_size}"
                )
            return self.units
        self.input_size = int(input_size)
        self.rnn = self._make_rnn(self.input_size)
        _keras_init(self.rnn, self._gates, forget_bias=self._gates == 4)
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    def describe(self) -> str:
        return self.name or type(self).__name__

    @property
    def needs_exact_states(self) -> bool:
        return self.return_state or self.stateful

    def extra_repr(self) -> str:
        return (
            f"units={self.units}, return_sequences={self.return_sequences}, stateful={self.stateful}, "
            f"dropout={self.dropout}, go_backwards={self.go_backwards}"
        )

    # -- state (Keras contract)
    def reset_states(self, rows: Sequence[int] | np.ndarray | torch.Tensor | None = None) -> None:
        """Zero the carried state of every row, or only of ``rows`` (indices or a boolean mask).

        Raises:
            StateError: if a row index is out of range or the mask has the wrong size.
        """
        if rows is None or self.states is None:
            if rows is not None and self.batch_size is not None:
                _row_mask(rows, self.batch_size)  # validate even when nothing is carried yet
            self.states = None
            return
        B = self.states[0].shape[1]
        mask = _row_mask(rows, B).to(self.states[0].device)  # (B,) True = reset
        keep = (~mask).to(self.states[0].dtype).view(1, B, 1)
        self.states = tuple(s * keep for s in self.states)

    def _initial_state(self, batch: RaggedBatch, initial_state: Sequence[torch.Tensor] | None) -> State | None:
        B = batch.batch_size
        if initial_state is not None:
            st = tuple(s if s.dim() == 3 else s.unsqueeze(0) for s in initial_state)
            if len(st) != self._num_states:
                raise StateError(
                    f"{self.describe()} takes {self._num_states} initial state tensor(s); got {len(st)}"
                )
            return tuple(batch.sort(s.transpose(0, 1)).transpose(0, 1) for s in st)
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
        return tuple(batch.sort(s.transpose(0, 1)).transpose(0, 1) for s in self.states)

    # -- running
    def _input_dropout(self, data: torch.Tensor, batch: RaggedBatch) -> torch.Tensor:
        if not (self.training and self.dropout > 0):
            return data
        keep = 1.0 - self.dropout
        mask = torch.bernoulli(data.new_full((batch.batch_size, data.shape[1]), keep)) / keep  # (B, F)
        return data * mask.index_select(0, batch.plan.tensor("row_of_pos", data.device))

    def run(
        self,
        batch: RaggedBatch,
        initial_state: Sequence[torch.Tensor] | None = None,
        want_states: bool = False,
    ) -> "RunOutput":
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
        out, states = scan(self.rnn, data, batch, hx, want)
        if self.stateful and states is not None:
            self.states = tuple(batch.unsort(s.detach().transpose(0, 1)).transpose(0, 1) for s in states)
        seq = batch.with_data(out)
        return RunOutput(seq, seq.last(), states)

    def forward(self, x: Any, initial_state: Sequence[torch.Tensor] | None = None) -> Any:
        """Keras-style call: see the class docstring for what comes back."""
        return _keras_call(self, x, initial_state)


class RunOutput(NamedTuple):
    """What a recurrent layer's ``run`` returns (rows in sorted order)."""

    seq: RaggedBatch  # (S, out) output sequence in the batch layout
    last: torch.Tensor  # (B, out) output at each row's last step
    states: State | None  # final states, each (1, B, H), when asked for


def _keras_call(layer: Any, x: Any, initial_state: Sequence[torch.Tensor] | None) -> Any:
    batch, kind = to_batch(x)
    res = layer.run(batch, initial_state, want_states=layer.return_state)
    out: Any = from_batch(res.seq, kind) if layer.return_sequences else batch.unsort(res.last)
    if not layer.return_state:
        return out
    if res.states is None:  # pragma: no cover - return_state always asks for states
        raise StateError("internal: states were not computed")
    return (out,) + tuple(batch.unsort(s[0]) for s in res.states)


def _row_mask(rows: Any, B: int) -> torch.Tensor:
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


class LSTM(Recurrent):
    __doc__ = Recurrent.__doc__
    _rnn_cls = nn.LSTM
    _gates = 4
    _num_states = 2


class GRU(Recurrent):
    """Gated recurrent unit (PyTorch's formulation = Keras ``reset_after=True``). See :class:`Recurrent`."""

    _rnn_cls = nn.GRU
    _gates = 3
    _num_states = 1


class SimpleRNN(Recurrent):
    """Elman RNN with tanh. See :class:`Recurrent`."""

    _rnn_cls = nn.RNN
    _gates = 1
    _num_states = 1


class Bidirectional(nn.Module):
    """Run a recurrent layer forwards and a copy of it backwards; merge the two.

    The backward direction starts at each sequence's *true* end (never on padding). With
    ``return_sequences=False`` the output is ``[forward output at the last step, backward output after
    reading step 0]``, as in Keras.

    Args:
        layer: the forward layer (its settings are copied for the backward one).
        merge_mode: ``"concat"`` (default), ``"sum"``, ``"mul"`` or ``"ave"``.

    Example:
        >>> import torch
        >>> bi = Bidirectional(GRU(4, input_size=2))
        >>> bi([torch.randn(3, 2), torch.randn(5, 2)]).shape
        torch.Size([2, 8])
    """

    def __init__(self, layer: Recurrent, merge_mode: str = "concat", name: str | None = None) -> None:
        super().__init__()
        if not isinstance(layer, Recurrent):
            raise ConfigError(f"Bidirectional wraps LSTM, GRU or SimpleRNN; got {type(layer).__name__}")
        if merge_mode not in ("concat", "sum", "mul", "ave"):
            raise ConfigError(f"merge_mode must be concat, sum, mul or ave; got {merge_mode!r}")
        if layer.stateful:
            raise ConfigError("a stateful Bidirectional layer is not supported: its backward pass needs the whole sequence")
        self.merge_mode = merge_mode
        self.name = name
        self.forward_layer = layer
        cfg = dict(
            return_sequences=layer.return_sequences,
            return_state=layer.return_state,
            dropout=layer.dropout,
            go_backwards=not layer.go_backwards,
        )
        self.backward_layer = type(layer)(layer.units, input_size=layer.input_size, **cfg)
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.stateful = False
        self.units = layer.units

    @property
    def input_size(self) -> int | None:
        return self.forward_layer.input_size

    @property
    def needs_exact_states(self) -> bool:
        return self.return_state

    def build(self, input_size: int) -> int:
        self.forward_layer.build(input_size)
        self.backward_layer.build(input_size)
        return self.output_size

    @property
    def output_size(self) -> int:
        return self.units * (2 if self.merge_mode == "concat" else 1)

    def describe(self) -> str:
        return self.name or f"Bidirectional({self.forward_layer.describe()})"

    def reset_states(self, rows: Any = None) -> None:
        return None

    def _merge(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.merge_mode == "concat":
            return torch.cat([a, b], -1)
        if self.merge_mode == "sum":
            return a + b
        if self.merge_mode == "mul":
            return a * b
        return (a + b) / 2

    def run(
        self, batch: RaggedBatch, initial_state: Sequence[torch.Tensor] | None = None, want_states: bool = False
    ) -> RunOutput:
        """Run both directions; the merged sequence is in original time order, states are ``fw + bw``."""
        fw_init = bw_init = None
        if initial_state is not None:
            n = self.forward_layer._num_states
            fw_init, bw_init = initial_state[:n], initial_state[n:]
        fw = self.forward_layer.run(batch, fw_init, want_states)
        bw = self.backward_layer.run(batch, bw_init, want_states)
        # the backward run saw each row reversed: bring its sequence back to original time order
        bw_seq = bw.seq.data.index_select(0, batch.plan.tensor("reverse_index", bw.seq.data.device))
        states = None if fw.states is None or bw.states is None else fw.states + bw.states
        return RunOutput(batch.with_data(self._merge(fw.seq.data, bw_seq)), self._merge(fw.last, bw.last), states)

    def forward(self, x: Any, initial_state: Sequence[torch.Tensor] | None = None) -> Any:
        return _keras_call(self, x, initial_state)
