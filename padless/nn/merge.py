"""Merging branches of a functional model: Concatenate, Add, Multiply, Subtract, Average, Maximum, Minimum.

Owns: :class:`Merge` (the base: several inputs, all per step with the same lengths or all per sequence;
per-step branches laid out differently are brought to one layout first, so nothing is mixed across rows
or steps) and the Keras merge layers, each with its ONNX form. Does not own: the graph that feeds them
(:mod:`padless.nn.functional`).

Example:
    >>> import torch
    >>> Concatenate().merge_values([torch.ones(2, 3), torch.zeros(2, 1)]).shape
    torch.Size([2, 4])
"""

from __future__ import annotations

from functools import reduce
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from padless.data.collate import RaggedBatch
from padless.errors import ConfigError
from padless.nn.base import Layer, OnnxValue

__all__ = ["Merge", "Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "align_layout"]


def align_layout(x: RaggedBatch, like: RaggedBatch) -> RaggedBatch:
    """``x`` in the layout of ``like`` (same rows and lengths, maybe merged differently).

    Raises:
        ConfigError: the two batches hold different lengths.
    """
    if x.plan is like.plan:
        return x
    if not np.array_equal(x.plan.lengths, like.plan.lengths):
        raise ConfigError("merged branches hold sequences of different lengths (a stride or a 'valid' window in one "
                          "branch only): give every per-step branch the same length changes, or pool them first")
    key = ("align_to", like.plan.segments, like.plan.lengths.tobytes(), str(x.data.device))

    def index() -> torch.Tensor:  # (S_like,) position in x of each position of like (-1 -> a zero row)
        src = x.plan.positions()  # (B, Tmax)
        p = like.plan
        idx = np.full(p.size, -1, dtype=np.int64)
        v = p.valid
        idx[v] = src[p.row_of_pos[v], p.time_of_pos[v]]
        idx[idx < 0] = x.plan.size  # the appended zero row
        return torch.from_numpy(idx).to(x.data.device)

    gather = x.plan.cached(key, index)
    data = torch.cat([x.data, x.data.new_zeros((1, x.data.shape[1]))], 0).index_select(0, gather)
    return like.with_data(data)


class Merge(Layer):
    """Base of the merge layers: takes a list of branch values."""

    multi_input: ClassVar[bool] = True
    onnx_op: ClassVar[str] = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_sizes: list[int] | None = None
        self.finish_init()

    def finish_init(self) -> None:
        """Merge layers are built from their branches (``build_multi``), never from ``input_shape``."""

    def build_multi(self, sizes: Sequence[int]) -> int:
        """Check the branches' feature counts; return the output's."""
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ConfigError(f"{self.describe()} merges at least 2 branches; got {len(sizes)}")
        if self.input_sizes is not None and self.input_sizes != sizes:
            raise ConfigError(f"{self.describe()} was built for branches of {self.input_sizes} features; received {sizes}")
        self.check_sizes(sizes)
        self.input_sizes = sizes
        self.input_size = sizes[0]
        return self.output_size

    def check_sizes(self, sizes: list[int]) -> None:
        if len(set(sizes)) > 1:
            raise ConfigError(f"{self.describe()} needs branches of the same size; got {sizes} features: put a "
                              "Dense layer on the branches to match them, or use Concatenate")

    @property
    def output_size(self) -> int:
        if self.input_sizes is None:
            raise ConfigError(f"layer {self.describe()} is not built yet: its inputs are unknown")
        return self.input_sizes[0]

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.pop("input_size", None)
        return cfg

    def combine(self, values: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def merge_values(self, values: Sequence[Any]) -> Any:
        """Merge branch values: RaggedBatches (one layout) or (B, F) tensors (sorted rows)."""
        if all(isinstance(v, RaggedBatch) for v in values):
            first = values[0]
            datas = [align_layout(v, first).data for v in values]
            return first.with_data(self.combine(datas))
        if any(isinstance(v, RaggedBatch) for v in values):
            raise ConfigError(f"{self.describe()} got per-step and per-sequence branches; pool the per-step ones "
                              "first (e.g. GlobalAveragePooling1D) or return sequences from all of them")
        return self.combine(list(values))

    def forward(self, xs: Sequence[Any]) -> Any:
        return self.merge_values(xs)

    def merge_onnx(self, g: Any, names: list[str]) -> str:
        return reduce(lambda a, b: g.op(self.onnx_op, [a, b], self.onnx_op.lower()), names)

    def to_onnx(self, g: Any, x: Any) -> OnnxValue:
        xs: list[OnnxValue] = list(x)
        return OnnxValue(self.merge_onnx(g, [v.name for v in xs]), xs[0].seq, self.output_size)


class Concatenate(Merge):
    """Join the branches' features (Keras ``Concatenate``, the last axis).

    Example:
        >>> Concatenate().build_multi([3, 2])
        5
    """

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        if axis not in (-1, 2):
            raise ConfigError(f"Concatenate joins features (axis=-1); got axis={axis!r}: padless sequences keep "
                              "their own lengths, so they cannot be joined along time or rows")
        self.axis = -1
        super().__init__(**kwargs)

    def check_sizes(self, sizes: list[int]) -> None:
        pass

    @property
    def output_size(self) -> int:
        if self.input_sizes is None:
            raise ConfigError(f"layer {self.describe()} is not built yet: its inputs are unknown")
        return sum(self.input_sizes)

    def combine(self, values: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(values, -1)

    def merge_onnx(self, g: Any, names: list[str]) -> str:
        return g.op("Concat", names, "concat", axis=-1)


class Add(Merge):
    """Element-wise sum (Keras ``Add``).

    Example:
        >>> import torch
        >>> Add().merge_values([torch.ones(1, 2), torch.ones(1, 2)]).tolist()
        [[2.0, 2.0]]
    """

    onnx_op = "Add"

    def combine(self, values: list[torch.Tensor]) -> torch.Tensor:
        return reduce(torch.add, values)


class Subtract(Merge):
    """First branch minus the second (Keras ``Subtract``; exactly 2 branches).

    Example:
        >>> import torch
        >>> Subtract().merge_values([torch.ones(1, 1), torch.ones(1, 1)]).tolist()
        [[0.0]]
    """

    onnx_op = "Sub"

    def check_sizes(self, sizes: list[int]) -> None:
        if len(sizes) != 2:
            raise ConfigError(f"{self.describe()} takes exactly 2 branches; got {len(sizes)}")
        super().check_sizes(sizes)

    def combine(self, values: list[torch.Tensor]) -> torch.Tensor:
        return values[0] - values[1]


class Multiply(Merge):
    """Element-wise product (Keras ``Multiply``).

    Example:
        >>> import torch
        >>> Multiply().merge_values([torch.full((1, 1), 2.0), torch.full((1, 1), 3.0)]).tolist()
        [[6.0]]
    """

    onnx_op = "Mul"

    def combine(self, values: list[torch.Tensor]) -> torch.Tensor:
        return reduce(torch.mul, values)


class Average(Merge):
    """Element-wise mean (Keras ``Average``).

    Example:
        >>> import torch
        >>> Average().merge_values([torch.zeros(1, 1), torch.ones(1, 1)]).tolist()
        [[0.5]]
    """

    def combine(self, values: list[torch.Tensor]) -> torch.Tensor:
        return reduce(torch.add, values) / len(values)

    def merge_onnx(self, g: Any, names: list[str]) -> str:
        total = reduce(lambda a, b: g.op("Add", [a, b], "add"), names)
        return g.op("Div", [total, g.const("n_branches", float(len(names)))], "average")


class Maximum(Merge):
    """Element-wise maximum (Keras ``Maximum``).

    Example:
        >>> import torch
        >>> Maximum().merge_values([torch.zeros(1, 1), torch.ones(1, 1)]).tolist()
        [[1.0]]
    """

    onnx_op = "Max"

    def combine(self, values: list[torch.Tensor]) -> torch.Tensor:
        return reduce(torch.maximum, values)


class Minimum(Merge):
    """Element-wise minimum (Keras ``Minimum``).

    Example:
        >>> import torch
        >>> Minimum().merge_values([torch.zeros(1, 1), torch.ones(1, 1)]).tolist()
        [[0.0]]
    """

    onnx_op = "Min"

    def combine(self, values: list[torch.Tensor]) -> torch.Tensor:
        return reduce(torch.minimum, values)
