"""Truncated BPTT with slots: every sequence once, forward outputs equal to the full-sequence run, gradients
equal to a hand-computed truncated reference, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from padless import ConfigError, Sequential
from padless.data import RaggedArray
from padless.layers import GRU, LSTM, Bidirectional, Dense
from padless.data.inputs import Targets
from padless.train.tbptt import SlotScheduler, tbptt_steps

TOL = dict(rtol=1e-5, atol=1e-5)
pytestmark = pytest.mark.usefixtures("each_engine")  # packed and block engine alike


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 30), min_size=1, max_size=25), B=st.integers(1, 6), K=st.integers(1, 12),
       seed=st.integers(0, 3))
def test_scheduler_visits_every_step_once(lengths, B, K, seed):
    s = SlotScheduler(np.array(lengths), batch_size=B, tbptt=K, seed=seed)
    seen: dict[int, list[tuple[int, int]]] = {}
    for w in s:
        assert w.steps <= K
        per_slot: dict[int, int] = {}
        for p in w.pieces:
            assert 0 <= p.slot < B and p.length >= 1
            per_slot[p.slot] = per_slot.get(p.slot, 0) + p.length
            seen.setdefault(p.seq, []).append((p.start, p.length))
        assert max(per_slot.values()) == w.steps and all(v <= K for v in per_slot.values())
    assert sorted(seen) == list(range(len(lengths)))
    for i, parts in seen.items():
        pos = 0
        for start, n in parts:  # contiguous, in order, covering the sequence
            assert start == pos
            pos += n
        assert pos == lengths[i]
    s2 = SlotScheduler(np.array(lengths), batch_size=B, tbptt=K, seed=seed)
    assert [[(p.seq, p.start) for p in w.pieces] for w in s2] == [[(p.seq, p.start) for p in w.pieces] for w in s]


def _data(n=13, F=3, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 23, n)
    xs = [rng.standard_normal((t, F)).astype(np.float32) for t in lengths]
    return xs, rng.integers(0, 3, n), [rng.integers(0, 3, t) for t in lengths]


def _model(per_step=False):
    torch.manual_seed(0)
    m = Sequential([LSTM(5, return_sequences=True, input_shape=(None, 3)), GRU(4, return_sequences=per_step),
                    Dense(3, activation="softmax")])
    m.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    return m


@pytest.mark.parametrize("per_step", [False, True])
@pytest.mark.parametrize("B,K", [(1, 4), (3, 5), (4, 64)])
def test_forward_equals_full_sequence(per_step, B, K):
    xs, _, _ = _data()
    m = _model(per_step)
    full = m.predict(xs, verbose=0)
    got = m.predict(xs, batch_size=B, tbptt=K, verbose=0)
    if per_step:
        for a, b in zip(got, full):
            np.testing.assert_allclose(a, b, **TOL)
    else:
        np.testing.assert_allclose(got, full, **TOL)


@pytest.mark.parametrize("per_step", [False, True])
def test_gradients_equal_truncated_reference(per_step):
    xs, y, ysteps = _data(n=7)
    m = _model(per_step)
    B, K = 3, 4
    ra = RaggedArray.from_list(xs)
    if per_step:
        targets = Targets(True, RaggedArray.from_list([s.reshape(-1, 1).astype(np.float32) for s in ysteps]))
    else:
        targets = Targets(False, torch.as_tensor(y))
    sched = SlotScheduler(ra.lengths, batch_size=B, tbptt=K, seed=1)
    c = m.compiled
    m.zero_grad()
    for step in tbptt_steps(m, ra, targets, sched, torch.device("cpu")):
        out, states = m.run_states(step.batch, True, step.initial_states, want_states=True)
        step.on_states(states)
        pred = out.valid_data() if per_step else out[step.select]
        if step.has_loss:
            c.per_item_loss(pred, step.y).sum().backward()
    ours = {n: p.grad.clone() for n, p in m.named_parameters()}

    # reference: each sequence alone through the stock modules, cut at the same window boundaries,
    # carried state detached at every cut
    cuts: dict[int, list[tuple[int, int]]] = {}
    for w in sched:
        for p in w.pieces:
            cuts.setdefault(p.seq, []).append((p.start, p.length))
    l1, l2, dense = m.layers
    m.zero_grad()
    for i, x in enumerate(xs):
        h1 = h2 = None
        xt = torch.as_tensor(x).unsqueeze(1)
        for start, n in cuts[i]:
            o1, h1 = l1.rnn(xt[start : start + n], h1)
            o2, h2 = l2.rnn(o1, h2)
            if per_step:
                logits = dense.linear(o2[:, 0])
                tgt = torch.as_tensor(ysteps[i][start : start + n])
                (-torch.log_softmax(logits, -1).gather(1, tgt.view(-1, 1))).sum().backward()
            elif start + n == len(x):
                logits = dense.linear(o2[-1])
                (-torch.log_softmax(logits, -1)[0, int(y[i])]).backward()
            h1 = tuple(s.detach() for s in h1)
            h2 = h2.detach()
    for n, p in m.named_parameters():
        torch.testing.assert_close(ours[n], p.grad, **TOL, msg=n)


def test_fit_with_tbptt_trains_and_reports_waste():
    xs, y, _ = _data(n=40)
    m = _model()
    h = m.fit(xs, y, batch_size=4, tbptt=8, epochs=3, verbose=0, seed=0)
    assert len(h.history["loss"]) == 3 and all(np.isfinite(h.history["loss"]))
    assert 0.0 <= h.throughput["padding_waste"][0] < 0.5
    # tbptt longer than every sequence is fine (documented): plain BPTT with slot packing
    m.fit(xs, y, batch_size=4, tbptt=1000, epochs=1, verbose=0)


def test_errors():
    xs, y, _ = _data()
    for bad in (0, -2):
        with pytest.raises(ConfigError, match="tbptt must be a positive"):
            _model().fit(xs, y, tbptt=bad, verbose=0)
    bi = Sequential([Bidirectional(LSTM(3, input_shape=(None, 3))), Dense(3, activation="softmax")])
    bi.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="bidirectional layer's backward pass needs the whole sequence"):
        bi.fit(xs, y, tbptt=4, verbose=0)
