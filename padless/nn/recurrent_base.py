"""The base of the recurrent layers: Keras' recurrent contract on ragged batches.

Owns: :class:`Recurrent` (the Keras contract: ``units``, activations, biases, initializers, regularizers,
constraints, ``dropout``/``recurrent_dropout``, ``seed``, ``return_sequences``, ``return_state``,
``go_backwards``, ``stateful`` with per-row ``reset_states``),
:class:`RunOutput`, :func:`row_mask` and :func:`keras_call`; the concrete :class:`~padless.nn.recurrent.LSTM`,
``GRU`` and ``SimpleRNN`` (their Keras signatures) live in :mod:`padless.nn.recurrent`. The weights live in a plain
``torch.nn.LSTM``/``GRU``/``RNN`` (``layer.rnn``); a batch arrives as a
:class:`~padless.data.collate.RaggedBatch`. With Keras' default activations (tanh, sigmoid) it runs on the
fused kernels (the packed engine of :mod:`padless.nn.engine`, one call for the whole batch, where it runs;
else :func:`padless.nn.blocks.scan`, one dense call per block: no step of padding on an exact plan, each row's
own final state); other activations, ``recurrent_dropout`` while training, or ``reset_after=False`` run on the exact
per-step path (:func:`padless.nn.cells.run_cells`), which is slower (:attr:`Recurrent.path` says which).

Also accepted as input (PyTorch users): a ``PackedSequence``, a ``(padded, lengths)`` pair, or an
equal-length ``(B, T, F)`` tensor; the output has the same kind.

Does not own: the batch layout (``padless.data.plan``), the kernels (:mod:`padless.nn.blocks`,
:mod:`padless.nn.cells`), the ONNX nodes (:mod:`padless.nn.recurrent_onnx`),
:class:`~padless.nn.bidirectional.Bidirectional`, training (``padless.train``).

Example:
    >>> import torch
    >>> row_mask([1], 3).tolist()
    [False, True, False]
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError, DataError, StateError
from padless.nn.activations import resolve_activation
from padless.nn.adapters import from_batch, to_batch
from padless.nn.base import Layer, OnnxValue, State
from padless.nn.blocks import scan
from padless.nn.cells import run_cells
from padless.nn.engine import packed_rnn, select_engine
from padless.nn.recurrent_onnx import onnx_direction
from padless.nn.weights import get_constraint, get_regularizer, initialize, initializer_config

__all__ = ["RunOutput", "Recurrent", "row_mask", "keras_call"]

_NOTICED: set[str] = set()


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


def _sorted_state(batch: RaggedBatch, states: Sequence[torch.Tensor]) -> State:
    """States given per batch row (each (1, B, H) or (B, H)) -> (1, B, H) in the batch's sorted row order."""
    st = tuple(s if s.dim() == 3 else s.unsqueeze(0) for s in states)
    return tuple(batch.sort(s.transpose(0, 1)).transpose(0, 1) for s in st)


class Recurrent(Layer):
    """Base of the Keras-style recurrent layers (one direction, one layer). Arguments as Keras 3's ``LSTM``:

    Example:
        >>> from padless.nn.recurrent import LSTM
        >>> LSTM(4, input_size=2).path
        'fused'

    Args:
        units: hidden size H. The parameter count never depends on sequence length.
        activation / recurrent_activation: names or callables (Keras defaults tanh / sigmoid: the fused
            kernels; anything else: the exact per-step path).
        use_bias: biases (PyTorch keeps two vectors per gate; they start as Keras' one).
        kernel_initializer / recurrent_initializer / bias_initializer: Keras names or config dicts.
        unit_forget_bias: LSTM: the forget gate's bias starts at 1.
        kernel_regularizer / recurrent_regularizer / bias_regularizer / activity_regularizer: ``"l1"``,
            ``"l2"``, ``"l1_l2"`` or a config dict (a penalty added to the loss).
        kernel_constraint / recurrent_constraint / bias_constraint: ``"max_norm"``, ``"non_neg"``, ...
        dropout: input dropout rate, one mask per sequence shared across its steps (Keras semantics).
        recurrent_dropout: dropout on the recurrent state (one mask per sequence; the per-step path).
        seed: seed of the initial weights (and only of them).
        return_sequences / return_state / go_backwards / stateful: as Keras (final states at each row's *own*
            last step; ``stateful`` needs a fixed batch size: ``batch_input_shape=(B, None, F)``).
        unroll / use_cudnn: accepted for compatibility (no effect on the result: padless picks the kernel).
        **kwargs: the common layer keywords (``input_shape=(None, F)``, ``input_size``, ``name``, ...).
    """

    requires_sequences = True
    _rnn_cls: ClassVar[type[nn.RNNBase]] = nn.RNN
    _gates: ClassVar[int] = 1
    _num_states: ClassVar[int] = 1
    onnx_op: ClassVar[str] = "RNN"
    kind: ClassVar[str] = "rnn"

    def _setup(self, units: int, activation: Any, recurrent_activation: Any, use_bias: bool, kernel_initializer: Any,
               recurrent_initializer: Any, bias_initializer: Any, unit_forget_bias: bool, kernel_regularizer: Any,
               recurrent_regularizer: Any, bias_regularizer: Any, activity_regularizer: Any, kernel_constraint: Any,
               recurrent_constraint: Any, bias_constraint: Any, dropout: float, recurrent_dropout: float,
               seed: int | None, return_sequences: bool, return_state: bool, go_backwards: bool, stateful: bool,
               unroll: bool, use_cudnn: Any, kwargs: dict[str, Any]) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise ConfigError(f"{cls}: units must be a positive integer; got {units!r}")
        for what, v in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= float(v) < 1.0:
                raise ConfigError(f"{cls}: {what} must be in [0, 1); got {v!r}")
        self.units = int(units)
        self.activation, self._act = resolve_activation(activation)
        self.recurrent_activation, self._rec_act = resolve_activation(recurrent_activation)
        self._custom_act = self.activation is None or self.recurrent_activation is None
        self.use_bias = bool(use_bias)
        self.kernel_initializer, self.recurrent_initializer = kernel_initializer, recurrent_initializer
        self.bias_initializer, self.unit_forget_bias = bias_initializer, bool(unit_forget_bias)
        self.kernel_regularizer, self.recurrent_regularizer = (get_regularizer(kernel_regularizer),
                                                               get_regularizer(recurrent_regularizer))
        self.bias_regularizer, self.activity_regularizer = (get_regularizer(bias_regularizer),
                                                            get_regularizer(activity_regularizer))
        self.kernel_constraint, self.recurrent_constraint = (get_constraint(kernel_constraint),
                                                             get_constraint(recurrent_constraint))
        self.bias_constraint = get_constraint(bias_constraint)
        self._regs = {"kernel": self.kernel_regularizer, "recurrent": self.recurrent_regularizer,
                      "bias": self.bias_regularizer, "activity": self.activity_regularizer}
        self._cons = {"kernel": self.kernel_constraint, "recurrent": self.recurrent_constraint,
                      "bias": self.bias_constraint}
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.seed = None if seed is None else int(seed)
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful = bool(go_backwards), bool(stateful)
        self.unroll, self.use_cudnn = bool(unroll), use_cudnn
        self.rnn: nn.RNNBase | None = None
        self.states: State | None = None
        self._activity: torch.Tensor | None = None
        self.finish_init()

    # -- building
    def _make_rnn(self, input_size: int) -> nn.RNNBase:
        if self._rnn_cls is nn.RNN:
            relu = self.activation == "relu"
            return nn.RNN(input_size, self.units, nonlinearity="relu" if relu else "tanh", bias=self.use_bias)
        return self._rnn_cls(input_size, self.units, bias=self.use_bias)

    def make_weights(self, input_size: int) -> None:
        self.rnn = self._make_rnn(input_size)
        H, seed = self.units, self.seed
        initialize(self.rnn.weight_ih_l0, self.kernel_initializer, seed)
        initialize(self.rnn.weight_hh_l0, self.recurrent_initializer, None if seed is None else seed + 1)
        if self.use_bias:
            initialize(self.rnn.bias_ih_l0, self.bias_initializer, None if seed is None else seed + 2)
            nn.init.zeros_(self.rnn.bias_hh_l0)  # Keras has one bias: the second starts at zero
            if self.kind == "lstm" and self.unit_forget_bias:
                with torch.no_grad():
                    self.rnn.bias_ih_l0[H : 2 * H] = 1.0  # torch gate order i, f, g, o

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

    @property
    def fused_ok(self) -> bool:
        """The fused kernels compute this layer (Keras' default activations, PyTorch's GRU)."""
        if self.kind == "rnn":
            return self.activation in ("tanh", "relu")
        return self.activation == "tanh" and self.recurrent_activation == "sigmoid" and getattr(self, "reset_after", True)

    @property
    def path(self) -> str:
        """``"fused"`` (the dense/packed kernels) or ``"per-step"`` (exact, slower: other activations,
        ``recurrent_dropout`` while training, ``reset_after=False``)."""
        slow = not self.fused_ok or (self.training and self.recurrent_dropout > 0)
        return "per-step" if slow else "fused"

    def get_config(self) -> dict[str, Any]:
        if self._custom_act:
            raise ConfigError(f"layer {self.describe()} uses a custom activation callable, which cannot be saved: "
                              "pass activations by name (e.g. 'relu')")
        cfg = super().get_config()
        for k in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
            cfg[k] = initializer_config(cfg[k], f"{self.describe()}.{k}")
        for k, r in self._regs.items():
            cfg[f"{k}_regularizer"] = None if r is None else r.get_config()
        for k, c in self._cons.items():
            cfg[f"{k}_constraint"] = None if c is None else c.get_config()
        cfg["batch_size"] = self.batch_size
        return cfg

    # -- penalties and constraints
    def weight_penalty(self) -> torch.Tensor | None:
        if self.rnn is None:
            return None
        terms = []
        for key, params in (("kernel", [self.rnn.weight_ih_l0]), ("recurrent", [self.rnn.weight_hh_l0]),
                            ("bias", [self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0] if self.use_bias else [])):
            r = self._regs[key]
            if r is not None:
                terms += [r(p) for p in params]
        if self._activity is not None:
            terms.append(self._activity)
            self._activity = None
        return sum(terms[1:], terms[0]) if terms else None

    def apply_constraints(self) -> None:
        if self.rnn is None:
            return
        pairs = [("kernel", self.rnn.weight_ih_l0), ("recurrent", self.rnn.weight_hh_l0)]
        if self.use_bias:
            pairs += [("bias", self.rnn.bias_ih_l0), ("bias", self.rnn.bias_hh_l0)]
        for key, p in pairs:
            c = self._cons[key]
            if c is not None:
                c(p.data)  # a torch weight (out, in): row norms = Keras' kernel (in, out) norms over axis 0

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
                raise StateError(f"{self.describe()} takes {self._num_states} initial state tensor(s); got "
                                 f"{len(initial_state)}")
            return _sorted_state(batch, initial_state)
        if not self.stateful:
            return None
        if self.batch_size is None:
            raise StateError(f"stateful layer {self.describe()} needs a fixed batch size: pass batch_input_shape="
                             "(B, None, F) on the model's first layer or batch_size=B")
        if B != self.batch_size:
            raise StateError(f"stateful layer {self.describe()}: Expected batch size {self.batch_size} / Received {B}. "
                             "A stateful layer keeps one state per row: feed batches of exactly that size.")
        return None if self.states is None else _sorted_state(batch, self.states)

    # -- running
    def _row_mask(self, batch: RaggedBatch, width: int, rate: float, like: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - rate
        return torch.bernoulli(like.new_full((batch.batch_size, width), keep)) / keep  # (B, width) per sequence

    def run(self, batch: RaggedBatch, initial_state: Sequence[torch.Tensor] | None = None,
            want_states: bool = False) -> RunOutput:
        """Run over a batch; return the output sequence, each row's last output and (optionally) the
        final states, rows in sorted order."""
        if self.rnn is None:
            self.build(int(batch.data.shape[1]))
        if batch.data.shape[1] != self.input_size:
            raise DataError(f"layer {self.describe()} expects {self.input_size} features per step; received "
                            f"{batch.data.shape[1]}")
        want = want_states or self.needs_exact_states
        hx = self._initial_state(batch, initial_state)
        data = batch.data
        if self.training and self.dropout > 0:
            mask = self._row_mask(batch, data.shape[1], self.dropout, data)
            data = data * mask.index_select(0, batch.plan.tensor("row_of_pos", data.device))
        if self.go_backwards:
            data = data.index_select(0, batch.plan.tensor("reverse_index", data.device))
        if self.path == "fused":
            out, states = self._fused(data, batch, hx, want)
        else:
            self._notice()
            rmask = (self._row_mask(batch, self.units, self.recurrent_dropout, data)
                     if self.training and self.recurrent_dropout > 0 else None)
            out, states = run_cells(self.kind, self.rnn, data, batch, hx, self._act, self._rec_act,  # type: ignore[arg-type]
                                    getattr(self, "reset_after", True), rmask)
        if self.stateful and states is not None:
            self.states = tuple(batch.unsort(s.detach().transpose(0, 1)).transpose(0, 1) for s in states)
        seq = batch.with_data(out)
        last = seq.last()
        reg = self._regs["activity"]
        if reg is not None and self.training:  # Keras: the penalty of the layer's output, per sample
            self._activity = reg(seq.valid_data() if self.return_sequences else last) / batch.batch_size
        return RunOutput(seq, last, states)

    def _fused(self, data: torch.Tensor, batch: RaggedBatch, hx: State | None, want: bool
               ) -> tuple[torch.Tensor, State | None]:
        """The fused kernels: the packed engine (one call for the whole batch) on an exact plan when it runs
        here, else one dense call per block (:func:`padless.nn.blocks.scan`)."""
        mode = {"lstm": "lstm", "gru": "gru"}.get(self.kind, "rnn_tanh" if self.activation == "tanh" else "")
        if not (mode and batch.plan.exact) or select_engine(data.device, data.dtype).engine == "blocks":
            return scan(self.rnn, data, batch, hx, want)  # type: ignore[arg-type]
        rnn = self.rnn
        y, h, c = packed_rnn(mode, data, batch.plan.batch_sizes(), rnn.weight_ih_l0, rnn.weight_hh_l0,  # type: ignore[union-attr]
                             rnn.bias_ih_l0 if self.use_bias else None, rnn.bias_hh_l0 if self.use_bias else None,  # type: ignore[union-attr]
                             None if hx is None else hx[0][0], None if (hx is None or mode != "lstm") else hx[1][0])
        return y, ((h.unsqueeze(0), c.unsqueeze(0)) if c is not None else (h.unsqueeze(0),))

    def _notice(self) -> None:
        key = f"{type(self).__name__}:{self.activation}:{self.recurrent_activation}:{self.recurrent_dropout}"
        if key not in _NOTICED:
            _NOTICED.add(key)
            why = []
            if self.activation not in ("tanh", "relu" if self.kind == "rnn" else "tanh"):
                why.append(f"activation={self.activation!r}")
            if self.kind != "rnn" and self.recurrent_activation != "sigmoid":
                why.append(f"recurrent_activation={self.recurrent_activation!r}")
            if not getattr(self, "reset_after", True):
                why.append("reset_after=False")
            if self.training and self.recurrent_dropout > 0:
                why.append(f"recurrent_dropout={self.recurrent_dropout}")
            print(f"padless: {self.describe()} ({', '.join(why)}) runs on the exact per-step path, slower than the "
                  "fused kernels (used for Keras' defaults)", file=sys.stderr)

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
    def onnx_activation_names(self) -> list[str]:
        """The ONNX node's activations, in ONNX order (LSTM f, g, h; GRU f, g; RNN f)."""
        if self._custom_act:
            raise ConfigError(f"{self.describe()} cannot be exported to ONNX: it uses a custom activation callable")
        if self.kind == "rnn":
            return [self.activation]  # type: ignore[list-item]
        if self.kind == "lstm":
            return [self.recurrent_activation, self.activation, self.activation]  # type: ignore[list-item]
        return [self.recurrent_activation, self.activation]  # type: ignore[list-item]

    def onnx_direction(self, g: Any, x: str, init: Sequence[str] | None) -> tuple[str, list[str]]:
        """One direction on a (T, B, F) value: ``(seq (T, B, H) in this layer's time order, [h] or [h, c])``."""
        return onnx_direction(g, self, x, init)

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
