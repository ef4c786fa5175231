"""``python -m padless``: the command line (so that ``torchrun -m padless train ...`` works).

Owns nothing but the entry point; the commands live in :mod:`padless.cli`.

Example:
    python -m padless train japanese_vowels --out runs/jv
    torchrun --nproc-per-node 2 -m padless train japanese_vowels --out runs/jv
"""

from __future__ import annotations

from padless.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
