"""A million sequences, memory-mapped: opening them and running an epoch of batches stays lean in RAM."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

N_SEQUENCES = 1_000_000
NUM_FEATURES = 4

CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np

    def status():
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":")[0]
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(line.split()[1]) * 1024
        return out

    from padless.data import BucketBatchSampler, RaggedArray

    before = status()
    ra = RaggedArray.load(sys.argv[1], mmap=True)
    sampler = BucketBatchSampler(ra.lengths, batch_size=64, seed=0)
    batches = seen = 0
    kept = []
    for k, batch in enumerate(sampler):  # a whole epoch: offsets and lengths only
        batches += 1
        seen += len(batch)
        if k % 5000 == 0:
            kept.append(batch)
    after_epoch = status()
    checked = []
    for batch in kept:  # now touch the values of a few batches
        x = ra.take(batch)
        for i, seq in zip(batch, x):
            want = (ra.offsets[i] + np.arange(len(seq))) % 1024
            checked.append(bool((seq[:, 0] == want).all() and len(seq) == ra.lengths[i]))
    print(json.dumps({
        "before": before, "after_epoch": after_epoch, "after_touch": status(), "batches": batches,
        "len": len(sampler), "seen": seen, "n": len(ra), "checked": checked,
        "mapped": isinstance(ra.values, np.memmap),
    }))
    """
)


def write_dataset(root, rng):
    """Write a saved-RaggedArray directory chunk by chunk, without holding the values in memory."""
    lengths = rng.integers(1, 41, size=N_SEQUENCES)
    offsets = np.zeros(N_SEQUENCES + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    root.mkdir()
    header = np.lib.format.open_memmap(root / "values.npy", mode="w+", dtype=np.float32, shape=(total, NUM_FEATURES))
    data_start = header.offset
    del header  # file created (sparse) with its .npy header; fill it through a plain file handle
    chunk = 1 << 20
    with open(root / "values.npy", "r+b") as f:
        f.seek(data_start)
        for start in range(0, total, chunk):
            stop = min(start + chunk, total)
            block = np.repeat((np.arange(start, stop) % 1024).astype(np.float32)[:, None], NUM_FEATURES, axis=1)
            f.write(block.tobytes())
    np.save(root / "offsets.npy", offsets)
    meta = {
        "format": "padless.RaggedArray", "version": 1, "num_sequences": N_SEQUENCES, "num_features": NUM_FEATURES,
        "total_steps": total, "dtype": "float32", "allow_nonfinite": False, "allow_empty": False,
    }
    (root / "meta.json").write_text(json.dumps(meta))
    return total * NUM_FEATURES * 4


@pytest.mark.slow
def test_million_sequences_epoch_without_reading_values(tmp_path):
    data_bytes = write_dataset(tmp_path / "big", np.random.default_rng(0))
    assert data_bytes > 300e6
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "big")], capture_output=True, text=True, check=False, timeout=240
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["mapped"] and r["n"] == N_SEQUENCES
    assert r["seen"] == N_SEQUENCES and r["batches"] == r["len"] == -(-N_SEQUENCES // 64)
    assert r["checked"] and all(r["checked"])
    before, epoch, touch = r["before"], r["after_epoch"], r["after_touch"]
    peak_growth = epoch["VmHWM"] - before["VmRSS"]
    print(f"values {data_bytes / 1e6:.0f} MB; peak RSS growth over the epoch {peak_growth / 1e6:.0f} MB")
    # the epoch needs O(N) int64 arrays (offsets, lengths, the plan: ~8 MB each), never the 328 MB of values
    assert peak_growth < data_bytes / 4
    assert epoch["RssFile"] - before["RssFile"] < 16e6  # no page of values.npy was touched
    # touching a few batches copies only those batches. (Their pages do show up in RssFile: the kernel maps
    # whole page-cache folios, so RssFile is not a measure of what was read; RssAnon is what we allocate.)
    assert touch["RssAnon"] - epoch["RssAnon"] < 16e6
