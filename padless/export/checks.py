"""Checking an exported graph against the model it came from.

Owns: :func:`check_export` (largest difference between onnxruntime and ``predict``). Does not own:
exporting or running graphs.

Example:
    >>> import os, tempfile
    >>> from padless import Sequential
    >>> from padless.layers import GRU, Dense
    >>> m = Sequential([GRU(3, input_shape=(None, 2)), Dense(2)])
    >>> check_export(m, m.export(os.path.join(tempfile.mkdtemp(), "m.onnx"))) < 1e-5
    True
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from padless.export.runtime import load_onnx

__all__ = ["check_export"]


def check_export(model: Any, path: str | os.PathLike[str], x: Any = None, seed: int = 0, relative: bool = False) -> float:
    """Largest absolute difference between onnxruntime on ``path`` and ``model.predict`` (with ``relative``:
    divided by ``max(1, largest |predict| value)``, for outputs in large units such as a regression's).

    Args:
        model: the padless model that was exported.
        path: the exported file.
        x: inputs (anything ``predict`` takes); by default 16 random sequences of lengths 1-40.
        seed: seed of the random inputs.

    Returns:
        ``max |onnx - predict|`` over every output value (relative: see above).

    Example:
        >>> import os, tempfile
        >>> from padless import Sequential
        >>> from padless.layers import GRU, Dense
        >>> m = Sequential([GRU(3, input_shape=(None, 2)), Dense(2)])
        >>> check_export(m, m.export(os.path.join(tempfile.mkdtemp(), "m.onnx"))) < 1e-5
        True
    """
    om = load_onnx(path)
    if x is None:
        rng = np.random.default_rng(seed)
        x = [rng.standard_normal((int(t), om.num_features)).astype(np.float32) for t in rng.integers(1, 41, 16)]
    ref = model.predict(x, verbose=0)
    got = om.predict(x)
    if om.returns_sequences:
        diff = float(max((np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(got, ref)), default=0.0))
        size = float(max((np.abs(np.asarray(b)).max() for b in ref), default=0.0))
    else:
        diff = float(np.abs(np.asarray(got) - np.asarray(ref)).max())
        size = float(np.abs(np.asarray(ref)).max())
    return diff / max(1.0, size) if relative else diff
