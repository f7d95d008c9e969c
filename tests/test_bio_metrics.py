"""zoo.bio.metrics against independent computations: loops over examples, Gorodkin's
definitions written out, pair counting for the AUC, and sklearn where it is installed."""

import itertools

import numpy as np
import pytest

from zoo.bio import metrics as M


def _labels(seed, n, k, skill):
    """Random labels and predictions, right with probability ``skill``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = np.where(rng.random(n) < skill, y, rng.integers(0, k, n))
    return y, p


CASES = [(0, 37, 3, 0.6), (1, 53, 4, 0.3), (2, 29, 2, 0.8), (3, 61, 10, 0.5),
         (4, 41, 5, 0.0)]


def _confusion_loop(y, p, k):
    cm = np.zeros((k, k), int)
    for a, b in zip(y, p):
        cm[a, b] += 1
    return cm


def _gorodkin_triple_sum(cm):
    """R_K as Gorodkin (2004) writes it, summing over the entries of C:

        sum_klm (C_kk C_lm - C_lk C_km)
        / (sqrt(sum_k (sum_l C_lk) (sum_{f != k} sum_g C_gf))
           sqrt(sum_k (sum_l C_kl) (sum_{f != k} sum_g C_fg)))
    """
    k = cm.shape[0]
    num = sum(cm[a, a] * cm[b, c] - cm[b, a] * cm[a, c]
              for a, b, c in itertools.product(range(k), repeat=3))
    d1 = sum(sum(cm[l, a] for l in range(k)) *
             sum(cm[g, f] for f in range(k) if f != a for g in range(k)) for a in range(k))
    d2 = sum(sum(cm[a, l] for l in range(k)) *
             sum(cm[f, g] for f in range(k) if f != a for g in range(k)) for a in range(k))
    return 0.0 if d1 * d2 == 0 else num / np.sqrt(d1 * d2)


def _onehot_correlation(y, p, k):
    """R_K as the correlation of the one-hot matrices X (truth) and Y (prediction):
    cov(X, Y) / sqrt(cov(X, X) cov(Y, Y)), cov summed over classes."""
    x, z = np.eye(k)[y], np.eye(k)[p]
    x, z = x - x.mean(axis=0), z - z.mean(axis=0)
    cxy, cxx, czz = (x * z).sum(), (x * x).sum(), (z * z).sum()
    return 0.0 if cxx * czz == 0 else cxy / np.sqrt(cxx * czz)


@pytest.mark.parametrize("seed,n,k,skill", CASES)
def test_confusion_and_accuracy_against_loops(seed, n, k, skill):
    y, p = _labels(seed, n, k, skill)
    cm = M.confusion_matrix(y, p, k)
    np.testing.assert_array_equal(cm, _confusion_loop(y, p, k))
    assert M.accuracy(y, p) == sum(int(a == b) for a, b in zip(y, p)) / n


@pytest.mark.parametrize("seed,n,k,skill", CASES)
def test_precision_recall_f1_against_loops(seed, n, k, skill):
    y, p = _labels(seed, n, k, skill)
    r = M.precision_recall_f1(y, p, k)
    for c in range(k):
        tp = sum(1 for a, b in zip(y, p) if a == c and b == c)
        fp = sum(1 for a, b in zip(y, p) if a != c and b == c)
        fn = sum(1 for a, b in zip(y, p) if a == c and b != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        assert r["precision"][c] == pytest.approx(prec, rel=1e-12)
        assert r["recall"][c] == pytest.approx(rec, rel=1e-12)
        assert r["f1"][c] == pytest.approx(f1, rel=1e-12, abs=1e-15)
        assert r["support"][c] == tp + fn


@pytest.mark.parametrize("seed,n,k,skill", CASES)
def test_gorodkin_against_its_definitions(seed, n, k, skill):
    y, p = _labels(seed, n, k, skill)
    got = M.gorodkin_mcc(y, p, k)
    cm = _confusion_loop(y, p, k)
    assert got == pytest.approx(_gorodkin_triple_sum(cm), rel=1e-10, abs=1e-12)
    assert got == pytest.approx(_onehot_correlation(y, p, k), rel=1e-10, abs=1e-12)
    assert got == pytest.approx(M.mcc_from_confusion(cm.T), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("seed,n,k,skill", CASES)
def test_gorodkin_against_sklearn(seed, n, k, skill):
    sk = pytest.importorskip("sklearn.metrics", reason="sklearn is not installed")
    y, p = _labels(seed, n, k, skill)
    assert M.gorodkin_mcc(y, p, k) == pytest.approx(sk.matthews_corrcoef(y, p),
                                                    rel=1e-10, abs=1e-12)


def test_binary_mcc_is_matthews_by_hand():
    # tp 3, tn 4, fp 1, fn 2: (3*4 - 1*2) / sqrt(4 * 5 * 5 * 6) = 10 / sqrt(600)
    y = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    p = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert M.gorodkin_mcc(y, p) == pytest.approx(10 / np.sqrt(600), rel=1e-12)


def test_mcc_edge_cases():
    assert M.gorodkin_mcc([0, 1, 2, 1], [0, 1, 2, 1]) == pytest.approx(1.0)
    assert M.gorodkin_mcc([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    assert M.gorodkin_mcc([0, 1, 2, 0], [1, 1, 1, 1]) == 0.0      # one predicted class
    with pytest.raises(ValueError, match="cm must be a square"):
        M.mcc_from_confusion(np.ones((2, 3)))


def _auc_pairs(y, s):
    pos = [b for a, b in zip(y, s) if a == 1]
    neg = [b for a, b in zip(y, s) if a == 0]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed,n,levels", [(0, 31, 0), (1, 47, 4), (2, 23, 2)])
def test_roc_auc_against_pair_counting(seed, n, levels):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = y * 0.7 + rng.normal(size=n)
    if levels:          # coarse scores: many ties
        s = np.round(s * levels) / levels
    assert M.roc_auc(y, s) == pytest.approx(_auc_pairs(y, s), rel=1e-12)
    assert M.roc_auc(y.astype(bool), -s) == pytest.approx(1 - _auc_pairs(y, s), rel=1e-12)


def test_roc_auc_by_hand_and_errors():
    assert M.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert M.roc_auc([0, 0, 1], [0.1, 0.2, 0.9]) == 1.0
    with pytest.raises(ValueError, match="needs both classes, got 0 positives"):
        M.roc_auc([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="0/1"):
        M.roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="same shape|shape \\[B\\]"):
        M.roc_auc([0, 1], [0.1, 0.2, 0.3])


def test_label_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes=2\)"):
        M.confusion_matrix([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="y_pred must hold integer labels"):
        M.accuracy([0, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match="non-empty with one shape"):
        M.accuracy([0, 1], [0])
