"""Bad input to the Keras-style API gets the project's own exception, naming the index and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from padless import ConfigError, DataError, PadlessError, Sequential, StateError
from padless.layers import LSTM, Dense


def _model(compiled=True, F=3, K=2):
    m = Sequential([LSTM(4, input_shape=(None, F)), Dense(K, activation="softmax")])
    if compiled:
        m.compile("rmsprop", "sparse_categorical_crossentropy", ["accuracy"])
    return m


def _xs(n=5, F=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((t, F)).astype(np.float32) for t in rng.integers(1, 8, n)]


def test_errors_are_value_errors_of_one_family():
    assert issubclass(DataError, PadlessError) and issubclass(PadlessError, ValueError)


def test_feature_count_mismatch():
    with pytest.raises(DataError, match=r"expects 3 features per step; the data has 5"):
        _model().fit(_xs(F=5), np.zeros(5, int), verbose=0)


def test_x_y_length_mismatch():
    with pytest.raises(DataError, match=r"got 4 targets for 5 input sequences"):
        _model().fit(_xs(), np.zeros(4, int), verbose=0)


def test_per_step_target_lengths_must_match():
    m = Sequential([LSTM(4, return_sequences=True, input_shape=(None, 3)), Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    xs = _xs()
    ys = [np.zeros(len(x), int) for x in xs]
    ys[2] = np.zeros(len(xs[2]) + 1, int)
    with pytest.raises(DataError, match=r"sequence 2 have \d+ steps but its input has \d+"):
        m.fit(xs, ys, verbose=0)


def test_label_out_of_range():
    y = np.array([0, 1, 2, 0, 1])
    with pytest.raises(DataError, match=r"label 2 at index 2 is out of range for 2 classes"):
        _model().fit(_xs(), y, verbose=0)


def test_nan_in_inputs_names_sequence():
    xs = _xs()
    xs[3] = xs[3].copy()
    xs[3][0, 1] = np.nan
    with pytest.raises(DataError, match=r"sequence 3"):
        _model().fit(xs, np.zeros(5, int), verbose=0)


@pytest.mark.parametrize("bs", [0, -3, 2.5])
def test_bad_batch_size(bs):
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        _model().fit(_xs(), np.zeros(5, int), batch_size=bs, verbose=0)


def test_fit_before_compile():
    with pytest.raises(ConfigError, match=r"must be compiled.*model.compile"):
        _model(compiled=False).fit(_xs(), np.zeros(5, int), verbose=0)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(optimizer="rmsprp", loss="mse"), r"unknown optimizer 'rmsprp'\. Did you mean 'rmsprop'"),
        (dict(optimizer="adam", loss="categorical_crosentropy"), r"Did you mean 'categorical_crossentropy'"),
        (dict(optimizer="adam", loss="mse", metrics=["acuracy"]), r"unknown metric 'acuracy'\. Did you mean 'accuracy'"),
    ],
)
def test_unknown_names_suggest(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        _model(compiled=False).compile(**kwargs)


def test_unknown_batching_suggests():
    with pytest.raises(ConfigError, match=r"Did you mean 'bucket'"):
        _model().fit(_xs(), np.zeros(5, int), batching="buckett", verbose=0)


def test_stateful_batch_size_mismatch_says_expected_received():
    m = Sequential([LSTM(4, stateful=True, batch_input_shape=(4, None, 3)), Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(StateError, match=r"Expected batch size 4 / Received 3"):
        m.predict(_xs(3), batch_size=3, verbose=0)


def test_object_array_and_wrong_ndim():
    with pytest.raises(DataError, match="list of"):
        _model().fit(np.zeros((4, 3)), np.zeros(4, int), verbose=0)
