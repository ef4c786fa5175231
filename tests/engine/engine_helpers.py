"""Shared pieces of the engine tests: packing sequences, running each sequence alone through the stock
torch module, and comparing results and gradients."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

TOL = {"rtol": 1e-5, "atol": 1e-5}
MODES = ("lstm", "gru", "rnn_tanh")


def module(mode: str, F: int, H: int, bias: bool = True, dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.RNNBase:
    torch.manual_seed(seed)
    if mode == "lstm":
        m: nn.RNNBase = nn.LSTM(F, H, bias=bias)
    elif mode == "gru":
        m = nn.GRU(F, H, bias=bias)
    else:
        m = nn.RNN(F, H, nonlinearity="tanh", bias=bias)
    return m.to(dtype)


def weights(m: nn.RNNBase) -> list[Tensor | None]:
    return [m.weight_ih_l0, m.weight_hh_l0, getattr(m, "bias_ih_l0", None), getattr(m, "bias_hh_l0", None)]


def layout(lengths: Sequence[int]) -> tuple[Tensor, list[int]]:
    """batch_sizes and offsets for lengths sorted longest first."""
    T = max(lengths)
    bs = [sum(1 for L in lengths if L > t) for t in range(T)]
    off = [0]
    for b in bs:
        off.append(off[-1] + b)
    return torch.tensor(bs, dtype=torch.int64), off


def positions(lengths: Sequence[int], off: list[int], r: int) -> Tensor:
    return torch.tensor([off[t] + r for t in range(lengths[r])], dtype=torch.int64)


def run_alone(m: nn.RNNBase, mode: str, x: Tensor, h0: Tensor | None = None,
              c0: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """One sequence (T, F) alone as a batch of one: output (T, H), h_n (H,), c_n (H,) or None."""
    hx = None
    if h0 is not None or c0 is not None:
        H = m.hidden_size
        h = (h0 if h0 is not None else x.new_zeros(H)).view(1, 1, H)
        if mode == "lstm":
            c = (c0 if c0 is not None else x.new_zeros(H)).view(1, 1, H)
            hx = (h, c)
        else:
            hx = h
    out, st = m(x.unsqueeze(1), hx)
    if mode == "lstm":
        return out[:, 0], st[0][0, 0], st[1][0, 0]
    return out[:, 0], st[0, 0], None


def grads(loss: Tensor, inputs: Sequence[Tensor | None]) -> list[Tensor | None]:
    live = [t for t in inputs if t is not None and t.requires_grad]
    g = iter(torch.autograd.grad(loss, live, allow_unused=True))
    out: list[Tensor | None] = []
    for t in inputs:
        if t is not None and t.requires_grad:
            v = next(g)
            out.append(torch.zeros_like(t) if v is None else v)
        else:
            out.append(None)
    return out


def assert_all_close(a: Sequence[Tensor | None], b: Sequence[Tensor | None], what: str, **tol: float) -> None:
    tol = tol or TOL
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b)):
        if u is None or v is None:
            assert u is None and v is None, f"{what}[{i}]: one side is None"
            continue
        torch.testing.assert_close(u, v, msg=lambda m, i=i: f"{what}[{i}]: {m}", **tol)
