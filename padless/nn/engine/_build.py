"""Compiling and loading the packed CPU engine on first use.

Owns: where the compiled library lives (``$PADLESS_CACHE_DIR`` or ``~/.cache/padless/ext``, one folder per
key of torch version + Python version + source hash + compiler flags + CPU), compiling it with
``torch.utils.cpp_extension`` and ninja (one line on stderr while it compiles), loading it, detecting a
corrupt cache (the library fails to load) and rebuilding it once, and the one-line notices when it cannot
be built (no compiler, no ninja, a failed build - never a traceback). Installing padless never compiles.

Does not own: which engine runs (``_select``) or the kernel itself (``packed_rnn.cpp``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import platform
import shutil
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["SOURCE", "BuildResult", "build_key", "cache_root", "load_engine", "notice"]

SOURCE = Path(__file__).with_name("packed_rnn.cpp")
_LIB_BASENAME = "padless_packed_rnn"


@dataclass(frozen=True)
class BuildResult:
    """Outcome of building / loading the compiled engine.

    Attributes:
        ok: the library is loaded and its ops are callable.
        reason: why not, in one line ("" when ok).
        library: path of the loaded shared library.
        namespace: the ``torch.ops`` namespace its ops live in.
        compiled: True when this process compiled it (False: loaded from the cache).
        seconds: time spent compiling (0.0 when loaded from the cache).
        info: what the library was built with (vector ISA, GEMM backend, OpenMP).
    """

    ok: bool
    reason: str = ""
    library: str | None = None
    namespace: str | None = None
    compiled: bool = False
    seconds: float = 0.0
    info: str = ""

    def ops(self) -> object:
        """The ``torch.ops`` namespace holding ``rnn_forward`` / ``rnn_backward``."""
        if not self.ok or self.namespace is None:
            raise RuntimeError(f"padless: the packed engine is not available: {self.reason}")
        return getattr(torch.ops, self.namespace)


_lock = threading.Lock()
_result: BuildResult | None = None
_loaded: dict[str, BuildResult] = {}  # namespace -> result: a namespace registers once per process
_noticed: set[str] = set()


def notice(message: str) -> None:
    """Print ``padless: <message>`` to stderr once per process and message (one line, no traceback)."""
    line = " ".join(message.split())
    if line in _noticed:
        return
    _noticed.add(line)
    print(f"padless: {line}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    """Folder holding compiled engines: ``$PADLESS_CACHE_DIR`` or ``~/.cache/padless/ext``."""
    env = os.environ.get("PADLESS_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "padless" / "ext"


def _cpu_id() -> str:
    """Something that changes when the CPU's instruction sets do (the build may use ``-march=native``)."""
    parts = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features", "model name")):
                    parts.append(line.strip())
                if len(parts) >= 4:
                    break
    except OSError:
        pass
    return "|".join(parts)


def _flags() -> list[str]:
    """Compiler flags (without the namespace define). ``PADLESS_NATIVE=0`` drops ``-march=native``;
    ``PADLESS_ENGINE_CFLAGS`` appends flags (both are part of the cache key)."""
    if sys.platform == "win32":
        return ["/O2", "/openmp"]
    flags = ["-O3", "-fno-math-errno"]
    openmp = "OpenMP" in torch.__config__.parallel_info().split("ATen parallel backend:")[-1].splitlines()[0]
    if openmp and sys.platform != "darwin":  # Apple clang has no plain -fopenmp: one thread there
        flags.append("-fopenmp")  # at::parallel_for is an OpenMP pragma in torch's headers
    if platform.machine().lower() in ("x86_64", "amd64") and os.environ.get("PADLESS_NATIVE", "1") != "0":
        flags.append("-march=native")  # the build runs on the machine that uses it; the key names the CPU
    return flags + os.environ.get("PADLESS_ENGINE_CFLAGS", "").split()


def build_key() -> str:
    """Hash naming one build: torch + Python version, source, flags and CPU."""
    h = hashlib.sha256()
    for part in (torch.__version__, f"{sys.version_info[0]}.{sys.version_info[1]}", sys.platform,
                 " ".join(_flags()), _cpu_id(), os.environ.get("CXX", "c++")):
        h.update(part.encode())
        h.update(b"\0")
    h.update(SOURCE.read_bytes())
    return h.hexdigest()[:16]


def _missing_tool() -> str | None:
    """Name what is missing to compile, or None."""
    compiler = os.environ.get("CXX", "cl" if sys.platform == "win32" else "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler found ({compiler!r} is not on PATH; install one, e.g. g++, or set CXX)"
    from torch.utils import cpp_extension

    if not cpp_extension.is_ninja_available():
        return "ninja is not installed (pip install ninja)"
    return None


def _lib_file(build_dir: Path, name: str) -> Path | None:
    """The newest library ``name*`` in ``build_dir`` (torch may append ``_v1`` ... to the name)."""
    found = [p for suffix in (".so", ".dylib", ".pyd", ".dll") for p in build_dir.glob(f"{name}*{suffix}")]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _try_load(path: Path, namespace: str) -> str | None:
    """Load the library; return None on success, else the reason."""
    try:
        torch.ops.load_library(str(path))
        ns = getattr(torch.ops, namespace)
        ns.rnn_forward  # noqa: B018 - resolve the op now
        ns.build_info()
    except Exception as e:  # noqa: BLE001 - a truncated / foreign / stale file fails in many ways
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


_STALE_LOCK_S = 900.0  # a build lock older than this was left by a killed build


def _wait_for_other_build(build_dir: Path, timeout: float = 1800.0) -> None:
    """Another process is building here (torch's ``lock`` file): wait for it; clear a stale lock."""
    lock = build_dir / "lock"
    t0 = time.monotonic()
    while lock.exists():
        try:
            if time.time() - lock.stat().st_mtime > _STALE_LOCK_S:
                lock.unlink()
                return
        except OSError:
            return
        if time.monotonic() - t0 > timeout:
            return
        time.sleep(0.5)


def _compile(name: str, build_dir: Path, flags: list[str]) -> tuple[Path | None, str, float]:
    """Run the build; return (library path or None, failure reason, seconds)."""
    from torch.utils import cpp_extension

    build_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    out = io.StringIO()
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out):
            warnings.simplefilter("ignore")
            cpp_extension.load(
                name=name,
                sources=[str(SOURCE)],
                extra_cflags=flags,
                build_directory=str(build_dir),
                is_python_module=False,
                verbose=False,
            )
    except Exception as e:  # noqa: BLE001 - any build failure becomes a one-line notice
        log = build_dir / "build-error.log"
        with contextlib.suppress(OSError):
            log.write_text(f"{e}\n{out.getvalue()}", encoding="utf-8")
        return None, f"the build failed (compiler output in {log})", time.perf_counter() - t0
    finally:
        logger.setLevel(level)
    lib = _lib_file(build_dir, name)
    if lib is None:
        return None, f"the build produced no library in {build_dir}", time.perf_counter() - t0
    return lib, "", time.perf_counter() - t0


def _build_or_load(root: Path) -> BuildResult:
    key = build_key()
    namespace = f"padless_engine_{key}"
    build_dir = root / f"{_LIB_BASENAME}-{key}"
    flags = _flags() + [f"-DPADLESS_NS={namespace}"]
    name = _LIB_BASENAME

    if namespace in _loaded:
        return _loaded[namespace]

    def ok(lib: Path, compiled: bool, seconds: float) -> BuildResult:
        info = str(getattr(torch.ops, namespace).build_info())
        _loaded[namespace] = BuildResult(True, "", str(lib), namespace, compiled, seconds, info)
        return _loaded[namespace]

    _wait_for_other_build(build_dir)
    lib = _lib_file(build_dir, name)
    if lib is not None:
        why = _try_load(lib, namespace)
        if why is None:
            return ok(lib, False, 0.0)
        # corrupt cache: drop the library (ninja relinks from the objects); if that is not enough, all of it
        notice(f"the cached packed engine in {build_dir} does not load ({why}); rebuilding it")
        with contextlib.suppress(OSError):
            lib.unlink()
    missing = _missing_tool()
    if missing is not None:
        return BuildResult(False, missing)
    notice("compiling the packed recurrent engine (first use, ~20 s)...")
    total = 0.0
    for attempt, attempt_name in enumerate((name, f"{name}_r")):
        if attempt == 1:
            shutil.rmtree(build_dir, ignore_errors=True)
        lib, why, secs = _compile(attempt_name, build_dir, flags)
        total += secs
        if lib is None:
            if attempt == 0 and (build_dir / "build.ninja").exists():
                continue  # a stale or damaged build folder: start from scratch once
            return BuildResult(False, why, seconds=total)
        why = _try_load(lib, namespace)
        if why is None:
            return ok(lib, True, total)
    return BuildResult(False, f"the freshly built library does not load ({why})", seconds=total)


def load_engine(*, refresh: bool = False) -> BuildResult:
    """Build (first use) or load the compiled engine once per process; never raises.

    Args:
        refresh: forget the result cached in this process and try again (tests).

    Returns:
        A :class:`BuildResult`; when ``ok`` is False, ``reason`` says why in one line and a notice has been
        printed to stderr.
    """
    global _result
    with _lock:
        if _result is not None and not refresh:
            return _result
        try:
            res = _build_or_load(cache_root())
        except Exception as e:  # noqa: BLE001 - never let the engine's build break a training run
            res = BuildResult(False, f"unexpected {type(e).__name__}: {e}".splitlines()[0])
        if not res.ok:
            notice(f"packed recurrent engine unavailable: {res.reason}; falling back to the block engine")
        _result = res
        return res
