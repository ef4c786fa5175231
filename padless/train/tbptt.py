"""Truncated backpropagation through time over ragged data, with slots and exact per-sequence resets.

Owns: :class:`SlotScheduler` (a batch source: lays the data set into ``B`` persistent slots and cuts
every training step's window of ``K`` steps into *pieces*, one per (slot, sequence) pair; sharded by slot
across processes), :class:`SlotStates` (the carried state per slot), :class:`TbpttStepper` and
:func:`tbptt_steps` (windows -> loop steps: a ragged batch whose rows are the pieces, the state carried -
detached - into the pieces that continue a sequence, zeros for pieces that start one, and the loss on the
pieces where a sequence ends, or on every real step for per-step targets), and :func:`check_tbptt`.

A piece that starts a sequence mid-window is simply another row of the ragged batch starting from a zero
state: the per-slot reset is exact by construction, no padding of sequences to a common length and no
manual bookkeeping. Forward outputs and final states equal the full-sequence run; only the gradients are
truncated (at the window boundaries that each sequence crosses).

Does not own: the loop (:mod:`padless.train.trainer`) or the layers.

Example:
    >>> s = SlotScheduler(np.array([5, 2, 3]), batch_size=2, tbptt=4, shuffle=False, start="immediate")
    >>> [[(p.slot, p.seq, p.start, p.length) for p in w.pieces] for w in s]
    [[(0, 0, 0, 4), (1, 1, 0, 2), (1, 2, 0, 2)], [(0, 0, 4, 1), (1, 2, 2, 1)]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch

from padless.data.collate import collate_values
from padless.data.inputs import Targets
from padless.data.ragged import RaggedArray
from padless.errors import ConfigError, StateError
from padless.nn.graph import Graph
from padless.train.steps import Step, merge_cost_for, per_step_targets

__all__ = ["Piece", "Window", "SlotScheduler", "SlotStates", "TbpttStepper", "tbptt_steps", "check_tbptt",
           "shard_windows"]


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
    rank: int = 0
    world_size: int = 1
    position: int = 0
    _windows: list[Window] | None = field(default=None, repr=False)
    _resume: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        if isinstance(self.tbptt, bool) or not isinstance(self.tbptt, (int, np.integer)) or self.tbptt <= 0:
            raise ConfigError(f"tbptt must be a positive number of steps; got {self.tbptt!r}")
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be a positive integer; got {self.batch_size!r}")
        if self.start not in ("window", "immediate"):
            raise ConfigError(f"start must be 'window' or 'immediate'; got {self.start!r}")
        if self.world_size < 1 or not 0 <= self.rank < self.world_size or self.batch_size % self.world_size:
            raise ConfigError(f"SlotScheduler: {self.batch_size} slots cannot be split over {self.world_size} "
                              f"processes (rank {self.rank}); give world_size x per-process slots")

    @property
    def local_slots(self) -> int:
        """Slots this rank runs (``batch_size // world_size``)."""
        return self.batch_size // self.world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.position = self._resume = 0
        self._windows = None

    def state_dict(self) -> dict[str, Any]:
        """``{"kind", "epoch", "seed", "position", "num_batches"}`` (the batch-source protocol)."""
        return {"kind": type(self).__name__, "epoch": self.epoch, "seed": self.seed, "position": self.position,
                "num_batches": len(self)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume mid-epoch: the next ``iter()`` yields the windows after ``state["position"]``.

        Raises:
            ConfigError: another kind of source, or another number of windows (other data or settings).
        """
        if state.get("kind", type(self).__name__) != type(self).__name__:
            raise ConfigError(f"source state was saved by a {state.get('kind')}, not a {type(self).__name__}")
        self.set_epoch(int(state["epoch"]))
        self.seed = int(state.get("seed", self.seed))
        self._windows = None
        if "num_batches" in state and int(state["num_batches"]) != len(self):
            raise ConfigError(f"the saved epoch has {state['num_batches']} windows but this one has {len(self)}; "
                              "resume with the same data and settings")
        self.position = self._resume = int(state.get("position", 0))

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

    def local_windows(self) -> list[Window]:
        """This rank's share of every window (all of them in one process)."""
        w = self.windows()
        return w if self.world_size == 1 else shard_windows(w, self.rank, self.world_size, self.local_slots)

    def __iter__(self) -> Iterator[Window]:
        windows = self.local_windows()
        start, self._resume = self._resume, 0
        self.position = start
        for k in range(start, len(windows)):
            self.position = k + 1
            yield windows[k]

    def __len__(self) -> int:
        return len(self.windows())


def shard_windows(windows: list[Window], rank: int, world_size: int, local_slots: int) -> list[Window]:
    """This rank's share of every TBPTT window: the pieces of slots ``rank*B .. rank*B + B - 1``.

    Returns one window per global window (same count on every rank), pieces re-numbered to local slots; a
    window may be empty (all of this rank's slots idle).

    Example:
        >>> s = SlotScheduler(np.array([5, 2, 3]), batch_size=2, tbptt=4, shuffle=False, start="immediate")
        >>> [[(p.slot, p.seq) for p in w.pieces] for w in shard_windows(s.windows(), 1, 2, 1)]
        [[(0, 1), (0, 2)], [(0, 2)]]
    """
    lo, hi = rank * local_slots, (rank + 1) * local_slots
    out = []
    for w in windows:
        mine = [Piece(p.slot - lo, p.seq, p.start, p.length, p.seq_length) for p in w.pieces if lo <= p.slot < hi]
        out.append(Window(mine, w.steps, local_slots))
    return out


def check_tbptt(model: Graph) -> None:
    """Refuse models that cannot be trained with truncated BPTT, with the reason.

    Raises:
        ConfigError: a layer whose output needs the whole sequence, or a stateful model.
    """
    layer = model.non_causal_layer()
    if layer is not None:
        raise ConfigError(f"tbptt cannot train {layer.describe()}: {layer.noncausal_reason()}. Use causal "
                          "(unidirectional) layers with tbptt, or train without tbptt")
    if model.stateful:
        raise ConfigError("tbptt manages the state itself: build the model without stateful=True")


class SlotStates:
    """Carried state per state layer and slot, detached between windows (``by_layer[layer][k]`` (1, B, H))."""

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
            raise StateError("internal: a continuing TBPTT row has no exact final state; this is a padless bug")
        rows = torch.as_tensor(rows_np, device=states[0][0].device)
        slots = torch.as_tensor([s for _, s in keep], device=states[0][0].device)
        for li, st in enumerate(states):
            for k, s in enumerate(st):
                self.by_layer[li][k][:, slots] = s.detach().index_select(1, rows)


class TbpttStepper:
    """TBPTT windows -> loop steps, with the carried state kept in one :class:`SlotStates`.

    Args:
        model: the model (state sizes, per-step or per-sequence head, exact-state needs).
        xr: the inputs.
        targets: the targets, or None (predict).
        slots: slots of this process (the windows' ``slots``).
        device: where batches go.
        merge_cost: see :func:`padless.train.steps.merge_cost_for`.
        integer: per-step targets are class ids.
    """

    def __init__(self, model: Graph, xr: RaggedArray, targets: Targets | None, slots: int, device: torch.device | str,
                 merge_cost: float | str = "auto", integer: bool = False) -> None:
        self.xr, self.targets, self.slots, self.device = xr, targets, int(slots), torch.device(device)
        self.per_step = model.returns_sequences
        self.sizes = [list(layer.state_sizes) for layer in model.state_layers]
        self.merge_cost = merge_cost_for(model, merge_cost, self.device)
        self.integer = integer
        self.carry = SlotStates()

    def carry_tensors(self) -> dict[str, torch.Tensor]:
        """The carried state as ``<layer>/<k>`` tensors (for checkpoints)."""
        if self.carry.by_layer is None:
            return {}
        return {f"{li}/{k}": s.detach().cpu().contiguous() for li, st in enumerate(self.carry.by_layer)
                for k, s in enumerate(st)}

    def load_carry(self, tensors: dict[str, torch.Tensor], device: torch.device) -> None:
        """Inverse of :meth:`carry_tensors`."""
        if not tensors:
            return
        layers: dict[int, dict[int, torch.Tensor]] = {}
        for key, v in tensors.items():
            li, ki = (int(p) for p in key.split("/"))
            layers.setdefault(li, {})[ki] = v.to(device)
        self.carry.by_layer = [[layers[li][k] for k in sorted(layers[li])] for li in sorted(layers)]

    def _placeholder(self, w: Window) -> Step:
        """One step of sequence 0 with no targets: a rank whose slots are all idle still takes part in the
        gradient all-reduce (with zero gradients)."""
        batch = collate_values(self.xr.values, np.asarray(self.xr.offsets[:1], dtype=np.int64),
                               np.ones(1, dtype=np.int64), merge_cost=0.0, device=self.device)
        return Step(batch, None, rows=np.zeros(1, dtype=np.int64), idx=np.zeros(1, dtype=np.int64),
                    slot_steps=w.slot_steps)

    def steps(self, windows: Iterable[Window]) -> Iterator[Step]:
        xr, offsets = self.xr, self.xr.offsets
        for w in windows:
            pieces = w.pieces
            if not pieces:
                yield self._placeholder(w)
                continue
            seq = np.array([p.seq for p in pieces], dtype=np.int64)
            start = np.array([p.start for p in pieces], dtype=np.int64)
            length = np.array([p.length for p in pieces], dtype=np.int64)
            # rows that continue into the next window need their exact final state: keep their lengths as
            # segment ends; pieces whose sequence ends here only need outputs, so their segments may merge
            keep = {p.length for p in pieces if not p.ends}
            batch = collate_values(xr.values, offsets[seq] + start, length, merge_cost=self.merge_cost,
                                   device=self.device, keep=keep)
            init = self.carry.initial(pieces, self.slots, self.sizes, self.device, torch.float32)
            sorted_pos = batch.unsorted_indices  # piece i sits at sorted row unsorted_indices[i]

            def on_states(states: list[Any], pieces: list[Piece] = pieces, sorted_pos: np.ndarray = sorted_pos,
                          exact: np.ndarray = batch.plan.state_exact) -> None:
                self.carry.store(pieces, states, sorted_pos, self.slots, exact)

            ends_sorted = np.array([pieces[k].ends for k in batch.sorted_indices], dtype=bool)
            y = select = None
            if not self.per_step:
                select = torch.from_numpy(ends_sorted).to(self.device)
            if self.targets is not None:
                if self.per_step:
                    ty = self.targets.values
                    yb = collate_values(ty.values, ty.offsets[seq] + start, length, merge_cost=self.merge_cost,
                                        device=self.device, keep=keep)
                    y = per_step_targets(yb.valid_data(), self.integer)
                else:
                    ends_seq = seq[batch.sorted_indices][ends_sorted]
                    y = self.targets.values.index_select(0, torch.from_numpy(ends_seq)).to(self.device)
            rows = seq[batch.sorted_indices]
            yield Step(batch, y, select=select, initial_states=init, on_states=on_states, rows=rows, idx=seq,
                       slot_steps=w.slot_steps, slot_real_steps=w.real_steps)


def tbptt_steps(model: Graph, xr: RaggedArray, targets: Targets | None, scheduler: SlotScheduler,
                device: torch.device | str, integer: bool | None = None,
                merge_cost: float | str = "auto") -> Iterator[Step]:
    """Loop steps for truncated BPTT over ``scheduler``'s windows (see the module docstring).

    ``integer`` says whether one-column per-step targets are class ids; None asks the model's compiled loss
    (a compiled ``padless.Sequential``), else False.

    Example:
        >>> from padless.nn import GRU, LayerStack
        >>> xr = RaggedArray.from_list([np.ones((5, 1)), np.ones((2, 1))])
        >>> s = SlotScheduler(xr.lengths, batch_size=2, tbptt=3, shuffle=False)
        >>> [st.batch.plan.lengths.tolist() for st in tbptt_steps(LayerStack([GRU(2, input_size=1)]), xr, None, s, "cpu")]
        [[3, 2], [2]]
    """
    if integer is None:
        integer = bool(getattr(getattr(model, "compiled", None), "integer_labels", False))
    stepper = TbpttStepper(model, xr, targets, scheduler.local_slots, device, merge_cost, integer)
    return stepper.steps(scheduler)
