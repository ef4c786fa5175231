"""Choosing a classifier recipe for data it has never seen: by validation accuracy, within a time budget.

Owns: :func:`stratified_split` (a validation part carved from the *training* data, every class in
proportion), :func:`train_recipe` (build, seed and train one recipe as ``padless train`` does),
:func:`select_recipe` (train every candidate on the rest within its share of the budget,
score it on the validation part, pick the best - the test split is never looked at) and :class:`Selection`
(what was tried, the scores, the time, and why the winner won; saved with the model and printed by
``padless train``). Does not own: the recipes (:mod:`padless.recipes.classify`) or the final training.

Example:
    >>> import numpy as np
    >>> tr, va = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]), 0.5, seed=0)
    >>> sorted(np.bincount(np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])[va]).tolist())
    [2, 3]
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from padless.data.ragged import RaggedArray
from padless.errors import ConfigError
from padless.recipes.classify import recipe
from padless.train.callbacks import Callback

__all__ = ["Selection", "stratified_split", "train_recipe", "Trained", "select_recipe", "AUTO_CANDIDATES",
           "DEFAULT_BUDGET_S"]

AUTO_CANDIDATES = ("lstm-fcn", "fcn-zl-dil", "bigru")
"""The recipes ``padless train --model auto`` (the default) chooses among."""

DEFAULT_BUDGET_S = 300.0
"""Seconds the choice may take in all (each candidate gets an equal share; a slow one stops early)."""


@dataclass
class Selection:
    """The outcome of :func:`select_recipe`.

    Attributes:
        chosen: the winning recipe's name.
        scores: validation accuracy of every candidate (at its last epoch).
        epochs: epochs each candidate trained before its share of the budget ran out.
        seconds: each candidate's training time.
        budget_s: the whole budget; val_fraction: the share of the training data held out.
        reason: one line for people.
    """

    chosen: str
    scores: dict[str, float] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    budget_s: float = DEFAULT_BUDGET_S
    val_fraction: float = 0.2
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stratified_split(y: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train indices, validation indices)``: about ``fraction`` of every class held out (at least one of a
    class with two or more members).

    Raises:
        ConfigError: a fraction outside (0, 1), or too few sequences to hold any out.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"the validation fraction must be in (0, 1); got {fraction}")
    y = np.asarray(y)
    rng = np.random.default_rng([seed, 7])
    val = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        k = int(round(fraction * members.size))
        if members.size >= 2:
            k = min(max(k, 1), members.size - 1)
        val.append(members[:k])
    va = np.sort(np.concatenate(val)).astype(np.int64)
    if va.size == 0 or va.size == y.size:
        raise ConfigError(f"{y.size} sequences are too few to hold out a validation part; pass --model NAME")
    return np.setdiff1d(np.arange(y.size), va), va


@dataclass
class Trained:
    """What :func:`train_recipe` returns: the trained model, the training seconds and the epochs run."""

    model: Any
    seconds: float
    epochs: int


def train_recipe(name: str, x: RaggedArray, y: np.ndarray, num_classes: int | None = None, seed: int = 0,
                 epochs: int | None = None, budget_s: float | None = None) -> Trained:
    """Build recipe ``name`` (normalisation adapted on ``x``), seed it and train it on ``(x, y)``.

    Args:
        name: a recipe name (:data:`~padless.recipes.classify.RECIPES`).
        x: training sequences; y: their class ids.
        num_classes: classes (default ``max(y) + 1``).
        seed: seeds the weights and the batch order.
        epochs: epochs (default: the recipe's; the learning-rate schedule follows them).
        budget_s: stop at the first epoch end after this many seconds (default: no limit).

    Example:
        >>> import numpy as np
        >>> x = RaggedArray.from_list([np.ones((n, 1), np.float32) * (n % 2) for n in range(3, 9)])
        >>> t = train_recipe("gru", x, np.arange(6) % 2, epochs=1)
        >>> t.epochs, t.model.output_shape
        (1, (None, 2))
    """
    r = recipe(name)
    y = np.asarray(y)
    n_epochs = int(epochs if epochs is not None else r.fit["epochs"])
    torch.manual_seed(seed)
    model = r.build(x.num_features, int(num_classes if num_classes is not None else y.max() + 1), x)
    deadline = _Deadline(float("inf") if budget_s is None else budget_s)
    t0 = time.perf_counter()
    model.fit(x, y, epochs=n_epochs, batch_size=r.fit["batch_size"], verbose=0, seed=seed,
              callbacks=r.callbacks(n_epochs) + [deadline], distributed=False)
    return Trained(model, time.perf_counter() - t0, deadline.epochs_done)


class _Deadline(Callback):
    """Stop training once ``seconds`` have passed (checked at every epoch end)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.start = time.perf_counter()
        self.epochs_done = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.epochs_done = epoch + 1
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


def select_recipe(x: RaggedArray, y: np.ndarray, candidates: Sequence[str] = AUTO_CANDIDATES,
                  budget_s: float = DEFAULT_BUDGET_S, seed: int = 0, val_fraction: float = 0.2,
                  epochs: int | None = None) -> Selection:
    """Train each candidate on the training data minus a stratified validation part; pick the best.

    Args:
        x: training sequences; y: their class ids.
        candidates: recipe names.
        budget_s: seconds for all candidates together (equal shares; a candidate stops at its share).
        seed: seed of the split and of the weights.
        val_fraction: share of the training data held out.
        epochs: epochs per candidate (default: each recipe's own).

    Returns:
        The :class:`Selection` (ties go to the earlier candidate).
    """
    y = np.asarray(y)
    tr, va = stratified_split(y, val_fraction, seed)
    xtr, ytr, xva, yva = x.take(tr), y[tr], x.take(va), y[va]
    K = int(y.max()) + 1
    sel = Selection(chosen=candidates[0], budget_s=float(budget_s), val_fraction=float(val_fraction))
    share = float(budget_s) / max(len(candidates), 1)
    for name in candidates:
        t = train_recipe(name, xtr, ytr, K, seed=seed, epochs=epochs, budget_s=share)
        sel.seconds[name], sel.epochs[name] = t.seconds, t.epochs
        sel.scores[name] = float(t.model.evaluate(xva, yva, verbose=0, return_dict=True, distributed=False)["accuracy"])
    best = max(candidates, key=lambda n: (sel.scores[n], -list(candidates).index(n)))
    sel.chosen = best
    others = ", ".join(f"{n} {sel.scores[n]:.3f}" for n in candidates if n != best)
    sel.reason = (f"highest validation accuracy ({sel.scores[best]:.3f}; {others}) on {va.size} of {y.size} training "
                  f"sequences held out, {sum(sel.seconds.values()):.0f} s of a {budget_s:.0f} s budget")
    return sel
