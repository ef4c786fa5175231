"""Per-row resets: a row made of several sequences, reset at each one's first step, equals running those
sequences separately (outputs, final states, gradients); plus gradcheck in float64 with resets and
initial states for every mode."""

from __future__ import annotations

import pytest
import torch
from engine_helpers import (
    MODES,
    assert_all_close,
    grads,
    layout,
    module,
    run_alone,
    weights,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from padless.nn.engine import packed_rnn

# a row = list of segment lengths; the first segment may itself start with a reset (ignores h0/c0)
row_st = st.tuples(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.booleans())
rows_st = st.lists(row_st, min_size=1, max_size=5)


def build(rows):
    """Sort rows by total length; return (rows sorted, lengths, batch_sizes, offsets, reset mask)."""
    rows = sorted(rows, key=lambda r: -sum(r[0]))
    lengths = [sum(r[0]) for r in rows]
    bs, off = layout(lengths)
    reset = torch.zeros(off[-1], dtype=torch.bool)
    for r, (segs, first_reset) in enumerate(rows):
        t = 0
        for k, L in enumerate(segs):
            if k > 0 or first_reset:
                reset[off[t] + r] = True
            t += L
    return rows, lengths, bs, off, reset


def check_resets(mode, rows, F, H, engine):
    rows, _lengths, bs, off, reset = build(rows)
    m = module(mode, F, H)
    g = torch.Generator().manual_seed(7)
    B, S = len(rows), off[-1]
    x = torch.randn(S, F, generator=g).requires_grad_()
    h0 = torch.randn(B, H, generator=g).requires_grad_()
    c0 = torch.randn(B, H, generator=g).requires_grad_() if mode == "lstm" else None
    y, hn, cn = packed_rnn(mode, x, bs, *weights(m), h0=h0, c0=c0, reset=reset, engine=engine)
    gy, gh, gc = torch.randn(S, H, generator=g), torch.randn(B, H, generator=g), torch.randn(B, H, generator=g)
    loss = (y * gy).sum() + (hn * gh).sum() + ((cn * gc).sum() if cn is not None else 0)

    ref = torch.zeros(())
    for r, (segs, first_reset) in enumerate(rows):
        t = 0
        for k, L in enumerate(segs):
            pos = torch.tensor([off[s] + r for s in range(t, t + L)])
            use_state = k == 0 and not first_reset
            out, h_r, c_r = run_alone(m, mode, x[pos], h0[r] if use_state else None,
                                      (c0[r] if use_state and c0 is not None else None))
            torch.testing.assert_close(y[pos], out, rtol=1e-5, atol=1e-5, msg=lambda s, r=r, k=k: f"row {r} seg {k}: {s}")
            ref = ref + (out * gy[pos]).sum()
            t += L
        torch.testing.assert_close(hn[r], h_r, rtol=1e-5, atol=1e-5)
        ref = ref + (h_r * gh[r]).sum()
        if mode == "lstm":
            torch.testing.assert_close(cn[r], c_r, rtol=1e-5, atol=1e-5)
            ref = ref + (c_r * gc[r]).sum()
    inputs = [x, *weights(m), h0, c0]
    assert_all_close(grads(loss, inputs), grads(ref, inputs), "grads with resets")


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_st, F=st.integers(1, 4), H=st.sampled_from([2, 17]))
@example(rows=[([3, 4], False), ([2], True), ([1, 1, 1], False)], F=2, H=17)
def test_packed_reset_equals_separate_sequences(threads, mode, rows, F, H):
    check_resets(mode, rows, F, H, "packed")


@pytest.mark.parametrize("engine", ["reference", "blocks"])
@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=6, deadline=None)
@given(rows=rows_st, F=st.integers(1, 3), H=st.sampled_from([2, 17]))
@example(rows=[([3, 4], False), ([2], True), ([1, 1, 1], False)], F=2, H=5)
def test_other_engines_reset_equals_separate_sequences(engine, mode, rows, F, H):
    check_resets(mode, rows, F, H, engine)


@pytest.mark.parametrize("engine", ["packed", "reference"])
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_float64_with_resets_and_states(threads, engine, mode):
    if engine == "reference" and threads > 1:
        pytest.skip("threads only matter to the compiled engine")
    torch.manual_seed(0)
    m = module(mode, 2, 3, dtype=torch.float64)
    lengths = [4, 3, 3, 1]
    bs, off = layout(lengths)
    S, B = off[-1], len(lengths)
    reset = torch.zeros(S, dtype=torch.bool)
    reset[off[2] + 0] = True  # row 0 starts a new sequence at t = 2
    reset[off[0] + 2] = True  # row 2 ignores its initial state
    x = torch.randn(S, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(B, 3, dtype=torch.float64, requires_grad=True)
    w = [p.detach().clone().requires_grad_() for p in weights(m)]

    def f(x, w_ih, w_hh, b_ih, b_hh, h0, c0=None):
        y, hn, cn = packed_rnn(mode, x, bs, w_ih, w_hh, b_ih, b_hh, h0=h0, c0=c0, reset=reset, engine=engine)
        return (y, hn) if cn is None else (y, hn, cn)

    inputs = (x, *w, h0, c0) if mode == "lstm" else (x, *w, h0)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
