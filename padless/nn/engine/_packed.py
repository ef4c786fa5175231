"""Autograd wiring of the compiled packed CPU engine.

Owns: :func:`run_packed`, which calls the compiled forward (``packed_rnn.cpp``) and, when anything needs a
gradient, wraps it in a ``torch.autograd.Function`` whose backward is the compiled backward.

Does not own: argument checking (``api``), building / loading the library (``_build``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from padless.errors import DataError

__all__ = ["MODE_ID", "run_packed"]

MODE_ID = {"lstm": 0, "gru": 1, "rnn_tanh": 2}

# bit flags of the compiled backward's `needs` argument
_NX, _NWIH, _NWHH, _NBIH, _NBHH, _NH0, _NC0 = 1, 2, 4, 8, 16, 32, 64


def _as_data_error(e: RuntimeError) -> Exception:
    msg = str(e)
    if "padless:" in msg:
        line = next((ln for ln in msg.splitlines() if "padless:" in ln), msg)
        return DataError(line[line.index("padless:") + len("padless:"):].strip())
    return e


class _PackedRNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, ops: Any, mode_id: int, x: Tensor, batch_sizes: Tensor, w_ih: Tensor, w_hh: Tensor,
                b_ih: Tensor | None, b_hh: Tensor | None, h0: Tensor | None, c0: Tensor | None,
                reset: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        y, hn, cn, gates, cells = ops.rnn_forward(mode_id, x, batch_sizes, w_ih, w_hh, b_ih, b_hh, h0, c0, reset,
                                                  True)
        ctx.ops = ops
        ctx.mode_id = mode_id
        ctx.save_for_backward(x, batch_sizes, w_ih, w_hh, h0, c0, reset, y, gates, cells)
        if mode_id != 0:
            ctx.mark_non_differentiable(cn)
        return y, hn, cn

    @staticmethod
    @once_differentiable  # double backward is not supported: say so instead of returning zeros
    def backward(ctx: Any, dy: Tensor, dhn: Tensor, dcn: Tensor) -> tuple[Tensor | None, ...]:
        x, batch_sizes, w_ih, w_hh, h0, c0, reset, y, gates, cells = ctx.saved_tensors
        need = ctx.needs_input_grad  # (ops, mode, x, batch_sizes, w_ih, w_hh, b_ih, b_hh, h0, c0, reset)
        flags = ((_NX if need[2] else 0) | (_NWIH if need[4] else 0) | (_NWHH if need[5] else 0)
                 | (_NBIH if need[6] else 0) | (_NBHH if need[7] else 0) | (_NH0 if need[8] else 0)
                 | (_NC0 if need[9] else 0))
        if ctx.mode_id != 0 or dcn is None:
            dcn = y.new_empty(0)
        dx, dwih, dwhh, dbih, dbhh, dh0, dc0 = ctx.ops.rnn_backward(
            ctx.mode_id, x, batch_sizes, w_ih, w_hh, h0, c0, reset, y, gates, cells, dy, dhn, dcn, flags)

        def opt(t: Tensor, i: int) -> Tensor | None:
            return t if need[i] else None

        return (None, None, opt(dx, 2), None, opt(dwih, 4), opt(dwhh, 5), opt(dbih, 6), opt(dbhh, 7),
                opt(dh0, 8), opt(dc0, 9), None)


class _Ops:
    """The compiled ops, resolved to their overloads once (no per-call overload resolution)."""

    def __init__(self, ns: Any) -> None:
        self.rnn_forward = ns.rnn_forward.default
        self.rnn_backward = ns.rnn_backward.default


_OPS: dict[str, _Ops] = {}


def run_packed(res: Any, mode: str, x: Tensor, batch_sizes: Tensor, w_ih: Tensor, w_hh: Tensor,
               b_ih: Tensor | None, b_hh: Tensor | None, h0: Tensor | None, c0: Tensor | None,
               reset: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run the compiled engine of build result ``res`` (the op checks shapes; errors become DataError)."""
    ops = _OPS.get(res.namespace)
    if ops is None:
        ops = _OPS[res.namespace] = _Ops(res.ops())
    mode_id = MODE_ID[mode]
    if reset is not None and reset.device.type != "cpu":
        reset = reset.cpu()
    grad = torch.is_grad_enabled() and (x.requires_grad or w_ih.requires_grad or w_hh.requires_grad or any(
        t is not None and t.requires_grad for t in (b_ih, b_hh, h0, c0)))
    try:
        if grad:
            y, hn, cn = _PackedRNN.apply(ops, mode_id, x, batch_sizes, w_ih, w_hh, b_ih, b_hh, h0, c0, reset)
        else:
            y, hn, cn, _, _ = ops.rnn_forward(mode_id, x, batch_sizes, w_ih, w_hh, b_ih, b_hh, h0, c0, reset,
                                              False)
    except RuntimeError as e:
        raise _as_data_error(e) from None
    return y, hn, (cn if mode_id == 0 else None)
