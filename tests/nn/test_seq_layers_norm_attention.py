"""Normalization, attention and wrapper layers on ragged batches.

BatchNormalization's training statistics are the statistics of the batch's real steps (a reference on
their concatenation), whatever the layout: padding never enters them. LayerNormalization,
MultiHeadAttention (self-attention within each sequence, optionally causal), AttentionPooling1D and
TimeDistributed equal every sequence run alone (outputs, input and weight gradients); SpatialDropout1D
shares one channel mask per sequence.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as Fn
from hypothesis import given, settings
from hypothesis import strategies as st

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError
from padless.layers import (
    LSTM,
    AttentionPooling1D,
    BatchNormalization,
    Conv1D,
    Dense,
    LayerNormalization,
    MultiHeadAttention,
    SpatialDropout1D,
    TimeDistributed,
)
from padless.nn import Layer, deserialize_layer, map_values, serialize_layer

TOL = dict(rtol=1e-5, atol=1e-5)
torch.set_num_threads(1)
LENGTHS = [7, 1, 12, 3, 7, 2, 20, 5]
ORDER = [3, 0, 7, 1, 6, 2, 5, 4]


def _seqs(lengths, F, seed=0, scale=2.0, shift=1.0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(int(t), F, generator=g) * scale + shift for t in lengths]


def _randomize(layer, seed=5, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return layer


def _alone_check(layer, ref, xs, merge_cost, per_sequence_out=False, order=ORDER):
    """Ragged batch == each sequence alone through ``ref`` (outputs, input grads, weight grads)."""
    xs = [xs[i] for i in order]
    params = list(layer.parameters())
    xin = [x.clone().requires_grad_() for x in xs]
    batch = RaggedBatch.from_list(xin, merge_cost=merge_cost)
    out = layer(batch)
    outs = list(batch.unsort(out)) if per_sequence_out else out.to_list()
    g = torch.Generator().manual_seed(9)
    w = [torch.randn(o.shape, generator=g) for o in outs]
    grads = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(outs, w, strict=True)), xin + params)
    xr = [x.clone().requires_grad_() for x in xs]
    refs = [ref(x) for x in xr]
    for o, r in zip(outs, refs, strict=True):
        torch.testing.assert_close(o, r, **TOL)
    rgrads = torch.autograd.grad(sum((r * wi).sum() for r, wi in zip(refs, w, strict=True)), xr + params)
    for a, b in zip(grads, rgrads, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    return batch, out


# ---------------------------------------------------------------------------------------------- batch norm
@pytest.mark.parametrize("merge_cost", [0.0, 1e9])
@pytest.mark.parametrize("order", [list(range(8)), ORDER])
def test_batchnorm_training_statistics_are_the_real_steps(merge_cost, order):
    bn = _randomize(BatchNormalization(momentum=0.9, input_size=3))
    bn.train()
    xs = [_seqs(LENGTHS, 3)[i] for i in order]
    xin = [x.clone().requires_grad_() for x in xs]
    batch = RaggedBatch.from_list(xin, merge_cost=merge_cost)
    assert batch.plan.exact == (merge_cost == 0.0)
    if not batch.plan.exact:  # padding holds garbage: it must not matter
        batch = batch.with_data(torch.where(batch.plan.tensor("valid")[:, None], batch.data, 1e6))
    outs = bn(batch).to_list()
    g = torch.Generator().manual_seed(1)
    w = [torch.randn(o.shape, generator=g) for o in outs]
    grads = torch.autograd.grad(sum((o * wi).sum() for o, wi in zip(outs, w, strict=True)), xin + [bn.gamma, bn.beta])
    # reference: the concatenation of the real steps, Keras' formula (biased variance)
    xr = [x.clone().requires_grad_() for x in xs]
    cat = torch.cat(xr)
    mean, var = cat.mean(0), cat.var(0, unbiased=False)
    ref = (cat - mean) / torch.sqrt(var + 1e-3) * bn.gamma + bn.beta
    torch.testing.assert_close(torch.cat(outs), ref, **TOL)
    rgrads = torch.autograd.grad((ref * torch.cat(w)).sum(), xr + [bn.gamma, bn.beta])
    for a, b in zip(grads, rgrads, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    # moving statistics: moving = momentum * moving + (1 - momentum) * batch
    torch.testing.assert_close(bn.moving_mean, 0.1 * mean.detach(), **TOL)
    torch.testing.assert_close(bn.moving_variance, 0.9 + 0.1 * var.detach(), **TOL)


def test_batchnorm_inference_vectors_and_frozen():
    bn = _randomize(BatchNormalization(input_size=2))
    bn.moving_mean.fill_(0.5)
    bn.moving_variance.fill_(4.0)
    xs = _seqs([4, 1, 6], 2)
    bn.eval()
    b = RaggedBatch.from_list(xs, merge_cost=1e9)
    for o, x in zip(bn(b).to_list(), xs, strict=True):  # inference: moving statistics, per step
        torch.testing.assert_close(o, (x - 0.5) / math.sqrt(4.001) * bn.gamma + bn.beta, **TOL)
    bn.train()
    v = torch.randn(5, 2)  # per-sequence vectors: statistics over the rows
    ref = (v - v.mean(0)) / torch.sqrt(v.var(0, unbiased=False) + 1e-3) * bn.gamma + bn.beta
    torch.testing.assert_close(bn(v), ref, **TOL)
    frozen = BatchNormalization(trainable=False, input_size=2)
    frozen.train()
    torch.testing.assert_close(frozen(v), v / math.sqrt(1.001), **TOL)  # Keras: frozen = inference mode
    assert frozen.moving_mean.abs().sum() == 0 and not frozen.gamma.requires_grad


def test_layernorm_per_step_and_per_sequence():
    ln = _randomize(LayerNormalization(input_size=4))
    for mc in (0.0, 1e9):
        _alone_check(ln, lambda x: Fn.layer_norm(x, (4,), ln.gamma, ln.beta, 1e-3), _seqs(LENGTHS, 4), mc)
    v = torch.randn(3, 4)
    torch.testing.assert_close(ln(v), Fn.layer_norm(v, (4,), ln.gamma, ln.beta, 1e-3))
    plain = LayerNormalization(center=False, scale=False, epsilon=1e-5, input_size=4)
    assert list(plain.parameters()) == []
    torch.testing.assert_close(plain(v), Fn.layer_norm(v, (4,), eps=1e-5))


# ---------------------------------------------------------------------------------------------- attention
def ref_mha(layer: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """One sequence alone, written out: softmax(q k^T / sqrt(dk)) v per head, then the output projection."""
    H = layer.num_heads

    def proj(kernel, bias):
        y = torch.einsum("tf,fhd->htd", x, kernel)
        return y + bias[:, None, :] if bias is not None else y

    q, k, v = (proj(layer.query_kernel, layer.query_bias), proj(layer.key_kernel, layer.key_bias),
               proj(layer.value_kernel, layer.value_bias))
    s = q @ k.transpose(1, 2) / math.sqrt(layer.key_dim)  # (H, T, T)
    if layer.causal_mask:
        T = x.shape[0]
        s = s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), -math.inf)
    o = torch.softmax(s, -1) @ v  # (H, T, dv)
    y = torch.einsum("htd,hdo->to", o, layer.output_kernel)
    assert o.shape[0] == H
    return y + layer.output_bias if layer.output_bias is not None else y


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("merge_cost", [0.0, 1e9])
def test_mha_equals_each_sequence_alone(causal, merge_cost):
    torch.manual_seed(0)
    mha = _randomize(MultiHeadAttention(3, 4, value_dim=5, causal=causal, input_size=6), scale=0.3)
    _, out = _alone_check(mha, lambda x: ref_mha(mha, x), _seqs(LENGTHS, 6, scale=1.0, shift=0.0), merge_cost)
    assert torch.isfinite(out.data).all()  # padded query rows are not all -inf: no NaN anywhere
    assert mha.causal_mask == causal and mha.output_size == 6
    assert not mha.causal  # a causal mask still needs every earlier step: no streaming, no TBPTT


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6), heads=st.integers(1, 3),
       dk=st.integers(1, 4), causal=st.booleans(), use_bias=st.booleans(), out=st.one_of(st.none(), st.integers(1, 3)))
def test_mha_hypothesis(lengths, heads, dk, causal, use_bias, out):
    mha = _randomize(MultiHeadAttention(heads, dk, causal=causal, use_bias=use_bias, output_shape=out,
                                        input_size=3), scale=0.3)
    _alone_check(mha, lambda x: ref_mha(mha, x), _seqs(lengths, 3, scale=1.0, shift=0.0), 1e9,
                 order=list(reversed(range(len(lengths)))))


def test_mha_errors_and_config():
    for bad in (dict(num_heads=0, key_dim=4), dict(num_heads=2, key_dim=2.5), dict(num_heads=2, key_dim=None)):
        with pytest.raises(ConfigError, match=r"MultiHeadAttention: (num_heads|key_dim) must be a positive.*"
                                              r"each\* head"):
            MultiHeadAttention(**bad)
    with pytest.raises(ConfigError, match="dropout"):
        MultiHeadAttention(2, 4, dropout=1.0)
    with pytest.raises(ConfigError, match="one vector per sequence"):
        MultiHeadAttention(2, 4, input_size=3)(torch.ones(2, 3))
    m = MultiHeadAttention(2, 4, output_shape=(7,), causal=True, dropout=0.1, name="att", input_size=3)
    again = deserialize_layer(serialize_layer(m))
    assert again.get_config() == m.get_config() and again.output_size == 7 and again.causal_mask
    assert again.get_config()["causal"] is True
    assert "later steps" in MultiHeadAttention(1, 2).noncausal_reason()
    assert "no attention cache" in MultiHeadAttention(1, 2, causal=True).noncausal_reason()


def test_mha_dropout_only_while_training():
    mha = MultiHeadAttention(2, 3, dropout=0.5, input_size=2)
    xs = _seqs([5, 3], 2)
    mha.eval()
    a, b = (mha(RaggedBatch.from_list(xs)).data for _ in range(2))
    torch.testing.assert_close(a, b)
    mha.train()
    assert not torch.allclose(mha(RaggedBatch.from_list(xs)).data, a)


def ref_attention_pool(layer: AttentionPooling1D, x: torch.Tensor) -> torch.Tensor:
    h = x if layer.units is None else torch.tanh(x @ layer.hidden_kernel + layer.hidden_bias)
    a = torch.softmax((h @ layer.score_kernel)[:, 0], 0)
    return (a[:, None] * x).sum(0)


@pytest.mark.parametrize("units", [None, 4])
@pytest.mark.parametrize("merge_cost", [0.0, 1e9])
def test_attention_pooling_equals_alone(units, merge_cost):
    pool = _randomize(AttentionPooling1D(units, input_size=3))
    assert not pool.causal and pool.sequence_out(True) is False
    _alone_check(pool, lambda x: ref_attention_pool(pool, x), _seqs(LENGTHS, 3), merge_cost, per_sequence_out=True)
    again = deserialize_layer(serialize_layer(pool))
    assert again.get_config() == pool.get_config()


# ---------------------------------------------------------------------------------------------- wrappers
def test_time_distributed_dense_and_round_trip():
    td = _randomize(TimeDistributed(Dense(4, activation="sigmoid"), input_size=3))
    dense = td.layer
    _alone_check(td, lambda x: dense(x), _seqs(LENGTHS, 3), 1e9)
    v = torch.randn(2, 3)
    torch.testing.assert_close(td(v), dense(v))  # per-sequence vectors too
    again = deserialize_layer(serialize_layer(td))
    again.load_state_dict(td.state_dict())
    torch.testing.assert_close(again(v), td(v))
    assert again.get_config() == td.get_config() and again.output_size == 4 and td.activation == "sigmoid"
    assert td.causal
    with pytest.raises(ConfigError, match=r"TimeDistributed\(LSTM\).*reads whole sequences"):
        TimeDistributed(LSTM(3))
    with pytest.raises(ConfigError, match="reads whole sequences"):
        TimeDistributed(Conv1D(3, 2))
    with pytest.raises(ConfigError, match="wraps a layer"):
        TimeDistributed("Dense")


def test_time_distributed_user_layer_and_torch_module():
    class Double(Layer):
        def forward(self, x):
            return map_values(x, lambda t: 2 * t)

    td = TimeDistributed(Double(), input_size=2)
    b = RaggedBatch.from_list(_seqs([3, 1], 2))
    torch.testing.assert_close(td(b).data, 2 * b.data)
    td2 = TimeDistributed(torch.nn.Linear(2, 5), input_size=2)
    assert td2.output_size == 5 and td2(b).data.shape == (4, 5)


def test_spatial_dropout_one_mask_per_sequence():
    torch.manual_seed(0)
    sd = SpatialDropout1D(0.5)
    xs = [torch.ones(t, 16) for t in (9, 1, 4, 6)]
    b = RaggedBatch.from_list(xs, merge_cost=1e9)
    sd.train()
    outs = sd(b).to_list()
    masks = []
    for o in outs:
        assert set(o.unique().tolist()) <= {0.0, 2.0}
        assert (o == o[:1]).all()  # the same channels dropped at every step of the sequence
        masks.append(o[0])
    assert any(not torch.equal(masks[0], m) for m in masks[1:])  # sequences draw their own masks
    sd.eval()
    assert sd(b) is b
    with pytest.raises(ConfigError, match="rate"):
        SpatialDropout1D(1.0)
    assert deserialize_layer(serialize_layer(SpatialDropout1D(0.2))).rate == 0.2


@pytest.mark.parametrize("layer", [
    BatchNormalization(momentum=0.9, epsilon=1e-4, center=False, name="bn"), LayerNormalization(scale=False),
    AttentionPooling1D(5, activation="relu"), TimeDistributed(Dense(2, use_bias=False)),
], ids=["bn", "ln", "attpool", "td"])
def test_config_round_trip_with_weights(layer):
    layer.build(3)
    _randomize(layer)
    again = deserialize_layer(serialize_layer(layer))
    assert type(again) is type(layer) and again.get_config() == layer.get_config()
    again.load_state_dict(layer.state_dict())  # same weights and buffers, same names
    b = RaggedBatch.from_list(_seqs([4, 2], 3))
    layer.eval(), again.eval()
    a1, a2 = layer(b), again(b)
    torch.testing.assert_close(getattr(a1, "data", a1), getattr(a2, "data", a2))
    with pytest.raises(ConfigError, match="does not take the argument"):
        type(layer).from_config({**layer.get_config(), "beta_initializer": "zeros"})
