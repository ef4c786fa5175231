"""The ``padless`` command line: demo, train, evaluate, predict, export, inspect, bench.

Owns: :func:`build_parser`, :func:`main` (every padless error becomes one line on stderr with exit code
2; a traceback only with ``--debug``) and the allocator tuning of the ``padless`` process. The commands
live in :mod:`padless.cli.train` and :mod:`padless.cli.commands`, the train options in
:mod:`padless.cli.config`. Does not own: training or models (it calls the library like any user would).

Examples:
    padless demo
    padless train japanese_vowels --epochs 40 --out runs/jv
    padless evaluate runs/jv japanese_vowels
    padless predict runs/jv my_data.parquet --out preds.csv
    padless export runs/jv runs/jv/model.onnx
    padless inspect plaid --batch-size 32 --plot lengths.png
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn, Sequence

from padless.cli.commands import cmd_bench, cmd_demo, cmd_evaluate, cmd_export, cmd_inspect, cmd_predict
from padless.cli.config import TrainConfig, add_arguments, read_config_file
from padless.cli.train import run_train
from padless.errors import PadlessError
from padless.runtime import tune_allocator
from padless.train.distributed import ERROR_PREFIX

__all__ = ["main", "build_parser", "Parser"]

EXIT_USAGE = 2
_RAW = argparse.RawDescriptionHelpFormatter


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``padless train: error: ... (see padless train --help)``), exit code 2."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def cmd_train(a: argparse.Namespace) -> int:
    cfg = TrainConfig.merge(read_config_file(a.config), vars(a))
    return run_train(cfg, list(a.argv), bool(a.debug))


def build_parser() -> argparse.ArgumentParser:
    """The ``padless`` parser with every subcommand."""
    ap = Parser(
        prog="padless",
        description="Train LSTM/GRU on variable-length sequences exactly and fast, with no padding waste.",
        epilog="Examples:\n  padless demo\n  padless train japanese_vowels --out runs/jv\n"
               "  padless evaluate runs/jv japanese_vowels\n  padless inspect plaid --plot plaid.png",
        formatter_class=_RAW,
    )
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")

    d = sub.add_parser("demo", help="the quick-start demo on built-in data (about a minute on 2 cores)",
                       epilog="Example: padless demo", formatter_class=_RAW)
    d.add_argument("--quick", action="store_true", help="smaller, faster run (for tests)")
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("train", help="train a classifier on DATA",
                       epilog="Examples:\n  padless train japanese_vowels --out runs/jv\n"
                              "  padless train my.parquet --layers bilstm:64,lstm:64 --epochs 30 --val-split 0.2\n"
                              "  padless train plaid --out runs/p --checkpoint-every 50 --nproc 2\n"
                              "  padless train plaid --out runs/p --nproc 2 --resume runs/p\n"
                              "  torchrun --nproc-per-node 4 -m padless train plaid --out runs/p",
                       formatter_class=_RAW)
    add_arguments(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="loss and metrics of a saved model on DATA",
                       epilog="Example: padless evaluate runs/jv japanese_vowels")
    e.add_argument("model", help="a saved model (.safetensors), a run folder (train --out) or a checkpoint")
    e.add_argument("data")
    e.add_argument("--batch-size", type=int, default=32)
    e.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="class probabilities for DATA (CSV, .npy or .npz; per sequence or per step)",
                       epilog="Examples:\n  padless predict runs/jv japanese_vowels --out preds.csv\n"
                              "  padless predict runs/jv/model.onnx japanese_vowels --out preds.csv",
                       formatter_class=_RAW)
    p.add_argument("model", help="a saved model, a run folder, a checkpoint, or an exported .onnx (onnxruntime)")
    p.add_argument("data")
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_predict)

    ex = sub.add_parser("export", help="write a saved model as ONNX (inputs: padded batch + lengths)",
                        epilog="Examples:\n  padless export runs/jv runs/jv/model.onnx\n"
                               "  padless export runs/gru/model.safetensors stream.onnx --streaming",
                        formatter_class=_RAW)
    ex.add_argument("model", help="a saved model (.safetensors), a run folder or a checkpoint")
    ex.add_argument("out", help="the .onnx file to write")
    ex.add_argument("--streaming", action="store_true",
                    help="also take and return each recurrent layer's state (feed chunks; causal models)")
    ex.add_argument("--opset", type=int, default=17)
    ex.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-predict comparison")
    ex.add_argument("--overwrite", action="store_true")
    ex.set_defaults(func=cmd_export)

    i = sub.add_parser("inspect", help="length statistics and the padding waste of each batching strategy",
                       epilog="Example: padless inspect plaid --batch-size 32 --plot plaid.png")
    i.add_argument("data")
    i.add_argument("--split", default="train", choices=["train", "test"])
    i.add_argument("--batch-size", type=int, default=32)
    i.add_argument("--plot", default=None, help="write a length histogram with bucket boundaries (PNG)")
    i.add_argument("--id", default=None, metavar="COL", help="long table: the sequence id column")
    i.add_argument("--time", default=None, metavar="COL", help="long table: the column ordering the steps")
    i.set_defaults(func=cmd_inspect)

    b = sub.add_parser("bench", help="run the throughput benchmark and print its table",
                       epilog="Example: padless bench --repeats 5")
    b.add_argument("--repeats", type=int, default=None, help="rounds per workload (default: each workload's own)")
    b.add_argument("--only", default=None, help="comma-separated workloads (default: all; see benchmarks/run.py)")
    b.add_argument("--quick", action="store_true")
    b.set_defaults(func=cmd_bench)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``padless`` console script."""
    raw = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    a = ap.parse_args(raw)
    a.argv = raw  # padless train --nproc N re-runs it under torchrun
    if not getattr(a, "func", None):
        ap.print_help()
        return EXIT_USAGE
    if os.environ.get("PADLESS_TUNE_MALLOC", "1") != "0":
        tune_allocator()  # this process is ours: keep freed tensor memory for reuse (see padless.runtime)
    try:
        return int(a.func(a) or 0)
    except (PadlessError, FileNotFoundError, PermissionError) as e:
        if a.debug:
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        rank = os.environ.get("RANK", "0") if os.environ.get("WORLD_SIZE", "1") not in ("", "1") else "0"
        prefix = ERROR_PREFIX if a.cmd == "train" else f"padless {a.cmd}: error: "
        print(f"{prefix}{msg}" + (f" [rank {rank}]" if rank != "0" else ""), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
