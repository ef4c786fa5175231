"""Long-table reader at scale: wall time and peak memory of ``read_long_table`` on a 10-million-row table.

Generates one long table (default 10 M rows, 20 k ids of 200-800 steps, 5 float features, a time column and
a per-row float target) as CSV and as Parquet in a scratch folder, converts each with ``out_dir`` (memory-
mapped result) in a fresh child process, and compares with reading the whole table the naive way
(``pyarrow.csv.read_csv`` / ``pyarrow.parquet.read_table`` plus the (rows, 5) float32 feature matrix).
Also converts a copy of the Parquet table with its rows shuffled (the reader sorts every id by time).

Memory is measured inside each child: ``VmHWM`` (the kernel's peak RSS of the process) and the growth of
the peak over the baseline after imports and a warm-up read of a tiny file (the high-water mark is reset
with ``/proc/self/clear_refs``). ``ru_maxrss`` is not used for the child: after fork + exec it can report
the parent's size. The big files are deleted at the end.

Usage: ``python benchmarks/long_table.py [--rows 10000000] [--ids 20000] [--workdir /tmp] [--out benchmarks/LONG_TABLE.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np, pyarrow as pa, pyarrow.csv as pcsv, pyarrow.parquet as pq
    from padless.data.tables import read_long_table
    mode, path, tiny, out, batch_rows = sys.argv[1:6]
    read_long_table(tiny, id="id", time="t", target="y", out_dir=out + "_warm", progress=False)

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # MiB
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = status("VmRSS")
    except OSError:
        base = status("VmHWM")
    t0 = time.perf_counter()
    if mode == "convert":
        lt = read_long_table(path, id="id", time="t", target="y", out_dir=out, progress=False,
                             batch_rows=int(batch_rows))
        info = {"sequences": len(lt), "steps": lt.x.total_steps, "task": lt.task, "per_step": lt.per_step}
    else:
        tab = pq.read_table(path) if path.endswith(".parquet") else pcsv.read_csv(path)
        x = np.stack([tab.column(f"f{j}").to_numpy() for j in range(5)], axis=1).astype(np.float32)
        info = {"steps": int(x.shape[0])}
    wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": wall, "peak_mb": status("VmHWM"), "base_mb": base,
                      "growth_mb": status("VmHWM") - base, **info}))
    """
)


def make_table(rows: int, ids: int, seed: int = 0):
    """(rows,) long table: ids with 1+ steps each (multinomial lengths), 5 features, time, per-row target."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    lens = rng.multinomial(rows - ids, np.full(ids, 1 / ids)) + 1  # (ids,)
    cols = {"id": np.repeat(np.arange(ids, dtype=np.int64), lens),
            "t": np.concatenate([np.arange(n, dtype=np.int64) for n in lens])}
    for j in range(5):
        cols[f"f{j}"] = rng.normal(size=rows)
    cols["y"] = rng.normal(size=rows)
    return pa.table(cols)


def child(mode: str, path: Path, tiny: Path, out: Path, batch_rows: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(str(out) + "_warm", ignore_errors=True)
    res = subprocess.run([sys.executable, "-c", CHILD, mode, str(path), str(tiny), str(out), str(batch_rows)],
                         env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"child failed ({mode} {path}):\n{res.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(str(out) + "_warm", ignore_errors=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--ids", type=int, default=20_000)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "LONG_TABLE.md"))
    args = ap.parse_args()

    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    work = Path(tempfile.mkdtemp(prefix="padless-long-table-", dir=args.workdir))
    results: list[tuple[str, str, int, dict]] = []
    try:
        t0 = time.perf_counter()
        tab = make_table(args.rows, args.ids)
        files = {"CSV": work / "long.csv", "Parquet": work / "long.parquet", "Parquet, rows shuffled": work / "shuffled.parquet",
                 "Parquet, first 10 % of the rows": work / "tenth.parquet"}
        pcsv.write_csv(tab, files["CSV"])
        pq.write_table(tab, files["Parquet"])  # pyarrow defaults: 1 Mi-row row groups, snappy
        pq.write_table(tab.slice(0, args.rows // 10), files["Parquet, first 10 % of the rows"])  # same peak expected
        perm = np.random.default_rng(1).permutation(args.rows)
        pq.write_table(tab.take(pa.array(perm)), files["Parquet, rows shuffled"])
        del tab, perm
        tiny_csv, tiny_pq = work / "tiny.csv", work / "tiny.parquet"
        small = make_table(100, 10)
        pcsv.write_csv(small, tiny_csv)
        pq.write_table(small, tiny_pq)
        print(f"generated in {time.perf_counter() - t0:.0f} s: " + ", ".join(
            f"{k} {p.stat().st_size / 2**20:.0f} MiB" for k, p in files.items()), flush=True)
        for name, path in files.items():
            tiny = tiny_csv if path.suffix == ".csv" else tiny_pq
            for batch_rows in (1_000_000, 100_000):
                r = child("convert", path, tiny, work / "out", batch_rows)
                results.append((name, "read_long_table(out_dir=...)", batch_rows, r))
                print(name, batch_rows, r, flush=True)
            if name in ("CSV", "Parquet"):
                r = child("whole", path, tiny, work / "out", 0)
                results.append((name, "whole table + feature matrix (naive)", 0, r))
                print(name, "whole", r, flush=True)
        sizes = {k: p.stat().st_size for k, p in files.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(Path(args.out), args, results, sizes)


def write_report(out: Path, args: argparse.Namespace, results: list, sizes: dict) -> None:
    values_mb = args.rows * 5 * 4 / 2**20
    table_mb = args.rows * 8 * 8 / 2**20
    lines = [
        "# Long-table reader: 10 M rows",
        "",
        f"Command: `python benchmarks/long_table.py --rows {args.rows} --ids {args.ids}` "
        f"(machine: {platform.machine()}, {os.cpu_count()} CPU cores, shared; Python {platform.python_version()}).",
        "",
        f"Table: {args.rows:,} rows, {args.ids:,} ids (lengths from a multinomial, about {args.rows // args.ids} steps "
        f"each), columns `id` (int64), `t` (int64), `f0..f4` (float64), `y` (float64, varies per row -> per-step "
        f"regression). Files: " + ", ".join(f"{k} {v / 2**20:,.0f} MiB" for k, v in sizes.items()) + ".",
        f"Sizes to compare with: the float32 feature values are **{values_mb:,.0f} MiB** (what the result holds); the "
        f"whole table in memory (8 columns x 8 bytes) is {table_mb:,.0f} MiB.",
        "",
        "| file | how | batch_rows | wall (s) | peak RSS (MiB) | growth over baseline (MiB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, how, batch_rows, r in results:
        lines.append(f"| {name} | {how} | {batch_rows:,} | {r['wall_s']:.1f} | {r['peak_mb']:,.0f} | {r['growth_mb']:,.0f} |"
                     if batch_rows else
                     f"| {name} | {how} | - | {r['wall_s']:.1f} | {r['peak_mb']:,.0f} | {r['growth_mb']:,.0f} |")
    lines += [
        "",
        "How it is measured: every row is a fresh child process (`python -c`, `OMP_NUM_THREADS=1`) that imports padless "
        "(which imports torch) and pyarrow and reads a 100-row file first; *baseline* is its RSS after that warm-up, "
        "*peak RSS* is `VmHWM` from `/proc/self/status` (reset to the baseline with `/proc/self/clear_refs`), "
        "*growth* is peak minus baseline. `read_long_table` writes the arrays to a memory-mapped `out_dir` (x: "
        "(sum T, 5) float32, per-step y, times); mapped pages are counted while a batch is being written and "
        "released after it. Wall time includes both passes (pass 1: ids, order, targets; pass 2: values into place) "
        "and, for the shuffled file, sorting each id's rows by time.",
        "",
        "Reading: the streaming reader's peak does not scale with the table (10x the rows of the 10 % file add "
        "20-100 MiB, mostly memory the allocators keep after freeing it, while the values grow by 172 MiB): "
        "it is one batch of `batch_rows` rows "
        "(the decoded Arrow batch, its float32 features and a few index arrays), pyarrow's read-ahead of 256 KiB CSV "
        "blocks or one Parquet row group's buffers, the memory-mapped output window being written (rows out of "
        "order are scattered through 32 MiB windows, then sorted per id in chunks of `batch_rows` rows), and O(ids) "
        "bookkeeping. With the default `batch_rows=1_000_000` that is about the size of the values themselves; "
        "`batch_rows=100_000` cuts it three- to four-fold (the wall times above are single runs on a shared 2-core "
        "machine, so differences of a few seconds are noise). A shuffled file costs time, not memory: every batch "
        "scatters its rows over the whole output, so each batch faults in pages across all of it; fewer, larger "
        "batches (the default) do that fewer times. The baseline (about 300 MiB) is the interpreter with "
        "torch and pyarrow imported. The naive whole read needs the entire table plus the feature matrix: 6-10x more "
        "memory than the streaming reader at its default.",
        "",
    ]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
