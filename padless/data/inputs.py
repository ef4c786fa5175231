"""Turning what a Keras or PyTorch user passes to ``fit``/``predict`` into ragged data and targets.

Owns: :func:`as_ragged` (lists, equal-length arrays, padded arrays with ``lengths=``, masked arrays,
tensors, :class:`~padless.data.RaggedArray`) and :class:`Targets` (per-sequence labels or per-step
ragged targets, checked against the inputs). Every problem is a :class:`~padless.errors.DataError` that
names the index and the fix.

Does not own: the RaggedArray container itself (``padless.data.ragged``) or the loop.

Example:
    >>> as_ragged([np.ones((3, 2)), np.ones((1, 2))]).lengths.tolist()
    [3, 1]
    >>> as_targets(np.array([0, 1]), as_ragged(np.zeros((2, 4, 1))), per_step=False, integer=True).values.tolist()
    [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from padless.data.ragged import RaggedArray
from padless.errors import DataError

__all__ = ["as_ragged", "Targets", "as_targets"]


def _to_numpy(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return x


def as_ragged(x: Any, lengths: Any = None, mask_value: float | None = None, tokens: bool = False) -> RaggedArray:
    """Read model inputs as a :class:`RaggedArray` (the caller's arrays are never modified).

    Args:
        x: a list of (T_i, F) arrays/tensors, an (N, T, F) array or tensor (equal lengths, or padded with
            ``lengths``), or a RaggedArray.
        lengths: true lengths of a right-padded ``x``.
        mask_value: derive lengths from trailing steps whose features all equal this value (Keras
            ``Masking``); leading padding is accepted too.
        tokens: inputs are integer tokens (an Embedding model): (N, T) arrays and lists of (T_i,) arrays.

    Example:
        >>> import numpy as np
        >>> as_ragged(np.zeros((4, 10, 3))).lengths.tolist()
        [10, 10, 10, 10]
    """
    if isinstance(x, RaggedArray):
        if lengths is not None:
            raise DataError("lengths= is only for padded arrays; a RaggedArray already knows its lengths")
        return x
    if x is None or isinstance(x, (dict, str, bytes)):
        raise DataError(f"inputs must be a list of (timesteps, features) arrays, an (N, T, F) array or a RaggedArray; "
                        f"got {type(x).__name__}")
    x = _to_numpy(x)
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            raise DataError("the data set is empty: pass at least one sequence")
        seqs = []
        for i, s in enumerate(x):
            try:
                seqs.append(np.asarray(_to_numpy(s)))
            except (ValueError, TypeError) as e:  # e.g. a nested list whose steps have different lengths
                raise DataError(f"sequence {i} is not a rectangular (timesteps, features) array: "
                                f"{str(e).splitlines()[0][:120]}") from None
        if tokens:
            seqs = [s.reshape(-1, 1) if s.ndim == 1 else s for s in seqs]
        return RaggedArray.from_list(seqs)
    arr = np.asarray(x)
    if arr.dtype == object:
        raise DataError("inputs are an object array (sequences of different lengths?): pass a list of arrays instead")
    if tokens and arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise DataError(
            f"inputs must be (samples, timesteps, features) or a list of (timesteps, features) arrays; "
            f"got an array of shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise DataError("the data set is empty: pass at least one sequence")
    if lengths is not None:
        return RaggedArray.from_padded(arr, lengths=np.asarray(_to_numpy(lengths)))
    if mask_value is not None:
        real = ~np.all(arr == mask_value, axis=-1)  # (N, T) True = real step
        _refuse_inner_masked_steps(real, mask_value, tokens)
        try:
            return RaggedArray.from_padded(arr, mask=real, side="right")
        except DataError as right_error:
            try:
                return RaggedArray.from_padded(arr, mask=real, side="left")
            except DataError:
                raise right_error from None
    N, T, F = arr.shape
    return RaggedArray.from_padded(arr, lengths=np.full(N, T, dtype=np.int64))


def _refuse_inner_masked_steps(real: np.ndarray, mask_value: float, tokens: bool) -> None:
    """A masked step between real steps: Keras skips it and carries the state across; padless refuses."""
    T = real.shape[1]
    t = np.arange(T)
    any_real = real.any(axis=1)
    first = np.where(any_real, real.argmax(axis=1), T)
    last = np.where(any_real, T - 1 - real[:, ::-1].argmax(axis=1), -1)
    inner = ~real & (t[None, :] > first[:, None]) & (t[None, :] < last[:, None])  # (N, T)
    rows = np.flatnonzero(inner.any(axis=1))
    if rows.size:
        r = int(rows[0])
        step = int(np.flatnonzero(inner[r])[0])
        what = "its token is 0 (Embedding(mask_zero=True))" if tokens else f"every feature equals mask_value={mask_value!r} (Masking)"
        raise DataError(
            f"sequence {r} has a masked step at step {step} between real steps: {what}. Keras would skip that step "
            "and carry the state across it; padless does not skip steps inside a sequence, so the result would "
            "differ: drop the step, use a mask value no real step has, or pass a list of sequences / lengths="
        )


@dataclass
class Targets:
    """Targets aligned with the inputs.

    Attributes:
        per_step: True when there is one target per time step (ragged, aligned with the inputs).
        values: (N, ...) tensor for per-sequence targets; per-step: a RaggedArray of (T_i, k) targets.
    """

    per_step: bool
    values: Any

    def take(self, idx: np.ndarray) -> "Targets":
        if self.per_step:
            return Targets(True, self.values.take(idx))
        return Targets(False, self.values[torch.from_numpy(np.asarray(idx, dtype=np.int64))])

    def __len__(self) -> int:
        return len(self.values)


def as_targets(y: Any, x: RaggedArray, per_step: bool, integer: bool) -> Targets:
    """Check and convert ``y`` for inputs ``x``.

    Args:
        y: labels (N,), one-hot/regression targets (N, K), or per-step targets (a list / RaggedArray / padded
            (N, T[, K]) array with the inputs' lengths).
        x: the inputs.
        per_step: the model returns sequences (a per-step head).
        integer: the loss takes integer class labels.
    """
    if y is None:
        raise DataError("fit/evaluate need targets y (or pass x and y as a tuple in validation_data)")
    n = len(x)
    if per_step:
        if isinstance(y, RaggedArray):
            yr = y
        else:
            yy = _to_numpy(y)
            if isinstance(yy, (list, tuple)):
                seqs = [np.asarray(_to_numpy(s)) for s in yy]
                seqs = [s.reshape(-1, 1) if s.ndim == 1 else s for s in seqs]
                if len(seqs) != n:
                    raise DataError(f"got {len(seqs)} target sequences for {n} input sequences; they must match")
                yr = RaggedArray.from_list(seqs)
            else:
                arr = np.asarray(yy)
                if arr.ndim == 2:
                    arr = arr[:, :, None]
                if arr.ndim != 3 or arr.shape[0] != n:
                    raise DataError(
                        f"per-step targets must be one (T_i[, K]) array per sequence; got shape {arr.shape} for {n} sequences"
                    )
                if arr.shape[1] < int(x.lengths.max()):
                    raise DataError(f"padded per-step targets hold {arr.shape[1]} steps but the longest input has {int(x.lengths.max())}")
                yr = RaggedArray.from_padded(arr, lengths=x.lengths)
        if len(yr) != n:
            raise DataError(f"got {len(yr)} target sequences for {n} input sequences; they must match")
        bad = np.nonzero(yr.lengths != x.lengths)[0]
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"per-step targets of sequence {i} have {int(yr.lengths[i])} steps but its input has "
                f"{int(x.lengths[i])}; each sequence needs one target per step"
            )
        return Targets(True, yr)
    try:
        arr = np.asarray(_to_numpy(y))
    except (ValueError, TypeError) as e:
        raise DataError(f"targets are not a rectangular array: {str(e).splitlines()[0][:120]}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"targets must be numeric; got dtype {arr.dtype} (map class names to integers first)")
    if arr.ndim == 0 or arr.shape[0] != n:
        raise DataError(f"got {arr.shape[0] if arr.ndim else 1} targets for {n} input sequences; x and y must have the same length")
    if arr.ndim > 2:
        raise DataError(f"per-sequence targets must be (N,) labels or (N, K) rows; got shape {arr.shape} (a model that "
                        "returns sequences takes per-step targets)")
    if arr.ndim == 2 and arr.shape[1] == 1 and integer:
        arr = arr[:, 0]
    if integer and arr.ndim == 1:
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                i = int(np.nonzero(~np.isfinite(arr) | (arr != np.round(arr)))[0][0])
                raise DataError(f"label at index {i} is {arr[i]!r}; class labels must be whole numbers")
        t = torch.as_tensor(arr.astype(np.int64))
    else:
        if not np.all(np.isfinite(arr)):
            i = int(np.nonzero(~np.isfinite(arr.reshape(n, -1)).all(1))[0][0])
            raise DataError(f"target at index {i} is NaN or infinite; fix or drop that sample")
        t = torch.as_tensor(arr.astype(np.float32))
    return Targets(False, t)
