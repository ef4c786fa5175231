"""load_ts: a user's own .ts file through sktime's loader."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sktime")

from padless.datasets import load_ts  # noqa: E402
from padless.errors import DataError  # noqa: E402

HEADER = "@problemName toy\n@timeStamps false\n@univariate {uni}\n@equalLength false\n@classLabel true {labels}\n@data\n"


def write(path, body, labels="a b 10 2", uni="true", missing=False):
    head = HEADER.format(uni=uni, labels=labels)
    if missing:
        head = head.replace("@univariate", "@missing true\n@univariate")
    path.write_text(head + body)
    return path


def test_univariate_with_numeric_aware_labels(tmp_path):
    f = write(tmp_path / "u.ts", "1,2,3:a\n4,5:10\n4,5,6,7:2\n")
    x, y, names = load_ts(f)
    assert names == ["2", "10", "a"]
    assert y.tolist() == [2, 1, 0] and y.dtype == np.int64
    assert x.lengths.tolist() == [3, 2, 4] and x.num_features == 1 and x.dtype == np.float32
    np.testing.assert_array_equal(x[2][:, 0], [4, 5, 6, 7])


def test_multivariate_and_fixed_class_names(tmp_path):
    f = write(tmp_path / "m.ts", "1,2:3,4:x\n5,6,7:8,9,10:y\n", labels="x y", uni="false")
    x, y, names = load_ts(f, class_names=["y", "x"])
    assert x.num_features == 2 and x.lengths.tolist() == [2, 3] and y.tolist() == [1, 0]
    np.testing.assert_array_equal(x[1], [[5, 8], [6, 9], [7, 10]])
    with pytest.raises(DataError, match=r"m.ts: row 0 has label 'x', which is not among the class names \['y'\]"):
        load_ts(f, class_names=["y"])


def test_malformed_file_names_the_file(tmp_path):
    f = write(tmp_path / "bad.ts", "1,2,3:a\nfoo,bar:b\n")
    with pytest.raises(DataError, match=r"bad.ts: sktime could not parse this .ts file"):
        load_ts(f)
    with pytest.raises(DataError, match=r"nope.ts: no such .ts file"):
        load_ts(tmp_path / "nope.ts")


def test_missing_values_rejected_unless_allowed(tmp_path):
    f = write(tmp_path / "nan.ts", "1,?,3:a\n4,5:b\n", labels="a b", missing=True)
    with pytest.raises(DataError, match=r"nan.ts: sequence 0 has NaN at step 1.*allow_nonfinite=True"):
        load_ts(f)
    x, _, _ = load_ts(f, allow_nonfinite=True)
    assert np.isnan(x[0][1, 0])
