"""The Keras-style model: a stack of layers that runs ragged batches.

Owns: :class:`Sequential` (composition, building, the forward pass over a
:class:`~padless.data.collate.RaggedBatch`, parameter counts, ``summary``, ``reset_states``, layer
configs for saving). The Keras training methods (``compile``/``fit``/``evaluate``/``predict``/``save``)
are thin delegations to :mod:`padless.train`.

Does not own: the training loop, losses or files (``padless.train``).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError, DataError
from padless.nn.layers import (
    Dense,
    Dropout,
    Embedding,
    GaussianNoise,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    Masking,
    Normalization,
)
from padless.nn.recurrent import GRU, LSTM, Bidirectional, Recurrent, SimpleRNN, from_batch, to_batch

__all__ = ["Sequential", "layer_config", "layer_from_config", "LAYER_CLASSES"]

LAYER_CLASSES: dict[str, type[nn.Module]] = {
    c.__name__: c for c in (LSTM, GRU, SimpleRNN, Bidirectional, Dense, Dropout, GaussianNoise, Masking, Embedding, Normalization,
                            GlobalAveragePooling1D, GlobalMaxPooling1D)
}


def layer_config(layer: nn.Module) -> dict[str, Any]:
    """A JSON-able description of a layer (enough to rebuild it, weights aside)."""
    name = type(layer).__name__
    if isinstance(layer, Recurrent):
        cfg: dict[str, Any] = dict(
            units=layer.units, return_sequences=layer.return_sequences, return_state=layer.return_state,
            stateful=layer.stateful, dropout=layer.dropout, go_backwards=layer.go_backwards,
            input_size=layer.input_size, batch_size=layer.batch_size, name=layer.name,
        )
    elif isinstance(layer, Bidirectional):
        cfg = dict(layer=layer_config(layer.forward_layer), merge_mode=layer.merge_mode, name=layer.name)
    elif isinstance(layer, Dense):
        cfg = dict(units=layer.units, activation=layer.activation, use_bias=layer.use_bias,
                   input_size=layer.input_size, name=layer.name)
    elif isinstance(layer, Dropout):
        cfg = dict(rate=layer.rate, name=layer.name)
    elif isinstance(layer, (GlobalAveragePooling1D, GlobalMaxPooling1D)):
        cfg = dict(name=layer.name)
    elif isinstance(layer, GaussianNoise):
        cfg = dict(stddev=layer.stddev, name=layer.name)
    elif isinstance(layer, Masking):
        cfg = dict(mask_value=layer.mask_value, name=layer.name)
    elif isinstance(layer, Normalization):
        cfg = dict(input_size=layer.input_size, epsilon=layer.epsilon, name=layer.name)
    elif isinstance(layer, Embedding):
        cfg = dict(input_dim=layer.input_dim, output_dim=layer.output_dim, mask_zero=layer.mask_zero, name=layer.name)
    else:
        raise ConfigError(
            f"layer {type(layer).__name__} cannot be saved: only padless layers have a config "
            f"({', '.join(LAYER_CLASSES)})"
        )
    return {"class_name": name, "config": cfg}


def layer_from_config(d: dict[str, Any]) -> nn.Module:
    """Inverse of :func:`layer_config`."""
    try:
        cls = LAYER_CLASSES[d["class_name"]]
        cfg = dict(d["config"])
    except (KeyError, TypeError) as e:
        raise ConfigError(f"not a padless layer config: {d!r}") from e
    if cls is Bidirectional:
        inner = layer_from_config(cfg.pop("layer"))
        return Bidirectional(inner, **cfg)  # type: ignore[arg-type]
    return cls(**cfg)


class Sequential(nn.Module):
    """A linear stack of layers (Keras ``Sequential``), also a plain ``nn.Module``.

    Args:
        layers: initial layers (more with :meth:`add`).
        name: optional model name.

    Example:
        >>> import numpy as np
        >>> from padless.layers import LSTM, Dense
        >>> model = Sequential([LSTM(8, input_shape=(None, 3)), Dense(2, activation="softmax")])
        >>> model.count_params()
        434
        >>> x = [np.random.rand(t, 3).astype("float32") for t in (5, 9, 2)]
        >>> model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        >>> model.predict(x, verbose=0).shape
        (3, 2)
    """

    def __init__(self, layers: Iterable[nn.Module] | None = None, name: str | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self.name = name or "sequential"
        self.compiled: Any = None
        self.stop_training = False
        self.history: Any = None
        self.merge_cost: float | str = "auto"
        self.preprocessing: dict[str, Any] = {}
        for layer in layers or []:
            self.add(layer)

    # ------------------------------------------------------------------ building
    def add(self, layer: nn.Module) -> None:
        """Append a layer; if the model is already built, build the new layer too."""
        if not isinstance(layer, nn.Module):
            raise ConfigError(f"Sequential.add takes a layer; got {type(layer).__name__}")
        if self.layers and isinstance(layer, Masking):
            raise ConfigError("Masking must be the first layer")
        prev_out = self._output_size_so_far()
        self.layers.append(layer)
        self._share_batch_size()
        if prev_out is not None and hasattr(layer, "build"):
            layer.build(prev_out)

    def _share_batch_size(self) -> None:
        """Keras: the first layer's batch_input_shape fixes the batch size of every stateful layer."""
        bs = next((m.batch_size for m in self.layers if getattr(m, "batch_size", None)), None)
        for m in self.layers:
            if getattr(m, "stateful", False) and m.batch_size is None:
                m.batch_size = bs

    def _output_size_so_far(self) -> int | None:
        size = self.input_size
        if size is None:
            return None
        for layer in self.layers:
            size = layer.build(size)  # type: ignore[operator]
        return size

    @property
    def input_size(self) -> int | None:
        """Number of input features per step, once known."""
        if not self.layers:
            return None
        first = self.layers[0]
        if isinstance(first, Embedding):
            return 1
        return getattr(first, "input_size", None)

    @property
    def built(self) -> bool:
        return self.input_size is not None and self._output_size_so_far() is not None

    def build(self, input_size: int) -> int:
        """Create every layer's weights for ``input_size`` features per step; return the output size."""
        if not self.layers:
            raise ConfigError("the model has no layers: add some with model.add(...)")
        if self.input_size is not None and self.input_size != input_size:
            raise DataError(
                f"the model expects {self.input_size} features per step; the data has {input_size}. "
                "Check the input_shape of the first layer or the data's last axis."
            )
        size = input_size
        for layer in self.layers:
            size = layer.build(size)  # type: ignore[operator]
        return size

    @property
    def output_size(self) -> int:
        size = self._output_size_so_far()
        if size is None:
            raise ConfigError("the model is not built yet: give input_shape=(None, F) or call fit/build first")
        return size

    @property
    def returns_sequences(self) -> bool:
        """True when the model's output is one vector per step (a per-step head)."""
        seq = True
        for layer in self.layers:
            if isinstance(layer, (Recurrent, Bidirectional, GlobalAveragePooling1D, GlobalMaxPooling1D)):
                seq = layer.return_sequences
        return seq

    @property
    def masking(self) -> Masking | Embedding | None:
        first = self.layers[0] if self.layers else None
        if isinstance(first, Masking) or (isinstance(first, Embedding) and first.mask_zero):
            return first
        return None

    @property
    def recurrent_layers(self) -> list[nn.Module]:
        return [m for m in self.layers if isinstance(m, (Recurrent, Bidirectional))]

    @property
    def stateful(self) -> bool:
        return any(getattr(m, "stateful", False) for m in self.layers)

    @property
    def stateful_batch_size(self) -> int | None:
        for m in self.layers:
            if getattr(m, "stateful", False):
                return m.batch_size  # type: ignore[union-attr]
        return None

    @property
    def needs_exact_states(self) -> bool:
        return any(getattr(m, "needs_exact_states", False) for m in self.layers)

    # ------------------------------------------------------------------ running
    def run(self, batch: RaggedBatch, logits: bool = False) -> RaggedBatch | torch.Tensor:
        """Forward pass over a laid-out batch.

        Returns:
            (B, out) per-row outputs in the batch's *sorted* row order, or a RaggedBatch of per-step
            outputs. With ``logits=True`` a final ``Dense`` layer's activation is left out.
        """
        return self.run_states(batch, logits)[0]

    def run_states(
        self,
        batch: RaggedBatch,
        logits: bool = False,
        initial_states: Sequence[Sequence[torch.Tensor] | None] | None = None,
        want_states: bool = False,
    ) -> tuple[RaggedBatch | torch.Tensor, list[Any]]:
        """:meth:`run` with explicit recurrent state.

        Args:
            batch: the laid-out batch.
            logits: leave out a final Dense layer's activation.
            initial_states: one entry per recurrent layer (None = zeros): a sequence of tensors, each
                (B, H) or (1, B, H), rows in *batch* order.
            want_states: return every recurrent layer's final states (each (1, B, H), *sorted* rows).

        Returns:
            ``(output, states)``; ``states`` is empty unless ``want_states``.
        """
        x: RaggedBatch | torch.Tensor = batch
        last = len(self.layers) - 1
        states: list[Any] = []
        r = 0
        for i, layer in enumerate(self.layers):
            if isinstance(layer, (Recurrent, Bidirectional)):
                if not isinstance(x, RaggedBatch):
                    raise ConfigError(
                        f"layer {i} ({layer.describe()}) needs sequences but the layer before returns one "
                        "vector per sequence: set return_sequences=True on the recurrent layer before it"
                    )
                init = initial_states[r] if initial_states is not None else None
                res = layer.run(x, init, want_states)
                if want_states:
                    states.append(res.states)
                r += 1
                x = res.seq if layer.return_sequences else res.last
            elif logits and i == last and isinstance(layer, Dense):
                x = layer.logits(x)
            else:
                x = layer(x)
        return x, states

    def forward(self, x: Any) -> Any:
        """PyTorch call on a PackedSequence, (padded, lengths), a (B, T, F) tensor or a list of tensors.

        Returns per-row outputs (B, out) in input order, or per-step outputs of the input's kind.
        """
        batch, kind = to_batch(x)
        out = self.run(batch)
        if isinstance(out, RaggedBatch):
            return from_batch(out, kind)
        return batch.unsort(out)

    # ------------------------------------------------------------------ Keras API
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Sequence[Any] | None = None,
                device: str | torch.device = "auto", **optimizer_kwargs: Any) -> None:
        """Configure training. See :func:`padless.train.compile.compile_model`."""
        from padless.train.compile import compile_model

        compile_model(self, optimizer=optimizer, loss=loss, metrics=metrics, device=device, **optimizer_kwargs)

    def fit(self, x: Any, y: Any = None, **kwargs: Any) -> Any:
        """Train. See :func:`padless.train.loop.fit` for the arguments."""
        from padless.train.loop import fit

        return fit(self, x, y, **kwargs)

    def evaluate(self, x: Any, y: Any = None, **kwargs: Any) -> Any:
        """Loss and metrics. See :func:`padless.train.loop.evaluate`."""
        from padless.train.loop import evaluate

        return evaluate(self, x, y, **kwargs)

    def predict(self, x: Any, **kwargs: Any) -> Any:
        """Outputs in input order. See :func:`padless.train.loop.predict`."""
        from padless.train.loop import predict

        return predict(self, x, **kwargs)

    def save(self, path: str, **kwargs: Any) -> None:
        """Write config + weights (safetensors) atomically. Load with :func:`padless.load_model`."""
        from padless.train.saving import save_model

        save_model(self, path, **kwargs)

    def export(self, path: Any, streaming: bool = False, **kwargs: Any) -> Any:
        """Write an ONNX graph (inputs ``x`` (B, T, F) and ``lengths`` (B,)). See :func:`padless.export.export_onnx`."""
        from padless.export import export_onnx

        return export_onnx(self, path, streaming=streaming, **kwargs)

    def reset_states(self, rows: Sequence[int] | np.ndarray | torch.Tensor | None = None) -> None:
        """Reset the carried state of every stateful layer: all rows, or only ``rows`` (indices or mask)."""
        for m in self.layers:
            if isinstance(m, (Recurrent, Bidirectional)):
                m.reset_states(rows)

    reset_state = reset_states  # Keras 3 spelling

    def count_params(self) -> int:
        """Number of weights. PyTorch/cuDNN keep two bias vectors per gate, so an LSTM(100) on 100 inputs
        has 80,800 parameters where Keras counts 80,400."""
        if not self.built:
            raise ConfigError("the model is not built yet: give input_shape=(None, F) or call fit/build first")
        return sum(p.numel() for p in self.parameters())

    def summary(self, print_fn: Any = print) -> str:
        """Print (and return) a per-layer table: output shape and parameter count."""
        rows = []
        size = self.input_size
        seq = True
        for layer in self.layers:
            if size is not None:
                size = layer.build(size)  # type: ignore[operator]
            if isinstance(layer, (Recurrent, Bidirectional, GlobalAveragePooling1D, GlobalMaxPooling1D)):
                seq = layer.return_sequences
            shape = f"(None, {'None, ' if seq else ''}{size if size is not None else '?'})"
            n = sum(p.numel() for p in layer.parameters())
            desc = getattr(layer, "describe", lambda: type(layer).__name__)()
            rows.append((desc, shape, n))
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
        return {"name": self.name, "layers": [layer_config(m) for m in self.layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Sequential":
        try:
            layers = [layer_from_config(d) for d in config["layers"]]
        except (KeyError, TypeError) as e:
            raise ConfigError(f"not a padless model config: {e}") from e
        return cls(layers, name=config.get("name"))
