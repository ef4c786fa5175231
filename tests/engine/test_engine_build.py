"""Building, caching and choosing the engine: the PADLESS_ENGINE setting, one-line notices and fallback when
a tool is missing or the build fails (never a traceback), a corrupt cache rebuilt, dtype / device rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engine_helpers import assert_all_close, layout, module, weights

import padless
from padless.errors import ConfigError
from padless.nn.engine import _build, engine_status, packed_rnn, select_engine


@pytest.fixture
def fresh_build_state(monkeypatch, tmp_path):
    """An empty cache folder and a process state that has not tried to build yet (restored after)."""
    monkeypatch.setenv("PADLESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(_build, "_result", None)
    monkeypatch.setattr(_build, "_noticed", set())
    monkeypatch.setattr(_build, "_loaded", {})
    return tmp_path


def _padless_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


def _small_case(mode="lstm"):
    m = module(mode, 3, 4)
    bs, off = layout([4, 2, 1])
    return m, bs, torch.randn(off[-1], 3)


def test_unknown_setting_raises_config_error_listing_valid_values(monkeypatch):
    monkeypatch.setenv("PADLESS_ENGINE", "fastest")
    with pytest.raises(ConfigError, match="auto, packed, blocks"):
        select_engine("cpu", torch.float32)
    m, bs, x = _small_case()
    with pytest.raises(ConfigError, match="PADLESS_ENGINE='fastest'"):
        packed_rnn("lstm", x, bs, *weights(m))


def test_blocks_setting_selects_blocks_and_still_runs_exactly(monkeypatch):
    monkeypatch.setenv("PADLESS_ENGINE", "Blocks")
    choice = select_engine("cpu", torch.float32)
    assert choice.engine == "blocks" and "PADLESS_ENGINE=blocks" in choice.reason
    st = engine_status()
    assert not st.available and "not requested" in st.reason
    m, bs, x = _small_case()
    got = packed_rnn("lstm", x, bs, *weights(m))
    ref = packed_rnn("lstm", x, bs, *weights(m), engine="reference")
    assert_all_close(got, ref, "blocks vs reference")


def test_missing_compiler_one_line_notice_and_fallback(fresh_build_state, monkeypatch, capsys):
    monkeypatch.setenv("CXX", "padless-no-such-compiler")
    res = _build.load_engine(refresh=True)
    assert not res.ok and "no C++ compiler" in res.reason and "padless-no-such-compiler" in res.reason
    err = capsys.readouterr().err
    lines = _padless_lines(err)
    assert len(lines) == 1 and lines[0].startswith("padless:") and "falling back" in lines[0], err
    assert "Traceback" not in err
    choice = select_engine("cpu", torch.float32)
    assert choice.engine == "blocks" and "no C++ compiler" in choice.reason
    m, bs, x = _small_case("gru")
    assert_all_close(packed_rnn("gru", x, bs, *weights(m)),
                     packed_rnn("gru", x, bs, *weights(m), engine="reference"), "fallback run")
    monkeypatch.setenv("PADLESS_ENGINE", "packed")
    with pytest.raises(ConfigError, match="PADLESS_ENGINE=packed but the packed engine is unavailable"):
        select_engine("cpu", torch.float32)
    assert capsys.readouterr().err == ""  # the notice is printed once per process


def test_missing_ninja_is_named(fresh_build_state, monkeypatch, capsys):
    from torch.utils import cpp_extension

    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: False)
    res = _build.load_engine(refresh=True)
    assert not res.ok and "ninja" in res.reason
    lines = _padless_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "pip install ninja" in lines[0]


def test_failed_build_notice_points_at_log_no_traceback(fresh_build_state, monkeypatch, capsys):
    broken = fresh_build_state / "packed_rnn.cpp"
    broken.write_text("#error this source is deliberately broken\n")
    monkeypatch.setattr(_build, "SOURCE", broken)
    res = _build.load_engine(refresh=True)
    assert not res.ok and "the build failed" in res.reason
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = _padless_lines(err)
    assert lines[0].startswith("padless: compiling the packed recurrent engine")
    assert len(lines) == 2 and "falling back" in lines[1]
    log = Path(res.reason.split("compiler output in ")[1].rstrip(")"))
    assert "deliberately broken" in log.read_text()


def test_corrupt_cache_is_detected_and_rebuilt(engine_ops, tmp_path):
    """Copy the real build folder, damage its library, load it in a fresh process: rebuilt, then works."""
    built = Path(_build.load_engine().library)
    cache = tmp_path / "cache"
    shutil.copytree(built.parent, cache / built.parent.name)
    damaged = cache / built.parent.name / built.name
    damaged.write_bytes(b"not a shared library")
    env = dict(os.environ, PADLESS_CACHE_DIR=str(cache), OMP_NUM_THREADS="1", PADLESS_ENGINE="auto",
               PYTHONPATH=str(Path(padless.__file__).parent.parent))
    code = ("from padless.nn.engine import engine_status; s = engine_status(); "
            "print(s.available, s.compiled_now, s.reason)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["True", "True"], out.stdout + out.stderr
    assert "does not load" in out.stderr and "rebuilding" in out.stderr
    assert out.stderr.count("compiling the packed recurrent engine") == 1
    assert "Traceback" not in out.stderr
    assert damaged.exists() is False or damaged.read_bytes()[:4] == b"\x7fELF" or any(
        p.read_bytes()[:4] == b"\x7fELF" for p in damaged.parent.glob("*.so"))


def test_cache_key_depends_on_cpu_torch_and_source(monkeypatch, tmp_path):
    base = _build.build_key()
    monkeypatch.setattr(_build, "_cpu_id", lambda: "another cpu")
    assert _build.build_key() != base
    monkeypatch.undo()
    src = tmp_path / "packed_rnn.cpp"
    src.write_text(_build.SOURCE.read_text() + "\n// changed\n")
    monkeypatch.setattr(_build, "SOURCE", src)
    assert _build.build_key() != base
    monkeypatch.setenv("PADLESS_CACHE_DIR", str(tmp_path / "c"))
    assert _build.cache_root() == tmp_path / "c"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_reports_block_fallback_and_runs(monkeypatch, capsys, dtype):
    monkeypatch.setattr(_build, "_noticed", set())
    choice = select_engine("cpu", dtype)
    name = str(dtype).replace("torch.", "")
    assert choice.engine == "blocks" and name in choice.reason
    assert name in capsys.readouterr().err
    m, bs, x = _small_case()
    w = [t.to(dtype) for t in weights(m)]
    y, h, c = packed_rnn("lstm", x.to(dtype), bs, *w)
    assert y.dtype == dtype
    ref = packed_rnn("lstm", x, bs, *weights(m), engine="reference")
    assert_all_close((y.float(), h.float(), c.float()), ref, "half vs float32", rtol=2e-2, atol=2e-2)


def test_cpu_float_selects_packed(engine_ops):
    for dtype in (torch.float32, torch.float64):
        assert select_engine("cpu", dtype).engine == "packed"
    st = engine_status()
    assert st.available and st.library and "vector=" in st.info
    assert "available" in str(st)


def test_cuda_selection_rules_without_touching_a_gpu():
    assert select_engine("cuda", torch.float32).engine == "cudnn"
    assert select_engine(torch.device("cuda", 0), torch.float16).engine == "cudnn"
    choice = select_engine("cuda", torch.float32, has_reset=True)
    assert choice.engine == "blocks" and "reset" in choice.reason


def test_cudnn_engine_needs_cuda_tensors():
    m, bs, x = _small_case()
    with pytest.raises(ConfigError, match="CUDA"):
        packed_rnn("lstm", x, bs, *weights(m), engine="cudnn")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh"])
def test_cudnn_engine_matches_reference_on_gpu(mode):
    m = module(mode, 3, 8).cuda()
    bs, off = layout([6, 4, 4, 1])
    x = torch.randn(off[-1], 3, device="cuda", requires_grad=True)
    h0 = torch.randn(4, 8, device="cuda")
    got = packed_rnn(mode, x, bs, *weights(m), h0=h0, engine=None)
    ref = packed_rnn(mode, x, bs, *weights(m), h0=h0, engine="reference")
    assert_all_close(got, ref, "cudnn vs reference", rtol=1e-4, atol=1e-4)
    reset = torch.zeros(off[-1], dtype=torch.bool, device="cuda")
    reset[off[2]] = True
    got = packed_rnn(mode, x, bs, *weights(m), h0=h0, reset=reset)  # resets on CUDA: blocks
    ref = packed_rnn(mode, x, bs, *weights(m), h0=h0, reset=reset, engine="reference")
    assert_all_close(got, ref, "cuda resets vs reference", rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh"])
def test_cudnn_call_is_right_on_the_cpu_packed_path(mode):
    """The cudnn engine's torch._VF packed call also runs on the CPU (PyTorch's packed loop): check its
    arguments and result layout there, so the GPU path is not first exercised on a GPU."""
    from padless.nn.engine._blocks import cudnn_rnn

    m = module(mode, 3, 5)
    bs, off = layout([6, 4, 4, 1])
    x = torch.randn(off[-1], 3, requires_grad=True)
    h0 = torch.randn(4, 5, requires_grad=True)
    c0 = torch.randn(4, 5, requires_grad=True) if mode == "lstm" else None
    got = cudnn_rnn(mode, x, bs, *weights(m), h0, c0)
    ref = packed_rnn(mode, x, bs, *weights(m), h0=h0, c0=c0, engine="reference")
    assert_all_close(got, ref, "cudnn call on CPU vs reference")
    inputs = [x, h0] + ([c0] if c0 is not None else []) + list(m.parameters())
    loss = lambda out: sum((t * (i + 1)).sum() for i, t in enumerate(out) if t is not None)
    assert_all_close(torch.autograd.grad(loss(got), inputs), torch.autograd.grad(loss(ref), inputs), "grads")
