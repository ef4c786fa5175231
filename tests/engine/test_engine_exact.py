"""packed_rnn equals running every sequence alone through torch.nn.LSTM / GRU / RNN(tanh): outputs, final
states and every gradient (x, weights, biases, h0, c0), for the compiled engine (1 and 2 threads) and for
the reference and block engines."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import (
    MODES,
    assert_all_close,
    grads,
    layout,
    module,
    positions,
    run_alone,
    weights,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from padless.nn.engine import packed_rnn

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

lengths_st = st.lists(st.integers(1, 12), min_size=1, max_size=7).map(lambda v: sorted(v, reverse=True))
hidden_st = st.sampled_from([1, 3, 8, 16, 17, 33])


def check_against_alone(mode: str, lengths: list[int], F: int, H: int, with_state: bool, bias: bool,
                        engine: str, seed: int = 0) -> None:
    m = module(mode, F, H, bias=bias, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    bs, off = layout(lengths)
    B, S = len(lengths), off[-1]
    x = torch.randn(S, F, generator=g).requires_grad_()
    h0 = torch.randn(B, H, generator=g).requires_grad_() if with_state else None
    c0 = torch.randn(B, H, generator=g).requires_grad_() if with_state and mode == "lstm" else None
    w = weights(m)
    y, hn, cn = packed_rnn(mode, x, bs, *w, h0=h0, c0=c0, engine=engine)
    assert y.shape == (S, H) and hn.shape == (B, H)
    assert (cn is None) == (mode != "lstm")
    gy, gh = torch.randn(S, H, generator=g), torch.randn(B, H, generator=g)
    gc = torch.randn(B, H, generator=g)
    loss = (y * gy).sum() + (hn * gh).sum() + ((cn * gc).sum() if cn is not None else 0)

    ref_loss = torch.zeros(())
    for r in range(B):
        pos = positions(lengths, off, r)
        out, h_r, c_r = run_alone(m, mode, x[pos], None if h0 is None else h0[r], None if c0 is None else c0[r])
        torch.testing.assert_close(y[pos], out, rtol=1e-5, atol=1e-5, msg=lambda s, r=r: f"row {r} outputs: {s}")
        torch.testing.assert_close(hn[r], h_r, rtol=1e-5, atol=1e-5, msg=lambda s, r=r: f"row {r} h_n: {s}")
        ref_loss = ref_loss + (out * gy[pos]).sum() + (h_r * gh[r]).sum()
        if mode == "lstm":
            assert cn is not None and c_r is not None
            torch.testing.assert_close(cn[r], c_r, rtol=1e-5, atol=1e-5, msg=lambda s, r=r: f"row {r} c_n: {s}")
            ref_loss = ref_loss + (c_r * gc[r]).sum()
    inputs = [x, *w, h0, c0]
    assert_all_close(grads(loss, inputs), grads(ref_loss, inputs), "grads (x, w_ih, w_hh, b_ih, b_hh, h0, c0)")


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(lengths=lengths_st, F=st.integers(1, 6), H=hidden_st, with_state=st.booleans(), bias=st.booleans())
@example(lengths=[1], F=1, H=1, with_state=False, bias=True)  # a single row of one step
@example(lengths=[5, 5, 5, 5], F=3, H=17, with_state=True, bias=True)  # all equal lengths
@example(lengths=[1, 1, 1], F=2, H=33, with_state=True, bias=False)  # all length 1
@example(lengths=[12, 9, 9, 4, 1, 1, 1], F=5, H=33, with_state=True, bias=True)
def test_packed_equals_each_sequence_alone(threads, mode, lengths, F, H, with_state, bias):
    check_against_alone(mode, lengths, F, H, with_state, bias, "packed")


@pytest.mark.parametrize("engine", ["reference", "blocks"])
@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=8, deadline=None)
@given(lengths=lengths_st, F=st.integers(1, 4), H=hidden_st, with_state=st.booleans(), bias=st.booleans())
@example(lengths=[6, 2, 2, 1], F=2, H=17, with_state=True, bias=True)
def test_other_engines_equal_each_sequence_alone(engine, mode, lengths, F, H, with_state, bias):
    check_against_alone(mode, lengths, F, H, with_state, bias, engine)


@pytest.mark.parametrize("mode", MODES)
def test_larger_batch_two_threads_default_split(engine_ops, mode):
    """A batch big enough that the row split is used without forcing it (default threshold)."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        check_against_alone(mode, [40, 37, 37, 30, 22, 22, 9, 3, 1], 7, 45, True, True, "packed", seed=3)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("mode", MODES)
def test_no_grad_forward_matches_training_forward(engine_ops, mode):
    """Under no_grad nothing is saved (LSTM keeps one running cell state per row); same results."""
    m = module(mode, 3, 5)
    lengths = [30, 30, 25, 11, 11, 2]
    bs, off = layout(lengths)
    x = torch.randn(off[-1], 3)
    h0 = torch.randn(len(lengths), 5)
    c0 = torch.randn(len(lengths), 5) if mode == "lstm" else None
    reset = torch.zeros(off[-1], dtype=torch.bool)
    reset[off[12] + 1] = True
    with torch.no_grad():
        got = packed_rnn(mode, x, bs, *weights(m), h0=h0, c0=c0, reset=reset, engine="packed")
    train = packed_rnn(mode, x.requires_grad_(), bs, *weights(m), h0=h0, c0=c0, reset=reset, engine="packed")
    ref = packed_rnn(mode, x, bs, *weights(m), h0=h0, c0=c0, reset=reset, engine="reference")
    assert_all_close(got, train, "no_grad vs training forward (y, h_n, c_n)")
    assert_all_close(got, ref, "no_grad vs reference (y, h_n, c_n)")


def test_two_stacked_layers_equal_torch_two_layer_lstm(engine_ops):
    torch.manual_seed(0)
    F, H = 4, 9
    lstm = torch.nn.LSTM(F, H, num_layers=2)
    lengths = [8, 6, 6, 3, 1]
    bs, off = layout(lengths)
    x = torch.randn(off[-1], F, requires_grad=True)
    y1, _, _ = packed_rnn("lstm", x, bs, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    y2, h2, c2 = packed_rnn("lstm", y1, bs, lstm.weight_ih_l1, lstm.weight_hh_l1, lstm.bias_ih_l1, lstm.bias_hh_l1)
    packed = torch.nn.utils.rnn.PackedSequence(x, bs)
    ref, (hr, cr) = lstm(packed)
    torch.testing.assert_close(y2, ref.data, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h2, hr[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c2, cr[1], rtol=1e-5, atol=1e-5)
    params = list(lstm.parameters()) + [x]
    assert_all_close(torch.autograd.grad((y2 ** 2).sum() + h2.sum(), params),
                     torch.autograd.grad((ref.data ** 2).sum() + hr[1].sum(), params), "stacked grads")


def test_backward_twice_with_retain_graph(engine_ops):
    """Saved buffers are not consumed: a second backward gives the same gradients."""
    m = module("lstm", 3, 4)
    bs, off = layout([5, 3, 1])
    x = torch.randn(off[-1], 3, requires_grad=True)
    y, hn, cn = packed_rnn("lstm", x, bs, *weights(m), engine="packed")
    loss = y.sum() + hn.sum() + cn.sum()
    g1 = torch.autograd.grad(loss, [x, m.weight_hh_l0], retain_graph=True)
    g2 = torch.autograd.grad(loss, [x, m.weight_hh_l0])
    assert_all_close(g1, g2, "second backward")


def test_double_backward_is_refused(engine_ops):
    m = module("gru", 2, 3)
    bs, off = layout([3, 1])
    x = torch.randn(off[-1], 2, requires_grad=True)
    y, _, _ = packed_rnn("gru", x, bs, *weights(m), engine="packed")
    (g,) = torch.autograd.grad((y ** 2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        g.sum().backward()


def test_pooled_outputs_are_never_shared_between_live_tensors(engine_ops):
    """Large outputs come from a block pool: a live tensor's memory is never handed out again."""
    m = module("lstm", 8, 64)
    bs, off = layout([300, 280, 250])  # y is (830, 64): large enough to be pooled
    x1, x2 = torch.randn(off[-1], 8), torch.randn(off[-1], 8)
    with torch.no_grad():
        y1, _, _ = packed_rnn("lstm", x1, bs, *weights(m), engine="packed")
        keep = y1.clone()
        for _ in range(3):
            y2, _, _ = packed_rnn("lstm", x2, bs, *weights(m), engine="packed")
            assert y2.data_ptr() != y1.data_ptr()
            del y2
        torch.testing.assert_close(y1, keep, rtol=0, atol=0)
        del y1
        y3, _, _ = packed_rnn("lstm", x1, bs, *weights(m), engine="packed")
    torch.testing.assert_close(y3, keep, rtol=0, atol=0)
