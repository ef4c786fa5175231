"""Recurrent layers that run ragged batches exactly: LSTM, GRU and SimpleRNN, with Keras 3's signatures.

Owns: :class:`LSTM`, :class:`GRU` (``reset_after``) and :class:`SimpleRNN` - their constructor arguments in
Keras' order (a positional ``activation`` means what it means in Keras) - and the re-exports of the base
(:class:`~padless.nn.recurrent_base.Recurrent`, :class:`~padless.nn.recurrent_base.RunOutput`,
:func:`~padless.nn.recurrent_base.row_mask`, :func:`~padless.nn.recurrent_base.keras_call`). The weights live in
a plain ``torch.nn.LSTM``/``GRU``/``RNN`` (``layer.rnn``). Also accepted as input (PyTorch users): a
``PackedSequence``, a ``(padded, lengths)`` pair, or an equal-length ``(B, T, F)`` tensor; the output has the
same kind.

Does not own: the behaviour shared by all three (:mod:`padless.nn.recurrent_base`), the kernels, the ONNX
nodes, :class:`~padless.nn.bidirectional.Bidirectional`, training (``padless.train``).

Example:
    >>> import torch
    >>> lstm = LSTM(8, input_size=3, return_state=True)
    >>> out, h, c = lstm([torch.randn(5, 3), torch.randn(2, 3)])
    >>> out.shape, h.shape, c.shape, lstm.path
    (torch.Size([2, 8]), torch.Size([2, 8]), torch.Size([2, 8]), 'fused')
"""

from __future__ import annotations

from typing import Any

from torch import nn

from padless.nn.recurrent_base import Recurrent, RunOutput, keras_call, row_mask

__all__ = ["RunOutput", "Recurrent", "LSTM", "GRU", "SimpleRNN", "row_mask", "keras_call"]


class LSTM(Recurrent):
    __doc__ = Recurrent.__doc__
    _rnn_cls = nn.LSTM
    _gates = 4
    _num_states = 2
    onnx_op = "LSTM"
    kind = "lstm"

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 unit_forget_bias: bool = True, kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
                 recurrent_constraint: Any = None, bias_constraint: Any = None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, seed: int | None = None, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, use_cudnn: Any = "auto", **kwargs: Any) -> None:
        self._setup(units, activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
                    bias_initializer, unit_forget_bias, kernel_regularizer, recurrent_regularizer, bias_regularizer,
                    activity_regularizer, kernel_constraint, recurrent_constraint, bias_constraint, dropout,
                    recurrent_dropout, seed, return_sequences, return_state, go_backwards, stateful, unroll,
                    use_cudnn, kwargs)


class GRU(Recurrent):
    """Gated recurrent unit. ``reset_after=True`` (Keras 3's default) is PyTorch's GRU and runs on the fused
    kernels; ``reset_after=False`` (Keras' classic GRU: the reset gate scales the state before the recurrent
    matmul) runs on the per-step path. Other arguments: see :class:`Recurrent`.

    Example:
        >>> GRU(4, input_size=2).state_sizes, GRU(4, reset_after=False).path
        ((4,), 'per-step')
    """

    _rnn_cls = nn.GRU
    _gates = 3
    _num_states = 1
    onnx_op = "GRU"
    kind = "gru"

    def __init__(self, units: int, activation: Any = "tanh", recurrent_activation: Any = "sigmoid",
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, recurrent_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None, recurrent_constraint: Any = None,
                 bias_constraint: Any = None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: int | None = None, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False, reset_after: bool = True,
                 use_cudnn: Any = "auto", **kwargs: Any) -> None:
        self._setup(units, activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
                    bias_initializer, False, kernel_regularizer, recurrent_regularizer, bias_regularizer,
                    activity_regularizer, kernel_constraint, recurrent_constraint, bias_constraint, dropout,
                    recurrent_dropout, seed, return_sequences, return_state, go_backwards, stateful, unroll,
                    use_cudnn, kwargs)
        self.reset_after = bool(reset_after)


class SimpleRNN(Recurrent):
    """Elman RNN (``activation`` tanh or relu run on the fused kernels). See :class:`Recurrent`.

    Example:
        >>> SimpleRNN(3, "relu", input_size=1).path
        'fused'
    """

    _rnn_cls = nn.RNN
    _gates = 1
    _num_states = 1
    onnx_op = "RNN"
    kind = "rnn"

    def __init__(self, units: int, activation: Any = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", recurrent_initializer: Any = "orthogonal",
                 bias_initializer: Any = "zeros", kernel_regularizer: Any = None, recurrent_regularizer: Any = None,
                 bias_regularizer: Any = None, activity_regularizer: Any = None, kernel_constraint: Any = None,
                 recurrent_constraint: Any = None, bias_constraint: Any = None, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, seed: int | None = None, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 unroll: bool = False, **kwargs: Any) -> None:
        self._setup(units, activation, "sigmoid", use_bias, kernel_initializer, recurrent_initializer,
                    bias_initializer, False, kernel_regularizer, recurrent_regularizer, bias_regularizer,
                    activity_regularizer, kernel_constraint, recurrent_constraint, bias_constraint, dropout,
                    recurrent_dropout, seed, return_sequences, return_state, go_backwards, stateful, unroll,
                    None, kwargs)
