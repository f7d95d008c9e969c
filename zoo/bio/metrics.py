"""Classification metrics in NumPy: accuracy, confusion matrix, per-class precision, recall
and F1, Gorodkin's multi-class MCC and the binary ROC AUC.

With the confusion matrix ``C [O, O]`` (rows true class, columns predicted), ``s`` its total,
``c = trace(C)`` the correct predictions, ``t_k`` the row sums (true counts) and ``p_k`` the
column sums (predicted counts), Gorodkin's R_K (the multi-class Matthews correlation) is::

    R_K = (c·s - sum_k p_k t_k) / sqrt((s² - sum_k p_k²) (s² - sum_k t_k²))

the correlation of the one-hot true and predicted matrices; for two classes it is Matthews'
MCC. It is 0 when a denominator factor is (all truths or all predictions in one class), as
``sklearn.metrics.matthews_corrcoef`` returns.

The ROC AUC is the Mann-Whitney probability that a random positive scores above a random
negative, ties counting 1/2::

    AUC = (sum of the positives' mid-ranks - n_+ (n_+ + 1) / 2) / (n_+ n_-)

Shape letters: ``B`` examples, ``O`` classes.

>>> y, p = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
>>> accuracy(y, p), confusion_matrix(y, p).tolist()
(0.6666666666666666, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
>>> round(gorodkin_mcc(y, p), 4)
0.5222
>>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
0.75

References:
    Gorodkin J. "Comparing two K-category assignments by a K-category correlation
    coefficient." Computational Biology and Chemistry 28(5-6):367-374, 2004.
    https://doi.org/10.1016/j.compbiolchem.2004.09.006

    Matthews B.W. "Comparison of the predicted and observed secondary structure of T4 phage
    lysozyme." Biochimica et Biophysica Acta 405(2):442-451, 1975.

    Hanley J.A., McNeil B.J. "The meaning and use of the area under a receiver operating
    characteristic (ROC) curve." Radiology 143(1):29-36, 1982.
"""

import numpy as np
from scipy.stats import rankdata


def accuracy(y_true, y_pred) -> float:
    """The fraction of predictions equal to the truth.

    Raises:
        ValueError: for empty or mismatched inputs.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts ``C [O, O]`` (int64): ``C[i, j]`` examples of true class ``i`` predicted ``j``.

    Args:
        y_true, y_pred: integer labels ``[B]`` in ``[0, num_classes)``.
        num_classes: ``O`` (default: the largest label + 1).

    Raises:
        ValueError: for mismatched shapes, non-integer or out-of-range labels.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    top = int(max(y_true.max(), y_pred.max()))
    num_classes = top + 1 if num_classes is None else num_classes
    if min(y_true.min(), y_pred.min()) < 0 or top >= num_classes:
        raise ValueError(f"labels must lie in [0, num_classes={num_classes}), got "
                         f"{int(min(y_true.min(), y_pred.min()))} ... {top}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes ** 2)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def precision_recall_f1(y_true, y_pred, num_classes: int | None = None) -> dict:
    """Per-class ``precision``, ``recall``, ``f1`` and ``support`` (true counts), each ``[O]``.

    ``precision_k = C_kk / p_k``, ``recall_k = C_kk / t_k``, ``F1_k`` their harmonic mean; a
    zero denominator gives 0.

    >>> r = precision_recall_f1([0, 0, 1, 1], [0, 1, 1, 1])
    >>> r["precision"].tolist(), r["recall"].tolist(), r["support"].tolist()
    ([1.0, 0.6666666666666666], [0.5, 1.0], [2, 2])
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    hit, predicted, true = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
    precision = _ratio(hit, predicted)
    recall = _ratio(hit, true)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": true}


def gorodkin_mcc(y_true, y_pred, num_classes: int | None = None) -> float:
    """Gorodkin's R_K (multi-class MCC) of the predictions, in ``[-1, 1]``; see the module."""
    return mcc_from_confusion(confusion_matrix(y_true, y_pred, num_classes))


def mcc_from_confusion(cm) -> float:
    """Gorodkin's R_K of a confusion matrix ``[O, O]`` (rows true, columns predicted).

    Raises:
        ValueError: if ``cm`` is not square, or has negative entries.
    """
    cm = np.asarray(cm, np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or (cm < 0).any():
        raise ValueError(f"cm must be a square [O, O] array of counts, got shape {cm.shape}")
    s, c = cm.sum(), np.trace(cm)
    t, p = cm.sum(axis=1), cm.sum(axis=0)
    denominator = np.sqrt((s ** 2 - p @ p) * (s ** 2 - t @ t))
    return float((c * s - t @ p) / denominator) if denominator > 0 else 0.0


def roc_auc(y_true, scores) -> float:
    """Binary ROC AUC of ``scores`` ``[B]`` for labels ``y_true`` ``[B]`` (1 or True positive),
    ties counting 1/2 (mid-ranks); see the module.

    Raises:
        ValueError: for mismatched shapes, labels other than 0/1, non-finite scores, or only
            one class present.
    """
    y = np.asarray(y_true)
    scores = np.asarray(scores, np.float64)
    if y.ndim != 1 or scores.shape != y.shape:
        raise ValueError(f"y_true and scores must both have shape [B], got {y.shape} and "
                         f"{scores.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"y_true must hold 0/1 (or bool) labels, got {np.unique(y)[:5]}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    positive = y.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_auc needs both classes, got {n_pos} positives and {n_neg} "
                         "negatives")
    ranks = rankdata(scores)   # mid-ranks: ties share their average rank
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty with one shape [B], got "
                         f"{y_true.shape} and {y_pred.shape}")
    for name, v in (("y_true", y_true), ("y_pred", y_pred)):
        if not (np.issubdtype(v.dtype, np.integer) or v.dtype == bool):
            raise ValueError(f"{name} must hold integer labels, got dtype {v.dtype}")
    return y_true.astype(np.int64), y_pred.astype(np.int64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


__all__ = ["accuracy", "confusion_matrix", "precision_recall_f1", "gorodkin_mcc",
           "mcc_from_confusion", "roc_auc"]
