"""The typed state of a training run: what an epoch has summed so far, and what a checkpoint stores.

Owns: :class:`EpochTotals` (loss and metric sums, item count, real/computed steps, TBPTT slot-steps,
seconds and steps done: everything an interrupted or distributed epoch needs to continue or be reduced)
and :class:`RunState` (epoch, position, global step, seed, batch-source state, the partial epoch, callback
states, the fingerprint of data and settings, process count). Both convert to and from plain JSON dicts.

Does not own: writing files (:mod:`padless.train.checkpoint`), the loop (:mod:`padless.train.trainer`).

Example:
    >>> t = EpochTotals.zero(["loss"]); t.add({"loss": [2.0]}, 4.0); t.logs({"loss": lambda s, n: s[0] / n})
    {'loss': 0.5}
    >>> RunState.from_dict(RunState(epoch=1, seed=7).to_dict()).seed
    7
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from padless.errors import CheckpointError

__all__ = ["EpochTotals", "RunState"]


@dataclass
class EpochTotals:
    """Running sums of one epoch (or evaluation pass)."""

    sums: dict[str, np.ndarray] = field(default_factory=dict)
    count: float = 0.0
    real_steps: int = 0
    computed_steps: int = 0
    slot_steps: int = 0
    slot_real_steps: int = 0
    seconds: float = 0.0
    steps_done: int = 0

    @classmethod
    def zero(cls, keys: Sequence[str], sizes: Mapping[str, int] | None = None) -> "EpochTotals":
        """All sums zero; ``sizes`` gives vector lengths (default 1)."""
        sizes = dict(sizes or {})
        return cls(sums={k: np.zeros(sizes.get(k, 1), np.float64) for k in keys})

    def add(self, sums: Mapping[str, Any], count: float) -> None:
        """Add one batch's sums (vectors or scalars) and item count."""
        for k, v in sums.items():
            arr = np.asarray(v, dtype=np.float64).reshape(-1)
            self.sums[k] = self.sums[k] + arr if k in self.sums else arr.copy()
        self.count += float(count)

    def logs(self, results: Mapping[str, Callable[[np.ndarray, float], float]]) -> dict[str, float]:
        """The means (or each metric's result) of the sums so far."""
        return {k: float(results[k](self.sums[k], self.count)) for k in results if k in self.sums}

    def vector(self, keys: Sequence[str]) -> list[float]:
        """Every number as one flat list, in ``keys`` order, for an all-reduce (see :meth:`from_vector`)."""
        out: list[float] = []
        for k in keys:
            out.extend(self.sums[k].tolist())
        out += [self.count, self.real_steps, self.computed_steps, self.slot_steps, self.slot_real_steps]
        return out

    def from_vector(self, keys: Sequence[str], vec: Sequence[float]) -> "EpochTotals":
        """A copy with the numbers of a (reduced) :meth:`vector`; seconds and steps done kept."""
        sums, i = {}, 0
        for k in keys:
            n = self.sums[k].size
            sums[k] = np.asarray(vec[i : i + n], dtype=np.float64)
            i += n
        c, r, cs, ss, sr = vec[i : i + 5]
        return EpochTotals(sums, float(c), int(r), int(cs), int(ss), int(sr), self.seconds, self.steps_done)

    @property
    def padding_waste(self) -> float:
        """Padded (or idle TBPTT slot) steps / computed steps."""
        if self.slot_steps:
            return 1.0 - self.slot_real_steps / max(self.slot_steps, 1)
        return 1.0 - self.real_steps / max(self.computed_steps, 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sums"] = {k: v.tolist() for k, v in self.sums.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EpochTotals":
        try:
            sums = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in dict(d.get("sums", {})).items()}
            return cls(sums, float(d.get("count", 0.0)), int(d.get("real_steps", 0)), int(d.get("computed_steps", 0)),
                       int(d.get("slot_steps", 0)), int(d.get("slot_real_steps", 0)), float(d.get("seconds", 0.0)),
                       int(d.get("steps_done", 0)))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"the checkpoint's partial-epoch sums are damaged: {e}") from None


@dataclass
class RunState:
    """Where a training run stands (stored in every checkpoint).

    Attributes:
        epoch: the epoch in progress (or the next one when ``position`` is 0).
        position: steps already done in ``epoch``.
        global_step: training steps done since the run started.
        epochs: the run's planned epoch count.
        seed: the batch-order seed.
        stop_training: a callback asked to stop.
        source: the batch source's ``state_dict`` (None at an epoch boundary).
        partial: the sums of the epoch in progress (None at an epoch boundary).
        callbacks: every callback's saved state.
        fingerprint: data and settings that must match to resume.
        world_size: processes of the run.
    """

    epoch: int = 0
    position: int = 0
    global_step: int = 0
    epochs: int = 0
    seed: int = 0
    stop_training: bool = False
    source: dict[str, Any] | None = None
    partial: EpochTotals | None = None
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    world_size: int = 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["partial"] = None if self.partial is None else self.partial.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunState":
        """Inverse of :meth:`to_dict`.

        Raises:
            CheckpointError: missing or malformed entries.
        """
        try:
            partial = d.get("partial")
            return cls(epoch=int(d["epoch"]), position=int(d.get("position", 0)),
                       global_step=int(d.get("global_step", 0)), epochs=int(d.get("epochs", 0)),
                       seed=int(d.get("seed", 0)), stop_training=bool(d.get("stop_training", False)),
                       source=d.get("source", d.get("sampler")),
                       partial=None if partial is None else EpochTotals.from_dict(partial),
                       callbacks=list(d.get("callbacks", [])), fingerprint=dict(d.get("fingerprint", {})),
                       world_size=int(d.get("world_size", 1)))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"the checkpoint's training state is damaged: {e}") from None
