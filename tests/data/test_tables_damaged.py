"""Damaged files: seeded truncations, byte flips and wrong suffixes give a valid result or one DataError line.

Never another exception type (no pyarrow tracebacks), and nothing is left in ``out_dir``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import pyarrow.csv as pcsv  # noqa: E402
import pyarrow.feather as pf  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from padless.data.ragged import RaggedArray  # noqa: E402
from padless.data.tables import damaged_file_error, read_long_table, reading  # noqa: E402
from padless.errors import DataError  # noqa: E402

ROWS = 400


def _table() -> pa.Table:
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(40), ROWS // 40)
    return pa.table({
        "id": [f"unit{i}" for i in ids],
        "t": np.tile(np.arange(ROWS // 40), 40),
        "a": rng.normal(size=ROWS),
        "b": rng.integers(0, 100, ROWS),
        "y": np.repeat(rng.integers(0, 3, 40), ROWS // 40),
    })


_ORIGINALS: dict[str, bytes] = {}


def original(name: str) -> bytes:
    """The undamaged file ``name`` (written once per session)."""
    if not _ORIGINALS:
        root = Path(tempfile.mkdtemp())
        tab = _table()
        pcsv.write_csv(tab, root / "t.csv")
        pq.write_table(tab, root / "t.parquet", row_group_size=100)  # snappy pages
        pf.write_feather(tab, root / "t.feather", chunksize=100)  # lz4 record batches
        pf.write_feather(tab, root / "u.arrow", compression="uncompressed", chunksize=100)
        _ORIGINALS.update({p.name: p.read_bytes() for p in root.iterdir()})
        shutil.rmtree(root)
    return _ORIGINALS[name]


def _read_or_dataerror(path: Path) -> None:
    out = Path(tempfile.mkdtemp()) / "out"
    try:
        lt = read_long_table(path, id="id", time="t", target="y", out_dir=out, progress=False, batch_rows=128)
    except DataError as exc:
        msg = str(exc)
        assert "\n" not in msg and path.name in msg, msg
        assert not out.exists() and os.listdir(out.parent) == []
    else:  # a damaged CSV may still parse: then the result must be a valid table
        assert isinstance(lt.x, RaggedArray) and len(lt.ids) == len(lt.x) >= 1
        assert int(lt.x.lengths.sum()) == lt.x.values.shape[0] and np.isfinite(lt.x.values).all()
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def _corrupt(data: bytes, seed: int, mode: str) -> bytes:
    rng = np.random.default_rng(seed)
    buf = bytearray(data)
    if mode == "truncate":
        return bytes(buf[: int(rng.integers(0, len(buf)))])
    if mode == "flip":
        for pos in rng.integers(0, len(buf), size=int(rng.integers(1, 9))):
            buf[pos] ^= 1 << int(rng.integers(0, 8))
        return bytes(buf)
    lo = int(rng.integers(0, len(buf)))  # "garble": overwrite a run with random bytes
    n = int(rng.integers(1, 64))
    buf[lo : lo + n] = rng.integers(0, 256, size=len(buf[lo : lo + n]), dtype=np.uint8).tobytes()
    return bytes(buf)


CORRUPTION = st.tuples(st.integers(0, 2**32 - 1), st.sampled_from(["truncate", "flip", "garble"]))


@pytest.mark.parametrize("name", ["t.csv", "t.parquet", "t.feather", "u.arrow"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=CORRUPTION)
def test_corrupted_files(tmp_path, name, case):
    seed, mode = case
    path = tmp_path / name
    path.write_bytes(_corrupt(original(name), seed, mode))
    _read_or_dataerror(path)


@pytest.mark.parametrize("src,dst", [
    ("t.csv", "x.parquet"), ("t.csv", "x.feather"), ("t.parquet", "x.csv"), ("t.parquet", "x.feather"),
    ("t.feather", "x.parquet"), ("t.feather", "x.csv"), ("t.parquet", "x.csv.gz"),
])
def test_wrong_suffix(tmp_path, src, dst):
    path = tmp_path / dst
    path.write_bytes(original(src))
    with pytest.raises(DataError, match=r"x\.[a-z.]+: not an? .*its first bytes look like") as info:
        read_long_table(path, id="id", progress=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["r.csv", "r.parquet", "r.feather", "r.csv.gz"])
def test_random_bytes(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=r"r\.[a-z.]+: ") as info:
        read_long_table(path, id="id", progress=False)
    assert "\n" not in str(info.value)


def test_truncated_parquet_message(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(original("t.parquet")[:-100])
    with pytest.raises(DataError, match=r"t.parquet: truncated Parquet file \(the footer is missing\)"):
        read_long_table(path, id="id", progress=False)


def test_damaged_page_message(tmp_path):
    data = bytearray(original("t.parquet"))
    data[200:260] = b"\xff" * 60  # inside the first data pages
    path = tmp_path / "t.parquet"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"t.parquet: cannot read it as Parquet \(.+\); its first bytes look like a "
                                        r"Parquet file; the file is truncated, corrupted"):
        read_long_table(path, id="id", progress=False)


def test_generic_helpers(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"x.npz: cannot read it as .npz \(.+\); its first bytes look like a zip"):
        with reading(bad, ".npz"):
            np.load(bad)
    err = damaged_file_error(tmp_path / "missing.ts", OSError("boom"), ".ts")
    assert isinstance(err, DataError) and "missing.ts: cannot read it as .ts (boom); it is missing" in str(err)
    with pytest.raises(DataError, match="already one line"):
        with reading(bad):
            raise DataError("already one line")
    with pytest.raises(TypeError):  # bugs in the caller's own code are not disguised as damaged files
        with reading(bad):
            raise TypeError("a bug")
