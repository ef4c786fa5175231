"""The per-step recurrent path: any activation, recurrent dropout and Keras' ``reset_after=False`` GRU.

Owns: :func:`run_cells` (an LSTM/GRU/SimpleRNN over a :class:`~padless.data.collate.RaggedBatch`, one
step at a time over the rows still active at that step, so it is exact on any layout; slower than the
fused kernels, which only know tanh/sigmoid). Weights are the torch module's (``weight_ih_l0``, ...),
so both paths share one set of parameters.

Does not own: choosing the path (:class:`padless.nn.recurrent.Recurrent`), the fast engines.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from padless.data.collate import RaggedBatch
    >>> rnn = nn.LSTM(2, 3)
    >>> b = RaggedBatch.from_list([torch.randn(4, 2), torch.randn(2, 2)])
    >>> out, _ = run_cells("lstm", rnn, b.data, b, None, torch.tanh, torch.sigmoid)
    >>> ref, _ = rnn(b.to_list()[0].unsqueeze(1))
    >>> bool(torch.allclose(b.with_data(out).to_list()[0], ref[:, 0], atol=1e-6))
    True
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from padless.data.collate import RaggedBatch

__all__ = ["run_cells"]

Fn = Callable[[torch.Tensor], torch.Tensor]
State = tuple[torch.Tensor, ...]


def _step_tables(batch: RaggedBatch, device: torch.device) -> list[tuple[int, torch.Tensor]]:
    """Per time step: (active rows, layout positions of their step) - rows are sorted longest first."""
    plan = batch.plan

    def make() -> list[tuple[int, torch.Tensor]]:
        pos = plan.positions()  # (B, T) -1 after each row's end
        L = plan.lengths
        out = []
        for t in range(plan.max_length):
            r = int((L > t).sum())
            out.append((r, torch.from_numpy(np.ascontiguousarray(pos[:r, t])).to(device)))
        return out

    return plan.cached(("cells_steps", str(device)), make)


def run_cells(kind: str, rnn: nn.RNNBase, data: torch.Tensor, batch: RaggedBatch, hx: State | None,
              activation: Fn, recurrent_activation: Fn, reset_after: bool = True,
              recurrent_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
    """Run one recurrent layer step by step.

    Args:
        kind: ``"lstm"``, ``"gru"`` or ``"rnn"``.
        rnn: the torch module holding the weights (gate order: LSTM i, f, g, o; GRU r, z, n).
        data: (S, F) inputs in the batch's layout.
        batch: gives the layout.
        hx: initial states in sorted row order, each (1, B, H), or None for zeros.
        activation: Keras ``activation`` (candidate and output; the SimpleRNN's only one).
        recurrent_activation: Keras ``recurrent_activation`` (the gates).
        reset_after: GRU only: PyTorch's / Keras 3's ``reset_after=True`` (reset gate applied after the
            recurrent matmul), or Keras' classic ``False`` (applied to the state before it).
        recurrent_mask: (B, H) recurrent dropout mask (sorted rows), or None.

    Returns:
        ``(out (S, H) in the layout, zeros at padded positions; final states each (1, B, H), sorted rows)``.
    """
    B, H = batch.batch_size, rnn.hidden_size
    dev, dt = data.device, data.dtype
    W, U = rnn.weight_ih_l0, rnn.weight_hh_l0  # (G*H, F), (G*H, H)
    b_ih = rnn.bias_ih_l0 if rnn.bias else None
    b_hh = rnn.bias_hh_l0 if rnn.bias else None
    h = hx[0][0] if hx is not None else data.new_zeros((B, H))  # (B, H)
    c = hx[1][0] if (hx is not None and kind == "lstm") else data.new_zeros((B, H))
    gx_all = nn.functional.linear(data, W, b_ih)  # (S, G*H): every input projection in one matmul
    outs, idxs = [], []
    for r, idx in _step_tables(batch, dev):
        gx = gx_all.index_select(0, idx)  # (r, G*H)
        hp = h[:r] if recurrent_mask is None else h[:r] * recurrent_mask[:r]
        if kind == "gru" and not reset_after:
            z_r = gx[:, : 2 * H] + nn.functional.linear(hp, U[: 2 * H], None if b_hh is None else b_hh[: 2 * H])
            rg = recurrent_activation(z_r[:, :H])
            zg = recurrent_activation(z_r[:, H:])
            hn = nn.functional.linear(rg * hp, U[2 * H :], None if b_hh is None else b_hh[2 * H :])
            n = activation(gx[:, 2 * H :] + hn)
            hr = (1 - zg) * n + zg * h[:r]
        else:
            gh = nn.functional.linear(hp, U, b_hh)  # (r, G*H)
            if kind == "lstm":
                i = recurrent_activation(gx[:, :H] + gh[:, :H])
                f = recurrent_activation(gx[:, H : 2 * H] + gh[:, H : 2 * H])
                g = activation(gx[:, 2 * H : 3 * H] + gh[:, 2 * H : 3 * H])
                o = recurrent_activation(gx[:, 3 * H :] + gh[:, 3 * H :])
                cr = f * c[:r] + i * g
                hr = o * activation(cr)
                c = torch.cat([cr, c[r:]], 0)
            elif kind == "gru":
                rg = recurrent_activation(gx[:, :H] + gh[:, :H])
                zg = recurrent_activation(gx[:, H : 2 * H] + gh[:, H : 2 * H])
                n = activation(gx[:, 2 * H :] + rg * gh[:, 2 * H :])
                hr = (1 - zg) * n + zg * h[:r]
            else:
                hr = activation(gx + gh)
        h = torch.cat([hr, h[r:]], 0)  # rows past their end keep their final state
        outs.append(hr)
        idxs.append(idx)
    out = data.new_zeros((data.shape[0], H), dtype=dt).index_copy(0, torch.cat(idxs), torch.cat(outs, 0))
    states = (h.unsqueeze(0), c.unsqueeze(0)) if kind == "lstm" else (h.unsqueeze(0),)
    return out, states
