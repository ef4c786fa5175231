"""Fixtures of the engine tests: the compiled engine (built once per session) and thread settings."""

from __future__ import annotations

import pytest
import torch

from padless.nn.engine import _build


@pytest.fixture(scope="session")
def engine_ops():
    res = _build.load_engine()
    if not res.ok:
        if res.reason.startswith(("no C++ compiler", "ninja is not installed")):
            pytest.skip(f"packed engine cannot be built here: {res.reason}")
        pytest.fail(f"the packed engine did not build: {res.reason}")
    return res.ops()


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request, engine_ops):
    """Run with 1 thread, or 2 threads with the row split forced on even for tiny shapes (and the
    cache-line-padded row strides, so both layouts are covered)."""
    old_n = torch.get_num_threads()
    old_work = engine_ops.tuning("parallel_work", 0.0 if request.param > 1 else 1e18)
    old_pad = engine_ops.tuning("pad_rows", 1.0 if request.param > 1 else 0.0)
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(old_n)
    engine_ops.tuning("parallel_work", old_work)
    engine_ops.tuning("pad_rows", old_pad)
