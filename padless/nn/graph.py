"""Composing layers into a model graph that runs ragged batches: the plain-PyTorch model.

Owns: :class:`Graph` (what the trainer, the exporter and :class:`~padless.nn.stream.Stream` need of a
model: its sizes, whether it returns sequences, its first layer's input conventions, its state-carrying
layers, ``run_states`` over a :class:`~padless.data.collate.RaggedBatch`, resets, configs, a summary) and
:class:`LayerStack`, the linear stack that Keras' ``Sequential`` is built on. Every question is answered
by asking the layers (:class:`~padless.nn.base.Layer`): there is no list of layer classes here, so a
user's own layer composes like padless' own.

Does not own: training, saving or exporting (``padless.train``, ``padless.export``; the Keras-style
facade in ``padless.models`` wires them to a graph), or the layers themselves.

Example:
    >>> import torch
    >>> from padless.nn.core import Dense
    >>> from padless.nn.recurrent import LSTM
    >>> g = LayerStack([LSTM(4, input_size=3), Dense(2)])
    >>> g([torch.randn(5, 3), torch.randn(2, 3)]).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError, DataError
from padless.nn.adapters import from_batch, to_batch
from padless.nn.base import Layer, deserialize_layer, serialize_layer
from padless.nn.core import TorchModule

__all__ = ["Graph", "LayerStack"]


class Graph(nn.Module):
    """The model interface the rest of padless relies on (subclassed by :class:`LayerStack` and the
    functional graph). Subclasses implement :meth:`run_states`, :meth:`build`, :attr:`all_layers`,
    :attr:`input_layers`, :attr:`output_layer`, :meth:`get_config` and :meth:`from_config`."""

    name: str = "model"

    # ------------------------------------------------------------------ structure (subclasses)
    @property
    def all_layers(self) -> list[Layer]:
        """Every layer in execution order."""
        raise NotImplementedError

    @property
    def first_layer(self) -> Layer | None:
        """The layer that reads the model's input (input conventions: masking, tokens)."""
        raise NotImplementedError

    @property
    def output_layer(self) -> Layer | None:
        """The layer whose output is the model's output."""
        raise NotImplementedError

    def build(self, input_size: int) -> int:
        """Create every layer's weights for ``input_size`` features per step; return the output size."""
        raise NotImplementedError

    def run_states(self, batch: RaggedBatch, logits: bool = False,
                   initial_states: Sequence[Sequence[torch.Tensor] | None] | None = None,
                   want_states: bool = False) -> tuple[RaggedBatch | torch.Tensor, list[Any]]:
        """Forward pass over a laid-out batch.

        Args:
            batch: the laid-out batch.
            logits: leave out the output layer's activation (for numerically stable losses).
            initial_states: one entry per state layer (:attr:`state_layers`; None = zeros): a sequence
                of tensors, each (B, H) or (1, B, H), rows in *batch* order.
            want_states: return every state layer's final states (each (1, B, H), *sorted* rows).

        Returns:
            ``(output, states)``: (B, out) per-row outputs in the batch's *sorted* row order, or a
            RaggedBatch of per-step outputs; ``states`` is empty unless ``want_states``.
        """
        raise NotImplementedError

    @property
    def input_size(self) -> int | None:
        """Number of input features per step, once known."""
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        raise NotImplementedError

    @property
    def returns_sequences(self) -> bool:
        """True when the model's output is one vector per step (a per-step head)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ answers from the layers
    @property
    def built(self) -> bool:
        return all(layer.built for layer in self.all_layers) and bool(self.all_layers)

    @property
    def input_mask_value(self) -> float | None:
        """Value marking padded steps of dense inputs (a ``Masking`` or ``mask_zero`` first layer)."""
        first = self.first_layer
        return None if first is None else first.input_mask_value

    @property
    def token_input(self) -> bool:
        """The inputs are integer tokens (an ``Embedding`` first layer)."""
        first = self.first_layer
        return bool(first is not None and first.token_input)

    @property
    def state_layers(self) -> list[Layer]:
        """The layers that carry recurrent state, in execution order (``initial_states`` follow it)."""
        return [m for m in self.all_layers if m.state_sizes]

    @property
    def stateful(self) -> bool:
        return any(m.stateful for m in self.all_layers)

    @property
    def stateful_layers(self) -> list[Layer]:
        return [m for m in self.all_layers if m.stateful]

    @property
    def stateful_batch_size(self) -> int | None:
        for m in self.all_layers:
            if m.stateful:
                return m.batch_size
        return None

    @property
    def needs_exact_states(self) -> bool:
        return any(m.needs_exact_states for m in self.all_layers)

    def non_causal_layer(self) -> Layer | None:
        """The first layer whose output needs later steps (bidirectional, pooling), or None."""
        return next((m for m in self.all_layers if not m.causal), None)

    @property
    def output_activation(self) -> str | None:
        """The output layer's activation name when it can be folded into the loss (``logits``)."""
        out = self.output_layer
        if out is not None and callable(getattr(out, "logits", None)):
            return getattr(out, "activation", None)
        return None

    def regularization_loss(self) -> torch.Tensor | None:
        """The sum of every layer's weight and activity penalties (Keras adds it to the loss), or None."""
        terms = [t for t in (m.weight_penalty() for m in self.all_layers) if t is not None]
        return sum(terms[1:], terms[0]) if terms else None

    def apply_constraints(self) -> None:
        """Apply every layer's weight constraints (after an optimizer step)."""
        for m in self.all_layers:
            m.apply_constraints()

    def reset_states(self, rows: Sequence[int] | np.ndarray | torch.Tensor | None = None) -> None:
        """Reset the carried state of every stateful layer: all rows, or only ``rows`` (indices or mask)."""
        for m in self.all_layers:
            m.reset_states(rows)

    def reset_state(self, rows: Sequence[int] | np.ndarray | torch.Tensor | None = None) -> None:
        """Keras 3 spelling of :meth:`reset_states`."""
        self.reset_states(rows)

    def count_params(self) -> int:
        """Number of weights. PyTorch/cuDNN keep two bias vectors per gate, so an LSTM(100) on 100 inputs
        has 80,800 parameters where Keras counts 80,400."""
        if not self.built:
            raise ConfigError("the model is not built yet: give input_shape=(None, F) or call fit/build first")
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: Any) -> Any:
        """PyTorch call on a PackedSequence, (padded, lengths), a (B, T, F) tensor or a list of tensors.

        Returns per-row outputs (B, out) in input order, or per-step outputs of the input's kind.
        """
        batch, kind = to_batch(x)
        out, _ = self.run_states(batch)
        if isinstance(out, RaggedBatch):
            return from_batch(out, kind)
        return batch.unsort(out)

    def run(self, batch: RaggedBatch, logits: bool = False) -> RaggedBatch | torch.Tensor:
        """:meth:`run_states` without states."""
        return self.run_states(batch, logits)[0]

    def summary_rows(self) -> list[tuple[str, str, int]]:
        """(layer, output shape, parameters) per layer."""
        raise NotImplementedError

    def emit_onnx(self, g: Any, x: Any, emit: Callable[[int, Layer, Any], Any]) -> Any:
        """Emit every layer into an ONNX graph in order: ``emit(index, layer, value)`` returns the next value
        (a graph with branches overrides this)."""
        for i, layer in enumerate(self.all_layers):
            x = emit(i, layer, x)
        return x

    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """Print (and return) a per-layer table: output shape and parameter count."""
        rows = self.summary_rows()
        total = sum(r[2] for r in rows)
        w = max([len(r[0]) for r in rows] + [12])
        lines = [f'Model: "{self.name}"', f"{'Layer':<{w}}  {'Output shape':<18}  {'Param #':>10}", "-" * (w + 32)]
        lines += [f"{a:<{w}}  {b:<18}  {c:>10,}" for a, b, c in rows]
        lines += ["-" * (w + 32), f"Total params: {total:,}",
                  "(PyTorch keeps two bias vectors per recurrent gate; Keras counts one.)"]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Graph":
        raise NotImplementedError


class LayerStack(Graph):
    """A linear stack of layers, a plain ``nn.Module`` (the graph under Keras' ``Sequential``).

    Args:
        layers: initial layers (more with :meth:`add`).
        name: optional model name.

    Example:
        >>> from padless.nn.core import Dense
        >>> from padless.nn.recurrent import GRU
        >>> LayerStack([GRU(3, input_size=2), Dense(1)]).count_params()
        67
    """

    def __init__(self, layers: Iterable[Layer] | None = None, name: str | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self.name = name or "sequential"
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ building
    def add(self, layer: Layer) -> None:
        """Append a layer; if the model is already built, build the new layer too."""
        if isinstance(layer, nn.Module) and not isinstance(layer, Layer):
            layer = TorchModule(layer)  # a plain torch module: a per-step layer
        if not isinstance(layer, Layer):
            raise ConfigError(f"{type(self).__name__}.add takes a layer; got {type(layer).__name__}")
        if len(self.layers) and layer.input_mask_value is not None and not layer.token_input:
            raise ConfigError(f"{layer.describe()} must be the first layer (it describes the model's input)")
        prev_out = self._output_size_so_far()
        self.layers.append(layer)
        self._share_batch_size()
        if prev_out is not None:
            layer.build(prev_out)

    def _share_batch_size(self) -> None:
        """Keras: the first layer's batch_input_shape fixes the batch size of every stateful layer."""
        bs = next((m.batch_size for m in self.layers if m.batch_size), None)
        for m in self.layers:
            if m.stateful and m.batch_size is None:
                m.batch_size = bs

    def _output_size_so_far(self) -> int | None:
        size = self.input_size
        if size is None:
            return None
        for layer in self.layers:
            size = layer.build(size)
        return size

    @property
    def all_layers(self) -> list[Layer]:
        return list(self.layers)  # type: ignore[arg-type]

    @property
    def first_layer(self) -> Layer | None:
        return self.layers[0] if len(self.layers) else None  # type: ignore[return-value]

    @property
    def output_layer(self) -> Layer | None:
        return self.layers[-1] if len(self.layers) else None  # type: ignore[return-value]

    @property
    def input_size(self) -> int | None:
        first = self.first_layer
        if first is None:
            return None
        if first.token_input:
            return 1
        return first.input_size if first.input_size is not None else first.declared_input_size

    @property
    def built(self) -> bool:
        return self.input_size is not None and self._output_size_so_far() is not None

    def build(self, input_size: int) -> int:
        if not len(self.layers):
            raise ConfigError("the model has no layers: add some with model.add(...)")
        if self.input_size is not None and self.input_size != input_size:
            raise DataError(
                f"the model expects {self.input_size} features per step; the data has {input_size}. "
                "Check the input_shape of the first layer or the data's last axis."
            )
        size = input_size
        for layer in self.layers:
            size = layer.build(size)
        return size

    @property
    def output_size(self) -> int:
        size = self._output_size_so_far()
        if size is None:
            raise ConfigError("the model is not built yet: give input_shape=(None, F) or call fit/build first")
        return size

    @property
    def returns_sequences(self) -> bool:
        seq = True
        for layer in self.layers:
            seq = layer.sequence_out(seq)
        return seq

    # ------------------------------------------------------------------ running
    def run_states(self, batch: RaggedBatch, logits: bool = False,
                   initial_states: Sequence[Sequence[torch.Tensor] | None] | None = None,
                   want_states: bool = False) -> tuple[RaggedBatch | torch.Tensor, list[Any]]:
        x: RaggedBatch | torch.Tensor = batch
        last = len(self.layers) - 1
        states: list[Any] = []
        r = 0
        for i, layer in enumerate(self.layers):
            if layer.requires_sequences and not isinstance(x, RaggedBatch):
                raise ConfigError(
                    f"layer {i} ({layer.describe()}) needs sequences but the layer before returns one "
                    "vector per sequence: set return_sequences=True on the recurrent layer before it"
                )
            if layer.state_sizes:
                init = initial_states[r] if initial_states is not None else None
                x, st = layer.call_with_state(x, init, want_states)
                if want_states:
                    states.append(st)
                r += 1
            elif logits and i == last and callable(getattr(layer, "logits", None)):
                x = layer.logits(x)
            else:
                x = layer(x)
        return x, states

    def summary_rows(self) -> list[tuple[str, str, int]]:
        rows = []
        size = self.input_size
        seq = True
        for layer in self.layers:
            if size is not None:
                size = layer.build(size)
            seq = layer.sequence_out(seq)
            shape = f"(None, {'None, ' if seq else ''}{size if size is not None else '?'})"
            rows.append((layer.describe(), shape, sum(p.numel() for p in layer.parameters())))
        return rows

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "layers": [serialize_layer(m) for m in self.layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "LayerStack":
        try:
            layers = [deserialize_layer(d) for d in config["layers"]]
        except (KeyError, TypeError) as e:
            raise ConfigError(f"not a padless model config: {e}") from e
        return cls(layers, name=config.get("name"))
