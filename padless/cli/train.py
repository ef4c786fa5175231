"""``padless train``: read DATA, build the recipe's model, train (optionally on N processes), save the run.

Owns: :func:`run_train` and its steps: :func:`check_numbers`, :func:`train_data`, :func:`plan_outputs` (what
is written where, refusing to overwrite anything unasked) and :func:`write_run` (``model.safetensors``,
``history.csv``, ``curves.png``). A run folder given as ``--out`` always gets ``checkpoints/`` (one per
epoch end, and every ``--checkpoint-every`` steps), so ``--resume OUT`` works after any crash.

Does not own: option parsing (:mod:`padless.cli.config`), models (:mod:`padless.recipes`), training
(the model's ``fit``), launching processes (:mod:`padless.train.distributed.launch`).

Example:
    >>> from padless.cli.config import TrainConfig
    >>> check_numbers(TrainConfig(data="plaid", units=8))
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from padless.cli.config import TrainConfig
from padless.cli.data import TaskData, preprocessing_of, read_data_for, read_train_data
from padless.errors import CheckpointError, ConfigError, PadlessError
from padless.io import atomic_write_bytes
from padless.plots import history_plot
from padless.recipes import CLASSIFIER_FIT, StepDecay, recipe, select_recipe, task_model
from padless.train.callbacks import EarlyStopping
from padless.train.checkpoint import find_checkpoint_folder, has_checkpoints, load_checkpoint
from padless.train.distributed import env_world_size, launch_local, setup_distributed
from padless.train.saving import MODEL_FILE

__all__ = ["run_train", "check_numbers", "train_data", "plan_outputs", "write_run", "write_history"]


def check_numbers(cfg: TrainConfig) -> None:
    """Refuse numbers that would fail deep inside training (or silently train on a default)."""
    if cfg.nproc is not None and cfg.nproc < 1:
        raise ConfigError(f"--nproc must be >= 1; got {cfg.nproc}")
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; got {cfg.batch_size}")
    if cfg.lr is not None and not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise ConfigError(f"--lr must be a positive number; got {cfg.lr}")
    if cfg.units < 1:
        raise ConfigError(f"--units must be >= 1; got {cfg.units}")
    if cfg.patience < 0:
        raise ConfigError(f"--patience must be >= 0 epochs; got {cfg.patience}")
    if cfg.checkpoint_every is not None and cfg.checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every must be >= 1 step; got {cfg.checkpoint_every}")


def train_data(cfg: TrainConfig) -> tuple[TaskData, tuple[Any, Any] | None]:
    """The training data and the validation data (``--val``, read the same way), refusing unusable data."""
    data = read_train_data(cfg)
    val = None
    if cfg.val:
        vd = read_data_for(cfg.val, preprocessing_of(data, cfg.data), split="test", targets=True)
        val = (vd.x, vd.y)
    return data, val


def _resume_folder(spec: str) -> Path:
    """``--resume DIR``: a checkpoint folder, or an ``--out`` folder holding ``checkpoints/``."""
    folder = find_checkpoint_folder(spec)
    if folder is not None:
        return folder
    if not Path(spec).exists():
        raise ConfigError(f"--resume {spec}: no such folder")
    raise ConfigError(f"--resume {spec}: no checkpoint there (no latest.json in it or in its checkpoints/ folder)")


def plan_outputs(cfg: TrainConfig) -> tuple[Path | None, Path | None, Path | None]:
    """``(out, checkpoint folder, resume folder)`` after checking that nothing on disk gets overwritten."""
    out = Path(cfg.out) if cfg.out else None
    resume = _resume_folder(cfg.resume) if cfg.resume else None
    ckdir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    if ckdir is None and resume is not None:
        ckdir = resume
    if ckdir is None and out is not None:
        ckdir = out / "checkpoints"  # every run folder can be resumed
    if ckdir is None and cfg.checkpoint_every is not None:
        raise ConfigError("--checkpoint-every needs --out or --checkpoint-dir (where to write checkpoints)")
    if out is not None and (out / MODEL_FILE).exists() and not cfg.overwrite and resume is None:
        raise ConfigError(f"{out / MODEL_FILE} exists; pass --overwrite or another --out")
    if ckdir is not None and resume is None and has_checkpoints(ckdir) and not cfg.overwrite:
        raise ConfigError(f"{ckdir} already holds checkpoints; pass --resume {cfg.out or ckdir} to continue that run, "
                          "--overwrite to start over, or another --out")
    return out, ckdir, resume


def write_history(path: Path, history: dict[str, list[float]]) -> None:
    """One CSV row per epoch (written atomically)."""
    keys = list(history)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["epoch"] + keys)
    for i in range(len(history[keys[0]]) if keys else 0):
        w.writerow([i + 1] + [history[k][i] for k in keys])
    atomic_write_bytes(path, buf.getvalue().encode())


def write_run(out: Path, model: Any, history: dict[str, list[float]]) -> None:
    """``model.safetensors``, ``history.csv`` and (with matplotlib) ``curves.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    write_history(out / "history.csv", history)
    history_plot(history, out / "curves.png")


def build_model(cfg: TrainConfig, data: TaskData, ctx: Any, previous: str | None = None
                ) -> tuple[Any, int, int, list[Any], dict[str, Any]]:
    """``(compiled model, epochs, batch size, callbacks, what to remember)`` for the options and the data.

    A classifier without ``--layers`` comes from a recipe; ``--model auto`` chooses it on a validation part of
    the training data (rank 0 chooses under torchrun and tells the others); a resumed run keeps the recipe of
    the run it continues (``previous``).
    """
    x, y = data.x, data.y
    if data.task != "classify" or cfg.layers:
        if cfg.model != "auto" and data.task != "classify":
            raise ConfigError(f"--model {cfg.model} is a classifier recipe; the task here is {data.task}")
        model = task_model(data.task, x.num_features, data.num_outputs, x, y, per_step=data.per_step, units=cfg.units,
                           layers=cfg.layers, lr=cfg.lr or 3e-3)
        epochs = cfg.epochs if cfg.epochs is not None else CLASSIFIER_FIT["epochs"]
        bs = CLASSIFIER_FIT["batch_size"] if cfg.batch_size is None else cfg.batch_size
        return model, epochs, bs, [StepDecay((int(epochs * 0.6), int(epochs * 0.85)))], {}
    chosen: dict[str, Any] = {}
    name = cfg.model
    if name == "auto" and previous is not None:
        name = previous
        chosen["recipe"] = {"name": name, "auto": True, "resumed": True}
    elif name == "auto":
        sel = None
        if ctx is None or ctx.is_main:
            sel = select_recipe(x, y, budget_s=cfg.budget, seed=cfg.seed, epochs=cfg.epochs)
            name = sel.chosen
            if not cfg.quiet:
                print(f"model: {name} (auto: {sel.reason})", flush=True)
        if ctx is not None:
            name = ctx.broadcast_bytes(name.encode() if ctx.is_main else None).decode()
        chosen["recipe"] = {"name": name, "auto": True, **({"selection": sel.to_dict()} if sel is not None else {})}
    elif not chosen:
        chosen["recipe"] = {"name": name, "auto": False}
    r = recipe(name)
    torch.manual_seed(cfg.seed)
    model = r.build(x.num_features, data.num_outputs, x, lr=cfg.lr)
    epochs = cfg.epochs if cfg.epochs is not None else int(r.fit["epochs"])
    bs = cfg.batch_size if cfg.batch_size is not None else int(r.fit["batch_size"])
    return model, epochs, bs, r.callbacks(epochs), chosen


def _launch(cfg: TrainConfig, argv: list[str], debug: bool) -> int:
    """``--nproc N``: check what can be checked here, then run N processes through torchrun."""
    if torch.cuda.is_available() and int(cfg.nproc) > torch.cuda.device_count():  # type: ignore[arg-type]
        raise ConfigError(f"--nproc {cfg.nproc} but this machine has {torch.cuda.device_count()} GPU(s): NCCL needs "
                          "one process per GPU")
    train_data(cfg)  # bad data fails here, in one line, before any process starts
    _, _, resume = plan_outputs(cfg)
    if resume is not None:
        load_checkpoint(resume)  # a damaged checkpoint fails here, in one line
    return launch_local(argv, int(cfg.nproc), debug)  # type: ignore[arg-type]


def run_train(cfg: TrainConfig, argv: list[str], debug: bool = False) -> int:
    """Train as the options say; print ``name: value`` lines; return the exit code."""
    check_numbers(cfg)
    if cfg.nproc is not None and cfg.nproc > 1 and env_world_size() <= 1:
        return _launch(cfg, argv, debug)
    ctx = setup_distributed("auto", torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    main_rank = ctx is None or ctx.is_main
    torch.manual_seed(cfg.seed)
    data, val = train_data(cfg)
    x, y = data.x, data.y
    if data.task == "classify" and not data.classes:
        data.classes = [str(i) for i in range(int(np.max(y)) + 1)]
    err: BaseException | None = None
    out = ckdir = resume = None
    previous: str | None = None  # the recipe of the run being resumed
    if main_rank:  # rank 0 decides (the others may not see the same disk), then every rank agrees
        try:
            out, ckdir, resume = plan_outputs(cfg)
            if resume is not None:
                previous = load_checkpoint(resume).preprocessing.get("recipe", {}).get("name")
        except (ConfigError, CheckpointError) as e:
            err = e
    if ctx is not None:
        ctx.check(err)
        paths = json.dumps([str(ckdir) if ckdir else None, str(resume) if resume else None, previous])
        ck, rs, previous = json.loads(ctx.broadcast_bytes(paths.encode() if main_rank else None).decode())
        ckdir, resume = (Path(ck) if ck else None), (Path(rs) if rs else None)  # only rank 0 reads or writes them
    elif err is not None:
        raise err
    model, epochs, batch_size, callbacks, chosen = build_model(cfg, data, ctx, previous)
    model.preprocessing = {**preprocessing_of(data, cfg.data), **chosen}
    if cfg.patience and (val is not None or cfg.val_split):
        callbacks.append(EarlyStopping("val_loss", patience=cfg.patience, restore_best_weights=True))
    t0 = time.perf_counter()
    hist = model.fit(x, y, batch_size=batch_size, epochs=epochs, validation_data=val, validation_split=cfg.val_split if val is None else 0.0,
                     batching=cfg.batching, seed=cfg.seed, max_steps=cfg.max_steps, tbptt=cfg.tbptt,
                     callbacks=callbacks, verbose=0 if cfg.quiet else 1, checkpoint_dir=ckdir,
                     checkpoint_every=cfg.checkpoint_every, resume_from=resume, overwrite_checkpoints=bool(cfg.overwrite))
    secs = time.perf_counter() - t0
    err = None
    if main_rank:  # rank 0 writes and prints; the others wait for it, then every process leaves together
        try:
            if out is not None:
                write_run(out, model, hist.history)
            last = {k: v[-1] for k, v in hist.history.items()}
            print(f"task: {data.task}{' (per step)' if data.per_step and data.task == 'regress' else ''}")
            if "recipe" in model.preprocessing:
                print(f"model: {model.preprocessing['recipe']['name']}")
            for k in ("loss", "accuracy", "mae", "val_loss", "val_accuracy", "val_mae"):
                if k in last:
                    print(f"{k}: {last[k]:.4f}")
            print(f"train_seconds: {secs:.1f}")
            if ctx is not None:
                print(f"processes: {ctx.world_size}")
            if out is not None:
                print(f"saved: {out / MODEL_FILE}")
        except (OSError, PadlessError) as e:
            err = e
    if ctx is not None:
        ctx.check(err)
        ctx.close()
    elif err is not None:
        raise err
    return 0
