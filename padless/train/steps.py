"""Steps: what one forward (and backward) pass runs on, and the forward pass with its loss.

Owns: :class:`Step` (a laid-out batch, its targets, which outputs carry a loss, the states carried in and
the hook that receives the states carried out), :class:`BatchStepper` (index batches of whole sequences
-> steps, every batching mode), :func:`merge_cost_for` (how much padding may replace a kernel call),
:class:`StepOutput` and :func:`forward_loss` (one step's predictions, loss sum and item count), and
:func:`local_backward` (one process's optimizer step).

Truncated-BPTT windows become steps in :mod:`padless.train.tbptt`; both kinds of stepper have the same
small interface (``steps(items)``, ``carry_tensors()``, ``load_carry(tensors, device)``), so the trainer
and the inference loop treat them alike.

Does not own: the loop (:mod:`padless.train.trainer`, :mod:`padless.train.inference`), layouts
(``padless.data``).

Example:
    >>> import numpy as np
    >>> from padless.data import RaggedArray
    >>> from padless.nn import GRU, LayerStack
    >>> m = LayerStack([GRU(2, input_size=1)])
    >>> xr = RaggedArray.from_list([np.ones((3, 1)), np.ones((2, 1))])
    >>> [s.batch.plan.lengths.tolist() for s in BatchStepper(m, xr, None, "cpu").steps([[0, 1]])]
    [[3, 2]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from padless.data.collate import RaggedBatch, collate
from padless.data.inputs import Targets
from padless.data.ragged import RaggedArray
from padless.errors import DataError
from padless.nn.engine import select_engine
from padless.nn.graph import Graph
from padless.train.compile import Compiled

__all__ = ["Step", "BatchStepper", "StepOutput", "forward_loss", "local_backward", "merge_cost_for", "DEFAULT_MERGE_COST",
           "per_step_targets", "packed_engine_runs", "engine_note"]

# A kernel call's overhead, in row-steps, above which neighbouring segments are merged (padding a few
# steps instead of calling the kernel again). Measured by benchmarks/run.py; 0 disables merging.
DEFAULT_MERGE_COST = 100.0


def merge_cost_for(model: Graph, merge_cost: float | str = "auto", device: torch.device | str = "cpu") -> float:
    """The merge cost to lay out batches for ``model``: 0 (exact, padding-free plans) when a layer needs exact
    final states or when the packed engine runs the recurrent layers (one call per layer whatever the plan);
    else :data:`DEFAULT_MERGE_COST` (padding instead of a dense kernel call)."""
    if model.needs_exact_states:
        return 0.0
    if merge_cost != "auto":
        return float(merge_cost)
    if packed_engine_runs(device):
        return 0.0
    return DEFAULT_MERGE_COST


def packed_engine_runs(device: torch.device | str = "cpu") -> bool:
    """True when the packed engine (or cuDNN's packed call) runs float32 recurrent layers on ``device``."""
    return select_engine(device, torch.float32).engine != "blocks"


def engine_note(model: Graph, device: torch.device | str = "cpu") -> str:
    """``"engine packed"`` (or ``cudnn`` / ``blocks``): which engine runs ``model``'s recurrent layers, for the
    progress line; ``""`` for a model without state layers (nothing recurrent to run)."""
    if not model.state_layers:
        return ""
    dtype = next(iter(model.parameters()), torch.zeros(0)).dtype
    return f"engine {select_engine(device, dtype).engine}"


@dataclass
class Step:
    """One training/evaluation step: a laid-out batch and what its loss is taken on.

    Attributes:
        batch: the inputs.
        y: targets for the selected outputs (None: no targets, e.g. predict).
        select: (B,) bool over *sorted* rows whose per-sequence output carries a loss (None: all rows).
        initial_states: per state layer, initial state in batch order (None: zeros).
        on_states: called with every state layer's final states (sorted rows) after the forward pass.
        rows: original sequence index of each sorted row (for collecting outputs).
        idx: original sequence index of each batch row (batch order).
        weights: (n,) weight of each loss item (None: all 1).
        slot_steps: TBPTT slot-steps this step occupies (0 for plain batches).
        slot_real_steps: of those, the real ones.
    """

    batch: RaggedBatch
    y: torch.Tensor | None
    select: torch.Tensor | None = None
    initial_states: list[Any] | None = None
    on_states: Callable[[list[Any]], None] | None = None
    rows: np.ndarray | None = None
    idx: np.ndarray | None = None
    weights: torch.Tensor | None = None
    slot_steps: int = 0
    slot_real_steps: int = 0

    @property
    def has_loss(self) -> bool:
        return self.y is not None and int(self.y.shape[0]) > 0


def per_step_targets(values: torch.Tensor, integer: bool) -> torch.Tensor:
    """Per-step targets in layout order; one integer class per step becomes an int64 vector."""
    if integer and values.shape[-1] == 1:
        return values[:, 0].long()
    return values


class BatchStepper:
    """Index batches of whole sequences -> :class:`Step` objects (every batching mode).

    Args:
        model: the model (whether it returns sequences; whether final states must be exact).
        xr: the inputs.
        targets: the targets, or None (predict).
        device: where batches go.
        merge_cost: see :func:`merge_cost_for`.
        integer: per-step targets are class ids (cross-entropy losses).
        sample_weights: (N,) per-sequence weights (per-step items take their sequence's weight), or None.
    """

    def __init__(self, model: Graph, xr: RaggedArray, targets: Targets | None, device: torch.device | str,
                 merge_cost: float | str = "auto", integer: bool = False,
                 sample_weights: torch.Tensor | None = None) -> None:
        self.per_step = model.returns_sequences
        self.xr, self.targets, self.device = xr, targets, torch.device(device)
        self.merge_cost = merge_cost_for(model, merge_cost, self.device)
        self.integer = integer
        self.sample_weights = sample_weights

    def steps(self, batches: Iterable[Sequence[int]]) -> Iterator[Step]:
        for idx in batches:
            idx = np.asarray(idx, dtype=np.int64)
            batch = collate(self.xr, idx, merge_cost=self.merge_cost, device=self.device)
            rows = idx[batch.sorted_indices]
            y = None
            if self.targets is not None:
                if self.per_step:
                    yb = collate(self.targets.values, idx, merge_cost=self.merge_cost, device=self.device)
                    y = per_step_targets(yb.valid_data(), self.integer)
                else:
                    y = self.targets.values.index_select(0, torch.from_numpy(rows)).to(self.device)
            yield Step(batch, y, rows=rows, idx=idx, weights=self._weights(batch, rows))

    def _weights(self, batch: RaggedBatch, rows: np.ndarray) -> torch.Tensor | None:
        if self.sample_weights is None:
            return None
        w = self.sample_weights.index_select(0, torch.from_numpy(rows)).to(self.device)  # (B,) sorted rows
        if not self.per_step:
            return w
        p = batch.plan
        row_of = p.row_of_pos[p.valid] if not p.exact else p.row_of_pos  # layout order of real steps
        return w.index_select(0, torch.from_numpy(row_of).to(self.device))

    def carry_tensors(self) -> dict[str, torch.Tensor]:
        """State carried between steps (none for whole-sequence batches)."""
        return {}

    def load_carry(self, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
        """Nothing to restore for whole-sequence batches."""


@dataclass
class StepOutput:
    """One forward pass: predictions (logits when the loss folds the activation), loss sum, item count."""

    pred: torch.Tensor
    loss_sum: torch.Tensor | None
    n: int
    weight_sum: float


def forward_loss(run: Callable[..., Any], compiled: Compiled | None, step: Step, per_step: bool) -> StepOutput:
    """Run the model on ``step`` and take its loss (when it has targets).

    Args:
        run: ``model.run_states`` (or its DDP wrapper).
        compiled: the loss and metrics (None: predict on an uncompiled model).
        step: the step.
        per_step: the model returns sequences.

    Returns:
        Predictions in layout order (per step: real positions only) or sorted row order (per sequence,
        only the selected rows), the summed (weighted) item loss, the item count and the weight sum.
    """
    logits = compiled is not None and compiled.uses_logits
    out, states = run(step.batch, logits, step.initial_states, step.on_states is not None)
    if step.on_states is not None:
        step.on_states(states)
    pred = out.valid_data() if per_step else out  # (S_real, K) layout order, or (B, K) sorted rows
    if step.select is not None and not per_step:
        pred = pred[step.select]
    if not (step.has_loss and compiled is not None):
        return StepOutput(pred, None, 0, 0.0)
    item = compiled.per_item_loss(pred, step.y)  # (n,)
    n = int(item.shape[0])
    if step.weights is not None:
        w = step.weights.to(item.dtype)
        return StepOutput(pred, (item * w).sum(), n, float(w.sum()))
    return StepOutput(pred, item.sum(), n, float(n))


def local_backward(opt: torch.optim.Optimizer, loss_sum: torch.Tensor, n: int, index: int) -> None:
    """Backpropagate the mean item loss and step ``opt`` (one process).

    Raises:
        DataError: the loss is not finite (named by the step's index).
    """
    if not torch.isfinite(loss_sum):
        raise DataError(f"the loss became {float(loss_sum.detach())} at batch {index}: check the inputs/targets for "
                        "extreme values or lower the learning rate")
    opt.zero_grad(set_to_none=True)
    (loss_sum / n).backward()
    opt.step()
