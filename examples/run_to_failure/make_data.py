"""Synthetic turbofan-like run-to-failure data (in the spirit of NASA's C-MAPSS FD001), as long tables.

Every engine (``engine``: the sequence id) runs from cycle 1 (``cycle``: the time column) until it fails
after 120-360 cycles. Its wear grows like ``(cycle / life) ** p`` (p drawn per engine); eight sensors
``s1..s8`` drift with the wear (some up, some down, by different amounts) on top of an engine-specific
offset and noise, two more (``s9``, ``s10``) are pure noise, and two operating settings (``setting1``,
``setting2``) jitter around a nominal point. The per-row target ``rul`` is the remaining useful life with the
classic piecewise-linear cap: ``min(life - cycle, 125)``.

``train.csv`` holds whole lives (the last row of every engine has ``rul = 0``); ``test.csv`` holds other
engines cut at a random cycle (between 30 % and 90 % of their life, at least 30 cycles), like the C-MAPSS test
set, with the true ``rul`` of every row. Deterministic for a given ``--seed``; takes well under a second.

Usage::

    python examples/run_to_failure/make_data.py data/rtf --seed 0
    python -c "from padless.data.tables import read_long_table as r; \\
        t = r('data/rtf/train.csv', id='engine', time='cycle', target='rul'); print(t.task, t.per_step, t.x)"

(``rul`` varies within every engine, so it is read as a per-step regression target.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

CAP = 125  # piecewise-linear RUL cap
SENSOR_DRIFT = np.array([1.8, -1.2, 0.9, 2.5, -0.6, 1.4, -2.0, 0.7])  # (8,) drift at failure, in noise units
HEADER = ["engine", "cycle", "setting1", "setting2"] + [f"s{k}" for k in range(1, 11)] + ["rul"]


def simulate(rng: np.random.Generator, engines: int, first_id: int, truncate: bool) -> np.ndarray:
    """Rows (sum T, 15) of ``engines`` engines: id, cycle, 2 settings, 10 sensors, rul."""
    life = rng.integers(120, 361, size=engines)  # (E,) failure cycle
    shown = life.copy()
    if truncate:
        cut = rng.uniform(0.3, 0.9, size=engines)
        shown = np.maximum(np.round(life * cut).astype(np.int64), 30)
    power = rng.uniform(1.5, 3.0, size=engines)  # (E,) how late the wear accelerates
    offset = rng.normal(0.0, 0.3, size=(engines, 10))  # (E, 10) engine-to-engine sensor bias
    eng = np.repeat(np.arange(engines), shown)  # (R,)
    cycle = np.concatenate([np.arange(1, n + 1) for n in shown])  # (R,)
    wear = (cycle / life[eng]) ** power[eng]  # (R,) 0 at start, 1 at failure
    rows = eng.shape[0]
    sensors = offset[eng] + rng.normal(0.0, 1.0, size=(rows, 10))  # (R, 10)
    sensors[:, :8] += wear[:, None] * SENSOR_DRIFT * 4.0
    base = np.array([640.0, 1580.0, 1400.0, 550.0, 2388.0, 9050.0, 47.5, 520.0, 8140.0, 39.0])
    scale = np.array([0.5, 6.0, 9.0, 0.9, 0.07, 20.0, 0.27, 0.7, 0.08, 0.18])
    sensors = base + sensors * scale
    settings = rng.normal(0.0, 1.0, size=(rows, 2)) * [0.002, 0.0003]  # (R, 2)
    rul = np.minimum(life[eng] - cycle, CAP)
    return np.column_stack([eng + first_id, cycle, settings, sensors, rul])


def write_csv(path: Path, data: np.ndarray) -> None:
    fmt = ",".join(["%d", "%d", "%.4f", "%.4f"] + ["%.3f"] * 10 + ["%d"])
    tmp = path.with_name(f".{path.name}.tmp")
    np.savetxt(tmp, data, fmt=fmt, delimiter=",", header=",".join(HEADER), comments="")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="folder to write train.csv and test.csv to (created if missing)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-engines", type=int, default=100)
    ap.add_argument("--test-engines", type=int, default=100)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = simulate(rng, args.train_engines, 1, truncate=False)
    test = simulate(rng, args.test_engines, 1, truncate=True)
    write_csv(out / "train.csv", train)
    write_csv(out / "test.csv", test)
    print(f"wrote {out / 'train.csv'} ({len(train)} rows, {args.train_engines} engines) and {out / 'test.csv'} "
          f"({len(test)} rows, {args.test_engines} engines) in {time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
