"""The options of ``padless train``: one typed dataclass that drives argparse and ``--config`` files alike.

Owns: :class:`TrainConfig` (every option with its type, default, flag and help text, in field metadata),
:func:`add_arguments` (the flags on an argparse parser, all defaulting to "not given"),
:func:`read_config_file` (TOML or JSON; ``tomllib`` on Python 3.11+, ``tomli`` on 3.10) and
:meth:`TrainConfig.merge` (defaults < file < command line, with one error naming an unknown option).

Does not own: what the options do (:mod:`padless.cli.train`).

Example:
    >>> cfg = TrainConfig.merge({"epochs": 3}, {"data": "plaid", "epochs": None, "units": 32})
    >>> cfg.data, cfg.epochs, cfg.units, cfg.batching
    ('plaid', 3, 32, 'auto')
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from padless.errors import ConfigError
from padless.recipes.classify import RECIPES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["TrainConfig", "add_arguments", "read_config_file"]


def _opt(default: Any, help: str, flag: str | None = None, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, "flag": flag, **extra})


@dataclass
class TrainConfig:
    """Every option of ``padless train`` (command line flag = ``--`` + name with ``-`` for ``_``)."""

    data: str = field(default="", metadata={"help": "built-in name (japanese_vowels, plaid), .ts, .parquet, .npz, "
                                                     "a RaggedArray dir, or a long table (.csv/.parquet with --id)",
                                            "positional": True})
    id: str | None = _opt(None, "long table: the sequence id column", metavar="COL")
    time: str | None = _opt(None, "long table: the column ordering the steps of a sequence (optional when the rows "
                                  "are in order)", metavar="COL")
    features: str | None = _opt(None, "long table: feature columns, comma-separated (default: every numeric column "
                                      "that is not id, time or target)", metavar="COL,...")
    target: str | None = _opt(None, "long table: the target column (per row: a per-step task; constant per id: a "
                                    "per-sequence task)", metavar="COL")
    labels: str | None = _opt(None, "long table: a second table id -> target", metavar="FILE")
    task: str | None = _opt(None, "classify, regress, tag or forecast (default: inferred from the target)",
                            choices=["classify", "regress", "tag", "forecast"])
    horizon: int | None = _opt(None, "forecast: steps ahead to predict (default 1)", metavar="H")
    drop_short: bool = _opt(False, "forecast: drop sequences too short for the horizon instead of refusing them")
    fill: str | None = _opt(None, "long table: fill NaN features (ffill, bfill, zero, mean); refused by default",
                            choices=["ffill", "bfill", "zero", "mean"])
    model: str = _opt("auto", "classifier recipe: auto (chosen on a validation part of the training data within "
                               "--budget), " + ", ".join(RECIPES), choices=["auto", *RECIPES])
    budget: float = _opt(300.0, "seconds --model auto may spend choosing (the candidates share it)", metavar="S")
    layers: str | None = _opt(None, "recurrent stack replacing the recipe, e.g. lstm:100,lstm:100 or bigru:64,gru:64")
    units: int = _opt(64, "width of the default recipe's layers")
    epochs: int | None = _opt(None, "passes over the data (default: the recipe's)")
    batch_size: int | None = _opt(None, "sequences per batch (default: the recipe's)")
    batching: str = _opt("auto", "how sequences share batches", choices=["auto", "bucket", "exact", "random"])
    lr: float | None = _opt(None, "learning rate (default: the recipe's)")
    val_split: float = _opt(0.0, "fraction of the training data held out for validation (the last samples)")
    val: str | None = _opt(None, "validation DATA")
    patience: int = _opt(0, "early stopping patience in epochs (needs validation)")
    seed: int = _opt(0, "random seed (weights and batch order)")
    out: str | None = _opt(None, "folder for model.safetensors, history.csv, curves.png and checkpoints/")
    overwrite: bool = _opt(False, "replace OUT/model.safetensors and start the checkpoints over (the old ones are "
                                  "deleted when the first new one is written)")
    quiet: bool = _opt(False, "no progress output")
    max_steps: int | None = _opt(None, "cut batches by a budget of computed steps (rows x longest) instead of "
                                       "--batch-size", metavar="STEPS")
    tbptt: int | None = _opt(None, "truncated BPTT: --batch-size slots, windows of K steps, exact per-sequence "
                                   "resets", metavar="K")
    nproc: int | None = _opt(None, "train data-parallel in N processes on this machine (runs torchrun; gloo on CPU, "
                                   "NCCL on GPU)")
    checkpoint_every: int | None = _opt(None, "also checkpoint every STEPS training steps (a checkpoint is always "
                                              "written at every epoch end when --out or --checkpoint-dir is given)",
                                        metavar="STEPS")
    checkpoint_dir: str | None = _opt(None, "where checkpoints go (default OUT/checkpoints)")
    resume: str | None = _opt(None, "continue the run checkpointed in DIR (a checkpoint folder or an earlier --out)",
                              metavar="DIR")

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def merge(cls, file_options: Mapping[str, Any], cli_options: Mapping[str, Any], source: str = "--config") -> "TrainConfig":
        """Defaults, then the file's options, then the flags given on the command line (``None`` = not given).

        Raises:
            ConfigError: an option the file names that does not exist, or a value of the wrong type.
        """
        names = cls.option_names()
        values: dict[str, Any] = {}
        for k, v in file_options.items():
            key = str(k).replace("-", "_")
            if key not in names or key == "data":
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{source}: unknown option {k!r}{hint}; valid: {', '.join(n for n in names if n != 'data')}")
            values[key] = ",".join(v) if key == "layers" and isinstance(v, list) else v
        for k, v in cli_options.items():
            if k in names and v is not None:
                values[k] = v
        cfg = cls(**values)
        cfg.check_types(source)
        return cfg

    def check_types(self, source: str) -> None:
        """Refuse a file value of the wrong type (the command line's are converted by argparse)."""
        for f in fields(self):
            v = getattr(self, f.name)
            default = f.default if f.default is not MISSING else None
            kind = type(default) if default is not None else _declared(f.type)
            if v is None or kind is None:
                continue
            if kind is float and isinstance(v, int) and not isinstance(v, bool):
                setattr(self, f.name, float(v))
            elif not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
                raise ConfigError(f"{source}: option {f.name!r} must be {kind.__name__}; got {v!r}")


def _declared(type_text: Any) -> type | None:
    text = str(type_text)
    for name, kind in (("int", int), ("float", float), ("str", str), ("bool", bool)):
        if text.startswith(name):
            return kind
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every :class:`TrainConfig` option as a flag (default None = not given; booleans are switches)."""
    for f in fields(TrainConfig):
        meta = dict(f.metadata)
        if meta.get("positional"):
            parser.add_argument(f.name, help=meta["help"])
            continue
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"help": meta["help"], "default": None, "dest": f.name}
        kind = type(f.default) if f.default is not None else _declared(f.type)
        if kind is bool:
            kwargs["action"] = "store_const"
            kwargs["const"] = True
        else:
            kwargs["type"] = kind or str
            for k in ("choices", "metavar"):
                if k in meta:
                    kwargs[k] = meta[k]
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="TOML or JSON file with any of these options (e.g. layers = \"lstm:100,lstm:100\", "
                             "epochs = 30); flags given on the command line win")


def read_config_file(path: str | None) -> dict[str, Any]:
    """The options in a TOML (``.toml``) or JSON file ({} when ``path`` is None).

    Raises:
        ConfigError: unreadable file, bad syntax, or not a table of options.
    """
    if path is None:
        return {}
    p = Path(path)
    try:
        text = p.read_text()
        cfg = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, ValueError) as e:  # tomllib.TOMLDecodeError and json.JSONDecodeError are ValueErrors
        raise ConfigError(f"cannot read --config {p}: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"--config {p}: expected a table/object of options")
    return cfg
