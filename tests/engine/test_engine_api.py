"""packed_rnn's argument checks (ConfigError / DataError naming the problem) and the runnable examples in
the engine's docstrings."""

from __future__ import annotations

import doctest

import pytest
import torch
from engine_helpers import layout, module, weights

import padless.nn.engine as engine_pkg
from padless.errors import ConfigError, DataError
from padless.nn.engine import _select, api, packed_rnn


@pytest.fixture
def case():
    m = module("lstm", 3, 4)
    bs, off = layout([4, 2, 1])
    return m, bs, torch.randn(off[-1], 3)


@pytest.mark.parametrize("engine", ["packed", "reference", "blocks"])
def test_layout_errors_are_data_errors(engine_ops, case, engine):
    m, bs, x = case
    with pytest.raises(DataError, match="non-increasing"):
        packed_rnn("lstm", x, torch.tensor([1, 2, 1, 3]), *weights(m), engine=engine)
    with pytest.raises(DataError, match="sum to"):
        packed_rnn("lstm", x[:-1], bs, *weights(m), engine=engine)


def test_shape_and_argument_errors(case):
    m, bs, x = case
    with pytest.raises(ConfigError, match="mode"):
        packed_rnn("transformer", x, bs, *weights(m))
    with pytest.raises(ConfigError, match="engine"):
        packed_rnn("lstm", x, bs, *weights(m), engine="gpu")
    with pytest.raises(DataError, match="h0"):
        packed_rnn("lstm", x, bs, *weights(m), h0=torch.zeros(2, 4))
    with pytest.raises(DataError, match="weight_hh"):
        packed_rnn("gru", x, bs, *weights(m))
    with pytest.raises(DataError, match="batch_sizes"):
        packed_rnn("lstm", x, bs.to(torch.int32), *weights(m))
    with pytest.raises(DataError, match="reset"):
        packed_rnn("lstm", x, bs, *weights(m), reset=torch.zeros(x.shape[0]))
    g = module("gru", 3, 4)
    with pytest.raises(ConfigError, match="c0"):
        packed_rnn("gru", x, bs, *weights(g), c0=torch.zeros(3, 4))
    with pytest.raises(DataError, match="float64"):
        packed_rnn("lstm", x.double(), bs, *weights(m))


def test_no_bias_and_one_bias(engine_ops):
    m = module("gru", 2, 5, bias=True)
    bs, off = layout([3, 3, 1])
    x = torch.randn(off[-1], 2)
    w_ih, w_hh, b_ih, _ = weights(m)
    for b in [(None, None), (b_ih, None), (None, b_ih)]:
        got = packed_rnn("gru", x, bs, w_ih, w_hh, *b, engine="packed")
        ref = packed_rnn("gru", x, bs, w_ih, w_hh, *b, engine="reference")
        for u, v in zip(got[:2], ref[:2]):
            torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mod", [engine_pkg, api, _select])
def test_docstring_examples_run(engine_ops, mod):
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0
