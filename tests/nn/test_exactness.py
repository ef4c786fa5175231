"""Ragged execution equals running every sequence alone through torch.nn.LSTM/GRU/RNN (outputs, final
states and gradients), whatever the layout: exact plans, merged plans, packed input, bidirectional, stacked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from padless.data.collate import RaggedBatch
from padless.layers import GRU, LSTM, Bidirectional, SimpleRNN

TOL = dict(rtol=1e-5, atol=1e-5)
pytestmark = pytest.mark.usefixtures("each_engine")  # packed and block engine alike
torch.set_num_threads(1)


def _seqs(lengths, F, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(int(t), F, generator=g) for t in lengths]


def _ref_single(rnn: nn.RNNBase, x: torch.Tensor):
    """One sequence alone, the stock module: output (T, H), states each (H,)."""
    out, st_ = rnn(x.unsqueeze(1))
    states = st_ if isinstance(st_, tuple) else (st_,)
    return out[:, 0], tuple(s[0, 0] for s in states)


@pytest.mark.parametrize("cls", [LSTM, GRU, SimpleRNN])
@pytest.mark.parametrize("merge_cost", [0.0, 1e9])
def test_single_layer_outputs_states_grads(cls, merge_cost):
    torch.manual_seed(0)
    lengths = [7, 3, 7, 1, 12, 5, 5, 2]
    F, H = 4, 6
    layer = cls(H, input_size=F, return_sequences=True)
    xs = [x.requires_grad_() for x in _seqs(lengths, F)]
    w = torch.randn(H)

    # padless: one ragged batch
    batch = RaggedBatch.from_list(xs, merge_cost=merge_cost)
    res = layer.run(batch, want_states=batch.plan.exact)
    outs = res.seq.to_list()
    last = batch.unsort(res.last)
    loss = sum((o * w).sum() for o in outs) + (last ** 2).sum()
    if res.states is not None:
        loss = loss + sum((batch.unsort(s[0]) ** 3).sum() for s in res.states)
    loss.backward()
    g_ours = [p.grad.clone() for p in layer.rnn.parameters()]
    gx_ours = [x.grad.clone() for x in xs]

    # reference: each sequence alone
    layer.rnn.zero_grad()
    for x in xs:
        x.grad = None
    ref_loss = 0.0
    for i, x in enumerate(xs):
        o, states = _ref_single(layer.rnn, x)
        torch.testing.assert_close(outs[i], o, **TOL)
        torch.testing.assert_close(last[i], o[-1], **TOL)
        ref_loss = ref_loss + (o * w).sum() + (o[-1] ** 2).sum()
        if res.states is not None:
            for s_ours, s_ref in zip(res.states, states):
                torch.testing.assert_close(batch.unsort(s_ours[0])[i], s_ref, **TOL)
            ref_loss = ref_loss + sum((s ** 3).sum() for s in states)
    ref_loss.backward()
    for a, p in zip(g_ours, layer.rnn.parameters()):
        torch.testing.assert_close(a, p.grad, **TOL)
    for a, x in zip(gx_ours, xs):
        torch.testing.assert_close(a, x.grad, **TOL)


def test_packed_input_matches_torch_packed():
    torch.manual_seed(1)
    lengths = [5, 9, 2, 9]
    layer = LSTM(3, input_size=2, return_sequences=True, return_state=True)
    xs = _seqs(lengths, 2)
    packed = nn.utils.rnn.pack_sequence(xs, enforce_sorted=False)
    out, h, c = layer(packed)
    ref_out, (rh, rc) = layer.rnn(packed)
    torch.testing.assert_close(out.data, ref_out.data, **TOL)
    torch.testing.assert_close(h, rh[0], **TOL)
    torch.testing.assert_close(c, rc[0], **TOL)


def test_padded_and_dense_inputs():
    torch.manual_seed(2)
    layer = GRU(3, input_size=2, return_sequences=True)
    xs = _seqs([4, 2, 6], 2)
    padded = nn.utils.rnn.pad_sequence(xs, batch_first=True)
    out, lens = layer((padded, torch.tensor([4, 2, 6])))
    assert out.shape == (3, 6, 3) and lens.tolist() == [4, 2, 6]
    for i, x in enumerate(xs):
        o, _ = _ref_single(layer.rnn, x)
        torch.testing.assert_close(out[i, : len(x)], o, **TOL)
        assert torch.all(out[i, len(x):] == 0)
    dense = torch.randn(2, 5, 2)
    o2 = layer(dense)
    ref, _ = layer.rnn(dense.transpose(0, 1))
    torch.testing.assert_close(o2, ref.transpose(0, 1), **TOL)


@pytest.mark.parametrize("merge_cost", [0.0, 1e9])
def test_bidirectional_matches_torch_bidirectional(merge_cost):
    torch.manual_seed(3)
    F, H = 3, 4
    bi = Bidirectional(LSTM(H, input_size=F, return_sequences=True))
    ref = nn.LSTM(F, H, bidirectional=True)
    with torch.no_grad():
        for suffix, src in (("", bi.forward_layer.rnn), ("_reverse", bi.backward_layer.rnn)):
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(ref, name + suffix).copy_(getattr(src, name))
    lengths = [6, 1, 4, 6, 3]
    xs = _seqs(lengths, F)
    batch = RaggedBatch.from_list(xs, merge_cost=merge_cost)
    res = bi.run(batch)
    outs = res.seq.to_list()
    last = batch.unsort(res.last)
    loss = sum(o.sum() for o in outs) + last.pow(2).sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in bi.named_parameters()}
    ref_loss = 0.0
    for i, x in enumerate(xs):
        o, (h, c) = ref(x.unsqueeze(1))
        o = o[:, 0]
        torch.testing.assert_close(outs[i], o, **TOL)
        # Keras semantics: [forward at the last step, backward after reading step 0]
        torch.testing.assert_close(last[i], torch.cat([h[0, 0], h[1, 0]]), **TOL)
        ref_loss = ref_loss + o.sum() + torch.cat([h[0, 0], h[1, 0]]).pow(2).sum()
    ref_loss.backward()
    torch.testing.assert_close(grads["forward_layer.rnn.weight_hh_l0"], ref.weight_hh_l0.grad, **TOL)
    torch.testing.assert_close(grads["backward_layer.rnn.weight_hh_l0"], ref.weight_hh_l0_reverse.grad, **TOL)
    torch.testing.assert_close(grads["backward_layer.rnn.weight_ih_l0"], ref.weight_ih_l0_reverse.grad, **TOL)


def test_go_backwards_reads_from_true_end():
    torch.manual_seed(4)
    layer = SimpleRNN(3, input_size=2, go_backwards=True)
    xs = _seqs([5, 2], 2)
    out = layer(xs)
    for i, x in enumerate(xs):
        o, _ = _ref_single(layer.rnn, x.flip(0))
        torch.testing.assert_close(out[i], o[-1], **TOL)


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 20), min_size=1, max_size=12),
    merge_cost=st.sampled_from([0.0, 3.0, 50.0, 1e9]),
)
def test_stacked_property_any_lengths(lengths, merge_cost):
    torch.manual_seed(5)
    l1 = LSTM(5, input_size=3, return_sequences=True)
    l2 = GRU(4, input_size=5)
    xs = _seqs(lengths, 3, seed=len(lengths))
    batch = RaggedBatch.from_list(xs, merge_cost=merge_cost)
    h = l2.run(l1.run(batch).seq).last
    out = batch.unsort(h)
    out.sum().backward()
    g = l1.rnn.weight_hh_l0.grad.clone()
    l1.rnn.zero_grad()
    total = 0.0
    for i, x in enumerate(xs):
        o1, _ = l1.rnn(x.unsqueeze(1))
        o2, _ = l2.rnn(o1)
        torch.testing.assert_close(out[i], o2[-1, 0], **TOL)
        total = total + o2[-1, 0].sum()
    total.backward()
    torch.testing.assert_close(g, l1.rnn.weight_hh_l0.grad, **TOL)


def test_plan_keeps_boundaries_of_rows_that_need_states():
    from padless.data.plan import make_plan

    lengths = np.array([10, 9, 7, 7, 3, 2])
    merged = make_plan(lengths, merge_cost=1e9)
    assert len(merged.segments) == 1 and merged.state_exact.tolist() == [True, False, False, False, False, False]
    kept = make_plan(lengths, merge_cost=1e9, keep={7, 2})
    assert [s.t0 + s.steps for s in kept.segments] == [2, 7, 10]
    assert kept.state_exact.tolist() == [True, False, True, True, False, True]
    assert make_plan(lengths, 0.0).state_exact.all()


def test_merged_plan_states_exact_where_kept():
    torch.manual_seed(6)
    layer = LSTM(4, input_size=2)
    xs = _seqs([9, 6, 6, 4, 1], 2)
    batch = RaggedBatch.from_list(xs, merge_cost=1e9)
    from padless.data.collate import collate_values

    flat = torch.cat(xs)
    starts = np.concatenate([[0], np.cumsum([len(x) for x in xs])])[:-1]
    b = collate_values(flat, starts, np.array([len(x) for x in xs]), merge_cost=1e9, keep={6})
    res = layer.run(b, want_states=True)
    for i, x in enumerate(xs):
        _, (h, c) = _ref_single(layer.rnn, x)
        r = int(b.unsorted_indices[i])
        if b.plan.state_exact[r]:
            torch.testing.assert_close(res.states[1][0, r], c, **TOL)
    assert b.plan.state_exact.sum() == 3 and not batch.plan.exact


@pytest.mark.parametrize("merge_cost", [0.0, 1e9])
def test_long_segments_cut_into_chained_calls_stay_exact(merge_cost):
    """Blocks longer than MAX_CALL_STEPS run as several chained kernel calls: still full BPTT."""
    from padless.data.plan import MAX_CALL_STEPS

    torch.manual_seed(7)
    layer = LSTM(4, input_size=2, return_sequences=True)
    xs = [x.requires_grad_() for x in _seqs([2 * MAX_CALL_STEPS + 5, MAX_CALL_STEPS + 1, 3], 2)]
    batch = RaggedBatch.from_list(xs, merge_cost=merge_cost)
    assert max(s.steps for s in batch.plan.segments) <= MAX_CALL_STEPS
    res = layer.run(batch, want_states=True)
    outs = res.seq.to_list()
    (sum(o.sum() for o in outs) + res.states[1].sum()).backward()
    g = layer.rnn.weight_hh_l0.grad.clone()
    gx = xs[0].grad.clone()
    layer.rnn.zero_grad()
    xs[0].grad = None
    total = 0.0
    for i, x in enumerate(xs):
        o, (h, c) = _ref_single(layer.rnn, x)
        torch.testing.assert_close(outs[i], o, **TOL)
        total = total + o.sum()
        r = int(batch.unsorted_indices[i])
        if batch.plan.state_exact[r]:
            torch.testing.assert_close(res.states[1][0, r], c, **TOL)
            total = total + c.sum()
    if merge_cost == 0.0:
        total.backward()
        torch.testing.assert_close(g, layer.rnn.weight_hh_l0.grad, **TOL)
        torch.testing.assert_close(gx, xs[0].grad, **TOL)


def test_the_engine_in_force_runs_the_layer(each_engine, monkeypatch):
    """Under ``PADLESS_ENGINE=blocks`` no packed call happens; under ``auto`` (where it builds) exactly one
    per layer and batch - so the module's other tests really cover both engines."""
    import padless.nn.recurrent_base as rb

    calls = []
    real = rb.packed_rnn
    monkeypatch.setattr(rb, "packed_rnn", lambda *a, **k: calls.append(1) or real(*a, **k))
    layer = LSTM(5, input_size=3, return_sequences=True)
    layer.run(RaggedBatch.from_list(_seqs([4, 2, 1], 3)), want_states=True)
    assert len(calls) == (0 if each_engine == "blocks" else 1)
