"""The block engine: a ragged batch run as rectangular blocks of the stock dense recurrent kernel.

Owns: :func:`scan`. Rows are sorted longest first and time is cut into segments (see
:mod:`padless.data.plan`); every segment is one call of ``torch.nn.LSTM``/``GRU``/``RNN`` (cuDNN on CUDA,
oneDNN on the CPU), and the state ``(h, c)`` is carried into the rows that continue. This is the portable
engine: it needs no compiler, and it is the reference the packed engine is tested against.

Does not own: the layout (``padless.data.plan``), the layers (:mod:`padless.nn.recurrent`), or the packed
one-call-per-layer engine (:mod:`padless.nn.engine`).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from padless.data.collate import RaggedBatch
    >>> b = RaggedBatch.from_list([torch.randn(3, 2), torch.randn(1, 2)])
    >>> out, (h,) = scan(nn.GRU(2, 4), b.data, b, None, want_states=True)
    >>> out.shape, h.shape
    (torch.Size([4, 4]), torch.Size([1, 2, 4]))
"""

from __future__ import annotations

import torch
from torch import nn

from padless.data.collate import RaggedBatch
from padless.errors import StateError

__all__ = ["scan"]

State = tuple[torch.Tensor, ...]  # each (1, B, H)


def scan(
    rnn: nn.RNNBase, data: torch.Tensor, batch: RaggedBatch, hx: State | None, want_states: bool
) -> tuple[torch.Tensor, State | None]:
    """Run ``rnn`` (one layer, one direction) over the segments of ``batch``.

    Args:
        rnn: a ``torch.nn.LSTM``/``GRU``/``RNN`` with ``num_layers=1``, ``batch_first=False``.
        data: (S, F) input in the batch's layout.
        batch: gives the layout.
        hx: initial state in *sorted* row order, each (1, B, H), or None for zeros.
        want_states: also return the final state of every row; exact for the rows whose length ends a
            segment (``plan.state_exact``: every row of an exact plan), undefined for the others.

    Returns:
        ``(out, states)``: out (S, H) in the same layout; states each (1, B, H) in sorted order.
    """
    plan = batch.plan
    is_lstm = isinstance(rnn, nn.LSTM)
    outs: list[torch.Tensor] = []
    ended: list[State] = []
    h: State | None = hx
    for seg in plan.segments:
        xs = data[seg.start : seg.start + seg.steps * seg.rows].view(seg.steps, seg.rows, -1)  # (T, r, F)
        if h is not None and h[0].shape[1] != seg.rows:
            if want_states:
                ended.append(tuple(s[:, seg.rows :] for s in h))
            h = tuple(s[:, : seg.rows] for s in h)
        if is_lstm:
            o, (hn, cn) = rnn(xs, None if h is None else (h[0].contiguous(), h[1].contiguous()))
            h = (hn, cn)
        else:
            o, hn = rnn(xs, None if h is None else h[0].contiguous())
            h = (hn,)
        outs.append(o.reshape(seg.steps * seg.rows, -1))
    out = outs[0] if len(outs) == 1 else torch.cat(outs, 0)
    if not want_states:
        return out, None
    if h is None:  # pragma: no cover - a plan always has a segment
        raise StateError("internal: empty plan")
    parts = [h] + ended[::-1]
    states = tuple(torch.cat([p[k] for p in parts], 1) for k in range(len(h)))
    return out, states
