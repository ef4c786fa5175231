"""Keras' ``keras.optimizers``: ``from padless.optimizers import Adam`` and ``padless.optimizers.schedules``.

Owns nothing: re-exports the optimizers of :mod:`padless.train.optimizers` (backed by ``torch.optim``; the
module documents the Keras -> torch mapping) and the schedules as :mod:`padless.optimizers.schedules`.
Does not own: any optimizer's behaviour.

Example:
    >>> from padless.optimizers import Adam, schedules
    >>> opt = Adam(learning_rate=schedules.ExponentialDecay(1e-2, decay_steps=100, decay_rate=0.5))
    >>> round(float(opt.learning_rate), 6)
    0.01
"""

from padless.optimizers import schedules
from padless.train.optimizer_base import Optimizer
from padless.train.optimizers import SGD, Adagrad, Adam, AdamW, Nadam, RMSprop, deserialize, get, serialize

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Nadam", "get", "serialize", "deserialize",
           "schedules"]
