"""Small data sets and models shared by the Keras conformance tests."""

from __future__ import annotations

import numpy as np
import torch

from padless import Sequential
from padless.layers import GRU, Dense


def sequences(n=16, features=3, seed=0, lo=2, hi=9):
    """``n`` float32 sequences of random lengths in ``[lo, hi)``."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(t), features)).astype(np.float32) for t in rng.integers(lo, hi, n)]


def classes(n=16, k=3, seed=1):
    return np.random.default_rng(seed).integers(0, k, n)


def model(out=3, activation="softmax", units=4, features=3, seed=0, return_sequences=False):
    torch.manual_seed(seed)
    return Sequential([GRU(units, input_shape=(None, features), return_sequences=return_sequences),
                       Dense(out, activation=activation)])


def weights(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"
