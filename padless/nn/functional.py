"""The functional API's graph: ``Input``, layers called on symbolic tensors, branches and merges.

Owns: :func:`Input` and :class:`SymbolicTensor` (Keras' ``Input``/``KerasTensor``: calling a layer on one
builds the layer for the feature count and records a node; sizes, per-step-or-not and length changes are
checked as the graph is written, so a mismatch between branches is an error naming the layer at once) and
:class:`FunctionalGraph` (a :class:`~padless.nn.graph.Graph` over those nodes: run over a ragged batch in
topological order, config that replays the calls, ONNX emission with each branch's own lengths).

One sequence input and one output (the trainer's data is one ragged array and one target). A layer may be
called several times (shared weights) unless it carries recurrent state.

Does not own: the layers, the facade (``padless.Model``), training.

Example:
    >>> import torch
    >>> from padless.nn import Concatenate, Dense, GlobalAveragePooling1D, LSTM, Conv1D
    >>> inp = Input(shape=(None, 3))
    >>> conv = GlobalAveragePooling1D()(Conv1D(4, 3, padding="same")(inp))
    >>> g = FunctionalGraph(inp, Dense(2)(Concatenate()([conv, LSTM(5)(inp)])))
    >>> g([torch.randn(6, 3), torch.randn(2, 3)]).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError
from padless.nn.base import Layer, OnnxValue, deserialize_layer, serialize_layer
from padless.nn.graph import Graph

__all__ = ["Input", "SymbolicTensor", "FunctionalGraph", "Trace", "Node"]


@dataclass
class Node:
    """One call of a layer (``layer`` None for the input): its inputs (node indices) and its output's
    size, per-step flag and the length changes it went through."""

    layer: Layer | None
    inputs: list[int]
    size: int
    seq: bool
    lengths_sig: tuple[Any, ...] = ()


@dataclass(eq=False)
class Trace:
    """The nodes recorded from one ``Input``."""

    nodes: list[Node] = field(default_factory=list)
    name: str | None = None
    batch_size: int | None = None


@dataclass(eq=False)
class SymbolicTensor:
    """The output of a layer called on an ``Input`` (Keras' ``KerasTensor``).

    Attributes:
        trace: the recorded graph; node: this tensor's node index.
        shape: ``(None, None, F)`` per step or ``(None, F)`` per sequence (Keras' shape, batch first).
    """

    trace: Trace
    node: int

    @property
    def info(self) -> Node:
        return self.trace.nodes[self.node]

    @property
    def shape(self) -> tuple[int | None, ...]:
        n = self.info
        return (None, None, n.size) if n.seq else (None, n.size)

    def apply_layer(self, layer: Layer, inputs: list["SymbolicTensor"], **kwargs: Any) -> "SymbolicTensor":
        """Record ``layer(inputs)``; build the layer; check the inputs fit it (called by ``Layer.__call__``)."""
        if kwargs:
            raise ConfigError(f"{layer.describe()}: keyword arguments to a layer call are not supported in the "
                              f"functional API; got {sorted(kwargs)}")
        if any(t.trace is not self.trace for t in inputs):
            raise ConfigError(f"{layer.describe()}: its inputs come from different padless.Input()s; a model has one "
                              "sequence input")
        if layer.state_sizes and any(n.layer is layer for n in self.trace.nodes):
            raise ConfigError(f"{layer.describe()} is called twice: a layer that carries recurrent state cannot be "
                              "shared; create one layer per call")
        infos = [t.info for t in inputs]
        if layer.multi_input:
            seqs = {n.seq for n in infos}
            if len(seqs) > 1:
                raise ConfigError(f"{layer.describe()}: branches {[i for i, n in enumerate(infos) if n.seq]} are one "
                                  "vector per step and the others one vector per sequence; pool the per-step "
                                  "branches first (e.g. GlobalAveragePooling1D) or return sequences from all")
            if infos[0].seq and len({n.lengths_sig for n in infos}) > 1:
                raise ConfigError(f"{layer.describe()}: the per-step branches change the sequence lengths differently "
                                  "(strides or 'valid' windows in one branch only); give each branch the same "
                                  "length changes, or pool them first")
            size = layer.build_multi([n.size for n in infos])  # type: ignore[attr-defined]
            seq, sig = infos[0].seq, infos[0].lengths_sig
        else:
            if len(inputs) != 1:
                raise ConfigError(f"{layer.describe()} takes one input; got a list of {len(inputs)} (merge branches "
                                  "with Concatenate, Add, ...)")
            n = infos[0]
            if layer.requires_sequences and not n.seq:
                raise ConfigError(f"{layer.describe()} needs sequences but its input is one vector per sequence: set "
                                  "return_sequences=True on the recurrent layer before it")
            size = layer.build(n.size)
            seq = layer.sequence_out(n.seq)
            key = layer.lengths_key() if n.seq else None
            sig = n.lengths_sig + ((key,) if key is not None else ())
        self.trace.nodes.append(Node(layer, [t.node for t in inputs], int(size), bool(seq), sig))
        return SymbolicTensor(self.trace, len(self.trace.nodes) - 1)


def Input(shape: Sequence[int | None] = (None, 1), name: str | None = None, batch_size: int | None = None,
          dtype: Any = None) -> SymbolicTensor:
    """A model's sequence input (Keras ``Input``): ``shape=(None, F)`` (timesteps, features); the time
    dimension is free (every sequence keeps its own length). ``shape=(None,)`` is one value (a token) per step.

    Raises:
        ConfigError: a shape that is not (timesteps, features), or a dtype other than float32.
    """
    shp = tuple(shape)
    if len(shp) == 1:
        shp = (shp[0], 1)
    if len(shp) != 2 or not isinstance(shp[1], int) or shp[1] < 1:
        raise ConfigError(f"Input shape must be (timesteps, features), e.g. (None, 12); got {tuple(shape)}")
    if dtype not in (None, "float32", torch.float32):
        raise ConfigError(f"Input dtype {dtype!r} is not supported; padless inputs are float32")
    return SymbolicTensor(Trace([Node(None, [], int(shp[1]), True)], name, batch_size), 0)


class FunctionalGraph(Graph):
    """A graph of layers called on an :func:`Input` (the graph under Keras' functional ``Model``).

    Args:
        inputs: the ``Input(...)`` tensor.
        outputs: the tensor the model returns.
        name: optional model name.
    """

    def __init__(self, inputs: SymbolicTensor, outputs: SymbolicTensor, name: str | None = None) -> None:
        super().__init__()
        if isinstance(inputs, (list, tuple)) or isinstance(outputs, (list, tuple)):
            if len(inputs if isinstance(inputs, (list, tuple)) else [inputs]) != 1 or \
                    len(outputs if isinstance(outputs, (list, tuple)) else [outputs]) != 1:
                raise ConfigError("a padless model has one sequence input and one output (the trainer reads one "
                                  "ragged array and one target); combine outputs with a merge layer")
            inputs = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
            outputs = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        if not isinstance(inputs, SymbolicTensor) or not isinstance(outputs, SymbolicTensor):
            raise ConfigError("Model(inputs, outputs) takes the tensors of padless.Input() and of the layers called on it")
        if inputs.node != 0 or outputs.trace is not inputs.trace:
            raise ConfigError("the model's output is not computed from its input: call the layers on that Input()")
        if outputs.node == 0:
            raise ConfigError("the model has no layers: call some on the Input()")
        self.name = name or "model"
        trace = inputs.trace
        keep = self._ancestors(trace, outputs.node)
        index: dict[int, int] = {0: 0}  # trace node -> graph node
        layers: list[Layer] = []
        self.nodes: list[Node] = [trace.nodes[0]]
        self.node_layer: list[int] = [-1]
        for k in sorted(keep - {0}):
            n = trace.nodes[k]
            if not any(layer is n.layer for layer in layers):
                layers.append(n.layer)  # type: ignore[arg-type]
            self.node_layer.append(next(i for i, layer in enumerate(layers) if layer is n.layer))
            self.nodes.append(Node(n.layer, [index[i] for i in n.inputs], n.size, n.seq, n.lengths_sig))
            index[k] = len(self.nodes) - 1
        self.layers = nn.ModuleList(layers)
        self.batch_size = trace.batch_size
        for m in layers:
            if m.stateful and m.batch_size is None:
                m.batch_size = self.batch_size

    @staticmethod
    def _ancestors(trace: Trace, node: int) -> set[int]:
        seen, todo = set(), [node]
        while todo:
            k = todo.pop()
            if k not in seen:
                seen.add(k)
                todo.extend(trace.nodes[k].inputs)
        return seen

    # ------------------------------------------------------------------ structure
    @property
    def all_layers(self) -> list[Layer]:
        return list(self.layers)  # type: ignore[arg-type]

    @property
    def first_layer(self) -> Layer | None:
        readers = [self.layers[self.node_layer[k]] for k, n in enumerate(self.nodes) if 0 in n.inputs]
        return readers[0] if readers else None  # type: ignore[return-value]

    @property
    def output_layer(self) -> Layer | None:
        return self.layers[self.node_layer[-1]]  # type: ignore[return-value]

    @property
    def input_size(self) -> int | None:
        return self.nodes[0].size

    @property
    def output_size(self) -> int:
        return self.nodes[-1].size

    @property
    def returns_sequences(self) -> bool:
        return self.nodes[-1].seq

    @property
    def built(self) -> bool:
        return True

    def build(self, input_size: int) -> int:
        if int(input_size) != self.input_size:
            raise ConfigError(f"the model's Input has {self.input_size} features per step; the data has {input_size}")
        return self.output_size

    # ------------------------------------------------------------------ running
    def run_states(self, batch: RaggedBatch, logits: bool = False,
                   initial_states: Sequence[Sequence[torch.Tensor] | None] | None = None,
                   want_states: bool = False) -> tuple[RaggedBatch | torch.Tensor, list[Any]]:
        values: list[Any] = [batch] + [None] * (len(self.nodes) - 1)
        uses = [0] * len(self.nodes)
        for n in self.nodes:
            for i in n.inputs:
                uses[i] += 1
        states: list[Any] = []
        r, last = 0, len(self.nodes) - 1
        for k in range(1, len(self.nodes)):
            n = self.nodes[k]
            layer: Layer = self.layers[self.node_layer[k]]  # type: ignore[assignment]
            xs = [values[i] for i in n.inputs]
            if layer.multi_input:
                y = layer(xs)
            elif layer.state_sizes:
                init = initial_states[r] if initial_states is not None else None
                y, st = layer.call_with_state(xs[0], init, want_states)
                if want_states:
                    states.append(st)
                r += 1
            elif logits and k == last and callable(getattr(layer, "logits", None)):
                y = layer.logits(xs[0])  # type: ignore[attr-defined]
            else:
                y = layer(xs[0])
            values[k] = y
            for i in n.inputs:  # free what no later node reads
                uses[i] -= 1
                if uses[i] == 0 and i != 0:
                    values[i] = None
        return values[last], states

    def emit_onnx(self, g: Any, x: OnnxValue, emit: Callable[[int, Layer, Any], OnnxValue]) -> OnnxValue:
        """Each node's ONNX nodes; every branch keeps its own lengths (strides change them)."""
        ctx = lambda: (g.lengths, g.mask, g.lens32)  # noqa: E731
        values: list[Any] = [(x, ctx())] + [None] * (len(self.nodes) - 1)
        for k in range(1, len(self.nodes)):
            n = self.nodes[k]
            ins = [values[i] for i in n.inputs]
            g.lengths, g.mask, g.lens32 = ins[0][1]
            layer: Layer = self.layers[self.node_layer[k]]  # type: ignore[assignment]
            arg = [v for v, _ in ins] if layer.multi_input else ins[0][0]
            values[k] = (emit(self.node_layer[k], layer, arg), ctx())
        out, (g.lengths, g.mask, g.lens32) = values[-1]
        return out

    # ------------------------------------------------------------------ description
    def summary_rows(self) -> list[tuple[str, str, int]]:
        rows, counted = [], set()
        for k in range(1, len(self.nodes)):
            n = self.nodes[k]
            layer = self.layers[self.node_layer[k]]
            src = ", ".join("Input" if i == 0 else self.layers[self.node_layer[i]].describe() for i in n.inputs)
            shape = f"(None, {'None, ' if n.seq else ''}{n.size})"
            params = 0 if id(layer) in counted else sum(p.numel() for p in layer.parameters())
            counted.add(id(layer))
            rows.append((f"{layer.describe()} <- {src}", shape, params))
        return rows

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "input": {"shape": [None, self.input_size], "batch_size": self.batch_size},
                "layers": [serialize_layer(m) for m in self.layers],
                "nodes": [[self.node_layer[k], n.inputs] for k, n in enumerate(self.nodes) if k > 0]}

    @classmethod
    def replay(cls, config: dict[str, Any]) -> tuple[SymbolicTensor, SymbolicTensor, str | None]:
        """``(input, output, name)`` rebuilt from a config by calling fresh layers again.

        Raises:
            ConfigError: not a functional config, or an unknown layer class.
        """
        try:
            shape, layers_cfg, nodes = config["input"]["shape"], config["layers"], config["nodes"]
        except (KeyError, TypeError) as e:
            raise ConfigError(f"not a padless functional model config: missing {e}") from None
        layers = [deserialize_layer(d) for d in layers_cfg]
        inp = Input(shape=tuple(shape), batch_size=config["input"].get("batch_size"))
        tensors = [inp]
        for li, ins in nodes:
            args = [tensors[i] for i in ins]
            tensors.append(layers[li](args if layers[li].multi_input else args[0]))
        return inp, tensors[-1], config.get("name")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "FunctionalGraph":
        inp, out, name = cls.replay(config)
        return cls(inp, out, name=name)
