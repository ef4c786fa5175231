"""Exact resume with Keras callbacks: ReduceLROnPlateau's state and the reduced rate, CSVLogger's file, and
BackupAndRestore (a crashed run resumed from its backup ends bitwise where an uninterrupted run ends)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from padless import ConfigError
from padless.callbacks import BackupAndRestore, Callback, CSVLogger, ReduceLROnPlateau
from padless.optimizers import Adam

from _kit import assert_same_weights, classes, model, sequences, weights

XS, Y = sequences(24), classes(24)


class Crash(Callback):
    """Raises after ``at`` training steps when armed (stands for a preempted machine)."""

    def __init__(self, at=None):
        self.at = at
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.at is not None and self.steps == self.at:
            raise KeyboardInterrupt("preempted")


def _model(seed=0):
    m = model(seed=seed)
    m.compile(optimizer=Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _plateau():
    # never improves after the first epoch (min_delta): the rate halves at the end of epochs 1 and 3 (cooldown 2)
    return ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, cooldown=2, min_delta=10.0)


def test_reduce_lr_on_plateau_resumes_exactly(tmp_path):
    full, cb = _model(), _plateau()
    h = full.fit(XS, Y, batch_size=4, epochs=5, seed=3, verbose=0, callbacks=[cb], checkpoint_dir=tmp_path / "ck",
                 checkpoint_every=4, keep_checkpoints=100)
    assert h.history["learning_rate"] == pytest.approx([0.02, 0.02, 0.01, 0.01, 0.005])
    for name in ("ckpt-s000000016-e00002.safetensors", "ckpt-s000000018-e00003.safetensors"):  # mid-epoch, boundary
        m, cb2 = _model(seed=9), _plateau()
        m.fit(XS, Y, batch_size=4, epochs=5, seed=3, verbose=0, callbacks=[cb2], resume_from=tmp_path / "ck" / name)
        assert_same_weights(weights(m), weights(full))
        assert float(m.optimizer.learning_rate) == float(full.optimizer.learning_rate) == pytest.approx(0.005)
        assert (cb2.wait, cb2.cooldown_counter, cb2.best) == (cb.wait, cb.cooldown_counter, cb.best)


def test_csv_logger_continues_its_file_on_resume(tmp_path):
    f = tmp_path / "log.csv"
    full = _model()
    full.fit(XS, Y, batch_size=4, epochs=3, seed=3, verbose=0, callbacks=[CSVLogger(f)],
             checkpoint_dir=tmp_path / "ck", checkpoint_every=4, keep_checkpoints=100)
    expected = f.read_text()
    assert len(expected.splitlines()) == 4
    for name in ("ckpt-s000000008-e00001.safetensors", "ckpt-s000000012-e00002.safetensors"):
        m = _model(seed=9)  # the file still holds every row of the finished run: resuming cuts and rewrites
        m.fit(XS, Y, batch_size=4, epochs=3, seed=3, verbose=0, callbacks=[CSVLogger(f)],
              resume_from=tmp_path / "ck" / name)
        assert f.read_text() == expected


@pytest.mark.parametrize("save_freq", ["epoch", 5])
def test_backup_and_restore_resumes_a_crashed_run_exactly(tmp_path, save_freq):
    ref = _model()
    hr = ref.fit(XS, Y, batch_size=4, epochs=3, seed=3, verbose=0, callbacks=[Crash(), _plateau()])
    backup = tmp_path / "backup"
    crashed = _model()
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(XS, Y, batch_size=4, epochs=3, seed=3, verbose=0,
                    callbacks=[Crash(at=16), _plateau(), BackupAndRestore(backup, save_freq=save_freq)])
    assert (backup / "latest.json").exists()
    again = _model(seed=9)  # the same script, run again: it resumes from the backup
    h = again.fit(XS, Y, batch_size=4, epochs=3, seed=3, verbose=0,
                  callbacks=[Crash(), _plateau(), BackupAndRestore(backup, save_freq=save_freq)])
    assert_same_weights(weights(again), weights(ref))
    # padless' History continues across the resume: the whole run's figures (Keras: only the epochs after it)
    assert h.epoch == [0, 1, 2] and h.history == hr.history
    assert not backup.exists()  # deleted after the run finished (delete_checkpoint=True)


def test_backup_and_restore_options(tmp_path):
    m = _model()
    keep = tmp_path / "keep"
    m.fit(XS, Y, batch_size=8, epochs=1, verbose=0, callbacks=[BackupAndRestore(keep, delete_checkpoint=False)])
    assert (keep / "latest.json").exists()
    before = weights(m)
    m.fit(XS, Y, batch_size=8, epochs=1, verbose=0, callbacks=[BackupAndRestore(keep, delete_checkpoint=False)])
    assert_same_weights(weights(m), before)  # the backup says the run is complete: nothing left to do, as Keras
    with pytest.raises(ConfigError, match="BackupAndRestore sets fit's checkpoint_dir"):
        m.fit(XS, Y, verbose=0, callbacks=[BackupAndRestore(tmp_path / "b")], checkpoint_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match="save_freq"):
        BackupAndRestore(tmp_path, save_freq="batch")
    assert Path(keep).is_dir() and not np.isnan(m.evaluate(XS, Y, verbose=0)[0])
