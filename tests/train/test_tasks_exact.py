"""Regression and forecasting are exact too: loss, MAE and gradients equal a per-sequence reference for every
batching mode, per sequence and per step (every real step one item), with the recipes' Rescaling head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from padless.data import RaggedArray
from padless.recipes import task_model

MODES = ["bucket", "exact", "random"]


def _data(per_step, K=2, seed=0):
    rng = np.random.default_rng(seed)
    lengths = [9, 3, 1, 14, 7, 7, 2, 11]
    xs = [rng.standard_normal((t, 3)).astype(np.float32) for t in lengths]
    if per_step:
        y = [rng.standard_normal((t, K)).astype(np.float32) * 5 + 20 for t in lengths]
        return xs, y, RaggedArray.from_list(y)
    y = (rng.standard_normal((len(xs), K)) * 5 + 20).astype(np.float32)
    return xs, y, y


def _reference(model, xs, y, per_step):
    norm, rnn, _, dense, resc = model.layers
    total, count, abs_err = 0.0, 0, 0.0
    for i, x in enumerate(xs):
        xt = norm(torch.as_tensor(x)).unsqueeze(1)  # (T, 1, F)
        if per_step:
            o, _ = rnn.rnn(xt)
            pred = resc(dense(o[:, 0]))  # (T, K)
            target = torch.as_tensor(y[i])
        else:
            fo, _ = rnn.forward_layer.rnn(xt)
            bo, _ = rnn.backward_layer.rnn(xt.flip(0))
            pred = resc(dense(torch.cat([fo[-1], bo[-1]], -1)))  # (1, K)
            target = torch.as_tensor(y[i : i + 1])
        total = total + ((pred - target) ** 2).mean(-1).sum()
        abs_err += float((pred - target).abs().mean(-1).sum().detach())
        count += target.shape[0]
    return total, count, abs_err


@pytest.mark.parametrize("per_step", [False, True])
def test_regression_loss_mae_and_gradients_match_reference(per_step):
    xs, y, y_fit = _data(per_step)
    torch.manual_seed(0)
    model = task_model("regress", 3, 2, RaggedArray.from_list(xs), y_fit, per_step=per_step, units=5, dropout=0.0)
    model.eval()
    ref_total, ref_count, ref_abs = _reference(model, xs, y, per_step)
    model.zero_grad()
    (ref_total / ref_count).backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    for mode in MODES:
        for bs in (1, 3, 32):
            loss, mae = model.evaluate(xs, y, batch_size=bs, verbose=0)
            assert loss == pytest.approx(float(ref_total) / ref_count, rel=1e-5), (mode, bs)
            assert mae == pytest.approx(ref_abs / ref_count, rel=1e-5), (mode, bs)
    # one epoch of plain SGD over a single batch of everything = one step on the reference gradient
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    model.compile(opt, "mse", ["mae"])
    for mode in ("bucket", "random"):  # one batch of everything ("exact" cuts one batch per length)
        model.zero_grad()
        model.fit(xs, y, batch_size=len(xs), epochs=1, verbose=0, batching=mode, shuffle=False)
        for n, p in model.named_parameters():
            if p.grad is not None:
                torch.testing.assert_close(p.grad, ref_grads[n], rtol=1e-4, atol=1e-5, msg=f"{mode} {n}")


def test_forecast_head_is_causal():
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((t, 2)).astype(np.float32) for t in (6, 9)]
    model = task_model("forecast", 2, 2, RaggedArray.from_list(xs), RaggedArray.from_list(xs), units=4)
    full = model.predict(xs, verbose=0)
    cut = model.predict([x[:4] for x in xs], verbose=0)  # the first 4 steps never see later ones
    for a, b in zip(full, cut):
        np.testing.assert_allclose(a[:4], b, rtol=1e-5, atol=1e-5)
    assert model.non_causal_layer() is None
