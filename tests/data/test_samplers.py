"""Batch samplers: properties over random length multisets, plus each sampler's documented policy."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset

from padless.data import BucketBatchSampler, ExactLengthBatchSampler, RandomBatchSampler, waste_report
from padless.errors import ConfigError, DataError

# (name, class, uses max_steps, extra kwargs)
VARIANTS = [
    ("bucket-count", BucketBatchSampler, False, {}),
    ("bucket-steps", BucketBatchSampler, True, {}),
    ("exact-count", ExactLengthBatchSampler, False, {}),
    ("exact-merge", ExactLengthBatchSampler, False, {"merge_small": True}),
    ("exact-steps", ExactLengthBatchSampler, True, {}),
    ("exact-steps-merge", ExactLengthBatchSampler, True, {"merge_small": True}),
    ("random-count", RandomBatchSampler, False, {}),
    ("random-steps", RandomBatchSampler, True, {}),
]
IDS = [v[0] for v in VARIANTS]

# PADLESS_HYPOTHESIS_EXAMPLES=1000 for a deeper search than the fast default
PROPS = settings(max_examples=int(os.environ.get("PADLESS_HYPOTHESIS_EXAMPLES", "30")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def setups(draw):
    lengths = draw(st.lists(st.integers(1, 40), min_size=1, max_size=150))
    size = draw(st.integers(1, 16))
    budget = draw(st.integers(max(lengths), 6 * max(lengths)))
    return {
        "lengths": lengths,
        "size": size,
        "budget": budget,
        "shuffle": draw(st.booleans()),
        "drop_last": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
        "epoch": draw(st.integers(0, 5)),
    }


def build(variant, s, **over):
    _, cls, steps, extra = variant
    kwargs = dict(shuffle=s["shuffle"], drop_last=s["drop_last"], seed=s["seed"], **extra)
    kwargs.update(over)
    if steps:
        sampler = cls(s["lengths"], max_steps=s["budget"], **kwargs)
    else:
        sampler = cls(s["lengths"], s["size"], **kwargs)
    sampler.set_epoch(s["epoch"])
    return sampler


def fits(variant, s, lengths, batch):
    rows, longest = len(batch), int(lengths[batch].max())
    return rows * longest <= s["budget"] if variant[2] else rows <= s["size"]


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
@PROPS
@given(s=setups())
def test_epoch_properties(variant, s):
    lengths = np.asarray(s["lengths"])
    sampler = build(variant, s)
    batches = list(sampler)
    assert len(sampler) == len(batches)  # len == batches actually yielded
    assert all(len(b) > 0 for b in batches)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))  # never twice
    if not s["drop_last"]:
        assert sorted(flat) == list(range(len(lengths)))  # each index exactly once
    for b in batches:
        assert fits(variant, s, lengths, b)  # budget respected
        if variant[1] is ExactLengthBatchSampler and not variant[3]:
            assert len(set(lengths[b].tolist())) == 1  # one length per batch
    if s["drop_last"] and not variant[2] and variant[1] is not ExactLengthBatchSampler:
        assert all(len(b) == s["size"] for b in batches)  # drop_last keeps only full batches
    # epoch_batches() is the same plan the iterator follows
    assert [list(b) for b in sampler.epoch_batches()] == batches
    # deterministic for (seed, epoch)
    assert list(build(variant, s)) == batches


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
@PROPS
@given(s=setups(), data=st.data())
def test_resume_mid_epoch(variant, s, data):
    world = data.draw(st.integers(1, 3))
    rank = data.draw(st.integers(0, world - 1))
    try:
        full = list(build(variant, s, rank=rank, world_size=world))
    except ConfigError:
        assume(False)
    k = data.draw(st.integers(0, len(full)))
    first = build(variant, s, rank=rank, world_size=world)
    it = iter(first)
    head = [next(it) for _ in range(k)]
    state = first.state_dict()
    assert state["position"] == k and state["epoch"] == s["epoch"] and state["seed"] == s["seed"]
    fresh = build(variant, s, rank=rank, world_size=world, seed=12345)  # seed and epoch come from the state
    fresh.set_epoch(0)
    fresh.load_state_dict(state)
    rest = list(fresh)
    assert head + rest == full
    assert fresh.state_dict()["position"] == len(full)


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
@PROPS
@given(s=setups(), world=st.integers(2, 8))
def test_ranks_get_equal_batch_counts(variant, s, world):
    lengths = np.asarray(s["lengths"])
    plan_1 = len(build(variant, s).epoch_batches())
    if s["drop_last"] and 0 < plan_1 < world:
        with pytest.raises(ConfigError, match="drops them all"):
            len(build(variant, s, world_size=world))
        return
    per_rank = [list(build(variant, s, rank=r, world_size=world)) for r in range(world)]
    counts = {len(b) for b in per_rank}
    assert len(counts) == 1  # same number of steps on every rank: DDP never hangs
    assert all(len(build(variant, s, rank=r, world_size=world)) == len(per_rank[r]) for r in range(world))
    flat = [i for rank_batches in per_rank for b in rank_batches for i in b]
    for rank_batches in per_rank:
        for b in rank_batches:
            assert fits(variant, s, lengths, b)
    if s["drop_last"]:
        assert len(flat) == len(set(flat))
    elif len(lengths) - plan_1 >= (-plan_1) % world:  # enough rows to split batches
        assert sorted(flat) == list(range(len(lengths)))  # split policy keeps "exactly once"
    else:
        assert set(flat) == set(range(len(lengths)))  # too few rows to split: batches repeat
    # rank r takes batches r, r+W, ... of the global plan
    plan = [list(b) for b in build(variant, s, world_size=world).epoch_batches()]
    for r in range(world):
        assert per_rank[r] == plan[r::world]


def test_lengths_never_mutated_and_copied():
    lengths = np.array([5, 3, 9, 1])
    sampler = BucketBatchSampler(lengths, batch_size=2)
    list(sampler)
    assert lengths.tolist() == [5, 3, 9, 1]
    lengths[0] = 100
    assert sampler.lengths.tolist() == [5, 3, 9, 1]
    assert not sampler.lengths.flags.writeable
    t = torch.tensor([3, 4, 5])
    assert len(RandomBatchSampler(t, batch_size=2)) == 2


@pytest.mark.parametrize("cls", [BucketBatchSampler, ExactLengthBatchSampler, RandomBatchSampler])
def test_argument_errors(cls):
    with pytest.raises(ConfigError, match="exactly one of batch_size"):
        cls([1, 2])
    with pytest.raises(ConfigError, match="exactly one of batch_size"):
        cls([1, 2], 4, max_steps=10)
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        cls([1, 2], 0)
    with pytest.raises(ConfigError, match="max_steps must be a positive integer"):
        cls([1, 2], max_steps=-3)
    with pytest.raises(ConfigError, match="rank must lie in 0..1"):
        cls([1, 2], 1, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="seed"):
        cls([1, 2], 1, seed=-1)
    with pytest.raises(DataError, match=r"lengths\[1\] = 0"):
        cls([3, 0], 1)
    with pytest.raises(DataError, match="empty"):
        cls([], 1)


def test_sequence_longer_than_budget_is_named():
    with pytest.raises(DataError, match=r"sequence 2 has 500 steps, more than max_steps=100.*raise max_steps.*tbptt"):
        BucketBatchSampler([10, 20, 500, 30], max_steps=100)


def test_bucket_shuffles_batch_order_not_sawtooth():
    lengths = np.random.default_rng(0).integers(1, 1000, size=2000)
    sampler = BucketBatchSampler(lengths, batch_size=32)
    means = [lengths[b].mean() for b in sampler.epoch_batches()]
    assert means != sorted(means) and means != sorted(means, reverse=True)
    first_epoch = [b.tolist() for b in sampler.epoch_batches()]
    sampler.set_epoch(1)
    assert [b.tolist() for b in sampler.epoch_batches()] != first_epoch
    ordered = BucketBatchSampler(lengths, batch_size=32, shuffle=False)
    means = [lengths[b].mean() for b in ordered.epoch_batches()]
    assert means == sorted(means)


def test_bucket_breaks_ties_randomly_per_epoch():
    sampler = BucketBatchSampler(np.full(64, 7), batch_size=8)
    a = sorted(tuple(sorted(b.tolist())) for b in sampler.epoch_batches())
    sampler.set_epoch(1)
    b = sorted(tuple(sorted(b.tolist())) for b in sampler.epoch_batches())
    assert a != b  # different groupings, not just a different order


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 60), min_size=1, max_size=120), size=st.integers(1, 12))
def test_bucket_puts_the_small_batch_where_it_costs_least(lengths, size):
    lens = np.asarray(lengths)
    got = waste_report(lens, BucketBatchSampler(lens, size).epoch_batches()).computed_steps
    s = np.sort(lens)
    n = len(s)
    q, r = divmod(n, size)
    best = None
    for k in range(q + 1):  # brute force over every position of the partial chunk
        cuts = list(range(0, k * size + 1, size)) + ([k * size + r] if r else []) + list(range(k * size + r + size, n + 1, size))
        cuts = sorted(set(cuts) | {n})
        cost = sum((b - a) * s[b - 1] for a, b in zip(cuts[:-1], cuts[1:]))
        best = cost if best is None else min(best, cost)
    assert got == best


def test_bucket_drop_last_varies_dropped_sequences():
    lengths = np.arange(1, 101)  # 100 sequences, batch 32: 4 dropped each epoch
    sampler = BucketBatchSampler(lengths, 32, drop_last=True)
    dropped = set()
    for epoch in range(10):
        sampler.set_epoch(epoch)
        kept = {i for b in sampler for i in b}
        assert len(kept) == 96
        dropped |= set(range(100)) - kept
    assert len(dropped) > 4


def test_exact_length_small_groups_default_and_merge():
    lengths = [1] * 5 + [2] + [10] * 5
    plain = ExactLengthBatchSampler(lengths, 4, shuffle=False)
    assert [5] in list(plain)  # the lone length-2 sequence is its own smaller batch
    merged = ExactLengthBatchSampler(lengths, 4, shuffle=False, merge_small=True)
    batch_with_5 = next(b for b in merged if 5 in b)
    assert set(np.asarray(lengths)[batch_with_5].tolist()) == {1, 2}  # merged with the nearest length (1)
    assert len(merged) < len(plain) or len(merged) == len(plain)


def test_exact_length_budget_rows():
    lengths = [10] * 7 + [3] * 7
    batches = list(ExactLengthBatchSampler(lengths, max_steps=30, shuffle=False))
    assert [len(b) for b in batches] == [7, 3, 3, 1]


def test_random_sampler_is_random_and_full():
    sampler = RandomBatchSampler(np.ones(100, int), 10)
    batches = list(sampler)
    assert [len(b) for b in batches] == [10] * 10
    assert sorted(i for b in batches for i in b) == list(range(100))
    assert [i for b in batches for i in b] != list(range(100))


def test_state_dict_guards():
    sampler = BucketBatchSampler([1, 2, 3, 4], 2)
    state = sampler.state_dict()
    with pytest.raises(ConfigError, match="saved by a BucketBatchSampler"):
        RandomBatchSampler([1, 2, 3, 4], 2).load_state_dict(state)
    with pytest.raises(ConfigError, match="state has 2 batches per epoch but this sampler has 4"):
        BucketBatchSampler([1, 2, 3, 4], 1).load_state_dict(state)
    with pytest.raises(ConfigError, match="missing"):
        sampler.load_state_dict({"epoch": 0})
    with pytest.raises(ConfigError, match="past the end"):
        sampler.load_state_dict({"epoch": 0, "seed": 0, "position": 3})


def test_set_epoch_resets_position_and_len_of_iterator():
    sampler = BucketBatchSampler(np.arange(1, 11), 2)
    it = iter(sampler)
    next(it)
    assert len(it) == 4 and sampler.state_dict()["position"] == 1
    sampler.set_epoch(3)
    assert sampler.state_dict() == {"kind": "BucketBatchSampler", "epoch": 3, "seed": 0, "position": 0, "num_batches": 5}


class _Seqs(Dataset):
    def __init__(self, lengths):
        self.lengths = lengths

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        return torch.full((int(self.lengths[i]),), float(i))


def test_works_as_dataloader_batch_sampler():
    lengths = np.random.default_rng(3).integers(1, 30, size=200)
    sampler = BucketBatchSampler(lengths, max_steps=256)
    loader = DataLoader(_Seqs(lengths), batch_sampler=sampler, collate_fn=lambda items: items)
    assert len(loader) == len(sampler)
    seen = []
    for batch in loader:
        assert len(batch) * max(len(x) for x in batch) <= 256
        seen += [int(x[0]) for x in batch]
    assert sorted(seen) == list(range(200))
