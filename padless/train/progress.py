"""Keras-like progress output for fit / evaluate / predict.

Owns: :class:`Progress` - ``verbose=1`` a ``tqdm`` bar on a terminal (Keras-like fields: loss, metrics,
useful steps/s; a plain text bar when tqdm is not installed) and one final line per epoch when the output
is not a terminal; ``verbose=2`` one line per epoch; ``verbose=0`` nothing. Does not own: what the
numbers are (the loop computes them).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["Progress", "format_logs"]


def format_logs(logs: dict[str, float]) -> str:
    """``loss: 0.1234 - accuracy: 0.5000 - 12,345 steps/s - waste 3.2%`` for a logs dict."""
    parts = []
    for k, v in logs.items():
        if k == "steps_per_second":
            parts.append(f"{v:,.0f} steps/s")
        elif k == "padding_waste":
            parts.append(f"waste {100 * v:.1f}%")
        else:
            parts.append(f"{k}: {v:.4f}")
    return " - ".join(parts)


class Progress:
    """Progress of one epoch (or one evaluate/predict pass).

    Example:
        >>> import io
        >>> buf = io.StringIO()
        >>> p = Progress(2, 0, 1, verbose=2, stream=buf)
        >>> p.update(2, {"loss": 0.5}, 100, 0.1); p.finish({"loss": 0.5}, 0.1)
        >>> "loss: 0.5000" in buf.getvalue()
        True
    """

    def __init__(self, total: int, epoch: int | None, epochs: int | None, verbose: int = 1,
                 stream: TextIO | None = None, width: int = 30, note: str = "") -> None:
        self.total, self.epoch, self.epochs, self.verbose, self.width = total, epoch, epochs, verbose, width
        self.note = f" - {note}" if note else ""  # e.g. which recurrent engine runs
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._done = 0
        self.bar: Any = None
        if verbose == 1 and self.tty:
            try:
                from tqdm.auto import tqdm

                desc = f"Epoch {epoch + 1}/{epochs}" if epoch is not None and epochs is not None else None
                self.bar = tqdm(total=total, desc=desc, unit="batch", file=self.stream, leave=True,
                                dynamic_ncols=True)
            except ImportError:
                self.bar = None
        if verbose == 1 and self.bar is None and epoch is not None and epochs is not None:
            self.stream.write(f"Epoch {epoch + 1}/{epochs}\n")

    def _bar(self, done: int) -> str:
        n = len(str(self.total))
        filled = int(self.width * done / max(self.total, 1))
        arrow = ">" if filled < self.width else ""
        return f"{done:>{n}}/{self.total} [{'=' * max(filled - (1 if arrow else 0), 0)}{arrow}{'.' * (self.width - filled)}]"

    def update(self, done: int, logs: dict[str, float], real_steps: int, seconds: float) -> None:
        if self.verbose != 1 or not self.tty:
            return
        if self.bar is not None:
            self.bar.update(done - self._done)
            self._done = done
            rate = real_steps / max(seconds, 1e-9)
            self.bar.set_postfix_str(f"{format_logs(logs)} - {rate:,.0f} steps/s{self.note}", refresh=False)
            return
        if seconds - self._last < 0.1 and done < self.total:
            return
        self._last = seconds
        rate = real_steps / max(seconds, 1e-9)
        self.stream.write(f"\r{self._bar(done)} - {seconds:.1f}s - {format_logs(logs)} - {rate:,.0f} steps/s{self.note}")
        self.stream.flush()

    def finish(self, logs: dict[str, Any], seconds: float) -> None:
        if self.verbose == 0:
            return
        if self.bar is not None:
            self.bar.update(self.total - self._done)
            if logs:
                self.bar.set_postfix_str(format_logs(logs) + self.note, refresh=False)
            self.bar.close()
            return
        prefix = ""
        if self.verbose == 2 and self.epoch is not None and self.epochs is not None:
            prefix = f"Epoch {self.epoch + 1}/{self.epochs} - "
        line = f"{prefix}{self._bar(self.total)} - {seconds:.1f}s"
        if logs:
            line += " - " + format_logs(logs)
        line += self.note
        self.stream.write(("\r" if self.tty else "") + line + "\n")
        self.stream.flush()
