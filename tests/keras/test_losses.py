"""Losses: each one's value against Keras 3's formula written out in numpy, registry names, Keras loss classes
(configs that survive save/load), the Keras call convention of custom losses, and sample/class weighting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import padless
from padless import ConfigError, DataError, losses
from padless.optimizers import SGD
from padless.train.losses import get_loss

from _kit import classes, model, sequences

EPS = 1e-7
YT = np.array([[0.0, 1.0, 2.0], [1.0, 0.5, 0.0], [3.0, -1.0, 0.2]])
YP = np.array([[0.2, 0.5, 3.9], [0.1, 0.5, -0.3], [2.0, 1.5, 0.3]])
PT = np.array([[0.2, 0.7, 0.1], [0.0, 0.5, 0.5], [0.9, 0.05, 0.05]])  # probability rows
PP = np.array([[0.3, 0.4, 0.3], [0.2, 0.2, 0.6], [0.98, 0.01, 0.01]])
HT = np.array([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])  # hinge labels in {-1, 1}
HP = np.array([[0.3, 0.4], [-2.0, 0.9], [1.5, -0.2]])


def _huber(t, p, d=1.0):
    e = np.abs(p - t)
    return np.where(e <= d, 0.5 * e**2, d * e - 0.5 * d**2).mean(-1)


def _normalize(x):
    return x / np.sqrt(np.maximum((x**2).sum(-1, keepdims=True), EPS**2))


# (name, y_true, y_pred, Keras 3 formula per item)
CASES = [
    ("huber", YT, YP, _huber),  # 0.5 e^2 if |e| <= delta else delta |e| - 0.5 delta^2
    ("mean_absolute_percentage_error", YT, YP, lambda t, p: 100 * (np.abs(t - p) / np.maximum(np.abs(t), EPS)).mean(-1)),
    ("mape", YT, YP, lambda t, p: 100 * (np.abs(t - p) / np.maximum(np.abs(t), EPS)).mean(-1)),
    ("log_cosh", YT, YP, lambda t, p: np.log(np.cosh(p - t)).mean(-1)),
    ("logcosh", YT, YP, lambda t, p: np.log(np.cosh(p - t)).mean(-1)),
    ("kl_divergence", PT, PP, lambda t, p: (np.clip(t, EPS, 1) * np.log(np.clip(t, EPS, 1) / np.clip(p, EPS, 1))).sum(-1)),
    ("kld", PT, PP, lambda t, p: (np.clip(t, EPS, 1) * np.log(np.clip(t, EPS, 1) / np.clip(p, EPS, 1))).sum(-1)),
    ("poisson", np.abs(YT), np.abs(YP), lambda t, p: (p - t * np.log(p + EPS)).mean(-1)),
    ("hinge", HT, HP, lambda t, p: np.maximum(1 - t * p, 0).mean(-1)),
    ("hinge", (HT + 1) / 2, HP, lambda t, p: np.maximum(1 - (2 * t - 1) * p, 0).mean(-1)),  # {0,1} -> {-1,1}
    ("squared_hinge", HT, HP, lambda t, p: (np.maximum(1 - t * p, 0) ** 2).mean(-1)),
    ("categorical_hinge", np.eye(3)[[1, 0, 2]], YP,
     lambda t, p: np.maximum(((1 - t) * p).max(-1) - (t * p).sum(-1) + 1, 0)),
    ("mean_squared_logarithmic_error", np.abs(YT), np.abs(YP),
     lambda t, p: ((np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(t, EPS) + 1)) ** 2).mean(-1)),
    ("msle", np.abs(YT), np.abs(YP),
     lambda t, p: ((np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(t, EPS) + 1)) ** 2).mean(-1)),
    ("cosine_similarity", YT, YP, lambda t, p: -(_normalize(t) * _normalize(p)).sum(-1)),
    ("mse", YT, YP, lambda t, p: ((t - p) ** 2).mean(-1)),
    ("mean_absolute_error", YT, YP, lambda t, p: np.abs(t - p).mean(-1)),
]


@pytest.mark.parametrize("name, yt, yp, formula", CASES, ids=[c[0] for c in CASES])
def test_value_equals_keras_formula(name, yt, yp, formula):
    loss = get_loss(name)
    t, p = torch.tensor(yt, dtype=torch.float64), torch.tensor(yp, dtype=torch.float64)
    np.testing.assert_allclose(loss.per_item(p, t, False).numpy(), formula(yt, yp), rtol=1e-10, atol=1e-12)
    assert float(loss(t, p)) == pytest.approx(formula(yt, yp).mean(), rel=1e-10)  # Keras: mean over items


def test_loss_classes_take_keras_arguments():
    t, p = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.2], [3.5]])
    # delta = 2: |e| = 0.2 -> 0.02; |e| = 2.5 -> 2 * 2.5 - 2 = 3
    assert float(losses.Huber(delta=2.0)(t, p)) == pytest.approx((0.02 + 3.0) / 2)
    logits = torch.tensor([[2.0, 0.5, -1.0]])
    scce = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert float(scce(torch.tensor([0]), logits)) == pytest.approx(float(-torch.log_softmax(logits, -1)[0, 0]))
    # label smoothing: y * (1 - s) + s / K
    cce = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.3)
    y = torch.tensor([[1.0, 0.0, 0.0]]) * 0.7 + 0.1
    assert float(cce(torch.tensor([[1.0, 0.0, 0.0]]), logits)) == pytest.approx(
        float(-(y * torch.log_softmax(logits, -1)).sum()), rel=1e-6)
    bce = losses.BinaryCrossentropy(label_smoothing=0.2)  # y * 0.8 + 0.1
    pr = torch.tensor([[0.7]])
    assert float(bce(torch.tensor([[1.0]]), pr)) == pytest.approx(-(0.9 * np.log(0.7) + 0.1 * np.log(0.3)), rel=1e-6)
    with pytest.raises(ConfigError, match="reduction"):
        losses.Huber(reduction="sum")
    with pytest.raises(ConfigError, match="ignore_class"):
        losses.SparseCategoricalCrossentropy(ignore_class=0)


def test_keras_loss_objects_in_compile_survive_save_load(tmp_path):
    xs = sequences()
    y = np.random.default_rng(2).standard_normal((16, 1)).astype(np.float32)
    m = model(out=1, activation=None)
    m.compile("adam", losses.Huber(delta=0.3), metrics=["mae"])
    m.fit(xs, y, epochs=1, verbose=0)
    m.save(tmp_path / "m.safetensors")
    back = padless.load_model(tmp_path / "m.safetensors")
    assert isinstance(back.compiled.loss, losses.Huber) and back.compiled.loss.delta == 0.3
    assert back.evaluate(xs, y, verbose=0) == pytest.approx(m.evaluate(xs, y, verbose=0), rel=1e-6)
    # a logits model with from_logits=True: no activation is folded, the loss reads logits
    m2 = model(out=3, activation=None)
    m2.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    m2.save(tmp_path / "m2.safetensors")
    back2 = padless.load_model(tmp_path / "m2.safetensors")
    assert back2.compiled.loss.from_logits and not back2.compiled.uses_logits


def test_evaluate_is_the_exact_mean_of_the_keras_formula():
    xs = sequences(20)
    y = np.abs(np.random.default_rng(3).standard_normal((20, 2))).astype(np.float32)
    m = model(out=2, activation="softplus")
    for name in ("poisson", "huber", "log_cosh", "msle", "mape"):
        m.compile("sgd", name)
        pred = m.predict(xs, verbose=0).astype(np.float64)
        ref = get_loss(name).per_item(torch.tensor(pred), torch.tensor(y, dtype=torch.float64), False).mean()
        assert m.evaluate(xs, y, batch_size=3, verbose=0) == pytest.approx(float(ref), rel=1e-5), name


def test_hinge_refuses_labels_whose_conversion_would_depend_on_the_batch():
    m = model(out=1, activation="tanh")
    m.compile("sgd", "hinge")
    with pytest.raises(DataError, match="mix 0 with other values"):
        m.fit(sequences(4), np.array([0.0, 1.0, -1.0, 1.0]), verbose=0)


def test_custom_losses_are_called_keras_style():
    seen = {}

    def keras_style(y_true, y_pred):  # Keras: loss(y_true, y_pred)
        seen["y_true"], seen["y_pred"] = y_true, y_pred
        return torch.mean((y_pred - y_true) ** 2, dim=-1)

    xs, y = sequences(8), np.linspace(0, 1, 8).astype(np.float32)
    m = model(out=1, activation=None)
    m.compile("sgd", keras_style)
    m.fit(xs, y, batch_size=8, verbose=0, shuffle=False)
    assert not seen["y_true"].requires_grad and seen["y_pred"].requires_grad
    assert seen["y_true"].shape == (8, 1)  # (N,) targets of an (N, 1) output get the axis, as Keras
    assert sorted(seen["y_true"].reshape(-1).tolist()) == pytest.approx(sorted(y.tolist()))

    class Recording(torch.nn.MSELoss):  # torch loss modules: (input, target)
        def forward(self, input, target):
            seen["input"], seen["target"] = input, target
            return super().forward(input, target)

    m.compile("sgd", Recording())
    m.fit(xs, y, batch_size=8, verbose=0)
    assert seen["input"].requires_grad and not seen["target"].requires_grad
    assert seen["target"].shape == seen["input"].shape


def test_accuracy_with_a_loss_returning_one_number_is_a_fraction():
    xs = sequences(20)
    y = (np.random.default_rng(4).random(20) > 0.5).astype(np.float32)
    m = model(out=1, activation="sigmoid")
    m.compile("adam", torch.nn.BCELoss(), metrics=["accuracy"])
    h = m.fit(xs, y, batch_size=6, epochs=2, verbose=0)
    assert all(0.0 <= a <= 1.0 for a in h.history["accuracy"])
    pred = m.predict(xs, verbose=0)[:, 0]
    assert m.evaluate(xs, y, verbose=0)[1] == pytest.approx(float(np.mean((pred > 0.5) == y)))


def _weighted_case(per_step=False):
    xs = sequences(12, seed=7)
    m = model(out=2, activation="softmax", return_sequences=per_step)
    m.compile(SGD(learning_rate=0.0), "sparse_categorical_crossentropy")  # weights never move
    return xs, m


def test_sample_and_class_weight_are_keras_weighted_means():
    xs, m = _weighted_case()
    y = classes(12, k=2, seed=8)
    p = m.predict(xs, verbose=0).astype(np.float64)
    item = -np.log(p[np.arange(12), y])  # cross-entropy per sequence
    sw = np.linspace(0.0, 2.0, 12)
    cw = {0: 3.0, 1: 0.5}
    # Keras: sum(w_i * loss_i) / number of items (not / sum of weights)
    h = m.fit(xs, y, sample_weight=sw, batch_size=5, verbose=0)
    assert h.history["loss"][0] == pytest.approx(float((sw * item).sum() / 12), rel=1e-5)
    h = m.fit(xs, y, class_weight=cw, batch_size=5, verbose=0)
    assert h.history["loss"][0] == pytest.approx(float((np.vectorize(cw.get)(y) * item).sum() / 12), rel=1e-5)
    assert m.evaluate(xs, y, sample_weight=sw, verbose=0) == pytest.approx(float((sw * item).sum() / 12), rel=1e-5)


def test_sample_weight_with_per_step_targets_weighs_every_step():
    xs, m = _weighted_case(per_step=True)
    rng = np.random.default_rng(9)
    ys = [rng.integers(0, 2, len(x)) for x in xs]
    sw = np.linspace(0.5, 1.5, 12)
    p = m.predict(xs, verbose=0)
    num = sum(sw[i] * -np.log(p[i][np.arange(len(ys[i])), ys[i]].astype(np.float64)).sum() for i in range(12))
    h = m.fit(xs, ys, sample_weight=sw, batch_size=4, verbose=0)
    assert h.history["loss"][0] == pytest.approx(num / sum(len(x) for x in xs), rel=1e-5)  # / real steps


def test_crossentropy_alias_picks_by_the_output():
    m1 = model(out=1, activation="sigmoid")
    m1.compile("adam", "crossentropy")
    assert m1.compiled.loss_name == "binary_crossentropy"
    m3 = model(out=3)
    m3.compile("adam", "ce")
    assert m3.compiled.loss_name == "categorical_crossentropy"


@pytest.mark.parametrize("name", ["mse", "huber", "kld", "poisson", "cosine_similarity", "hinge"])
def test_targets_that_do_not_match_the_outputs_are_refused_before_training(name):
    m = model(out=3)
    m.compile("adam", name)
    with pytest.raises(DataError, match="one target value per output"):
        m.fit(sequences(), classes(), verbose=0)  # class ids for 3 outputs
