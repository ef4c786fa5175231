"""Shared fixtures: ``each_engine`` runs a module's tests under both recurrent engines (the packed engine,
chosen by ``PADLESS_ENGINE=auto`` wherever it builds, and the block engine it falls back to), so CI proves both
exact. A module opts in with ``pytestmark = pytest.mark.usefixtures("each_engine")``."""

from __future__ import annotations

import pytest
import torch

from padless.nn.engine import select_engine


@pytest.fixture(scope="module", params=["auto", "blocks"], ids=["engine-auto", "engine-blocks"])
def each_engine(request):
    """Set ``PADLESS_ENGINE`` for the module's tests; yields the engine a CPU float32 layer then runs
    (module scope, so hypothesis tests may use it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PADLESS_ENGINE", request.param)
        yield select_engine("cpu", torch.float32).engine
