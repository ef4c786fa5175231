"""The one loop behind ``fit``, ``evaluate`` and ``predict``.

Owns: :func:`fit`, :func:`evaluate`, :func:`predict`, the choice of batch sampler for ``batching=``, and
:func:`run_batches` - the single loop over batches that trains, evaluates or predicts. Loss and metrics
are accumulated as sums over samples (or real steps for per-step targets), so the reported figures do not
depend on batch size or batching mode.

Does not own: losses/optimizers (``padless.train.compile``), input conversion (``padless.train.inputs``),
samplers (``padless.data.samplers``), progress output (``padless.train.progress``).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from padless.data import RaggedArray
from padless.data.collate import RaggedBatch, collate
from padless.errors import ConfigError, DataError, StateError
from padless.train.callbacks import Callback, CallbackList, History
from padless.train.compile import Compiled, ensure_optimizer
from padless.train.inputs import Targets, as_ragged, as_targets
from padless.train.progress import Progress

__all__ = ["fit", "evaluate", "predict", "run_batches", "run_steps", "index_steps", "Step", "make_sampler", "BATCHING_MODES", "DEFAULT_MERGE_COST"]

BATCHING_MODES = ("auto", "bucket", "exact", "random", "sequential")

# A kernel call's overhead, in row-steps, above which neighbouring segments are merged (padding a few
# steps instead of calling the kernel again). Measured by benchmarks/run.py; 0 disables merging.
DEFAULT_MERGE_COST = 100.0


@dataclass
class EpochResult:
    logs: dict[str, float]
    outputs: list[tuple[np.ndarray, Any]] = field(default_factory=list)
    real_steps: int = 0
    computed_steps: int = 0
    seconds: float = 0.0


class _SequentialSampler:
    """Batches in index order (stateful training: row i of batch k+1 continues row i of batch k)."""

    def __init__(self, n: int, batch_size: int) -> None:
        self.n, self.batch_size = n, batch_size

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterable[list[int]]:
        for a in range(0, self.n, self.batch_size):
            yield list(range(a, min(a + self.batch_size, self.n)))


def make_sampler(batching: str, lengths: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> Any:
    """The batch sampler for ``batching=`` (``"auto"`` is ``"bucket"``: the fastest exact choice)."""
    if batching not in BATCHING_MODES:
        import difflib

        close = difflib.get_close_matches(str(batching), BATCHING_MODES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown batching {batching!r}.{hint} Valid: {', '.join(BATCHING_MODES)}")
    if batching == "sequential":
        return _SequentialSampler(len(lengths), batch_size)
    from padless.data.samplers import BucketBatchSampler, ExactLengthBatchSampler, RandomBatchSampler

    cls = {"auto": BucketBatchSampler, "bucket": BucketBatchSampler, "exact": ExactLengthBatchSampler,
           "random": RandomBatchSampler}[batching]
    return cls(lengths, batch_size=batch_size, shuffle=shuffle, seed=seed)


def _merge_cost(model: Any) -> float:
    mc = getattr(model, "merge_cost", "auto")
    if model.needs_exact_states:
        return 0.0
    return DEFAULT_MERGE_COST if mc == "auto" else float(mc)


def _check_batch_size(batch_size: Any) -> int:
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ConfigError(f"batch_size must be a positive integer; got {batch_size!r}")
    return int(batch_size)


def _compiled(model: Any) -> Compiled:
    c = getattr(model, "compiled", None)
    if c is None:
        raise ConfigError("the model must be compiled before training or evaluating: call model.compile(optimizer, loss)")
    return c


def _prepare(model: Any, x: Any, lengths: Any = None) -> RaggedArray:
    mask = model.masking
    from padless.nn.layers import Embedding, Masking

    tokens = bool(model.layers) and isinstance(model.layers[0], Embedding)
    mask_value: float | None = None
    if isinstance(mask, Masking):
        mask_value = mask.mask_value
    elif isinstance(mask, Embedding):
        mask_value = 0.0
    xr = as_ragged(x, lengths=lengths, mask_value=mask_value, tokens=tokens)
    model.build(xr.num_features)
    if model.compiled is not None:
        model.to(model.compiled.device)  # weights created at build time start on the CPU
    return xr


def _targets(model: Any, y: Any, xr: RaggedArray) -> Targets:
    c = _compiled(model)
    integer = c.loss_name in ("categorical_crossentropy", "sparse_categorical_crossentropy")
    y_arr = y
    if integer and not model.returns_sequences and y is not None and not isinstance(y, (list, tuple, RaggedArray)):
        a = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
        integer = a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1 and model.output_size > 1)
        y_arr = a
    t = as_targets(y_arr, xr, per_step=model.returns_sequences, integer=integer)
    if t.per_step:
        ytensor = torch.as_tensor(np.asarray(t.values.values))
        if integer and ytensor.shape[-1] == 1 and model.output_size > 1:
            ytensor = ytensor[:, 0].long()  # one class label per step
    else:
        ytensor = t.values
    c.check_targets(ytensor, model.output_size)
    return t


@dataclass
class Step:
    """One training/evaluation step: a laid-out batch and what its loss is taken on.

    Attributes:
        batch: the inputs.
        y: targets for the selected outputs (None: no targets, e.g. predict).
        select: (B,) bool over *sorted* rows whose per-sequence output carries a loss (None: all rows).
        initial_states: per recurrent layer, initial state in batch order (None: zeros).
        on_states: called with every recurrent layer's final states (sorted rows) after the forward pass.
        rows: original sequence index of each sorted row (for collecting outputs).
        idx: original sequence index of each batch row (batch order).
    """

    batch: RaggedBatch
    y: torch.Tensor | None
    select: torch.Tensor | None = None
    initial_states: list[Any] | None = None
    on_states: Callable[[list[Any]], None] | None = None
    rows: np.ndarray | None = None
    idx: np.ndarray | None = None

    @property
    def has_loss(self) -> bool:
        return self.y is not None and int(self.y.shape[0]) > 0


def index_steps(model: Any, xr: RaggedArray, targets: Targets | None, batches: Iterable[Sequence[int]],
                device: torch.device) -> Iterator[Step]:
    """Steps for plain batches of whole sequences (every batching mode)."""
    c: Compiled | None = model.compiled
    merge_cost = _merge_cost(model)
    per_step = model.returns_sequences
    for idx in batches:
        idx = np.asarray(idx, dtype=np.int64)
        batch = collate(xr, idx, merge_cost=merge_cost, device=device)
        y = None
        if targets is not None:
            if per_step:
                y = collate(targets.values, idx, merge_cost=merge_cost, device=device).valid_data()
                if c is not None and c.loss_name in _CE and y.shape[-1] == 1:
                    y = y[:, 0].long()
            else:
                y = targets.values.index_select(0, torch.from_numpy(idx[batch.sorted_indices])).to(device)
        yield Step(batch, y, rows=idx[batch.sorted_indices], idx=idx)


_CE = ("categorical_crossentropy", "sparse_categorical_crossentropy")


def run_steps(
    model: Any,
    steps: Iterable[Step],
    *,
    train: bool,
    collect: bool = False,
    progress: Progress | None = None,
    callbacks: CallbackList | None = None,
) -> EpochResult:
    """The single loop: run the model on each step and (if ``train``) step the optimizer.

    Returns:
        Loss/metric means over every sample (or real step) seen, and the outputs when ``collect``.
    """
    c: Compiled | None = model.compiled
    opt = ensure_optimizer(model) if train else None
    logits = c is not None and c.uses_logits
    per_step = model.returns_sequences
    sums: dict[str, float] = {}
    count = 0
    res = EpochResult(logs={})
    t0 = time.perf_counter()
    step_i = 0
    for step in steps:
        batch = step.batch
        if batch.data.dtype != torch.float32:
            batch = batch.with_data(batch.data.float())
        res.real_steps += batch.plan.real_steps
        res.computed_steps += batch.plan.size
        grad = train and step.has_loss
        with torch.set_grad_enabled(grad):
            out, states = model.run_states(batch, logits, step.initial_states, want_states=step.on_states is not None)
            if step.on_states is not None:
                step.on_states(states)
            pred = out.valid_data() if per_step else out  # (S_real, K) layout order, or (B, K) sorted rows
            if step.select is not None and not per_step:
                pred = pred[step.select]
            if step.has_loss and c is not None:
                y = step.y
                item_loss = c.per_item_loss(pred, y)
                n = int(item_loss.shape[0])
                loss_sum = item_loss.sum()
                if grad:
                    if not torch.isfinite(loss_sum):
                        raise DataError(
                            f"the loss became {float(loss_sum)} at batch {step_i}: check the inputs/targets for "
                            "extreme values or lower the learning rate"
                        )
                    opt.zero_grad(set_to_none=True)  # type: ignore[union-attr]
                    (loss_sum / n).backward()
                    opt.step()  # type: ignore[union-attr]
                with torch.no_grad():
                    prob = c.activate(pred.detach())
                    sums["loss"] = sums.get("loss", 0.0) + float(loss_sum.detach())
                    for k, v in c.metric_sums(prob, y).items():
                        sums[k] = sums.get(k, 0.0) + float(v)
                count += n
            if collect:
                p = pred.detach()
                if c is not None:
                    p = c.activate(p)
                if per_step:
                    res.outputs.append((step.idx, (p, batch)))
                else:
                    rows = step.rows if step.select is None else step.rows[step.select.cpu().numpy()]
                    res.outputs.append((rows, p))
        step_i += 1
        if progress is not None:
            progress.update(step_i, {k: v / max(count, 1) for k, v in sums.items()}, res.real_steps,
                            time.perf_counter() - t0)
        if callbacks is not None:
            callbacks.on_batch_end(step_i)
    res.seconds = time.perf_counter() - t0
    res.logs = {k: v / max(count, 1) for k, v in sums.items()}
    return res


def run_batches(model: Any, xr: RaggedArray, targets: Targets | None, batches: Iterable[Sequence[int]], *,
                train: bool, collect: bool = False, progress: Progress | None = None,
                callbacks: CallbackList | None = None) -> EpochResult:
    """:func:`run_steps` over plain batches of whole sequences (indices into ``xr``)."""
    c: Compiled | None = model.compiled
    device = c.device if c is not None else next(model.parameters()).device
    return run_steps(model, index_steps(model, xr, targets, batches, device), train=train, collect=collect,
                     progress=progress, callbacks=callbacks)


def _validation(model: Any, validation_data: Any, xr: RaggedArray, t: Targets, split: float) -> tuple[Any, ...]:
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ConfigError("validation_data must be a tuple (x_val, y_val)")
        vx = _prepare(model, validation_data[0])
        vt = _targets(model, validation_data[1], vx)
        return xr, t, vx, vt
    if split:
        if not 0.0 < split < 1.0:
            raise ConfigError(f"validation_split must be in (0, 1); got {split!r}")
        n = len(xr)
        n_val = int(round(n * split))
        if n_val < 1 or n_val >= n:
            raise ConfigError(f"validation_split={split} leaves {n_val} of {n} samples for validation; choose another split")
        cut = n - n_val  # Keras: the last samples, before any shuffling
        tr = np.arange(cut)
        va = np.arange(cut, n)
        return xr.take(tr), t.take(tr), xr.take(va), t.take(va)
    return xr, t, None, None


def fit(
    model: Any,
    x: Any,
    y: Any = None,
    batch_size: int | None = None,
    epochs: int = 1,
    verbose: int | str = "auto",
    callbacks: Sequence[Callback] | None = None,
    validation_split: float = 0.0,
    validation_data: Any = None,
    shuffle: bool = True,
    initial_epoch: int = 0,
    batching: str = "auto",
    lengths: Any = None,
    seed: int | None = None,
    tbptt: int | None = None,
) -> History:
    """Train the model (Keras ``fit``) on ragged, padded or equal-length data.

    Args:
        model: a compiled :class:`~padless.nn.sequential.Sequential`.
        x: inputs: a list of (T_i, F) arrays, an (N, T, F) array, a padded array with ``lengths=``, or a
            :class:`~padless.data.RaggedArray`.
        y: per-sequence labels/targets (N,) or (N, K), or per-step targets for a ``return_sequences`` head.
        batch_size: sequences per batch (default 32).
        epochs: number of passes over the data.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch; ``"auto"`` = 1.
        callbacks: e.g. :class:`~padless.train.callbacks.EarlyStopping`.
        validation_split: fraction of the *last* samples held out (Keras semantics).
        validation_data: ``(x_val, y_val)``.
        shuffle: shuffle each epoch (batch order and bucket membership); False keeps a fixed order.
        initial_epoch: epoch to start from.
        batching: ``"auto"`` (bucketed: similar lengths together, batch order shuffled), ``"bucket"``,
            ``"exact"`` (one length per batch), ``"random"``, ``"sequential"``. Every mode gives the same
            exact per-sequence results; they differ in speed only.
        lengths: true lengths of a right-padded ``x``.
        seed: seed of the batch order (default: drawn from torch's generator, so ``torch.manual_seed``
            makes runs repeatable).
        tbptt: truncated backpropagation through time: lay the data into ``batch_size`` slots and train on
            windows of ``tbptt`` steps, carrying the (detached) state and resetting a slot exactly when its
            sequence ends (see :mod:`padless.train.tbptt`). A value longer than every sequence is fine
            (plain BPTT with slot packing).

    Returns:
        :class:`History` with ``.history["loss"]`` (and ``accuracy``, ``val_loss``, ...).
    """
    c = _compiled(model)
    bs = _check_batch_size(batch_size)
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 0:
        raise ConfigError(f"epochs must be a non-negative integer; got {epochs!r}")
    xr = _prepare(model, x, lengths)
    t = _targets(model, y, xr)
    xr, t, vx, vt = _validation(model, validation_data, xr, t, validation_split)
    if model.stateful:
        sbs = model.stateful_batch_size
        if shuffle:
            warnings.warn("shuffle=True on a stateful model breaks the row-to-row state carry; using shuffle=False "
                          "(as Keras documents, stateful training needs shuffle=False)", stacklevel=2)
            shuffle = False
        if bs != sbs:
            raise StateError(f"stateful model: Expected batch size {sbs} / Received batch_size={bs}")
        if len(xr) % bs:
            raise StateError(f"stateful model: Expected a number of samples divisible by {bs} / Received {len(xr)}")
        batching = "sequential"
    ensure_optimizer(model)
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
    if tbptt is not None:
        from padless.train.tbptt import SlotScheduler, check_tbptt

        check_tbptt(model)
        sampler: Any = SlotScheduler(xr.lengths, bs, tbptt, shuffle=shuffle, seed=seed)
    else:
        sampler = make_sampler(batching, xr.lengths, bs, shuffle, seed)
    history = History()
    cbs = CallbackList(list(callbacks or []) + [history], model)
    v = 1 if verbose == "auto" else int(verbose)
    model.stop_training = False
    cbs.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        sampler.set_epoch(epoch)
        cbs.on_epoch_begin(epoch)
        model.train()
        prog = Progress(len(sampler), epoch, epochs, verbose=v)
        stats: dict[str, int] = {}
        if tbptt is not None:
            from padless.train.tbptt import tbptt_steps

            steps = tbptt_steps(model, xr, t, sampler, c.device, stats)
            res = run_steps(model, steps, train=True, progress=prog, callbacks=cbs)
        else:
            res = run_batches(model, xr, t, sampler, train=True, progress=prog, callbacks=cbs)
        logs = dict(res.logs)
        if vx is not None:
            vres = _eval(model, vx, vt, bs)
            logs.update({f"val_{k}": val for k, val in vres.logs.items()})
        logs["steps_per_second"] = res.real_steps / max(res.seconds, 1e-9)
        logs["padding_waste"] = 1.0 - res.real_steps / max(res.computed_steps, 1)
        if stats:  # TBPTT: idle slot-steps, counted like padding
            logs["padding_waste"] = 1.0 - stats["real_steps"] / max(stats["slot_steps"], 1)
        prog.finish(logs, res.seconds)
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbs.on_train_end()
    model.history = history
    return history


def _eval(model: Any, xr: RaggedArray, t: Targets | None, bs: int, collect: bool = False,
          progress: Progress | None = None) -> EpochResult:
    model.eval()
    if model.stateful:
        batches: Any = _SequentialSampler(len(xr), bs)
    else:
        batches = make_sampler("bucket", xr.lengths, bs, shuffle=False, seed=0)
    return run_batches(model, xr, t, batches, train=False, collect=collect, progress=progress)


def evaluate(model: Any, x: Any, y: Any = None, batch_size: int | None = None, verbose: int | str = "auto",
             lengths: Any = None, return_dict: bool = False) -> Any:
    """Loss and metrics on ``(x, y)`` (Keras ``evaluate``): ``[loss, *metrics]``, or the loss alone when
    no metric was compiled, or a dict with ``return_dict=True``."""
    _compiled(model)
    bs = _check_batch_size(batch_size)
    xr = _prepare(model, x, lengths)
    t = _targets(model, y, xr)
    v = 1 if verbose == "auto" else int(verbose)
    n_batches = math.ceil(len(xr) / bs)
    prog = Progress(n_batches, None, None, verbose=v)
    res = _eval(model, xr, t, bs, progress=prog)
    prog.finish(res.logs, res.seconds)
    if return_dict:
        return dict(res.logs)
    vals = [res.logs["loss"]] + [res.logs[m] for m in model.compiled.metric_names]
    return vals[0] if len(vals) == 1 else vals


def predict(model: Any, x: Any, batch_size: int | None = None, verbose: int | str = "auto", lengths: Any = None,
            batching: str = "auto", tbptt: int | None = None) -> Any:
    """Outputs for ``x`` in input order, whatever the batching.

    With ``tbptt=K`` the sequences run through ``batch_size`` slots in windows of K steps with the state
    carried across windows (the streaming/TBPTT path); the outputs are the same as without.

    Returns:
        (N, out) array, or a list of (T_i, out) arrays when the model returns sequences.
    """
    bs = _check_batch_size(batch_size)
    xr = _prepare(model, x, lengths)
    if model.compiled is None:
        from padless.train.compile import compile_model

        compile_model(model, loss="mse")
        model.compiled.optimizer = None
    v = 1 if verbose == "auto" else int(verbose)
    model.eval()
    if model.stateful:
        batches: Any = _SequentialSampler(len(xr), bs)
    else:
        batches = make_sampler("bucket" if batching == "auto" else batching, xr.lengths, bs, shuffle=False, seed=0)
    if tbptt is not None:
        from padless.train.tbptt import SlotScheduler, check_tbptt, tbptt_steps

        check_tbptt(model)
        sched = SlotScheduler(xr.lengths, bs, tbptt, shuffle=False)
        prog = Progress(len(sched), None, None, verbose=v)
        res = run_steps(model, tbptt_steps(model, xr, None, sched, model.compiled.device), train=False, collect=True,
                        progress=prog)
    else:
        prog = Progress(len(batches), None, None, verbose=v)
        res = run_batches(model, xr, None, batches, train=False, collect=True, progress=prog)
    prog.finish({}, res.seconds)
    if model.returns_sequences:
        parts: list[list[Any]] = [[] for _ in range(len(xr))]
        for idx, (p, batch) in res.outputs:
            seqs = batch.with_data(_full(p, batch)).to_list()
            for i, s in zip(idx.tolist(), seqs):
                parts[i].append(s.cpu().numpy())  # TBPTT pieces arrive in time order
        return [ps[0] if len(ps) == 1 else np.concatenate(ps) for ps in parts]
    first = res.outputs[0][1]
    arr = np.empty((len(xr),) + tuple(first.shape[1:]), dtype=np.float32)
    for rows, p in res.outputs:
        arr[rows] = p.cpu().numpy()
    return arr


def _full(valid: torch.Tensor, batch: RaggedBatch) -> torch.Tensor:
    """Scatter real-position values back into the batch layout."""
    if batch.plan.exact:
        return valid
    full = valid.new_zeros((batch.plan.size,) + tuple(valid.shape[1:]))
    full[batch.plan.tensor("valid", valid.device)] = valid
    return full
