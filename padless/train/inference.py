"""Evaluation and prediction: the loop without gradients.

Owns: :func:`run_eval` (steps in, summed loss and metrics out, optionally the activated outputs; the same
sums as training, so figures do not depend on batch size, batching mode or process count),
:func:`eval_source` (the batches an evaluation runs: bucketed, or in order for a stateful model),
:func:`evaluate` (Keras ``evaluate``; sharded across processes under torchrun) and :func:`predict` (Keras
``predict``: outputs in input order, per step as a list for ragged input or a zero-padded array for
padded input).

Does not own: training (:mod:`padless.train.trainer`), the steps (:mod:`padless.train.steps`,
:mod:`padless.train.tbptt`).

Example:
    >>> import numpy as np
    >>> from padless.nn import GRU, Dense, LayerStack
    >>> m = LayerStack([GRU(3, input_size=2), Dense(2)])
    >>> predict(m, None, [np.ones((4, 2), "float32"), np.ones((1, 2), "float32")], verbose=0).shape
    (2, 2)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch

from padless.data.collate import RaggedBatch
from padless.data.inputs import Targets
from padless.data.ragged import RaggedArray
from padless.data.sources import BatchSource, SequentialBatchSampler, make_sampler
from padless.errors import ConfigError
from padless.nn.graph import Graph
from padless.train.callbacks import CallbackList
from padless.train.compile import Compiled
from padless.train.distributed.context import DistContext, setup_distributed
from padless.train.distributed.sharding import shard_eval
from padless.train.prepare import prepare_inputs, prepare_targets, sample_weights_for
from padless.train.progress import Progress
from padless.train.state import EpochTotals
from padless.train.steps import BatchStepper, Step, forward_loss, packed_engine_runs
from padless.train.tbptt import SlotScheduler, check_tbptt, tbptt_steps

__all__ = ["EvalResult", "run_eval", "eval_source", "evaluate", "predict", "check_batch_size", "check_verbose",
           "result_functions", "reduce_totals", "limit_validation"]


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` (default 32) as a positive int, or a ConfigError."""
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive integer; got {batch_size!r}")
    return int(batch_size)


def check_verbose(verbose: Any) -> int:
    """Keras ``verbose``: 0, 1, 2 or ``"auto"`` (= 1)."""
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or not isinstance(verbose, (int, np.integer)) or verbose not in (0, 1, 2):
        raise ConfigError(f"verbose must be 0, 1, 2 or 'auto'; got {verbose!r}")
    return int(verbose)


def result_functions(compiled: Compiled) -> dict[str, Callable[[np.ndarray, float], float]]:
    """Log name -> how its value follows from the summed vector and the item count."""
    out: dict[str, Callable[[np.ndarray, float], float]] = {"loss": lambda s, n: float(s[0]) / max(n, 1.0)}
    for m in compiled.metrics:
        out[m.name] = m.result
    return out


def reduce_totals(totals: EpochTotals, keys: list[str], ctx: DistContext | None,
                  sizes: dict[str, int] | None = None) -> EpochTotals:
    """Totals summed over every process (unchanged in one process); ``sizes``: each key's vector length, for
    a process that has not seen a batch (so every process sends vectors of the same length)."""
    if ctx is None:
        return totals
    for k in keys:
        totals.sums.setdefault(k, np.zeros((sizes or {}).get(k, 1)))
    return totals.from_vector(keys, ctx.sum(totals.vector(keys)))


def limit_validation(val: tuple[RaggedArray, Targets] | None, weights: torch.Tensor | None, steps: int | None,
                     batch_size: int) -> tuple[tuple[RaggedArray, Targets] | None, torch.Tensor | None]:
    """Keras' ``validation_steps``: the first ``steps * batch_size`` validation sequences (the ones Keras'
    unshuffled batches would hold; padless batches them its own way, the figures are exact means)."""
    if val is None or steps is None or steps * batch_size >= len(val[0]):
        return val, weights
    keep = np.arange(steps * batch_size)
    return (val[0].take(keep), val[1].take(keep)), None if weights is None else weights[: len(keep)]


@dataclass
class EvalResult:
    """What one pass over the data produced: sums, logs and (when collected) outputs."""

    totals: EpochTotals
    logs: dict[str, float] = field(default_factory=dict)
    outputs: list[tuple[np.ndarray, Any]] = field(default_factory=list)


def run_eval(model: Graph, compiled: Compiled | None, steps: Iterable[Step], *, collect: bool = False,
             progress: Progress | None = None, callbacks: CallbackList | None = None, mode: str = "test"
             ) -> EvalResult:
    """Run ``model`` on every step without gradients; sum loss and metrics; keep outputs when ``collect``.

    Args:
        model: the model.
        compiled: loss and metrics (None: outputs only).
        steps: the steps.
        collect: keep the activated outputs (``(rows, (B, K))`` per step, or ``(idx, (per-step values,
            batch))`` for a per-step model).
        progress: progress display.
        callbacks: receive ``on_<mode>_batch_begin/end`` with the running logs.
        mode: ``"test"`` or ``"predict"`` (which batch hooks are called).
    """
    per_step = model.returns_sequences
    res = EvalResult(EpochTotals())
    tot = res.totals
    results = result_functions(compiled) if compiled is not None else {}
    t0 = time.perf_counter()
    with torch.no_grad():
        for i, step in enumerate(steps):
            if callbacks is not None:
                getattr(callbacks, f"on_{mode}_batch_begin")(i, {})
            batch = step.batch if step.batch.data.dtype == torch.float32 else step.batch.with_data(step.batch.data.float())
            step.batch = batch
            tot.real_steps += batch.plan.real_steps
            tot.computed_steps += batch.plan.size
            out = forward_loss(model.run_states, compiled, step, per_step)
            prob = compiled.activate(out.pred) if compiled is not None else out.pred
            if out.loss_sum is not None and compiled is not None:
                sums = {"loss": float(out.loss_sum)}
                sums.update({k: v.detach().cpu().numpy() for k, v in compiled.metric_sums(prob, step.y).items()})  # type: ignore[arg-type]
                tot.add(sums, out.n)
            if collect:
                if per_step:
                    res.outputs.append((step.idx, (prob, batch)))
                else:
                    rows = step.rows if step.select is None else step.rows[step.select.cpu().numpy()]  # type: ignore[index]
                    res.outputs.append((rows, prob))
            tot.steps_done = i + 1
            tot.seconds = time.perf_counter() - t0
            logs = tot.logs(results) if tot.count else {}
            if progress is not None:
                progress.update(tot.steps_done, logs, tot.real_steps, tot.seconds)
            if callbacks is not None:
                getattr(callbacks, f"on_{mode}_batch_end")(i, logs)
    tot.seconds = time.perf_counter() - t0
    res.logs = tot.logs(results) if tot.count else {}
    return res


def eval_source(model: Graph, xr: RaggedArray, batch_size: int, batching: str = "auto") -> BatchSource:
    """The batches of an evaluation: in index order for a stateful model, else bucketed without shuffling."""
    if model.stateful:
        return SequentialBatchSampler(xr.lengths, batch_size)
    return make_sampler("bucket" if batching == "auto" else batching, xr.lengths, batch_size, shuffle=False, seed=0)


def evaluate_prepared(model: Graph, compiled: Compiled, xr: RaggedArray, t: Targets, batch_size: int, *,
                      ctx: DistContext | None = None, progress: Progress | None = None,
                      callbacks: CallbackList | None = None, merge_cost: float | str = "auto",
                      weights: torch.Tensor | None = None) -> EvalResult:
    """Loss and metrics over prepared data, sharded over processes when ``ctx`` is given."""
    model.eval()
    batches: Any = eval_source(model, xr, batch_size)
    if ctx is not None:
        batches = shard_eval(batches, ctx)
    stepper = BatchStepper(model, xr, t, compiled.device, merge_cost, compiled.integer_labels, weights)
    err: BaseException | None = None
    res = EvalResult(EpochTotals())
    try:
        res = run_eval(model, compiled, stepper.steps(batches), progress=progress, callbacks=callbacks)
    except Exception as e:  # every rank must reach the reduction below, or fail together
        if ctx is None:
            raise
        err = e
    if ctx is not None:
        ctx.check(err)
        keys = ["loss"] + compiled.metric_names
        res.totals = reduce_totals(res.totals, keys, ctx, compiled.sum_sizes)
        res.logs = res.totals.logs(result_functions(compiled)) if res.totals.count else {}
    return res


def evaluate(model: Graph, compiled: Compiled, x: Any, y: Any = None, batch_size: int | None = None,
             verbose: int | str = "auto", lengths: Any = None, return_dict: bool = False,
             distributed: bool | str = "auto", merge_cost: float | str = "auto",
             callbacks: CallbackList | None = None, sample_weight: Any = None) -> Any:
    """Loss and metrics on ``(x, y)`` (Keras ``evaluate``): ``[loss, *metrics]``, or the loss alone when no
    metric was compiled, or a dict with ``return_dict=True``.

    Under ``torchrun`` (or with an initialised process group) every rank evaluates its share of the batches
    and the sums and counts are all-reduced: every rank returns the figures of the whole data.
    """
    bs = check_batch_size(batch_size)
    xr = prepare_inputs(model, x, lengths, compiled.device)
    t = prepare_targets(model, compiled, y, xr)
    from_weights = None if sample_weight is None else sample_weights_for(t, len(xr), sample_weight)
    ctx = setup_distributed(distributed, compiled.device)
    if ctx is not None and model.stateful:
        ctx = None  # stateful models evaluate row by row in every process
    v = check_verbose(verbose)
    if ctx is not None and not ctx.is_main:
        v = 0
    prog = Progress(math.ceil(len(xr) / bs), None, None, verbose=v)
    if callbacks is not None:
        callbacks.on_test_begin({})
    res = evaluate_prepared(model, compiled, xr, t, bs, ctx=ctx, progress=prog, callbacks=callbacks,
                            merge_cost=merge_cost, weights=from_weights)
    prog.finish(res.logs, res.totals.seconds)
    if callbacks is not None:
        callbacks.on_test_end(dict(res.logs))
    if return_dict:
        return dict(res.logs)
    vals = [res.logs["loss"]] + [res.logs[m] for m in compiled.metric_names]
    return vals[0] if len(vals) == 1 else vals


def _full(valid: torch.Tensor, batch: RaggedBatch) -> torch.Tensor:
    """Scatter real-position values back into the batch layout."""
    if batch.plan.exact:
        return valid
    full = valid.new_zeros((batch.plan.size,) + tuple(valid.shape[1:]))
    full[batch.plan.tensor("valid", valid.device)] = valid
    return full


def predict(model: Graph, compiled: Compiled | None, x: Any, batch_size: int | None = None,
            verbose: int | str = "auto", lengths: Any = None, batching: str = "auto", tbptt: int | None = None,
            merge_cost: float | str = "auto", callbacks: CallbackList | None = None) -> Any:
    """Outputs for ``x`` in input order, whatever the batching (Keras ``predict``; never compiles).

    With ``tbptt=K`` the sequences run through ``batch_size`` slots in windows of K steps with the state
    carried across windows (the streaming/TBPTT path); the outputs are the same as without.

    Returns:
        (N, out) for a per-sequence model. A per-step model returns a list of (T_i, out) arrays for ragged
        input (a list of sequences or a RaggedArray) and an (N, T, out) array with zeros after each
        sequence's end for array input (Keras' shape).
    """
    bs = check_batch_size(batch_size)
    device = compiled.device if compiled is not None else next(iter(model.parameters()), torch.zeros(0)).device
    xr = prepare_inputs(model, x, lengths, device)
    v = check_verbose(verbose)
    model.eval()
    if callbacks is not None:
        callbacks.on_predict_begin({})
    if tbptt is not None:
        check_tbptt(model)
        sched = SlotScheduler(xr.lengths, bs, tbptt, shuffle=False,
                              start="immediate" if packed_engine_runs(device) else "window")
        prog = Progress(len(sched), None, None, verbose=v)
        steps = tbptt_steps(model, xr, None, sched, device, merge_cost=merge_cost)
    else:
        batches = eval_source(model, xr, bs, batching)
        prog = Progress(len(batches), None, None, verbose=v)
        steps = BatchStepper(model, xr, None, device, merge_cost).steps(batches)
    res = run_eval(model, compiled, steps, collect=True, progress=prog, callbacks=callbacks, mode="predict")
    prog.finish({}, res.totals.seconds)
    if callbacks is not None:
        callbacks.on_predict_end({})
    if model.returns_sequences:
        parts: list[list[Any]] = [[] for _ in range(len(xr))]
        for idx, (p, batch) in res.outputs:
            seqs = batch.with_data(_full(p, batch)).to_list()
            for i, s in zip(idx.tolist(), seqs):
                parts[i].append(s.cpu().numpy())  # TBPTT pieces arrive in time order
        out = [ps[0] if len(ps) == 1 else np.concatenate(ps) for ps in parts]
        if _is_array_input(x):
            padded = np.zeros((len(out), int(x.shape[1]), out[0].shape[-1]), dtype=np.float32)  # (N, T, K)
            for i, o in enumerate(out):
                padded[i, : o.shape[0]] = o
            return padded
        return out
    first = res.outputs[0][1]
    arr = np.empty((len(xr),) + tuple(first.shape[1:]), dtype=np.float32)
    for rows, p in res.outputs:
        arr[rows] = p.cpu().numpy()
    return arr


def _is_array_input(x: Any) -> bool:
    """A rectangular (N, T[, F]) array or tensor (padded or equal-length), not a list or RaggedArray."""
    return (isinstance(x, np.ndarray) and x.dtype != object) or isinstance(x, torch.Tensor)
