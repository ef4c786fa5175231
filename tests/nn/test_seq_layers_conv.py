"""Conv1D and windowed pooling on ragged batches equal every sequence run alone (a torch reference on that
sequence, and the same layer on a batch of one): outputs, input gradients and weight gradients, for exact
and merged plans, any row order, lengths shorter than the window, length 1, strides and dilations; the
new lengths of strided layers; the context a causal convolution carries; the errors for windows that do
not fit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as Fn
from hypothesis import given, settings
from hypothesis import strategies as st

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError, DataError
from padless.layers import AveragePooling1D, Conv1D, MaxPooling1D
from padless.nn import deserialize_layer, serialize_layer
from padless.nn.windows import window_table

TOL = dict(rtol=1e-5, atol=1e-5)
torch.set_num_threads(1)


def _seqs(lengths, F, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(int(t), F, generator=g) for t in lengths]


def _pads(L, k, s, d, padding):
    """Keras/TF padding of one sequence of length L: (left, right)."""
    span = d * (k - 1) + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return span - 1, 0
    out = -(-L // s)
    total = max((out - 1) * s + span - L, 0)
    return total // 2, total - total // 2


def ref_conv(layer: Conv1D, x: torch.Tensor) -> torch.Tensor:
    """One sequence alone through torch's conv1d, padded by Keras' rule: (T_out, filters)."""
    left, right = _pads(x.shape[0], layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding)
    xt = Fn.pad(x.T.unsqueeze(0), (left, right))  # (1, F, T + pads), zeros
    y = Fn.conv1d(xt, layer.kernel.permute(2, 1, 0), layer.bias, stride=layer.strides, dilation=layer.dilation_rate)
    return layer._act(y[0].T)


def ref_pool(layer, x: torch.Tensor) -> torch.Tensor:
    """One sequence alone, window by window (a loop: this is the reference)."""
    k, s = layer.pool_size, layer.strides
    L = x.shape[0]
    left, _ = _pads(L, k, s, 1, layer.padding)
    n = (L - k) // s + 1 if layer.padding == "valid" else -(-L // s)
    outs = []
    for t in range(n):
        lo, hi = max(t * s - left, 0), min(t * s - left + k, L)
        win = x[lo:hi]
        outs.append(win.max(0).values if isinstance(layer, MaxPooling1D) else win.mean(0))
    return torch.stack(outs)


def check_layer(layer, ref, xs, merge_cost=0.0, order=None, seed=1):
    """Outputs and gradients of one ragged batch == each sequence alone (torch reference and batch of one)."""
    order = list(range(len(xs))) if order is None else order
    xs = [xs[i] for i in order]
    params = [p for p in layer.parameters()]
    g = torch.Generator().manual_seed(seed)
    # padless: one ragged batch
    xin = [x.clone().requires_grad_() for x in xs]
    batch = RaggedBatch.from_list(xin, merge_cost=merge_cost)
    out = layer(batch)
    outs = out.to_list()
    w = [torch.randn(o.shape, generator=g) for o in outs]
    loss = sum((o * wi).sum() for o, wi in zip(outs, w, strict=True))
    grads = torch.autograd.grad(loss, xin + params)
    # reference: each sequence alone
    xr = [x.clone().requires_grad_() for x in xs]
    refs = [ref(layer, x) for x in xr]
    for o, r in zip(outs, refs, strict=True):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, **TOL)
    rgrads = torch.autograd.grad(sum((r * wi).sum() for r, wi in zip(refs, w, strict=True)), xr + params)
    for a, b in zip(grads, rgrads, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    # the same layer on a batch of one, sequence by sequence
    for x, o in zip(xs, outs, strict=True):
        torch.testing.assert_close(layer(RaggedBatch.from_list([x])).to_list()[0], o, **TOL)
    return out


LENGTHS = [7, 1, 12, 3, 7, 2, 20, 5]


@pytest.mark.parametrize("padding", ["same", "causal"])
@pytest.mark.parametrize("k,s,d", [(3, 1, 1), (4, 1, 1), (5, 2, 1), (3, 3, 2), (2, 1, 4), (1, 2, 1)])
@pytest.mark.parametrize("merge_cost", [0.0, 1e9])
def test_conv_same_causal_equals_alone(padding, k, s, d, merge_cost):
    torch.manual_seed(0)
    layer = Conv1D(4, k, strides=s, padding=padding, dilation_rate=d, activation="tanh", input_size=3)
    out = check_layer(layer, ref_conv, _seqs(LENGTHS, 3), merge_cost, order=[3, 0, 7, 1, 6, 2, 5, 4])
    assert sorted(out.lengths.tolist()) == sorted(-(-L // s) for L in LENGTHS)


@pytest.mark.parametrize("k,s,d", [(3, 1, 1), (2, 2, 1), (3, 2, 2), (1, 1, 1)])
@pytest.mark.parametrize("merge_cost", [0.0, 1e9])
def test_conv_valid_equals_alone(k, s, d, merge_cost):
    torch.manual_seed(1)
    span = d * (k - 1) + 1
    lengths = [L for L in LENGTHS if L >= span] + [span]  # the shortest that fits: one output step
    layer = Conv1D(5, k, strides=s, dilation_rate=d, use_bias=False, input_size=2)
    out = check_layer(layer, ref_conv, _seqs(lengths, 2), merge_cost)
    assert out.lengths.tolist() == [(L - span) // s + 1 for L in lengths]


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(1, 16), min_size=1, max_size=7), k=st.integers(1, 5), s=st.integers(1, 3),
       d=st.integers(1, 3), padding=st.sampled_from(["valid", "same", "causal"]), merge=st.booleans(),
       data=st.data())
def test_conv_hypothesis(lengths, k, s, d, padding, merge, data):
    span = d * (k - 1) + 1
    if padding == "valid":
        lengths = [max(L, span) for L in lengths]
    torch.manual_seed(2)
    layer = Conv1D(3, k, strides=s, padding=padding, dilation_rate=d, input_size=2)
    order = data.draw(st.permutations(range(len(lengths))))
    check_layer(layer, ref_conv, _seqs(lengths, 2, seed=len(lengths)), 1e9 if merge else 0.0, order=list(order))


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(1, 14), min_size=1, max_size=7), k=st.integers(1, 4),
       s=st.one_of(st.none(), st.integers(1, 3)), padding=st.sampled_from(["valid", "same"]),
       kind=st.sampled_from([MaxPooling1D, AveragePooling1D]), merge=st.booleans())
def test_pooling_hypothesis(lengths, k, s, padding, kind, merge):
    if padding == "valid":
        lengths = [max(L, k) for L in lengths]
    layer = kind(k, strides=s, padding=padding)
    check_layer(layer, ref_pool, _seqs(lengths, 3, seed=k), 1e9 if merge else 0.0,
                order=list(reversed(range(len(lengths)))))


@pytest.mark.parametrize("kind", [MaxPooling1D, AveragePooling1D])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_pooling_defaults_and_merged_plans(kind, padding):
    layer = kind(padding=padding)  # pool_size=2, strides=pool_size
    assert (layer.pool_size, layer.strides) == (2, 2)
    lengths = [9, 2, 5, 5, 14, 3] + ([1] if padding == "same" else [])
    out = check_layer(layer, ref_pool, _seqs(lengths, 2), merge_cost=1e9, order=list(reversed(range(len(lengths)))))
    assert out.plan.exact  # new lengths: an exact plan of them


def test_average_same_divides_by_real_steps_only():
    # Keras/TF: a "same" window at the end averages the steps inside the sequence only
    x = torch.tensor([[1.0], [3.0], [2.0]])
    y = AveragePooling1D(3, strides=1, padding="same")([x])[0]
    assert y[:, 0].tolist() == [2.0, 2.0, 2.5]
    y = MaxPooling1D(3, strides=1, padding="same")([-x])[0]  # padding never wins a max, even of negatives
    assert y[:, 0].tolist() == [-1.0, -1.0, -2.0]


def test_padded_positions_are_never_read():
    torch.manual_seed(3)
    xs = _seqs([6, 2, 9, 4], 3)
    for layer in (Conv1D(4, 3, padding="same", input_size=3), Conv1D(4, 3, padding="causal", input_size=3),
                  MaxPooling1D(3, 1, padding="same"), AveragePooling1D(3, 2, padding="same")):
        b = RaggedBatch.from_list(xs, merge_cost=1e9)
        assert not b.plan.exact
        ref = [o.detach() for o in layer(b).to_list()]
        poisoned = b.data.clone()
        poisoned[~b.plan.tensor("valid")] = float("nan")
        got = layer(b.with_data(poisoned))
        assert torch.isfinite(got.data).all()  # padded outputs stay finite too
        for a, r in zip(got.to_list(), ref, strict=True):
            torch.testing.assert_close(a, r, **TOL)


def test_strided_lengths_flow_and_tables_are_cached():
    xs = _seqs([10, 3, 7, 1], 2)
    b = RaggedBatch.from_list(xs)
    conv = Conv1D(3, 3, strides=2, padding="same", input_size=2)
    out = conv(b)
    assert out.lengths.tolist() == [5, 2, 4, 1]
    assert out.sorted_indices.tolist() == b.sorted_indices.tolist()
    t1 = window_table(b.plan, conv.window, "cpu")
    assert window_table(b.plan, conv.window, "cpu") is t1  # built once per plan and window
    same = Conv1D(3, 3, padding="same", input_size=2)(b)
    assert same.plan is b.plan  # lengths kept: the input's own layout
    # chained strides: lengths keep flowing
    out2 = MaxPooling1D(2, padding="same")(out)
    assert out2.lengths.tolist() == [3, 1, 2, 1]


def test_with_lengths_helper():
    b = RaggedBatch.from_list([torch.ones(4, 1), torch.ones(2, 1), torch.ones(6, 1)])
    nb = b.with_lengths([3, 2, 1], torch.arange(6.0).view(6, 1))
    assert nb.lengths.tolist() == [2, 1, 3] and nb.plan.exact
    with pytest.raises(DataError, match="sorted order"):
        b.with_lengths([1, 2, 3], torch.zeros(6, 1))
    with pytest.raises(DataError, match="length 0"):
        b.with_lengths([3, 2, 0], torch.zeros(5, 1))
    with pytest.raises(DataError, match="positions"):
        b.with_lengths([3, 2, 1], torch.zeros(5, 1))


def test_causal_context_carries_between_chunks():
    torch.manual_seed(4)
    conv = Conv1D(3, 3, padding="causal", dilation_rate=2, input_size=2)
    assert conv.causal and conv.state_sizes == (8,)
    xs = _seqs([9, 5, 2], 2)
    full = conv(RaggedBatch.from_list(xs)).to_list()
    cut = [4, 1, 1]  # first chunk lengths (the second chunk of row 1 is longer than the context)
    first = RaggedBatch.from_list([x[:c] for x, c in zip(xs, cut, strict=True)])
    y1, (state,) = conv.call_with_state(first, None, want_state=True)
    second = RaggedBatch.from_list([x[c:] for x, c in zip(xs, cut, strict=True)], merge_cost=1e9)
    state_batch = first.unsort(state[0])  # states come in sorted rows; initial states go in batch order
    y2, _ = conv.call_with_state(second, [state_batch], want_state=True)
    for f, a, b in zip(full, y1.to_list(), y2.to_list(), strict=True):
        torch.testing.assert_close(torch.cat([a, b]), f, **TOL)


def test_causality_flags():
    assert Conv1D(2, 3, padding="causal").causal
    assert not Conv1D(2, 3, padding="causal", strides=2).causal
    assert "strides" in Conv1D(2, 3, padding="causal", strides=2).noncausal_reason()
    same = Conv1D(2, 3, padding="same")
    assert not same.causal and "padding='causal'" in same.noncausal_reason()
    assert not Conv1D(2, 1).causal  # padding="valid"
    assert not MaxPooling1D(2).causal and MaxPooling1D(1, strides=1).causal
    assert Conv1D(2, 3, padding="same", input_size=4).state_sizes == ()


@pytest.mark.parametrize("layer", [
    Conv1D(4, (3,), strides=2, padding="same", dilation_rate=1, activation="relu", use_bias=False, name="c"),
    MaxPooling1D(3, 2, "same"), AveragePooling1D(pool_size=(2,)),
], ids=["conv", "max", "avg"])
def test_config_round_trip(layer):
    layer.build(3)
    again = deserialize_layer(serialize_layer(layer))
    assert again.get_config() == layer.get_config()
    assert type(again) is type(layer)


def test_bad_arguments_and_inputs():
    with pytest.raises(ConfigError, match="does not take the argument 'kernel'"):
        Conv1D(2, 3, kernel=3)
    with pytest.raises(ConfigError, match="padding must be one of"):
        Conv1D(2, 3, padding="full")
    with pytest.raises(ConfigError, match="kernel_size must be a positive integer"):
        Conv1D(2, 0)
    with pytest.raises(ConfigError, match="channels_last"):
        MaxPooling1D(data_format="channels_first")
    with pytest.raises(ConfigError, match="padding must be 'valid' or 'same'"):
        MaxPooling1D(padding="causal")
    with pytest.raises(ConfigError, match="one vector per sequence"):
        Conv1D(2, 3, input_size=2)(torch.ones(4, 2))
    # a "valid" window longer than a sequence: which layer, which sequence, its length, the fix
    xs = _seqs([6, 2, 8], 2)
    with pytest.raises(DataError, match=r"conv_a: sequence 1 of the batch has 2 steps.*kernel_size=4.*"
                                        r"padding='same' or 'causal', or a shorter kernel_size"):
        Conv1D(2, 4, name="conv_a", input_size=2)(RaggedBatch.from_list(xs))
    with pytest.raises(DataError, match=r"Conv1D: sequence 1 .* 2 steps.*dilation 2: 5 steps"):
        Conv1D(2, 3, dilation_rate=2, input_size=2)(RaggedBatch.from_list(xs))
    # a stride/window that leaves a sequence with zero steps
    with pytest.raises(DataError, match=r"MaxPooling1D: sequence 1 of the batch has 2 steps.*pool_size=3.*"
                                        r"padding='same' or a smaller pool_size"):
        MaxPooling1D(3, strides=3)(RaggedBatch.from_list(xs))
