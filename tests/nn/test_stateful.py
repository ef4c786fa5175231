"""Keras' stateful contract: row i of batch k+1 continues row i of batch k; reset_states() resets all rows,
reset_states(rows=...) only some; a wrong batch size fails with "Expected ... / Received ..."."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from padless import Sequential, StateError
from padless.layers import GRU, LSTM, Dense

TOL = dict(rtol=1e-5, atol=1e-5)
pytestmark = pytest.mark.usefixtures("each_engine")  # packed and block engine alike


def _model(B=3, cls=LSTM):
    torch.manual_seed(0)
    m = Sequential([cls(5, stateful=True, return_sequences=True, batch_input_shape=(B, None, 2)), cls(4, stateful=True),
                    Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


def _chunks(B=3, T=(4, 2, 5), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, t, 2)).astype(np.float32) for t in T]


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_chunks_continue_the_full_sequence(cls):
    m = _model(cls=cls)
    chunks = _chunks()
    outs = [m.predict(c, batch_size=3, verbose=0) for c in chunks]
    m.reset_states()
    full = np.concatenate(chunks, axis=1)
    ref = m.predict(full, batch_size=3, verbose=0)
    np.testing.assert_allclose(outs[-1], ref, **TOL)


def test_reset_then_run_again_gives_identical_outputs():
    m = _model()
    chunks = _chunks()
    first = [m.predict(c, batch_size=3, verbose=0) for c in chunks]
    m.reset_states()
    second = [m.predict(c, batch_size=3, verbose=0) for c in chunks]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # without a reset the state carries on: different outputs
    third = m.predict(chunks[0], batch_size=3, verbose=0)
    assert not np.allclose(third, first[0])


def test_per_row_reset_resets_only_those_rows():
    m = _model()
    a, b = _chunks(T=(3, 4))
    m.predict(a, batch_size=3, verbose=0)
    m.reset_states(rows=[1])
    got = m.predict(b, batch_size=3, verbose=0)
    # reference: row 1 starts fresh on b; rows 0 and 2 continue a
    m.reset_states()
    ref_fresh = m.predict(b, batch_size=3, verbose=0)
    m.reset_states()
    ref_cont = m.predict(np.concatenate([a, b], 1), batch_size=3, verbose=0)
    np.testing.assert_allclose(got[1], ref_fresh[1], **TOL)
    np.testing.assert_allclose(got[[0, 2]], ref_cont[[0, 2]], **TOL)
    # boolean mask form
    m.reset_states()
    m.predict(a, batch_size=3, verbose=0)
    m.reset_states(rows=np.array([False, True, False]))
    np.testing.assert_allclose(m.predict(b, batch_size=3, verbose=0), got, **TOL)


def test_ragged_rows_keep_their_own_final_state():
    """Rows of a stateful batch may have different lengths; each row's state is taken at its own end."""
    m = _model(B=2)
    rng = np.random.default_rng(3)
    a = [rng.standard_normal((t, 2)).astype(np.float32) for t in (5, 2)]
    b = [rng.standard_normal((t, 2)).astype(np.float32) for t in (1, 4)]
    m.predict(a, batch_size=2, verbose=0)
    got = m.predict(b, batch_size=2, verbose=0)
    m.reset_states()
    ref = m.predict([np.concatenate([a[i], b[i]]) for i in range(2)], batch_size=2, verbose=0)
    np.testing.assert_allclose(got, ref, **TOL)


def test_errors():
    m = _model()
    with pytest.raises(StateError, match=r"Expected batch size 3 / Received 2"):
        m.predict(_chunks(B=2)[0], batch_size=2, verbose=0)
    m.predict(_chunks()[0], batch_size=3, verbose=0)
    with pytest.raises(StateError, match=r"row 5 is out of range"):
        m.reset_states(rows=[5])
    with pytest.raises(StateError, match=r"Expected 3"):
        m.reset_states(rows=np.array([True, False]))


def test_seed_stateful_configuration_trains():
    model = Sequential()
    model.add(LSTM(100, return_sequences=True, stateful=True, batch_input_shape=(200, None, 100)))
    model.add(LSTM(100))
    model.add(Dense(2, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    x = np.random.random((400, 50, 100)); y = np.random.random((400, 2))
    x2 = np.random.random((400, 10, 100)); y2 = np.random.random((400, 2))
    x_val = np.random.random((200, 50, 100)); y_val = np.random.random((200, 2))
    before = model.count_params()
    h = model.fit(x, y, batch_size=200, epochs=1, shuffle=False, validation_data=(x_val, y_val), verbose=0)
    model.fit(x2, y2, batch_size=200, epochs=1, shuffle=False, validation_data=(x_val, y_val), verbose=0)
    score = model.evaluate(x_val, y_val, batch_size=200, verbose=0)
    assert np.isfinite(h.history["loss"][0]) and np.isfinite(score[0])
    assert model.count_params() == before
    with pytest.warns(UserWarning, match="shuffle=True on a stateful model"):
        model.fit(x2, y2, batch_size=200, epochs=1, shuffle=True, verbose=0)
    with pytest.raises(StateError, match=r"Expected batch size 200 / Received batch_size=100"):
        model.fit(x2, y2, batch_size=100, epochs=1, shuffle=False, verbose=0)
