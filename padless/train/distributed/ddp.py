"""The model inside ``DistributedDataParallel``.

Owns: :func:`wrap_model`. Parameters and buffers are broadcast from rank 0 when wrapping, so every rank
starts from rank 0's weights; buffers are not re-broadcast at every step (padless buffers are constants
during training). Every parameter takes part in every step (ranks without targets backpropagate a zero
loss through the whole model), so DDP runs with ``find_unused_parameters=False``; a recurrent layer may
call its kernel several times per batch, which is still one autograd graph per step.

Does not own: the process group (:mod:`padless.train.distributed.context`) or the loss scaling that makes
DDP's gradient average the token-weighted global mean (the trainer).

Example:
    >>> # run, ddp = wrap_model(model, ctx); out, states = run(batch, True, None, False)
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from padless.nn.graph import Graph
from padless.train.distributed.context import DistContext

__all__ = ["wrap_model", "GraphRunner"]


class GraphRunner(torch.nn.Module):
    """DDP needs a ``forward``: this one runs ``Graph.run_states`` on laid-out batches.

    Example:
        >>> from padless.nn import GRU, LayerStack
        >>> isinstance(GraphRunner(LayerStack([GRU(2, input_size=1)])), torch.nn.Module)
        True
    """

    def __init__(self, model: Graph) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any, logits: bool, initial_states: Any, want_states: bool) -> Any:
        return self.model.run_states(batch, logits, initial_states, want_states)


def wrap_model(model: Graph, ctx: DistContext) -> tuple[Callable[..., Any], torch.nn.Module]:
    """Wrap ``model`` in ``DistributedDataParallel``; return ``(run_states-like callable, ddp module)``."""
    kw: dict[str, Any] = {"find_unused_parameters": False}
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        kw["forward_sync_buffers"] = False  # buffers are still synced once, at wrap time
    else:  # pragma: no cover - torch < 2.12
        kw["broadcast_buffers"] = False
    if ctx.device.type == "cuda":
        kw["device_ids"] = None  # inputs are already on the right device
    ddp = DDP(GraphRunner(model), **kw)

    def run(batch: Any, logits: bool = False, initial_states: Any = None, want_states: bool = False) -> Any:
        return ddp(batch, logits, initial_states, want_states)

    return run, ddp
