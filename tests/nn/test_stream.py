"""Streaming: several live streams fed chunk by chunk, each reset on its own, give the same per-step outputs
and final predictions as predict on whole sequences (JapaneseVowels and PLAID test sequences)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import padless.datasets as ds
from padless import ConfigError, DataError, Sequential, Stream
from padless.layers import GRU, LSTM, Bidirectional, Dense, Normalization

pytestmark = pytest.mark.usefixtures("each_engine")  # packed and block engine alike


def _model(F, per_step):
    torch.manual_seed(0)
    m = Sequential([Normalization(input_size=F), LSTM(8, return_sequences=True), GRU(6, return_sequences=per_step),
                    Dense(4, activation="softmax")])
    m.build(F)
    return m


@pytest.mark.parametrize("name, n", [("japanese_vowels", 40), ("plaid", 12)])
@pytest.mark.parametrize("per_step", [False, True])
def test_interleaved_streams_match_predict(name, n, per_step):
    _, (xt, _) = ds.load(name)
    xs = [np.asarray(s) for s in xt.to_list()[:n]]
    m = _model(xs[0].shape[1], per_step)
    m.layers[0].adapt(xs)
    ref = m.predict(xs, verbose=0)
    rng = np.random.default_rng(0)
    stream = Stream(m)
    pos = [0] * len(xs)
    pending = list(range(len(xs)))
    live: list[int] = []
    got_steps: dict[int, list[np.ndarray]] = {i: [] for i in range(len(xs))}
    final: dict[int, np.ndarray] = {}
    while pending or live:
        while pending and len(live) < 5:  # at most 5 concurrent streams; new ones join as others end
            live.append(pending.pop(0))
        chunks = {}
        for i in live:
            k = int(rng.integers(1, 40))
            chunks[i] = xs[i][pos[i] : pos[i] + k]
            pos[i] += len(chunks[i])
        out = stream.feed_many(chunks)
        for i, o in out.items():
            if per_step:
                got_steps[i].append(o)
            if pos[i] == len(xs[i]):
                final[i] = o
                stream.end(i)
                live.remove(i)
    assert stream.active == []
    for i in range(len(xs)):
        if per_step:
            np.testing.assert_allclose(np.concatenate(got_steps[i]), ref[i], rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_allclose(final[i], ref[i], rtol=1e-5, atol=1e-5)


def test_step_by_step_and_errors():
    m = _model(3, per_step=False)
    x = np.random.default_rng(1).standard_normal((9, 3)).astype(np.float32)
    s = Stream(m)
    outs = [s.feed("a", x[t : t + 1]) for t in range(len(x))]
    np.testing.assert_allclose(outs[-1], m.predict([x], verbose=0)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[3], m.predict([x[:4]], verbose=0)[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(DataError, match="non-empty"):
        s.feed("b", np.zeros((0, 3)))
    bi = Sequential([Bidirectional(LSTM(3, input_shape=(None, 3))), Dense(2)])
    with pytest.raises(ConfigError, match="cannot stream"):
        Stream(bi)
