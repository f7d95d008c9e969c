"""Contact scores and metrics: symmetrisation and APC against the formula in NumPy, MI against
a direct count, precision at L/k on hand-made maps (ranges, ties, masks, positions), and
MI+APC clearly above random on real families."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from tests.tolerances import assert_close
from zoo.bio import contacts, msa, structure

SUBSET_ROOT = Path(__file__).parent / "data" / "bio" / "pfam"
FULL_ROOT = Path(__file__).parents[2] / "shared" / "data"
HAVE_FULL = (FULL_ROOT / "pfam_domains_structures").is_dir()


def _apc_loop(a):
    n = a.shape[0]
    row = [sum(a[i, j] for j in range(n)) for i in range(n)]
    col = [sum(a[i, j] for i in range(n)) for j in range(n)]
    total = sum(row)
    return np.array([[a[i, j] - row[i] * col[j] / total for j in range(n)] for i in range(n)])


def test_symmetrize_and_apc_against_the_formula():
    rng = np.random.default_rng(0)
    a = rng.random((2, 7, 7))
    sym = contacts.symmetrize(a)
    np.testing.assert_allclose(sym[1], (a[1] + a[1].T) / 2, rtol=1e-15)
    got = contacts.apc(sym)
    for k in range(2):
        assert_close(got[k], _apc_loop(sym[k]), "float64")
    # JAX arrays take the same path.
    assert_close(contacts.apc(contacts.symmetrize(jnp.asarray(a[0], jnp.float32))),
                 _apc_loop(sym[0]))


def test_apc_of_a_rank_one_map_is_zero():
    # A_ij = u_i u_j is pure background: the correction removes all of it.
    u = np.array([1.0, 2.0, 3.0, 5.0, 0.5])
    assert_close(contacts.apc(np.outer(u, u)), np.zeros((5, 5)), "float64")


# A tiny alignment: 6 sequences, 4 columns, with a gap and an unknown letter (X = gap).
ROWS = ["ACDA", "ACEA", "CADA", "CA-C", "ACXC", "DDDA"]


def _loop_mi(rows, w, lam):
    x = msa.encode(rows)
    num_seqs, num_cols = x.shape
    q, meff = 21, sum(w)
    fi = np.zeros((num_cols, q))
    fij = np.zeros((num_cols, num_cols, q, q))
    for b in range(num_seqs):
        for i in range(num_cols):
            fi[i, x[b, i]] += w[b] / meff
            for j in range(num_cols):
                fij[i, j, x[b, i], x[b, j]] += w[b] / meff
    fi = (1 - lam) * fi + lam / q
    fij = (1 - lam) * fij + lam / q**2
    mi = np.zeros((num_cols, num_cols))
    for i in range(num_cols):
        for j in range(num_cols):
            if i == j:
                continue
            for a in range(q):
                for c in range(q):
                    if fij[i, j, a, c] > 0:
                        mi[i, j] += fij[i, j, a, c] * np.log(fij[i, j, a, c]
                                                            / (fi[i, a] * fi[j, c]))
    return fi, mi


@pytest.mark.parametrize("lam", [0.0, 0.05, 0.5])
def test_mutual_information_against_a_direct_count(lam):
    w = np.array([1.0, 0.5, 0.5, 1.0, 0.25, 1.0])
    fi_loop, mi_loop = _loop_mi(ROWS, w, lam)
    x = msa.encode(ROWS)
    f_i, f_ij = contacts.frequencies(x, w, pseudocount=lam, chunk_size=4)
    assert_close(f_i, fi_loop, "float64")
    assert_close(f_ij.sum(-1), np.broadcast_to(f_i[:, None], f_ij.shape[:3]), "float64")
    mi = contacts.mutual_information(x, w, pseudocount=lam)
    assert_close(mi, mi_loop, "float64")
    assert_close(contacts.mi_apc(x, w, pseudocount=lam), _apc_loop(mi_loop), "float64")


def test_mutual_information_unweighted_by_hand():
    # Columns 0 and 1 are a bijection over 2 equally likely letters: MI = log 2; column 2 is
    # constant: MI = 0 with every column.
    x = msa.encode(["AAW", "CCW", "AAW", "CCW"])
    mi = contacts.mutual_information(x, pseudocount=0.0)
    assert_close(mi, [[0, np.log(2), 0], [np.log(2), 0, 0], [0, 0, 0]], "float64")


def test_frequency_errors():
    x = msa.encode(ROWS)
    with pytest.raises(ValueError, match="weights must be 6 positive numbers"):
        contacts.frequencies(x, np.ones(5))
    with pytest.raises(ValueError, match="pseudocount"):
        contacts.frequencies(x, pseudocount=1.5)


# --- precision on hand-made maps -------------------------------------------------------------

def _map(num, pairs, value=1.0, dtype=float):
    out = np.zeros((num, num), dtype)
    for i, j in pairs:
        out[i, j] = out[j, i] = value
    return out


def test_precision_at_k_by_hand():
    # L = 30: L/5 = 6, L/2 = 15. Long-range true contacts (sep >= 24): (0,25) (1,27) (2,29).
    num = 30
    truth = _map(num, [(0, 25), (1, 27), (2, 29), (3, 10)], 1, np.int8)
    # Scores: (0,25) 9 yes, (0,28) 8 no, (1,27) 7 yes, (3,10) 6 short-range, rest 0.
    scores = _map(num, [(0, 25)], 9) + _map(num, [(0, 28)], 8) + _map(num, [(1, 27)], 7) \
        + _map(num, [(3, 10)], 6)
    assert contacts.precision_at(scores, truth, 2, min_sep=24) == 0.5
    assert contacts.precision_at(scores, truth, 3, min_sep=24) == pytest.approx(2 / 3)
    assert contacts.precision_at(scores, truth, 1, min_sep=6, max_sep=12) == 1.0
    p = contacts.precisions(scores, truth)
    # long range, k = 6: picks (0,25) (0,28) (1,27) then 3 of the 18 zero-score long pairs,
    # of which 1, (2,29), is a contact: 2 + 3·(1/18) hits (the expected value over ties).
    long_pairs = sum(1 for i in range(num) for j in range(i + 24, num))
    assert long_pairs == 21
    assert p["long_P@L/5"] == pytest.approx((2 + 3 * 1 / 18) / 6)
    assert p["long_P@L"] == pytest.approx(3 / 30)              # all 21 pairs, 3 contacts
    assert p["short_P@L/5"] == pytest.approx(1 / 6)            # (3,10) then zero ties
    assert p["medium_P@L"] == 0.0
    assert set(p) == {f"{r}_P@{t}" for r in ("short", "medium", "long")
                      for t in ("L/5", "L/2", "L")}


def test_range_boundaries():
    num = 40
    for sep, name in [(5, None), (6, "short"), (11, "short"), (12, "medium"), (23, "medium"),
                      (24, "long"), (39, "long")]:
        truth = _map(num, [(0, sep)], 1, np.int8)
        p = contacts.precisions(_map(num, [(0, sep)], 1.0), truth)
        for r in contacts.RANGES:
            assert p[f"{r}_P@L"] == (1 / 40 if r == name else 0.0), (sep, r)


def test_equal_scores_give_the_contact_density():
    rng = np.random.default_rng(1)
    num = 47
    truth = (rng.random((num, num)) < 0.1).astype(np.int8)
    truth = np.triu(truth) + np.triu(truth, 1).T
    p = contacts.precisions(np.ones((num, num)), truth)
    for r, (lo, hi) in contacts.RANGES.items():
        pairs = [truth[i, j] for i in range(num) for j in range(i + lo, num)
                 if hi is None or j - i < hi]
        density = sum(pairs) / len(pairs)
        assert contacts.contact_density(truth, min_sep=lo, max_sep=hi) == pytest.approx(density)
        assert p[f"{r}_P@L/5"] == pytest.approx(density)
        assert p[f"{r}_P@L/2"] == pytest.approx(density)


def test_ties_do_not_depend_on_pair_order():
    num = 33
    truth = _map(num, [(0, 30), (1, 31)], 1, np.int8)
    # (0,30) and (2,32) tie at the top, one slot: expected 0.5 hits.
    scores = _map(num, [(0, 30), (2, 32)], 5.0)
    assert contacts.precision_at(scores, truth, 1, min_sep=24) == 0.5
    flipped = scores[::-1, ::-1]
    assert contacts.precision_at(flipped, truth[::-1, ::-1], 1, min_sep=24) == 0.5


def test_masked_pairs_are_skipped_and_short_lists_count_as_misses():
    num = 26
    truth = _map(num, [(0, 25), (1, 25)], 1, np.int8)
    truth[0, 24] = truth[24, 0] = -1                              # unresolved pair
    scores = _map(num, [(0, 24)], 10.0) + _map(num, [(0, 25)], 9.0)
    assert contacts.precision_at(scores, truth, 1, min_sep=24) == 1.0
    # 3 pairs have sep >= 24, one masked: k = 5 picks the other 2 (both contacts) + 3 misses.
    assert contacts.precision_at(scores, truth, 5, min_sep=24) == pytest.approx(2 / 5)
    truth[:, 25] = truth[25, :] = -1                               # residue 25 unresolved
    assert contacts.precision_at(scores, truth, 1, min_sep=24) == 0.0


def test_positions_set_the_separation():
    truth = _map(3, [(0, 2)], 1, np.int8)
    scores = _map(3, [(0, 2)], 1.0)
    assert contacts.precision_at(scores, truth, 1, min_sep=24) == 0.0    # sep 2
    assert contacts.precision_at(scores, truth, 1, min_sep=24,
                                 positions=np.array([0, 10, 30])) == 1.0
    with pytest.raises(ValueError, match=r"positions must have shape \(3,\)"):
        contacts.precision_at(scores, truth, 1, positions=np.arange(4))
    with pytest.raises(ValueError, match="scores has NaN"):
        contacts.precision_at(np.full((3, 3), np.nan), truth, 1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        contacts.precision_at(scores, truth, 0)


# --- real families ---------------------------------------------------------------------------

def _baseline(pfam, root):
    fam = structure.load_family(pfam, root)
    x = fam.alignment.encoded()
    return contacts.family_precisions(fam, contacts.mi_apc(x, msa.sequence_weights(x)))


def test_mi_apc_beats_random_on_the_subset_family():
    p = _baseline("PF00327", SUBSET_ROOT)
    # 52 residues: 406 long-range pairs, 13% of them contacts; MI+APC finds 7 of its top 10.
    assert 0 < p["long_density"] < 0.2
    assert p["long_P@L/5"] >= 0.5 and p["long_P@L/5"] > 3 * p["long_density"]


@pytest.mark.skipif(not HAVE_FULL, reason="full data set not present (shared/data)")
def test_mi_apc_beats_random_on_a_few_families():
    results = [_baseline(f, FULL_ROOT) for f in ("PF00013", "PF00018", "PF00179", "PF00542")]
    precision = np.mean([r["long_P@L/5"] for r in results])
    density = np.mean([r["long_density"] for r in results])
    assert precision > 0.3 and precision > 5 * density


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_FULL, reason="full data set not present (shared/data)")
def test_mi_apc_on_all_40_families():
    results = contacts.main(["--data-dir", str(FULL_ROOT)])
    assert len(results) == 40
    assert np.mean([r["long_P@L/5"] for r in results.values()]) > 0.45


# --- pseudo-likelihood Potts model -----------------------------------------------------------

def _loop_plm_loss(h, w_flat, x, weights, lambda_h, lambda_j):
    num_seqs, num_cols = x.shape
    q = 21
    raw = w_flat.reshape(num_cols, q, num_cols, q)
    j = (raw + raw.transpose(2, 3, 0, 1)) / 2
    nll = 0.0
    for b in range(num_seqs):
        for i in range(num_cols):
            logits = [h[i, a] + sum(j[i, a, k, x[b, k]] for k in range(num_cols) if k != i)
                      for a in range(q)]
            top = max(logits)
            lse = top + np.log(sum(np.exp(l - top) for l in logits))
            nll -= weights[b] * (logits[x[b, i]] - lse)
    pairs = sum(np.sum(j[i, :, k, :] ** 2) for i in range(num_cols)
                for k in range(i + 1, num_cols))
    return nll + lambda_h * np.sum(h ** 2) + lambda_j * pairs


def test_plm_objective_against_a_loop():
    rng = np.random.default_rng(4)
    x = msa.encode(["ACDA", "ACEA", "CA-C", "DDDA", "WC-Y"])
    weights = rng.random(5) / 5
    h = rng.normal(size=(4, 21))
    w_flat = rng.normal(size=(84, 84))
    got = contacts._plm_loss({"h": jnp.asarray(h, jnp.float32),
                              "w": jnp.asarray(w_flat, jnp.float32)},
                             jnp.asarray(contacts._one_hot(x), jnp.float32),
                             jnp.asarray(weights, jnp.float32), 4, 0.3, 0.2)
    expected = _loop_plm_loss(h, w_flat, x, weights, 0.3, 0.2)
    # float32 sums of ~7·10³ squared normal entries: relative rounding ~1e-6.
    assert_close(got, expected, rtol=1e-5, atol=1e-3)


def test_frobenius_score_is_gauge_invariant():
    rng = np.random.default_rng(5)
    j = rng.normal(size=(3, 21, 3, 21))
    shifted = j + rng.normal(size=(3, 21, 3, 1)) + rng.normal(size=(3, 1, 3, 21))
    assert_close(contacts._frobenius(shifted), contacts._frobenius(j), "float64")
    centred = j - j.mean(1, keepdims=True) - j.mean(3, keepdims=True) \
        + j.mean((1, 3), keepdims=True)
    assert_close(contacts._frobenius(j)[0, 2], np.sqrt(np.sum(centred[0, :20, 2, :20] ** 2)),
                 "float64")
    assert (np.diag(contacts._frobenius(j)) == 0).all()


def test_plm_dca_finds_a_planted_coupling():
    # 7 independent columns over 4 letters, except column 5, a relabelled copy of column 1.
    rng = np.random.default_rng(6)
    x = rng.choice(np.array([0, 3, 8, 15]), size=(211, 7)).astype(np.int8)
    relabel = {0: 15, 3: 8, 8: 0, 15: 3}
    x[:, 5] = [relabel[int(v)] for v in x[:, 1]]
    for scores in (contacts.plm_dca(x, max_steps=60), contacts.mi_apc(x)):
        assert scores.shape == (7, 7)
        upper = np.where(np.triu(np.ones((7, 7), bool), 1), scores, -np.inf)
        assert np.unravel_index(np.argmax(upper), upper.shape) == (1, 5)
