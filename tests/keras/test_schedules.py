"""Learning-rate schedules: Keras 3's formulas per step, JSON configs, one value per optimizer step starting
at schedule(0), and an exact resume in the middle of a scheduled run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from padless import ConfigError
from padless.callbacks import Callback
from padless.optimizers import SGD, Adam, schedules

from _kit import assert_same_weights, classes, model, sequences, weights

STEPS = range(0, 40, 3)


def _cases():
    yield schedules.ExponentialDecay(0.1, 10, 0.5), lambda s: 0.1 * 0.5 ** (s / 10)
    yield schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True), lambda s: 0.1 * 0.5 ** math.floor(s / 10)
    yield schedules.InverseTimeDecay(0.1, 5, 0.5), lambda s: 0.1 / (1 + 0.5 * s / 5)
    yield schedules.InverseTimeDecay(0.1, 5, 0.5, staircase=True), lambda s: 0.1 / (1 + 0.5 * math.floor(s / 5))
    # values[0] while step <= boundaries[0], ...
    yield (schedules.PiecewiseConstantDecay([5, 20], [1.0, 0.5, 0.1]),
           lambda s: 1.0 if s <= 5 else 0.5 if s <= 20 else 0.1)
    yield (schedules.PolynomialDecay(0.1, 20, end_learning_rate=0.01, power=2.0),
           lambda s: (0.1 - 0.01) * (1 - min(s, 20) / 20) ** 2 + 0.01)
    yield (schedules.PolynomialDecay(0.1, 20, end_learning_rate=0.01, cycle=True),
           lambda s: (0.1 - 0.01) * (1 - s / (20 * max(1, math.ceil(s / 20)))) + 0.01)
    yield (schedules.CosineDecay(0.1, 30, alpha=0.1),
           lambda s: 0.1 * ((1 - 0.1) * 0.5 * (1 + math.cos(math.pi * min(s, 30) / 30)) + 0.1))
    # Keras 3 warmup: linear from initial to warmup_target over warmup_steps, then cosine from the target
    yield (schedules.CosineDecay(0.0, 20, warmup_target=0.2, warmup_steps=10),
           lambda s: 0.2 * s / 10 if s < 10 else 0.2 * 0.5 * (1 + math.cos(math.pi * min(s - 10, 20) / 20)))
    yield (schedules.CosineDecayRestarts(0.1, 10, t_mul=1.0, m_mul=0.5),
           lambda s: 0.1 * 0.5 ** (s // 10) * 0.5 * (1 + math.cos(math.pi * (s / 10 - s // 10))))


@pytest.mark.parametrize("schedule, formula", list(_cases()), ids=lambda v: type(v).__name__ if not callable(v)
                         or isinstance(v, schedules.LearningRateSchedule) else "")
def test_values_per_step_and_config(schedule, formula):
    for s in STEPS:
        assert schedule(s) == pytest.approx(formula(s), rel=1e-12, abs=1e-15), s
    cfg = json.loads(json.dumps(schedules.serialize(schedule)))
    back = schedules.deserialize(cfg)
    assert type(back) is type(schedule) and [back(s) for s in STEPS] == [schedule(s) for s in STEPS]


def test_bad_arguments():
    with pytest.raises(ConfigError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ConfigError, match="1 less than the length of values"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0])
    with pytest.raises(ConfigError, match="unknown learning-rate schedule"):
        schedules.deserialize({"class_name": "Nope", "config": {}})


class _LR(Callback):
    """Records the learning rate each training step used (read before the step, as the step will see it)."""

    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(self.model.compiled.optimizer.param_groups[0]["lr"])


def test_one_value_per_optimizer_step_from_step_zero():
    sched = schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    m = model()
    m.compile(optimizer=SGD(learning_rate=sched), loss="sparse_categorical_crossentropy")
    rec = _LR()
    m.fit(sequences(), classes(), batch_size=4, epochs=2, verbose=0, callbacks=[rec])  # 8 steps
    assert rec.seen == pytest.approx([sched(i) for i in range(8)])
    assert m.optimizer.iterations == 8 and float(m.optimizer.learning_rate) == pytest.approx(sched(8))


class _Custom(schedules.LearningRateSchedule):
    """A user's schedule: registers itself, saves and loads by class name."""

    def __init__(self, base):
        self.base = base

    def __call__(self, step):
        return self.base / (step + 1)

    def get_config(self):
        return {"base": self.base}


def _scheduled(seed=0):
    m = model(seed=seed)
    m.compile(optimizer=Adam(learning_rate=_Custom(0.05), clipnorm=0.5), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    return m


def test_exact_resume_mid_epoch_with_a_schedule(tmp_path):
    xs, y = sequences(24), classes(24)
    full = _scheduled()
    full.fit(xs, y, batch_size=4, epochs=3, verbose=0, seed=3, checkpoint_dir=tmp_path, checkpoint_every=4,
             keep_checkpoints=50)
    files = sorted(tmp_path.glob("ckpt-*.safetensors"))
    mid = [f for f in files if "s000000008-" in f.name]  # step 8 of 18: inside epoch 1 (6 steps an epoch)
    assert mid, [f.name for f in files]
    resumed = _scheduled(seed=5)
    resumed.fit(xs, y, batch_size=4, epochs=3, verbose=0, seed=3, resume_from=mid[0])
    assert resumed.optimizer.iterations == full.optimizer.iterations == 18
    assert_same_weights(weights(resumed), weights(full))
    assert torch.equal(torch.tensor(resumed.compiled.optimizer.param_groups[0]["lr"]),
                       torch.tensor(full.compiled.optimizer.param_groups[0]["lr"]))
    assert np.isclose(resumed.compiled.optimizer.param_groups[0]["lr"], 0.05 / 18)
