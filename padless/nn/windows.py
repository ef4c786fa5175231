"""Sliding windows over each sequence of a ragged batch: the arithmetic and index tables of 1-D convolution
and pooling, and their ONNX form.

Owns: :class:`Window` (size, stride, dilation, padding ``"valid"``/``"same"``/``"causal"`` with Keras'
rules: ``"same"`` pads ``total = max((ceil(L/s) - 1) * s + span - L, 0)`` with ``total // 2`` on the left,
per sequence; ``"causal"`` pads ``span - 1`` on the left), :func:`window_table` (for every output
position of a plan, the layout positions of its taps: an im2col index table, built once per plan and
window and cached on the plan), :func:`gather_windows` (one ``index_select``: (S_out, k, F) windows, no
loop over rows), :func:`check_window_lengths` (the clear error for a sequence too short for its window)
and :func:`onnx_window` (the same windows in an ONNX graph whose padding is zeroed).

Taps outside a sequence read a fill row (0 for convolution and average pooling, -inf for max pooling);
the taps of a ``"causal"`` window before step 0 read each row's *context* (zeros, or the last inputs of
the previous chunk when streaming). Padded positions of the input are never read.

Does not own: the layers (:mod:`padless.nn.conv`), the batch layout (:mod:`padless.data.plan`).

Example:
    >>> w = Window(3, 2, 1, "same")
    >>> w.out_lengths(np.array([5, 4, 1])).tolist(), w.left_pads(np.array([5, 4, 1])).tolist()
    ([3, 2, 1], [1, 0, 1])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from padless.data.collate import RaggedBatch
from padless.data.plan import SegmentPlan, make_plan
from padless.errors import DataError

__all__ = ["Window", "WindowTable", "window_table", "gather_windows", "context_index", "check_window_lengths",
           "onnx_window", "PADDINGS"]

PADDINGS = ("valid", "same", "causal")


@dataclass(frozen=True)
class Window:
    """A 1-D window: ``size`` taps ``dilation`` steps apart, moved ``stride`` steps per output.

    Attributes:
        size: taps per window (``kernel_size`` / ``pool_size``).
        stride: steps between outputs.
        dilation: steps between taps.
        padding: ``"valid"``, ``"same"`` or ``"causal"``.
    """

    size: int
    stride: int
    dilation: int
    padding: str

    @property
    def span(self) -> int:
        """Steps one window covers: ``dilation * (size - 1) + 1``."""
        return self.dilation * (self.size - 1) + 1

    @property
    def context(self) -> int:
        """Steps a ``"causal"`` window reads before step 0 (0 for other paddings)."""
        return self.span - 1 if self.padding == "causal" else 0

    def out_lengths(self, lengths: np.ndarray) -> np.ndarray:
        """Output steps per sequence (0 where a ``"valid"`` window does not fit)."""
        L = np.asarray(lengths, dtype=np.int64)
        if self.padding == "valid":
            return np.where(L >= self.span, (L - self.span) // self.stride + 1, 0)
        return -(-L // self.stride)

    def left_pads(self, lengths: np.ndarray) -> np.ndarray:
        """Zero steps padded before each sequence (Keras/TF rule; per sequence for ``"same"``)."""
        L = np.asarray(lengths, dtype=np.int64)
        if self.padding == "valid":
            return np.zeros_like(L)
        if self.padding == "causal":
            return np.full_like(L, self.span - 1)
        total = np.maximum((self.out_lengths(L) - 1) * self.stride + self.span - L, 0)
        return total // 2

    def keeps_lengths(self, lengths: np.ndarray) -> bool:
        """True when every sequence keeps its length (the output reuses the input's layout)."""
        return bool(np.array_equal(self.out_lengths(lengths), np.asarray(lengths, dtype=np.int64)))


@dataclass(frozen=True)
class WindowTable:
    """The im2col table of one window over one plan.

    Attributes:
        plan: the output's layout (the input's own plan when no length changes, else an exact plan).
        index: (S_out * size,) int32 positions to gather from ``[data; context rows; fill row]`` (int32:
            the table is kept with its plan, so it is kept small).
    """

    plan: SegmentPlan
    index: torch.Tensor


def check_window_lengths(w: Window, plan: SegmentPlan, sorted_indices: np.ndarray, layer: str, what: str,
                         fix: str) -> None:
    """Raise a :class:`DataError` naming the layer, the sequence, its length and the fix when a window leaves
    a sequence with no output step (``what`` names the window: ``"kernel_size=5"``; ``fix`` says what to
    change: ``"padding='same' or 'causal', or a shorter kernel_size"``)."""
    out = w.out_lengths(plan.lengths)
    bad = np.flatnonzero(out <= 0)
    if not bad.size:
        return
    k = int(bad[-1])  # the shortest such row
    L = int(plan.lengths[k])
    raise DataError(f"{layer}: sequence {int(sorted_indices[k])} of the batch has {L} step{'s' if L != 1 else ''}, "
                    f"fewer than its padding='valid' window ({what}, dilation {w.dilation}: {w.span} steps) needs "
                    f"for one output; use {fix}, or drop sequences shorter than {w.span} steps")


def _build(plan: SegmentPlan, w: Window, device: torch.device) -> WindowTable:
    L = plan.lengths
    out = plan if w.keeps_lengths(L) else make_plan(w.out_lengths(L), 0.0)
    r, t = out.row_of_pos, out.time_of_pos  # (S_out,)
    taps = np.arange(w.size, dtype=np.int64) * w.dilation
    src = t[:, None] * w.stride - w.left_pads(L)[r][:, None] + taps[None, :]  # (S_out, k) input times
    live = out.valid[:, None]
    inside = (src >= 0) & (src < L[r][:, None]) & live
    table = plan.positions()
    pos = table[r[:, None], np.clip(src, 0, table.shape[1] - 1)]
    S, B, C = plan.size, plan.batch_size, w.context
    idx = np.where(inside, pos, S + B * C)  # the fill row
    if C:  # causal taps before step 0 read the row's context rows
        before = (src < 0) & live
        idx = np.where(before, S + r[:, None] * C + C + src, idx)
    return WindowTable(plan=out, index=torch.from_numpy(idx.reshape(-1).astype(np.int32)).to(device))


def window_table(plan: SegmentPlan, w: Window, device: torch.device | str) -> WindowTable:
    """The (cached) im2col table of window ``w`` over ``plan`` on ``device``."""
    dev = torch.device(device)
    return plan.cached(("window", w, str(dev)), lambda: _build(plan, w, dev))


def gather_windows(x: RaggedBatch, w: Window, fill: float, context: torch.Tensor | None = None
                   ) -> tuple[WindowTable, torch.Tensor]:
    """Every output position's window: ``(table, (S_out, size, F))`` in one ``index_select``.

    Args:
        x: the input batch.
        w: the window.
        fill: the value of taps outside a sequence.
        context: (B, context, F) steps before step 0 per sorted row (``"causal"`` only; None = zeros).
    """
    data = x.data  # (S, F)
    tab = window_table(x.plan, w, data.device)
    B, C, F = x.batch_size, w.context, data.shape[1]
    parts = [data]
    if C:
        parts.append(context.reshape(B * C, F) if context is not None else data.new_zeros((B * C, F)))
    parts.append(data.new_full((1, F), fill))
    ext = torch.cat(parts)  # (S + B*C + 1, F)
    return tab, ext.index_select(0, tab.index).view(-1, w.size, F)  # (S_out, k, F)


def context_index(plan: SegmentPlan, C: int, device: torch.device | str) -> torch.Tensor:
    """(B * C,) positions (same encoding as :func:`window_table`) of each row's last ``C`` inputs, oldest
    first, reaching into the context rows for rows shorter than ``C`` (the state a causal window carries)."""
    dev = torch.device(device)

    def make() -> torch.Tensor:
        L, B, S = plan.lengths, plan.batch_size, plan.size
        t = L[:, None] - C + np.arange(C, dtype=np.int64)[None, :]  # (B, C)
        rows = np.arange(B, dtype=np.int64)[:, None]
        table = plan.positions()
        pos = table[rows, np.clip(t, 0, table.shape[1] - 1)]
        idx = np.where(t >= 0, pos, S + rows * C + C + t)
        return torch.from_numpy(idx.reshape(-1).astype(np.int32)).to(dev)

    return plan.cached(("context", C, str(dev)), make)


# ---------------------------------------------------------------------------------------------------- ONNX
def _i64(g: Any, hint: str, v: Any) -> str:
    return g.const(hint, v, np.int64)


def onnx_out_lengths(g: Any, w: Window) -> str:
    """The (B,) int64 output lengths from ``g.lengths``."""
    s = _i64(g, "stride", w.stride)
    if w.padding == "valid":
        num = g.op("Max", [g.op("Add", [g.lengths, _i64(g, "s_minus_span", w.stride - w.span)]), _i64(g, "zero", 0)])
        return g.op("Div", [num, s], "out_lengths")
    return g.op("Div", [g.op("Add", [g.lengths, _i64(g, "s_minus_1", w.stride - 1)]), s], "out_lengths")


def onnx_window(g: Any, x: str, w: Window, size: int, apply: Callable[[str, list[int], int], str]) -> str:
    """A windowed op over a (T, B, F) value whose steps after each row's end hold the fill value.

    ``apply(x_bft, pads, stride)`` emits the op (ONNX ``Conv``, ``MaxPool``...) on (B, F, T) with explicit
    time pads and returns (B, size, T'). ``"same"`` with stride > 1 pads differently per row: the op runs
    with stride 1 and each row's outputs are gathered at its own offset. Afterwards the graph's lengths and
    mask follow the output (:meth:`padless.export.graph.OnnxGraph.set_lengths`) and padding is zeroed.
    Returns the (T_out, B, size) value.
    """
    xb = g.op("Transpose", [x], "x_bft", perm=[1, 2, 0])  # (B, F, T)
    span = w.span
    changes = w.stride != 1 or (w.padding == "valid" and span > 1)
    out = onnx_out_lengths(g, w) if changes else g.lengths
    if w.stride == 1 or w.padding != "same":
        left = {"valid": 0, "causal": span - 1, "same": (span - 1) // 2}[w.padding]
        right = span - 1 - left if w.padding == "same" else 0
        y = g.op("Transpose", [apply(xb, [left, right], w.stride)], "win_tbf", perm=[2, 0, 1])  # (T', B, size)
    else:
        P = (span - 1) // 2  # the largest left pad of any row
        z = g.op("Transpose", [apply(xb, [P, span - 1], 1)], "win_tbf", perm=[2, 0, 1])  # (T + P, B, size)
        s = _i64(g, "stride", w.stride)
        total = g.op("Sub", [g.op("Add", [g.op("Mul", [g.op("Sub", [out, _i64(g, "one", 1)]), s]),
                                          _i64(g, "span", span)]), g.lengths])
        left_r = g.op("Div", [g.op("Max", [total, _i64(g, "zero", 0)]), _i64(g, "two", 2)], "left_pad")  # (B,)
        offset = g.op("Sub", [_i64(g, "P", P), left_r], "offset")
        T = g.op("Shape", [x], "T1", start=0, end=1)  # (1,)
        T_out = g.op("Squeeze", [g.op("Div", [g.op("Add", [T, _i64(g, "s_minus_1", w.stride - 1)]), s]),
                                 _i64(g, "ax0", [0])], "T_out")  # a scalar
        t = g.op("Mul", [g.op("Range", [_i64(g, "zero", 0), T_out, _i64(g, "one", 1)]), s])  # (T_out,)
        idx = g.op("Add", [g.op("Unsqueeze", [t, _i64(g, "ax1", [1])]),
                           g.op("Unsqueeze", [offset, _i64(g, "ax0", [0])])], "win_idx")  # (T_out, B)
        shape = g.op("Concat", [g.op("Shape", [idx]), _i64(g, "size", [size])], axis=0)
        idx3 = g.op("Expand", [g.op("Unsqueeze", [idx, _i64(g, "ax2", [2])]), shape])  # (T_out, B, size)
        y = g.op("GatherElements", [z, idx3], "win_strided", axis=0)
    if changes:
        g.set_lengths(out, y)
    return g.op("Where", [g.mask, y, g.const("fzero", 0.0)], "win_masked")  # type: ignore[no-any-return]
