"""Keras-style layer names: ``from padless.layers import LSTM, Dense``.

Owns nothing: re-exports :mod:`padless.nn.recurrent` and :mod:`padless.nn.layers` under the names a Keras
user expects.
"""

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
from padless.nn.recurrent import GRU, LSTM, Bidirectional, SimpleRNN

__all__ = ["LSTM", "GRU", "SimpleRNN", "Bidirectional", "Dense", "Dropout", "GaussianNoise", "GlobalAveragePooling1D", "GlobalMaxPooling1D", "Masking", "Embedding", "Normalization"]
