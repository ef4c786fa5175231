"""Starting N training processes on this machine through torchrun (``padless train --nproc N``).

Owns: :func:`launch_local` (re-run a command line under ``python -m torch.distributed.run --standalone``,
pass the workers' warnings through, and turn a failed run into one line naming the first worker's error)
and :data:`ERROR_PREFIX` (how a worker prints its error, so the launcher can find it).

Does not own: what the processes do (the command line, the trainer) or the process group they form
(:mod:`padless.train.distributed.context`).

Example:
    >>> strip_nproc(["train", "plaid", "--nproc", "2", "--epochs", "1"])
    ['train', 'plaid', '--epochs', '1']
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Sequence

from padless.errors import PadlessError

__all__ = ["launch_local", "strip_nproc", "ERROR_PREFIX", "LaunchError"]

ERROR_PREFIX = "padless train: error: "
_LAUNCHER_LOG = re.compile(r"^[EWI]\d{4} \d\d:\d\d:\d\d")


class LaunchError(PadlessError):
    """The training processes failed; the message is their first error, in one line."""


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N`` (the workers must not launch again)."""
    rest: list[str] = []
    skip = False
    for tok in argv:
        if skip:
            skip = False
        elif tok == "--nproc":
            skip = True
        elif not tok.startswith("--nproc="):
            rest.append(tok)
    return rest


def launch_local(argv: Sequence[str], nproc: int, debug: bool = False) -> int:
    """Run ``python -m padless <argv>`` in ``nproc`` processes through torchrun; 0 on success.

    Raises:
        LaunchError: a worker failed (its first error line, rank 0's first), or torchrun itself failed.
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "padless", *strip_nproc(argv)]
    proc = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True, errors="replace")
    lines = proc.stderr.splitlines()
    if proc.returncode == 0:
        for line in lines:  # worker warnings, without the launcher's own log lines
            if not _LAUNCHER_LOG.match(line):
                print(line, file=sys.stderr)
        return 0
    if debug:
        print(proc.stderr, file=sys.stderr, end="")
    errors = [ln[len(ERROR_PREFIX):] for ln in lines if ln.startswith(ERROR_PREFIX)]
    if errors:  # rank 0's line first (the others end in "[rank r]")
        raise LaunchError(sorted(errors, key=lambda m: m.endswith("]"))[0])
    last = [m.group(1) for m in (re.match(r"^(?:\[rank\d+\]:\s*)?(\w+(?:\.\w+)*(?:Error|Exception)\b.*)$", ln)
                                 for ln in lines) if m and "ChildFailedError" not in m.group(1)]
    codes = sorted({c for c in re.findall(r"exitcode\s*:\s*(-?\d+)", proc.stderr) if c not in ("0", "1")})
    why = f": {last[-1][:300]}" if last else (f" (worker exit codes {', '.join(codes)})" if codes else "")
    raise LaunchError(f"a training process failed (torchrun exit code {proc.returncode}){why}; rerun with --debug "
                      "to see its output")
