"""Metrics: values against Keras 3's definitions written out in numpy (AUC with Keras' thresholds and
Riemann / interpolated PR sums), sums that add up over batches, Keras log names, configs across save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import padless
from padless import ConfigError
from padless.metrics import AUC, Precision, Recall, RootMeanSquaredError, TopKCategoricalAccuracy
from padless.train.metrics import get_metric

from _kit import classes, model, sequences

RNG = np.random.default_rng(11)
N = 300
P1 = RNG.random(N).astype(np.float32)  # binary scores
Y1 = (RNG.random(N) < 0.3 + 0.4 * P1).astype(np.float32)  # informative labels
PK = RNG.dirichlet(np.ones(6), N).astype(np.float32)  # 6-class probabilities
YK = RNG.integers(0, 6, N)


def _value(metric, prob, y, splits=1):
    """The metric over the data, its sums added over ``splits`` batches (as the trainer does)."""
    parts = np.array_split(np.arange(len(y)), splits)
    s = sum(metric.sums(torch.as_tensor(prob[i]), torch.as_tensor(y[i])).numpy().astype(np.float64) for i in parts)
    return metric.result(s, float(len(y)))


# ------------------------------------------------------------------ Keras' AUC, written out (keras/src/metrics)
def _keras_counts(pred, label, num_thresholds=200):
    """Confusion counts at Keras' thresholds [-eps, 1/(n-1), ..., (n-2)/(n-1), 1+eps]; positive = pred > t."""
    th = np.array([0.0 - 1e-7] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1.0 + 1e-7])
    above = pred[None, :] > th[:, None]
    pos = label[None, :] > 0
    tp, fp = (above & pos).sum(1), (above & ~pos).sum(1)
    fn, tn = (~above & pos).sum(1), (~above & ~pos).sum(1)
    return [c.astype(np.float64) for c in (tp, fp, tn, fn)]


def _div(a, b):
    return np.where(b == 0, 0.0, a / np.where(b == 0, 1, b))


def _keras_auc(pred, label, curve="ROC", summation="interpolation", n=200):
    tp, fp, tn, fn = _keras_counts(pred, label, n)
    if curve == "PR" and summation == "interpolation":  # AUC.interpolate_pr_auc
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _div(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        ratio = np.where((p[:-1] > 0) & (p[1:] > 0), _div(p[:-1], np.maximum(p[1:], 0)), 1.0)
        return float(np.sum(_div(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))))
    recall = _div(tp, tp + fn)
    x, y = (_div(fp, fp + tn), recall) if curve == "ROC" else (recall, _div(tp, tp + fp))
    heights = {"interpolation": (y[:-1] + y[1:]) / 2, "minoring": np.minimum(y[:-1], y[1:]),
               "majoring": np.maximum(y[:-1], y[1:])}[summation]
    return float(np.sum((x[:-1] - x[1:]) * heights))  # Riemann sum over the thresholds


@pytest.mark.parametrize("curve, summation", [("ROC", "interpolation"), ("ROC", "minoring"), ("ROC", "majoring"),
                                              ("PR", "interpolation"), ("PR", "majoring")])
def test_auc_equals_keras(curve, summation):
    auc = AUC(curve=curve, summation_method=summation)
    assert _value(auc, P1[:, None], Y1, splits=7) == pytest.approx(_keras_auc(P1, Y1, curve, summation), abs=1e-6)
    if curve == "ROC" and summation == "interpolation":  # and close to the exact (rank) ROC AUC
        pos, neg = P1[Y1 > 0], P1[Y1 == 0]
        exact = float(np.mean(pos[:, None] > neg[None, :]))
        assert _value(auc, P1[:, None], Y1) == pytest.approx(exact, abs=5e-3)


def test_auc_options():
    # few thresholds, given thresholds (uneven: the comparison path), logits, multi-label with weights
    assert _value(AUC(num_thresholds=7), P1[:, None], Y1) == pytest.approx(_keras_auc(P1, Y1, n=7), abs=1e-6)
    uneven = AUC(thresholds=[0.1, 0.5, 0.55, 0.9])
    tp_ref = _value(uneven, P1[:, None], Y1)
    assert 0.5 < tp_ref < 1.0
    logits = np.log(P1 / (1 - P1))[:, None]
    assert _value(AUC(from_logits=True), logits, Y1) == pytest.approx(_value(AUC(), P1[:, None], Y1), abs=1e-6)
    two = np.stack([P1, 1 - P1], 1)
    lab = np.stack([Y1, 1 - Y1], 1)
    multi = AUC(multi_label=True, num_labels=2, label_weights=[1.0, 3.0])
    per = [_keras_auc(two[:, 0], lab[:, 0]), _keras_auc(two[:, 1], lab[:, 1])]
    assert _value(multi, two, lab, splits=3) == pytest.approx((per[0] + 3 * per[1]) / 4, abs=1e-6)
    micro = AUC()  # not multi-label: every entry counted (Keras flattens)
    assert _value(micro, two, lab) == pytest.approx(_keras_auc(two.ravel(), lab.ravel()), abs=1e-6)
    with pytest.raises(ConfigError, match="num_labels"):
        AUC(multi_label=True)


def test_precision_recall_at_threshold_top_k_class_id():
    pos = P1 > 0.5
    tp, fp, fn = np.sum(pos & (Y1 > 0)), np.sum(pos & (Y1 == 0)), np.sum(~pos & (Y1 > 0))
    assert _value(Precision(), P1[:, None], Y1, 5) == pytest.approx(tp / (tp + fp))
    assert _value(Recall(), P1[:, None], Y1, 5) == pytest.approx(tp / (tp + fn))
    pos = P1 > 0.8
    assert _value(Precision(thresholds=0.8), P1[:, None], Y1) == pytest.approx(np.sum(pos & (Y1 > 0)) / np.sum(pos))
    # class_id on 6-class outputs with integer labels (one-hot encoded): class 2 against the rest
    c = PK[:, 2] > 0.5
    assert _value(Recall(class_id=2), PK, YK) == pytest.approx(np.sum(c & (YK == 2)) / np.sum(YK == 2))
    # top_k=1: only each row's largest output can be positive (threshold -inf)
    top = PK.argmax(1)
    assert _value(Precision(top_k=1), PK, YK) == pytest.approx(np.mean(top == YK))
    with pytest.raises(ConfigError, match="one threshold"):
        Precision(thresholds=[0.3, 0.6])


def test_accuracies_rmse_mape_equal_their_definitions():
    yk1 = np.eye(6)[YK]
    assert _value(get_metric("binary_accuracy"), P1[:, None], Y1, 3) == pytest.approx(np.mean((P1 > 0.5) == Y1))
    assert _value(get_metric("categorical_accuracy"), PK, yk1, 3) == pytest.approx(np.mean(PK.argmax(1) == YK))
    assert _value(get_metric("sparse_categorical_accuracy"), PK, YK, 3) == pytest.approx(np.mean(PK.argmax(1) == YK))
    rank = (PK > PK[np.arange(N), YK][:, None]).sum(1)  # classes scoring above the target
    assert _value(get_metric("top_k_categorical_accuracy"), PK, yk1) == pytest.approx(np.mean(rank < 5))  # k = 5
    assert _value(TopKCategoricalAccuracy(k=2), PK, yk1) == pytest.approx(np.mean(rank < 2))
    assert _value(get_metric("sparse_top_k_categorical_accuracy"), PK, YK, 4) == pytest.approx(np.mean(rank < 5))
    err = PK - yk1
    assert _value(RootMeanSquaredError(), PK, yk1, 9) == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-6)
    t = np.abs(yk1 + 0.5)
    mape = 100 * np.mean(np.abs(t - PK) / np.maximum(np.abs(t), 1e-7))
    assert _value(get_metric("mape"), PK, t, 4) == pytest.approx(mape, rel=1e-6)
    # Keras' "accuracy" picks by shapes (Keras 3): binary for one column, sparse for labels, else categorical
    acc = get_metric("accuracy")
    assert _value(acc, P1[:, None], Y1) == pytest.approx(np.mean((P1 > 0.5) == Y1))
    assert _value(acc, PK, YK) == _value(acc, PK, yk1) == pytest.approx(np.mean(PK.argmax(1) == YK))


def test_log_names_are_keras_names():
    xs, y = sequences(), (classes(k=2) > 0).astype(np.float32)
    m = model(out=1, activation="sigmoid")
    # strings log under the string as given (Keras: "acc" -> acc); objects under their name
    m.compile("adam", "binary_crossentropy",
              metrics=["acc", "auc", "precision", "recall", "rmse", "mean_absolute_error", AUC(curve="PR", name="pr_auc"),
                       Precision(thresholds=0.3, name="p30"), RootMeanSquaredError(), padless.metrics.BinaryAccuracy()])
    h = m.fit(xs, y, validation_data=(xs, y), epochs=1, verbose=0)
    names = ["loss", "acc", "auc", "precision", "recall", "rmse", "mean_absolute_error", "pr_auc", "p30",
             "root_mean_squared_error", "binary_accuracy"]
    assert list(h.history) == names + ["val_" + n for n in names]
    assert h.history["rmse"] == h.history["root_mean_squared_error"]


def test_duplicate_log_names_are_refused():
    m = model(out=1, activation="sigmoid")
    with pytest.raises(ConfigError, match="'auc'"):
        m.compile("adam", "binary_crossentropy", metrics=[AUC(), AUC(curve="PR")])


def test_epoch_metrics_are_exact_over_batches_and_real_steps(tmp_path):
    xs, y = sequences(40), (classes(40, k=2) > 0).astype(np.float32)
    m = model(out=1, activation="sigmoid")
    m.compile("adam", "binary_crossentropy", metrics=[AUC(), "precision", RootMeanSquaredError()])
    m.fit(xs, y, epochs=1, verbose=0)
    p = m.predict(xs, verbose=0)[:, 0]
    res = m.evaluate(xs, y, batch_size=7, verbose=0, return_dict=True)
    assert res["auc"] == pytest.approx(_keras_auc(p, y), abs=1e-6)
    assert res["root_mean_squared_error"] == pytest.approx(float(np.sqrt(np.mean((p - y) ** 2))), rel=1e-5)
    # configs survive save/load: names, classes and arguments
    m.save(tmp_path / "m.safetensors")
    back = padless.load_model(tmp_path / "m.safetensors")
    assert [type(x).__name__ for x in back.compiled.metrics] == ["AUC", "Precision", "RootMeanSquaredError"]
    assert back.compiled.metric_names == ["auc", "precision", "root_mean_squared_error"]
    assert back.evaluate(xs, y, batch_size=7, verbose=0, return_dict=True) == pytest.approx(res)
    # per-step outputs: every real step is one item, padding never counts
    ys = [(np.random.default_rng(i).random(len(x)) > 0.5).astype(np.float32) for i, x in enumerate(xs)]
    ms = model(out=1, activation="sigmoid", return_sequences=True)
    ms.compile("adam", "binary_crossentropy", metrics=["binary_accuracy", AUC(num_thresholds=50)])
    ps = np.concatenate([q[:, 0] for q in ms.predict(xs, verbose=0)])
    yy = np.concatenate(ys)
    r = ms.evaluate(xs, ys, batch_size=6, verbose=0, return_dict=True)
    assert r["binary_accuracy"] == pytest.approx(float(np.mean((ps > 0.5) == yy)))
    assert r["auc"] == pytest.approx(_keras_auc(ps, yy, n=50), abs=1e-6)


def test_metric_objects_by_class_and_function():
    def mean_pred(y_true, y_pred):  # a Keras-style metric function: its mean per item
        return torch.mean(y_pred, dim=-1)

    xs, y = sequences(), classes()
    m = model()
    m.compile("adam", "sparse_categorical_crossentropy", metrics=[mean_pred, padless.metrics.SparseCategoricalAccuracy])
    h = m.fit(xs, y, epochs=1, verbose=0)
    assert list(h.history) == ["loss", "mean_pred", "sparse_categorical_accuracy"]
    assert h.history["mean_pred"][0] == pytest.approx(1 / 3, rel=1e-5)  # softmax rows average 1/3


def test_sums_keep_their_length_for_a_process_without_batches():
    from padless.train.inference import reduce_totals
    from padless.train.state import EpochTotals

    class OneProcess:  # all-reduce of one process: what it sends comes back
        def sum(self, vec):
            return list(vec)

    auc = AUC(num_thresholds=11)
    got = reduce_totals(EpochTotals(), ["loss", "auc"], OneProcess(), {"loss": 1, "auc": auc.size})
    assert got.sums["auc"].shape == (2 * 11 + 2,) and got.sums["loss"].shape == (1,)


def test_auto_mode_refuses_a_function_metric_as_keras():
    from padless.callbacks import EarlyStopping

    def my_metric(y_true, y_pred):
        return y_pred[:, 0]

    m = model()
    m.compile("adam", "sparse_categorical_crossentropy", metrics=[my_metric])
    with pytest.raises(ConfigError, match="maximized or minimized"):
        m.fit(sequences(), classes(), verbose=0, callbacks=[EarlyStopping(monitor="my_metric")])
