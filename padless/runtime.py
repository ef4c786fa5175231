"""Process-level performance settings that padless can apply on request.

Owns: :func:`tune_allocator`. On Linux with glibc, large tensors are allocated with ``mmap`` and returned
to the system on every free, so each training step page-faults fresh memory in again; on small CPU
machines that can take a third or more of an LSTM's step time (measured in ``benchmarks/RESULTS.md``).
Raising glibc's mmap and trim thresholds keeps that memory in the heap for reuse - the same effect as
``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` in the environment, or as preloading jemalloc or
tcmalloc, which PyTorch's CPU tuning guide recommends.

It changes the whole process (freed memory is kept for reuse instead of returned to the OS), so the
library never calls it on its own: the ``padless`` command line does (opt out with
``PADLESS_TUNE_MALLOC=0``), and Python users may call it once at start-up.

Does not own: threads, devices or anything in torch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["tune_allocator", "allocator_tuned"]

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_state = {"tuned": False}


def allocator_tuned() -> bool:
    """True when this process runs with the tuned allocator settings (by this module or the environment)."""
    return _state["tuned"] or bool(os.environ.get("MALLOC_MMAP_THRESHOLD_"))


def tune_allocator(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 30, top_pad: int = 64 << 20) -> bool:
    """Keep large freed blocks in the heap for reuse (glibc ``mallopt``). Returns True when applied.

    Example:
        >>> isinstance(tune_allocator(), bool)
        True
    """
    if _state["tuned"]:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl): nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = all(
        mallopt(opt, min(val, 2**31 - 1)) == 1
        for opt, val in ((_M_MMAP_THRESHOLD, mmap_threshold), (_M_TRIM_THRESHOLD, trim_threshold), (_M_TOP_PAD, top_pad))
    )
    _state["tuned"] = ok
    return ok
