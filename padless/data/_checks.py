"""Validation helpers shared by the ragged container (private).

Owns: the checks behind :class:`padless.data.RaggedArray`'s error messages (dtype, offsets, NaN/inf, lengths,
masks) and the real-step mask of padded rows. Each raises :class:`~padless.errors.DataError` naming the
offending sequence and the fix. Does not own: the container itself (:mod:`padless.data.ragged`).

Example:
    >>> step_mask(np.array([2, 1]), 3, "left").astype(int).tolist()
    [[0, 1, 1], [0, 0, 1]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from padless.errors import ConfigError, DataError

__all__ = [
    "CHUNK_ROWS",
    "float_values",
    "empty_sequence_error",
    "check_offsets",
    "check_finite",
    "as_lengths",
    "step_mask",
    "check_side",
    "mask_lengths",
]

CHUNK_ROWS = 1 << 20  # rows per block when scanning values for NaN/inf (bounds temporary memory)


def float_values(arr: np.ndarray, what: str) -> np.ndarray:
    """Return ``arr`` if it is floating point, a float32 copy if it is integer/bool, else raise."""
    kind = arr.dtype.kind
    if kind == "f":
        return arr
    if kind in "iub":
        return arr.astype(np.float32)
    if kind == "c":
        raise DataError(f"{what} has complex dtype {arr.dtype}; pass real numbers (e.g. np.abs(x) or x.real)")
    raise DataError(
        f"{what} has dtype {arr.dtype}, which is not numeric; convert it to numbers first, "
        f"e.g. np.asarray(x, dtype=np.float32)"
    )


def empty_sequence_error(i: int) -> DataError:
    """The error for zero-length sequence ``i``, saying how to drop it or keep it."""
    return DataError(
        f"sequence {i} has length 0 (no time steps); drop empty sequences first, e.g. "
        f"[s for s in seqs if len(s) > 0] (and the matching labels), or pass allow_empty=True to keep them"
    )


def check_offsets(offsets: np.ndarray, n_values: int, allow_empty: bool) -> None:
    """Raise :class:`DataError` unless ``offsets`` is a valid (N+1,) int boundary array over ``n_values`` rows."""
    if offsets.ndim != 1 or offsets.size == 0:
        raise DataError(f"offsets must be 1-D with N+1 entries starting at 0, got shape {offsets.shape}")
    if not np.issubdtype(offsets.dtype, np.integer):
        raise DataError(f"offsets must be integers, got dtype {offsets.dtype}")
    if offsets[0] != 0:
        raise DataError(f"offsets[0] must be 0, got {int(offsets[0])}")
    if offsets[-1] != n_values:
        raise DataError(
            f"offsets[-1] = {int(offsets[-1])} but values has {n_values} rows; the last offset must equal "
            f"the total number of time steps"
        )
    steps = np.diff(offsets)
    bad = np.flatnonzero(steps < 0)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"sequence {i} has negative length {int(steps[i])} (offsets[{i + 1}] < offsets[{i}]); "
            f"offsets must be non-decreasing"
        )
    if not allow_empty:
        empty = np.flatnonzero(steps == 0)
        if empty.size:
            raise empty_sequence_error(int(empty[0]))


def check_finite(values: np.ndarray, offsets: np.ndarray) -> None:
    """Raise :class:`DataError` naming the first sequence/step/feature holding NaN or inf (scans in blocks)."""
    for start in range(0, values.shape[0], CHUNK_ROWS):
        block = np.asarray(values[start : start + CHUNK_ROWS])  # (chunk, F)
        ok = np.isfinite(block)
        if ok.all():
            continue
        row, col = (int(v[0]) for v in np.nonzero(~ok))
        bad = block[row, col]
        what = "NaN" if np.isnan(bad) else ("+inf" if bad > 0 else "-inf")
        row += start
        seq = int(np.searchsorted(offsets, row, side="right") - 1)
        step = row - int(offsets[seq])
        raise DataError(
            f"sequence {seq} has {what} at step {step}, feature {col}; clean or impute the values, or pass "
            f"allow_nonfinite=True to keep non-finite values (they will propagate into outputs and loss)"
        )


def as_lengths(lengths: Any, n: int | None, max_len: int | None, what: str = "") -> np.ndarray:
    """Check per-sequence lengths (count ``n`` unless None, each <= ``max_len`` unless None); return int64 (N,)."""
    try:
        arr = np.asarray(lengths)
    except (TypeError, ValueError) as exc:
        raise DataError(f"lengths must be a 1-D array of integers; could not convert it: {exc}") from exc
    if arr.ndim != 1:
        raise DataError(f"lengths must be 1-D (one length per sequence), got shape {arr.shape}")
    if arr.size and (arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"lengths must be integers, got dtype {arr.dtype}")
    if n is not None and arr.size != n:
        raise DataError(f"got {arr.size} lengths for {n} sequences {what}; pass exactly one length per sequence")
    arr = arr.astype(np.int64)
    neg = np.flatnonzero(arr < 0)
    if neg.size:
        i = int(neg[0])
        raise DataError(f"lengths[{i}] = {int(arr[i])} is negative; a length counts the real (unpadded) steps")
    if max_len is not None:
        big = np.flatnonzero(arr > max_len)
        if big.size:
            i = int(big[0])
            raise DataError(
                f"lengths[{i}] = {int(arr[i])} is larger than the padded time dimension T={max_len}; "
                f"lengths must lie between 1 and {max_len}"
            )
    return arr


def step_mask(lengths: np.ndarray, total: int, side: str) -> np.ndarray:
    """Boolean (N, T) mask of real steps for right- or left-padded rows."""
    steps = np.arange(total)[None, :]  # (1, T)
    if side == "right":
        return steps < lengths[:, None]  # (N, T)
    return steps >= (total - lengths)[:, None]  # (N, T)


def check_side(side: str) -> None:
    """Raise :class:`ConfigError` unless ``side`` is ``"right"`` or ``"left"``."""
    if side not in ("right", "left"):
        raise ConfigError(f"side must be 'right' or 'left', got {side!r}")




def mask_lengths(mask: Any, n: int, total: int, side: str) -> np.ndarray:
    """Check a (N, T) mask is contiguous on ``side`` and return its row lengths."""
    m = np.asarray(mask)
    if m.shape != (n, total):
        raise DataError(f"mask has shape {m.shape} but padded has {n} rows and T={total}; expected ({n}, {total})")
    if m.dtype != np.bool_:
        if not np.issubdtype(m.dtype, np.integer) or not np.isin(m, (0, 1)).all():
            raise DataError(f"mask must be boolean (True = real step), got dtype {m.dtype}")
        m = m.astype(bool)
    lens = m.sum(axis=1).astype(np.int64)
    bad = np.flatnonzero((m != step_mask(lens, total, side)).any(axis=1))
    if not bad.size:
        return lens
    r = int(bad[0])
    row = m[r]
    other = "left" if side == "right" else "right"
    if (row == step_mask(lens[r : r + 1], total, other)[0]).all():
        raise DataError(
            f"mask row {r} is {other}-padded (its real steps are at the {'end' if other == 'left' else 'start'}) "
            f"but side={side!r}; pass side={other!r}"
        )
    true_steps = np.flatnonzero(row)
    holes = np.flatnonzero(~row[true_steps[0] : true_steps[-1] + 1])
    if holes.size:
        raise DataError(
            f"mask row {r} is not contiguous: step {int(true_steps[0] + holes[0])} is False between True "
            f"steps; a mask must mark one unbroken run of real steps (fix the mask or pass lengths=)"
        )
    raise DataError(
        f"mask row {r} marks steps {int(true_steps[0])}..{int(true_steps[-1])}, touching neither end; with "
        f"side={side!r} the real steps must {'start at step 0' if side == 'right' else f'end at step {total - 1}'}"
    )

