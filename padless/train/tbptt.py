"""Truncated backpropagation through time over ragged data, with slots and exact per-sequence resets.

Owns: :class:`SlotScheduler` (lays the data set into ``B`` persistent slots and cuts every training step's
window of ``K`` steps into *pieces*, one per (slot, sequence) pair) and :func:`tbptt_steps` (turns the
pieces into loop steps: a ragged batch whose rows are the pieces, the state carried - detached - into the
pieces that continue a sequence, zeros for pieces that start one, and the loss on the pieces where a
sequence ends, or on every real step for per-step targets).

A piece that starts a sequence mid-window is simply another row of the ragged batch starting from a zero
state: the per-slot reset is exact by construction, no padding of sequences to a common length and no
manual bookkeeping. Forward outputs and final states equal the full-sequence run; only the gradients are
truncated (at the window boundaries that each sequence crosses).

Does not own: the loop (``padless.train.loop.run_steps``) or the layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from padless.data.collate import collate_values
from padless.errors import ConfigError

__all__ = ["Piece", "Window", "SlotScheduler", "tbptt_steps", "check_tbptt"]


@dataclass(frozen=True)
class Piece:
    """Steps ``[start, start + length)`` of sequence ``seq``, run in ``slot`` during one window."""

    slot: int
    seq: int
    start: int
    length: int
    seq_length: int

    @property
    def continues(self) -> bool:
        """True when the piece picks up a sequence begun in an earlier window (carried state)."""
        return self.start > 0

    @property
    def ends(self) -> bool:
        """True when the sequence ends in this piece (its loss is taken here)."""
        return self.start + self.length == self.seq_length


@dataclass
class Window:
    """One training step: the pieces of every slot, and the slot-steps it occupies."""

    pieces: list[Piece]
    steps: int  # the window's length (<= K)
    slots: int  # B

    @property
    def real_steps(self) -> int:
        return sum(p.length for p in self.pieces)

    @property
    def slot_steps(self) -> int:
        return self.steps * self.slots


@dataclass
class SlotScheduler:
    """Lay sequences into ``batch_size`` slots and cut time into windows of ``tbptt`` steps.

    Every sequence is visited exactly once per epoch, in an order shuffled by ``(seed, epoch)``. When a
    slot's sequence ends, the next one starts in that slot with a zero state: at the next window
    (``start="window"``, the default - every row of a window then starts at its step 0, so the kernels run
    one rectangular block per window) or at once, mid-window (``start="immediate"``: fewer idle
    slot-steps, but every mid-window start adds a kernel call). Idle slot-steps are the waste.

    Example:
        >>> s = SlotScheduler(np.array([5, 2, 3]), batch_size=2, tbptt=4, shuffle=False, start="immediate")
        >>> [[(p.slot, p.seq, p.start, p.length) for p in w.pieces] for w in s]
        [[(0, 0, 0, 4), (1, 1, 0, 2), (1, 2, 0, 2)], [(0, 0, 4, 1), (1, 2, 2, 1)]]
    """

    lengths: np.ndarray
    batch_size: int
    tbptt: int
    shuffle: bool = True
    seed: int = 0
    epoch: int = 0
    start: str = "window"
    _windows: list[Window] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        if isinstance(self.tbptt, bool) or not isinstance(self.tbptt, (int, np.integer)) or self.tbptt <= 0:
            raise ConfigError(f"tbptt must be a positive number of steps; got {self.tbptt!r}")
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be a positive integer; got {self.batch_size!r}")
        if self.start not in ("window", "immediate"):
            raise ConfigError(f"start must be 'window' or 'immediate'; got {self.start!r}")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._windows = None

    def order(self) -> np.ndarray:
        """The epoch's sequence order: shuffled, except that the ``2 x batch_size`` shortest sequences go
        last (in shuffled order), so the slots run dry together instead of one long sequence finishing
        alone at the end of the epoch."""
        n = len(self.lengths)
        if not self.shuffle:
            return np.arange(n)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        k = min(2 * self.batch_size, n)
        last = np.argsort(self.lengths[order], kind="stable")[:k]  # positions (in order) of the k shortest
        tail = np.zeros(n, dtype=bool)
        tail[last] = True
        return np.concatenate([order[~tail], order[tail]])

    def windows(self) -> list[Window]:
        if self._windows is not None:
            return self._windows
        queue = list(self.order()[::-1])  # pop() takes the next sequence
        B, K = self.batch_size, self.tbptt
        cur: list[tuple[int, int] | None] = [None] * B  # (seq, position) per slot
        for b in range(B):
            if queue:
                cur[b] = (int(queue.pop()), 0)
        out: list[Window] = []
        while any(c is not None for c in cur):
            pieces: list[Piece] = []
            used = 0
            for b in range(B):
                room = K
                while room > 0 and cur[b] is not None:
                    seq, pos = cur[b]  # type: ignore[misc]
                    L = int(self.lengths[seq])
                    take = min(room, L - pos)
                    pieces.append(Piece(b, seq, pos, take, L))
                    room -= take
                    if pos + take == L:
                        cur[b] = (int(queue.pop()), 0) if queue else None
                        if self.start == "window":
                            break  # the next sequence starts with the next window
                    else:
                        cur[b] = (seq, pos + take)
                used = max(used, K - room)
            out.append(Window(pieces, used, B))
        self._windows = out
        return out

    def __iter__(self) -> Iterator[Window]:
        return iter(self.windows())

    def __len__(self) -> int:
        return len(self.windows())


def check_tbptt(model: Any) -> None:
    """Refuse models that cannot be trained with truncated BPTT, with the reason."""
    from padless.nn.recurrent import Bidirectional

    for layer in model.layers:
        if isinstance(layer, Bidirectional):
            raise ConfigError(
                f"tbptt cannot train {layer.describe()}: a bidirectional layer's backward pass needs the whole "
                "sequence. Use unidirectional layers with tbptt, or train without tbptt"
            )
        if getattr(layer, "stateful", False):
            raise ConfigError("tbptt manages the state itself: build the model without stateful=True")


class _SlotStates:
    """Carried state per recurrent layer and slot, detached between windows."""

    def __init__(self) -> None:
        self.by_layer: list[list[torch.Tensor]] | None = None  # layer -> state tensors (1, B, H)

    def initial(self, pieces: list[Piece], batch_size: int, sizes: list[list[int]], device: torch.device,
                dtype: torch.dtype) -> list[Any]:
        P = len(pieces)
        cont = [i for i, p in enumerate(pieces) if p.continues]
        slots = [pieces[i].slot for i in cont]
        out = []
        for li, layer_sizes in enumerate(sizes):
            tensors = []
            for k, H in enumerate(layer_sizes):
                t = torch.zeros(1, P, H, device=device, dtype=dtype)
                if cont and self.by_layer is not None:
                    t[:, cont] = self.by_layer[li][k][:, slots]
                tensors.append(t)
            out.append(tensors)
        return out

    def store(self, pieces: list[Piece], states: list[Any], sorted_rows_of_piece: np.ndarray, batch_size: int,
              state_exact: np.ndarray | None = None) -> None:
        # the last piece of each slot that does not end its sequence continues in the next window
        keep = [(i, p.slot) for i, p in enumerate(pieces) if not p.ends]
        if self.by_layer is None:
            self.by_layer = [[torch.zeros(1, batch_size, s.shape[-1], device=s.device, dtype=s.dtype) for s in st]
                             for st in states]
        if not keep:
            return
        rows_np = sorted_rows_of_piece[[i for i, _ in keep]]
        if state_exact is not None and not bool(state_exact[rows_np].all()):
            from padless.errors import StateError

            raise StateError("internal: a continuing TBPTT row has no exact final state; this is a padless bug")
        rows = torch.as_tensor(rows_np, device=states[0][0].device)
        slots = torch.as_tensor([s for _, s in keep], device=states[0][0].device)
        for li, st in enumerate(states):
            for k, s in enumerate(st):
                self.by_layer[li][k][:, slots] = s.detach().index_select(1, rows)


def tbptt_steps(model: Any, xr: Any, targets: Any, scheduler: SlotScheduler, device: torch.device,
                stats: dict[str, int] | None = None) -> Iterator[Any]:
    """Loop steps for truncated BPTT (see the module docstring)."""
    from padless.nn.recurrent import Recurrent
    from padless.train.loop import _CE, Step, _merge_cost

    c = model.compiled
    per_step = model.returns_sequences
    sizes = [[layer.units] * layer._num_states for layer in model.layers if isinstance(layer, Recurrent)]
    carry = _SlotStates()
    offsets = xr.offsets
    dtype = torch.float32
    merge_cost = _merge_cost(model)
    for w in scheduler:
        pieces = w.pieces
        seq = np.array([p.seq for p in pieces], dtype=np.int64)
        start = np.array([p.start for p in pieces], dtype=np.int64)
        length = np.array([p.length for p in pieces], dtype=np.int64)
        # rows that continue into the next window need their exact final state: keep their lengths as
        # segment ends; pieces whose sequence ends here only need outputs, so their segments may merge
        keep = {p.length for p in pieces if not p.ends}
        batch = collate_values(xr.values, offsets[seq] + start, length, merge_cost=merge_cost, device=device,
                               keep=keep)
        if stats is not None:
            stats["slot_steps"] = stats.get("slot_steps", 0) + w.slot_steps
            stats["real_steps"] = stats.get("real_steps", 0) + w.real_steps
        init = carry.initial(pieces, scheduler.batch_size, sizes, device, dtype)
        sorted_pos = batch.unsorted_indices  # piece i sits at sorted row unsorted_indices[i]

        def on_states(states: list[Any], pieces: list[Piece] = pieces, sorted_pos: np.ndarray = sorted_pos,
                      exact: np.ndarray = batch.plan.state_exact) -> None:
            carry.store(pieces, states, sorted_pos, scheduler.batch_size, exact)

        y = None
        select = None
        if targets is not None:
            if per_step:
                ty = targets.values
                yb = collate_values(ty.values, ty.offsets[seq] + start, length, merge_cost=merge_cost, device=device,
                                    keep=keep)
                y = yb.valid_data()
                if c is not None and c.loss_name in _CE and y.shape[-1] == 1:
                    y = y[:, 0].long()
            else:
                ends_sorted = np.array([pieces[k].ends for k in batch.sorted_indices], dtype=bool)
                select = torch.from_numpy(ends_sorted).to(device)
                ends_seq = seq[batch.sorted_indices][ends_sorted]
                y = targets.values.index_select(0, torch.from_numpy(ends_seq)).to(device)
        rows = seq[batch.sorted_indices]
        if not per_step and targets is None:
            select = torch.from_numpy(np.array([pieces[k].ends for k in batch.sorted_indices], dtype=bool)).to(device)
        yield Step(batch, y, select=select, initial_states=init, on_states=on_states, rows=rows, idx=seq)
