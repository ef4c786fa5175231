"""RaggedArray rejects bad input with a DataError that names the offending index and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from padless.data import RaggedArray
from padless.errors import ConfigError, DataError, PadlessError


def seqs(*lengths, f=2):
    return [np.ones((t, f), dtype=np.float32) for t in lengths]


def test_data_error_is_a_padless_value_error():
    with pytest.raises(ValueError):
        RaggedArray.from_list([])
    assert issubclass(DataError, PadlessError)


def test_mismatched_feature_counts():
    items = seqs(2, 2, 2) + [np.ones((4, 5))]
    items[0] = np.ones((3, 12))
    items[1] = np.ones((3, 12))
    items[2] = np.ones((3, 12))
    with pytest.raises(DataError, match=r"sequence 3 has 5 features, sequence 0 has 12") as err:
        RaggedArray.from_list(items)
    assert "same number of features" in str(err.value)


def test_zero_d_element():
    with pytest.raises(DataError, match=r"sequence 1 is 0-D .*\(T, F\)"):
        RaggedArray.from_list([np.ones((2, 1)), np.float32(3.0)])


def test_three_d_element():
    with pytest.raises(DataError, match=r"sequence 2 is 3-D with shape \(2, 2, 2\).*reshape"):
        RaggedArray.from_list([np.ones((2, 4)), np.ones((2, 4)), np.ones((2, 2, 2))])


def test_mixed_1d_and_2d():
    with pytest.raises(DataError, match=r"sequence 1 is 2-D but sequence 0 is 1-D.*reshape\(-1, 1\)"):
        RaggedArray.from_list([np.ones(3), np.ones((3, 1))])


def test_ragged_python_element():
    with pytest.raises(DataError, match="sequence 1 could not be read"):
        RaggedArray.from_list([[[1.0]], [[1.0, 2.0], [3.0]]])


def test_four_d_padded():
    with pytest.raises(DataError, match=r"padded input is 4-D with shape \(2, 3, 4, 5\); expected \(N, T, F\) or \(N, T\)"):
        RaggedArray.from_padded(np.zeros((2, 3, 4, 5)))


@pytest.mark.parametrize("bad", [np.array([["a", "b"]]), np.array([[object()]], dtype=object)])
def test_non_numeric_dtype(bad):
    with pytest.raises(DataError, match=r"sequence 1 has dtype .* not numeric.*np.asarray\(x, dtype=np.float32\)"):
        RaggedArray.from_list([np.ones((1, 2)), bad])
    with pytest.raises(DataError, match="not numeric"):
        RaggedArray.from_padded(bad[None])


def test_complex_dtype():
    with pytest.raises(DataError, match="complex"):
        RaggedArray.from_list([np.ones((2, 1), dtype=complex)])


@pytest.mark.parametrize(("value", "word"), [(np.nan, "NaN"), (np.inf, r"\+inf"), (-np.inf, "-inf")])
def test_nonfinite_values(value, word):
    items = seqs(3, 4, 2)
    items[1] = items[1].copy()
    items[1][2, 1] = value
    with pytest.raises(DataError, match=rf"sequence 1 has {word} at step 2, feature 1.*allow_nonfinite=True"):
        RaggedArray.from_list(items)


def test_nonfinite_in_padded_real_steps():
    x = np.ones((3, 4, 1))
    x[2, 1, 0] = np.nan
    with pytest.raises(DataError, match="sequence 2 has NaN at step 1"):
        RaggedArray.from_padded(x, lengths=[4, 4, 2])


def test_zero_length_sequence():
    with pytest.raises(DataError, match=r"sequence 2 has length 0.*drop empty sequences.*allow_empty=True"):
        RaggedArray.from_list(seqs(2, 3, 0, 1))
    with pytest.raises(DataError, match="sequence 1 has length 0"):
        RaggedArray.from_padded(np.ones((2, 3, 1)), lengths=[3, 0])
    with pytest.raises(DataError, match="sequence 0 has length 0"):
        RaggedArray(np.ones((2, 1)), [0, 0, 2])


def test_negative_and_too_large_lengths():
    x = np.ones((3, 40, 2))
    with pytest.raises(DataError, match=r"lengths\[2\] = -1 is negative"):
        RaggedArray.from_padded(x, lengths=[3, 4, -1])
    with pytest.raises(DataError, match=r"lengths\[1\] = 50 is larger than the padded time dimension T=40"):
        RaggedArray.from_padded(x, lengths=[3, 50, 1])
    with pytest.raises(DataError, match=r"lengths\[0\] = -2 is negative"):
        RaggedArray.from_lengths(np.ones((3, 1)), [-2, 5])


def test_lengths_count_mismatch():
    with pytest.raises(DataError, match=r"got 2 lengths for 3 sequences.*one length per sequence"):
        RaggedArray.from_padded(np.ones((3, 4, 1)), lengths=[1, 2])
    with pytest.raises(DataError, match="lengths sum to 4 but values has 5 rows"):
        RaggedArray.from_lengths(np.ones((5, 1)), [1, 3])


def test_float_lengths_rejected():
    with pytest.raises(DataError, match="lengths must be integers"):
        RaggedArray.from_padded(np.ones((2, 4, 1)), lengths=[1.5, 2.0])


def test_mask_with_hole():
    mask = np.array([[True, True, False, False], [True, False, True, False]])
    with pytest.raises(DataError, match=r"mask row 1 is not contiguous: step 1 is False between True steps"):
        RaggedArray.from_padded(np.ones((2, 4, 1)), mask=mask)


def test_mask_on_the_other_side():
    mask = np.array([[False, True, True], [False, False, True]])
    with pytest.raises(DataError, match=r"mask row 0 is left-padded.*pass side='left'"):
        RaggedArray.from_padded(np.ones((2, 3, 1)), mask=mask)
    assert RaggedArray.from_padded(np.ones((2, 3, 1)), mask=mask, side="left").lengths.tolist() == [2, 1]


def test_mask_in_the_middle_and_bad_shape_and_dtype():
    with pytest.raises(DataError, match=r"mask row 0 marks steps 1..2, touching neither end"):
        RaggedArray.from_padded(np.ones((1, 4, 1)), mask=np.array([[False, True, True, False]]))
    with pytest.raises(DataError, match=r"mask has shape \(1, 3\).*expected \(2, 3\)"):
        RaggedArray.from_padded(np.ones((2, 3, 1)), mask=np.ones((1, 3), bool))
    with pytest.raises(DataError, match="mask must be boolean"):
        RaggedArray.from_padded(np.ones((1, 3, 1)), mask=np.array([[0.5, 1, 0]]))


def test_lengths_and_mask_together_and_bad_side():
    with pytest.raises(ConfigError, match="not both"):
        RaggedArray.from_padded(np.ones((1, 3, 1)), lengths=[3], mask=np.ones((1, 3), bool))
    with pytest.raises(ConfigError, match="side must be 'right' or 'left'"):
        RaggedArray.from_padded(np.ones((1, 3, 1)), side="middle")
    with pytest.raises(ConfigError, match="side"):
        RaggedArray.from_list(seqs(1)).to_padded(side="up")


def test_empty_inputs():
    with pytest.raises(DataError, match=r"empty list of sequences.*at least one"):
        RaggedArray.from_list([])
    with pytest.raises(DataError, match="no sequences"):
        RaggedArray.from_padded(np.ones((0, 3, 1)))


def test_bad_offsets():
    values = np.ones((5, 1))
    with pytest.raises(DataError, match=r"offsets\[0\] must be 0"):
        RaggedArray(values, [1, 5])
    with pytest.raises(DataError, match=r"offsets\[-1\] = 4 but values has 5 rows"):
        RaggedArray(values, [0, 4])
    with pytest.raises(DataError, match="sequence 1 has negative length -2"):
        RaggedArray(values, [0, 3, 1, 5])
    with pytest.raises(DataError, match="offsets must be integers"):
        RaggedArray(values, [0.0, 5.0])
    with pytest.raises(DataError, match="values must be 2-D"):
        RaggedArray(np.ones((5, 1, 1)), [0, 5])


def test_validate_false_skips_scans():
    ra = RaggedArray(np.array([[np.nan]]), [0, 1], validate=False)
    assert np.isnan(ra.values).all()
