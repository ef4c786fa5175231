"""``python -m padless.cli``: the command line (the same as ``python -m padless`` and ``padless``).

Owns nothing but the entry point. Does not own: the commands (:mod:`padless.cli`).

Example:
    python -m padless.cli train japanese_vowels --out runs/jv
"""

from __future__ import annotations

from padless.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
