"""Streaming inference: feed live sequences chunk by chunk, many streams at once.

Owns: :class:`Stream`. Every live stream owns a *slot*: one row of a preallocated state table per
state-carrying layer (``(capacity, H)`` tensors that grow by doubling), so a call gathers the slots of the
streams it feeds, runs their chunks as one ragged batch (exact, no padding; one kernel call per layer with
the packed engine) and writes the final states back - no per-stream Python objects. The per-step outputs
and the final prediction equal one ``predict`` on the whole sequence. A stream is reset on its own
(:meth:`Stream.end`) when its sequence ends - other streams are untouched.

This is the documented way to stream with padless (the stateful Keras layers are for training on
consecutive chunks with a fixed batch). Does not own: the layers or the model.

Example:
    >>> import numpy as np
    >>> from padless import Sequential
    >>> from padless.layers import LSTM, Dense
    >>> m = Sequential([LSTM(4, input_shape=(None, 2)), Dense(1)])
    >>> s = Stream(m)
    >>> out = s.feed_many({"a": np.ones((3, 2)), "b": np.ones((1, 2))})
    >>> sorted(out), s.active
    (['a', 'b'], ['a', 'b'])
"""

from __future__ import annotations

from typing import Any, Hashable, Mapping

import numpy as np
import torch

from padless.data.collate import RaggedBatch, collate_values
from padless.data.plan import make_plan
from padless.errors import ConfigError, DataError
from padless.nn.graph import Graph

__all__ = ["Stream"]


class Stream:
    """Chunk-by-chunk inference for one or many live sequences.

    Args:
        model: a built model (:class:`~padless.nn.graph.Graph`, e.g. ``padless.Sequential``) whose layers
            are all causal (unidirectional recurrent layers, per-step layers, causal convolutions).
        capacity: initial number of slots (the table grows as streams arrive).

    Example:
        >>> import numpy as np
        >>> from padless import Sequential
        >>> from padless.layers import GRU, Dense
        >>> m = Sequential([GRU(4, input_shape=(None, 2)), Dense(3, activation="softmax")])
        >>> x = np.random.rand(7, 2).astype("float32")
        >>> s = Stream(m)
        >>> _ = s.feed("a", x[:3]); last = s.feed("a", x[3:])
        >>> bool(np.allclose(last, m.predict([x], verbose=0)[0], atol=1e-5))
        True
    """

    def __init__(self, model: Graph, capacity: int = 64) -> None:
        if not isinstance(model, Graph):
            raise ConfigError(f"Stream takes a padless model; got {type(model).__name__}")
        layer = model.non_causal_layer()
        if layer is not None:
            raise ConfigError(f"{layer.describe()} cannot stream: {layer.noncausal_reason()}. Use predict on complete "
                              "sequences, or a model of causal layers")
        self.model = model
        self.per_step = bool(model.returns_sequences)
        self.capacity = max(int(capacity), 1)
        self._slot: dict[Hashable, int] = {}
        self._free: list[int] = []
        self._tables: list[list[torch.Tensor]] | None = None  # layer -> state k -> (capacity, H)

    @property
    def active(self) -> list[Hashable]:
        """Ids of the streams that carry state."""
        return list(self._slot)

    def end(self, stream_id: Hashable) -> None:
        """Forget a stream's state (its sequence ended); the id may start a new sequence later."""
        slot = self._slot.pop(stream_id, None)
        if slot is not None:
            self._free.append(slot)
            if self._tables is not None:
                for st in self._tables:
                    for t in st:
                        t[slot].zero_()

    def reset(self) -> None:
        """Forget every stream."""
        for k in list(self._slot):
            self.end(k)

    def feed(self, stream_id: Hashable, chunk: Any) -> np.ndarray:
        """Feed one chunk (T, F) of one stream; see :meth:`feed_many`."""
        return self.feed_many({stream_id: chunk})[stream_id]

    # ------------------------------------------------------------------ slots
    def _tables_for(self, device: torch.device) -> list[list[torch.Tensor]]:
        if self._tables is None:
            self._tables = [[torch.zeros(self.capacity, H, device=device) for H in layer.state_sizes]
                            for layer in self.model.state_layers]
        return self._tables

    def _slots(self, ids: list[Hashable], device: torch.device) -> torch.Tensor:
        tables = self._tables_for(device)
        out = np.empty(len(ids), dtype=np.int64)
        for i, k in enumerate(ids):
            s = self._slot.get(k)
            if s is None:
                s = self._free.pop() if self._free else len(self._slot)
                if s >= self.capacity:  # grow every table by doubling
                    new = max(2 * self.capacity, s + 1)
                    for st in tables:
                        for j, t in enumerate(st):
                            st[j] = torch.cat([t, t.new_zeros((new - self.capacity, t.shape[1]))], 0)
                    self.capacity = new
                self._slot[k] = s
            out[i] = s
        return torch.from_numpy(out).to(device)

    # ------------------------------------------------------------------ feeding
    @staticmethod
    def _chunks(chunks: Mapping[Hashable, Any], ids: list[Hashable]) -> tuple[np.ndarray, np.ndarray]:
        """``(values (sum T, F) float32, lengths (N,))`` of the chunks, checked (one line naming the stream)."""
        arrays, lengths = [], np.empty(len(ids), dtype=np.int64)
        for i, k in enumerate(ids):
            a = chunks[k]
            a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
            if a.ndim == 1:
                a = a[:, None]
            if a.ndim != 2 or a.shape[0] == 0:
                raise DataError(f"stream {k!r}: a chunk must be a non-empty (steps, features) array; got shape {a.shape}")
            arrays.append(a)
            lengths[i] = a.shape[0]
        try:
            values = np.concatenate(arrays, 0).astype(np.float32, copy=False)  # (sum T, F)
        except ValueError:
            F = arrays[0].shape[1]
            k = next(k for k, a in zip(ids, arrays) if a.shape[1] != F)
            raise DataError(f"stream {k!r}: the chunk has {chunks[k].shape[-1]} features, the others {F}") from None
        if not np.isfinite(values).all():
            starts = np.concatenate([[0], np.cumsum(lengths)])
            bad = int(np.flatnonzero(~np.isfinite(values).all(1))[0])
            k = ids[int(np.searchsorted(starts, bad, side="right") - 1)]
            raise DataError(f"stream {k!r}: the chunk holds NaN or infinite values")
        return values, lengths

    @torch.no_grad()
    def feed_many(self, chunks: Mapping[Hashable, Any]) -> dict[Hashable, np.ndarray]:
        """Feed the next chunk of several streams in one ragged batch.

        Args:
            chunks: stream id -> (T_i, F) array (T_i >= 1; chunk lengths may differ).

        Returns:
            stream id -> per-step outputs (T_i, out) for a per-step model, or the output after the chunk's
            last step (out,) for a per-sequence model (equal to ``predict`` on everything fed so far).
        """
        if not chunks:
            return {}
        ids = list(chunks)
        values, lengths = self._chunks(chunks, ids)
        model = self.model
        model.build(int(values.shape[1]))
        model.eval()
        device = next(iter(model.parameters()), torch.zeros(0)).device
        x = torch.from_numpy(values).to(device)
        if bool((lengths == 1).all()):  # one step per stream: the batch is the rows as they come
            n = len(ids)
            order = np.arange(n, dtype=np.int64)
            batch = RaggedBatch(x, make_plan(lengths), order, order)
        else:
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            batch = collate_values(x, starts, lengths, merge_cost=0.0)  # chunks laid end to end in x
        slots = self._slots(ids, device)
        tables = self._tables_for(device)
        init = [[t.index_select(0, slots) for t in st] for st in tables]  # (N, H) in batch order
        out, states = model.run_states(batch, False, init, want_states=True)
        for st_table, st in zip(tables, states):
            for t, s in zip(st_table, st):
                t.index_copy_(0, slots, batch.unsort(s[0]))  # (N, H) back to each stream's slot
        if self.per_step:
            pieces = out.to_list()  # batch order
            return {k: p.cpu().numpy() for k, p in zip(ids, pieces)}
        rows = batch.unsort(out).cpu().numpy()
        return {k: rows[i] for i, k in enumerate(ids)}

