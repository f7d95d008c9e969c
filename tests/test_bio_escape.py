"""Tests for zoo.bio.escape: the rank sum and the escape curve against direct loops, the paper's
published AUCs reproduced from its published scores (a shipped subset always, the full tables
when present), batched language-model scoring against a one-at-a-time loop with a fake model
whose scores are known by hand, the EVEscape reader and the plot."""

import csv
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.tolerances import assert_close
from zoo.bio import escape

SUBSET = Path(__file__).parent / "data" / "bio" / "escape"        # a viral_escape/ folder
FULL = Path(__file__).parents[2] / "shared" / "data"
HAS_FULL = (FULL / "viral_escape" / "hie2021_results" / "escape_results.txt").exists()
needs_full = pytest.mark.skipif(not HAS_FULL, reason=f"full viral_escape data not at {FULL}")

# The published AUCs of escape_results.txt (Hie et al. 2021, Fig. 3 / table S), typed in.
PUBLISHED = {
    "flu_h1": {"cscs": 0.808, "grammaticality": 0.790, "semantic_change": 0.639},
    "flu_h3": {"cscs": 0.766, "grammaticality": 0.678, "semantic_change": 0.714},
    "hiv": {"cscs": 0.636, "grammaticality": 0.596, "semantic_change": 0.598},
    "cov": {"cscs": 0.845, "grammaticality": 0.797, "semantic_change": 0.636},
    "cov2rbd": {"cscs": 0.567, "grammaticality": 0.492, "semantic_change": 0.591},
}


# --- independent references: direct loops -----------------------------------------------------

def _avg_ranks(x):
    """1-based ranks, ties given their average rank, by counting (O(n²))."""
    x = list(x)
    return [sum(y < v for y in x) + (sum(y == v for y in x) + 1) / 2 for v in x]


def _loop_auc(scores, is_escape, top=None, n_escape=None):
    """The paper's curve by a direct loop: rank by decreasing score (ties averaged), count the
    escape mutants of rank <= k for k = 1..top, trapezoids from k = 1, divided by top · n."""
    ranks = _avg_ranks([-s for s in scores])
    top = len(scores) if top is None else top
    found = [sum(1 for r, e in zip(ranks, is_escape) if e and r <= k) for k in range(1, top + 1)]
    n_escape = found[-1] if n_escape is None else n_escape
    area = sum((found[k] + found[k + 1]) / 2 for k in range(top - 1))
    return area / (top * n_escape)


def _loop_protocol(prob, change, is_escape):
    acq = [a + b for a, b in zip(_avg_ranks(change), _avg_ranks(prob))]
    top = sum(1 for c in change if c > 0)
    ranks = _avg_ranks([-a for a in acq])
    n = sum(1 for r, e in zip(ranks, is_escape) if e and r <= top)
    return {"cscs": _loop_auc(acq, is_escape, top, n),
            "grammaticality": _loop_auc(prob, is_escape, top, n),
            "semantic_change": _loop_auc(change, is_escape, top, n)}


def _read_rows(path, delimiter):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


# --- single mutants and the rank sum ----------------------------------------------------------

def test_single_mutants_19_per_position_without_the_wild_type():
    wt = "MKVW"
    muts = escape.single_mutants(wt)
    assert len(muts) == 19 * len(wt)
    assert all(w == wt[p] and m != w and m in "ACDEFGHIKLMNPQRSTVWY" for p, w, m in muts)
    assert len(set(muts)) == len(muts)
    assert [m for p, _, m in muts if p == 2] == list("ACDEFGHIKLMNPQRSTWY")   # V skipped
    assert escape.mutate(wt, [(3, "W", "A"), (0, "M", "K")]) == ["MKVA", "KKVW"]


def test_single_mutants_and_mutate_refuse_bad_input():
    with pytest.raises(ValueError, match="wildtype"):
        escape.single_mutants("")
    with pytest.raises(ValueError, match="expected 'K' at position 1, got 'A'"):
        escape.mutate("MAV", [(1, "K", "R")])
    with pytest.raises(ValueError, match="out of range"):
        escape.mutate("MAV", [(5, "K", "R")])


def test_cscs_is_the_rank_sum_with_ties_averaged():
    prob = np.array([0.2, 0.1, 0.2, 0.7, 0.05])
    change = np.array([3.0, 9.0, 1.0, 1.0, 4.0])
    # By hand: rank(change) = 3, 5, 1.5, 1.5, 4; rank(prob) = 3.5, 2, 3.5, 5, 1.
    np.testing.assert_array_equal(escape.cscs(prob, change), [6.5, 7, 5, 6.5, 5])
    np.testing.assert_array_equal(escape.cscs(prob, change, beta=0.5),
                                  [4.75, 6, 3.25, 4, 4.5])
    with pytest.raises(ValueError, match="same shape"):
        escape.cscs(prob, change[:3])


# --- the escape curve ------------------------------------------------------------------------

def test_escape_curve_by_hand_with_ties():
    # -scores ranks: the two 5s share rank 1.5, then 3 and 1; escapes at ranks 1.5 and 3.
    scores, esc = [5.0, 5.0, 1.0, 3.0], np.array([True, False, False, True])
    acquired, found = escape.escape_curve(scores, esc)
    np.testing.assert_array_equal(acquired, [1, 2, 3, 4])
    np.testing.assert_array_equal(found, [0, 1, 2, 2])
    # (0 + 1)/2 + (1 + 2)/2 + (2 + 2)/2 = 4 over 4 · 2.
    assert escape.escape_auc(scores, esc) == 0.5
    assert escape.escape_auc(scores, esc, top=3) == pytest.approx(2.0 / 6)
    assert escape.escape_auc(scores, esc, top=3, n_escape=4) == pytest.approx(2.0 / 12)


def test_escape_auc_extremes():
    m, n = 41, 6
    scores = np.arange(m, 0, -1.0)                      # mutant 0 scored highest
    first = np.zeros(m, bool)
    first[:n] = True
    # Escapes first: found_k = min(k, n), area = Σ_{k<n} (2k + 1)/2 + n (m − n) = 17.5 + 210.
    assert escape.escape_auc(scores, first) == pytest.approx(227.5 / (m * n))
    # Escapes last: found_k = max(0, k − (m − n)), area = Σ_{j=0}^{n−1} (2j + 1)/2 = n²/2.
    assert escape.escape_auc(scores, first[::-1]) == pytest.approx(n * n / 2 / (m * n))


@pytest.mark.parametrize("seed", [0, 1])
def test_escape_auc_matches_a_direct_loop_on_tied_scores(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 9, size=37).astype(float)   # many ties
    esc = rng.random(37) < 0.3
    assert escape.escape_auc(scores, esc) == pytest.approx(_loop_auc(scores, esc), abs=1e-12)
    assert escape.escape_auc(scores, esc, top=29) == pytest.approx(
        _loop_auc(scores, esc, top=29), abs=1e-12)


def test_escape_auc_refuses_bad_input():
    with pytest.raises(ValueError, match="at least one escape"):
        escape.escape_auc([1.0, 2.0], np.array([False, False]))
    with pytest.raises(ValueError, match="is_escape must be a bool vector of shape"):
        escape.escape_auc([1.0, 2.0], np.array([1, 0]))
    with pytest.raises(ValueError, match="top must be <= the number of mutants 2, got 3"):
        escape.escape_curve([1.0, 2.0], np.array([True, False]), top=3)
    with pytest.raises(ValueError, match="scores must be a non-empty vector"):
        escape.escape_curve(np.zeros((2, 2)), np.zeros((2, 2), bool))


# --- the paper's published AUCs --------------------------------------------------------------

def test_published_table_is_read():
    table = escape.published_aucs(data_dir=SUBSET)
    for virus, scores in PUBLISHED.items():
        for key, value in scores.items():
            assert table[escape.SCORES[key]][virus] == value
    assert table["mafft"]["hiv"] == 0.518


# The paper's filters written out again: standard residues; measured in the DMS except for
# Spike (every standard mutant); the RBD sites 331-531. (rows, kept rows) of the subsets.
SUBSET_FILTERS = {
    "flu_h1": (lambda r: r["is_viable"] == "True", 27 * 24 + 1, 27 * 19 + 1),
    "cov": (lambda r: True, 22 * 24, 22 * 19),
    "cov2rbd": (lambda r: r["is_viable"] == "True" and 330 <= int(r["pos"]) <= 530,
                19 * 24, None),
}


@pytest.mark.parametrize("virus", sorted(SUBSET_FILTERS))
def test_reduced_published_check_on_the_shipped_subset(virus):
    """27 H1 positions (the wild-type row included), 22 Spike and 19 RBD positions (window
    edges included) against a direct loop over the raw TSV."""
    keep, n_rows, n_kept = SUBSET_FILTERS[virus]
    rows = _read_rows(SUBSET / "viral_escape" / "hie2021_results"
                      / f"analyze_semantics_{virus}_bilstm_512.txt", "\t")
    kept = [r for r in rows if r["mut"] not in "BJUXZ" and keep(r)]
    assert len(rows) == n_rows and (n_kept is None or len(kept) == n_kept)
    prob = [float(r["prob"]) for r in kept]
    change = [float(r["change"]) for r in kept]
    esc = [r["is_escape"] == "True" for r in kept]
    assert sum(esc) >= 5
    want = _loop_protocol(prob, change, esc)
    got = escape.reproduce_published(virus, data_dir=SUBSET)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


@needs_full
@pytest.mark.parametrize("virus", ["flu_h1", "hiv", "cov"])
def test_full_published_aucs_reproduce(virus):
    got = escape.reproduce_published(virus, data_dir=FULL)
    published = escape.published_aucs(data_dir=FULL)
    for key, value in PUBLISHED[virus].items():
        assert published[escape.SCORES[key]][virus] == value
        assert abs(got[key] - value) <= 0.005, (virus, key, got[key], value)


@needs_full
@pytest.mark.parametrize("virus", ["flu_h3", "cov2rbd"])
@pytest.mark.xfail(strict=True, reason="the 2021 AUCs use escape labels re-derived from raw "
                   "DMS files that differ from the tables' is_escape columns (zoo.bio.escape's "
                   "docstring); the raw files are not in the data")
def test_full_published_aucs_that_do_not_reproduce(virus):
    got = escape.reproduce_published(virus, data_dir=FULL)
    assert all(abs(got[k] - v) <= 0.005 for k, v in PUBLISHED[virus].items())


# The 2020 version of escape_results.txt (brianhie/viral-mutation at commit dbe2f1e), scored
# before the reference dropped the ambiguity codes and the mutants outside the DMS.
PUBLISHED_2020 = {
    "flu_h1": {"cscs": 0.834, "grammaticality": 0.82, "semantic_change": 0.664},
    "flu_h3": {"cscs": 0.771, "grammaticality": 0.684, "semantic_change": 0.709},
    "hiv": {"cscs": 0.692, "grammaticality": 0.667, "semantic_change": 0.622},
}


@needs_full
@pytest.mark.parametrize("virus", sorted(PUBLISHED_2020))
def test_full_2020_table_reproduces_with_all_rows_and_the_tables_labels(virus):
    """H3 included: the tables are the ones the paper scored; only the 2021 labels differ."""
    t = escape.load_published(virus, data_dir=FULL)
    got = escape.protocol_aucs(t.prob, t.change, t.is_escape)
    for key, value in PUBLISHED_2020[virus].items():
        assert abs(got[key] - value) <= 0.005, (virus, key, got[key], value)


@needs_full
def test_full_protocol_keeps_the_expected_mutants():
    """Row counts of the paper's filter by hand: 19 standard mutants per position (+ the wild
    type row the reference's tables carry), the RBD window 331-531 measured in the DMS."""
    counts = {"flu_h1": 565 * 19 + 1, "hiv": 670 * 19 + 1, "cov": 1273 * 19}
    for virus, n in counts.items():
        table = escape.load_published(virus, data_dir=FULL)
        assert escape.protocol_mask(table, virus).sum() == n, virus


# --- scoring with a language model -----------------------------------------------------------

VOCAB = {a: i + 3 for i, a in enumerate("ACDEFGHIKLMNPQRSTVWY")}   # 0 pad, 1 start, 2 end
V, D, OFFSET = 23, 26, 1                                          # D = V + 3 zero columns
WEIGHT = np.arange(1.0, V + 1) ** 1.5                             # one weight per letter


def _fake_lm(tokens):
    """A bag-of-letters model: p_t(v) ∝ v + 1 + t (independent of the tokens) and
    hidden_t = WEIGHT[x_t] · one_hot(x_t), padded with zeros to width D."""
    b, t = tokens.shape
    logits = jnp.log(jnp.arange(V)[None, :] + 1.0 + jnp.arange(t)[:, None])
    log_probs = jnp.broadcast_to(jax.nn.log_softmax(logits, -1), (b, t, V))
    hidden = jax.nn.one_hot(tokens, V) * jnp.asarray(WEIGHT, jnp.float32)[tokens][..., None]
    return log_probs, jnp.pad(hidden, ((0, 0), (0, 0), (0, D - V)))


FAKE_LM = jax.jit(_fake_lm)


def _tokens(seq):
    return np.array([1] + [VOCAB[c] for c in seq] + [2])


def test_score_mutants_matches_the_hand_values_and_a_one_at_a_time_loop():
    wt = "MKVWC"                                                   # N = 5 residues
    n = len(wt)
    got = escape.score_mutants(FAKE_LM, wt, VOCAB, tokens=_tokens(wt), offset=OFFSET,
                               batch_size=7)
    assert got.mutants == escape.single_mutants(wt) and len(got.prob) == 19 * n
    # By hand: p = (id + 1 + t) / Σ_v (v + 1 + t) at token t = OFFSET + i; Δz = (w_wt + w_mut)/N.
    for (i, w, m), p, c in zip(got.mutants, got.prob, got.change):
        t = OFFSET + i
        assert p == pytest.approx((VOCAB[m] + 1 + t) / sum(v + 1 + t for v in range(V)),
                                  rel=1e-5)
        assert c == pytest.approx((WEIGHT[VOCAB[w]] + WEIGHT[VOCAB[m]]) / n, rel=1e-5)
    # One mutant at a time, straight through the model.
    lm = _fake_lm                                                  # eager, unbatched
    _, h_wt = lm(jnp.asarray(_tokens(wt))[None])
    z_wt = np.asarray(h_wt, np.float64)[0, 1:-1].mean(0)
    for (i, w, m), c in zip(got.mutants, got.change):
        seq = wt[:i] + m + wt[i + 1:]
        _, h = lm(jnp.asarray(_tokens(seq))[None])
        assert_close(c, np.abs(np.asarray(h, np.float64)[0, 1:-1].mean(0) - z_wt).sum())


def test_score_mutants_positions_pool_sums_the_per_position_distances():
    wt = "DEFGHIKLM"
    got = escape.score_mutants(FAKE_LM, wt, VOCAB, tokens=_tokens(wt),
                               offset=OFFSET, batch_size=13, pool="positions")
    # Only the mutated token's hidden state moves: Σ_t ‖Δh_t‖₁ = w_wt + w_mut (no 1/N).
    want = [WEIGHT[VOCAB[w]] + WEIGHT[VOCAB[m]] for _, w, m in got.mutants]
    assert_close(got.change, want)


def test_score_mutants_batch_size_does_not_change_scores_and_compiles_once():
    wt, traces = "GHIKL", []

    @jax.jit
    def lm(tokens):
        traces.append(tokens.shape)
        return _fake_lm(tokens)

    def log_probs_fn(tokens):
        return _fake_lm(tokens)[0]

    def hidden_fn(tokens):
        return _fake_lm(tokens)[1]

    a = escape.score_mutants(lm, wt, VOCAB, tokens=_tokens(wt), offset=OFFSET, batch_size=11)
    assert traces == [(1, 7), (11, 7)]                   # 95 = 8 · 11 + 7: the last is padded
    traces.clear()
    b = escape.score_mutants(lm, wt, VOCAB, tokens=_tokens(wt), offset=OFFSET, batch_size=1)
    c = escape.score_mutants((log_probs_fn, hidden_fn), wt, VOCAB, tokens=_tokens(wt),
                             offset=OFFSET, batch_size=200)
    assert traces == []                                  # B = 1 and B = 11 compiled already
    for other in (b, c):
        assert_close(a.prob, other.prob)
        assert_close(a.change, other.change)


def test_score_mutants_default_tokens_and_chosen_mutants():
    wt = "PQRST"
    muts = [(4, "T", "A"), (0, "P", "W")]
    got = escape.score_mutants(FAKE_LM, wt, VOCAB, mutants=muts, batch_size=3)
    assert got.mutants == muts
    # No specials: token t = i.
    assert got.prob[0] == pytest.approx((VOCAB["A"] + 1 + 4) / sum(v + 5 for v in range(V)),
                                        rel=1e-5)
    assert got.change[1] == pytest.approx((WEIGHT[VOCAB["P"]] + WEIGHT[VOCAB["W"]]) / 5,
                                          rel=1e-5)


def test_score_mutants_refuses_bad_input():
    wt = "MKV"
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        escape.score_mutants(_fake_lm, wt, VOCAB, batch_size=0)
    with pytest.raises(ValueError, match="pool must be one of"):
        escape.score_mutants(_fake_lm, wt, VOCAB, pool="max")
    with pytest.raises(ValueError, match="must encode the wild type"):
        escape.score_mutants(_fake_lm, wt, VOCAB, tokens=_tokens(wt), offset=0)
    with pytest.raises(ValueError, match="offset must place the 3 residues inside the 5"):
        escape.score_mutants(_fake_lm, wt, VOCAB, tokens=_tokens(wt), offset=3)
    with pytest.raises(ValueError, match="vocab has no token for residue 'B'"):
        escape.score_mutants(_fake_lm, "MBV", VOCAB)
    with pytest.raises(ValueError, match="does not match the wild type"):
        escape.score_mutants(_fake_lm, wt, VOCAB, mutants=[(0, "K", "A")])


# --- EVEscape and the plot -------------------------------------------------------------------

def test_evescape_reader_and_auc_on_the_subset():
    path = SUBSET / "viral_escape" / "evescape_2023" / "flu_h1_evescape.csv"
    rows = _read_rows(path, ",")
    ev = escape.load_evescape("flu_h1", data_dir=SUBSET)
    assert len(ev.pos) == len(rows) == 27 * 19
    assert ev.pos.min() == 0 and int(rows[0]["i"]) == 1          # 1-based in the file
    assert ev.is_escape.sum() == sum(r["is_escape_experiment"] == "True" for r in rows)
    want = _loop_auc([float(r["evescape"]) for r in rows],
                     [r["is_escape_experiment"] == "True" for r in rows])
    assert escape.evescape_auc("flu_h1", data_dir=SUBSET) == pytest.approx(want, abs=1e-12)
    side = escape.cscs_on_evescape_labels("flu_h1", data_dir=SUBSET)
    assert side["n"] == 27 * 19 and side["evescape"] == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="label must be a column"):
        escape.read_evescape(path, label="is_escape")


@needs_full
def test_full_evescape_beside_cscs():
    for virus in escape.EVESCAPE:
        side = escape.cscs_on_evescape_labels(virus, data_dir=FULL)
        assert 0.5 < side["evescape"] < 1 and 0.4 < side["cscs"] < 1, (virus, side)


def test_plot_writes_a_png(tmp_path):
    out = escape.plot_published("flu_h1", tmp_path / "h1.png", data_dir=SUBSET)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_unknown_virus_is_named():
    with pytest.raises(ValueError, match="virus"):
        escape.load_published("ebola", data_dir=SUBSET)
