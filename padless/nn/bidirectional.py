"""Bidirectional recurrent layers: a layer forwards and a copy of it backwards, each from a true end.

Owns: :class:`Bidirectional` (Keras' wrapper: ``merge_mode``, ``return_sequences``/``return_state`` from
the wrapped layer) and its ONNX form (two directions, the backward one reversed within each row's own
length). Does not own: the recurrent layers themselves (:mod:`padless.nn.recurrent`).

Example:
    >>> import torch
    >>> from padless.nn.recurrent import GRU
    >>> bi = Bidirectional(GRU(4, input_size=2))
    >>> bi([torch.randn(3, 2), torch.randn(5, 2)]).shape
    torch.Size([2, 8])
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError
from padless.nn.base import Layer, OnnxValue, State, deserialize_layer, serialize_layer
from padless.nn.recurrent import Recurrent, RunOutput, keras_call

__all__ = ["Bidirectional"]


class Bidirectional(Layer):
    """Run a recurrent layer forwards and a copy of it backwards; merge the two.

    The backward direction starts at each sequence's *true* end (never on padding). With
    ``return_sequences=False`` the output is ``[forward output at the last step, backward output after
    reading step 0]``, as in Keras.

    Args:
        layer: the forward layer (its settings are copied for the backward one).
        merge_mode: ``"concat"`` (default), ``"sum"``, ``"mul"`` or ``"ave"``.
        **kwargs: the common layer keywords (``input_shape=(None, F)``, ``name``, ...).

    Example:
        >>> import torch
        >>> from padless.nn.recurrent import GRU
        >>> bi = Bidirectional(GRU(4, input_size=2))
        >>> bi([torch.randn(3, 2), torch.randn(5, 2)]).shape
        torch.Size([2, 8])
    """

    requires_sequences = True
    causal = False

    def __init__(self, layer: Recurrent, merge_mode: str | None = "concat", weights: Any = None,
                 backward_layer: Recurrent | None = None, **kwargs: Any) -> None:
        if not isinstance(layer, Recurrent):
            raise ConfigError(f"Bidirectional wraps LSTM, GRU or SimpleRNN; got {type(layer).__name__}")
        if merge_mode is None:
            raise ConfigError("Bidirectional(merge_mode=None) returns the two directions as a list, which a padless "
                              "model cannot pass to the next layer; use merge_mode='concat', 'sum', 'mul' or 'ave'")
        if merge_mode not in ("concat", "sum", "mul", "ave"):
            raise ConfigError(f"Bidirectional: merge_mode must be concat, sum, mul or ave; got {merge_mode!r}")
        if weights is not None:
            raise ConfigError("Bidirectional(weights=...) is not supported: set the weights after building with "
                              "model.set_weights(...)")
        if layer.stateful:
            raise ConfigError("a stateful Bidirectional layer is not supported: its backward pass needs the whole sequence")
        super().__init__(**kwargs)
        self.merge_mode = merge_mode
        self.forward_layer = layer
        size = layer.input_size or self.declared_input_size
        self.own_backward = backward_layer is not None
        self.backward_layer = self._backward(layer, backward_layer, size)
        self.units = layer.units
        if size is not None:
            self.build(int(size))

    @staticmethod
    def _backward(layer: Recurrent, given: Recurrent | None, size: int | None) -> Recurrent:
        """The backward layer: ``given`` (checked as Keras checks it) or a fresh copy of ``layer``'s settings."""
        if given is None:
            cfg = layer.get_config()
            cfg.update(go_backwards=not layer.go_backwards, name=None, input_size=size)
            if cfg.get("seed") is not None:
                cfg["seed"] = int(cfg["seed"]) + 1000  # independent initial weights, as Keras draws
            return type(layer).from_config(cfg)  # type: ignore[return-value]
        if not isinstance(given, Recurrent):
            raise ConfigError(f"Bidirectional: backward_layer must be an LSTM, GRU or SimpleRNN; got {type(given).__name__}")
        if given.go_backwards == layer.go_backwards:
            raise ConfigError("Bidirectional: backward_layer must read the other way: Expected go_backwards="
                              f"{not layer.go_backwards} / Received {given.go_backwards}")
        for attr in ("return_sequences", "return_state", "stateful"):
            if getattr(given, attr) != getattr(layer, attr):
                raise ConfigError(f"Bidirectional: backward_layer.{attr} must match the forward layer's: Expected "
                                  f"{getattr(layer, attr)} / Received {getattr(given, attr)}")
        if given.units != layer.units:
            raise ConfigError(f"Bidirectional: backward_layer has {given.units} units but the forward layer "
                              f"{layer.units}; padless merges directions of one width")
        return given

    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    @property
    def return_state(self) -> bool:
        return self.forward_layer.return_state

    @property
    def needs_exact_states(self) -> bool:
        return self.return_state

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self.forward_layer.state_sizes + self.backward_layer.state_sizes

    def sequence_out(self, sequence_in: bool) -> bool:
        return self.return_sequences

    def noncausal_reason(self) -> str:
        return "a bidirectional layer's backward pass needs the whole sequence"

    def make_weights(self, input_size: int) -> None:
        self.forward_layer.build(input_size)
        self.backward_layer.build(input_size)

    @property
    def output_size(self) -> int:
        return self.units * (2 if self.merge_mode == "concat" else 1)

    def describe(self) -> str:
        return self.name or f"Bidirectional({self.forward_layer.describe()})"

    def get_config(self) -> dict[str, Any]:
        cfg = {"layer": serialize_layer(self.forward_layer), "merge_mode": self.merge_mode, "name": self.name}
        if self.own_backward:
            cfg["backward_layer"] = serialize_layer(self.backward_layer)
        return cfg

    @classmethod
    def from_config(cls, config: Any) -> "Bidirectional":
        cfg = dict(config)
        inner = deserialize_layer(cfg.pop("layer"))
        back = cfg.pop("backward_layer", None)
        return cls(inner, backward_layer=None if back is None else deserialize_layer(back), **cfg)  # type: ignore[arg-type]

    def _merge(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.merge_mode == "concat":
            return torch.cat([a, b], -1)
        if self.merge_mode == "sum":
            return a + b
        if self.merge_mode == "mul":
            return a * b
        return (a + b) / 2

    def run(self, batch: RaggedBatch, initial_state: Sequence[torch.Tensor] | None = None,
            want_states: bool = False) -> RunOutput:
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

    def call_with_state(self, x: Any, initial_state: Sequence[torch.Tensor] | None = None,
                        want_state: bool = False) -> tuple[Any, State | None]:
        if not isinstance(x, RaggedBatch):
            raise ConfigError(f"{self.describe()} needs sequences but its input is one vector per sequence: set "
                              "return_sequences=True on the recurrent layer before it")
        res = self.run(x, initial_state, want_state)
        return (res.seq if self.return_sequences else res.last), res.states

    def forward(self, x: Any, initial_state: Sequence[torch.Tensor] | None = None) -> Any:
        return keras_call(self, x, initial_state)

    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        if g.streaming:
            raise ConfigError(f"{self.describe()} cannot stream: its backward pass needs the whole sequence. "
                              "Export without streaming=True, or use a unidirectional model")
        if not x.seq:
            raise ConfigError(f"{self.describe()} needs sequences but the layer before returns one vector per sequence")
        fw_seq, fw_st = self.forward_layer.onnx_direction(g, x.name, None)
        bw_seq, bw_st = self.backward_layer.onnx_direction(g, x.name, None)
        bw_seq = g.op("ReverseSequence", [bw_seq, g.lengths], "rev_out", batch_axis=1, time_axis=0)
        if self.return_sequences:
            return OnnxValue(_merge_onnx(g, self.merge_mode, fw_seq, bw_seq), True, self.output_size)
        return OnnxValue(_merge_onnx(g, self.merge_mode, fw_st[0], bw_st[0]), False, self.output_size)


def _merge_onnx(g: Any, mode: str, a: str, b: str) -> str:
    if mode == "concat":
        return g.op("Concat", [a, b], "concat", axis=-1)
    if mode == "sum":
        return g.op("Add", [a, b], "sum")
    if mode == "mul":
        return g.op("Mul", [a, b], "mul")
    return g.op("Div", [g.op("Add", [a, b]), g.const("two", 2.0)], "ave")
