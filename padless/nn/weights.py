"""Keras' weight options: initializers, regularizers and constraints, by name, dict or object.

Owns: :func:`get_initializer` (``"glorot_uniform"``, ``"orthogonal"``, ``"zeros"``, ... or
``{"class_name": ..., "config": ...}`` or a callable ``fn(tensor)``), :func:`initialize` (Keras' fan-in/out
of a kernel ``(in, out)`` = a torch weight ``(out, in)``), :class:`Regularizer` (``l1``, ``l2``, ``l1_l2``:
a penalty added to the loss) and :class:`Constraint` (``max_norm``, ``min_max_norm``, ``non_neg``,
``unit_norm``: applied to the weights after every optimizer step), each with a JSON config.

Does not own: the layers that use them, or when penalties and constraints are applied (the trainer asks
the model).

Example:
    >>> import torch
    >>> w = torch.empty(8, 4); initialize(w, "glorot_uniform", seed=0)
    >>> bool(w.abs().max() <= (6 / 12) ** 0.5)
    True
    >>> float(get_regularizer({"class_name": "L2", "config": {"l2": 0.5}})(torch.ones(2)))
    1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from padless.errors import ConfigError

__all__ = ["INITIALIZERS", "get_initializer", "initialize", "Regularizer", "get_regularizer", "Constraint",
           "get_constraint", "initializer_config"]


def _fans(t: torch.Tensor) -> tuple[int, int]:
    """Keras fan-in / fan-out of a torch weight ``(out, in[, k])`` (Keras kernel ``([k,] in, out)``)."""
    if t.dim() < 2:
        return int(t.numel()), int(t.numel())
    receptive = int(t[0, 0].numel())
    return int(t.shape[1]) * receptive, int(t.shape[0]) * receptive


def _uniform(t: torch.Tensor, limit: float, g: torch.Generator | None) -> None:
    with torch.no_grad():
        t.uniform_(-limit, limit, generator=g)


def _normal(t: torch.Tensor, std: float, g: torch.Generator | None, truncated: bool = False) -> None:
    with torch.no_grad():
        if truncated:  # Keras: resample beyond 2 std; std corrected by 0.87962566103423978
            t.normal_(0.0, 1.0, generator=g)
            while True:
                bad = t.abs() > 2.0
                if not bool(bad.any()):
                    break
                t[bad] = torch.empty(int(bad.sum()), device=t.device).normal_(0.0, 1.0, generator=g)
            t.mul_(std / 0.87962566103423978)
        else:
            t.normal_(0.0, std, generator=g)


def _variance_scaling(scale: float, mode: str, dist: str) -> Callable[[torch.Tensor, torch.Generator | None], None]:
    def init(t: torch.Tensor, g: torch.Generator | None) -> None:
        fan_in, fan_out = _fans(t)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        var = scale / max(1.0, n)
        if dist == "uniform":
            _uniform(t, math.sqrt(3.0 * var), g)
        else:
            _normal(t, math.sqrt(var), g, truncated=True)
    return init


def _orthogonal(t: torch.Tensor, g: torch.Generator | None, gain: float = 1.0) -> None:
    rows, cols = int(t.shape[0]), int(t[0].numel())
    a = torch.empty(max(rows, cols), min(rows, cols)).normal_(0.0, 1.0, generator=g)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))
    if rows < cols:
        q = q.T
    with torch.no_grad():
        t.copy_((gain * q).reshape(t.shape))


def _constant(value: float) -> Callable[[torch.Tensor, torch.Generator | None], None]:
    def init(t: torch.Tensor, g: torch.Generator | None) -> None:
        with torch.no_grad():
            t.fill_(value)
    return init


def _identity(t: torch.Tensor, g: torch.Generator | None) -> None:
    with torch.no_grad():
        t.zero_()
        if t.dim() == 2:
            n = min(t.shape[0], t.shape[1])
            t[:n, :n] = torch.eye(n)


def _shifted_normal(mean: float, std: float) -> Callable[[torch.Tensor, torch.Generator | None], None]:
    def init(t: torch.Tensor, g: torch.Generator | None) -> None:
        with torch.no_grad():
            t.normal_(mean, std, generator=g)
    return init


def _range_uniform(lo: float, hi: float) -> Callable[[torch.Tensor, torch.Generator | None], None]:
    def init(t: torch.Tensor, g: torch.Generator | None) -> None:
        with torch.no_grad():
            t.uniform_(lo, hi, generator=g)
    return init


INITIALIZERS: dict[str, Callable[..., None]] = {
    "glorot_uniform": _variance_scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": _variance_scaling(1.0, "fan_avg", "normal"),
    "he_uniform": _variance_scaling(2.0, "fan_in", "uniform"),
    "he_normal": _variance_scaling(2.0, "fan_in", "normal"),
    "lecun_uniform": _variance_scaling(1.0, "fan_in", "uniform"),
    "lecun_normal": _variance_scaling(1.0, "fan_in", "normal"),
    "orthogonal": _orthogonal,
    "zeros": _constant(0.0),
    "ones": _constant(1.0),
    "identity": _identity,
    "random_normal": lambda t, g: _normal(t, 0.05, g),
    "random_uniform": lambda t, g: _uniform(t, 0.05, g),
    "truncated_normal": lambda t, g: _normal(t, 0.05, g, truncated=True),
}
_ALIASES = {"glorotuniform": "glorot_uniform", "glorotnormal": "glorot_normal", "heuniform": "he_uniform",
            "henormal": "he_normal", "lecununiform": "lecun_uniform", "lecunnormal": "lecun_normal", "zero": "zeros",
            "one": "ones", "randomnormal": "random_normal", "randomuniform": "random_uniform",
            "truncatednormal": "truncated_normal"}


def _key(name: str) -> str:
    k = name.lower()
    return _ALIASES.get(k.replace("_", ""), k)


def get_initializer(spec: Any) -> Callable[[torch.Tensor, torch.Generator | None], None]:
    """An initializer ``fn(tensor, generator)`` for a Keras name, a Keras config dict or a callable.

    Raises:
        ConfigError: an unknown name.
    """
    if callable(spec) and not isinstance(spec, str):
        return lambda t, g: spec(t)
    if isinstance(spec, dict):
        name, cfg = _key(str(spec.get("class_name", ""))), dict(spec.get("config", {}))
        if name in ("constant",):
            return _constant(float(cfg.get("value", 0.0)))
        if name == "random_normal":
            return _shifted_normal(float(cfg.get("mean", 0.0)), float(cfg.get("stddev", 0.05)))
        if name == "random_uniform":
            return _range_uniform(float(cfg.get("minval", -0.05)), float(cfg.get("maxval", 0.05)))
        if name == "orthogonal":
            gain = float(cfg.get("gain", 1.0))
            return lambda t, g: _orthogonal(t, g, gain)
        if name == "variance_scaling":
            return _variance_scaling(float(cfg.get("scale", 1.0)), str(cfg.get("mode", "fan_in")),
                                     "uniform" if cfg.get("distribution") == "uniform" else "normal")
        spec = name
    if not isinstance(spec, str) or _key(spec) not in INITIALIZERS:
        raise ConfigError(f"unknown initializer {spec!r}; valid: {', '.join(sorted(INITIALIZERS))}, constant, "
                          "variance_scaling (as a name or a Keras config dict)")
    return INITIALIZERS[_key(spec)]


def initializer_config(spec: Any, what: str) -> Any:
    """The JSON form of an initializer argument (a name or dict); a callable cannot be saved."""
    if spec is None or isinstance(spec, (str, dict)):
        return spec
    raise ConfigError(f"{what}: a callable initializer cannot be saved with the model; pass its name or a config dict")


def initialize(t: torch.Tensor, spec: Any, seed: int | None = None) -> None:
    """Fill ``t`` in place with initializer ``spec`` (seeded when ``seed`` is given)."""
    g = None
    if seed is not None:
        g = torch.Generator(device="cpu")
        g.manual_seed(int(seed))
    get_initializer(spec)(t, g)


@dataclass
class Regularizer:
    """Keras' ``L1L2``: ``l1 * sum|w| + l2 * sum w^2``, added to the loss (``l1``, ``l2``, ``l1_l2``)."""

    l1: float = 0.0
    l2: float = 0.0

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        out = w.new_zeros(())
        if self.l1:
            out = out + self.l1 * w.abs().sum()
        if self.l2:
            out = out + self.l2 * (w * w).sum()
        return out

    def get_config(self) -> dict[str, Any]:
        return {"class_name": "L1L2", "config": {"l1": self.l1, "l2": self.l2}}


def get_regularizer(spec: Any) -> Regularizer | None:
    """A :class:`Regularizer` for a name (``"l1"``, ``"l2"``, ``"l1_l2"``: Keras' 0.01 defaults), a config
    dict, a Regularizer or None.

    Raises:
        ConfigError: anything else.
    """
    if spec is None or isinstance(spec, Regularizer):
        return spec
    if isinstance(spec, str):
        table = {"l1": Regularizer(0.01, 0.0), "l2": Regularizer(0.0, 0.01), "l1_l2": Regularizer(0.01, 0.01),
                 "l1l2": Regularizer(0.01, 0.01)}
        if spec.lower() not in table:
            raise ConfigError(f"unknown regularizer {spec!r}; valid: l1, l2, l1_l2 (or a config dict)")
        return table[spec.lower()]
    if isinstance(spec, dict):
        cfg = dict(spec.get("config", {}))
        return Regularizer(float(cfg.get("l1", 0.0)), float(cfg.get("l2", 0.0)))
    raise ConfigError(f"a regularizer must be a name, a config dict or padless.nn.weights.Regularizer; got "
                      f"{type(spec).__name__}")


@dataclass
class Constraint:
    """Keras' weight constraints, applied after every optimizer step (norms over the kernel's input axis)."""

    kind: str
    max_value: float = 2.0
    min_value: float = 0.0
    rate: float = 1.0

    def __call__(self, w: torch.Tensor) -> None:
        with torch.no_grad():
            if self.kind == "non_neg":
                w.clamp_(min=0.0)
                return
            if w.dim() < 2:
                norms = w.abs()
            else:  # Keras norms over axis 0 of the kernel (in, out) = each output unit's incoming weights
                norms = w.norm(dim=tuple(range(1, w.dim())), keepdim=True)
            if self.kind == "unit_norm":
                w.div_(norms + 1e-7)
            elif self.kind == "max_norm":
                w.mul_(norms.clamp(0, self.max_value) / (norms + 1e-7))
            elif self.kind == "min_max_norm":
                desired = self.rate * norms.clamp(self.min_value, self.max_value) + (1 - self.rate) * norms
                w.mul_(desired / (norms + 1e-7))

    def get_config(self) -> dict[str, Any]:
        return {"class_name": self.kind, "config": {"max_value": self.max_value, "min_value": self.min_value,
                                                    "rate": self.rate}}


def get_constraint(spec: Any) -> Constraint | None:
    """A :class:`Constraint` for a name (``"max_norm"``, ``"min_max_norm"``, ``"non_neg"``, ``"unit_norm"``),
    a config dict, a Constraint or None.

    Raises:
        ConfigError: anything else.
    """
    if spec is None or isinstance(spec, Constraint):
        return spec
    names = {"max_norm": "max_norm", "maxnorm": "max_norm", "min_max_norm": "min_max_norm",
             "minmaxnorm": "min_max_norm", "non_neg": "non_neg", "nonneg": "non_neg", "unit_norm": "unit_norm",
             "unitnorm": "unit_norm"}
    if isinstance(spec, str):
        key = names.get(spec.lower().replace("_", "")) or names.get(spec.lower())
        if key is None:
            raise ConfigError(f"unknown constraint {spec!r}; valid: max_norm, min_max_norm, non_neg, unit_norm")
        return Constraint(key)
    if isinstance(spec, dict):
        key = names.get(str(spec.get("class_name", "")).lower().replace("_", "")) or names.get(
            str(spec.get("class_name", "")).lower())
        if key is None:
            raise ConfigError(f"unknown constraint {spec.get('class_name')!r}")
        cfg = dict(spec.get("config", {}))
        return Constraint(key, float(cfg.get("max_value", 2.0)), float(cfg.get("min_value", 0.0)),
                          float(cfg.get("rate", 1.0)))
    raise ConfigError(f"a constraint must be a name or a config dict; got {type(spec).__name__}")
