"""Loss, metrics, gradients and predictions equal a per-sequence reference whatever the batching mode and
batch size - per-sequence heads and per-step (token-weighted) heads alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from padless import Sequential
from padless.data import RaggedArray
from padless.data.collate import collate
from padless.layers import GRU, LSTM, Bidirectional, Dense
from padless.data.sources import make_sampler

TOL = dict(rtol=1e-5, atol=1e-5)
pytestmark = pytest.mark.usefixtures("each_engine")  # packed and block engine alike
MODES = ["bucket", "exact", "random", "auto"]


def _data(lengths, F=3, K=4, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((int(t), F)).astype(np.float32) for t in lengths]
    y = rng.integers(0, K, len(xs))
    ysteps = [rng.integers(0, K, int(t)) for t in lengths]
    return xs, y, ysteps


def _model(per_step=False, bidir=False, K=4):
    torch.manual_seed(0)
    first = LSTM(6, return_sequences=True, input_shape=(None, 3))
    second = GRU(5, return_sequences=per_step)
    layers = [Bidirectional(first) if bidir else first, second, Dense(K, activation="softmax")]
    m = Sequential(layers)
    m.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    return m


def _reference(model, xs, y, ysteps, per_step):
    """Run every sequence alone through the model's stock torch modules."""
    l1, l2, dense = model.layers
    total, count, correct = 0.0, 0, 0.0
    outs = []
    for i, x in enumerate(xs):
        xt = torch.as_tensor(x).unsqueeze(1)  # (T, 1, F)
        if isinstance(l1, Bidirectional):
            fo, _ = l1.forward_layer.rnn(xt)
            bo, _ = l1.backward_layer.rnn(xt.flip(0))
            o1 = torch.cat([fo, bo.flip(0)], -1)
        else:
            o1, _ = l1.rnn(xt)
        o2, _ = l2.rnn(o1)
        logits = dense.linear(o2[:, 0] if per_step else o2[-1, 0:1])  # (T, K) or (1, K)
        target = torch.as_tensor(ysteps[i] if per_step else [y[i]])
        lp = torch.log_softmax(logits, -1)
        total = total - lp.gather(1, target.view(-1, 1)).sum()
        correct += float((logits.argmax(-1) == target).sum())
        count += len(target)
        outs.append(torch.softmax(logits, -1))
    return total, count, correct, outs


@pytest.mark.parametrize("per_step", [False, True])
@pytest.mark.parametrize("bidir", [False, True])
@pytest.mark.parametrize("merge_cost", [0.0, 1e9])
def test_loss_metrics_gradients_and_predict_match_reference(per_step, bidir, merge_cost):
    lengths = [9, 3, 3, 14, 1, 7, 7, 7, 2, 11, 5]
    xs, y, ysteps = _data(lengths)
    model = _model(per_step, bidir)
    model.merge_cost = merge_cost  # 0: exact segments; 1e9: one padded block per batch
    targets = ysteps if per_step else y
    ref_total, ref_count, ref_correct, ref_outs = _reference(model, xs, y, ysteps, per_step)
    model.zero_grad()
    ref_total.backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}

    ra = RaggedArray.from_list(xs)
    for mode in MODES:
        for bs in (1, 4, 32):
            loss, acc = model.evaluate(xs, targets, batch_size=bs, verbose=0)
            assert loss == pytest.approx(float(ref_total.detach()) / ref_count, rel=1e-5, abs=1e-6), (mode, bs)
            assert acc == pytest.approx(ref_correct / ref_count)
            # summed-loss gradient through the same collate/run path the loop uses
            model.zero_grad()
            sampler = make_sampler(mode, ra.lengths, bs, shuffle=True, seed=3)
            c = model.compiled
            for idx in sampler:
                idx = np.asarray(idx)
                b = collate(ra, idx, merge_cost=merge_cost)
                out = model.run(b, logits=True)
                if per_step:
                    # layout order of targets: gather with the batch's plan
                    yr = RaggedArray.from_list([ysteps[i].reshape(-1, 1).astype(np.float32) for i in range(len(xs))])
                    yb = collate(yr, idx, merge_cost=merge_cost).valid_data()[:, 0].long()
                    loss_sum = c.per_item_loss(out.valid_data(), yb).sum()
                else:
                    loss_sum = c.per_item_loss(out, torch.as_tensor(y[idx[b.sorted_indices]])).sum()
                loss_sum.backward()
            for n, p in model.named_parameters():
                torch.testing.assert_close(p.grad, ref_grads[n], **TOL, msg=f"{n} {mode} {bs}")
        preds = model.predict(xs, batch_size=3, batching=mode, verbose=0)
        for i, r in enumerate(ref_outs):
            got = torch.as_tensor(preds[i]) if per_step else torch.as_tensor(preds[i : i + 1])
            torch.testing.assert_close(got, r.detach(), **TOL)


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(1, 25), min_size=2, max_size=20), bs=st.integers(1, 8),
       mode=st.sampled_from(MODES))
def test_evaluate_is_batching_invariant(lengths, bs, mode):
    xs, y, _ = _data(lengths, seed=len(lengths))
    model = _model()
    base = model.evaluate(xs, y, batch_size=len(xs), verbose=0)
    got = model.evaluate(xs, y, batch_size=bs, verbose=0)
    assert got[0] == pytest.approx(base[0], rel=1e-5, abs=1e-6)
    assert got[1] == pytest.approx(base[1])
    p1 = model.predict(xs, batch_size=bs, batching=mode, verbose=0)
    p2 = model.predict(xs, batch_size=len(xs), verbose=0)
    np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-6)


def test_fit_trains_and_history_has_keras_keys():
    lengths = np.random.default_rng(1).integers(3, 20, 64)
    xs, y, _ = _data(lengths)
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    h = model.fit(xs, y, batch_size=8, epochs=3, validation_split=0.25, verbose=0)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}  # losses and metrics only (Keras)
    assert set(h.throughput) == {"steps_per_second", "padding_waste"}
    assert len(h.history["loss"]) == 3
    assert h.history["loss"][-1] < h.history["loss"][0]


def test_fit_is_reproducible_with_seed():
    xs, y, _ = _data(np.arange(1, 30))
    res = []
    for _ in range(2):
        torch.manual_seed(0)
        model = _model()
        h = model.fit(xs, y, batch_size=4, epochs=2, verbose=0, seed=5)
        res.append(h.history["loss"])
    assert res[0] == res[1]
