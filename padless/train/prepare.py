"""What ``fit``/``evaluate``/``predict`` receive, turned into what the loops run on.

Owns: :func:`prepare_inputs` (anything a user passes -> a :class:`~padless.data.RaggedArray`, following
the model's input conventions: a ``Masking`` or ``mask_zero`` first layer derives lengths from padding,
an ``Embedding`` first layer reads integer tokens; then the model is built for the feature count),
:func:`prepare_targets` (labels or per-step targets, checked against the inputs and the loss),
:func:`split_validation` (Keras' ``validation_split``: the last samples) and
:func:`sample_weights_for` (Keras' ``sample_weight`` and ``class_weight`` -> one weight per sequence).

Does not own: the conversions themselves (:mod:`padless.data.inputs`), the loops.

Example:
    >>> import numpy as np
    >>> from padless.nn import GRU, LayerStack
    >>> m = LayerStack([GRU(2)])
    >>> prepare_inputs(m, [np.ones((3, 4))]).num_features, m.input_size
    (4, 4)
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from padless.data.inputs import Targets, as_ragged, as_targets
from padless.data.ragged import RaggedArray
from padless.errors import ConfigError, DataError
from padless.nn.graph import Graph
from padless.train.compile import Compiled
from padless.train.steps import per_step_targets

__all__ = ["prepare_inputs", "prepare_targets", "split_validation", "sample_weights_for"]


def prepare_inputs(model: Graph, x: Any, lengths: Any = None, device: torch.device | None = None) -> RaggedArray:
    """Read ``x`` as ragged data for ``model`` and build the model for its feature count."""
    xr = as_ragged(x, lengths=lengths, mask_value=model.input_mask_value, tokens=model.token_input)
    model.build(xr.num_features)
    if device is not None:
        model.to(device)  # weights created at build time start on the CPU
    return xr


def prepare_targets(model: Graph, compiled: Compiled, y: Any, xr: RaggedArray) -> Targets:
    """Check and convert ``y`` for inputs ``xr`` and the compiled loss.

    Raises:
        DataError: targets that do not fit the inputs, the model's outputs or the loss.
    """
    integer = compiled.integer_labels
    y_arr = y
    if integer and not model.returns_sequences and y is not None and not isinstance(y, (list, tuple, RaggedArray)):
        a = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
        integer = a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1 and model.output_size > 1)
        y_arr = a
    t = as_targets(y_arr, xr, per_step=model.returns_sequences, integer=integer)
    if t.per_step:
        ytensor = per_step_targets(torch.as_tensor(np.asarray(t.values.values)), integer and model.output_size > 1)
    else:
        ytensor = t.values
    compiled.check_targets(ytensor, model.output_size)
    return t


def split_validation(xr: RaggedArray, t: Targets, split: float, weights: torch.Tensor | None = None
                     ) -> tuple[RaggedArray, Targets, RaggedArray, Targets, torch.Tensor | None]:
    """Keras ``validation_split``: the *last* ``split`` fraction of the samples, before any shuffling.

    Raises:
        ConfigError: a split outside (0, 1), or one that leaves no sample on a side.
    """
    if not 0.0 < split < 1.0:
        raise ConfigError(f"validation_split must be in (0, 1); got {split!r}")
    n = len(xr)
    n_val = int(round(n * split))
    if n_val < 1 or n_val >= n:
        raise ConfigError(f"validation_split={split} leaves {n_val} of {n} samples for validation; choose another split")
    cut = n - n_val
    tr, va = np.arange(cut), np.arange(cut, n)
    w = None if weights is None else weights[:cut]
    return xr.take(tr), t.take(tr), xr.take(va), t.take(va), w


def sample_weights_for(t: Targets, n: int, sample_weight: Any = None,
                       class_weight: Mapping[Any, float] | None = None) -> torch.Tensor | None:
    """One weight per sequence from Keras' ``sample_weight`` (N,) and/or ``class_weight`` {class: w}.

    ``class_weight`` weighs each sequence by its (integer or one-hot) label; for per-step class targets
    it weighs each step by its class. Both together multiply. Returns None when neither is given.

    Raises:
        DataError: a weight vector of the wrong length, negative or non-finite weights.
        ConfigError: class weights for targets that are not classes.
    """
    w: torch.Tensor | None = None
    if sample_weight is not None:
        arr = np.asarray(sample_weight.detach().cpu().numpy() if isinstance(sample_weight, torch.Tensor)
                         else sample_weight, dtype=np.float64).reshape(-1)
        if arr.shape[0] != n:
            raise DataError(f"sample_weight has {arr.shape[0]} entries for {n} sequences; give one weight per sequence")
        bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
        if bad.size:
            raise DataError(f"sample_weight[{int(bad[0])}] = {arr[bad[0]]}; weights must be finite and >= 0")
        w = torch.as_tensor(arr, dtype=torch.float32)
    if class_weight:
        if t.per_step:
            raise ConfigError("class_weight with per-step targets is not supported yet: pass sample_weight per "
                              "sequence instead")
        y = t.values
        labels = y.long().view(-1) if y.dim() == 1 else y.argmax(-1) if y.shape[-1] > 1 else y.view(-1).round().long()
        table = {int(k): float(v) for k, v in dict(class_weight).items()}
        # Keras: a class absent from class_weight keeps weight 1
        cw = torch.tensor([table.get(int(c), 1.0) for c in labels.tolist()], dtype=torch.float32)
        w = cw if w is None else w * cw
    return w
