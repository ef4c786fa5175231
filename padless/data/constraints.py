"""Batch-size constraints: how many sequences may share one batch.

Owns: the two budget objects :class:`MaxCount` (at most ``batch_size`` rows) and :class:`MaxSteps`
(at most ``max_steps`` *computed* steps, i.e. rows x longest length in the batch, like fairseq's
``max_tokens``), their common interface :class:`BatchConstraint`, :func:`resolve_constraint` (the
"exactly one of batch_size / max_steps" rule every sampler shares) and :func:`validate_lengths` (the
one check of a 1-D array of sequence lengths). Does not own: choosing which sequences go together
(see :mod:`padless.data.samplers`) or measuring waste (see :mod:`padless.data.waste`).

Example:
    >>> from padless.data.constraints import MaxSteps
    >>> budget = MaxSteps(100)
    >>> budget.fits(4, 25), budget.fits(5, 25), budget.capacity(30)
    (True, False, 3)
"""

from __future__ import annotations

import abc
import numbers
from typing import Any

import numpy as np

from padless.errors import ConfigError, DataError

__all__ = ["BatchConstraint", "MaxCount", "MaxSteps", "resolve_constraint", "validate_lengths"]


def _positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an ``int`` or raise :class:`ConfigError` if it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
    if int(value) <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {int(value)}; pass a value >= 1")
    return int(value)


def validate_lengths(lengths: Any, *, name: str = "lengths") -> np.ndarray:
    """Check a 1-D array-like of sequence lengths and return a fresh int64 copy.

    The caller's object is never mutated (a copy is always returned).

    Args:
        lengths: Any 1-D array-like of positive integers (list, numpy array, CPU tensor).
        name: What to call the argument in error messages.

    Returns:
        An int64 numpy array of shape (N,).

    Raises:
        DataError: If ``lengths`` is empty, not 1-D, not integral, or holds a value < 1 (the message
            names the first offending index).

    Example:
        >>> validate_lengths([3, 1, 2])
        array([3, 1, 2])
    """
    try:
        arr = np.asarray(lengths).copy()  # own copy: the caller's object is never touched
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be a 1-D array of integers; could not convert it: {exc}") from exc
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D (one length per sequence), got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty; pass at least one sequence length")
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DataError(f"{name} must hold integers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{name}[{i}] = {float(arr[i])!r} is not a whole number; lengths count time steps")
    out = arr.astype(np.int64)
    bad = np.flatnonzero(out < 1)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{name}[{i}] = {int(out[i])}: sequence {i} has no time steps; every length must be >= 1 "
            f"(drop empty sequences first, e.g. keep = {name} > 0)"
        )
    return out


class BatchConstraint(abc.ABC):
    """What a batch may hold, given its row count and its longest sequence.

    Subclasses implement :meth:`fits`, :meth:`capacity` and :meth:`check_lengths`.
    """

    @abc.abstractmethod
    def fits(self, n_rows: int, longest: int) -> bool:
        """Return True if a batch of ``n_rows`` sequences whose longest has ``longest`` steps is allowed."""

    @abc.abstractmethod
    def capacity(self, longest: int) -> int:
        """Return the largest row count allowed when the longest sequence has ``longest`` steps (>= 1)."""

    def fits_array(self, n_rows: np.ndarray, longest: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`fits`: elementwise over arrays of row counts and longest lengths."""
        return np.fromiter(
            (self.fits(int(r), int(m)) for r, m in zip(n_rows, longest)), dtype=bool, count=len(n_rows)
        )

    def check_lengths(self, lengths: np.ndarray) -> None:
        """Raise :class:`DataError` if some single sequence can never fit in a batch (default: none)."""


class MaxCount(BatchConstraint):
    """At most ``batch_size`` sequences per batch, whatever their lengths.

    Args:
        batch_size: Positive maximum number of rows.

    Raises:
        ConfigError: If ``batch_size`` is not a positive integer.

    Example:
        >>> MaxCount(32).fits(32, 1000), MaxCount(32).fits(33, 1)
        (True, False)
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = _positive_int(batch_size, "batch_size")

    def fits(self, n_rows: int, longest: int) -> bool:
        return 0 < n_rows <= self.batch_size

    def capacity(self, longest: int) -> int:
        return self.batch_size

    def fits_array(self, n_rows: np.ndarray, longest: np.ndarray) -> np.ndarray:
        n_rows = np.asarray(n_rows)
        return (n_rows > 0) & (n_rows <= self.batch_size)

    def __repr__(self) -> str:
        return f"MaxCount({self.batch_size})"


class MaxSteps(BatchConstraint):
    """At most ``max_steps`` computed steps per batch: rows x longest length <= ``max_steps``.

    This is a budget of work, as fairseq's ``max_tokens``: a batch of short sequences holds many rows,
    a batch of long ones few.

    Args:
        max_steps: Positive budget of computed time steps per batch.

    Raises:
        ConfigError: If ``max_steps`` is not a positive integer.

    Example:
        >>> MaxSteps(1000).capacity(300)
        3
    """

    def __init__(self, max_steps: int) -> None:
        self.max_steps = _positive_int(max_steps, "max_steps")

    def fits(self, n_rows: int, longest: int) -> bool:
        return n_rows > 0 and n_rows * longest <= self.max_steps

    def capacity(self, longest: int) -> int:
        return max(self.max_steps // max(int(longest), 1), 0)

    def fits_array(self, n_rows: np.ndarray, longest: np.ndarray) -> np.ndarray:
        n_rows = np.asarray(n_rows, dtype=np.int64)
        return (n_rows > 0) & (n_rows * np.asarray(longest, dtype=np.int64) <= self.max_steps)

    def check_lengths(self, lengths: np.ndarray) -> None:
        """Raise :class:`DataError` naming the first sequence longer than ``max_steps``."""
        too_long = np.flatnonzero(np.asarray(lengths) > self.max_steps)
        if too_long.size:
            i = int(too_long[0])
            length = int(lengths[i])
            raise DataError(
                f"sequence {i} has {length} steps, more than max_steps={self.max_steps} allows in one batch; "
                f"raise max_steps to at least {int(np.max(lengths))}, or cut long sequences into chunks "
                f"with truncated backpropagation through time (tbptt)"
            )

    def __repr__(self) -> str:
        return f"MaxSteps({self.max_steps})"


def resolve_constraint(batch_size: int | None, max_steps: int | None) -> BatchConstraint:
    """Turn the ``batch_size=`` / ``max_steps=`` pair every sampler takes into one constraint.

    Args:
        batch_size: Rows per batch, or None.
        max_steps: Computed-step budget per batch, or None.

    Returns:
        :class:`MaxCount` or :class:`MaxSteps`.

    Raises:
        ConfigError: Unless exactly one of the two is given, or if it is not a positive integer.

    Example:
        >>> resolve_constraint(None, 4096)
        MaxSteps(4096)
    """
    if batch_size is not None and max_steps is None:
        return MaxCount(batch_size)
    if batch_size is None and max_steps is not None:
        return MaxSteps(max_steps)
    raise ConfigError(
        "pass exactly one of batch_size= (rows per batch) or max_steps= (budget of rows x longest "
        f"length per batch); got batch_size={batch_size!r}, max_steps={max_steps!r}"
    )
