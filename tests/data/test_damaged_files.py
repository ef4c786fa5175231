"""Seeded corruptions of real files (.ts, .npz, list-column Parquet, RaggedArray folders): every reader answers
with a valid result or one DataError line naming the file - never another exception, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from padless.data import RaggedArray, read_data, write_parquet
from padless.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
TS = "@problemName t\n@timeStamps false\n@univariate true\n@classLabel true a b\n@data\n" + \
     "".join(f"{','.join(str(v) for v in range(1, 3 + i % 5))}:{'ab'[i % 2]}\n" for i in range(20))


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    d = tmp_path_factory.mktemp("orig")
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((int(t), 2)).astype(np.float32) for t in rng.integers(1, 9, 20)]
    ra = RaggedArray.from_list(xs)
    np.savez(d / "d.npz", values=np.asarray(ra.values), offsets=ra.offsets, labels=np.array(["a", "b"] * 10))
    write_parquet(ra, d / "d.parquet", labels=np.array(["a", "b"] * 10), label_column="y")
    (d / "d.ts").write_text(TS)
    return {s: (d / f"d{s}").read_bytes() for s in (".npz", ".parquet", ".ts")}


def _corrupt(data: bytes, how: str, pos: float, seed: int) -> bytes:
    b = bytearray(data)
    i = int(pos * (len(b) - 1))
    if how == "truncate":
        return bytes(b[:i])
    rng = np.random.default_rng(seed)
    for j in rng.integers(0, len(b), 1 + seed % 8):
        b[int(j)] ^= int(rng.integers(1, 256))
    if how == "garble":
        b[i : i + 64] = rng.integers(0, 256, len(b[i : i + 64]), dtype=np.uint8).tobytes()
    return bytes(b)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from([".npz", ".parquet", ".ts"]), how=st.sampled_from(["truncate", "flip", "garble"]),
       pos=st.floats(0, 1), seed=st.integers(0, 10_000))
def test_damaged_files_fail_with_one_line(originals, tmp_path, suffix, how, pos, seed):
    p = tmp_path / f"x{seed}{suffix}"
    p.write_bytes(_corrupt(originals[suffix], how, pos, seed))
    try:
        d = read_data(p)
    except DataError as e:
        assert str(p) in str(e) or p.name in str(e)
        assert "\n" not in str(e)
        return
    assert len(d.x) >= 1 and np.all(np.isfinite(np.asarray(d.x.values)))


def test_wrong_format_and_cli_stay_one_line(originals, tmp_path):
    (tmp_path / "csv.parquet").write_text("a,b\n1,2\n")
    (tmp_path / "half.parquet").write_bytes(originals[".parquet"][: len(originals[".parquet"]) // 2])
    for name in ("csv.parquet", "half.parquet"):
        with pytest.raises(DataError):
            read_data(tmp_path / name)
        for cmd in (["inspect", str(tmp_path / name)], ["train", str(tmp_path / name), "--epochs", "1"]):
            r = subprocess.run([sys.executable, "-m", "padless", *cmd], capture_output=True, text=True, timeout=120,
                               cwd=ROOT)
            assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
            assert len(r.stderr.strip().splitlines()) == 1 and name in r.stderr, r.stderr
    folder = tmp_path / "ra"
    RaggedArray.from_list([np.ones((3, 2))]).save(folder)
    (folder / "values.npy").write_bytes(b"\x93NUMPY junk")
    with pytest.raises(DataError, match="ra"):
        read_data(folder)
    shutil.rmtree(folder)
