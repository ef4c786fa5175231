"""Streaming inference: feed live sequences chunk by chunk, many streams at once.

Owns: :class:`Stream`. Each stream id keeps the state of every recurrent layer between calls; a call
runs the chunks of several streams as one ragged batch (exact segments, no padding), so the per-step
outputs and the final prediction equal one ``predict`` on the whole sequence. A stream is reset on its
own (:meth:`Stream.end`) when its sequence ends - other streams are untouched.

This is the documented way to stream with padless (the stateful Keras layers are for training on
consecutive chunks with a fixed batch). Does not own: the layers or the model.
"""

from __future__ import annotations

from typing import Any, Hashable, Mapping

import numpy as np
import torch

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError, DataError
from padless.nn.graph import Graph

__all__ = ["Stream"]


class Stream:
    """Chunk-by-chunk inference for one or many live sequences.

    Args:
        model: a built model (:class:`~padless.nn.graph.Graph`, e.g. ``padless.Sequential``) whose layers
            are all causal (unidirectional recurrent layers, per-step layers).

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

    def __init__(self, model: Graph) -> None:
        if not isinstance(model, Graph):
            raise ConfigError(f"Stream takes a padless model; got {type(model).__name__}")
        layer = model.non_causal_layer()
        if layer is not None:
            raise ConfigError(f"{layer.describe()} cannot stream: {layer.noncausal_reason()}. Use predict on complete "
                              "sequences, or a model of causal layers")
        self.model = model
        self._recurrent = model.state_layers
        self._states: dict[Hashable, list[tuple[torch.Tensor, ...]]] = {}
        self.per_step = bool(model.returns_sequences)

    @property
    def active(self) -> list[Hashable]:
        """Ids of the streams that carry state."""
        return list(self._states)

    def end(self, stream_id: Hashable) -> None:
        """Forget a stream's state (its sequence ended); the id may start a new sequence later."""
        self._states.pop(stream_id, None)

    def reset(self) -> None:
        """Forget every stream."""
        self._states.clear()

    def feed(self, stream_id: Hashable, chunk: Any) -> np.ndarray:
        """Feed one chunk (T, F) of one stream; see :meth:`feed_many`."""
        return self.feed_many({stream_id: chunk})[stream_id]

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
        seqs = []
        for k in ids:
            a = chunks[k]
            a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
            if a.ndim == 1:
                a = a[:, None]
            if a.ndim != 2 or a.shape[0] == 0:
                raise DataError(f"stream {k!r}: a chunk must be a non-empty (steps, features) array; got shape {a.shape}")
            if not np.all(np.isfinite(a)):
                raise DataError(f"stream {k!r}: the chunk holds NaN or infinite values")
            seqs.append(torch.as_tensor(a, dtype=torch.float32))
        model = self.model
        model.build(int(seqs[0].shape[1]))
        self._recurrent = model.state_layers  # once built (a causal Conv1D's state size follows its input)
        model.eval()
        device = next(model.parameters()).device
        batch = RaggedBatch.from_list([s.to(device) for s in seqs], merge_cost=0.0)
        init = []
        for li, layer in enumerate(self._recurrent):
            sizes = layer.state_sizes
            tensors = []
            for si, H in enumerate(sizes):
                rows = [self._states[k][li][si] if k in self._states else torch.zeros(H, device=device) for k in ids]
                tensors.append(torch.stack(rows).unsqueeze(0))  # (1, B, H) in batch order
            init.append(tensors)
        out, states = model.run_states(batch, False, init, want_states=True)
        for i, k in enumerate(ids):
            r = int(batch.unsorted_indices[i])  # sorted row of stream i
            self._states[k] = [tuple(s[0, r].clone() for s in st) for st in states]
        if self.per_step:
            pieces = out.to_list()  # batch order
            return {k: p.cpu().numpy() for k, p in zip(ids, pieces)}
        rows = batch.unsort(out)
        return {k: rows[i].cpu().numpy() for i, k in enumerate(ids)}
