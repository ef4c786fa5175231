"""padless.optimizers against Keras 3's update rules written out in numpy, on a tiny least-squares problem;
clipping, decoupled weight decay, settings, refusals, and the optimizer surviving save -> load -> fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import padless
from padless import ConfigError
from padless.optimizers import SGD, Adagrad, Adam, AdamW, Nadam, RMSprop, schedules

from _kit import classes, model, sequences

A = np.array([[1.0, 2.0, -1.0], [0.5, -1.5, 2.0], [-2.0, 0.3, 0.7], [1.2, 1.0, 0.1]])
B = np.array([1.0, -2.0, 0.5, 3.0])
W0 = np.array([0.3, -0.2, 0.1])
STEPS = 6


def _grad(w):
    """d/dw of 0.5 * ||A w - B||^2 (the tiny problem), in float64."""
    return A.T @ (A @ w - B)


def _run_padless(opt, steps=STEPS):
    w = torch.nn.Parameter(torch.tensor(W0, dtype=torch.float64))
    torch_opt = opt.build([w])
    At, Bt = torch.tensor(A), torch.tensor(B)
    for _ in range(steps):
        torch_opt.zero_grad()
        (0.5 * ((At @ w - Bt) ** 2).sum()).backward()
        torch_opt.step()
    return w.detach().numpy()


# ---------------------------------------------------------------- Keras 3 update rules (keras/src/optimizers/*.py)
def _keras_sgd(lr, momentum=0.0, nesterov=False, wd=None, steps=STEPS):
    w, m = W0.copy(), np.zeros(3)
    for _ in range(steps):
        g = _grad(w)
        if wd:
            w = w - w * wd * lr  # BaseOptimizer._apply_weight_decay, before the update
        if momentum:
            m = m * momentum - g * lr  # m = momentum * m - lr * g
            w = w + (m * momentum - g * lr if nesterov else m)
        else:
            w = w - g * lr
    return w


def _keras_rmsprop(lr, rho=0.9, momentum=0.0, eps=1e-7, centered=False, steps=STEPS):
    w, v, mo, ag = W0.copy(), np.zeros(3), np.zeros(3), np.zeros(3)
    for _ in range(steps):
        g = _grad(w)
        v = rho * v + (1 - rho) * g**2
        if centered:
            ag = rho * ag + (1 - rho) * g
            den = v - ag**2 + eps
        else:
            den = v + eps
        inc = lr * g / np.sqrt(den)  # Keras: epsilon inside the square root
        if momentum > 0:
            mo = momentum * mo + inc
            w = w - mo
        else:
            w = w - inc
    return w


def _keras_adam(lr, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False, wd=None, steps=STEPS):
    w, m, v, vh = W0.copy(), np.zeros(3), np.zeros(3), np.zeros(3)
    for it in range(steps):
        g = _grad(w)
        if wd:
            w = w - w * wd * lr
        t = it + 1
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        m = m + (g - m) * (1 - b1)
        v = v + (g**2 - v) * (1 - b2)
        vv = v
        if amsgrad:
            vh = np.maximum(vh, v)
            vv = vh
        w = w - (m * alpha) / (np.sqrt(vv) + eps)  # epsilon "hat": added before the bias correction
    return w


def _keras_adagrad(lr, init=0.1, eps=1e-7, steps=STEPS):
    w, acc = W0.copy(), np.full(3, init)
    for _ in range(steps):
        g = _grad(w)
        acc = acc + g**2
        w = w - lr * g / np.sqrt(acc + eps)
    return w


def _keras_nadam(lr, b1=0.9, b2=0.999, eps=1e-7, steps=STEPS):
    w, m, v, u_prod = W0.copy(), np.zeros(3), np.zeros(3), 1.0
    for it in range(steps):
        g = _grad(w)
        t, t1 = it + 1, it + 2
        u_t = b1 * (1.0 - 0.5 * 0.96**t)
        u_t1 = b1 * (1.0 - 0.5 * 0.96**t1)
        u_prod = u_prod * u_t  # _backend_update_step updates the product first
        u_prod1 = u_prod * u_t1
        m = m + (g - m) * (1 - b1)
        v = v + (g**2 - v) * (1 - b2)
        m_hat = u_t1 * m / (1 - u_prod1) + (1 - u_t) * g / (1 - u_prod)
        v_hat = v / (1 - b2**t)
        w = w - (m_hat * lr) / (np.sqrt(v_hat) + eps)
    return w


EXACT = [
    ("sgd", SGD(learning_rate=0.05), _keras_sgd(0.05)),
    ("sgd momentum", SGD(0.05, momentum=0.9), _keras_sgd(0.05, 0.9)),
    ("sgd nesterov", SGD(0.05, momentum=0.8, nesterov=True), _keras_sgd(0.05, 0.8, True)),
    ("sgd weight decay", SGD(0.05, momentum=0.5, weight_decay=0.1), _keras_sgd(0.05, 0.5, wd=0.1)),
    ("adam", Adam(learning_rate=0.1), _keras_adam(0.1)),
    ("adam eps", Adam(0.1, epsilon=0.5), _keras_adam(0.1, eps=0.5)),  # a large epsilon shows where it is added
    ("adam amsgrad", Adam(0.1, beta_1=0.8, beta_2=0.9, amsgrad=True), _keras_adam(0.1, 0.8, 0.9, amsgrad=True)),
    ("adam weight decay", Adam(0.1, weight_decay=0.2), _keras_adam(0.1, wd=0.2)),
    ("adamw", AdamW(0.1, weight_decay=0.2, epsilon=0.3), _keras_adam(0.1, eps=0.3, wd=0.2)),
    ("adagrad", Adagrad(0.1), _keras_adagrad(0.1)),
    ("adagrad eps", Adagrad(0.1, initial_accumulator_value=0.0, epsilon=0.5), _keras_adagrad(0.1, 0.0, 0.5)),
    ("nadam", Nadam(0.05), _keras_nadam(0.05)),
    ("nadam eps", Nadam(0.05, beta_1=0.8, epsilon=0.3), _keras_nadam(0.05, b1=0.8, eps=0.3)),
]


@pytest.mark.parametrize("name, opt, ref", EXACT, ids=[e[0] for e in EXACT])
def test_update_rule_equals_keras(name, opt, ref):
    # float64 parameters: exact up to rounding; torch keeps NAdam's momentum product as a float32 scalar
    tol = 1e-7 if name.startswith("nadam") else 1e-12
    np.testing.assert_allclose(_run_padless(opt), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9}, {"centered": True}, {"rho": 0.5, "momentum": 0.5}])
def test_rmsprop_equals_keras_up_to_the_documented_epsilon_placement(kw):
    # Keras divides by sqrt(v + eps), torch by sqrt(v) + eps: the same to ~1e-7 relative for gradients ~1
    np.testing.assert_allclose(_run_padless(RMSprop(0.01, **kw)), _keras_rmsprop(0.01, **kw), rtol=1e-6)
    # and with a large epsilon the documented difference is visible
    assert not np.allclose(_run_padless(RMSprop(0.01, epsilon=0.5, **kw)), _keras_rmsprop(0.01, eps=0.5, **kw),
                           rtol=1e-6)


def test_clipping_follows_keras():
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(1))

    def step(opt, ga, gb):
        t = opt.build([a, b])
        with torch.no_grad():
            a.zero_(), b.zero_()
        a.grad, b.grad = torch.tensor(ga), torch.tensor(gb)
        t.step()
        return a.detach().tolist() + b.detach().tolist()

    # clipnorm: each tensor by c / max(||g||, c); ||(3, 4)|| = 5 -> (0.6, 0.8); |(0.5)| < 1 unchanged
    assert step(SGD(1.0, clipnorm=1.0), [3.0, 4.0], [0.5]) == pytest.approx([-0.6, -0.8, -0.5])
    # global_clipnorm: all by c / max(global norm, c); global norm of (3, 4, 12) = 13
    assert step(SGD(1.0, global_clipnorm=1.0), [3.0, 4.0], [12.0]) == pytest.approx([-3 / 13, -4 / 13, -12 / 13])
    # clipvalue: elementwise
    assert step(SGD(1.0, clipvalue=0.5), [3.0, -0.2], [-4.0]) == pytest.approx([-0.5, 0.2, 0.5])
    with pytest.raises(ConfigError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        SGD(clipnorm=1.0, clipvalue=1.0)


def test_keras_defaults_and_torch_mapping():
    p = [torch.nn.Parameter(torch.zeros(2))]
    g = RMSprop().build(p).param_groups[0]
    assert (g["lr"], g["alpha"], g["eps"], g["momentum"], g["centered"]) == (0.001, 0.9, 1e-7, 0.0, False)
    g = SGD().build(p).param_groups[0]
    assert (g["lr"], g["momentum"], g["nesterov"], g["weight_decay"]) == (0.01, 0.0, False, 0)
    g = Adam().build(p).param_groups[0]
    assert (g["lr"], tuple(g["betas"]), g["amsgrad"]) == (0.001, (0.9, 0.999), False)
    t = AdamW().build(p)
    assert type(t) is torch.optim.AdamW and t.param_groups[0]["weight_decay"] == 0.004
    t = Adagrad().build(p)
    assert t.param_groups[0]["initial_accumulator_value"] == pytest.approx(0.1 + 1e-7)
    t = Nadam().build(p)
    assert type(t) is torch.optim.NAdam and t.param_groups[0]["momentum_decay"] == 1.0
    assert Adam(torch_options={"foreach": False}).build(p).param_groups[0]["foreach"] is False


def test_refusals_name_the_argument():
    for kw, msg in [({"use_ema": True}, "use_ema"), ({"gradient_accumulation_steps": 4}, "gradient_accumulation_steps"),
                    ({"loss_scale_factor": 2.0}, "loss_scale_factor"), ({"betas": (0.9, 0.99)}, "betas"),
                    ({"learning_rate": -1.0}, "Invalid learning rate"), ({"learning_rate": lambda: 0.1}, "callable")]:
        with pytest.raises(ConfigError, match=msg):
            Adam(**kw)
    with pytest.raises(ConfigError, match="momentum"):
        SGD(momentum=1.5)
    with pytest.raises(ConfigError, match="weight_decay"):
        AdamW(weight_decay=None)
    with pytest.warns(UserWarning, match="`decay` is no longer supported"):
        SGD(decay=0.1)


def test_learning_rate_reads_and_writes_and_schedule_is_not_settable():
    m = model()
    m.compile(optimizer=Adam(3e-3), loss="sparse_categorical_crossentropy")
    m.fit(sequences(), classes(), epochs=1, verbose=0, batch_size=8)
    opt = m.optimizer
    assert isinstance(opt, Adam) and opt.iterations == 2
    assert opt.learning_rate == pytest.approx(3e-3)
    opt.learning_rate = 1e-4
    assert m.compiled.optimizer.param_groups[0]["lr"] == 1e-4
    opt.learning_rate.assign(2e-4)  # Keras 3 variable style
    assert float(m.optimizer.learning_rate) == pytest.approx(2e-4)
    assert opt.param_groups is m.compiled.optimizer.param_groups  # the torch optimizer behind it
    s = Adam(schedules.ExponentialDecay(0.1, 1, 0.5))
    with pytest.raises(ConfigError, match="not settable"):
        s.learning_rate = 0.1


def test_compile_with_a_name_and_settings_keeps_working():
    m = model()
    m.compile("adam", "sparse_categorical_crossentropy", learning_rate=3e-3, beta_1=0.8)
    assert isinstance(m.optimizer, Adam) and m.optimizer.beta_1 == 0.8
    m.compile("adam", "sparse_categorical_crossentropy", lr=3e-3, betas=(0.7, 0.9), eps=1e-6, foreach=False)
    g = m.compiled.optimizer.param_groups[0]
    assert (g["lr"], tuple(g["betas"]), g["foreach"]) == (3e-3, (0.7, 0.9), False) and m.optimizer.epsilon == 1e-6
    m.compile("nadam", "sparse_categorical_crossentropy", run_eagerly=True, jit_compile=False)
    assert type(m.compiled.optimizer) is torch.optim.NAdam
    with pytest.raises(ConfigError, match="does not take the setting 'momentum'"):
        m.compile("adam", "mse", momentum=0.9)
    with pytest.raises(ConfigError, match="weighted_metrics"):
        m.compile("adam", "mse", weighted_metrics=["mae"])


@pytest.mark.parametrize("opt", [
    RMSprop(learning_rate=2e-3, rho=0.8, momentum=0.1, centered=True, clipnorm=1.0),
    SGD(learning_rate=schedules.PiecewiseConstantDecay([1, 3], [0.1, 0.05, 0.01]), momentum=0.9, nesterov=True),
    AdamW(learning_rate=schedules.CosineDecay(1e-3, 10, warmup_target=2e-3, warmup_steps=2), weight_decay=0.01,
          global_clipnorm=2.0),
], ids=["rmsprop", "sgd-schedule", "adamw-cosine"])
def test_optimizer_survives_save_load_fit(tmp_path, opt):
    xs, y = sequences(), classes()
    m = model()
    m.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    m.fit(xs, y, epochs=1, batch_size=8, verbose=0)  # 2 steps
    m.save(tmp_path / "m.safetensors")
    back = padless.load_model(tmp_path / "m.safetensors")
    o = back.optimizer
    assert type(o) is type(opt) and type(back.compiled.optimizer) is type(m.compiled.optimizer)
    assert o.get_config() == m.optimizer.get_config()
    assert o.iterations == 2  # the schedule's step
    assert float(o.learning_rate) == pytest.approx(float(m.optimizer.learning_rate))
    back.fit(xs, y, epochs=1, batch_size=8, verbose=0)
    assert o.iterations == 4
    if isinstance(opt._learning_rate, schedules.LearningRateSchedule):
        assert back.compiled.optimizer.param_groups[0]["lr"] == pytest.approx(opt._learning_rate(3))


def test_optimizer_class_and_unknown_names():
    m = model()
    m.compile(optimizer=Adam, loss="sparse_categorical_crossentropy", learning_rate=5e-3)  # a class, as a name
    assert isinstance(m.optimizer, Adam) and float(m.optimizer.learning_rate) == 5e-3
    with pytest.raises(ConfigError, match=r"unknown optimizer 'adamm'\. Did you mean 'adam'"):
        m.compile("adamm", "mse")
