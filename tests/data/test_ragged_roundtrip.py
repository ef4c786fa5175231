"""RaggedArray: construction, every conversion and its inverse, indexing, dtypes, no mutation of inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

from padless.data import RaggedArray, concatenate
from padless.errors import DataError


def make_seqs(lengths, num_features=3, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(t), num_features)).astype(dtype) for t in lengths]


def assert_same(ra: RaggedArray, seqs) -> None:
    assert len(ra) == len(seqs)
    for got, want in zip(ra.to_list(), seqs):
        np.testing.assert_array_equal(got, np.asarray(want).reshape(len(want), -1))


lengths_strategy = st.lists(st.integers(1, 12), min_size=1, max_size=20)


def test_attributes():
    seqs = make_seqs([3, 1, 4])
    ra = RaggedArray.from_list(seqs)
    assert ra.values.shape == (8, 3)
    assert ra.offsets.dtype == np.int64 and ra.offsets.tolist() == [0, 3, 4, 8]
    assert ra.lengths.dtype == np.int64 and ra.lengths.tolist() == [3, 1, 4]
    assert (len(ra), ra.num_features, ra.total_steps, ra.dtype) == (3, 3, 8, np.float32)
    assert repr(ra) == "RaggedArray(num_sequences=3, num_features=3, dtype=float32, lengths=1..4, total_steps=8)"


def test_from_list_1d_means_one_feature():
    ra = RaggedArray.from_list([np.arange(3), np.arange(2)])
    assert ra.num_features == 1 and ra.lengths.tolist() == [3, 2]
    assert ra.dtype == np.float32  # integers become float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_float_dtypes_kept(dtype):
    assert RaggedArray.from_list(make_seqs([2, 3], dtype=dtype)).dtype == dtype
    assert RaggedArray.from_padded(np.zeros((2, 3, 1), dtype=dtype)).dtype == dtype


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.uint16, np.bool_])
def test_non_float_numeric_becomes_float32(dtype):
    seqs = [np.ones((2, 2), dtype=dtype), np.zeros((1, 2), dtype=dtype)]
    assert RaggedArray.from_list(seqs).dtype == np.float32
    assert RaggedArray.from_padded(np.ones((2, 3, 2), dtype=dtype), lengths=[3, 1]).dtype == np.float32


def test_from_lengths_and_constructor_share_memory():
    values = np.arange(12, dtype=np.float64).reshape(6, 2)
    ra = RaggedArray.from_lengths(values, [2, 4])
    assert np.shares_memory(ra.values, values)
    np.testing.assert_array_equal(ra[1], values[2:6])
    np.testing.assert_array_equal(RaggedArray(values, [0, 2, 6]).offsets, ra.offsets)


@settings(max_examples=40, deadline=None)
@given(lengths=lengths_strategy, side=st.sampled_from(["right", "left"]))
def test_padded_round_trip(lengths, side):
    seqs = make_seqs(lengths)
    ra = RaggedArray.from_list(seqs)
    padded = ra.to_padded(side=side, value=-7.0)
    assert padded.shape == (len(lengths), max(lengths), 3)
    mask = np.zeros(padded.shape[:2], dtype=bool)
    for i, t in enumerate(lengths):
        if side == "right":
            np.testing.assert_array_equal(padded[i, :t], seqs[i])
            assert (padded[i, t:] == -7.0).all()
            mask[i, :t] = True
        else:
            np.testing.assert_array_equal(padded[i, max(lengths) - t :], seqs[i])
            assert (padded[i, : max(lengths) - t] == -7.0).all()
            mask[i, max(lengths) - t :] = True
    assert_same(RaggedArray.from_padded(padded, lengths=ra.lengths, side=side), seqs)
    assert_same(RaggedArray.from_padded(padded, mask=mask, side=side), seqs)


def test_from_padded_2d_and_full_length():
    x = np.arange(6.0).reshape(2, 3)  # (N, T)
    ra = RaggedArray.from_padded(x)
    assert ra.num_features == 1 and ra.lengths.tolist() == [3, 3]
    np.testing.assert_array_equal(ra.to_padded()[:, :, 0], x)


def test_from_padded_ignores_nan_in_padding():
    x = np.full((2, 4, 1), np.nan)
    x[0, :2] = 1.0
    x[1, :4] = 2.0
    ra = RaggedArray.from_padded(x, lengths=[2, 4])
    assert np.isfinite(ra.values).all()


def test_from_padded_integer_mask():
    x = np.ones((2, 3, 1))
    ra = RaggedArray.from_padded(x, mask=np.array([[1, 1, 0], [1, 0, 0]]))
    assert ra.lengths.tolist() == [2, 1]


@settings(max_examples=40, deadline=None)
@given(lengths=lengths_strategy)
def test_packed_round_trip_matches_torch(lengths):
    seqs = make_seqs(lengths)
    ra = RaggedArray.from_list(seqs)
    ours = ra.to_packed()
    ref = pack_sequence([torch.from_numpy(s) for s in seqs], enforce_sorted=False)
    assert torch.equal(ours.batch_sizes, ref.batch_sizes)
    a, la = pad_packed_sequence(ours, batch_first=True)
    b, lb = pad_packed_sequence(ref, batch_first=True)
    assert torch.equal(a, b) and torch.equal(la, lb)  # same order restored, same content
    assert_same(RaggedArray.from_packed(ours), seqs)
    assert_same(RaggedArray.from_packed(ref), seqs)


def test_packed_runs_through_gru_like_torch_packing():
    seqs = make_seqs([5, 2, 7, 2])
    gru = torch.nn.GRU(3, 4)
    _, h_ours = gru(RaggedArray.from_list(seqs).to_packed())
    _, h_ref = gru(pack_sequence([torch.from_numpy(s) for s in seqs], enforce_sorted=False))
    torch.testing.assert_close(h_ours, h_ref)


def test_from_packed_sorted_without_indices_and_1d_data():
    packed = pack_sequence([torch.arange(3.0), torch.arange(2.0)])  # enforce_sorted=True -> no indices
    assert packed.unsorted_indices is None
    ra = RaggedArray.from_packed(packed)
    assert ra.lengths.tolist() == [3, 2] and ra.num_features == 1


def test_list_round_trip_and_iteration():
    seqs = make_seqs([2, 5, 1])
    ra = RaggedArray.from_list(seqs)
    assert_same(RaggedArray.from_list(ra.to_list()), seqs)
    assert [s.shape[0] for s in ra] == [2, 5, 1]


def test_int_index_is_a_view():
    ra = RaggedArray.from_list(make_seqs([2, 3]))
    seq = ra[1]
    assert seq.shape == (3, 3) and np.shares_memory(seq, ra.values)
    np.testing.assert_array_equal(ra[-1], seq)
    with pytest.raises(IndexError, match="out of range"):
        ra[2]


def test_slice_is_a_view_with_rebased_offsets():
    seqs = make_seqs([2, 3, 4, 1])
    ra = RaggedArray.from_list(seqs)
    sub = ra[1:3]
    assert isinstance(sub, RaggedArray) and np.shares_memory(sub.values, ra.values)
    assert sub.offsets.tolist() == [0, 3, 7]
    assert_same(sub, seqs[1:3])
    assert_same(ra[::2], seqs[::2])  # step != 1: a copy, same content
    assert len(ra[3:1]) == 0


def test_fancy_and_mask_indexing_and_take():
    seqs = make_seqs([2, 3, 4, 1])
    ra = RaggedArray.from_list(seqs)
    assert_same(ra[np.array([3, 0, 0])], [seqs[3], seqs[0], seqs[0]])
    assert_same(ra[ra.lengths > 2], [seqs[1], seqs[2]])
    assert_same(ra.take([-1, 1]), [seqs[3], seqs[1]])
    assert not np.shares_memory(ra.take([0]).values, ra.values)
    with pytest.raises(IndexError):
        ra.take([4])
    with pytest.raises(IndexError):
        ra[np.array([True, False])]


def test_concatenate_and_astype():
    a = RaggedArray.from_list(make_seqs([2, 3], seed=1))
    b = RaggedArray.from_list(make_seqs([4], dtype=np.float64, seed=2))
    c = concatenate([a, b])
    assert c.lengths.tolist() == [2, 3, 4] and c.dtype == np.float64
    np.testing.assert_array_equal(c[2], b[0])
    half = c.astype(np.float16)
    assert half.dtype == np.float16 and c.dtype == np.float64
    with pytest.raises(DataError, match="array 1 has 2 features, array 0 has 3"):
        concatenate([a, RaggedArray.from_list([np.ones((2, 2))])])
    with pytest.raises(DataError, match="floating dtype"):
        c.astype(np.int32)
    with pytest.raises(DataError, match="inf"):
        RaggedArray.from_list([np.array([[1e300]])]).astype(np.float32)


def test_allow_nonfinite_keeps_nan():
    ra = RaggedArray.from_list([np.array([[np.nan], [1.0]])], allow_nonfinite=True)
    assert np.isnan(ra[0][0, 0])
    assert np.isinf(RaggedArray.from_padded(np.array([[np.inf, 1.0]]), allow_nonfinite=True).values).any()


def test_allow_empty_keeps_and_drops_zero_length():
    ra = RaggedArray.from_list([np.ones((2, 1)), np.ones((0, 1))], allow_empty=True)
    assert ra.lengths.tolist() == [2, 0]
    assert ra[ra.lengths > 0].lengths.tolist() == [2]
    with pytest.raises(DataError, match="sequence 1 has length 0"):
        ra.to_packed()


def test_inputs_are_never_mutated():
    seqs = make_seqs([2, 3])
    copies = [s.copy() for s in seqs]
    padded = np.ones((2, 4, 3))
    padded_copy = padded.copy()
    mask = np.array([[True, True, False, False], [True, True, True, True]])
    mask_copy = mask.copy()
    lengths = np.array([2, 4])
    ra = RaggedArray.from_list(seqs)
    ra.to_padded(side="left")
    ra.to_packed()
    ra.take([1, 0])
    RaggedArray.from_padded(padded, mask=mask)
    RaggedArray.from_padded(padded, lengths=lengths, side="left")
    RaggedArray.from_padded(padded.astype(np.int64), lengths=lengths)
    for s, c in zip(seqs, copies):
        np.testing.assert_array_equal(s, c)
    np.testing.assert_array_equal(padded, padded_copy)
    np.testing.assert_array_equal(mask, mask_copy)
    assert lengths.tolist() == [2, 4]
    assert ra.values.base is None or not any(np.shares_memory(ra.values, s) for s in seqs)
