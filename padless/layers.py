"""Keras-style layer names: ``from padless.layers import LSTM, Dense``.

Owns nothing: re-exports the layers of :mod:`padless.nn` under the names a Keras user expects, and the
base class :class:`Layer` for your own. Does not own: any layer's behaviour.

Example:
    >>> from padless.layers import LSTM, Dense
    >>> LSTM(4, input_shape=(None, 3)).input_size
    3
"""

from padless.nn.attention import AttentionPooling1D, MultiHeadAttention
from padless.nn.base import Layer
from padless.nn.bidirectional import Bidirectional
from padless.nn.conv import AveragePooling1D, Conv1D, MaxPooling1D
from padless.nn.core import Activation, Dense, Dropout, GaussianNoise, Normalization, ReLU
from padless.nn.inputs import Embedding, Masking
from padless.nn.merge import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from padless.nn.normalization import BatchNormalization, LayerNormalization
from padless.nn.output import Rescaling
from padless.nn.pooling import GlobalAveragePooling1D, GlobalMaxPooling1D
from padless.nn.recurrent import GRU, LSTM, SimpleRNN
from padless.nn.sequence_norm import SequenceStandardization
from padless.nn.wrappers import SpatialDropout1D, TimeDistributed

__all__ = ["Layer", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "Dense", "Dropout", "GaussianNoise",
           "GlobalAveragePooling1D", "GlobalMaxPooling1D", "Masking", "Embedding", "Normalization", "Conv1D",
           "MaxPooling1D", "AveragePooling1D", "BatchNormalization", "LayerNormalization", "MultiHeadAttention",
           "AttentionPooling1D", "TimeDistributed", "SpatialDropout1D", "Rescaling",
           "Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "SequenceStandardization",
           "Activation", "ReLU"]
