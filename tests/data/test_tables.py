"""read_long_table: round trips (hypothesis), task inference, classes, labels, forecast, fill, schema, out_dir,
write_long_predictions."""

from __future__ import annotations

import json
import os
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
from padless.data.tables import LongTable, LongTableSchema, read_long_table, write_long_predictions  # noqa: E402
from padless.errors import DataError  # noqa: E402


def write(table: pa.Table, path: Path) -> Path:
    """Write ``table`` in the format its suffix names."""
    name = path.name
    if name.endswith(".csv.gz"):
        with pa.CompressedOutputStream(os.fspath(path), "gzip") as out:
            pcsv.write_csv(table, out)
    elif name.endswith(".csv"):
        pcsv.write_csv(table, path)
    elif name.endswith(".tsv"):
        pcsv.write_csv(table, path, write_options=pcsv.WriteOptions(delimiter="\t"))
    elif name.endswith((".parquet", ".pq")):
        pq.write_table(table, path, row_group_size=7)  # several row groups even for small tables
    else:
        pf.write_feather(table, path, chunksize=5)  # several record batches
    return path


def read(path: Path, **kw) -> LongTable:
    kw.setdefault("progress", False)
    return read_long_table(path, **kw)


# ------------------------------------------------------------------------------------------ round trip
@st.composite
def ragged_tables(draw):
    n = draw(st.integers(1, 6))
    lens = draw(st.lists(st.integers(1, 6), min_size=n, max_size=n))
    f = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    return lens, f, seed, draw(st.booleans()), draw(st.sampled_from([".csv", ".parquet", ".feather"])), draw(st.booleans())


@settings(max_examples=45, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ragged_tables())
def test_round_trip(tmp_path, case):
    lens, f, seed, with_time, suffix, str_ids = case
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example
    rng = np.random.default_rng(seed)
    n = len(lens)
    ids = [f"u{k}" for k in rng.permutation(100)[:n]] if str_ids else [int(k) for k in rng.permutation(1000)[:n]]
    seqs = [rng.normal(size=(t, f)).astype(np.float32) for t in lens]
    times = [np.sort(rng.choice(10_000, size=t, replace=False)) for t in lens]
    cls = rng.integers(0, 3, size=n)  # per-sequence class (int, few values)
    step = [rng.normal(size=t).astype(np.float32) for t in lens]  # per-step regression target
    rows = [(i, t) for i in range(n) for t in range(lens[i])]
    if with_time:
        rows = [rows[k] for k in rng.permutation(len(rows))]
    cols = {"id": [ids[i] for i, _ in rows], "t": [int(times[i][t]) for i, t in rows]}
    for j in range(f):
        cols[f"f{j}"] = pa.array([float(seqs[i][t, j]) for i, t in rows], pa.float64())
    cols["c"] = [int(cls[i]) for i, _ in rows]
    cols["r"] = pa.array([float(step[i][t]) for i, t in rows], pa.float64())
    path = write(pa.table(cols), tmp_path / f"t{suffix}")
    feats = [f"f{j}" for j in range(f)]
    order = list(dict.fromkeys(i for i, _ in rows))  # first-appearance order of the sequences
    time = "t" if with_time else None
    lt = read(path, id="id", time=time, features=feats, target="c", task="classify")
    assert lt.ids.tolist() == [ids[i] for i in order]
    assert lt.x.lengths.tolist() == [lens[i] for i in order]
    for k, i in enumerate(order):
        np.testing.assert_array_equal(lt.x[k], seqs[i])
    classes = sorted(set(cls.tolist()))
    assert lt.classes == [str(c) for c in classes]
    assert lt.y.tolist() == [classes.index(cls[i]) for i in order] and not lt.per_step
    lt2 = read(path, id="id", time=time, features=feats, target="r", task="regress", per_step=True,
               out_dir=tmp_path / "o")
    assert isinstance(lt2.y, RaggedArray) and lt2.per_step
    for k, i in enumerate(order):
        np.testing.assert_array_equal(lt2.y[k][:, 0], step[i])
        np.testing.assert_array_equal(lt2.x[k], seqs[i])
        if with_time:
            np.testing.assert_array_equal(lt2.times[k][:, 0], times[i])
    assert isinstance(lt2.x.values, np.memmap)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".tsv", ".parquet", ".pq", ".feather", ".arrow"])
def test_every_suffix_reads(tmp_path, suffix):
    tab = pa.table({"id": [1, 1, 2], "a": [0.5, 1.5, 2.5]})
    lt = read(write(tab, tmp_path / f"t{suffix}"), id="id")
    assert lt.x.lengths.tolist() == [2, 1] and lt.y is None and lt.task is None
    np.testing.assert_array_equal(lt.x.values[:, 0], [0.5, 1.5, 2.5])


def test_arrow_stream_and_dictionary_columns(tmp_path):
    tab = pa.table({"id": pa.array(["b", "b", "a"]).dictionary_encode(), "a": [1.0, 2.0, 3.0],
                    "lab": pa.array(["x", "x", "y"]).dictionary_encode()})
    p = tmp_path / "s.arrow"
    with pa.OSFile(os.fspath(p), "wb") as sink, pa.ipc.new_stream(sink, tab.schema) as w:
        w.write_table(tab)
    lt = read(p, id="id", target="lab", time=None)
    assert lt.ids.tolist() == ["b", "a"] and lt.classes == ["x", "y"] and lt.y.tolist() == [0, 1]


def test_time_sorts_within_id_and_keeps_first_appearance_order(tmp_path):
    tab = pa.table({"id": ["b", "a", "b", "a", "b"], "t": [3, 2, 1, 1, 2], "v": [30.0, 20, 10, 10, 20]})
    lt = read(write(tab, tmp_path / "t.parquet"), id="id", time="t")
    assert lt.ids.tolist() == ["b", "a"]
    assert [s[:, 0].tolist() for s in lt.x] == [[10, 20, 30], [10, 20]]
    assert [s[:, 0].tolist() for s in lt.times] == [[1, 2, 3], [1, 2]] and lt.times.dtype == np.int64


def test_timestamps_stay_exact_and_write_back(tmp_path):
    ts = pa.array(np.array(["2024-01-01T00:00:00.000000001", "2024-01-01T00:00:00.000000003",
                            "2024-01-01T00:00:00.000000002"], dtype="datetime64[ns]"))
    tab = pa.table({"id": [7, 7, 7], "when": ts, "v": [1.0, 3.0, 2.0]})
    lt = read(write(tab, tmp_path / "t.parquet"), id="id", time="when")
    assert lt.x.values[:, 0].tolist() == [1.0, 2.0, 3.0] and lt.schema.time_type == "timestamp[ns]"
    out = lt.write_predictions(tmp_path / "p.parquet", lt.x, "v_hat")
    back = pq.read_table(out)
    assert back.column("when").type == pa.timestamp("ns")
    assert back.column("when").to_pylist() == sorted(ts.to_pylist())


# ------------------------------------------------------------------------------------------ tasks
def _tab(ids, target, **extra):
    return pa.table({"id": ids, "v": np.arange(len(ids), dtype=np.float64), "y": target, **extra})


def test_task_inference_cases(tmp_path):
    ids = np.repeat(np.arange(40), 2)
    cases = [
        (np.repeat(np.array(["cat", "ant", "bee", "cat"] * 10), 2), "classify", False, ["ant", "bee", "cat"]),
        (np.repeat(np.array([100, 2, 10, 2] * 10), 2), "classify", False, ["2", "10", "100"]),  # numeric order
        (np.repeat(np.arange(40) % 25, 2), "regress", False, None),  # 25 > max(20, 5% of 40)
        (np.repeat(np.arange(40) * 0.5, 2), "regress", False, None),
        (np.repeat(np.arange(40) % 2 == 0, 2), "classify", False, ["False", "True"]),
        (np.tile(np.array(["on", "off"]), 40), "tag", True, ["off", "on"]),
        (np.tile(np.array([0.5, 1.5]), 40), "regress", True, None),
    ]
    for k, (y, task, step, classes) in enumerate(cases):
        lt = read(write(_tab(ids, y), tmp_path / f"t{k}.parquet"), id="id", target="y")
        assert (lt.task, lt.per_step, lt.classes) == (task, step, classes), k
        if step:
            assert isinstance(lt.y, RaggedArray) and lt.y.lengths.tolist() == [2] * 40
        else:
            assert lt.y.shape == (40,) and lt.y.dtype == (np.int64 if classes else np.float32)
    many = np.repeat(np.arange(1000), 2)
    lt = read(write(_tab(many, np.repeat(np.arange(1000) % 25, 2)), tmp_path / "m.parquet"), id="id", target="y")
    assert lt.task == "classify" and len(lt.classes) == 25  # 25 <= 5% of 1000 sequences


def test_task_overrides(tmp_path):
    ids = np.repeat(np.arange(6), 3)
    p = write(_tab(ids, np.repeat(np.arange(6) % 3, 3)), tmp_path / "t.parquet")
    assert read(p, id="id", target="y").task == "classify"
    lt = read(p, id="id", target="y", task="regress")
    assert lt.task == "regress" and lt.y.dtype == np.float32 and lt.y.tolist() == [0, 1, 2, 0, 1, 2]
    lt = read(p, id="id", target="y", task="tag")
    assert lt.task == "tag" and lt.per_step and lt.y.values[:, 0].tolist() == np.repeat(np.arange(6) % 3, 3).tolist()
    lt = read(p, id="id", target="y", task="regress", per_step=True)
    assert lt.per_step and lt.y.values.shape == (18, 1)


def test_forecast_targets_of_a_known_series(tmp_path):
    tab = pa.table({"id": [1] * 5 + [2] * 3, "t": list(range(5)) + list(range(3)),
                    "a": [0.0, 1, 2, 3, 4, 10, 11, 12], "b": [0.0, -1, -2, -3, -4, -10, -11, -12]})
    p = write(tab, tmp_path / "t.csv")
    lt = read(p, id="id", time="t", task="forecast", horizon=2)
    assert lt.x.lengths.tolist() == [3, 1] and lt.task == "forecast" and lt.per_step
    assert lt.target_names == ["a+1", "b+1", "a+2", "b+2"]
    np.testing.assert_array_equal(lt.y[0], [[1, -1, 2, -2], [2, -2, 3, -3], [3, -3, 4, -4]])
    np.testing.assert_array_equal(lt.y[1], [[11, -11, 12, -12]])
    assert lt.times[0][:, 0].tolist() == [0, 1, 2]
    one = read(p, id="id", time="t", task="forecast", horizon=1, target="a")
    np.testing.assert_array_equal(one.y[1][:, 0], [11, 12])
    assert one.x.num_features == 2  # the forecast column stays an input
    with pytest.raises(DataError, match=r"too short to forecast 3 .*2.*drop_short=True"):
        read(p, id="id", time="t", task="forecast", horizon=3)
    dropped = read(p, id="id", time="t", task="forecast", horizon=3, drop_short=True, out_dir=tmp_path / "o")
    assert dropped.ids.tolist() == [1] and dropped.dropped_ids.tolist() == [2]
    np.testing.assert_array_equal(dropped.y[0], [[1, -1, 2, -2, 3, -3], [2, -2, 3, -3, 4, -4]])
    full = read(p, id="id", time="t", task="forecast", horizon=2, targets=False)
    assert full.y is None and full.x.lengths.tolist() == [5, 3]


# ------------------------------------------------------------------------------------------ labels
def test_labels_table(tmp_path):
    p = write(pa.table({"eng": ["e2", "e2", "e1", "e3"], "v": [1.0, 2, 3, 4]}), tmp_path / "t.csv")
    lab = write(pa.table({"eng": ["e1", "e3", "e2"], "health": ["ok", "bad", "ok"]}), tmp_path / "lab.csv")
    lt = read(p, id="eng", labels=lab)
    assert lt.ids.tolist() == ["e2", "e1", "e3"] and lt.classes == ["bad", "ok"] and lt.y.tolist() == [1, 1, 0]
    assert lt.schema.target_source == "labels" and lt.target_name == "health"
    lab2 = write(pa.table({"unit": ["e1", "e3", "e2"], "x": [1, 2, 3], "rul": [1.5, 2.5, 3.5]}), tmp_path / "l2.parquet")
    lt = read(p, id="eng", labels=lab2, label_id="unit", label_target="rul")
    assert lt.task == "regress" and lt.y.tolist() == [3.5, 1.5, 2.5]


# ------------------------------------------------------------------------------------------ fill
def test_fill_rules(tmp_path):
    nan = float("nan")
    a = [nan, 1.0, nan, 3.0, nan, 7.0, nan]
    b = [nan, nan, nan, nan, 5.0, nan, nan]  # all NaN in id 1
    tab = pa.table({"id": [1, 1, 1, 1, 2, 2, 2], "a": a, "b": b})
    p = write(tab, tmp_path / "t.parquet")
    got = {how: read(p, id="id", fill=how).x.values for how in ("ffill", "bfill", "zero", "mean")}
    np.testing.assert_array_equal(got["ffill"][:, 0], [1, 1, 1, 3, 7, 7, 7])
    np.testing.assert_array_equal(got["ffill"][:, 1], [0, 0, 0, 0, 5, 5, 5])
    np.testing.assert_array_equal(got["bfill"][:, 0], [1, 1, 3, 3, 7, 7, 7])
    np.testing.assert_array_equal(got["zero"][:, 0], [0, 1, 0, 3, 0, 7, 0])
    np.testing.assert_allclose(got["mean"][:, 0], [11 / 3, 1, 11 / 3, 3, 11 / 3, 7, 11 / 3], rtol=1e-6)
    lt = read(p, id="id", fill="mean")
    assert lt.schema.fill_values == pytest.approx([11 / 3, 5.0])
    other = write(pa.table({"id": [9, 9], "a": [nan, 100.0], "b": [1.0, nan]}), tmp_path / "n.parquet")
    np.testing.assert_allclose(read(other, schema=lt.schema).x.values, [[11 / 3, 1], [100, 5]], rtol=1e-6)


def test_fill_after_sorting_by_time(tmp_path):
    tab = pa.table({"id": [1, 1, 1], "t": [2, 0, 1], "a": [float("nan"), 4.0, float("nan")]})
    lt = read(write(tab, tmp_path / "t.csv"), id="id", time="t", fill="ffill")
    assert lt.x.values[:, 0].tolist() == [4.0, 4.0, 4.0]


# ------------------------------------------------------------------------------------------ schema
def test_schema_reads_a_new_table_with_no_flags(tmp_path):
    train = write(pa.table({"unit": [1, 1, 2, 2], "c": [0, 1, 0, 1], "s": [0.1, 0.2, 0.3, 0.4], "z": [5, 5, 6, 6],
                            "lab": ["b", "b", "a", "a"]}), tmp_path / "train.csv")
    lt = read(train, id="unit", time="c", target="lab", features=["s"])
    d = json.loads(json.dumps(lt.to_dict()))
    assert d["format"] == "padless.LongTableSchema" and d["classes"] == ["a", "b"] and d["features"] == ["s"]
    schema = LongTable.from_dict(d)
    test = write(pa.table({"unit": [5, 5, 6], "c": [1, 0, 0], "s": [1.0, 2.0, 3.0], "lab": ["a", "a", "b"],
                           "extra": ["x", "y", "z"]}), tmp_path / "test.parquet")
    lt2 = read(test, schema=d)
    assert lt2.classes == ["a", "b"] and lt2.y.tolist() == [0, 1] and lt2.x.values[:, 0].tolist() == [2, 1, 3]
    assert lt2.schema == schema
    blind = write(pa.table({"unit": [5], "c": [0], "s": [1.0]}), tmp_path / "blind.csv")
    lt3 = read(blind, schema=schema)
    assert lt3.y is None and lt3.task is None and lt3.schema.classes == ["a", "b"]
    unseen = write(pa.table({"unit": [5], "c": [0], "s": [1.0], "lab": ["zebra"]}), tmp_path / "u.csv")
    with pytest.raises(DataError, match=r"id 5 has target 'zebra', which is not one of the classes"):
        read(unseen, schema=schema)
    with pytest.raises(Exception, match="not both"):
        read(blind, schema=schema, id="unit")
    with pytest.raises(Exception, match="not a padless long-table schema"):
        LongTableSchema.from_dict({"id": "x"})


# ------------------------------------------------------------------------------------------ out_dir, save, predictions
def test_out_dir_save_load_and_overwrite(tmp_path):
    p = write(pa.table({"id": ["a", "a", "b"], "v": [1.0, 2, 3], "y": [1.0, 1.0, 2.5]}), tmp_path / "t.csv")
    out = tmp_path / "sub" / "ds"
    lt = read(p, id="id", target="y", out_dir=out)
    assert isinstance(lt.x.values, np.memmap) and lt.path == out
    assert sorted(os.listdir(out)) == ["ids.npy", "table.json", "x", "y.npy"]
    again = LongTable.load(out)
    assert again.ids.tolist() == ["a", "b"] and again.y.tolist() == [1.0, 2.5] and again.task == "regress"
    with pytest.raises(DataError, match="already exists; pass overwrite=True"):
        read(p, id="id", out_dir=out)
    read(p, id="id", out_dir=out, overwrite=True)
    assert LongTable.load(out).y is None
    ram = read(p, id="id", target="y")
    saved = LongTable.load(ram.save(tmp_path / "saved"))
    np.testing.assert_array_equal(saved.x.values, ram.x.values)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no temporary directories left


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".feather", ".csv.gz"])
def test_write_long_predictions_round_trip(tmp_path, suffix):
    p = write(pa.table({"id": [3, 3, 4, 3], "t": [0.5, 0.25, 9.0, 1.0], "v": [1.0, 2, 3, 4]}), tmp_path / "t.parquet")
    lt = read(p, id="id", time="t")
    preds = [np.array([[1.0, 2.0]] * 3), np.array([[5.0, 6.0]])]
    out = write_long_predictions(tmp_path / f"pred{suffix}", lt.ids, lt.times, preds, ["p0", "p1"], time_name="t")
    back = read(out, id="id", time="t")
    assert back.ids.tolist() == [3, 4] and back.times.values[:, 0].tolist() == [0.25, 0.5, 1.0, 9.0]
    np.testing.assert_array_equal(back.x.values, np.concatenate(preds))
    per_seq = write_long_predictions(tmp_path / f"seq{suffix}", lt.ids, None, np.array([0.1, 0.9]), "score")
    assert read(per_seq, id="id").x.values[:, 0].tolist() == pytest.approx([0.1, 0.9])
    with pytest.raises(DataError, match="2 column names for 1 prediction columns"):
        write_long_predictions(tmp_path / "bad.csv", lt.ids, None, np.array([0.1, 0.9]), ["a", "b"])
    with pytest.raises(DataError, match="sequence 0 has 2 predictions but 3 times"):
        write_long_predictions(tmp_path / "bad.csv", lt.ids, lt.times, [np.ones(2), np.ones(1)])
    assert not (tmp_path / "bad.csv").exists() and [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


def test_progress_bar_does_not_break_reading(tmp_path, capsys):
    p = write(pa.table({"id": [1, 1], "v": [1.0, 2.0]}), tmp_path / "t.csv")
    assert read_long_table(p, id="id", progress=True).x.lengths.tolist() == [2]
    assert capsys.readouterr().out == ""  # bars (if any) go to stderr


def test_csv_types_widen_after_the_first_block(tmp_path):
    # the first CSV block says "integer" for id and target; later rows hold text / fractions
    n = 30_000
    ids = [str(i // 3) for i in range(n)] + ["x7"] * 3
    y = ["1"] * n + ["2.5"] * 3
    p = tmp_path / "t.csv"
    p.write_text("id,v,y\n" + "".join(f"{i},{k},{t}\n" for k, (i, t) in enumerate(zip(ids, y))))
    lt = read(p, id="id", target="y", batch_rows=4096)
    assert lt.ids[-1] == "x7" and lt.ids[0] == "0" and lt.task == "regress" and lt.y[-1] == 2.5


def test_out_of_order_rows_written_through_small_windows(tmp_path, monkeypatch):
    import padless.data.tables_convert as conv

    monkeypatch.setattr(conv, "SCATTER_BYTES", 24)  # a window of 3 rows of 2 float32 features
    rng = np.random.default_rng(5)
    lens = [4, 1, 7, 3, 5]
    rows = [(i, t) for i in range(5) for t in range(lens[i])]
    rows = [rows[k] for k in rng.permutation(len(rows))]
    tab = pa.table({"id": [i for i, _ in rows], "t": [t for _, t in rows], "a": [10.0 * i + t for i, t in rows],
                    "b": [-1.0 * t for _, t in rows], "y": [float(t) for _, t in rows]})
    lt = read(write(tab, tmp_path / "t.parquet"), id="id", time="t", target="y", task="regress", batch_rows=6,
              out_dir=tmp_path / "o")
    order = list(dict.fromkeys(i for i, _ in rows))
    for k, i in enumerate(order):
        np.testing.assert_array_equal(lt.x[k], np.column_stack([10.0 * i + np.arange(lens[i]), -np.arange(lens[i])]))
        assert lt.y[k][:, 0].tolist() == list(range(lens[i])) == lt.times[k][:, 0].tolist()


def test_schema_with_a_labels_table(tmp_path):
    p = write(pa.table({"eng": [1, 1, 2], "v": [1.0, 2, 3]}), tmp_path / "t.csv")
    lab = write(pa.table({"eng": [2, 1], "state": ["worn", "new"]}), tmp_path / "lab.csv")
    lt = read(p, id="eng", labels=lab)
    assert lt.schema.label_target == "state" and lt.schema.label_id == "eng"
    new = write(pa.table({"eng": [5, 6, 6], "v": [1.0, 2, 3]}), tmp_path / "new.parquet")
    new_lab = write(pa.table({"eng": [6, 5], "state": ["new", "new"]}), tmp_path / "new_lab.parquet")
    got = read(new, schema=lt.schema.to_dict(), labels=new_lab)
    assert got.classes == ["new", "worn"] and got.y.tolist() == [0, 0]
    assert read(new, schema=lt.schema).y is None  # no labels given: inputs only


def test_run_to_failure_example(tmp_path):
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "examples" / "run_to_failure" / "make_data.py"
    spec = importlib.util.spec_from_file_location("make_data", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([str(tmp_path / "a"), "--seed", "4", "--train-engines", "20", "--test-engines", "10"]) == 0
    assert mod.main([str(tmp_path / "b"), "--seed", "4", "--train-engines", "20", "--test-engines", "10"]) == 0
    for name in ("train.csv", "test.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()  # deterministic
    train = read(tmp_path / "a" / "train.csv", id="engine", time="cycle", target="rul")
    assert train.task == "regress" and train.per_step and len(train) == 20 and train.x.num_features == 12
    assert 120 <= train.x.lengths.min() and train.x.lengths.max() <= 360
    last = train.y.offsets[1:] - 1
    assert (train.y.values[last, 0] == 0).all() and train.y.values.max() == 125  # capped RUL, 0 at failure
    test = read(tmp_path / "a" / "test.csv", schema=train.schema)
    assert len(test) == 10 and (test.y.values[test.y.offsets[1:] - 1, 0] > 0).all()  # cut before failure
