"""Real data sets for examples, tests and benchmarks.

Owns: the public data-set API: :func:`load` / :func:`classes` / :func:`names` for the built-in data sets
(``"japanese_vowels"`` and ``"plaid"``, both shipped inside the ``sktime`` wheel) and :func:`load_ts` for
your own sktime ``.ts`` files. Does not own: any parsing (sktime's ``load_from_tsfile`` does it), the
container (:class:`padless.data.RaggedArray`) or batching. Needs the optional extra:
``pip install 'padless[datasets]'``.

Example:
    >>> import padless.datasets
    >>> (x_train, y_train), (x_test, y_test) = padless.datasets.load("plaid")
    >>> x_train.num_features, len(padless.datasets.classes("plaid"))
    (1, 11)
"""

from __future__ import annotations

from padless.datasets._builtin import cache_dir, classes, load, names
from padless.datasets._ts import load_ts

__all__ = ["load", "classes", "names", "load_ts", "cache_dir"]
