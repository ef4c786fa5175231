"""Keras' single-batch methods: one optimizer step, one evaluation or one prediction on exactly one batch.

Owns: :func:`train_on_batch` (the given sequences are one batch: one forward pass, one backward pass, one
optimizer step - through the optimizer's hooks, so a learning-rate schedule and clipping apply - and that
batch's loss and metrics), :func:`test_on_batch` (loss and metrics of the batch, no step) and
:func:`predict_on_batch` (outputs in input order), and :func:`flatten_logs` (Keras' return value: the loss,
then the metrics in compile order; one number alone when there are no metrics).

Does not own: the fit loop (:mod:`padless.train.trainer`), steps and layouts (:mod:`padless.train.steps`),
evaluation over many batches (:mod:`padless.train.inference`).

Example:
    >>> import numpy as np
    >>> from padless.nn import GRU, Dense, LayerStack
    >>> from padless.train.compile import compile_model
    >>> m = LayerStack([GRU(4, input_size=2), Dense(1)])
    >>> c = compile_model(m, "sgd", "mse", ["mae"])
    >>> x = [np.ones((3, 2), "float32"), np.ones((5, 2), "float32")]
    >>> loss, mae = train_on_batch(m, c, x, np.array([0.0, 1.0]))
    >>> sorted(train_on_batch(m, c, x, np.array([0.0, 1.0]), return_dict=True))
    ['loss', 'mae']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from padless.errors import ConfigError
from padless.nn.graph import Graph
from padless.train.compile import Compiled, ensure_optimizer
from padless.train.inference import predict, result_functions, run_eval
from padless.train.prepare import prepare_inputs, prepare_targets, sample_weights_for
from padless.train.state import EpochTotals
from padless.train.steps import BatchStepper, Step, forward_loss, local_backward

__all__ = ["train_on_batch", "test_on_batch", "predict_on_batch", "flatten_logs"]


def flatten_logs(compiled: Compiled, logs: dict[str, float], return_dict: bool) -> Any:
    """Keras' return value of the ``*_on_batch`` methods and ``evaluate``."""
    if return_dict:
        return dict(logs)
    vals = [logs["loss"]] + [logs[m] for m in compiled.metric_names if m in logs]
    return vals[0] if len(vals) == 1 else vals


def _one_step(model: Graph, compiled: Compiled, x: Any, y: Any, lengths: Any, merge_cost: float | str,
              sample_weight: Any = None, class_weight: dict[Any, float] | None = None) -> Step:
    xr = prepare_inputs(model, x, lengths, compiled.device)
    t = prepare_targets(model, compiled, y, xr)
    w = sample_weights_for(t, len(xr), sample_weight, class_weight)
    stepper = BatchStepper(model, xr, t, compiled.device, merge_cost, compiled.integer_labels, w)
    step = next(iter(stepper.steps([np.arange(len(xr))])))
    if step.batch.data.dtype != torch.float32:
        step.batch = step.batch.with_data(step.batch.data.float())
    return step


def train_on_batch(model: Graph, compiled: Compiled, x: Any, y: Any = None, sample_weight: Any = None,
                   class_weight: dict[Any, float] | None = None, return_dict: bool = False, *, lengths: Any = None,
                   merge_cost: float | str = "auto") -> Any:
    """One optimizer step on exactly the batch ``(x, y)``; returns its loss (and metrics), as Keras.

    The loss is Keras' ``sum(weight * item loss) / items``; metrics are computed on the outputs of the
    forward pass that the step used (before the update), as in Keras.

    Raises:
        ConfigError: both ``sample_weight`` and ``class_weight`` (Keras refuses that too).
    """
    if class_weight is not None and sample_weight is not None:
        raise ConfigError("Arguments `sample_weight` and `class_weight` cannot be specified at the same time.")
    step = _one_step(model, compiled, x, y, lengths, merge_cost, sample_weight, class_weight)
    opt = ensure_optimizer(model, compiled)
    model.train()
    out = forward_loss(model.run_states, compiled, step, model.returns_sequences)
    pen = model.regularization_loss()  # Keras adds the layers' penalties to the training loss
    if pen is not None and out.loss_sum is not None:
        out.loss_sum = out.loss_sum + pen * out.n
    local_backward(opt, out.loss_sum, out.n, 0)  # type: ignore[arg-type]
    model.apply_constraints()
    totals = EpochTotals()
    with torch.no_grad():
        sums: dict[str, Any] = {"loss": float(out.loss_sum.detach())}  # type: ignore[union-attr]
        prob = compiled.activate(out.pred.detach())
        sums.update({k: v.detach().cpu().numpy() for k, v in compiled.metric_sums(prob, step.y).items()})  # type: ignore[arg-type]
    totals.add(sums, out.n)
    return flatten_logs(compiled, totals.logs(result_functions(compiled)), return_dict)


def test_on_batch(model: Graph, compiled: Compiled, x: Any, y: Any = None, sample_weight: Any = None,
                  return_dict: bool = False, *, lengths: Any = None, merge_cost: float | str = "auto") -> Any:
    """Loss (and metrics) of exactly the batch ``(x, y)``, without a step (Keras ``test_on_batch``)."""
    step = _one_step(model, compiled, x, y, lengths, merge_cost, sample_weight)
    model.eval()
    res = run_eval(model, compiled, [step])
    return flatten_logs(compiled, res.logs, return_dict)


def predict_on_batch(model: Graph, compiled: Compiled | None, x: Any, *, lengths: Any = None,
                     merge_cost: float | str = "auto") -> Any:
    """Outputs for ``x`` as one batch, in input order (Keras ``predict_on_batch``)."""
    return predict(model, compiled, x, batch_size=max(len(x), 1), verbose=0, lengths=lengths, merge_cost=merge_cost)
