"""Which engine runs a recurrent layer, and why.

Owns: the ``PADLESS_ENGINE`` setting (``auto`` | ``packed`` | ``blocks``), :func:`select_engine` (device +
dtype -> engine and reason) and :func:`engine_status` (what the compiled engine's build came to).

Rules: CUDA -> ``cudnn`` (one call on the packed layout), or ``blocks`` when rows reset mid-batch; CPU
float32/float64 -> ``packed`` (the compiled engine) when it builds, else ``blocks`` with a one-line notice
naming what is missing; CPU float16/bfloat16 and other devices -> ``blocks`` with a notice.
``PADLESS_ENGINE=blocks`` always picks ``blocks`` (the caller's dense-per-block path);
``PADLESS_ENGINE=packed`` is ``auto`` that raises instead of falling back when the build is unavailable.

Does not own: building (``_build``) or running anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from padless.errors import ConfigError
from padless.nn.engine import _build

__all__ = ["SETTINGS", "EngineChoice", "EngineStatus", "engine_setting", "engine_status", "select_engine"]

SETTINGS = ("auto", "packed", "blocks")
_PACKED_DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True)
class EngineChoice:
    """The engine for one (device, dtype) and the reason, in one line.

    Attributes:
        engine: ``"packed"`` (compiled CPU engine), ``"cudnn"`` (one cuDNN packed call), ``"blocks"``
            (one dense kernel call per block; the caller's fallback) or ``"reference"``.
        reason: why, in words.
    """

    engine: str
    reason: str


@dataclass(frozen=True)
class EngineStatus:
    """State of the compiled CPU engine in this process.

    Attributes:
        setting: the ``PADLESS_ENGINE`` value in force.
        available: the compiled engine is loaded.
        reason: why not ("" when available; "not requested" under ``blocks``).
        library: path of the loaded library.
        info: what it was built with (vector ISA, GEMM backend, OpenMP).
        compiled_now: this process compiled it.
        build_seconds: compile time in this process (0.0 when loaded from the cache).
    """

    setting: str
    available: bool
    reason: str
    library: str | None
    info: str
    compiled_now: bool
    build_seconds: float

    def __str__(self) -> str:
        if self.available:
            how = f"compiled in {self.build_seconds:.0f} s" if self.compiled_now else "loaded from cache"
            return f"packed engine: available ({self.info}; {how}; PADLESS_ENGINE={self.setting})"
        return f"packed engine: unavailable ({self.reason}; PADLESS_ENGINE={self.setting})"


def engine_setting() -> str:
    """The ``PADLESS_ENGINE`` setting, lower-cased (default ``auto``).

    Raises:
        ConfigError: for any other value; the message lists the valid ones.
    """
    raw = os.environ.get("PADLESS_ENGINE", "auto")
    value = raw.strip().lower() or "auto"
    if value not in SETTINGS:
        raise ConfigError(f"PADLESS_ENGINE={raw!r} is not valid; use one of: {', '.join(SETTINGS)}")
    return value


def select_engine(device: torch.device | str, dtype: torch.dtype, *, has_reset: bool = False) -> EngineChoice:
    """Pick the engine for a recurrent layer on ``device`` in ``dtype``.

    The first call for a CPU float32/float64 layer builds (or loads) the compiled engine.

    Args:
        device: where the layer's tensors live.
        dtype: their dtype.
        has_reset: rows reset mid-batch (cuDNN's packed call cannot; CUDA then uses ``blocks``).

    Returns:
        An :class:`EngineChoice`; ``engine == "blocks"`` means: run the dense-per-block path.

    Raises:
        ConfigError: ``PADLESS_ENGINE`` is invalid, or is ``packed`` and the compiled engine cannot be built.

    Example:
        >>> import torch
        >>> select_engine("cpu", torch.float32).engine in ("packed", "blocks")
        True
    """
    setting = engine_setting()
    dev = torch.device(device)
    if setting == "blocks":
        return EngineChoice("blocks", "PADLESS_ENGINE=blocks")
    if dev.type == "cuda":
        if has_reset:
            return EngineChoice("blocks", "cuDNN's packed call cannot reset rows mid-batch: one cuDNN call per block")
        return EngineChoice("cudnn", "CUDA: the whole batch in one cuDNN call on the packed layout")
    if dev.type != "cpu":
        _build.notice(f"no packed engine for device type {dev.type!r}; using the block engine")
        return EngineChoice("blocks", f"no packed engine for device type {dev.type!r}")
    if dtype not in _PACKED_DTYPES:
        name = str(dtype).replace("torch.", "")
        _build.notice(f"the packed CPU engine runs float32 and float64; {name} layers use the block engine")
        return EngineChoice("blocks", f"the packed CPU engine runs float32 and float64, not {name}")
    res = _build.load_engine()
    if res.ok:
        return EngineChoice("packed", f"compiled CPU engine ({res.info})")
    if setting == "packed":
        raise ConfigError(f"PADLESS_ENGINE=packed but the packed engine is unavailable: {res.reason}")
    return EngineChoice("blocks", res.reason)


def engine_status() -> EngineStatus:
    """Report the compiled CPU engine's state, building it first if needed (not under ``blocks``).

    Example:
        >>> st = engine_status()
        >>> isinstance(st.available, bool)
        True
    """
    setting = engine_setting()
    if setting == "blocks":
        return EngineStatus(setting, False, "not requested (PADLESS_ENGINE=blocks)", None, "", False, 0.0)
    res = _build.load_engine()
    return EngineStatus(setting, res.ok, res.reason, res.library, res.info, res.compiled, res.seconds)
