"""RaggedArray.save / load: the directory format, atomic writes, overwrite rules, mmap, corruption, pickling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from padless.data import RaggedArray
from padless.errors import DataError


@pytest.fixture
def ra():
    rng = np.random.default_rng(0)
    return RaggedArray.from_list([rng.normal(size=(t, 3)).astype(np.float32) for t in (4, 1, 7, 2)])


def test_save_writes_the_documented_files(ra, tmp_path):
    out = ra.save(tmp_path / "ds")
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "offsets.npy", "values.npy"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["num_sequences"] == 4 and meta["num_features"] == 3 and meta["dtype"] == "float32"
    np.testing.assert_array_equal(np.load(out / "values.npy"), ra.values)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left behind


@pytest.mark.parametrize("mmap", [True, False])
def test_round_trip(ra, tmp_path, mmap):
    ra.save(tmp_path / "ds")
    back = RaggedArray.load(tmp_path / "ds", mmap=mmap)
    assert isinstance(back.values, np.memmap) == mmap
    np.testing.assert_array_equal(back.values, ra.values)
    np.testing.assert_array_equal(back.offsets, ra.offsets)
    np.testing.assert_array_equal(back[2], ra[2])
    assert ("memory-mapped" in repr(back)) == mmap


def test_flags_survive(tmp_path):
    ra = RaggedArray.from_list([np.array([[np.nan]]), np.zeros((0, 1))], allow_nonfinite=True, allow_empty=True)
    ra.save(tmp_path / "ds")
    for mmap in (True, False):
        back = RaggedArray.load(tmp_path / "ds", mmap=mmap)
        assert back.allow_nonfinite and back.allow_empty and back.lengths.tolist() == [1, 0]


def test_no_silent_overwrite(ra, tmp_path):
    ra.save(tmp_path / "ds")
    with pytest.raises(DataError, match="already exists; pass overwrite=True"):
        ra.save(tmp_path / "ds")
    ra[:2].save(tmp_path / "ds", overwrite=True)
    assert len(RaggedArray.load(tmp_path / "ds")) == 2


def test_never_overwrites_something_else(ra, tmp_path):
    (tmp_path / "file").write_text("precious")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "notes.txt").write_text("precious")
    for name in ("file", "dir"):
        with pytest.raises(DataError, match="is not a saved RaggedArray; refusing to overwrite"):
            ra.save(tmp_path / name, overwrite=True)
    assert (tmp_path / "file").read_text() == "precious"
    assert (tmp_path / "dir" / "notes.txt").read_text() == "precious"


def test_failed_write_leaves_nothing(ra, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        ra.save(tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []


def test_load_errors_name_the_path(ra, tmp_path):
    with pytest.raises(DataError, match="is not a saved RaggedArray directory"):
        RaggedArray.load(tmp_path / "missing")
    ra.save(tmp_path / "ds")
    (tmp_path / "ds" / "meta.json").write_text("{not json")
    with pytest.raises(DataError, match=r"ds: meta.json is missing or unreadable"):
        RaggedArray.load(tmp_path / "ds")


def test_truncated_values_detected(ra, tmp_path):
    ra.save(tmp_path / "ds")
    data = (tmp_path / "ds" / "values.npy").read_bytes()
    (tmp_path / "ds" / "values.npy").write_bytes(data[: len(data) // 2])
    for mmap in (True, False):
        with pytest.raises(DataError, match="corrupted|cannot read"):
            RaggedArray.load(tmp_path / "ds", mmap=mmap)


def test_bad_offsets_on_disk_detected(ra, tmp_path):
    ra.save(tmp_path / "ds")
    np.save(tmp_path / "ds" / "offsets.npy", np.array([0, 5, 3, 10, 14]))
    with pytest.raises(DataError, match="sequence 1 has negative length"):
        RaggedArray.load(tmp_path / "ds")


def test_pickle_of_memory_mapped_array_is_by_reference(tmp_path):
    big = RaggedArray.from_lengths(np.zeros((50_000, 4), np.float32), np.full(1000, 50))
    big.save(tmp_path / "big")
    mapped = RaggedArray.load(tmp_path / "big")
    blob = pickle.dumps(mapped[10:20])
    assert len(blob) < 10_000  # the 800 kB of values are not in the pickle
    back = pickle.loads(blob)
    assert isinstance(back.values, np.memmap)
    np.testing.assert_array_equal(back.values, mapped[10:20].values)
    np.testing.assert_array_equal(back.offsets, mapped[10:20].offsets)
    in_ram = pickle.loads(pickle.dumps(big[:3]))
    np.testing.assert_array_equal(in_ram.values, big[:3].values)
