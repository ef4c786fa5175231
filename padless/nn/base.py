"""The layer contract: what every padless layer says about itself, and how layers are saved and rebuilt.

Owns: :class:`Layer` (the base class: Keras constructor keywords, building, output size, whether the
output is one vector per step, causality, recurrent state, config and ONNX export hooks), the layer
registry (every subclass registers itself under its class name, so a user's own layer is saved, loaded
and exported without editing padless), :func:`serialize_layer` / :func:`deserialize_layer`, and
:class:`OnnxValue` (what flows between layers' ONNX emitters).

A layer receives either a :class:`~padless.data.collate.RaggedBatch` (one vector per real step, in the
engine's layout) or a ``(B, F)`` tensor (one vector per sequence, rows in the batch's sorted order) and
returns one of the two. Nothing here knows about training, files or ONNX itself.

Does not own: the layers (:mod:`padless.nn.core`, :mod:`padless.nn.recurrent`, ...), composing them
(:mod:`padless.nn.graph`), writing files (``padless.train.saving``) or ONNX graphs (``padless.export``).

Example:
    >>> import torch
    >>> class Scale(Layer):
    ...     def __init__(self, factor: float = 2.0, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.factor = factor
    ...     def forward(self, x):
    ...         return map_values(x, lambda t: t * self.factor)
    >>> layer = deserialize_layer(serialize_layer(Scale(3.0, name="triple")))
    >>> layer.factor, layer.name, layer(torch.ones(1, 2)).tolist()
    (3.0, 'triple', [[3.0, 3.0]])
"""

from __future__ import annotations

import difflib
import inspect
import json
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError, DataError

__all__ = ["Layer", "OnnxValue", "serialize_layer", "deserialize_layer", "registered_layers", "map_values",
           "State", "KERAS_COMMON"]

State = tuple[torch.Tensor, ...]  # a recurrent layer's state, each (1, B, H)

KERAS_COMMON = ("name", "input_shape", "batch_input_shape", "batch_size", "input_dim", "input_size", "dtype",
                "trainable")
"""Constructor keywords every layer accepts (Keras' common layer arguments, plus ``input_size``)."""

_REGISTRY: dict[str, type["Layer"]] = {}


def map_values(x: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """Apply ``fn`` to every position of a RaggedBatch (same layout) or to a plain tensor."""
    if isinstance(x, RaggedBatch):
        return x.with_data(fn(x.data))
    return fn(x)


@dataclass(frozen=True)
class OnnxValue:
    """A value in an ONNX graph under construction.

    Attributes:
        name: the graph value's name.
        seq: True for (T, B, F) per-step values, False for (B, F) per-sequence values.
        size: the feature count F.
    """

    name: str
    seq: bool
    size: int


def registered_layers() -> dict[str, type["Layer"]]:
    """Every layer class known by name (padless' and the user's own), for rebuilding saved configs."""
    return dict(_REGISTRY)


class Layer(nn.Module):
    """Base of every padless layer; subclass it for your own (it registers itself by class name).

    A subclass implements ``forward`` (on a RaggedBatch and/or a (B, F) tensor) and, when it has weights,
    :meth:`make_weights`; it overrides :attr:`output_size` when it changes the feature count and
    :meth:`sequence_out` when it turns sequences into vectors. The config is read from the constructor's
    signature (an attribute of the same name per argument), so most layers need no ``get_config``.

    Keras keywords accepted by every layer: ``name``, ``input_shape=(None, F)``,
    ``batch_input_shape=(B, None, F)``, ``batch_size``, ``input_dim=F``, ``input_size=F``, ``dtype``
    (``"float32"``), ``trainable``.

    Attributes:
        requires_sequences: the layer reads one vector per step (a RaggedBatch), not per sequence.
        causal: each output depends only on the current and earlier steps (streaming and truncated BPTT
            are possible).
        token_input: as a first layer, the inputs are integer tokens, one per step (``Embedding``).
        multi_input: the layer takes a list of branches (merge layers of the functional API).
        stateful: carries state from batch to batch (Keras ``stateful=True``).
    """

    requires_sequences: ClassVar[bool] = False
    causal: ClassVar[bool] = True
    token_input: ClassVar[bool] = False
    multi_input: ClassVar[bool] = False
    stateful: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _REGISTRY[cls.__name__] = cls

    def __init__(self, *, name: str | None = None, input_shape: Sequence[int | None] | None = None,
                 batch_input_shape: Sequence[int | None] | None = None, batch_size: int | None = None,
                 input_dim: int | None = None, input_size: int | None = None, dtype: Any = None,
                 trainable: bool = True, **unknown: Any) -> None:
        super().__init__()
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(f"{type(self).__name__} does not take the argument {key!r}"
                              f"{_keras_hint(type(self), key)}")
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"{type(self).__name__}: name must be a string; got {name!r}")
        if dtype not in (None, "float32", torch.float32):
            raise ConfigError(f"{type(self).__name__}: dtype {dtype!r} is not supported; padless layers compute in "
                              "float32 (leave dtype out or pass 'float32')")
        self.name = name
        self.trainable = bool(trainable)
        if batch_input_shape is not None:
            batch_size = batch_size or batch_input_shape[0]
            input_shape = tuple(batch_input_shape[1:])
        size = input_size if input_size is not None else input_dim
        if input_shape is not None:
            shape = tuple(input_shape)
            if len(shape) not in (1, 2):
                raise ConfigError(f"{type(self).__name__}: input_shape must be (timesteps, features), e.g. (None, 100); "
                                  f"got {input_shape}")
            size = size or (shape[-1] if len(shape) == 2 or not self.token_input else 1)
        self.batch_size: int | None = int(batch_size) if batch_size else None
        self.input_size: int | None = None
        self.declared_input_size = int(size) if size is not None else None

    # ------------------------------------------------------------------ building
    def finish_init(self) -> None:
        """Build now when the input size is already known (subclasses call this at the end of ``__init__``)."""
        if self.declared_input_size is not None and self.input_size is None:
            self.build(self.declared_input_size)

    def make_weights(self, input_size: int) -> None:
        """Create the weights for ``input_size`` features per step (override; default: no weights)."""

    def build(self, input_size: int) -> int:
        """Create the weights once; return the output feature count.

        Raises:
            DataError: the layer was built for another input size.
        """
        if self.input_size is not None:
            if int(input_size) != self.input_size:
                raise DataError(f"layer {self.describe()} was built for {self.input_size} input features; "
                                f"received {input_size}")
            return self.output_size
        self.make_weights(int(input_size))
        self.input_size = int(input_size)
        if not self.trainable:
            for p in self.parameters():
                p.requires_grad_(False)
        return self.output_size

    @property
    def built(self) -> bool:
        return self.input_size is not None

    @property
    def output_size(self) -> int:
        """Features per output step (or per sequence). Default: the input size (shape-preserving)."""
        if self.input_size is None:
            raise ConfigError(f"layer {self.describe()} is not built yet: its input size is unknown")
        return self.input_size

    def sequence_out(self, sequence_in: bool) -> bool:
        """Whether the output is one vector per step, given that the input is (default: unchanged)."""
        return sequence_in

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Sizes of the recurrent state tensors (``()`` for layers without state)."""
        return ()

    @property
    def needs_exact_states(self) -> bool:
        """True when the layer needs every row's exact final state (return_state, stateful)."""
        return False

    @property
    def input_mask_value(self) -> float | None:
        """For a first layer: the value that marks padded steps of dense input (Keras Masking / mask_zero)."""
        return None

    def describe(self) -> str:
        """The layer's name, or its class name."""
        return self.name or type(self).__name__

    def noncausal_reason(self) -> str:
        """Why this layer's output needs later steps (for errors of streaming and truncated BPTT)."""
        return "its output needs the whole sequence"

    def weight_penalty(self) -> torch.Tensor | None:
        """The layer's regularization loss (Keras' kernel/bias/activity regularizers), or None."""
        return None

    def apply_constraints(self) -> None:
        """Project the weights onto their constraints (Keras' ``*_constraint``; called after optimizer steps)."""

    def lengths_key(self) -> Any:
        """How the layer changes sequence lengths (hashable; None: it keeps every length). Two per-step
        branches of a functional model may be merged only when the same changes happened on both."""
        return None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        first = args[0] if args else None
        if hasattr(first, "apply_layer"):  # a symbolic input of the functional API (padless.Input)
            return first.apply_layer(self, [first], **kwargs)
        if isinstance(first, (list, tuple)) and first and all(hasattr(t, "apply_layer") for t in first):
            return first[0].apply_layer(self, list(first), **kwargs)
        return super().__call__(*args, **kwargs)

    def reset_states(self, rows: Any = None) -> None:
        """Forget carried state (layers without state: nothing to do)."""

    def reset_state(self, rows: Any = None) -> None:
        """Keras 3 spelling of :meth:`reset_states`."""
        self.reset_states(rows)

    # ------------------------------------------------------------------ running
    def call_with_state(self, x: Any, initial_state: Sequence[torch.Tensor] | None = None,
                        want_state: bool = False) -> tuple[Any, State | None]:
        """Run on ``x``; recurrent layers also take and return state (sorted rows). Default: ``(self(x), None)``."""
        return self(x), None

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (weights aside), JSON-able.

        Default: one entry per named constructor parameter, read from the attribute of the same name,
        plus ``name`` and ``input_size``.
        """
        cfg: dict[str, Any] = {}
        for pname, p in inspect.signature(type(self).__init__).parameters.items():
            if pname == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or pname in KERAS_COMMON:
                continue
            if not hasattr(self, pname):
                raise ConfigError(f"layer {self.describe()} ({type(self).__name__}) cannot describe itself: its "
                                  f"constructor takes {pname!r} but it keeps no attribute of that name; store it as "
                                  f"self.{pname} or override get_config()")
            cfg[pname] = getattr(self, pname)
        cfg["name"] = self.name
        if self.input_size is not None:
            cfg["input_size"] = self.input_size
        if not self.trainable:
            cfg["trainable"] = False
        return cfg

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Layer":
        """Inverse of :meth:`get_config`."""
        return cls(**dict(config))

    # ------------------------------------------------------------------ export
    def to_onnx(self, g: Any, x: OnnxValue) -> OnnxValue:
        """Emit this layer into an ONNX graph under construction (see ``padless.export``).

        ``g`` offers ``op(type, inputs, hint, **attrs)``, ``const(hint, array)``, ``mask`` ((T, B, 1) bool
        of real steps), ``lengths`` and ``streaming``. Override to make a layer exportable.

        Raises:
            ConfigError: this layer cannot be exported.
        """
        raise ConfigError(f"{self.describe()} cannot be exported to ONNX: {type(self).__name__} defines no "
                          "to_onnx(g, x) emitter")

    def extra_repr(self) -> str:
        try:
            return ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k not in ("name",))
        except ConfigError:
            return ""


def _keras_hint(cls: type, key: str) -> str:
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
    params = sorted(set(params) | set(KERAS_COMMON))
    close = difflib.get_close_matches(key, params, n=2)
    if close:
        return f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return f"; it takes: {', '.join(params)}"


def serialize_layer(layer: nn.Module) -> dict[str, Any]:
    """``{"class_name", "config"}`` of a layer, checked to be JSON-able.

    Raises:
        ConfigError: not a padless :class:`Layer`, or a config value that cannot be stored as JSON.
    """
    if not isinstance(layer, Layer):
        raise ConfigError(f"{type(layer).__name__} cannot be saved: it is not a padless layer (subclass "
                          "padless.nn.Layer to make your own layer savable)")
    cfg = layer.get_config()
    for k, v in cfg.items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            raise ConfigError(f"layer {layer.describe()} ({type(layer).__name__}): config value {k}={v!r} cannot be "
                              "stored as JSON; pass it by name (a string) or override get_config()") from None
    return {"class_name": type(layer).__name__, "config": cfg}


def deserialize_layer(d: Mapping[str, Any]) -> Layer:
    """Inverse of :func:`serialize_layer`.

    Raises:
        ConfigError: not a layer config, or a class that is not registered (import or define it first).
    """
    try:
        name, cfg = d["class_name"], dict(d["config"])
    except (KeyError, TypeError) as e:
        raise ConfigError(f"not a padless layer config: {d!r}") from e
    cls = _REGISTRY.get(str(name))
    if cls is None:
        raise ConfigError(f"unknown layer class {name!r} in the saved config: define or import it before loading "
                          "(a subclass of padless.nn.Layer registers itself under its class name)")
    try:
        return cls.from_config(cfg)
    except TypeError as e:
        raise ConfigError(f"the saved config of layer {name!r} does not fit its class: {e}") from None
