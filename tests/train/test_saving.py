"""save/load_model: safetensors + JSON, atomic, and refusing missing, truncated or tampered files."""

from __future__ import annotations

import numpy as np
import pytest

import padless
from padless import CheckpointError, Sequential
from padless.layers import GRU, LSTM, Bidirectional, Dense, Dropout


def _trained(tmp_path):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((t, 3)).astype(np.float32) for t in rng.integers(2, 12, 20)]
    y = rng.integers(0, 3, 20)
    m = Sequential([Bidirectional(LSTM(5, return_sequences=True), merge_mode="concat"), Dropout(0.1), GRU(4),
                    Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    m.fit(xs, y, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "model.safetensors"
    m.save(path)
    return m, xs, y, path


def test_round_trip_same_predictions_and_compile(tmp_path):
    m, xs, y, path = _trained(tmp_path)
    m2 = padless.load_model(path)
    np.testing.assert_allclose(m.predict(xs, verbose=0), m2.predict(xs, verbose=0), rtol=1e-6, atol=1e-6)
    assert m2.count_params() == m.count_params()
    assert m2.evaluate(xs, y, verbose=0)[0] == pytest.approx(m.evaluate(xs, y, verbose=0)[0], rel=1e-6)
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no saved model"):
        padless.load_model(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path):
    _, _, _, path = _trained(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        padless.load_model(path)


@pytest.mark.parametrize("where", ["header", "weights"])
def test_tampered_file(tmp_path, where):
    _, _, _, path = _trained(tmp_path)
    data = bytearray(path.read_bytes())
    i = 20 if where == "header" else len(data) - 7
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        padless.load_model(path)


def test_foreign_safetensors_file(tmp_path):
    import torch
    from safetensors.torch import save_file

    p = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(p))
    with pytest.raises(CheckpointError, match="not a padless model"):
        padless.load_model(p)


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(padless.ConfigError, match="not built"):
        Sequential([LSTM(3), Dense(1)]).save(tmp_path / "x.safetensors")
