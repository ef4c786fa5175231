"""Bounded memory: converting a 1-1.5 M-row long table with out_dir grows peak RSS far less than reading it whole.

Each measurement runs in a fresh child process, after pyarrow is imported and warmed up on a tiny file;
the peak is the kernel's high-water mark ``VmHWM`` (reset with ``/proc/self/clear_refs`` after the warm-up
where allowed). ``ru_maxrss`` is not used: after fork + exec it can report the parent's size.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.csv as pcsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np, pyarrow as pa, pyarrow.csv as pcsv, pyarrow.parquet as pq
    from padless.data.tables import read_long_table
    mode, path, tiny, out = sys.argv[1:5]
    read_long_table(tiny, id="id", time="t", target="y", out_dir=out + "_warm", progress=False)

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the high-water mark to the current RSS
        base = status("VmRSS")
    except OSError:
        base = status("VmHWM")
    if mode == "stream":
        lt = read_long_table(path, id="id", time="t", target="y", out_dir=out, progress=False, batch_rows=50_000)
        assert lt.x.total_steps > 0
    else:  # the naive way: the whole table, then its feature matrix
        tab = pq.read_table(path) if path.endswith(".parquet") else pcsv.read_csv(path)
        x = np.stack([tab.column(f"f{j}").to_numpy() for j in range(5)], axis=1).astype(np.float32)
        assert x.shape[0] == tab.num_rows
    print((status("VmHWM") - base) / 1024)
    """
)


def _table(rows: int, ids: int) -> pa.Table:
    rng = np.random.default_rng(0)
    lens = rng.multinomial(rows - ids, np.full(ids, 1 / ids)) + 1
    cols = {"id": np.repeat(np.arange(ids), lens), "t": np.concatenate([np.arange(n) for n in lens])}
    cols.update({f"f{j}": rng.normal(size=rows) for j in range(5)})
    cols["y"] = rng.normal(size=rows)
    return pa.table(cols)


def _growth_mb(mode: str, path: Path, tiny: Path, out: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run([sys.executable, "-c", CHILD, mode, str(path), str(tiny), str(out)], env=env,
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    return float(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc for VmHWM")
@pytest.mark.parametrize("suffix,rows", [(".parquet", 1_500_000), (".csv", 1_000_000)])
def test_peak_memory_is_bounded(tmp_path, suffix, rows):
    tab = _table(rows, 2000)
    path = tmp_path / f"big{suffix}"
    tiny = tmp_path / f"tiny{suffix}"
    if suffix == ".parquet":
        pq.write_table(tab, path, row_group_size=100_000)
        pq.write_table(tab.slice(0, 10), tiny)
    else:
        pcsv.write_csv(tab, path)
        pcsv.write_csv(tab.slice(0, 10), tiny)
    del tab
    whole = _growth_mb("whole", path, tiny, tmp_path / "o1")
    stream = _growth_mb("stream", path, tiny, tmp_path / "o2")
    values_mb = rows * 5 * 4 / 2**20  # the float32 feature values alone
    print(f"{suffix}: whole read +{whole:.0f} MB, streamed +{stream:.0f} MB, values {values_mb:.0f} MB")
    assert stream < 0.5 * whole, (stream, whole)
    # one 50k-row batch, CSV read-ahead (more blocks in flight when the CPU is busy), allocator slack
    assert stream < values_mb + 160, (stream, values_mb)
