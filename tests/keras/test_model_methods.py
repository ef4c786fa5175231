"""The ``*_on_batch`` methods and ``fit(validation_steps=)``, with Keras' return values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from padless import ConfigError
from padless.optimizers import SGD, Adam, schedules

from _kit import assert_same_weights, classes, model, sequences, weights

XS, Y = sequences(10), classes(10)


def _compiled(metrics=None, optimizer=None, seed=0):
    m = model(seed=seed)
    m.compile(optimizer or SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy", metrics)
    return m


def test_train_on_batch_is_one_step_on_exactly_that_batch():
    a, b = _compiled(["accuracy"]), _compiled(["accuracy"])
    p = a.predict(XS, verbose=0).astype(np.float64)
    loss, acc = a.train_on_batch(XS, Y)
    # Keras: the loss and metrics of the forward pass the step used (before the update)
    assert loss == pytest.approx(float(np.mean(-np.log(p[np.arange(10), Y]))), rel=1e-5)
    assert acc == pytest.approx(float(np.mean(p.argmax(1) == Y)))
    h = b.fit(XS, Y, batch_size=10, epochs=1, shuffle=False, verbose=0)  # the same single batch through fit
    assert h.history["loss"][0] == pytest.approx(loss, rel=1e-6)
    for k, v in weights(a).items():
        torch.testing.assert_close(v, weights(b)[k], rtol=1e-6, atol=1e-7)
    assert a.optimizer.iterations == 1


def test_return_values_follow_keras():
    m = _compiled()
    assert isinstance(m.train_on_batch(XS, Y), float)  # the loss alone without metrics
    m = _compiled(["accuracy", "sparse_top_k_categorical_accuracy"])
    out = m.train_on_batch(XS, Y, return_dict=True)
    assert list(out) == ["loss", "accuracy", "sparse_top_k_categorical_accuracy"]
    assert out["sparse_top_k_categorical_accuracy"] == 1.0  # 3 classes, k = 5
    before = weights(m)
    res = m.test_on_batch(XS, Y)
    assert_same_weights(weights(m), before)  # no step
    assert res == pytest.approx(m.evaluate(XS, Y, verbose=0), rel=1e-6)
    assert m.test_on_batch(XS, Y, return_dict=True)["loss"] == pytest.approx(res[0])
    np.testing.assert_allclose(m.predict_on_batch(XS), m.predict(XS, verbose=0), rtol=1e-6, atol=1e-7)
    with pytest.raises(ConfigError, match="cannot be specified at the same time"):
        m.train_on_batch(XS, Y, sample_weight=np.ones(10), class_weight={0: 1.0})


def test_train_on_batch_weights_and_schedule():
    m = _compiled(optimizer=SGD(0.0))
    p = m.predict(XS, verbose=0).astype(np.float64)
    item = -np.log(p[np.arange(10), Y])
    cw = {0: 2.0, 1: 0.0, 2: 1.0}
    assert m.train_on_batch(XS, Y, class_weight=cw) == pytest.approx(float(np.sum(np.vectorize(cw.get)(Y) * item) / 10),
                                                                     rel=1e-5)
    sw = np.arange(10.0)
    assert m.train_on_batch(XS, Y, sample_weight=sw) == pytest.approx(float(np.sum(sw * item) / 10), rel=1e-5)
    sched = schedules.PiecewiseConstantDecay([1], [0.1, 0.01])
    m = _compiled(optimizer=Adam(sched))
    for _ in range(3):
        m.train_on_batch(XS, Y)
    assert m.optimizer.iterations == 3 and float(m.optimizer.learning_rate) == 0.01


def test_validation_steps_limits_the_validation_batches():
    xv, yv = sequences(20, seed=5), classes(20, seed=6)
    m = _compiled()
    h = m.fit(XS, Y, batch_size=4, epochs=1, verbose=0, validation_data=(xv, yv), validation_steps=2)
    # Keras' first two unshuffled batches of 4: the first 8 validation sequences
    assert h.history["val_loss"][0] == pytest.approx(m.evaluate(xv[:8], yv[:8], verbose=0), rel=1e-6)
    assert h.history["val_loss"][0] != pytest.approx(m.evaluate(xv, yv, verbose=0), rel=1e-6)
    h = m.fit(XS, Y, batch_size=4, epochs=1, verbose=0, validation_data=(xv, yv), validation_steps=50)
    assert h.history["val_loss"][0] == pytest.approx(m.evaluate(xv, yv, verbose=0), rel=1e-6)
