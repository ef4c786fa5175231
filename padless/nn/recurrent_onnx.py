"""The ONNX form of a recurrent layer: one ``LSTM``/``GRU``/``RNN`` node per direction, with
``sequence_lens`` so every row's final state is taken at its own last step.

Owns: :func:`onnx_direction` (gate reordering torch -> ONNX, activations by name, biases, the backward
direction reversed within each row's length, streaming initial states). Does not own: the layers
(:mod:`padless.nn.recurrent`) or the graph builder (``padless.export``).

Example:
    >>> sorted(ONNX_ACTIVATIONS)[:3]
    ['elu', 'hard_sigmoid', 'linear']
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from padless.errors import ConfigError

__all__ = ["onnx_direction", "ONNX_ACTIVATIONS"]

ONNX_ACTIVATIONS: dict[str, tuple[str, dict[str, float]]] = {
    "tanh": ("Tanh", {}), "sigmoid": ("Sigmoid", {}), "relu": ("Relu", {}), "linear": ("Affine", {"alpha": 1.0}),
    "hard_sigmoid": ("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5}), "elu": ("Elu", {"alpha": 1.0}),
    "softsign": ("Softsign", {}), "softplus": ("Softplus", {}),
}
"""Keras activation names the ONNX recurrent nodes compute (name -> ONNX activation, its alpha/beta)."""


def _torch_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


def _activations(layer: Any) -> tuple[list[str], list[float], list[float]]:
    names = list(layer.onnx_activation_names())
    acts, alphas, betas = [], [], []
    for n in names:
        if n not in ONNX_ACTIVATIONS:
            raise ConfigError(f"{layer.describe()} cannot be exported to ONNX: activation {n!r} has no ONNX recurrent "
                              f"form (exportable: {', '.join(sorted(ONNX_ACTIVATIONS))})")
        op, ab = ONNX_ACTIVATIONS[n]
        acts.append(op)
        alphas.append(ab.get("alpha", 0.0))
        betas.append(ab.get("beta", 0.0))
    return acts, alphas, betas


def onnx_direction(g: Any, layer: Any, x: str, init: Sequence[str] | None) -> tuple[str, list[str]]:
    """One direction of ``layer`` on a (T, B, F) value: ``(seq (T, B, H) in the layer's own time order
    (reversed within each row's length for ``go_backwards``), [h] or [h, c] each (B, H))``.

    Raises:
        ConfigError: no weights yet, or an activation with no ONNX form.
    """
    rnn = layer.rnn
    if rnn is None:
        raise ConfigError(f"{layer.describe()} has no weights yet: build or train the model before exporting")
    H = rnn.hidden_size
    order = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN": [0]}[layer.onnx_op]  # torch -> ONNX gate order

    def reorder(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[k * H : (k + 1) * H] for k in order], 0)

    w, r = _torch_np(rnn.weight_ih_l0), _torch_np(rnn.weight_hh_l0)
    if rnn.bias:
        bw, br = _torch_np(rnn.bias_ih_l0), _torch_np(rnn.bias_hh_l0)
    else:
        bw = br = np.zeros(w.shape[0], np.float32)
    W, R, B = reorder(w)[None], reorder(r)[None], np.concatenate([reorder(bw), reorder(br)])[None]
    if layer.go_backwards:
        x = g.op("ReverseSequence", [x, g.lengths], "rev_in", batch_axis=1, time_axis=0)
    inputs = [x, g.const("W", W), g.const("R", R), g.const("B", B), g.lens32]
    ax0, ax1 = g.const("ax0", [0], np.int64), g.const("ax1", [1], np.int64)
    if init is not None:
        inputs += [g.op("Unsqueeze", [s, ax0], "init") for s in init]
    attrs: dict[str, Any] = {"hidden_size": int(H)}
    acts, alphas, betas = _activations(layer)
    attrs["activations"] = acts
    if any(alphas):
        attrs["activation_alpha"] = alphas
        attrs["activation_beta"] = betas
    if layer.onnx_op == "GRU":
        attrs["linear_before_reset"] = int(getattr(layer, "reset_after", True))  # 1: PyTorch's / Keras 3's GRU
    outs = g.op(layer.onnx_op, inputs, layer.onnx_op.lower(), n_out=1 + layer._num_states, **attrs)
    seq = g.op("Squeeze", [outs[0], ax1], "rnn_y")  # (T, 1, B, H) -> (T, B, H)
    states = [g.op("Squeeze", [s, ax0], "rnn_state") for s in outs[1:]]  # (1, B, H) -> (B, H)
    if init is not None:
        # a row with no step in this chunk keeps its state (whatever the runtime does with length 0)
        has = g.op("Unsqueeze", [g.op("Greater", [g.lengths, g.const("zero", 0, np.int64)]), ax1], "has_steps")
        states = [g.op("Where", [has, s, i], "kept") for s, i in zip(states, init)]
    return seq, states
