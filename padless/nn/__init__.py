"""Layers and model graphs that run ragged batches exactly: plain ``torch.nn.Module`` objects.

Owns: the layer contract (:mod:`padless.nn.base`), the layers (:mod:`~padless.nn.core`,
:mod:`~padless.nn.recurrent`, :mod:`~padless.nn.pooling`, :mod:`~padless.nn.conv`,
:mod:`~padless.nn.normalization`, :mod:`~padless.nn.attention`, :mod:`~padless.nn.wrappers`; windows in
:mod:`~padless.nn.windows`), the engines that run recurrent layers (:mod:`~padless.nn.blocks`), composition (:mod:`~padless.nn.graph`) and streaming inference
(:mod:`~padless.nn.stream`). Every layer is callable on a ``PackedSequence``, ``(padded, lengths)``, a
dense ``(B, T, F)`` tensor or a list of tensors. Nothing here knows about training, files or ONNX.

Does not own: the Keras-style model facade with ``compile``/``fit``/``save`` (``padless.models``), training
(``padless.train``), export (``padless.export``).

Example:
    >>> import torch
    >>> from padless.nn import LSTM, Dense, LayerStack
    >>> LayerStack([LSTM(4, input_size=2), Dense(1)])([torch.randn(3, 2)]).shape
    torch.Size([1, 1])
"""

from padless.nn.adapters import from_batch, to_batch
from padless.nn.attention import AttentionPooling1D, MultiHeadAttention
from padless.nn.base import Layer, OnnxValue, deserialize_layer, map_values, registered_layers, serialize_layer
from padless.nn.bidirectional import Bidirectional
from padless.nn.blocks import scan
from padless.nn.conv import AveragePooling1D, Conv1D, MaxPooling1D
from padless.nn.core import Activation, Dense, Dropout, GaussianNoise, Normalization, ReLU
from padless.nn.functional import FunctionalGraph, Input
from padless.nn.graph import Graph, LayerStack
from padless.nn.inputs import Embedding, Masking
from padless.nn.merge import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from padless.nn.normalization import BatchNormalization, LayerNormalization
from padless.nn.output import Rescaling
from padless.nn.pooling import GlobalAveragePooling1D, GlobalMaxPooling1D
from padless.nn.recurrent import GRU, LSTM, Recurrent, RunOutput, SimpleRNN
from padless.nn.sequence_norm import SequenceStandardization
from padless.nn.stream import Stream
from padless.nn.wrappers import SpatialDropout1D, TimeDistributed

__all__ = ["Layer", "OnnxValue", "serialize_layer", "deserialize_layer", "registered_layers", "map_values",
           "LSTM", "GRU", "SimpleRNN", "Bidirectional", "Recurrent", "RunOutput", "scan", "Dense", "Dropout",
           "GaussianNoise", "Masking", "Embedding", "Normalization", "GlobalAveragePooling1D", "GlobalMaxPooling1D",
           "Conv1D", "MaxPooling1D", "AveragePooling1D", "BatchNormalization", "LayerNormalization",
           "MultiHeadAttention", "AttentionPooling1D", "TimeDistributed", "SpatialDropout1D", "Rescaling",
           "Graph", "LayerStack", "FunctionalGraph", "Input", "Concatenate", "Add", "Subtract", "Multiply",
           "Average", "Maximum", "Minimum", "SequenceStandardization", "Activation", "ReLU", "Stream", "to_batch",
           "from_batch"]
