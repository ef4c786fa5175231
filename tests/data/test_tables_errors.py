"""read_long_table on bad input: one-line DataError naming the row or id and the fix; out_dir untouched."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from padless.data.tables import read_long_table  # noqa: E402
from padless.errors import ConfigError, DataError  # noqa: E402


def snapshot(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = os.path.getsize(p) if os.path.isfile(p) else -1
    return out


def fails(tmp_path: Path, path: Path, pattern: str, exc: type = DataError, **kw) -> str:
    """Read with an out_dir below tmp_path; assert the error, its single line, and that nothing was written."""
    before = snapshot(tmp_path)
    kw.setdefault("progress", False)
    with pytest.raises(exc) as info:
        read_long_table(path, out_dir=tmp_path / "made" / "out", **kw)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert pytest.importorskip("re").search(pattern, msg), msg
    assert snapshot(tmp_path) == before
    return msg


def csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_unknown_columns_say_which_exist(tmp_path):
    p = csv(tmp_path, "unit,time,a,b\n1,0,1.0,2.0\n")
    fails(tmp_path, p, r"no id column 'uint' \(did you mean 'unit'\?\); its columns are unit, time, a, b", id="uint")
    fails(tmp_path, p, r"no time column 'tim' \(did you mean 'time'\?\)", id="unit", time="tim")
    fails(tmp_path, p, r"no feature column 'c'; its columns are", id="unit", features=["a", "c"])
    fails(tmp_path, p, r"no target column 'Y'", id="unit", target="Y")
    fails(tmp_path, p, r"target 'a' is also listed as a feature", id="unit", target="a", features=["a", "b"])
    fails(tmp_path, p, r"'time' is the time column and cannot also be a feature", id="unit", time="time",
          features=["time", "a"])
    fails(tmp_path, p, r"feature 'a' is listed twice", id="unit", features=["a", "a"])
    fails(tmp_path, csv(tmp_path, "unit,name\n1,x\n", "s.csv"), r"no numeric feature column .*pass features=", id="unit")


def test_non_numeric_feature_values_name_the_row(tmp_path):
    rows = "".join(f"{i // 3},{i}.5\n" for i in range(20_000)) + "7000,oops\n"
    fails(tmp_path, csv(tmp_path, "id,a\n" + rows), r"feature 'a' has the non-numeric value 'oops' at row 20000",
          id="id", features=["a"], batch_rows=5000)
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [1, 1], "a": ["1.5", "x"]}), p)
    fails(tmp_path, p, r"feature 'a' holds string values \(e.g. 'x' at row 1\)", id="id", features=["a"])


def test_duplicate_id_time_pairs(tmp_path):
    fails(tmp_path, csv(tmp_path, "id,t,a\n1,0,1\n1,1,2\n1,1,3\n2,0,4\n"),
          r"duplicate \(id, time\) pair: id 1 has time 1 at rows 1 and 2", id="id", time="t")
    fails(tmp_path, csv(tmp_path, "id,t,a\n1,5,1\n2,0,2\n1,3,3\n2,1,4\n1,5,9\n"),
          r"duplicate \(id, time\) pair: id 1 has time 5 twice at rows 0 and 4", id="id", time="t")


def test_non_contiguous_rows_without_time(tmp_path):
    fails(tmp_path, csv(tmp_path, "id,a\na,1\na,2\nb,3\na,4\n"),
          r"rows of id 'a' are not contiguous \(it appears again at row 3 .*pass time=", id="id")


def test_labels_mismatches(tmp_path):
    p = csv(tmp_path, "id,a\n1,1\n2,2\n3,3\n4,4\n5,5\n")
    lab = csv(tmp_path, "id,y\n1,a\n2,b\n", "lab.csv")
    fails(tmp_path, p, r"no label for 3 id\(s\) of the table: 3, 4, 5", id="id", labels=lab)
    extra = csv(tmp_path, "id,y\n1,a\n2,b\n3,a\n4,a\n5,a\n9,b\n8,b\n", "lab2.csv")
    fails(tmp_path, p, r"labels for ids that are not in the table: 9, 8", id="id", labels=extra)
    dup = csv(tmp_path, "id,y\n1,a\n2,b\n3,a\n4,a\n5,a\n5,b\n", "lab3.csv")
    fails(tmp_path, p, r"id 5 has 2 labels", id="id", labels=dup)
    fails(tmp_path, p, r"no label id column 'unit'", id="id", labels=lab, label_id="unit")
    fails(tmp_path, p, r"label of id 2 \(row 1\) is empty", id="id", labels=csv(tmp_path, "id,y\n1,a\n2,\n3,a\n4,a\n5,a\n", "l4.csv"))


def test_per_sequence_target_that_changes(tmp_path):
    p = csv(tmp_path, "id,t,a,y\n1,0,1,x\n1,1,1,x\n2,0,1,x\n2,1,1,z\n")
    fails(tmp_path, p, r"id 2 has target 'z' at row 3 but 'x' at its first row; task='classify' needs one target per id",
          id="id", time="t", target="y", task="classify")
    fails(tmp_path, p, r"id 2 has target 'z' at row 3", id="id", time="t", target="y", per_step=False)


def test_empty_tables(tmp_path):
    fails(tmp_path, csv(tmp_path, "id,a\n"), r"t.csv: the table has no rows", id="id")
    p = tmp_path / "e.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "a": pa.array([], pa.float64())}), p)
    fails(tmp_path, p, r"e.parquet: the table has no rows", id="id")
    fails(tmp_path, csv(tmp_path, "", "z.csv"), r"z.csv: the file is empty \(0 bytes\)", id="id")


def test_single_row_ids_are_fine(tmp_path):
    lt = read_long_table(csv(tmp_path, "id,a\n1,1\n2,2\n2,3\n3,4\n"), id="id", progress=False)
    assert lt.x.lengths.tolist() == [1, 2, 1]


def test_nan_and_inf_in_features(tmp_path):
    p = csv(tmp_path, "id,a,b\n1,1,2\n1,,3\n2,4,5\n")
    fails(tmp_path, p, r"feature 'a' is NaN \(missing\) at row 1 \(id 1\); pass fill='ffill'", id="id")
    q = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": ["u", "v"], "a": [1.0, np.inf]}), q)
    fails(tmp_path, q, r"feature 'a' is infinite .* at row 1 \(id 'v'\)", id="id", fill="zero")
    r = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": ["u", "v"], "a": [1.0, 1e300]}), r)
    fails(tmp_path, r, r"too large for float32\) at row 1", id="id")


def test_nan_and_empty_targets(tmp_path):
    fails(tmp_path, csv(tmp_path, "id,a,y\n1,1,0.5\n2,1,\n"), r"target 'y' is empty or NaN at row 1 \(id 2\)",
          id="id", target="y")
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [1, 2], "a": [1.0, 2.0], "y": ["a", ""]}), p)
    fails(tmp_path, p, r"target 'y' is empty or NaN at row 1 \(id 2\)", id="id", target="y")


def test_bad_ids_and_times(tmp_path):
    fails(tmp_path, csv(tmp_path, "id,a\n1,1\n,2\n"), r"id 'id' is empty at row 1", id="id")
    fails(tmp_path, csv(tmp_path, "id,t,a\n1,0,1\n1,,2\n"), r"time 't' is empty at row 1", id="id", time="t")
    fails(tmp_path, csv(tmp_path, "id,t,a\n1,a,1\n1,b,2\n"), r"time column 't' has type string", id="id", time="t")


def test_forecast_too_short(tmp_path):
    fails(tmp_path, csv(tmp_path, "id,a\n1,1\n1,2\n2,3\n"), r"1 id\(s\) have 1 step\(s\) or fewer.*: 2; pass drop_short=True",
          id="id", task="forecast")


def test_bad_options(tmp_path):
    p = csv(tmp_path, "id,a\n1,1\n")
    fails(tmp_path, p, r"unknown task 'clasify'", ConfigError, id="id", task="clasify")
    fails(tmp_path, p, r"unknown fill 'linear'", ConfigError, id="id", fill="linear")
    fails(tmp_path, p, r"needs id=", ConfigError)
    fails(tmp_path, tmp_path / "t.xlsx", r"unknown table format", id="id")
    fails(tmp_path, tmp_path / "nope.csv", r"nope.csv: no such file", id="id")


def test_failure_keeps_an_existing_out_dir(tmp_path):
    good = csv(tmp_path, "id,a\n1,1\n1,2\n")
    out = tmp_path / "ds"
    read_long_table(good, id="id", out_dir=out, progress=False)
    before = snapshot(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,a\n1,1\n1,\n")
    with pytest.raises(DataError, match="NaN"):
        read_long_table(bad, id="id", out_dir=out, overwrite=True, progress=False)
    assert snapshot(tmp_path) == {**before, "bad.csv": bad.stat().st_size}
    with pytest.raises(DataError, match="is not a saved long table; refusing"):
        read_long_table(good, id="id", out_dir=tmp_path / "bad.csv", overwrite=True, progress=False)
