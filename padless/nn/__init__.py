"""Layers and models that run ragged batches exactly with the dense recurrent kernels.

Owns: the layer modules (:mod:`padless.nn.recurrent`, :mod:`padless.nn.layers`) and the model
(:mod:`padless.nn.sequential`). Every layer is a plain ``torch.nn.Module`` callable on a
``PackedSequence``, ``(padded, lengths)``, a dense ``(B, T, F)`` tensor or a list of tensors.
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
from padless.nn.recurrent import GRU, LSTM, Bidirectional, Recurrent, RunOutput, SimpleRNN, scan
from padless.nn.sequential import Sequential
from padless.nn.stream import Stream

__all__ = ["LSTM", "GRU", "SimpleRNN", "Bidirectional", "Recurrent", "RunOutput", "scan", "Dense", "Dropout",
           "Masking", "Embedding", "Normalization", "Sequential", "Stream"]
