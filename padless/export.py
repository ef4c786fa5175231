"""Deploying a trained model: ONNX export with the sequence lengths as an explicit input, and a runner.

Owns: :func:`export_onnx` (a :class:`~padless.nn.sequential.Sequential` -> one ``.onnx`` file, written
with ``onnx.helper``), :class:`OnnxModel` / :func:`load_onnx` (run an exported file in onnxruntime with
the same inputs and outputs as ``model.predict``) and :func:`check_export` (largest difference between
onnxruntime and ``predict``).

The graph takes a right-padded batch ``x`` (B, T, F) *and* ``lengths`` (B,), both with dynamic sizes.
Padding is zeroed on entry and never reaches a real output: every recurrent layer is an ONNX
``LSTM``/``GRU``/``RNN`` node with ``sequence_lens``, so each row's final state is taken at its own last
step; a backward direction (``Bidirectional``, ``go_backwards``) reverses each row within its true length
(``ReverseSequence``) and so starts at each true end. Outputs are what ``predict`` returns: ``y`` (B, out)
at each row's last step for a per-sequence model, or (B, T, out) with the padded steps zeroed for a
per-step model. ``Normalization`` statistics are constants of the graph; ``Dropout``, ``GaussianNoise``
and ``Masking`` are the identity (as at inference). With ``streaming=True`` the graph also takes and
returns the state of every recurrent layer (``state_h_<k>``/``state_c_<k>``, each (B, H)) so a device can
feed a sequence in chunks.

Does not own: the layers or the model (``padless.nn``), saving the padless format (``padless.train.saving``).
``onnx`` and ``onnxruntime`` are optional dependencies (``pip install padless[export]``), imported only here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from padless.errors import CheckpointError, ConfigError, DataError

__all__ = ["export_onnx", "load_onnx", "OnnxModel", "check_export", "DEFAULT_OPSET", "ONNX_FORMAT"]

DEFAULT_OPSET = 17
"""Opset of exported graphs (onnxruntime 1.12 and newer run it; so do most other runtimes)."""

ONNX_FORMAT = "padless.onnx.v1"


def _require(module: str, purpose: str) -> Any:
    """Import an optional dependency of the ``export`` extra, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(f"{purpose} needs {module}: pip install 'padless[export]' (or pip install {module})") from None


# ---------------------------------------------------------------------------------------------- graph
class _Graph:
    """A small builder over ``onnx.helper``: unique names, constants, nodes."""

    def __init__(self, onnx: Any, opset: int) -> None:
        self.onnx = onnx
        self.h = onnx.helper
        self.opset = opset
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0
        self._small: dict[tuple[str, tuple[int, ...], bytes], str] = {}

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, value: Any, dtype: Any = np.float32) -> str:
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if arr.size <= 4 and key in self._small:  # axes, 0, 1, ...: one initializer each
            return self._small[key]
        n = self.name(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(arr, n))
        if arr.size <= 4:
            self._small[key] = n
        return n

    def reduce(self, op_type: str, x: str, axis: int, hint: str) -> str:
        """ReduceSum/ReduceMax over one axis (axes became an input in opset 13/18)."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.const("axes", [axis], np.int64)], hint, keepdims=0)
        return self.op(op_type, [x], hint, axes=[axis], keepdims=0)

    def op(self, op_type: str, inputs: Sequence[str], hint: str | None = None, n_out: int = 1, **attrs: Any) -> Any:
        outs = [self.name(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op_type, list(inputs), outs, name=self.name("n_" + op_type), **attrs))
        return outs[0] if n_out == 1 else outs


class _Ctx:
    """Values every layer may need: the (T, B, 1) step mask, lengths in two dtypes."""

    def __init__(self, g: _Graph, lengths: str, mask: str, lens32: str) -> None:
        self.g, self.lengths, self.mask, self.lens32 = g, lengths, mask, lens32


def _torch_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


def _rnn_weights(rnn: nn.RNNBase) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """ONNX op type and (W, R, B) with one direction axis, gates reordered for ONNX."""
    H = rnn.hidden_size
    w, r = _torch_np(rnn.weight_ih_l0), _torch_np(rnn.weight_hh_l0)
    if rnn.bias:
        bw, br = _torch_np(rnn.bias_ih_l0), _torch_np(rnn.bias_hh_l0)
    else:  # pragma: no cover - padless layers always have biases
        bw, br = np.zeros(w.shape[0], np.float32), np.zeros(w.shape[0], np.float32)
    if isinstance(rnn, nn.LSTM):
        op, order = "LSTM", [0, 3, 1, 2]  # torch i,f,g,o -> ONNX i,o,f,c
    elif isinstance(rnn, nn.GRU):
        op, order = "GRU", [1, 0, 2]  # torch r,z,n -> ONNX z,r,h
    else:
        op, order = "RNN", [0]

    def reorder(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[k * H : (k + 1) * H] for k in order], 0)

    return op, reorder(w)[None], reorder(r)[None], np.concatenate([reorder(bw), reorder(br)])[None]


def _run_direction(ctx: _Ctx, layer: Any, x: str, init: Sequence[str] | None, prefix: str) -> tuple[str, list[str]]:
    """One recurrent layer, one direction, on a (T, B, F) input.

    Returns:
        ``(seq, states)``: seq (T, B, H) in the layer's own order (reversed within each row's length for
        ``go_backwards``, as padless returns it); states [h] or [h, c], each (B, H) at each row's last step.
    """
    g = ctx.g
    rnn = layer.rnn
    if rnn is None:
        raise ConfigError(f"layer {layer.describe()} has no weights yet: build or train the model before exporting")
    op, W, R, B = _rnn_weights(rnn)
    if isinstance(rnn, nn.RNN) and rnn.nonlinearity != "tanh":  # pragma: no cover - padless uses tanh
        raise ConfigError(f"layer {layer.describe()}: only tanh SimpleRNN layers can be exported")
    if layer.go_backwards:
        x = g.op("ReverseSequence", [x, ctx.lengths], "rev_in", batch_axis=1, time_axis=0)
    inputs = [x, g.const(f"{prefix}_W", W), g.const(f"{prefix}_R", R), g.const(f"{prefix}_B", B), ctx.lens32]
    n_states = 2 if op == "LSTM" else 1
    if init is not None:
        inputs += [g.op("Unsqueeze", [s, g.const("ax0", [0], np.int64)], "init") for s in init]
    attrs: dict[str, Any] = {"hidden_size": int(rnn.hidden_size)}
    if op == "GRU":
        attrs["linear_before_reset"] = 1  # PyTorch's GRU (Keras reset_after=True)
    if op == "RNN":
        attrs["activations"] = ["Tanh"]
    outs = g.op(op, inputs, prefix, n_out=1 + n_states, **attrs)
    ax0, ax1 = g.const("ax0", [0], np.int64), g.const("ax1", [1], np.int64)
    seq = g.op("Squeeze", [outs[0], ax1], f"{prefix}_y")  # (T, 1, B, H) -> (T, B, H)
    states = [g.op("Squeeze", [s, ax0], f"{prefix}_state") for s in outs[1:]]  # (1, B, H) -> (B, H)
    if init is not None:
        # a row with no step in this chunk keeps its state (whatever the runtime does with length 0)
        has = g.op("Unsqueeze", [g.op("Greater", [ctx.lengths, g.const("zero", 0, np.int64)]), ax1], "has_steps")
        states = [g.op("Where", [has, s, i], f"{prefix}_kept") for s, i in zip(states, init)]
    return seq, states


def _merge(g: _Graph, mode: str, a: str, b: str) -> str:
    if mode == "concat":
        return g.op("Concat", [a, b], "concat", axis=-1)
    if mode == "sum":
        return g.op("Add", [a, b], "sum")
    if mode == "mul":
        return g.op("Mul", [a, b], "mul")
    return g.op("Div", [g.op("Add", [a, b]), g.const("two", 2.0)], "ave")


def _activation(g: _Graph, name: str | None, x: str, where: str) -> str:
    key = "linear" if name is None else name
    if key == "linear":
        return x
    if key == "softmax":
        return g.op("Softmax", [x], "softmax", axis=-1)
    if key == "log_softmax":
        return g.op("LogSoftmax", [x], "log_softmax", axis=-1)
    simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "elu": "Elu", "selu": "Selu"}
    if key in simple:
        return g.op(simple[key], [x], key)
    if key in ("swish", "silu"):
        return g.op("Mul", [x, g.op("Sigmoid", [x])], "silu")
    if key == "gelu":  # exact erf form, as torch.nn.functional.gelu
        half = g.op("Mul", [x, g.const("half", 0.5)])
        erf = g.op("Erf", [g.op("Mul", [x, g.const("inv_sqrt2", 1.0 / np.sqrt(2.0))])])
        return g.op("Mul", [half, g.op("Add", [erf, g.const("one", 1.0)])], "gelu")
    if key == "softplus":  # torch: linear above 20, log1p(exp(x)) below
        soft = g.op("Log", [g.op("Add", [g.op("Exp", [x]), g.const("one", 1.0)])])
        return g.op("Where", [g.op("Greater", [x, g.const("twenty", 20.0)]), x, soft], "softplus")
    raise ConfigError(f"{where}: activation {name!r} cannot be exported to ONNX")


def _describe(i: int, layer: nn.Module) -> str:
    d = getattr(layer, "describe", None)
    return f"layer {i} ({d() if callable(d) else type(layer).__name__})"


def _build_graph(model: Any, streaming: bool, onnx: Any, opset: int) -> tuple[_Graph, list[Any], list[Any], list[str]]:
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
    from padless.nn.recurrent import GRU, LSTM, Bidirectional, Recurrent, SimpleRNN

    TP = onnx.TensorProto
    h = onnx.helper
    g = _Graph(onnx, opset)
    supported = "LSTM, GRU, SimpleRNN, Bidirectional, Dense, Dropout, GaussianNoise, Masking, Normalization, " \
                "GlobalAveragePooling1D, GlobalMaxPooling1D"
    # check every layer first, so the error names the first one that cannot be exported
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Embedding):
            raise ConfigError(
                f"{_describe(i, layer)} cannot be exported to ONNX: token (Embedding) models are not supported yet. "
                f"Exportable layers: {supported}"
            )
        # exact classes only: a user subclass may change what forward computes
        known = {LSTM, GRU, SimpleRNN, Recurrent, Bidirectional, Dense, Dropout, GaussianNoise, Masking,
                 Normalization, GlobalAveragePooling1D, GlobalMaxPooling1D}
        if type(layer) not in known:
            raise ConfigError(
                f"{_describe(i, layer)} cannot be exported to ONNX: {type(layer).__name__} is not a padless layer "
                f"with a known graph. Exportable layers: {supported}"
            )
        if isinstance(layer, Dense) and layer.activation not in _ACTS:
            raise ConfigError(f"{_describe(i, layer)}: activation {layer.activation!r} cannot be exported to ONNX")
        if streaming:
            if isinstance(layer, Bidirectional):
                raise ConfigError(
                    f"{_describe(i, layer)} cannot stream: its backward pass needs the whole sequence. "
                    "Export without streaming=True, or use a unidirectional model"
                )
            if isinstance(layer, Recurrent) and layer.go_backwards:
                raise ConfigError(
                    f"{_describe(i, layer)} reads sequences backwards (go_backwards=True) and cannot stream"
                )
            if isinstance(layer, (GlobalAveragePooling1D, GlobalMaxPooling1D)):
                raise ConfigError(
                    f"{_describe(i, layer)} pools over the whole sequence and cannot stream: export without "
                    "streaming=True"
                )

    if not len(model.layers):
        raise ConfigError("the model has no layers: nothing to export")
    F = model.input_size
    if F is None or not model.built:
        raise ConfigError("the model is not built yet (no weights): train it or give input_shape before exporting")
    inputs = [h.make_tensor_value_info("x", TP.FLOAT, ["batch", "time", int(F)]),
              h.make_tensor_value_info("lengths", TP.INT64, ["batch"])]
    outputs: list[Any] = []
    state_names: list[str] = []
    state_units: dict[str, int] = {}

    ax0, ax1, ax2 = (g.const(f"ax{k}", [k], np.int64) for k in range(3))
    T = g.op("Squeeze", [g.op("Shape", ["x"], "T1", start=1, end=2), ax0], "T")
    steps = g.op("Range", [g.const("zero", 0, np.int64), T, g.const("one", 1, np.int64)], "steps")  # (T,)
    mask_tb = g.op("Less", [g.op("Unsqueeze", [steps, ax1]), g.op("Unsqueeze", ["lengths", ax0])], "mask_tb")
    mask = g.op("Unsqueeze", [mask_tb, ax2], "mask")  # (T, B, 1) True on real steps
    ctx = _Ctx(g, "lengths", mask, g.op("Cast", ["lengths"], "lens32", to=TP.INT32))
    x = g.op("Transpose", ["x"], "x_tbf", perm=[1, 0, 2])  # (T, B, F)
    x = g.op("Where", [mask, x, g.const("fzero", 0.0)], "x_masked")  # padding can hold anything, even NaN
    seq = True
    size = int(F)
    r = 0
    for i, layer in enumerate(model.layers):
        where = _describe(i, layer)
        if isinstance(layer, (Recurrent, Bidirectional)):
            if not seq:
                raise ConfigError(f"{where} needs sequences but the layer before returns one vector per sequence")
            if isinstance(layer, Bidirectional):
                fw_seq, fw_st = _run_direction(ctx, layer.forward_layer, x, None, f"l{i}_fw")
                bw_seq, bw_st = _run_direction(ctx, layer.backward_layer, x, None, f"l{i}_bw")
                bw_seq = g.op("ReverseSequence", [bw_seq, "lengths"], "rev_out", batch_axis=1, time_axis=0)
                if layer.return_sequences:
                    x = _merge(g, layer.merge_mode, fw_seq, bw_seq)
                else:
                    x = _merge(g, layer.merge_mode, fw_st[0], bw_st[0])
                size = layer.output_size
            else:
                init = None
                if streaming:
                    kinds = ["h", "c"] if isinstance(layer.rnn, nn.LSTM) else ["h"]
                    init = [f"state_{k}_{r}" for k in kinds]
                    for n in init:
                        inputs.append(h.make_tensor_value_info(n, TP.FLOAT, ["batch", int(layer.units)]))
                        state_names.append(n)
                        state_units[n] = int(layer.units)
                out_seq, states = _run_direction(ctx, layer, x, init, f"l{i}_{type(layer).__name__.lower()}")
                if streaming and init is not None:
                    for n, s in zip(init, states):
                        g.nodes.append(h.make_node("Identity", [s], [n + "_out"], name=g.name("n_state_out")))
                x = out_seq if layer.return_sequences else states[0]
                size = layer.units
            seq = bool(layer.return_sequences)
            r += 1
        elif isinstance(layer, Dense):
            if layer.linear is None:
                raise ConfigError(f"{where} has no weights yet: build or train the model before exporting")
            W = _torch_np(layer.linear.weight).T  # (in, out)
            x = g.op("MatMul", [x, g.const(f"l{i}_dense_W", W)], f"l{i}_dense")
            if layer.linear.bias is not None:
                x = g.op("Add", [x, g.const(f"l{i}_dense_b", _torch_np(layer.linear.bias))], f"l{i}_dense_b")
            x = _activation(g, layer.activation, x, where)
            size = layer.units
        elif isinstance(layer, Normalization):
            if layer.input_size is None or layer.mean.numel() != size:
                raise ConfigError(f"{where} is not adapted/built for {size} features: call adapt() before exporting")
            scale = torch.rsqrt(layer.variance.detach().cpu().float() + layer.epsilon)  # the exact float32 factors
            x = g.op("Sub", [x, g.const(f"l{i}_mean", _torch_np(layer.mean))], "centred")
            x = g.op("Mul", [x, g.const(f"l{i}_scale", _torch_np(scale))], f"l{i}_normalized")
        elif isinstance(layer, (GlobalAveragePooling1D, GlobalMaxPooling1D)):
            if not seq:
                raise ConfigError(f"{where} pools sequences: put it after a layer with return_sequences=True")
            if isinstance(layer, GlobalAveragePooling1D):
                total = g.reduce("ReduceSum", g.op("Where", [mask, x, g.const("fzero", 0.0)]), 0, "pool_sum")
                lens = g.op("Unsqueeze", [g.op("Cast", ["lengths"], to=TP.FLOAT), ax1], "lens_f")
                x = g.op("Div", [total, lens], f"l{i}_avgpool")
            else:
                x = g.reduce("ReduceMax", g.op("Where", [mask, x, g.const("neg_inf", -np.inf)]), 0, f"l{i}_maxpool")
            seq = False
        # Dropout, GaussianNoise, Masking: identity at inference
    if seq:
        x = g.op("Where", [mask, x, g.const("fzero", 0.0)], "y_masked")
        g.nodes.append(h.make_node("Transpose", [x], ["y"], perm=[1, 0, 2], name=g.name("n_y")))
        outputs.append(h.make_tensor_value_info("y", TP.FLOAT, ["batch", "time", int(size)]))
    else:
        g.nodes.append(h.make_node("Identity", [x], ["y"], name=g.name("n_y")))
        outputs.append(h.make_tensor_value_info("y", TP.FLOAT, ["batch", int(size)]))
    for n in state_names:
        outputs.append(h.make_tensor_value_info(n + "_out", TP.FLOAT, ["batch", state_units[n]]))
    return g, inputs, outputs, state_names


_ACTS = {None, "linear", "softmax", "log_softmax", "sigmoid", "tanh", "relu", "elu", "selu", "swish", "silu",
         "gelu", "softplus"}


# ---------------------------------------------------------------------------------------------- export
def export_onnx(model: Any, path: str | os.PathLike[str], *, streaming: bool = False, opset: int = DEFAULT_OPSET,
                check: bool = True) -> Path:
    """Write ``model`` as an ONNX graph with inputs ``x`` (B, T, F) and ``lengths`` (B,).

    Args:
        model: a built :class:`~padless.nn.sequential.Sequential`.
        path: the ``.onnx`` file to write (atomically).
        streaming: also take and return each recurrent layer's state (``state_h_<k>``, ``state_c_<k>`` for
            an LSTM; each (B, H); outputs ``state_h_<k>_out``...) so a sequence can be fed in chunks.
            Unidirectional models only.
        opset: ONNX opset (17 or newer).
        check: run ``onnx.checker`` on the graph before writing it.

    Returns:
        The path written.

    Raises:
        ConfigError: a layer that cannot be exported (named), an unbuilt model, a bidirectional or pooling
            layer with ``streaming=True``, or ``onnx`` not installed.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from padless import Sequential
        >>> from padless.layers import LSTM, Dense
        >>> m = Sequential([LSTM(4, input_shape=(None, 3)), Dense(2, activation="softmax")])
        >>> p = export_onnx(m, os.path.join(tempfile.mkdtemp(), "m.onnx"))
        >>> x = [np.random.rand(t, 3).astype("float32") for t in (5, 2)]
        >>> bool(np.allclose(load_onnx(p).predict(x), m.predict(x, verbose=0), atol=1e-5))
        True
    """
    onnx = _require("onnx", "ONNX export")
    import padless
    from padless.nn.layers import Masking
    from padless.train.saving import atomic_write_bytes

    newest = int(onnx.defs.onnx_opset_version())
    if not 17 <= int(opset) <= newest:
        raise ConfigError(f"opset must be between 17 and {newest} (the newest this onnx package knows); got {opset}")
    if not hasattr(model, "layers") or not hasattr(model, "get_config"):
        raise ConfigError(f"export_onnx takes a padless Sequential model; got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            g, inputs, outputs, state_names = _build_graph(model, bool(streaming), onnx, int(opset))
    finally:
        model.train(was_training)
    h = onnx.helper
    graph = h.make_graph(g.nodes, str(getattr(model, "name", "padless")), inputs, outputs, initializer=g.inits)
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", int(opset))], producer_name="padless",
                         producer_version=padless.__version__,
                         doc_string="inputs: x (batch, time, features) right-padded, lengths (batch,) int64")
    # the oldest IR version that carries this opset (8 for 17), so older runtimes can read the file
    proto.ir_version = int(h.find_min_ir_version_for(list(proto.opset_import)))
    first = model.layers[0] if len(model.layers) else None
    pre = dict(getattr(model, "preprocessing", {}) or {})
    meta = {
        "padless.format": ONNX_FORMAT,
        "padless.version": padless.__version__,
        "padless.config": json.dumps(model.get_config()),
        "padless.preprocessing": json.dumps(pre),
        "padless.classes": json.dumps(pre.get("classes")),
        "padless.returns_sequences": json.dumps(bool(model.returns_sequences)),
        "padless.streaming": json.dumps(bool(streaming)),
        "padless.states": json.dumps(state_names),
        "padless.num_features": json.dumps(int(model.input_size)),
        "padless.mask_value": json.dumps(first.mask_value if isinstance(first, Masking) else None),
    }
    h.set_model_props(proto, meta)
    if check:
        try:
            onnx.checker.check_model(proto, full_check=True)
        except Exception as e:  # onnx raises its own ValidationError types
            raise ConfigError(f"the exported graph failed the ONNX checker (a padless bug): {e}") from None
    atomic_write_bytes(path, proto.SerializeToString())
    return Path(path)


# ---------------------------------------------------------------------------------------------- runner
class OnnxModel:
    """An exported ``.onnx`` model run by onnxruntime, with ``predict`` like the padless model's.

    Args:
        path: a file written by :func:`export_onnx`.
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
        threads: intra-op threads (0 = onnxruntime's default).

    Attributes:
        preprocessing: the model's ``preprocessing`` dict (``"classes"`` holds the class names).
        classes: class names, or None.
        streaming: whether the graph takes and returns states.
        state_names: the state inputs, in graph order (outputs are the same names + ``"_out"``).
        returns_sequences: True for a per-step model.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from padless import Sequential
        >>> from padless.layers import GRU, Dense
        >>> m = Sequential([GRU(4, input_shape=(None, 2)), Dense(3, activation="softmax")])
        >>> p = m.export(os.path.join(tempfile.mkdtemp(), "m.onnx"))
        >>> OnnxModel(p).predict([np.ones((3, 2), "float32")]).shape
        (1, 3)
    """

    def __init__(self, path: str | os.PathLike[str], providers: Sequence[str] | None = None, threads: int = 0) -> None:
        ort = _require("onnxruntime", "running an .onnx model")
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"no ONNX model at {str(p)!r}: check the path (write one with padless export)")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(p), sess_options=opts,
                                                providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # onnxruntime raises its own exception types
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(f"{str(p)!r} is not a readable ONNX model: {first}") from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if meta.get("padless.format") != ONNX_FORMAT:
            raise CheckpointError(f"{str(p)!r} is an ONNX model but not one exported by padless "
                                  f"(format {meta.get('padless.format')!r})")
        self.path = p
        self.metadata = meta
        self.preprocessing: dict[str, Any] = json.loads(meta.get("padless.preprocessing", "{}")) or {}
        classes = json.loads(meta.get("padless.classes", "null"))
        if classes is not None:
            self.preprocessing.setdefault("classes", classes)
        self.classes: list[str] | None = classes
        self.streaming = bool(json.loads(meta.get("padless.streaming", "false")))
        self.state_names: list[str] = list(json.loads(meta.get("padless.states", "[]")))
        self.returns_sequences = bool(json.loads(meta.get("padless.returns_sequences", "false")))
        self.num_features = int(json.loads(meta.get("padless.num_features", "0")))
        self.mask_value: float | None = json.loads(meta.get("padless.mask_value", "null"))
        self._state_units = {i.name: int(i.shape[1]) for i in self.session.get_inputs() if i.name in self.state_names}

    def initial_states(self, batch_size: int) -> dict[str, np.ndarray]:
        """Zero states for a streaming graph: name -> (batch_size, H) float32."""
        return {n: np.zeros((int(batch_size), self._state_units[n]), np.float32) for n in self.state_names}

    def run(self, x: Any, lengths: Any, states: dict[str, np.ndarray] | None = None
            ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
        """Run the graph once on a right-padded batch.

        Args:
            x: (B, T, F) float array, right-padded (padding values are ignored).
            lengths: (B,) true lengths, 1 <= length <= T (a streaming graph also accepts 0: state kept).
            states: streaming graph only: name -> (B, H) from :meth:`initial_states` or a previous call.

        Returns:
            ``y`` ((B, out), or (B, T, out) with padded steps zeroed); a streaming graph returns
            ``(y, states)`` with the states after each row's last step.

        Raises:
            DataError: wrong shapes or lengths out of range.
        """
        xa = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        la = np.ascontiguousarray(np.asarray(lengths, dtype=np.int64)).reshape(-1)
        if xa.ndim != 3 or xa.shape[2] != self.num_features:
            raise DataError(f"x must be (batch, time, {self.num_features}); got shape {xa.shape}")
        if la.shape[0] != xa.shape[0]:
            raise DataError(f"lengths has {la.shape[0]} entries for a batch of {xa.shape[0]} rows")
        low = 0 if self.streaming else 1
        bad = np.flatnonzero((la < low) | (la > xa.shape[1]))
        if bad.size:
            k = int(bad[0])
            raise DataError(f"lengths[{k}] = {int(la[k])} is outside {low}..{xa.shape[1]} (the padded length)")
        feed: dict[str, np.ndarray] = {"x": xa, "lengths": la}
        if self.streaming:
            st = states if states is not None else self.initial_states(xa.shape[0])
            for n in self.state_names:
                if n not in st:
                    raise DataError(f"missing state {n!r}; pass the states returned by the previous call")
                a = np.ascontiguousarray(np.asarray(st[n], dtype=np.float32))
                if a.shape != (xa.shape[0], self._state_units[n]):
                    raise DataError(f"state {n!r} must be ({xa.shape[0]}, {self._state_units[n]}); got {a.shape}")
                feed[n] = a
        elif states is not None:
            raise DataError("this graph was exported without streaming=True: it takes no states")
        outs = self.session.run(None, feed)
        if not self.streaming:
            return outs[0]
        return outs[0], {n: o for n, o in zip(self.state_names, outs[1:])}

    def predict(self, x: Any, batch_size: int | None = 32, lengths: Any = None, verbose: int = 0) -> Any:
        """Outputs for ``x`` in input order, in ``model.predict``'s format.

        Args:
            x: a list of (T_i, F) arrays, an (N, T, F) array (with ``lengths=`` if padded) or a RaggedArray.
            batch_size: rows per onnxruntime call (rows are grouped by length to keep padding small).
            lengths: true lengths of a right-padded ``x``.
            verbose: ignored (``model.predict`` compatibility).

        Returns:
            (N, out) array, or a list of (T_i, out) arrays for a per-step model.
        """
        from padless.train.inputs import as_ragged

        xr = as_ragged(x, lengths=lengths, mask_value=self.mask_value)
        if xr.num_features != self.num_features:
            raise DataError(f"the model expects {self.num_features} features per step; the data has {xr.num_features}")
        bs = int(batch_size or 32)
        if bs <= 0:
            raise DataError(f"batch_size must be a positive integer; got {batch_size!r}")
        L = np.asarray(xr.lengths)
        order = np.argsort(-L, kind="stable")
        results: list[Any] = [None] * len(xr)
        for s in range(0, len(order), bs):
            idx = order[s : s + bs]
            part = xr.take(idx)
            y = self.run(part.to_padded().astype(np.float32, copy=False), np.asarray(part.lengths))
            if isinstance(y, tuple):
                y = y[0]
            for k, row in enumerate(idx.tolist()):
                results[row] = y[k, : int(L[row])] if self.returns_sequences else y[k]
        if self.returns_sequences:
            return results
        return np.stack(results).astype(np.float32, copy=False)


def load_onnx(path: str | os.PathLike[str], **kwargs: Any) -> OnnxModel:
    """Open an exported model for inference; see :class:`OnnxModel`.

    Example:
        >>> import os, tempfile
        >>> from padless import Sequential
        >>> from padless.layers import LSTM, Dense
        >>> m = Sequential([LSTM(2, input_shape=(None, 1)), Dense(1)])
        >>> p = m.export(os.path.join(tempfile.mkdtemp(), "m.onnx"))
        >>> load_onnx(p).returns_sequences
        False
    """
    return OnnxModel(path, **kwargs)


def check_export(model: Any, path: str | os.PathLike[str], x: Any = None, seed: int = 0) -> float:
    """Largest absolute difference between onnxruntime on ``path`` and ``model.predict``.

    Args:
        model: the padless model that was exported.
        path: the exported file.
        x: inputs (anything ``predict`` takes); by default 16 random sequences of lengths 1-40.
        seed: seed of the random inputs.

    Returns:
        ``max |onnx - predict|`` over every output value.

    Example:
        >>> import os, tempfile
        >>> from padless import Sequential
        >>> from padless.layers import GRU, Dense
        >>> m = Sequential([GRU(3, input_shape=(None, 2)), Dense(2)])
        >>> check_export(m, m.export(os.path.join(tempfile.mkdtemp(), "m.onnx"))) < 1e-5
        True
    """
    om = load_onnx(path)
    if x is None:
        rng = np.random.default_rng(seed)
        x = [rng.standard_normal((int(t), om.num_features)).astype(np.float32) for t in rng.integers(1, 41, 16)]
    ref = model.predict(x, verbose=0)
    got = om.predict(x)
    if om.returns_sequences:
        return float(max((np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(got, ref)), default=0.0))
    return float(np.abs(np.asarray(got) - np.asarray(ref)).max())
