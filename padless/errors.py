r"""The project's one exception family.

Owns: :class:`PadlessError` and its subclasses. Every error raised for bad user input derives from
``PadlessError`` (itself a ``ValueError``), names the offending index where there is one, and says how to
fix it; :func:`one_line` keeps a library's message (which may quote damaged bytes) to one printable line.
Does not own: the checks themselves (they live next to the code that needs them).

Example:
    >>> one_line(ValueError("bad\nbyte \x0e here"))
    'bad byte ? here'
"""

from __future__ import annotations

__all__ = ["PadlessError", "DataError", "ConfigError", "StateError", "CheckpointError", "one_line"]


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


def one_line(exc: BaseException | str, limit: int = 200) -> str:
    """The first ``limit`` characters of a message as one printable line (newlines and control bytes replaced)."""
    text = str(exc) or type(exc).__name__
    text = " ".join(text.split("\n"))
    text = "".join(c if c.isprintable() else "?" for c in text).strip()
    return text[:limit]
