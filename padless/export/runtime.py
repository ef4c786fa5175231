"""Running an exported ``.onnx`` model in onnxruntime, with ``predict`` like the padless model's.

Owns: :class:`OnnxModel` and :func:`load_onnx`. Does not own: writing graphs (:mod:`padless.export.build`)
or comparing them with padless (:mod:`padless.export.checks`). ``onnxruntime`` is an optional dependency
(``pip install padless[export]``).

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> from padless.nn import GRU, Dense, LayerStack
    >>> from padless.export.build import export_onnx
    >>> m = LayerStack([GRU(4, input_size=2), Dense(3, activation="softmax")])
    >>> p = export_onnx(m, os.path.join(tempfile.mkdtemp(), "m.onnx"))
    >>> OnnxModel(p).predict([np.ones((3, 2), "float32")]).shape
    (1, 3)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from padless.data.inputs import as_ragged
from padless.errors import CheckpointError, DataError
from padless.export.build import ONNX_FORMAT
from padless.export.graph import require

__all__ = ["OnnxModel", "load_onnx"]


class OnnxModel:
    """An exported ``.onnx`` model run by onnxruntime, with ``predict`` like the padless model's.

    Args:
        path: a file written by :func:`export_onnx`.
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
        threads: intra-op threads (0 = onnxruntime's default).

    Attributes:
        preprocessing: the model's ``preprocessing`` dict (``"classes"`` holds the class names).
        classes: class names, or None.
        streaming: whether the graph takes and returns states.
        state_names: the state inputs, in graph order (outputs are the same names + ``"_out"``).
        returns_sequences: True for a per-step model.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from padless import Sequential
        >>> from padless.layers import GRU, Dense
        >>> m = Sequential([GRU(4, input_shape=(None, 2)), Dense(3, activation="softmax")])
        >>> p = m.export(os.path.join(tempfile.mkdtemp(), "m.onnx"))
        >>> OnnxModel(p).predict([np.ones((3, 2), "float32")]).shape
        (1, 3)
    """

    def __init__(self, path: str | os.PathLike[str], providers: Sequence[str] | None = None, threads: int = 0) -> None:
        ort = require("onnxruntime", "running an .onnx model")
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"no ONNX model at {str(p)!r}: check the path (write one with padless export)")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(p), sess_options=opts,
                                                providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # onnxruntime raises its own exception types
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(f"{str(p)!r} is not a readable ONNX model: {first}") from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if meta.get("padless.format") != ONNX_FORMAT:
            raise CheckpointError(f"{str(p)!r} is an ONNX model but not one exported by padless "
                                  f"(format {meta.get('padless.format')!r})")
        self.path = p
        self.metadata = meta
        self.preprocessing: dict[str, Any] = json.loads(meta.get("padless.preprocessing", "{}")) or {}
        classes = json.loads(meta.get("padless.classes", "null"))
        if classes is not None:
            self.preprocessing.setdefault("classes", classes)
        self.classes: list[str] | None = classes
        self.streaming = bool(json.loads(meta.get("padless.streaming", "false")))
        self.state_names: list[str] = list(json.loads(meta.get("padless.states", "[]")))
        self.returns_sequences = bool(json.loads(meta.get("padless.returns_sequences", "false")))
        self.num_features = int(json.loads(meta.get("padless.num_features", "0")))
        self.mask_value: float | None = json.loads(meta.get("padless.mask_value", "null"))
        self._state_units = {i.name: int(i.shape[1]) for i in self.session.get_inputs() if i.name in self.state_names}

    def initial_states(self, batch_size: int) -> dict[str, np.ndarray]:
        """Zero states for a streaming graph: name -> (batch_size, H) float32."""
        return {n: np.zeros((int(batch_size), self._state_units[n]), np.float32) for n in self.state_names}

    def run(self, x: Any, lengths: Any, states: dict[str, np.ndarray] | None = None
            ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
        """Run the graph once on a right-padded batch.

        Args:
            x: (B, T, F) float array, right-padded (padding values are ignored).
            lengths: (B,) true lengths, 1 <= length <= T (a streaming graph also accepts 0: state kept).
            states: streaming graph only: name -> (B, H) from :meth:`initial_states` or a previous call.

        Returns:
            ``y`` ((B, out), or (B, T, out) with padded steps zeroed); a streaming graph returns
            ``(y, states)`` with the states after each row's last step.

        Raises:
            DataError: wrong shapes or lengths out of range.
        """
        xa = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        la = np.ascontiguousarray(np.asarray(lengths, dtype=np.int64)).reshape(-1)
        if xa.ndim != 3 or xa.shape[2] != self.num_features:
            raise DataError(f"x must be (batch, time, {self.num_features}); got shape {xa.shape}")
        if la.shape[0] != xa.shape[0]:
            raise DataError(f"lengths has {la.shape[0]} entries for a batch of {xa.shape[0]} rows")
        low = 0 if self.streaming else 1
        bad = np.flatnonzero((la < low) | (la > xa.shape[1]))
        if bad.size:
            k = int(bad[0])
            raise DataError(f"lengths[{k}] = {int(la[k])} is outside {low}..{xa.shape[1]} (the padded length)")
        feed: dict[str, np.ndarray] = {"x": xa, "lengths": la}
        if self.streaming:
            st = states if states is not None else self.initial_states(xa.shape[0])
            for n in self.state_names:
                if n not in st:
                    raise DataError(f"missing state {n!r}; pass the states returned by the previous call")
                a = np.ascontiguousarray(np.asarray(st[n], dtype=np.float32))
                if a.shape != (xa.shape[0], self._state_units[n]):
                    raise DataError(f"state {n!r} must be ({xa.shape[0]}, {self._state_units[n]}); got {a.shape}")
                feed[n] = a
        elif states is not None:
            raise DataError("this graph was exported without streaming=True: it takes no states")
        outs = self.session.run(None, feed)
        if not self.streaming:
            return outs[0]
        return outs[0], {n: o for n, o in zip(self.state_names, outs[1:])}

    def predict(self, x: Any, batch_size: int | None = 32, lengths: Any = None, verbose: int = 0) -> Any:
        """Outputs for ``x`` in input order, in ``model.predict``'s format.

        Args:
            x: a list of (T_i, F) arrays, an (N, T, F) array (with ``lengths=`` if padded) or a RaggedArray.
            batch_size: rows per onnxruntime call (rows are grouped by length to keep padding small).
            lengths: true lengths of a right-padded ``x``.
            verbose: ignored (``model.predict`` compatibility).

        Returns:
            (N, out) array, or a list of (T_i, out) arrays for a per-step model.
        """
        xr = as_ragged(x, lengths=lengths, mask_value=self.mask_value)
        if xr.num_features != self.num_features:
            raise DataError(f"the model expects {self.num_features} features per step; the data has {xr.num_features}")
        bs = int(batch_size or 32)
        if bs <= 0:
            raise DataError(f"batch_size must be a positive integer; got {batch_size!r}")
        L = np.asarray(xr.lengths)
        order = np.argsort(-L, kind="stable")
        results: list[Any] = [None] * len(xr)
        for s in range(0, len(order), bs):
            idx = order[s : s + bs]
            part = xr.take(idx)
            y = self.run(part.to_padded().astype(np.float32, copy=False), np.asarray(part.lengths))
            if isinstance(y, tuple):
                y = y[0]
            for k, row in enumerate(idx.tolist()):
                results[row] = y[k, : int(L[row])] if self.returns_sequences else y[k]
        if self.returns_sequences:
            return results
        return np.stack(results).astype(np.float32, copy=False)


def load_onnx(path: str | os.PathLike[str], **kwargs: Any) -> OnnxModel:
    """Open an exported model for inference; see :class:`OnnxModel`.

    Example:
        >>> import os, tempfile
        >>> from padless import Sequential
        >>> from padless.layers import LSTM, Dense
        >>> m = Sequential([LSTM(2, input_shape=(None, 1)), Dense(1)])
        >>> p = m.export(os.path.join(tempfile.mkdtemp(), "m.onnx"))
        >>> load_onnx(p).returns_sequences
        False
    """
    return OnnxModel(path, **kwargs)
