"""The reference engine: the packed contract as a plain PyTorch loop over time steps.

Owns: :func:`reference_rnn`, a per-step loop of ``torch.nn.functional.linear`` and the gate formulas of
``torch.nn.LSTM`` / ``GRU`` / ``RNN(tanh)`` with per-row resets, differentiable by autograd. It is slow
(one Python iteration and a dozen ops per step) and exists to define the contract and check the others.

Does not own: argument checking (``api``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from padless.errors import StateError

__all__ = ["reference_rnn"]


def _cell(mode: str, x: Tensor, h: Tensor, c: Tensor | None, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
          b_hh: Tensor | None) -> tuple[Tensor, Tensor | None]:
    gi = F.linear(x, w_ih, b_ih)
    gh = F.linear(h, w_hh, b_hh)
    if mode == "lstm":
        if c is None:
            raise StateError("an LSTM needs a cell state. Expected: a (B, H) tensor c. Received: None")
        i, f, g, o = (gi + gh).chunk(4, 1)
        c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c2), c2
    if mode == "gru":
        xr, xz, xn = gi.chunk(3, 1)
        hr, hz, hn = gh.chunk(3, 1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None
    return torch.tanh(gi + gh), None


def reference_rnn(mode: str, x: Tensor, batch_sizes: list[int], w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
                  b_hh: Tensor | None, h0: Tensor | None, c0: Tensor | None,
                  reset: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Per-step loop; same arguments and results as :func:`padless.nn.engine.packed_rnn`."""
    B, H = batch_sizes[0], w_hh.shape[1]
    h = h0 if h0 is not None else x.new_zeros(B, H)
    c = (c0 if c0 is not None else x.new_zeros(B, H)) if mode == "lstm" else None
    outs: list[Tensor] = []
    ended_h: list[Tensor] = []
    ended_c: list[Tensor] = []
    off = 0
    for t, bs in enumerate(batch_sizes):
        hp = h[:bs]
        cp = c[:bs] if c is not None else None
        if reset is not None:
            keep = (~reset[off:off + bs]).to(x.dtype).unsqueeze(1)
            hp = hp * keep
            cp = cp * keep if cp is not None else None
        h, c = _cell(mode, x[off:off + bs], hp, cp, w_ih, w_hh, b_ih, b_hh)
        outs.append(h)
        nxt = batch_sizes[t + 1] if t + 1 < len(batch_sizes) else 0
        if nxt < bs:  # rows nxt..bs-1 had their last step here
            ended_h.append(h[nxt:])
            if c is not None:
                ended_c.append(c[nxt:])
        off += bs
    y = torch.cat(outs, 0)
    h_n = torch.cat(ended_h[::-1], 0)
    c_n = torch.cat(ended_c[::-1], 0) if mode == "lstm" else None
    return y, h_n, c_n
