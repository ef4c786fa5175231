"""Data-parallel training on ``torch.distributed``: process group, DDP, sharding, launching.

Owns: the re-exports below. The design:

* Batches, not samples, are sharded: the batch sources take ``rank``/``world_size`` and give every rank
  the same number of batches (``padless.data.samplers``), so every rank runs the same number of steps.
* TBPTT: one global slot scheduler with ``world_size x batch_size`` slots; rank ``r`` runs slots
  ``r*B .. r*B + B - 1`` of every window (``padless.train.tbptt``). Every rank runs exactly the global
  number of windows; a rank whose slots are all idle runs a one-step placeholder with zero loss.
* Gradients: the loss of a step is ``sum of item losses x world_size / global item count`` (the count is
  all-reduced), and DDP averages the gradients: the result is the gradient of the token-weighted mean
  over the global batch, exactly what one process computes on the union of the ranks' batches.

Does not own: the loop (:mod:`padless.train.trainer`).

Example:
    >>> import torch
    >>> setup_distributed(False, torch.device("cpu")) is None
    True
"""

from padless.train.distributed.context import DistContext, env_world_size, setup_distributed
from padless.train.distributed.ddp import wrap_model
from padless.train.distributed.launch import ERROR_PREFIX, LaunchError, launch_local
from padless.train.distributed.sharding import fingerprint_digest, shard_eval

__all__ = ["DistContext", "setup_distributed", "env_world_size", "wrap_model", "shard_eval", "fingerprint_digest",
           "launch_local", "LaunchError", "ERROR_PREFIX"]
