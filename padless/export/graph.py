"""A small ONNX graph builder, and what every layer's emitter is given.

Owns: :class:`OnnxGraph` (unique names, shared small constants, nodes, the model's ``lengths`` and step
mask, streaming state inputs/outputs) and :func:`require` (import an optional dependency of the ``export``
extra, or say how to install it). Layers emit themselves into an :class:`OnnxGraph` through their
``to_onnx(g, x)`` method (:class:`padless.nn.Layer`); this module knows no layer.

Does not own: walking a model (:mod:`padless.export.build`) or running graphs (:mod:`padless.export.runtime`).

Example:
    >>> g = OnnxGraph(require("onnx", "ONNX export"), 17)
    >>> g.op("Relu", [g.const("c", [1.0, -1.0])], "r").startswith("r_")
    True
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

import numpy as np

from padless.errors import ConfigError

__all__ = ["OnnxGraph", "require"]


def require(module: str, purpose: str) -> Any:
    """Import an optional dependency of the ``export`` extra, or raise a ConfigError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(f"{purpose} needs {module}: pip install 'padless[export]' (or pip install {module})") from None


class OnnxGraph:
    """Nodes, initializers and graph inputs/outputs under construction.

    Attributes (for layers' emitters):
        lengths: the (B,) int64 current lengths (the ``lengths`` input until a strided layer calls
            :meth:`set_lengths`); lens32: the same as int32.
        mask: (T, B, 1) bool, True on real steps of the current time axis.
        streaming: the graph takes and returns recurrent state.
        FLOAT: the ONNX float element type (for ``Cast``).
    """

    def __init__(self, onnx: Any, opset: int, streaming: bool = False) -> None:
        self.onnx = onnx
        self.h = onnx.helper
        self.opset = opset
        self.streaming = streaming
        self.FLOAT = onnx.TensorProto.FLOAT
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.inputs: list[Any] = []
        self.extra_outputs: list[Any] = []
        self.state_names: list[str] = []
        self.state_units: dict[str, int] = {}
        self._n = 0
        self._small: dict[tuple[str, tuple[int, ...], bytes], str] = {}
        self.lengths = "lengths"
        self.lens32 = ""
        self.mask = ""

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, value: Any, dtype: Any = np.float32) -> str:
        """A constant (initializer); small ones are shared."""
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if arr.size <= 4 and key in self._small:  # axes, 0, 1, ...: one initializer each
            return self._small[key]
        n = self.name(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(arr, n))
        if arr.size <= 4:
            self._small[key] = n
        return n

    def set_lengths(self, lengths: str, steps_of: str) -> None:
        """A layer changed every sequence's length (strides, a "valid" window): from here on ``lengths``
        ((B,) int64) are the lengths, and ``mask``/``lens32`` are rebuilt for the time axis of ``steps_of``
        (a (T, B, F) value, the layer's output)."""
        ax0, ax1, ax2 = (self.const(f"ax{k}", [k], np.int64) for k in range(3))
        T = self.op("Squeeze", [self.op("Shape", [steps_of], "T1", start=0, end=1), ax0], "T")
        steps = self.op("Range", [self.const("zero", 0, np.int64), T, self.const("one", 1, np.int64)], "steps")
        mask_tb = self.op("Less", [self.op("Unsqueeze", [steps, ax1]), self.op("Unsqueeze", [lengths, ax0])], "mask_tb")
        self.mask = self.op("Unsqueeze", [mask_tb, ax2], "mask")  # (T, B, 1) True on real steps
        self.lengths = lengths
        self.lens32 = self.op("Cast", [lengths], "lens32", to=self.onnx.TensorProto.INT32)

    def reduce(self, op_type: str, x: str, axis: int, hint: str) -> str:
        """ReduceSum/ReduceMax over one axis (axes became an input in opset 13/18)."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.const("axes", [axis], np.int64)], hint, keepdims=0)
        return self.op(op_type, [x], hint, axes=[axis], keepdims=0)

    def op(self, op_type: str, inputs: Sequence[str], hint: str | None = None, n_out: int = 1, **attrs: Any) -> Any:
        """Add a node; return its output name (a list when ``n_out > 1``)."""
        outs = [self.name(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op_type, list(inputs), outs, name=self.name("n_" + op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def state_inputs(self, kinds: Sequence[str], units: int) -> list[str]:
        """Streaming: graph inputs ``state_<kind>_<k>`` (each (B, units)) for the next recurrent layer."""
        k = len({n.rsplit("_", 1)[1] for n in self.state_names})
        names = [f"state_{kind}_{k}" for kind in kinds]
        for n in names:
            self.inputs.append(self.h.make_tensor_value_info(n, self.FLOAT, ["batch", int(units)]))
            self.state_names.append(n)
        self.state_units.update({n: int(units) for n in names})
        return names

    def state_outputs(self, names: Sequence[str], values: Sequence[str]) -> None:
        """Streaming: graph outputs ``<name>_out`` holding the states after each row's last step."""
        for n, v in zip(names, values):
            self.nodes.append(self.h.make_node("Identity", [v], [n + "_out"], name=self.name("n_state_out")))
            self.extra_outputs.append(self.h.make_tensor_value_info(n + "_out", self.FLOAT, ["batch", self.state_units[n]]))
