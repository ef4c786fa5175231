"""The project's one exception family.

Owns: :class:`PadlessError` and its subclasses. Every error raised for bad user input derives from
``PadlessError`` (itself a ``ValueError``), names the offending index where there is one, and says how to
fix it. Does not own: the checks themselves (they live next to the code that needs them).
"""

from __future__ import annotations

__all__ = ["PadlessError", "DataError", "ConfigError", "StateError", "CheckpointError"]


class PadlessError(ValueError):
    """Base class of every error padless raises on bad input or misuse."""


class DataError(PadlessError):
    """Bad data: shapes, dtypes, lengths, NaN/inf, mismatched labels."""


class ConfigError(PadlessError):
    """Bad arguments or configuration: unknown names, invalid sizes, wrong call order."""


class StateError(PadlessError):
    """Misuse of stateful layers or streams (e.g. a batch of the wrong size)."""


class CheckpointError(PadlessError):
    """A saved model or checkpoint is missing, truncated, tampered with, or from another model."""
