"""``packed_rnn``: one recurrent layer and direction over a whole ragged batch in one call.

Owns: the public contract (arguments, shapes, reset semantics, results), checking the arguments and
dispatching to an engine: ``packed`` (compiled CPU kernel), ``cudnn`` (one cuDNN packed call),
``blocks`` (one dense kernel call per block) or ``reference`` (a plain per-step PyTorch loop).

Does not own: the engines themselves (``_packed``, ``_blocks``, ``_reference``), choosing one
(``_select``), or batch layout (``padless.data.plan``: an exact plan's ``batch_sizes`` give this layout).
"""

from __future__ import annotations

import itertools
import os

import torch
from torch import Tensor

from padless.errors import ConfigError, DataError
from padless.nn.engine import _build
from padless.nn.engine._blocks import blocks_rnn, cudnn_rnn
from padless.nn.engine._packed import run_packed
from padless.nn.engine._reference import reference_rnn
from padless.nn.engine._select import select_engine

__all__ = ["ENGINES", "MODES", "packed_rnn"]

MODES = {"lstm": 4, "gru": 3, "rnn_tanh": 1}  # mode -> gate count
ENGINES = ("packed", "reference", "cudnn", "blocks")


def _check(mode: str, x: Tensor, batch_sizes: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
           b_hh: Tensor | None, h0: Tensor | None, c0: Tensor | None, reset: Tensor | None) -> int:
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise DataError(f"x must be a (S, F) tensor in packed layout; got {getattr(x, 'shape', type(x))}")
    if not isinstance(batch_sizes, Tensor) or batch_sizes.dim() != 1 or batch_sizes.dtype != torch.int64 \
            or batch_sizes.device.type != "cpu" or batch_sizes.numel() == 0:
        raise DataError("batch_sizes must be a non-empty 1-D int64 CPU tensor (PackedSequence.batch_sizes)")
    G = MODES[mode]
    if w_hh.dim() != 2 or w_hh.shape[0] != G * w_hh.shape[1]:
        raise DataError(f"weight_hh must be ({G}H, H) for {mode}; got {tuple(w_hh.shape)}")
    H = w_hh.shape[1]
    if w_ih.dim() != 2 or w_ih.shape[0] != G * H or w_ih.shape[1] != x.shape[1]:
        raise DataError(f"weight_ih must be ({G * H}, {x.shape[1]}) = ({G}H, F); got {tuple(w_ih.shape)}")
    for name, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
        if b is not None and tuple(b.shape) != (G * H,):
            raise DataError(f"{name} must be ({G * H},); got {tuple(b.shape)}")
    B = int(batch_sizes[0])
    if c0 is not None and mode != "lstm":
        raise ConfigError(f"c0 is an LSTM cell state; mode {mode!r} has none")
    for name, s in (("h0", h0), ("c0", c0)):
        if s is not None and tuple(s.shape) != (B, H):
            raise DataError(f"{name} must be (B, H) = ({B}, {H}); got {tuple(s.shape)}")
    for name, t in (("weight_ih", w_ih), ("weight_hh", w_hh), ("bias_ih", b_ih), ("bias_hh", b_hh), ("h0", h0),
                    ("c0", c0)):
        if t is not None and (t.dtype != x.dtype or t.device != x.device):
            raise DataError(f"{name} is {t.dtype} on {t.device}; x is {x.dtype} on {x.device}")
    if reset is not None and (reset.dtype != torch.bool or tuple(reset.shape) != (x.shape[0],)):
        raise DataError(f"reset must be a ({x.shape[0]},) bool tensor; got {reset.dtype} {tuple(reset.shape)}")
    return B


_AUTO: dict[tuple[object, ...], str] = {}  # (setting, device type, dtype, has_reset, build result id) -> engine


def _auto_engine(x: Tensor, has_reset: bool) -> str:
    key = (os.environ.get("PADLESS_ENGINE"), x.device.type, x.dtype, has_reset, id(_build._result))
    choice = _AUTO.get(key)
    if choice is None:
        choice = select_engine(x.device, x.dtype, has_reset=has_reset).engine
        if len(_AUTO) > 64:
            _AUTO.clear()
        _AUTO[(key[0], key[1], key[2], key[3], id(_build._result))] = choice
    return choice


def _check_layout(bs: list[int], S: int) -> None:
    for t, (a, b) in enumerate(itertools.pairwise(bs)):
        if b > a:
            raise DataError(f"batch_sizes must be non-increasing; batch_sizes[{t + 1}] = {b} > batch_sizes[{t}] = {a}")
    if bs[-1] <= 0:
        raise DataError(f"batch_sizes must be positive; batch_sizes[{len(bs) - 1}] = {bs[-1]}")
    if sum(bs) != S:
        raise DataError(f"batch_sizes sum to {sum(bs)} but x has {S} rows")


def packed_rnn(mode: str, x: Tensor, batch_sizes: Tensor, weight_ih: Tensor, weight_hh: Tensor,
               bias_ih: Tensor | None, bias_hh: Tensor | None, h0: Tensor | None = None, c0: Tensor | None = None,
               reset: Tensor | None = None, engine: str | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run one recurrent layer (one direction) over a ragged batch in packed layout, in one call.

    Every row gets exactly the outputs, final states and gradients it would get running alone through
    ``torch.nn.LSTM`` / ``GRU`` / ``RNN(nonlinearity="tanh")`` with the same weights; no step of padding
    is computed. Differentiable w.r.t. ``x``, the weights and biases, ``h0`` and ``c0``.

    Args:
        mode: ``"lstm"``, ``"gru"`` or ``"rnn_tanh"``.
        x: (S, F) inputs, time-major packed: for t in 0..T-1, rows 0..batch_sizes[t]-1 (exactly
            ``PackedSequence.data``; rows sorted longest first).
        batch_sizes: (T,) int64 on the CPU, non-increasing, ``batch_sizes[0] = B``, summing to S.
        weight_ih: (G*H, F) in torch's layout and gate order (LSTM i,f,g,o; GRU r,z,n; G = 4, 3, 1).
        weight_hh: (G*H, H).
        bias_ih: (G*H,) or None.
        bias_hh: (G*H,) or None.
        h0: (B, H) initial hidden state per row (None = zeros).
        c0: (B, H) initial LSTM cell state (None = zeros; LSTM only).
        reset: (S,) bool; True at a position means this row starts a new sequence at this step: its
            state is zeroed *before* the step (h0/c0 ignored for a row reset at t = 0). Gradients do not
            flow across a reset.
        engine: None (choose: see :func:`select_engine`), ``"packed"``, ``"reference"``, ``"cudnn"`` or
            ``"blocks"``.

    Returns:
        ``(y, h_n, c_n)``: y (S, H) in the same layout; h_n (B, H) and c_n (B, H) the state after each
        row's own last step (row r's length = number of t with ``batch_sizes[t] > r``); c_n is None unless
        LSTM.

    Raises:
        ConfigError: unknown mode or engine, or an engine that cannot run here.
        DataError: inconsistent shapes, dtypes or layout.

    Example:
        >>> import torch
        >>> from torch.nn.utils.rnn import pack_sequence
        >>> lstm = torch.nn.LSTM(3, 5)
        >>> p = pack_sequence([torch.randn(4, 3), torch.randn(2, 3)])
        >>> y, h, c = packed_rnn("lstm", p.data, p.batch_sizes, lstm.weight_ih_l0, lstm.weight_hh_l0,
        ...                      lstm.bias_ih_l0, lstm.bias_hh_l0)
        >>> ref, (h_ref, c_ref) = lstm(p)
        >>> bool(torch.allclose(y, ref.data, atol=1e-5)), bool(torch.allclose(h, h_ref[0], atol=1e-5))
        (True, True)
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if c0 is not None and mode != "lstm":
        raise ConfigError(f"c0 is an LSTM cell state; mode {mode!r} has none")
    if engine is None:
        choice = _auto_engine(x, reset is not None)
    elif engine in ENGINES:
        choice = engine
    else:
        raise ConfigError(f"engine must be None or one of {', '.join(ENGINES)}; got {engine!r}")

    if choice == "packed":
        if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"the packed engine runs float32/float64 on the CPU; got {x.dtype} on {x.device}")
        res = _build._result if _build._result is not None and _build._result.ok else _build.load_engine()
        if not res.ok:
            raise ConfigError(f"the packed engine is unavailable: {res.reason}")
        # shapes, dtypes and layout are checked by the compiled op (its errors become DataError)
        return run_packed(res, mode, x, batch_sizes, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0, reset)
    _check(mode, x, batch_sizes, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0, reset)
    if choice == "cudnn":
        if x.device.type != "cuda":
            raise ConfigError(f"the cudnn engine needs CUDA tensors; x is on {x.device}")
        if reset is not None:
            raise ConfigError("the cudnn engine cannot reset rows mid-batch; use engine='blocks' or 'reference'")
        _check_layout(batch_sizes.tolist(), x.shape[0])
        return cudnn_rnn(mode, x, batch_sizes, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0)
    bs = batch_sizes.tolist()
    _check_layout(bs, x.shape[0])
    if reset is not None and reset.device != x.device:
        reset = reset.to(x.device)
    run = blocks_rnn if choice == "blocks" else reference_rnn
    return run(mode, x, bs, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0, reset)
