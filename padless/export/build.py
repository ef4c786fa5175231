"""ONNX export of a model graph, with the sequence lengths as an explicit input.

Owns: :func:`export_onnx` (a :class:`padless.nn.Graph` -> one ``.onnx`` file, written with
``onnx.helper``), :data:`DEFAULT_OPSET` and :data:`ONNX_FORMAT`. The graph takes a right-padded batch
``x`` (B, T, F) *and* ``lengths`` (B,), both with dynamic sizes. Padding is zeroed on entry and never
reaches a real output; each layer emits its own nodes (``Layer.to_onnx``: recurrent layers are ONNX
``LSTM``/``GRU``/``RNN`` nodes with ``sequence_lens``, so each row's final state is taken at its own last
step, and a backward direction reverses each row within its true length). Outputs are what ``predict``
returns: ``y`` (B, out) per sequence, or (B, T, out) with the padded steps zeroed. With ``streaming=True``
the graph also takes and returns the state of every recurrent layer (``state_h_<k>``/``state_c_<k>``).

Does not own: the layers' nodes (each layer's ``to_onnx``), the builder (:mod:`padless.export.graph`),
running exported files (:mod:`padless.export.runtime`). ``onnx`` is an optional dependency
(``pip install padless[export]``).

Example:
    >>> import os, tempfile
    >>> from padless.nn import LSTM, Dense, LayerStack
    >>> m = LayerStack([LSTM(4, input_size=3), Dense(2, activation="softmax")])
    >>> export_onnx(m, os.path.join(tempfile.mkdtemp(), "m.onnx")).suffix
    '.onnx'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from padless.errors import ConfigError, PadlessError
from padless.export.graph import OnnxGraph, require
from padless.io import VERSION, atomic_write_bytes
from padless.nn.base import Layer, OnnxValue
from padless.nn.graph import Graph

__all__ = ["export_onnx", "DEFAULT_OPSET", "ONNX_FORMAT"]

DEFAULT_OPSET = 17
"""Opset of exported graphs (onnxruntime 1.12 and newer run it; so do most other runtimes)."""

ONNX_FORMAT = "padless.onnx.v1"


def _describe(i: int, layer: Any) -> str:
    return f"layer {i} ({layer.describe()})"


def _check_streamable(model: Graph) -> None:
    for i, layer in enumerate(model.all_layers):
        if not layer.causal:
            raise ConfigError(f"{_describe(i, layer)} cannot stream: {layer.noncausal_reason()}. Export without "
                              "streaming=True, or use a model of causal (unidirectional) layers")


_COMPUTE = ("forward", "run", "call_with_state", "make_weights", "logits")


def _check_emitter(i: int, layer: Any) -> None:
    """Refuse a subclass that changes how a layer computes without giving its own ONNX emitter."""
    mro = type(layer).__mro__
    owner = next(c for c in mro if "to_onnx" in vars(c))
    if owner is Layer:
        return  # no emitter at all: to_onnx says so
    for c in mro[: mro.index(owner)]:
        changed = [n for n in _COMPUTE if n in vars(c)]
        if changed:
            raise ConfigError(f"{_describe(i, layer)} cannot be exported to ONNX: {c.__name__} changes "
                              f"{changed[0]}() but keeps {owner.__name__}'s to_onnx(); define to_onnx(g, x) for it")


def _emit(model: Graph, g: OnnxGraph) -> OnnxValue:
    """Inputs, the step mask, every layer's nodes; returns the model's output value."""
    TP = g.onnx.TensorProto
    F = model.input_size
    g.inputs += [g.h.make_tensor_value_info("x", TP.FLOAT, ["batch", "time", int(F)]),  # type: ignore[arg-type]
                 g.h.make_tensor_value_info("lengths", TP.INT64, ["batch"])]
    ax0, ax1, ax2 = (g.const(f"ax{k}", [k], np.int64) for k in range(3))
    T = g.op("Squeeze", [g.op("Shape", ["x"], "T1", start=1, end=2), ax0], "T")
    steps = g.op("Range", [g.const("zero", 0, np.int64), T, g.const("one", 1, np.int64)], "steps")  # (T,)
    mask_tb = g.op("Less", [g.op("Unsqueeze", [steps, ax1]), g.op("Unsqueeze", ["lengths", ax0])], "mask_tb")
    g.mask = g.op("Unsqueeze", [mask_tb, ax2], "mask")  # (T, B, 1) True on real steps
    g.lens32 = g.op("Cast", ["lengths"], "lens32", to=TP.INT32)
    x = g.op("Transpose", ["x"], "x_tbf", perm=[1, 0, 2])  # (T, B, F)
    x = g.op("Where", [g.mask, x, g.const("fzero", 0.0)], "x_masked")  # padding can hold anything, even NaN
    value = OnnxValue(x, True, int(F))  # type: ignore[arg-type]

    def emit(i: int, layer: Any, v: Any) -> OnnxValue:
        _check_emitter(i, layer)
        try:
            return layer.to_onnx(g, v)  # type: ignore[no-any-return]
        except ConfigError as e:  # name the layer by position: "layer 2 (Scale) cannot be exported ..."
            msg, d = str(e), layer.describe()
            if msg.startswith(d):
                msg = _describe(i, layer) + msg[len(d):]
            elif not msg.startswith("layer "):
                msg = f"{_describe(i, layer)}: {msg}"
            raise ConfigError(msg) from None

    return model.emit_onnx(g, value, emit)  # type: ignore[no-any-return]


def export_onnx(model: Graph, path: str | os.PathLike[str], *, streaming: bool = False, opset: int = DEFAULT_OPSET,
                check: bool = True, preprocessing: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as an ONNX graph with inputs ``x`` (B, T, F) and ``lengths`` (B,).

    Args:
        model: a built model graph (e.g. ``padless.Sequential``).
        path: the ``.onnx`` file to write (atomically).
        streaming: also take and return each recurrent layer's state (``state_h_<k>``, ``state_c_<k>`` for
            an LSTM; each (B, H); outputs ``state_h_<k>_out``...) so a sequence can be fed in chunks.
            Models of causal layers only.
        opset: ONNX opset (17 or newer).
        check: run ``onnx.checker`` on the graph before writing it.
        preprocessing: stored in the metadata (class names travel with the graph).

    Returns:
        The path written.

    Raises:
        ConfigError: a layer that cannot be exported (named), an unbuilt model, a non-causal layer with
            ``streaming=True``, or ``onnx`` not installed.
    """
    onnx = require("onnx", "ONNX export")
    newest = int(onnx.defs.onnx_opset_version())
    if not 17 <= int(opset) <= newest:
        raise ConfigError(f"opset must be between 17 and {newest} (the newest this onnx package knows); got {opset}")
    if not isinstance(model, Graph):
        raise ConfigError(f"export_onnx takes a padless model; got {type(model).__name__}")
    if not model.all_layers:
        raise ConfigError("the model has no layers: nothing to export")
    if model.input_size is None or not model.built:
        raise ConfigError("the model is not built yet (no weights): train it or give input_shape before exporting")
    if streaming:
        _check_streamable(model)
    g = OnnxGraph(onnx, int(opset), bool(streaming))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            y = _emit(model, g)
    finally:
        model.train(was_training)
    h, TP = onnx.helper, onnx.TensorProto
    if y.seq and g.lengths != "lengths":  # per-step outputs no longer line up with the input's steps
        raise ConfigError("a per-step model whose layers change the sequence length (strides, padding='valid') "
                          "cannot be exported: end it with pooling or a recurrent layer, or keep the length")
    if y.seq:
        masked = g.op("Where", [g.mask, y.name, g.const("fzero", 0.0)], "y_masked")
        g.nodes.append(h.make_node("Transpose", [masked], ["y"], perm=[1, 0, 2], name=g.name("n_y")))
        outputs = [h.make_tensor_value_info("y", TP.FLOAT, ["batch", "time", int(y.size)])]
    else:
        g.nodes.append(h.make_node("Identity", [y.name], ["y"], name=g.name("n_y")))
        outputs = [h.make_tensor_value_info("y", TP.FLOAT, ["batch", int(y.size)])]
    graph = h.make_graph(g.nodes, str(getattr(model, "name", "padless")), g.inputs, outputs + g.extra_outputs,
                         initializer=g.inits)
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", int(opset))], producer_name="padless",
                         producer_version=VERSION,
                         doc_string="inputs: x (batch, time, features) right-padded, lengths (batch,) int64")
    # the oldest IR version that carries this opset (8 for 17), so older runtimes can read the file
    proto.ir_version = int(h.find_min_ir_version_for(list(proto.opset_import)))
    pre = dict(preprocessing if preprocessing is not None else getattr(model, "preprocessing", None) or {})
    meta = {
        "padless.format": ONNX_FORMAT,
        "padless.version": VERSION,
        "padless.config": json.dumps(model.get_config()),
        "padless.preprocessing": json.dumps(pre),
        "padless.classes": json.dumps(pre.get("classes")),
        "padless.returns_sequences": json.dumps(bool(model.returns_sequences)),
        "padless.streaming": json.dumps(bool(streaming)),
        "padless.states": json.dumps(g.state_names),
        "padless.num_features": json.dumps(int(model.input_size)),
        "padless.mask_value": json.dumps(model.input_mask_value),
    }
    h.set_model_props(proto, meta)
    if check:
        try:
            onnx.checker.check_model(proto, full_check=True)
        except Exception as e:  # onnx raises its own ValidationError types
            raise PadlessError(f"the exported graph failed the ONNX checker (a padless bug): {e}") from None
    atomic_write_bytes(path, proto.SerializeToString())
    return Path(path)
