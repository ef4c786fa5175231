"""The one loop behind ``fit``, ``evaluate`` and ``predict``.

Owns: :func:`fit`, :func:`evaluate`, :func:`predict`, the choice of batch sampler for ``batching=``, and
:func:`run_steps` - the single loop over steps that trains, evaluates or predicts (:func:`run_batches` feeds
it plain batches). Loss and metrics are accumulated as sums over samples (or real steps for per-step
targets), so the reported figures do not depend on batch size, batching mode or process count. ``fit``
also decides when checkpoints are written and how a run resumes (mid-epoch, exactly), and runs
data-parallel under ``torchrun`` (batches sharded per rank, token-weighted gradients, sums all-reduced).

Does not own: losses/optimizers (``padless.train.compile``), input conversion (``padless.train.inputs``),
samplers (``padless.data.samplers``), progress output (``padless.train.progress``), the checkpoint file
format (``padless.train.checkpoint``), process groups and DDP (``padless.train.distributed``).

Example:
    >>> # history = fit(model, x, y, batch_size=32, epochs=10, checkpoint_dir="ckpt", checkpoint_every=200)
    >>> # under ``torchrun --nproc-per-node 4 train.py`` the same call trains on 4 processes
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from padless.data import RaggedArray
from padless.data.collate import RaggedBatch, collate
from padless.errors import ConfigError, DataError, PadlessError, StateError
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
    """What one pass over the data produced (sums are kept so a resumed or distributed epoch can continue
    or reduce them; ``logs`` are the means)."""

    logs: dict[str, float]
    outputs: list[tuple[np.ndarray, Any]] = field(default_factory=list)
    real_steps: int = 0
    computed_steps: int = 0
    seconds: float = 0.0
    sums: dict[str, float] = field(default_factory=dict)
    count: float = 0.0
    steps_done: int = 0


class _SequentialSampler:
    """Batches in index order (stateful training: row i of batch k+1 continues row i of batch k)."""

    def __init__(self, n: int, batch_size: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for a in range(0, self.n, self.batch_size):
            yield list(range(a, min(a + self.batch_size, self.n)))


def make_sampler(batching: str, lengths: np.ndarray, batch_size: int | None, shuffle: bool, seed: int, rank: int = 0,
                 world_size: int = 1, max_steps: int | None = None) -> Any:
    """The batch sampler for ``batching=`` (``"auto"`` is ``"bucket"``: the fastest exact choice).

    With ``world_size > 1`` the sampler gives rank ``rank`` its share of the *batches* (every rank the
    same number; see :mod:`padless.data.samplers`). With ``max_steps`` the batches are cut by a budget of
    computed steps (rows x longest) instead of a count.

    Example:
        >>> s = make_sampler("bucket", np.array([3, 1, 2, 5]), 2, shuffle=False, seed=0, rank=1, world_size=2)
        >>> len(s), list(s)
        (1, [[0, 3]])
    """
    if batching not in BATCHING_MODES:
        import difflib

        close = difflib.get_close_matches(str(batching), BATCHING_MODES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown batching {batching!r}.{hint} Valid: {', '.join(BATCHING_MODES)}")
    if batching == "sequential":
        if world_size > 1:
            raise ConfigError("batching='sequential' (stateful training) runs in one process only")
        return _SequentialSampler(len(lengths), batch_size)
    from padless.data.samplers import BucketBatchSampler, ExactLengthBatchSampler, RandomBatchSampler

    cls = {"auto": BucketBatchSampler, "bucket": BucketBatchSampler, "exact": ExactLengthBatchSampler,
           "random": RandomBatchSampler}[batching]
    if max_steps is not None:
        return cls(lengths, max_steps=max_steps, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
    return cls(lengths, batch_size=batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)


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
    run: Callable[..., Any] | None = None,
    ctx: Any = None,
    start: EpochResult | None = None,
    on_step: Callable[[EpochResult], None] | None = None,
) -> EpochResult:
    """The single loop: run the model on each step and (if ``train``) step the optimizer.

    Args:
        model: the model.
        steps: the steps (:func:`index_steps`, ``padless.train.tbptt.tbptt_steps``).
        train: backpropagate and step the optimizer.
        collect: keep the (activated) outputs.
        progress: progress display.
        callbacks: ``on_batch_end`` after every step.
        run: the forward callable (default ``model.run_states``; the DDP wrapper when distributed).
        ctx: a :class:`~padless.train.distributed.DistContext` when training on several processes: the item
            count is all-reduced every step and the loss scaled so that DDP's gradient average is the
            token-weighted mean over the global batch; ranks without targets backpropagate zero.
        start: the partial result of an interrupted epoch to continue (sums, counts, steps done).
        on_step: called after every step (and its callbacks) with the running result (checkpoints).

    Returns:
        Loss/metric means over every sample (or real step) seen, the sums behind them, and the outputs when
        ``collect``.

    Example:
        >>> # res = run_steps(model, index_steps(model, xr, targets, batches, device), train=True)
    """
    c: Compiled | None = model.compiled
    opt = ensure_optimizer(model) if train else None
    logits = c is not None and c.uses_logits
    per_step = model.returns_sequences
    forward = run if run is not None else model.run_states
    dist_train = train and ctx is not None
    res = EpochResult(logs={})
    if start is not None:
        res.sums, res.count = dict(start.sums), start.count
        res.real_steps, res.computed_steps = start.real_steps, start.computed_steps
        res.seconds, res.steps_done = start.seconds, start.steps_done
    sums = res.sums
    seconds0 = res.seconds
    t0 = time.perf_counter()
    for step in steps:
        step_i = res.steps_done
        batch = step.batch
        if batch.data.dtype != torch.float32:
            batch = batch.with_data(batch.data.float())
        res.real_steps += batch.plan.real_steps
        res.computed_steps += batch.plan.size
        grad = train and (step.has_loss or dist_train)
        with torch.set_grad_enabled(grad):
            failure: BaseException | None = None
            n = 0
            loss_sum: torch.Tensor | None = None
            try:
                out, states = forward(batch, logits, step.initial_states, step.on_states is not None)
                if step.on_states is not None:
                    step.on_states(states)
                pred = out.valid_data() if per_step else out  # (S_real, K) layout order, or (B, K) sorted rows
                if step.select is not None and not per_step:
                    pred = pred[step.select]
                if step.has_loss and c is not None:
                    item_loss = c.per_item_loss(pred, step.y)
                    n = int(item_loss.shape[0])
                    loss_sum = item_loss.sum()
                if dist_train and loss_sum is None:  # nothing to learn here; DDP needs this rank's zero gradients
                    loss_sum = pred.sum() * 0.0
            except Exception as e:  # distributed: the other ranks must hear of it, or they wait forever
                if not dist_train:
                    raise
                failure = e
            if dist_train:
                finite = failure is None and bool(torch.isfinite(loss_sum.detach()))  # type: ignore[union-attr]
                n_global, n_bad, n_failed = ctx.sum([n, 0.0 if finite or failure else 1.0, 1.0 if failure else 0.0])
                if failure is not None:
                    raise failure
                if n_failed:
                    raise PadlessError(f"another process failed at batch {step_i} (see its error); stopping this one too")
                if n_bad:
                    raise DataError(
                        f"the loss became non-finite at batch {step_i} on {int(n_bad)} of {ctx.world_size} processes: "
                        "check the inputs/targets for extreme values or lower the learning rate"
                    )
                if n_global > 0:
                    opt.zero_grad(set_to_none=True)  # type: ignore[union-attr]
                    (loss_sum * (ctx.world_size / n_global)).backward()  # type: ignore[operator]
                    opt.step()  # type: ignore[union-attr]
            elif grad and loss_sum is not None:
                if not torch.isfinite(loss_sum):
                    raise DataError(
                        f"the loss became {float(loss_sum.detach())} at batch {step_i}: check the inputs/targets for "
                        "extreme values or lower the learning rate"
                    )
                opt.zero_grad(set_to_none=True)  # type: ignore[union-attr]
                (loss_sum / n).backward()
                opt.step()  # type: ignore[union-attr]
            if n and c is not None and loss_sum is not None:
                with torch.no_grad():
                    sums["loss"] = sums.get("loss", 0.0) + float(loss_sum.detach())
                    if c.metric_names:  # the activation is only needed for metrics
                        for k, v in c.metric_sums(c.activate(pred.detach()), step.y).items():
                            sums[k] = sums.get(k, 0.0) + float(v)
                res.count += n
            if collect:
                p = pred.detach()
                if c is not None:
                    p = c.activate(p)
                if per_step:
                    res.outputs.append((step.idx, (p, batch)))
                else:
                    rows = step.rows if step.select is None else step.rows[step.select.cpu().numpy()]
                    res.outputs.append((rows, p))
        res.steps_done = step_i + 1
        res.seconds = seconds0 + time.perf_counter() - t0
        if progress is not None:
            progress.update(res.steps_done, {k: v / max(res.count, 1) for k, v in sums.items()}, res.real_steps,
                            res.seconds)
        if callbacks is not None:
            callbacks.on_batch_end(res.steps_done)
        if on_step is not None:
            on_step(res)
    res.seconds = seconds0 + time.perf_counter() - t0
    res.logs = {k: v / max(res.count, 1) for k, v in sums.items()}
    return res


def run_batches(model: Any, xr: RaggedArray, targets: Targets | None, batches: Iterable[Sequence[int]], *,
                train: bool, collect: bool = False, progress: Progress | None = None,
                callbacks: CallbackList | None = None, **kwargs: Any) -> EpochResult:
    """:func:`run_steps` over plain batches of whole sequences (indices into ``xr``); ``kwargs`` go to
    :func:`run_steps` (``run``, ``ctx``, ``start``, ``on_step``)."""
    c: Compiled | None = model.compiled
    device = c.device if c is not None else next(model.parameters()).device
    return run_steps(model, index_steps(model, xr, targets, batches, device), train=train, collect=collect,
                     progress=progress, callbacks=callbacks, **kwargs)


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


def _check_verbose(verbose: Any) -> int:
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or not isinstance(verbose, (int, np.integer)) or verbose not in (0, 1, 2):
        raise ConfigError(f"verbose must be 0, 1, 2 or 'auto'; got {verbose!r}")
    return int(verbose)


def _check_count(value: Any, name: str, low: int, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


class _Placeholder(Callback):
    """Stands in, on ranks other than 0, for a callback that writes files (e.g. ModelCheckpoint)."""


def _rank_zero_callbacks(callbacks: Sequence[Callback], ctx: Any) -> list[Callback]:
    from padless.train.callbacks import ModelCheckpoint

    if ctx is None or ctx.is_main:
        return list(callbacks)
    return [_Placeholder() if isinstance(cb, ModelCheckpoint) or getattr(cb, "rank_zero_only", False) else cb
            for cb in callbacks]


class _Windows:
    """A list of TBPTT windows that ``tbptt_steps`` can iterate (this rank's share, or the rest of an epoch)."""

    def __init__(self, windows: list[Any], batch_size: int) -> None:
        self.windows, self.batch_size = windows, batch_size

    def __iter__(self) -> Iterator[Any]:
        return iter(self.windows)

    def __len__(self) -> int:
        return len(self.windows)


def _recurrent_sizes(model: Any) -> list[list[int]]:
    from padless.nn.recurrent import Recurrent

    return [[layer.units] * layer._num_states for layer in model.layers if isinstance(layer, Recurrent)]


def _placeholder_step(xr: RaggedArray, device: torch.device) -> Step:
    """One step of sequence 0 with no targets: a rank whose TBPTT slots are all idle still takes part in the
    gradient all-reduce (with zero gradients)."""
    from padless.data.collate import collate_values

    batch = collate_values(xr.values, np.asarray(xr.offsets[:1], dtype=np.int64), np.ones(1, dtype=np.int64),
                           merge_cost=0.0, device=device)
    return Step(batch, None, rows=np.zeros(1, dtype=np.int64), idx=np.zeros(1, dtype=np.int64))


def _tbptt_epoch_steps(model: Any, xr: RaggedArray, t: Targets | None, windows: list[Any], slots: int,
                       device: torch.device, stats: dict[str, int], shadow: Any, resumed: bool) -> Iterator[Step]:
    """TBPTT steps over ``windows``; ``shadow`` (a ``_SlotStates``) mirrors the carried state for checkpoints
    and, when ``resumed``, supplies the state carried into the first window."""
    from padless.train.tbptt import tbptt_steps

    real = [w for w in windows if w.pieces]
    gen = tbptt_steps(model, xr, t, _Windows(real, slots), device, stats)
    sizes = _recurrent_sizes(model)
    first = True
    for w in windows:
        if not w.pieces:
            stats["slot_steps"] = stats.get("slot_steps", 0) + w.slot_steps
            yield _placeholder_step(xr, device)
            continue
        step = next(gen)
        if first and resumed and shadow is not None:
            step.initial_states = shadow.initial(w.pieces, slots, sizes, device, torch.float32)
        first = False
        if shadow is not None:
            orig = step.on_states

            def on_states(states: list[Any], orig: Any = orig, pieces: list[Any] = w.pieces,
                          pos: np.ndarray = step.batch.unsorted_indices) -> None:
                orig(states)
                shadow.store(pieces, states, pos, slots)

            step.on_states = on_states
        yield step


def _sampler_state(sampler: Any, position: int) -> dict[str, Any]:
    if hasattr(sampler, "state_dict"):
        st = dict(sampler.state_dict())
        st["position"] = int(position)
        return st
    return {"kind": type(sampler).__name__, "epoch": int(getattr(sampler, "epoch", 0)), "position": int(position),
            "num_batches": len(sampler)}


def _restore_sampler(sampler: Any, state: dict[str, Any], epoch: int, position: int, where: str) -> None:
    from padless.errors import CheckpointError

    kind = state.get("kind")
    if kind != type(sampler).__name__:
        raise CheckpointError(f"{where!r} was written by a run batching with {kind}; this run uses "
                              f"{type(sampler).__name__}: resume with the same batching and tbptt settings")
    sampler.set_epoch(epoch)
    if hasattr(sampler, "load_state_dict"):
        try:
            sampler.load_state_dict({**state, "epoch": epoch, "position": position})
        except ConfigError as e:
            raise CheckpointError(f"{where!r} does not fit this run's data: {e}") from None
    elif int(state.get("num_batches", len(sampler))) != len(sampler) or position > len(sampler):
        raise CheckpointError(f"{where!r} has {state.get('num_batches')} steps per epoch but this run has "
                              f"{len(sampler)}: resume with the same data and settings")


def _reduce_logs(res: EpochResult, keys: list[str], ctx: Any, extra: Sequence[float] = ()) -> tuple[dict[str, float], list[float]]:
    """Token-weighted means over every rank (sums and counts all-reduced) and the totals of ``extra``."""
    vec = [res.sums.get(k, 0.0) for k in keys] + [res.count, *extra]
    tot = ctx.sum(vec) if ctx is not None else vec
    count = tot[len(keys)]
    logs = {k: tot[i] / max(count, 1) for i, k in enumerate(keys)} if count > 0 else dict(res.logs)
    return logs, tot[len(keys) + 1 :]


def _gather_rng(ctx: Any) -> list[dict[str, Any]]:
    import json

    from padless.train.checkpoint import capture_rng

    snap = capture_rng()
    if ctx is None:
        return [snap]
    return [json.loads(b.decode()) for b in ctx.gather_bytes(json.dumps(snap).encode())]


def _gather_carry(shadow: Any, ctx: Any) -> dict[str, torch.Tensor]:
    """Every rank's TBPTT carried state as ``carry/<rank>/<layer>/<k>`` tensors."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    mine: dict[str, torch.Tensor] = {}
    if shadow is not None and shadow.by_layer is not None:
        mine = {f"{li}/{k}": s.detach().cpu().contiguous() for li, st in enumerate(shadow.by_layer)
                for k, s in enumerate(st)}
    if ctx is None:
        return {f"carry/0/{k}": v for k, v in mine.items()}
    out: dict[str, torch.Tensor] = {}
    for r, blob in enumerate(ctx.gather_bytes(st_save(mine) if mine else b"")):
        if blob:
            out.update({f"carry/{r}/{k}": v for k, v in st_load(blob).items()})
    return out


def _restore_carry(tensors: dict[str, torch.Tensor], rank: int, device: torch.device) -> list[list[torch.Tensor]] | None:
    prefix = f"carry/{rank}/"
    mine = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not mine:
        return None
    layers: dict[int, dict[int, torch.Tensor]] = {}
    for k, v in mine.items():
        li, ki = (int(p) for p in k.split("/"))
        layers.setdefault(li, {})[ki] = v.to(device)
    return [[layers[li][k] for k in sorted(layers[li])] for li in sorted(layers)]


def _stateful_modules(model: Any) -> list[Any]:
    from padless.nn.recurrent import Recurrent

    return [m for m in model.modules() if isinstance(m, Recurrent) and m.stateful]


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
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume_from: str | os.PathLike[str] | None = None,
    distributed: bool | str = "auto",
    keep_checkpoints: int = 2,
    overwrite_checkpoints: bool = False,
    max_steps: int | None = None,
) -> History:
    """Train the model (Keras ``fit``) on ragged, padded or equal-length data.

    Args:
        model: a compiled :class:`~padless.nn.sequential.Sequential`.
        x: inputs: a list of (T_i, F) arrays, an (N, T, F) array, a padded array with ``lengths=``, or a
            :class:`~padless.data.RaggedArray`.
        y: per-sequence labels/targets (N,) or (N, K), or per-step targets for a ``return_sequences`` head.
        batch_size: sequences per batch (default 32); per process when distributed (the global batch is
            ``world_size x batch_size``).
        epochs: number of passes over the data.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch; ``"auto"`` = 1 (rank 0 only).
        callbacks: e.g. :class:`~padless.train.callbacks.EarlyStopping`. When distributed, callbacks that
            write files (``ModelCheckpoint``, or any with ``rank_zero_only = True``) run on rank 0 only.
        validation_split: fraction of the *last* samples held out (Keras semantics).
        validation_data: ``(x_val, y_val)``.
        shuffle: shuffle each epoch (batch order and bucket membership); False keeps a fixed order.
        initial_epoch: epoch to start from.
        batching: ``"auto"`` (bucketed: similar lengths together, batch order shuffled), ``"bucket"``,
            ``"exact"`` (one length per batch), ``"random"``, ``"sequential"``. Every mode gives the same
            exact per-sequence results; they differ in speed only.
        lengths: true lengths of a right-padded ``x``.
        seed: seed of the batch order (default: drawn from torch's generator, so ``torch.manual_seed``
            makes runs repeatable; rank 0's draw is used on every rank).
        tbptt: truncated backpropagation through time: lay the data into ``batch_size`` slots and train on
            windows of ``tbptt`` steps, carrying the (detached) state and resetting a slot exactly when its
            sequence ends (see :mod:`padless.train.tbptt`). A value longer than every sequence is fine
            (plain BPTT with slot packing).
        checkpoint_dir: write a checkpoint (weights, optimizer, sampler position, RNG states, callbacks,
            history; see :mod:`padless.train.checkpoint`) there at the end of every epoch and every
            ``checkpoint_every`` steps; rank 0 writes. A fresh run refuses a folder that already holds
            checkpoints (pass ``resume_from`` to continue that run).
        checkpoint_every: also checkpoint every this many training steps (None: at epoch ends only).
        resume_from: a checkpoint folder (its latest checkpoint) or file: continue that run exactly where
            it stopped, mid-epoch included. The model must have the same layers; data, batch size,
            batching, tbptt, shuffle, validation size and process count must match the checkpointed run
            (``epochs`` may differ; ``initial_epoch`` is ignored: the checkpoint says where to start).
        distributed: ``"auto"`` - train data-parallel when a process group is initialised or ``torchrun``
            started this process (``WORLD_SIZE`` > 1); ``True`` - require it; ``False`` - one process.
        keep_checkpoints: how many checkpoint files to keep in ``checkpoint_dir``.
        max_steps: cut batches by a budget of computed steps (rows x longest length, like fairseq's
            ``max_tokens``) instead of ``batch_size`` sequences: short sequences travel in big batches,
            long ones in small ones. Not with ``tbptt`` or a stateful model.
        overwrite_checkpoints: start a fresh run in a ``checkpoint_dir`` that holds another run's
            checkpoints: they are deleted when this run writes its first checkpoint (not before, so a run
            that fails early leaves them in place).

    Returns:
        :class:`History` with ``.history["loss"]`` (and ``accuracy``, ``val_loss``, ...). Distributed:
        every figure is reduced over all ranks (sums and counts), so every rank returns the same history.

    Raises:
        ConfigError: bad arguments; DataError: bad data; CheckpointError: a checkpoint that cannot be
            resumed (damaged, another model, other data or settings).

    Example:
        >>> # model.fit(x, y, epochs=5, checkpoint_dir="ckpt", checkpoint_every=100)
        >>> # ... the process dies ...
        >>> # model.fit(x, y, epochs=5, checkpoint_dir="ckpt", resume_from="ckpt")   # same final weights
    """
    from padless.errors import CheckpointError
    from padless.train.distributed import fingerprint_digest, setup_distributed, shard_windows

    c = _compiled(model)
    bs = _check_batch_size(batch_size)
    _check_count(epochs, "epochs", 0, allow_none=False)
    _check_count(initial_epoch, "initial_epoch", 0, allow_none=False)
    every = _check_count(checkpoint_every, "checkpoint_every", 1)
    if max_steps is not None:
        _check_count(max_steps, "max_steps", 1)
        if tbptt is not None or model.stateful:
            raise ConfigError("max_steps cuts batches by a step budget; it does not combine with tbptt or a stateful model")
    keep = _check_count(keep_checkpoints, "keep_checkpoints", 1, allow_none=False)
    if every is not None and checkpoint_dir is None:
        raise ConfigError("checkpoint_every needs checkpoint_dir= (the folder to write checkpoints to)")
    if tbptt is not None:
        from padless.train.tbptt import check_tbptt

        if isinstance(tbptt, bool) or not isinstance(tbptt, (int, np.integer)) or tbptt <= 0:
            raise ConfigError(f"tbptt must be a positive number of steps; got {tbptt!r}")
        check_tbptt(model)
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
    elif batching not in BATCHING_MODES:
        make_sampler(batching, xr.lengths, bs, shuffle, 0)  # raises with a suggestion
    ctx = setup_distributed(distributed, c.device)
    W, rank = (ctx.world_size, ctx.rank) if ctx is not None else (1, 0)
    if ctx is not None:
        if model.stateful:
            raise ConfigError("stateful models train in one process (their state runs row by row through the "
                              "batches); use tbptt=K for data-parallel training on long sequences")
        if ctx.device != c.device:
            model.to(ctx.device)
            c.device = ctx.device
    ensure_optimizer(model)
    fp = {"sequences": len(xr), "lengths": fingerprint_digest(xr.lengths), "batch_size": bs, "tbptt": tbptt,
          "batching": batching, "shuffle": bool(shuffle), "world_size": W, "validation": 0 if vx is None else len(vx)}
    if ctx is not None:
        digests = ctx.gather_bytes(json.dumps(fp, sort_keys=True).encode())
        if len(set(digests)) > 1:
            bad = next(r for r, d in enumerate(digests) if d != digests[0])
            raise ConfigError(f"rank {bad} has other data or settings than rank 0 ({len(xr)} sequences here): every "
                              "process must load the same data with the same arguments")

    # ------------------------------------------------------------------ checkpoints: refuse / load
    ckpt = None
    if checkpoint_dir is not None and resume_from is None:
        from padless.train.checkpoint import has_checkpoints

        err: BaseException | None = None
        if rank == 0 and has_checkpoints(checkpoint_dir) and not overwrite_checkpoints:
            err = ConfigError(f"{str(checkpoint_dir)!r} already holds checkpoints of another run: pass "
                              f"resume_from={str(checkpoint_dir)!r} to continue it, or choose an empty folder")
        if ctx is not None:
            ctx.check(err)
        elif err is not None:
            raise err
    if resume_from is not None:
        from padless.train.checkpoint import parse_checkpoint, read_checkpoint_bytes

        where, data, err = str(resume_from), b"", None
        if rank == 0:
            try:
                where, data = read_checkpoint_bytes(resume_from)
            except (CheckpointError, OSError) as e:
                err = e if isinstance(e, CheckpointError) else CheckpointError(f"cannot read {str(resume_from)!r}: {e}")
        if ctx is not None:
            ctx.check(err)
            data = ctx.broadcast_bytes(data if rank == 0 else None)
            where = ctx.broadcast_bytes(where.encode() if rank == 0 else None).decode()
        elif err is not None:
            raise err
        ckpt = parse_checkpoint(data, where)
        ckpt.restore_model(model)
        st = ckpt.state
        old = st.get("fingerprint", {})
        for k, v in fp.items():
            if old.get(k) != v:
                hint = " (run with as many processes: --nproc / torchrun --nproc-per-node)" if k == "world_size" else ""
                raise CheckpointError(f"{where!r} was written by a run with {k}={old.get(k)!r}; this run has "
                                      f"{k}={v!r}{hint}: resume with the same data and settings")
        if seed is not None and int(seed) != int(st["seed"]):
            raise CheckpointError(f"{where!r} was written with seed={st['seed']}; this run asks for seed={seed}")
        seed = int(st["seed"])
        if ckpt.optimizer is not None:
            try:
                c.optimizer.load_state_dict(ckpt.optimizer)
            except (ValueError, KeyError, RuntimeError) as e:
                raise CheckpointError(f"{where!r}: the optimizer state does not fit this model's optimizer "
                                      f"({e}); compile with the same optimizer") from None
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        if ctx is not None:
            seed = ctx.broadcast_int(seed)

    # ------------------------------------------------------------------ sampler
    if tbptt is not None:
        from padless.train.tbptt import SlotScheduler, _SlotStates

        sampler: Any = SlotScheduler(xr.lengths, bs * W, tbptt, shuffle=shuffle, seed=seed)
    else:
        sampler = make_sampler(batching, xr.lengths, bs, shuffle, seed, rank=rank, world_size=W, max_steps=max_steps)
    start_epoch, position, global_step, partial, stopped = initial_epoch, 0, 0, None, False
    partial_stats: dict[str, int] = {}
    shadow = None
    if tbptt is not None and checkpoint_dir is not None:
        shadow = _SlotStates()
    if ckpt is not None:
        st = ckpt.state
        start_epoch, position, global_step = int(st["epoch"]), int(st["position"]), int(st["global_step"])
        stopped = bool(st.get("stop_training", False))
        if position > 0:
            _restore_sampler(sampler, st["sampler"], start_epoch, position, ckpt.path)
            p = st.get("partial") or {}
            zero = ctx is not None and rank != 0  # rank 0 carries the (all-reduced) partial sums
            partial = EpochResult(logs={}, sums={} if zero else {k: float(v) for k, v in p.get("sums", {}).items()},
                                  count=0.0 if zero else float(p.get("count", 0.0)),
                                  real_steps=0 if zero else int(p.get("real_steps", 0)),
                                  computed_steps=0 if zero else int(p.get("computed_steps", 0)),
                                  seconds=float(p.get("seconds", 0.0)), steps_done=position)
            partial_stats = {} if zero else {k: int(v) for k, v in p.get("stats", {}).items()}
            if tbptt is not None:
                if shadow is None:
                    shadow = _SlotStates()
                shadow.by_layer = _restore_carry(ckpt.tensors, rank, c.device)
        for m_i, m in enumerate(_stateful_modules(model)):
            saved = [ckpt.tensors[k] for k in sorted(ckpt.tensors) if k.startswith(f"layerstate/{m_i}/")]
            m.states = tuple(s.to(c.device) for s in saved) if saved else None

    # ------------------------------------------------------------------ run
    run = None
    ddp = None
    if ctx is not None:
        from padless.train.distributed import wrap_model

        run, ddp = wrap_model(model, ctx)
    history = History()
    cbs = CallbackList(_rank_zero_callbacks(list(callbacks or []), ctx) + [history], model)
    v = _check_verbose(verbose)
    if ctx is not None and not ctx.is_main:
        v = 0
    keys = ["loss"] + list(c.metric_names)
    model.stop_training = False
    cbs.on_train_begin()
    if ckpt is not None:
        from padless.train.checkpoint import restore_callbacks, restore_rng

        restore_callbacks(cbs.callbacks, ckpt.state.get("callbacks", []), ckpt.tensors)
        model.stop_training = stopped
        if len(ckpt.rng) > rank:
            restore_rng(ckpt.rng[rank])  # last: nothing below draws random numbers before the first step

    stale = [checkpoint_dir is not None and resume_from is None and bool(overwrite_checkpoints)]

    def save(epoch_: int, position_: int, res_: EpochResult | None, stats_: dict[str, int]) -> None:
        from padless.train.checkpoint import callback_states, clear_checkpoints, save_checkpoint

        partial_d = None
        if res_ is not None:  # the epoch in progress: its sums so far (global sums when distributed: rank 0
            # resumes with them, the other ranks with zero)
            vec = [res_.sums.get(k, 0.0) for k in keys] + [res_.count, res_.real_steps, res_.computed_steps,
                                                            stats_.get("slot_steps", 0), stats_.get("real_steps", 0)]
            tot = ctx.sum(vec) if ctx is not None else vec
            n_k = len(keys)
            partial_d = {"sums": dict(zip(keys, tot[:n_k])), "count": tot[n_k], "real_steps": int(tot[n_k + 1]),
                         "computed_steps": int(tot[n_k + 2]), "seconds": res_.seconds,
                         "stats": {"slot_steps": int(tot[n_k + 3]), "real_steps": int(tot[n_k + 4])}}
        rngs = _gather_rng(ctx)
        tensors = _gather_carry(shadow, ctx) if (shadow is not None and position_ > 0) else {}
        err: BaseException | None = None
        if rank == 0:
            cb_states, cb_tensors = callback_states(cbs.callbacks)
            tensors.update({f"{k}": v for k, v in cb_tensors.items()})
            for m_i, m in enumerate(_stateful_modules(model)):
                for k_i, s in enumerate(m.states or ()):
                    tensors[f"layerstate/{m_i}/{k_i}"] = s
            state = {"epoch": epoch_, "position": position_, "global_step": global_step, "epochs": epochs,
                     "seed": seed, "stop_training": bool(model.stop_training),
                     "sampler": _sampler_state(sampler, position_) if position_ > 0 else None,
                     "partial": partial_d, "callbacks": cb_states, "fingerprint": fp, "world_size": W}
            try:
                if stale[0]:  # overwrite_checkpoints: the other run's files go now, not before
                    clear_checkpoints(checkpoint_dir)  # type: ignore[arg-type]
                    stale[0] = False
                save_checkpoint(checkpoint_dir, model, c.optimizer, state, rng=rngs, tensors=tensors,  # type: ignore[arg-type]
                                keep=keep)  # type: ignore[arg-type]
            except (OSError, PadlessError) as e:
                err = e if isinstance(e, PadlessError) else CheckpointError(
                    f"could not write a checkpoint to {str(checkpoint_dir)!r}: {e}")
        if ctx is not None:
            ctx.check(err)
        elif err is not None:
            raise err

    try:
        for epoch in range(start_epoch, epochs):
            if model.stop_training:
                break
            resumed = epoch == start_epoch and position > 0
            if not resumed:
                sampler.set_epoch(epoch)
                cbs.on_epoch_begin(epoch)
            model.train()
            n_steps = len(sampler)
            if ctx is not None:
                counts = ctx.gather_ints(n_steps)
                if len(set(counts)) > 1:
                    raise ConfigError(f"the processes would run different numbers of steps ({counts}) in epoch {epoch}; "
                                      "every process must load the same data with the same arguments")
            prog = Progress(n_steps, epoch, epochs, verbose=v)
            stats: dict[str, int] = dict(partial_stats) if resumed else {}
            skip = position if resumed else 0
            g0 = global_step

            def on_step(res_: EpochResult, epoch: int = epoch, n_steps: int = n_steps, g0: int = g0,
                        skip: int = skip, stats: dict[str, int] = stats) -> None:
                nonlocal global_step
                global_step = g0 + res_.steps_done - skip
                if every is not None and global_step % every == 0 and res_.steps_done < n_steps:
                    save(epoch, res_.steps_done, res_, stats)

            if tbptt is not None:
                windows = sampler.windows()
                if ctx is not None:
                    windows = shard_windows(windows, rank, W, bs)
                steps: Iterable[Step] = _tbptt_epoch_steps(model, xr, t, windows[skip:], bs, c.device, stats, shadow,
                                                           resumed)
            else:
                if resumed and not hasattr(sampler, "load_state_dict"):
                    import itertools

                    batches: Any = itertools.islice(iter(sampler), skip, None)
                else:
                    batches = sampler
                steps = index_steps(model, xr, t, batches, c.device)
            res = run_steps(model, steps, train=True, progress=prog, callbacks=cbs, run=run, ctx=ctx,
                            start=partial if resumed else None,
                            on_step=on_step if checkpoint_dir is not None else None)
            global_step = g0 + res.steps_done - skip
            logs, tot = _reduce_logs(res, keys, ctx, [res.real_steps, res.computed_steps, stats.get("slot_steps", 0),
                                                      stats.get("real_steps", 0), res.seconds])
            if vx is not None:
                vres = _eval(model, vx, vt, bs, ctx=ctx)
                logs.update({f"val_{k}": val for k, val in vres.logs.items()})
            logs["steps_per_second"] = tot[0] / max(tot[4] / W, 1e-9)  # all ranks' steps / mean seconds
            logs["padding_waste"] = 1.0 - tot[0] / max(tot[1], 1)
            if tot[2]:  # TBPTT: idle slot-steps, counted like padding
                logs["padding_waste"] = 1.0 - tot[3] / max(tot[2], 1)
            prog.finish(logs, res.seconds)
            cbs.on_epoch_end(epoch, logs)
            if checkpoint_dir is not None:
                save(epoch + 1, 0, None, {})
            if model.stop_training:
                break
        cbs.on_train_end()
    finally:
        del run
        if ddp is not None:  # free DDP now: a DDP object still alive at interpreter exit can abort the process
            del ddp
            import gc

            gc.collect()
    model.history = history
    return history


def _eval(model: Any, xr: RaggedArray, t: Targets | None, bs: int, collect: bool = False,
          progress: Progress | None = None, ctx: Any = None) -> EpochResult:
    model.eval()
    if model.stateful:
        batches: Any = _SequentialSampler(len(xr), bs)
    else:
        batches = make_sampler("bucket", xr.lengths, bs, shuffle=False, seed=0)
    if ctx is None:
        return run_batches(model, xr, t, batches, train=False, collect=collect, progress=progress)
    from padless.train.distributed import shard_eval

    err: BaseException | None = None
    res = EpochResult(logs={})
    try:
        res = run_batches(model, xr, t, shard_eval(batches, ctx), train=False, collect=collect, progress=progress)
    except Exception as e:  # every rank must reach the reduction below, or fail together
        err = e
    ctx.check(err)
    keys = ["loss"] + list(model.compiled.metric_names)
    res.logs, _ = _reduce_logs(res, keys, ctx)
    return res


def evaluate(model: Any, x: Any, y: Any = None, batch_size: int | None = None, verbose: int | str = "auto",
             lengths: Any = None, return_dict: bool = False, distributed: bool | str = "auto") -> Any:
    """Loss and metrics on ``(x, y)`` (Keras ``evaluate``): ``[loss, *metrics]``, or the loss alone when
    no metric was compiled, or a dict with ``return_dict=True``.

    Under ``torchrun`` (or with an initialised process group) every rank evaluates its share of the
    batches and the sums and counts are all-reduced: every rank returns the figures of the whole data.

    Example:
        >>> # loss, acc = model.evaluate(x, y, verbose=0)
    """
    from padless.train.distributed import setup_distributed

    c = _compiled(model)
    bs = _check_batch_size(batch_size)
    xr = _prepare(model, x, lengths)
    t = _targets(model, y, xr)
    ctx = setup_distributed(distributed, c.device)
    if ctx is not None and model.stateful:
        ctx = None  # stateful models evaluate row by row in every process
    v = _check_verbose(verbose)
    if ctx is not None and not ctx.is_main:
        v = 0
    n_batches = math.ceil(len(xr) / bs)
    prog = Progress(n_batches, None, None, verbose=v)
    res = _eval(model, xr, t, bs, progress=prog, ctx=ctx)
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
    v = _check_verbose(verbose)
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
