"""zoo.bio.features: k-mer composition by direct counting, the logistic regression against
SciPy's L-BFGS on the same objective in float64, stratified folds, a real learning check."""

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

from tests.tolerances import assert_close
from zoo.bio import dna
from zoo.bio import features as F

DATA = Path(__file__).parent / "data" / "bio"


def _count_loop(seq, k, alphabet):
    words = [""]
    for _ in range(k):
        words = [w + c for w in words for c in alphabet]
    seq = seq.upper()
    windows = [seq[s:s + k] for s in range(len(seq) - k + 1)]
    return np.array([sum(w == v for w in windows) for v in words])


@pytest.mark.parametrize("k", [1, 2, 3])
def test_dna_kmer_counts_against_direct_counting(k):
    seqs = ["ACGTTGCA", "aaaaacg", "ACNGTRTT", "AC", ""]
    counts = F.kmer_counts(seqs, k)
    assert counts.shape == (5, 4 ** k)
    for row, s in zip(counts, seqs):
        np.testing.assert_array_equal(row, _count_loop(s, k, "ACGT"))
    comp = F.kmer_composition(seqs, k)
    for row, c in zip(comp, counts):
        expect = c / c.sum() if c.sum() else np.zeros_like(c, float)
        assert_close(row, expect)


def test_protein_dipeptide_composition_by_hand():
    comp = F.kmer_composition(["MKVMKX"], 2, alphabet=F.PROTEIN)
    assert comp.shape == (1, 400)
    aa = "ACDEFGHIKLMNPQRSTVWY"
    # windows MK KV VM MK KX: KX skipped, so 4 counted: MK 2/4, KV 1/4, VM 1/4
    expect = np.zeros(400)
    for pair, f in [("MK", 0.5), ("KV", 0.25), ("VM", 0.25)]:
        expect[aa.index(pair[0]) * 20 + aa.index(pair[1])] = f
    assert_close(comp[0], expect)


def test_kmer_errors_name_the_argument():
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        F.kmer_counts(["ACGT"], 0)
    with pytest.raises(ValueError, match="too many features"):
        F.kmer_counts(["ACGT"], 6, alphabet=F.PROTEIN)


def _reference_fit(x, y, num_classes, l2):
    """The same objective minimised in float64 by SciPy, on standardised features."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    z = (x - mean) / np.where(std > 0, std, 1)
    b_, i_ = z.shape
    onehot = np.eye(num_classes)[y]

    def f(theta):
        w, b = theta[:i_ * num_classes].reshape(i_, num_classes), theta[i_ * num_classes:]
        logits = z @ w + b
        loss = -np.mean(np.sum(onehot * log_softmax(logits, axis=1), axis=1))
        g = (softmax(logits, axis=1) - onehot) / b_
        grad = np.concatenate([(z.T @ g + l2 * w).ravel(), g.sum(axis=0)])
        return loss + 0.5 * l2 * np.sum(w * w), grad

    theta = minimize(f, np.zeros(i_ * num_classes + num_classes), jac=True,
                     method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 1e-15,
                                                 "maxiter": 5000}).x
    w, b = theta[:i_ * num_classes].reshape(i_, num_classes), theta[i_ * num_classes:]
    return w, b, softmax(z @ w + b, axis=1)


def test_logistic_regression_reaches_the_float64_optimum():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(43, 7)) * np.array([1, 2, 0.5, 3, 1, 1, 0.1]) + 0.3
    y = (x[:, 0] + x[:, 1] - x[:, 3] + rng.normal(size=43) > 0).astype(int) \
        + (x[:, 2] > 0.5).astype(int)
    model = F.LogisticRegression(l2=0.05, tol=1e-6).fit(x, y)
    w, b, proba = _reference_fit(x, y, 3, 0.05)
    # The float32 fit stops at a gradient norm of 1e-6, not at float32 rounding: its
    # parameters agree with the float64 optimum to ~1e-4 relative (strict convexity bounds
    # the distance by grad / l2), so that is the tolerance here.
    assert model.grad_norm < 1e-5
    assert_close(model.w_io, w, rtol=2e-4, atol=2e-4)
    assert_close(model.b_o, b, rtol=2e-4, atol=2e-4)
    assert_close(model.predict_proba(x), proba, rtol=2e-4, atol=2e-5)
    np.testing.assert_array_equal(model.predict(x), proba.argmax(axis=1))


def test_logistic_regression_is_deterministic_and_handles_absent_classes():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(19, 4))
    y = rng.integers(0, 2, 19)
    a = F.LogisticRegression().fit(x, y, num_classes=3)
    b = F.LogisticRegression().fit(x, y, num_classes=3)
    np.testing.assert_array_equal(a.w_io, b.w_io)
    proba = a.predict_proba(x)
    assert proba.shape == (19, 3)
    assert_close(proba.sum(axis=1), np.ones(19))
    assert (proba[:, 2] < proba[:, :2].max(axis=1)).all()   # an unseen class never wins


def test_logistic_regression_errors_name_the_argument():
    with pytest.raises(ValueError, match="l2 must be a finite number > 0"):
        F.LogisticRegression(l2=0.0)
    with pytest.raises(ValueError, match=r"y must be integer labels of shape \(3,\)"):
        F.LogisticRegression().fit(np.zeros((3, 2)), np.zeros(4, int))
    with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=2\)"):
        F.LogisticRegression().fit(np.zeros((3, 2)), np.array([0, 1, 2]), 2)
    model = F.LogisticRegression().fit(np.eye(3), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"x must be a numeric array of shape \(\?, 3\)"):
        model.predict(np.zeros((2, 4)))


@pytest.mark.parametrize("n,k", [(37, 5), (60, 4), (11, 3)])
def test_stratified_folds_partition_and_balance(n, k):
    rng = np.random.default_rng(n)
    y = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    folds = F.stratified_kfold(y, k, seed=7)
    tests = np.concatenate([t for _, t in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(n))
    sizes = [len(t) for _, t in folds]
    assert max(sizes) - min(sizes) <= 1
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0 and len(train) + len(test) == n
    for c in range(3):
        per_fold = [int((y[t] == c).sum()) for _, t in folds]
        total = int((y == c).sum())
        assert set(per_fold) <= {total // k, -(-total // k)}
    again = F.stratified_kfold(y, k, seed=7)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
    other = F.stratified_kfold(y, k, seed=8)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(folds, other))


def test_stratified_folds_refuse_bad_k():
    with pytest.raises(ValueError, match=r"k must be an integer in \[2, 3\]"):
        F.stratified_kfold([0, 1, 0], 4)


def _junction_features(seqs):
    # 3-mer composition of each side of the junction (exon and intron differ), and 2-mer
    # composition of the 8 nucleotides around it (the donor's GT, the acceptor's AG).
    return np.hstack([F.kmer_composition([s[:30] for s in seqs], 3),
                      F.kmer_composition([s[30:] for s in seqs], 3),
                      F.kmer_composition([s[26:34] for s in seqs], 2)])


def test_kmer_logistic_regression_beats_the_majority_on_the_splice_subset():
    data = dna.read_splice(DATA / "splice_subset.csv")
    x = _junction_features(data.sequences)
    pred = F.cross_val_predict(lambda: F.LogisticRegression(l2=0.1), x, data.labels, k=5)
    majority = np.bincount(data.labels).max() / len(data.labels)
    accuracy = float(np.mean(pred == data.labels))
    assert majority == pytest.approx(1 / 3)
    assert accuracy > majority + 0.2, (accuracy, majority)


FULL = Path(__file__).resolve().parents[2] / "shared" / "data" / "dna_uci" / "splice.csv"


@pytest.mark.slow
@pytest.mark.skipif(not FULL.exists(), reason="the full UCI splice file is not here")
def test_kmer_logistic_regression_on_the_full_splice_set():
    data = dna.read_splice(FULL)
    x = _junction_features(data.sequences)
    pred = F.cross_val_predict(lambda: F.LogisticRegression(l2=0.1), x, data.labels, k=5)
    # measured 0.869; the majority class (N) is 0.519
    assert float(np.mean(pred == data.labels)) > 0.8
