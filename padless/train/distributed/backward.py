"""One data-parallel optimizer step: token-weighted gradients, and every rank failing together.

Owns: :func:`distributed_backward`. The item count of the step is all-reduced; the loss is scaled by
``world_size / global count`` so that DDP's gradient average is the token-weighted mean over the global
batch; a rank with nothing to learn backpropagates zero (DDP needs every rank's gradients); a failure or a
non-finite loss on any rank stops every rank with one message. Does not own: the forward pass or the
local step (:mod:`padless.train.steps`).

Example:
    >>> # distributed_backward(ctx, optimizer, step_output, failure=None, index=7)
"""

from __future__ import annotations

from typing import Any

import torch

from padless.errors import DataError, PadlessError
from padless.train.distributed.context import DistContext

__all__ = ["distributed_backward"]


def distributed_backward(ctx: DistContext, opt: torch.optim.Optimizer, out: Any, failure: BaseException | None,
                         index: int) -> None:
    """All-reduce the step's item count, then backpropagate the scaled loss and step ``opt`` (every rank).

    Args:
        ctx: the process group.
        opt: the optimizer.
        out: this rank's :class:`~padless.train.steps.StepOutput` (None when the forward pass failed).
        failure: this rank's forward error, or None.
        index: the step's index in the epoch (for messages).

    Raises:
        PadlessError: this or another rank failed; DataError: a non-finite loss on any rank.
    """
    loss_sum = None if out is None else out.loss_sum
    n = 0 if out is None else out.n
    if failure is None and loss_sum is None:  # nothing to learn here; DDP needs this rank's zero gradients
        loss_sum = out.pred.sum() * 0.0
    finite = failure is None and bool(torch.isfinite(loss_sum.detach()))  # type: ignore[union-attr]
    n_global, n_bad, n_failed = ctx.sum([n, 0.0 if finite or failure else 1.0, 1.0 if failure else 0.0])
    if failure is not None:
        raise failure
    if n_failed:
        raise PadlessError(f"another process failed at batch {index} (see its error); stopping this one too")
    if n_bad:
        raise DataError(f"the loss became non-finite at batch {index} on {int(n_bad)} of {ctx.world_size} "
                        "processes: check the inputs/targets for extreme values or lower the learning rate")
    if n_global > 0:
        opt.zero_grad(set_to_none=True)
        (loss_sum * (ctx.world_size / n_global)).backward()  # type: ignore[operator]
        opt.step()
