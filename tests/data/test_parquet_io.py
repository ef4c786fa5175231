"""write_parquet / read_parquet: round trip, pandas compatibility, nulls, labels, missing pyarrow."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")

from padless.data import RaggedArray, read_parquet, write_parquet  # noqa: E402
from padless.errors import DataError, PadlessError  # noqa: E402


@pytest.fixture
def ra():
    rng = np.random.default_rng(1)
    return RaggedArray.from_list([rng.normal(size=(t, 3)).astype(np.float32) for t in (4, 1, 6)])


def test_round_trip_with_labels(ra, tmp_path):
    path = tmp_path / "d.parquet"
    write_parquet(ra, path, labels=np.array(["a", "b", "a"]))
    x, y = read_parquet(path, label_column="y")
    np.testing.assert_array_equal(x.values, ra.values)
    np.testing.assert_array_equal(x.offsets, ra.offsets)
    assert x.dtype == np.float32 and y.tolist() == ["a", "b", "a"]
    assert isinstance(read_parquet(path), RaggedArray)


def test_custom_column_names_and_float64(tmp_path):
    ra = RaggedArray.from_list([np.ones((2, 1)), np.zeros((3, 1))])
    write_parquet(ra, tmp_path / "d.parquet", labels=[5, 6], column="seq", label_column="target")
    x, y = read_parquet(tmp_path / "d.parquet", column="seq", label_column="target")
    assert x.dtype == np.float64 and x.lengths.tolist() == [2, 3] and y.tolist() == [5, 6]


def test_pandas_reads_our_file(ra, tmp_path):
    write_parquet(ra, tmp_path / "d.parquet")
    df = pd.read_parquet(tmp_path / "d.parquet")
    first = np.stack(df["x"].iloc[0])  # (T, F)
    np.testing.assert_array_equal(first, ra[0])


def test_we_read_pandas_nested_lists(tmp_path):
    df = pd.DataFrame({"x": [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0]]], "y": [0, 1]})
    df.to_parquet(tmp_path / "p.parquet")
    x, y = read_parquet(tmp_path / "p.parquet", label_column="y")
    assert x.lengths.tolist() == [2, 1] and x.num_features == 2 and y.tolist() == [0, 1]
    pd.DataFrame({"x": [[1.0, 2.0, 3.0], [4.0]]}).to_parquet(tmp_path / "u.parquet")
    u = read_parquet(tmp_path / "u.parquet")
    assert u.num_features == 1 and u.lengths.tolist() == [3, 1]


def test_null_row_is_named(tmp_path):
    pd.DataFrame({"x": [[[1.0]], [[2.0]], None]}).to_parquet(tmp_path / "n.parquet")
    with pytest.raises(DataError, match="row 2 of column 'x' is null"):
        read_parquet(tmp_path / "n.parquet")


def test_null_step_and_value_are_named(tmp_path):
    pd.DataFrame({"x": [[[1.0]], [[2.0], None]]}).to_parquet(tmp_path / "s.parquet")
    with pytest.raises(DataError, match="row 1 of column 'x' has a null time step"):
        read_parquet(tmp_path / "s.parquet")
    pd.DataFrame({"x": [[[1.0, 2.0]], [[1.0, 2.0]], [[3.0, None]]]}).to_parquet(tmp_path / "v.parquet")
    with pytest.raises(DataError, match="row 2 of column 'x' has a null value"):
        read_parquet(tmp_path / "v.parquet")


def test_ragged_features_and_missing_column(tmp_path):
    pd.DataFrame({"x": [[[1.0, 2.0]], [[1.0, 2.0], [3.0]]]}).to_parquet(tmp_path / "r.parquet")
    with pytest.raises(DataError, match="row 1 of column 'x' has a time step with 1 features"):
        read_parquet(tmp_path / "r.parquet")
    with pytest.raises(DataError, match=r"has no column 'nope'; its columns are \['x'\]"):
        read_parquet(tmp_path / "r.parquet", column="nope")


def test_label_count_checked(ra, tmp_path):
    with pytest.raises(DataError, match="labels has shape .2,. but there are 3 sequences"):
        write_parquet(ra, tmp_path / "d.parquet", labels=[1, 2])


def test_missing_pyarrow_says_how_to_install(ra, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(PadlessError, match=r"pip install 'padless\[parquet\]'"):
        write_parquet(ra, tmp_path / "d.parquet")
    with pytest.raises(PadlessError, match=r"pip install 'padless\[parquet\]'"):
        read_parquet(tmp_path / "d.parquet")
