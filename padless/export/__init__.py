"""Deploying a trained model: ONNX export with the sequence lengths as an explicit input, and a runner.

Owns: the re-exports below: :func:`export_onnx` (:mod:`~padless.export.build`), :class:`OnnxModel` /
:func:`load_onnx` (:mod:`~padless.export.runtime`), :func:`check_export` (:mod:`~padless.export.checks`)
and the graph builder layers emit into (:mod:`~padless.export.graph`). Does not own: the layers' nodes
(each layer's ``to_onnx``). ``onnx`` and ``onnxruntime`` are optional (``pip install padless[export]``).

Example:
    >>> from padless.export import DEFAULT_OPSET
    >>> DEFAULT_OPSET
    17
"""

from padless.export.build import DEFAULT_OPSET, ONNX_FORMAT, export_onnx
from padless.export.checks import check_export
from padless.export.graph import OnnxGraph, require
from padless.export.runtime import OnnxModel, load_onnx

__all__ = ["export_onnx", "load_onnx", "OnnxModel", "check_export", "OnnxGraph", "require", "DEFAULT_OPSET",
           "ONNX_FORMAT"]
