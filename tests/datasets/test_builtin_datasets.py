"""The built-in data sets: counts, classes, lengths, dtypes, the cache, and the waste numbers they show."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("sktime")

import padless.data.ts  # noqa: E402
import padless.datasets as datasets  # noqa: E402
from padless.data import BucketBatchSampler, RaggedArray, compare_batching  # noqa: E402
from padless.errors import PadlessError  # noqa: E402

# name: (features, classes, train size, test size, min length, max length)
EXPECTED = {
    "japanese_vowels": (12, 9, 270, 370, 7, 29),
    "plaid": (1, 11, 537, 537, 100, 1344),
}


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PADLESS_CACHE", str(tmp_path_factory.mktemp("padless-cache")))
        yield


def test_names():
    assert datasets.names() == ["japanese_vowels", "plaid"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shapes_classes_lengths(name):
    features, n_classes, n_train, n_test, lo, hi = EXPECTED[name]
    (x_train, y_train), (x_test, y_test) = datasets.load(name)
    assert (len(x_train), len(x_test)) == (n_train, n_test)
    for x, y in ((x_train, y_train), (x_test, y_test)):
        assert isinstance(x, RaggedArray) and x.dtype == np.float32 and x.num_features == features
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert np.isfinite(x.values).all()
    assert set(np.unique(np.concatenate([y_train, y_test])).tolist()) == set(range(n_classes))
    all_lengths = np.concatenate([x_train.lengths, x_test.lengths])
    assert (int(all_lengths.min()), int(all_lengths.max())) == (lo, hi)
    names = datasets.classes(name)
    assert len(names) == n_classes and all(isinstance(c, str) for c in names)


def test_class_order_is_numeric_aware():
    assert datasets.classes("plaid") == [str(i) for i in range(11)]  # "10" last, not after "1"
    assert datasets.classes("japanese_vowels") == [str(i) for i in range(1, 10)]


def test_labels_match_sktime_strings():
    from sktime.datasets import load_from_tsfile

    path = padless.data.ts.sktime_root() / "datasets" / "data" / "PLAID" / "PLAID_TRAIN.ts"
    frames, labels = load_from_tsfile(str(path), return_data_type="df-list")
    (x_train, y_train), _ = datasets.load("plaid")
    names = datasets.classes("plaid")
    assert [names[k] for k in y_train] == [str(v) for v in labels]
    np.testing.assert_array_equal(x_train[5][:, 0], frames[5].to_numpy()[:, 0].astype(np.float32))


def test_names_are_forgiving_and_unknown_suggests():
    (x, _), _ = datasets.load("JapaneseVowels")
    assert x.num_features == 12
    with pytest.raises(PadlessError, match=r"unknown data set 'plaidd'; did you mean 'plaid'\?"):
        datasets.load("plaidd")
    with pytest.raises(PadlessError, match="Available"):
        datasets.classes("mnist")


def test_cache_is_reused_and_corruption_rebuilt():
    datasets.load("plaid")
    entries = list((datasets.cache_dir() / "datasets").glob("plaid-sktime*"))
    assert len(entries) == 1 and (entries[0] / "train" / "values.npy").exists()
    values = entries[0] / "train" / "values.npy"
    values.write_bytes(values.read_bytes()[:1000])  # truncate
    (x_train, _), _ = datasets.load("plaid")
    assert len(x_train) == 537 and x_train.total_steps == 173858
    (entries[0] / "meta.json").write_text("garbage")
    assert datasets.classes("plaid")[-1] == "10"
    assert not [p for p in entries[0].parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_missing_sktime_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sktime", None)
    with pytest.raises(PadlessError, match=r"pip install 'padless\[datasets\]'"):
        datasets.load("plaid")


def waste_by_name(lengths):
    return {name: report.waste for name, report in compare_batching(lengths, batch_size=32, seed=0)}


def sorted_chunk_bound(lengths, batch_size=32):
    s = np.sort(lengths)
    chunks = [s[i : i + batch_size] for i in range(0, len(s), batch_size)]
    return 1 - s.sum() / sum(len(c) * c.max() for c in chunks)


def test_plaid_waste_table():
    (x_train, _), _ = datasets.load("plaid")
    waste = waste_by_name(x_train.lengths)
    assert round(100 * waste["pad to global max"], 1) == 75.9
    assert round(100 * sorted_chunk_bound(x_train.lengths), 1) == 11.0
    assert abs(waste["bucketed batches"] - 0.110) <= 0.01
    assert waste["bucketed, step budget = batch_size x mean length"] <= 0.05
    assert waste["exact-length batches"] == 0.0
    assert waste["bucketed batches"] < waste["random batches"] < waste["pad to global max"]


def test_japanese_vowels_waste_table():
    (x_train, _), _ = datasets.load("japanese_vowels")
    waste = waste_by_name(x_train.lengths)
    assert round(100 * sorted_chunk_bound(x_train.lengths), 1) == 4.9
    assert abs(waste["bucketed batches"] - 0.049) <= 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bucketed_waste_holds_for_every_epoch(seed):
    (x_train, _), _ = datasets.load("plaid")
    sampler = BucketBatchSampler(x_train.lengths, batch_size=32, seed=seed)
    from padless.data import waste_report

    for epoch in range(3):
        sampler.set_epoch(epoch)
        assert abs(waste_report(x_train.lengths, sampler.epoch_batches()).waste - 0.110) <= 0.01


def test_second_load_reads_the_cache_not_sktime(monkeypatch):
    datasets.load("japanese_vowels")

    def no_parsing(*args, **kwargs):
        raise AssertionError("the .ts file was parsed again")

    monkeypatch.setattr(datasets._builtin, "read_ts", no_parsing)
    (x_train, _), _ = datasets.load("japanese_vowels")
    assert len(x_train) == 270


def test_unwritable_cache_still_loads(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("PADLESS_CACHE", str(blocker / "cache"))
    with pytest.warns(UserWarning, match="could not write its data-set cache"):
        (x_train, y_train), _ = datasets.load("japanese_vowels")
    assert len(x_train) == 270 and y_train.max() == 8
