"""The Keras-style model facade: ``compile``, ``fit``, ``evaluate``, ``predict``, ``save``, ``export`` on a graph.

Owns: :class:`KerasModel`, the mixin that turns a plain model graph (:class:`padless.nn.Graph`) into a
Keras-style model. It is the only place that wires training (:mod:`padless.train`), saving and export
(:mod:`padless.export`) to a model; each method is a thin call into those packages. Also owns the
registry of facade classes by name, so a saved config rebuilds the right class.

Does not own: layers, graphs, the loop, file formats.

Example:
    >>> from padless import Sequential
    >>> from padless.layers import GRU, Dense
    >>> m = Sequential([GRU(4, input_shape=(None, 2)), Dense(3, activation="softmax")])
    >>> m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", learning_rate=3e-3)
    >>> round(m.optimizer.learning_rate, 6), m.input_shape, m.output_shape
    (0.003, (None, None, 2), (None, 3))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from padless.errors import CheckpointError, ConfigError
from padless.export.build import export_onnx
from padless.train.batch_ops import predict_on_batch, test_on_batch, train_on_batch
from padless.train.callbacks import Callback, CallbackList, History
from padless.train.compile import Compiled, compile_config, compile_model
from padless.train.inference import evaluate as evaluate_graph
from padless.train.inference import predict as predict_graph
from padless.train.keras_callbacks import backup_options
from padless.train.optimizer_base import Optimizer
from padless.train.options import FitOptions
from padless.train.saving import read_weights, write_model, write_weights
from padless.train.trainer import Trainer

__all__ = ["KerasModel", "model_classes", "OptimizerView"]

_MODEL_CLASSES: dict[str, type["KerasModel"]] = {}


def model_classes() -> dict[str, type["KerasModel"]]:
    """Facade classes by name (``"Sequential"``, ``"Model"`` and any subclass), for rebuilding configs."""
    return dict(_MODEL_CLASSES)


class OptimizerView:
    """``model.optimizer``: the torch optimizer, with Keras' ``learning_rate`` read/write on top.

    Example:
        >>> import torch
        >>> v = OptimizerView(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
        >>> v.learning_rate = 0.05; v.param_groups[0]["lr"]
        0.05
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        object.__setattr__(self, "_opt", optimizer)

    @property
    def learning_rate(self) -> float:
        return float(self._opt.param_groups[0]["lr"])

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        for g in self._opt.param_groups:
            g["lr"] = float(value)

    lr = learning_rate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._opt, name)

    def __repr__(self) -> str:
        return f"OptimizerView({self._opt!r})"


class KerasModel:
    """Keras' model methods for a :class:`padless.nn.Graph` subclass (mix in before the graph class).

    Attributes:
        compiled: what ``compile`` set (None before).
        history: the last ``fit``'s History.
        stop_training: set by callbacks to stop ``fit``.
        merge_cost: ``"auto"`` or a number: padding allowed in place of a kernel call (see
            ``padless.data.plan``).
        preprocessing: JSON-able description of the inputs saved with the model (class names, columns...).
    """

    class_name: ClassVar[str] = "KerasModel"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _MODEL_CLASSES[cls.__name__] = cls

    def init_facade(self) -> None:
        """Set the facade's attributes (call from ``__init__``)."""
        self.compiled: Compiled | None = None
        self.stop_training = False
        self.history: History | None = None
        self.merge_cost: float | str = "auto"
        self.preprocessing: dict[str, Any] = {}

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Sequence[Any] | None = None,
                device: str | torch.device = "auto", **optimizer_kwargs: Any) -> None:
        """Configure training (Keras ``compile``); see :func:`padless.train.compile.compile_model`."""
        self.compiled = compile_model(self, optimizer, loss, metrics, device, **optimizer_kwargs)  # type: ignore[arg-type]

    def _require_compiled(self) -> Compiled:
        if self.compiled is None:
            raise ConfigError("the model must be compiled before training or evaluating: call model.compile(optimizer, "
                              "loss)")
        return self.compiled

    @property
    def optimizer(self) -> Optimizer | OptimizerView | None:
        """The Keras optimizer object (``padless.optimizers.Adam``...; for a name given to ``compile`` too), or
        for a torch optimizer given to ``compile`` a view of it with Keras' ``learning_rate`` (None until the
        model has weights)."""
        c = self.compiled
        if c is not None and c.keras_optimizer is not None:
            return c.keras_optimizer
        if c is None or c.optimizer is None:
            return None
        return OptimizerView(c.optimizer)

    # ------------------------------------------------------------------ train / evaluate / predict
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: int | str = "auto", callbacks: Sequence[Callback] | None = None, validation_split: float = 0.0,
            validation_data: Any = None, shuffle: bool = True, class_weight: dict[Any, float] | None = None,
            sample_weight: Any = None, initial_epoch: int = 0, steps_per_epoch: int | None = None,
            validation_steps: int | None = None, validation_batch_size: int | None = None,
            validation_freq: int = 1, *, lengths: Any = None, **options: Any) -> History:
        """Train on ragged, padded or equal-length data (Keras ``fit``).

        Args:
            x: a list of (T_i, F) arrays, an (N, T, F) array (padded: with ``lengths=``), or a RaggedArray.
            y: per-sequence labels/targets (N,) or (N, K), or per-step targets for a per-step head.
            batch_size: sequences per batch (default 32; per process when distributed).
            epochs, verbose, callbacks, validation_split, validation_data, shuffle, class_weight,
                sample_weight, initial_epoch, steps_per_epoch, validation_steps, validation_batch_size,
                validation_freq: as in Keras.
            lengths: true lengths of a right-padded ``x``.
            **options: padless settings: ``batching`` (``"auto"``, ``"bucket"``, ``"exact"``, ``"random"``,
                ``"sequential"``), ``seed``, ``tbptt``, ``checkpoint_dir``, ``checkpoint_every``,
                ``resume_from``, ``distributed``, ``keep_checkpoints``, ``overwrite_checkpoints``,
                ``max_steps`` (see :class:`padless.train.options.FitOptions` and the README).

        Returns:
            The :class:`~padless.train.callbacks.History` (``history.history`` holds losses and metrics;
            ``history.throughput`` the steps/s and padding waste).
        """
        options = backup_options(callbacks, options)  # a BackupAndRestore callback sets the checkpoint options
        unknown = sorted(set(options) - set(FitOptions.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"fit() does not take {unknown[0]!r}; padless options are: "
                              f"{', '.join(sorted(FitOptions.__dataclass_fields__))}")
        opts = FitOptions(batch_size=batch_size, epochs=epochs, verbose=verbose, shuffle=shuffle,
                          initial_epoch=initial_epoch, validation_split=validation_split,
                          steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                          validation_batch_size=validation_batch_size, validation_freq=validation_freq,
                          merge_cost=options.pop("merge_cost", self.merge_cost), **options)
        trainer = Trainer(self, self._require_compiled(), opts, callbacks, owner=self,  # type: ignore[arg-type]
                          preprocessing=self.preprocessing)
        self.history = trainer.fit(x, y, lengths, validation_data, sample_weight, class_weight)
        return self.history

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: int | str = "auto",
                 sample_weight: Any = None, callbacks: Sequence[Callback] | None = None, return_dict: bool = False,
                 *, lengths: Any = None, distributed: bool | str = "auto") -> Any:
        """Loss and metrics (Keras ``evaluate``): ``[loss, *metrics]``, the loss alone, or a dict."""
        cbs = CallbackList(list(callbacks or []), self) if callbacks else None
        return evaluate_graph(self, self._require_compiled(), x, y, batch_size, verbose, lengths,  # type: ignore[arg-type]
                              return_dict, distributed, self.merge_cost, cbs, sample_weight)

    def predict(self, x: Any, batch_size: int | None = None, verbose: int | str = "auto",
                callbacks: Sequence[Callback] | None = None, *, lengths: Any = None, batching: str = "auto",
                tbptt: int | None = None) -> Any:
        """Outputs in input order (Keras ``predict``; works on an uncompiled model and never compiles it)."""
        cbs = CallbackList(list(callbacks or []), self) if callbacks else None
        return predict_graph(self, self.compiled, x, batch_size, verbose, lengths, batching, tbptt,  # type: ignore[arg-type]
                             self.merge_cost, cbs)

    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                       class_weight: dict[Any, float] | None = None, return_dict: bool = False, *,
                       lengths: Any = None) -> Any:
        """One optimizer step on exactly this batch; its loss (and metrics) as Keras returns them."""
        return train_on_batch(self, self._require_compiled(), x, y, sample_weight, class_weight, return_dict,  # type: ignore[arg-type]
                              lengths=lengths, merge_cost=self.merge_cost)

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None, return_dict: bool = False, *,
                      lengths: Any = None) -> Any:
        """Loss (and metrics) of exactly this batch, without a step (Keras ``test_on_batch``)."""
        return test_on_batch(self, self._require_compiled(), x, y, sample_weight, return_dict, lengths=lengths,  # type: ignore[arg-type]
                             merge_cost=self.merge_cost)

    def predict_on_batch(self, x: Any, *, lengths: Any = None) -> Any:
        """Outputs for ``x`` as one batch (Keras ``predict_on_batch``)."""
        return predict_on_batch(self, self.compiled, x, lengths=lengths, merge_cost=self.merge_cost)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ weights and files
    def save(self, path: str | os.PathLike[str], overwrite: bool = True, **kwargs: Any) -> None:
        """Write config + weights (one safetensors file, atomically). Load with :func:`padless.load_model`.

        Raises:
            ConfigError: a ``.keras``/``.h5`` name (padless writes safetensors, which Keras cannot read), or an
                existing file with ``overwrite=False``.
        """
        p = Path(path)
        _refuse_keras_suffix(p, "save")
        if p.exists() and not overwrite:
            raise ConfigError(f"{p} exists; pass overwrite=True or another path")
        write_model(self, p, compile_config(self.compiled), self.preprocessing, kwargs.pop("extra", None))  # type: ignore[arg-type]
        if kwargs:
            raise ConfigError(f"save() does not take {sorted(kwargs)[0]!r}")

    def get_weights(self) -> list[np.ndarray]:
        """Every parameter and buffer as numpy arrays, in ``state_dict`` order (Keras ``get_weights``)."""
        return [v.detach().cpu().numpy().copy() for v in self.state_dict().values()]  # type: ignore[attr-defined]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Inverse of :meth:`get_weights` (same order and shapes).

        Raises:
            ConfigError: a different number of arrays, or an array of the wrong shape (named).
        """
        sd = self.state_dict()  # type: ignore[attr-defined]
        if len(weights) != len(sd):
            raise ConfigError(f"set_weights got {len(weights)} arrays; the model has {len(sd)} (see get_weights())")
        new = {}
        for (k, v), w in zip(sd.items(), weights):
            t = torch.as_tensor(np.asarray(w), dtype=v.dtype)
            if tuple(t.shape) != tuple(v.shape):
                raise ConfigError(f"weight {k!r}: Expected shape {tuple(v.shape)} / Received {tuple(t.shape)}")
            new[k] = t
        self.load_state_dict(new)  # type: ignore[attr-defined]

    def save_weights(self, path: str | os.PathLike[str], overwrite: bool = True) -> None:
        """Write the weights alone as safetensors (refuses Keras' ``.h5`` names)."""
        p = Path(path)
        _refuse_keras_suffix(p, "save_weights")
        if p.exists() and not overwrite:
            raise ConfigError(f"{p} exists; pass overwrite=True or another path")
        write_weights(self, p)  # type: ignore[arg-type]

    def load_weights(self, path: str | os.PathLike[str]) -> None:
        """Load weights written by :meth:`save_weights` (or the weights of a saved model file).

        Raises:
            CheckpointError: unreadable file, or weights that do not fit the model (names the first).
        """
        tensors = read_weights(path)
        sd = self.state_dict()  # type: ignore[attr-defined]
        missing, unexpected = sorted(set(sd) - set(tensors)), sorted(set(tensors) - set(sd))
        if missing or unexpected:
            raise CheckpointError(f"{str(path)!r}: the weights do not fit this model (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]})")
        for k, v in sd.items():
            if tuple(tensors[k].shape) != tuple(v.shape):
                raise CheckpointError(f"{str(path)!r}: weight {k!r}: Expected shape {tuple(v.shape)} / Received "
                                      f"{tuple(tensors[k].shape)}")
        self.load_state_dict(tensors)  # type: ignore[attr-defined]

    def export(self, path: str | os.PathLike[str], streaming: bool = False, **kwargs: Any) -> Path:
        """Write an ONNX graph (inputs ``x`` (B, T, F) and ``lengths`` (B,)). See :func:`padless.export.export_onnx`."""
        return export_onnx(self, path, streaming=streaming, preprocessing=self.preprocessing, **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ shapes
    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """Keras' ``(batch, timesteps, features)``: ``(None, None, F)``."""
        return (self.stateful_batch_size, None, self.input_size)  # type: ignore[attr-defined]

    @property
    def output_shape(self) -> tuple[int | None, ...]:
        """``(None, None, K)`` for a per-step model, ``(None, K)`` otherwise."""
        k = self.output_size  # type: ignore[attr-defined]
        return (None, None, k) if self.returns_sequences else (None, k)  # type: ignore[attr-defined]


def _refuse_keras_suffix(p: Path, what: str) -> None:
    name = p.name.lower()
    if name.endswith((".keras", ".h5", ".hdf5")):
        raise ConfigError(f"{what}({str(p)!r}): padless writes safetensors files, which Keras cannot read; a "
                          f"{p.suffix} name would mislead. Use a .safetensors path (export to ONNX for other runtimes)")
