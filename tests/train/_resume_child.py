"""A training run for tests/train/test_checkpoint_resume.py, in its own process.

Usage: python _resume_child.py VARIANT CKPT_DIR OUT KILL_AT [resume]   (CKPT_DIR ``-``: no checkpoints)

Trains a small model with dropout, RNG-hungry callbacks (numpy and python generators
change the learning rate), EarlyStopping with best-weight restore, a validation split and ``seed=None``
(the batch-order seed is drawn from torch's generator). With KILL_AT > 0 the process SIGKILLs itself
after that many training steps; with ``resume`` it continues from CKPT_DIR. Writes OUT (safetensors
weights) and OUT.json (history) at the end.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys

import numpy as np
import torch

torch.set_num_threads(1)

from padless import Sequential  # noqa: E402
from padless.layers import GRU, LSTM, Dense, Dropout, Normalization  # noqa: E402
from padless.train.callbacks import Callback, EarlyStopping  # noqa: E402


class Killer(Callback):
    """SIGKILL this process after ``at`` training steps (0: never)."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.steps = 0

    def on_batch_end(self, batch, logs=None) -> None:  # type: ignore[no-untyped-def]
        self.steps += 1
        if self.at and self.steps == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


class Jitter(Callback):
    """Draws from numpy's and python's global generators every step (their state must resume too)."""

    def on_batch_end(self, batch, logs=None) -> None:  # type: ignore[no-untyped-def]
        f = 1.0 + 0.01 * (np.random.rand() - 0.5) + 0.01 * (random.random() - 0.5)
        for g in self.model.compiled.optimizer.param_groups:
            g["lr"] *= f


def main() -> None:
    variant, ckpt, out, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    resume = len(sys.argv) > 5 and sys.argv[5] == "resume"
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((int(t), 3)).astype(np.float32) * 2 + 1 for t in rng.integers(2, 25, 50)]
    y = np.array([int(x[:, 0].mean() > 1) + int(len(x) > 12) for x in xs])
    norm = Normalization()
    norm.adapt(xs)
    model = Sequential([norm, GRU(8, dropout=0.2, return_sequences=True), LSTM(6), Dropout(0.3),
                        Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"], lr=0.01)
    kw = {"tbptt": 5, "batch_size": 4} if variant == "tbptt" else {"batch_size": 8}
    cbs = [Killer(kill_at), Jitter(), EarlyStopping("val_loss", patience=10, restore_best_weights=True)]
    if ckpt != "-":
        kw.update(checkpoint_dir=ckpt, checkpoint_every=3, resume_from=ckpt if resume else None)
    h = model.fit(xs, y, epochs=3, validation_split=0.2, verbose=0, callbacks=cbs, **kw)
    model.save(out)
    with open(out + ".json", "w") as f:
        json.dump({**h.history, **h.throughput}, f)


if __name__ == "__main__":
    main()
