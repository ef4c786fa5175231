"""Plots drawn from real data and runs (matplotlib, optional extra ``padless[plots]``).

Owns: :func:`length_histogram` (lengths with the bucket boundaries of the bucketed sampler),
:func:`unrolled_recurrence` (two ragged sequences unrolled over time, as segments of the exact plan) and
:func:`history_plot` (a run's learning curves). Does not own: any computation of the figures' numbers.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "h.png")
    >>> history_plot({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}, p) in (True, False)
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from padless.data.plan import make_plan
from padless.errors import PadlessError

__all__ = ["length_histogram", "unrolled_recurrence", "history_plot"]


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PadlessError("plots need matplotlib: pip install 'padless[plots]'") from None
    return plt


def length_histogram(lengths: Any, path: str | Path, batch_size: int = 32, title: str = "") -> Path:
    """Histogram of sequence lengths with the boundaries of length-sorted batches of ``batch_size``."""
    plt = _plt()
    L = np.sort(np.asarray(lengths))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.hist(L, bins=min(60, max(10, len(np.unique(L)))), color="#4c72b0")
    for a in range(0, len(L), batch_size):
        ax.axvline(L[min(a + batch_size, len(L)) - 1], color="#dd8452", lw=0.6, alpha=0.7)
    ax.set_xlabel("sequence length (steps)")
    ax.set_ylabel("sequences")
    ax.set_title(f"{title} lengths; orange: bucket edges at batch {batch_size}".strip())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def unrolled_recurrence(lengths: Any, path: str | Path) -> Path:
    """Draw the unrolled recurrence of a few ragged sequences: one cell per real step, the segments of
    the exact plan as blocks (each block is one dense kernel call), no padded cells."""
    plt = _plt()
    L = np.sort(np.asarray(lengths))[::-1]
    plan = make_plan(L)
    fig, ax = plt.subplots(figsize=(max(6, L[0] * 0.55), 1.0 + 0.6 * len(L)))
    colors = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974"]
    for k, seg in enumerate(plan.segments):
        for r in range(seg.rows):
            for t in range(seg.t0, seg.t0 + seg.steps):
                ax.add_patch(plt.Rectangle((t, len(L) - 1 - r), 0.9, 0.8, color=colors[k % len(colors)]))
                if t > 0:
                    ax.annotate("", xy=(t, len(L) - 0.6 - r), xytext=(t - 0.1, len(L) - 0.6 - r),
                                arrowprops=dict(arrowstyle="->", lw=0.6))
    ax.set_xlim(0, L[0] + 0.5)
    ax.set_ylim(-0.2, len(L))
    ax.set_yticks([len(L) - 0.6 - r for r in range(len(L))], [f"seq {r} (T={t})" for r, t in enumerate(L)])
    ax.set_xlabel("time step (one cell = the same weights, reused)")
    ax.set_title("Unrolled recurrence on ragged sequences: colour = one dense kernel call; no padded cells")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def history_plot(history: dict[str, list[float]], path: str | Path) -> bool:
    """Loss (and accuracy, when logged) per epoch, training and validation; False without matplotlib."""
    try:
        plt = _plt()
    except PadlessError:
        return False
    keys = [k for k in ("loss", "accuracy") if k in history]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(4.5 * max(len(keys), 1), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for k in (key, f"val_{key}"):
            if k in history:
                ax.plot(range(1, len(history[k]) + 1), history[k], label=k)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
