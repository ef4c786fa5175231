"""Keras' ``keras.metrics``: metric classes by their Keras names (``metrics=[padless.metrics.AUC()]``).

Owns nothing: re-exports the metrics of :mod:`padless.train.metrics` and :mod:`padless.train.keras_metrics`
(sums that add up exactly over batches and processes) and :func:`get`. Does not own: any metric's behaviour.

Example:
    >>> from padless.metrics import AUC, Precision
    >>> AUC(curve="PR").name, Precision().name
    ('auc', 'precision')
"""

from padless.train.keras_metrics import (
    AUC,
    Accuracy,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    CategoricalHinge,
    CosineSimilarity,
    Hinge,
    KLDivergence,
    LogCoshError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    Poisson,
    Precision,
    Recall,
    RootMeanSquaredError,
    SparseCategoricalCrossentropy,
    SquaredHinge,
)
from padless.train.metrics import (
    BinaryAccuracy,
    CategoricalAccuracy,
    MeanMetricWrapper,
    Metric,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    register_metric,
)
from padless.train.metrics import get_metric as get

__all__ = ["Metric", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
           "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "AUC", "Precision",
           "Recall", "RootMeanSquaredError", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
           "MeanSquaredLogarithmicError", "LogCoshError", "CosineSimilarity", "KLDivergence", "Poisson", "Hinge",
           "SquaredHinge", "CategoricalHinge", "BinaryCrossentropy", "CategoricalCrossentropy",
           "SparseCategoricalCrossentropy", "get", "register_metric"]
