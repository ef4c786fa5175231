"""The classifier recipes and the choice among them: every recipe builds, trains, saves and loads; the
validation part is carved from the training data only, stratified and disjoint; the choice follows the
validation scores; the CLI saves and prints which recipe was chosen and why."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from padless.data import RaggedArray
from padless.errors import ConfigError
from padless.models import load_model
from padless.recipes import RECIPES, recipe, select_recipe, stratified_split, train_recipe


def _toy(n: int = 40, seed: int = 0) -> tuple[RaggedArray, np.ndarray]:
    """Two classes: a rising or a falling ramp, lengths 3-12 (short enough for every kernel)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    xs = []
    for lab in y:
        t = int(rng.integers(3, 13))
        ramp = np.linspace(-1, 1, t) * (1 if lab else -1)
        xs.append((ramp[:, None] + 0.1 * rng.standard_normal((t, 2))).astype(np.float32))
    return RaggedArray.from_list(xs), y


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_trains_saves_and_loads(name, tmp_path):
    x, y = _toy(16)
    t = train_recipe(name, x, y, seed=0, epochs=1)
    assert t.epochs == 1 and t.seconds > 0
    p = t.model.predict(x, verbose=0)
    assert p.shape == (16, 2) and np.allclose(p.sum(1), 1.0, atol=1e-5)
    t.model.save(tmp_path / "m.safetensors")
    again = load_model(tmp_path / "m.safetensors")
    np.testing.assert_allclose(again.predict(x, verbose=0), p, atol=1e-5)


def test_recipe_trains_to_separate_the_toy_classes():
    x, y = _toy(40)
    t = train_recipe("fcn-zd", x, y, seed=0, epochs=8)
    acc = t.model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
    assert acc >= 0.9


@pytest.mark.parametrize("name, channels", [("fcn", 3), ("fcn-z", 3), ("fcn-zd", 6), ("fcn-zl", 6)])
def test_both_normalisations_give_twice_the_channels(name, channels):
    m = RECIPES[name].build(3, 4, None)
    first_conv = next(layer for layer in m.layers if type(layer).__name__ == "Conv1D")
    assert tuple(first_conv.kernel.shape) == (8, channels, 128)  # (k, F_in, filters)


def test_log_channels_are_standardised_asinh_of_the_training_data():
    x, _ = _toy(10)
    x = RaggedArray(x.values * 100.0, x.offsets)
    m = RECIPES["fcn-zl"].build(2, 2, x)
    norm = next(layer for layer in m.layers if type(layer).__name__ == "Normalization")
    np.testing.assert_allclose(np.asarray(norm.mean).ravel(), np.arcsinh(x.values.astype(np.float64)).mean(0),
                               rtol=1e-4, atol=1e-5)


def test_same_seed_same_model():
    x, y = _toy(12)
    a = train_recipe("lstm-fcn", x, y, seed=3, epochs=1).model.predict(x, verbose=0)
    b = train_recipe("lstm-fcn", x, y, seed=3, epochs=1).model.predict(x, verbose=0)
    np.testing.assert_array_equal(a, b)


def test_unknown_recipe_names_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: .*lstm-fcn"):
        recipe("lstm_fcn")
    with pytest.raises(ConfigError, match="standardise"):
        RECIPES["fcn"].builder(2, 2, None, standardise="global")


@pytest.mark.parametrize("fraction", [0.2, 0.5])
def test_stratified_split_is_disjoint_complete_and_proportional(fraction):
    y = np.repeat([0, 1, 2], [10, 20, 30])
    tr, va = stratified_split(y, fraction, seed=1)
    assert np.intersect1d(tr, va).size == 0 and np.union1d(tr, va).tolist() == list(range(60))
    np.testing.assert_array_equal(np.bincount(y[va]), np.round(fraction * np.array([10, 20, 30])).astype(int))
    tr2, va2 = stratified_split(y, fraction, seed=1)
    assert va.tolist() == va2.tolist()
    assert va.tolist() != stratified_split(y, fraction, seed=2)[1].tolist()


def test_stratified_split_keeps_one_of_every_pair_and_refuses_what_it_cannot_do():
    tr, va = stratified_split(np.array([0, 0, 1, 1, 1]), 0.01)
    assert sorted(np.array([0, 0, 1, 1, 1])[va].tolist()) == [0, 1] and tr.size == 3
    with pytest.raises(ConfigError, match="in \\(0, 1\\)"):
        stratified_split(np.array([0, 1]), 1.0)
    with pytest.raises(ConfigError, match="too few"):
        stratified_split(np.array([0, 1]), 0.2)


def test_selection_follows_validation_scores_and_says_why():
    x, y = _toy(30)
    sel = select_recipe(x, y, candidates=("gru", "fcn"), budget_s=120, seed=0, epochs=1)
    assert set(sel.scores) == {"gru", "fcn"}
    assert sel.chosen == max(sel.scores, key=lambda n: (sel.scores[n], n == "gru"))
    assert "validation accuracy" in sel.reason and "of 30 training" in sel.reason
    assert json.loads(json.dumps(sel.to_dict()))["chosen"] == sel.chosen
    # the held-out part is the stratified split of the training data: its size is in the reason
    _, va = stratified_split(y, 0.2, seed=0)
    assert f"on {va.size} of 30" in sel.reason


def test_selection_budget_stops_a_slow_candidate_early():
    x, y = _toy(20)
    sel = select_recipe(x, y, candidates=("gru",), budget_s=1e-9, seed=0, epochs=5)
    assert sel.epochs["gru"] == 1


def test_cli_model_flag_saves_the_recipe(tmp_path):
    x, y = _toy(24)
    np.savez(tmp_path / "d.npz", values=x.values, offsets=x.offsets, labels=np.array(["down", "up"])[y])
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "padless.cli", "train", str(tmp_path / "d.npz"), "--model", "lstm-fcn-zd",
                        "--epochs", "1", "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "lstm-fcn-zd" in r.stdout
    assert load_model(out / "model.safetensors").preprocessing["recipe"]["name"] == "lstm-fcn-zd"
