"""Engines made of stock PyTorch kernels: one dense call per block, and cuDNN's packed call.

Owns: :func:`blocks_rnn` - the packed contract run as one dense ``torch._VF`` call (oneDNN on CPU, cuDNN on
GPU) per rectangular block of the layout (time cut where the batch shrinks or a row resets), carrying
``(h, c)`` between blocks; this is the fallback when the compiled engine cannot run - and
:func:`cudnn_rnn` - the whole packed batch in one ``torch._VF`` call with ``batch_sizes`` (cuDNN's packed
layout; no per-row resets).

Does not own: argument checking (``api``), choosing between engines (``_select``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from padless.errors import StateError

__all__ = ["blocks_rnn", "cudnn_rnn"]


def _params(w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None) -> tuple[list[Tensor], bool]:
    if b_ih is None and b_hh is None:
        return [w_ih, w_hh], False
    b_ih = b_ih if b_ih is not None else w_ih.new_zeros(w_ih.shape[0])
    b_hh = b_hh if b_hh is not None else w_hh.new_zeros(w_hh.shape[0])
    return [w_ih, w_hh, b_ih, b_hh], True


def _dense(mode: str, xb: Tensor, h: Tensor, c: Tensor | None, params: list[Tensor],
           has_bias: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    train = torch.is_grad_enabled()
    if mode == "lstm":
        if c is None:
            raise StateError("an LSTM needs a cell state. Expected: a (B, H) tensor c. Received: None")
        out, hn, cn = torch._VF.lstm(xb, (h.unsqueeze(0), c.unsqueeze(0)), params, has_bias, 1, 0.0, train,
                                     False, False)
        return out, hn[0], cn[0]
    fn = torch._VF.gru if mode == "gru" else torch._VF.rnn_tanh
    out, hn = fn(xb, h.unsqueeze(0), params, has_bias, 1, 0.0, train, False, False)
    return out, hn[0], None


def blocks_rnn(mode: str, x: Tensor, batch_sizes: list[int], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
               b_hh: Tensor | None, h0: Tensor | None, c0: Tensor | None,
               reset: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """One dense kernel call per block; same arguments and results as ``packed_rnn``."""
    T, B, H = len(batch_sizes), batch_sizes[0], w_hh.shape[1]
    off = np.concatenate([[0], np.cumsum(batch_sizes)]).astype(np.int64)
    cut = np.zeros(T, dtype=bool)  # steps where some row resets
    if reset is not None:
        r = reset.detach().to("cpu").numpy()
        cut = np.logical_or.reduceat(r, off[:-1]) if r.size else cut
    params, has_bias = _params(w_ih, w_hh, b_ih, b_hh)
    h = h0 if h0 is not None else x.new_zeros(B, H)
    c = (c0 if c0 is not None else x.new_zeros(B, H)) if mode == "lstm" else None
    outs: list[Tensor] = []
    ended_h: list[Tensor] = []
    ended_c: list[Tensor] = []
    t = 0
    while t < T:
        rows = batch_sizes[t]
        t1 = t + 1
        while t1 < T and batch_sizes[t1] == rows and not cut[t1]:
            t1 += 1
        hb, cb = h[:rows], (c[:rows] if c is not None else None)
        if cut[t]:
            if reset is None:
                raise StateError("a plan with cut steps needs the per-row reset mask. Expected: a bool tensor "
                                 "(sum T,). Received: None")
            keep = (~reset[int(off[t]):int(off[t]) + rows]).to(x.dtype).unsqueeze(1)
            hb = hb * keep
            cb = cb * keep if cb is not None else None
        xb = x[int(off[t]):int(off[t1])].view(t1 - t, rows, x.shape[1])
        out, h, c = _dense(mode, xb, hb.contiguous(), cb.contiguous() if cb is not None else None, params,
                           has_bias)
        outs.append(out.reshape(-1, H))
        nxt = batch_sizes[t1] if t1 < T else 0
        if nxt < rows:
            ended_h.append(h[nxt:])
            if c is not None:
                ended_c.append(c[nxt:])
        t = t1
    y = outs[0] if len(outs) == 1 else torch.cat(outs, 0)
    h_n = torch.cat(ended_h[::-1], 0)
    c_n = torch.cat(ended_c[::-1], 0) if mode == "lstm" else None
    return y, h_n, c_n


def cudnn_rnn(mode: str, x: Tensor, batch_sizes: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
              b_hh: Tensor | None, h0: Tensor | None, c0: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """The whole packed batch in one call (cuDNN's packed layout on CUDA); no resets."""
    B, H = int(batch_sizes[0]), w_hh.shape[1]
    params, has_bias = _params(w_ih, w_hh, b_ih, b_hh)
    train = torch.is_grad_enabled()
    hx = (h0 if h0 is not None else x.new_zeros(B, H)).unsqueeze(0)
    if mode == "lstm":
        cx = (c0 if c0 is not None else x.new_zeros(B, H)).unsqueeze(0)
        y, hn, cn = torch._VF.lstm(x, batch_sizes, (hx, cx), params, has_bias, 1, 0.0, train, False)
        return y, hn[0], cn[0]
    fn = torch._VF.gru if mode == "gru" else torch._VF.rnn_tanh
    y, hn = fn(x, batch_sizes, hx, params, has_bias, 1, 0.0, train, False)
    return y, hn[0], None
