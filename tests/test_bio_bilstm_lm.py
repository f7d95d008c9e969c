"""Tests for zoo.bio.bilstm_lm: the two-sided LM against a NumPy LSTM loop, its two-sidedness
(no residue sees itself, every other residue is seen), padding, the mean-pooled embedding, the
corpus reader, batches, checkpoints, mutant scoring through zoo.bio.escape, and a short
training run that beats the residue-frequency baseline."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.tolerances import assert_close
from zoo.bio import bilstm_lm as lm
from zoo.bio import escape_report
from zoo.bio import escape

FULL = Path(__file__).parents[2] / "shared" / "data"
HAS_FULL = (FULL / "viral_escape" / "hie2021_results").is_dir()
needs_full = pytest.mark.skipif(not HAS_FULL, reason=f"full viral_escape data not at {FULL}")

# Sizes pairwise distinct: vocab 30, embed 5, hidden 7, 2 layers, T 11, B 3.
CFG = lm.Config(embed_dim=5, hidden_dim=7, num_layers=2)


@pytest.fixture(scope="module")
def params():
    return lm.init(jax.random.key(3), CFG)


def _tokens(rng, b, t):
    return rng.integers(5, 25, (b, t)).astype(np.int32)


# --- an independent reference: the model as NumPy loops ---------------------------------------

def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_lstm(p, xs):
    """One layer, one direction over ``xs [T, I]``: the outputs ``[T, D]`` (gates i f g o)."""
    w_i, w_h = np.asarray(p["w_i_igd"], np.float64), np.asarray(p["w_h_dgd"], np.float64)
    b = np.asarray(p["b_i_gd"], np.float64) + np.asarray(p["b_h_gd"], np.float64)
    d = w_h.shape[0]
    h, c, out = np.zeros(d), np.zeros(d), []
    for x in xs:
        a = np.einsum("i,igd->gd", x, w_i) + np.einsum("e,egd->gd", h, w_h) + b
        c = _sigmoid(a[1]) * c + _sigmoid(a[0]) * np.tanh(a[2])
        h = _sigmoid(a[3]) * np.tanh(c)
        out.append(h)
    return np.array(out)


def _np_stack(p, xs, layers):
    for l in range(layers):
        xs = _np_lstm(p[f"layer_{l}"]["fwd"], xs)
    return xs


def _np_model(params, seq, cfg):
    """``(log_probs [N, V], hidden [N, 2D])`` of one unpadded sequence, position by position:
    the forward stack over x_<t and the backward stack over x_>t, run afresh for each t."""
    e = np.asarray(params["embed_vi"], np.float64)[seq]
    n, d = len(seq), cfg.hidden_dim
    hidden = np.zeros((n, 2 * d))
    for t in range(n):
        if t > 0:
            hidden[t, :d] = _np_stack(params["fwd"], e[:t], cfg.num_layers)[-1]
        if t < n - 1:
            hidden[t, d:] = _np_stack(params["bwd"], e[t + 1:][::-1], cfg.num_layers)[-1]
    logits = hidden @ np.asarray(params["head"]["w"], np.float64) + np.asarray(
        params["head"]["b"], np.float64)
    logits -= logits.max(-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True)), hidden


def test_apply_matches_numpy_loops(params):
    seq = _tokens(np.random.default_rng(0), 1, 9)
    want_lp, want_h = _np_model(params, seq[0], CFG)
    with jax.default_matmul_precision("highest"):
        log_probs, hidden = lm.apply(params, jnp.asarray(seq), None, CFG)
    assert log_probs.shape == (1, 9, 30) and hidden.shape == (1, 9, 14)
    assert_close(hidden[0], want_h)
    assert_close(log_probs[0], want_lp, rtol=1e-5, atol=1e-5)  # log-softmax of 30 logits


# --- two-sidedness -----------------------------------------------------------------------------

def test_no_residue_sees_itself(params):
    rng = np.random.default_rng(1)
    seq = _tokens(rng, 1, 11)
    base = np.asarray(lm.apply(params, jnp.asarray(seq), None, CFG)[0])
    for t in range(11):
        changed = seq.copy()
        changed[0, t] = 5 + (changed[0, t] - 5 + 7) % 20
        out = np.asarray(lm.apply(params, jnp.asarray(changed), None, CFG)[0])
        np.testing.assert_array_equal(out[0, t], base[0, t])          # position t: unchanged
        others = np.delete(np.arange(11), t)
        assert np.all(np.abs(out[0, others] - base[0, others]).max(-1) > 0), t  # all others see it


def test_no_residue_sees_itself_by_gradient(params):
    """d log p(x_t) / d e(x_s) is zero exactly at s = t and nonzero elsewhere."""
    seq = jnp.asarray(_tokens(np.random.default_rng(2), 1, 8))
    e = params["embed_vi"][seq]                                       # [1, T, I]

    def log_prob_at(e_in, t):
        # Feed the embeddings directly: token t's embedding row is position t's input.
        fake = dict(params, embed_vi=jnp.concatenate([e_in[0], jnp.zeros((22, 5))]))
        log_probs, _ = lm._apply(fake, jnp.arange(8)[None], jnp.array([8]), CFG)
        return log_probs[0, t, seq[0, t]]

    for t in range(8):
        g = np.asarray(jax.grad(log_prob_at)(e, t))[0]                # [T, I]
        norms = np.abs(g).sum(-1)
        assert norms[t] == 0.0
        assert np.all(np.delete(norms, t) > 0)


# --- padding and the embedding -----------------------------------------------------------------

def test_padded_batch_equals_each_sequence_alone(params):
    rng = np.random.default_rng(4)
    lengths = np.array([11, 4, 7], np.int32)
    tokens = _tokens(rng, 3, 11)
    tokens[np.arange(11)[None] >= lengths[:, None]] = 0
    log_probs, hidden = lm.apply(params, jnp.asarray(tokens), jnp.asarray(lengths), CFG)
    for b, n in enumerate(lengths):
        lp1, h1 = lm.apply(params, jnp.asarray(tokens[b:b + 1, :n]), None, CFG)
        assert_close(log_probs[b, :n], lp1[0])
        assert_close(hidden[b, :n], h1[0])
        assert np.all(np.asarray(hidden[b, n:]) == 0)


def test_embed_is_mean_hidden_state_over_residues(params):
    rng = np.random.default_rng(5)
    lengths = np.array([6, 10], np.int32)
    tokens = _tokens(rng, 2, 10)
    tokens[0, 6:] = 0
    z = lm.embed(params, jnp.asarray(tokens), jnp.asarray(lengths), CFG)
    for b, n in enumerate(lengths):
        _, want_h = _np_model(params, tokens[b, :n], CFG)
        assert_close(z[b], want_h.mean(0), rtol=1e-5, atol=1e-5)


def test_reverse_padded_against_loop():
    x = np.arange(2 * 6 * 3).reshape(2, 6, 3)
    n = np.array([4, 6])
    got = np.asarray(lm.reverse_padded(jnp.asarray(x), jnp.asarray(n)))
    want = x.copy()
    for b in range(2):
        want[b, :n[b]] = x[b, :n[b]][::-1]
    np.testing.assert_array_equal(got, want)


def test_apply_refuses_bad_inputs(params):
    with pytest.raises(ValueError, match="tokens"):
        lm.apply(params, jnp.array([[5, 30]]), None, CFG)
    with pytest.raises(ValueError, match="tokens"):
        lm.apply(params, jnp.array([5, 6]), None, CFG)
    with pytest.raises(ValueError, match="lengths"):
        lm.apply(params, jnp.array([[5, 6]]), jnp.array([2, 2]), CFG)
    with pytest.raises(ValueError, match="hidden_dim"):
        lm.Config(hidden_dim=0)


# --- corpus, batches, checkpoints --------------------------------------------------------------

def test_read_corpus_removes_gaps_and_duplicates(tmp_path):
    a = tmp_path / "a.align"
    a.write_text(">x/1-9\nMK-VL.aw-QE\n>y\nMKVLAWQE\n>short\nMK--\n")
    b = tmp_path / "b.fasta"
    b.write_text(">z desc\nACDEFGHIK\nLM\n")
    assert lm.read_corpus([a, b], min_length=5) == ["MKVLAWQE", "ACDEFGHIKLM"]
    with pytest.raises(ValueError, match="paths"):
        lm.read_corpus([])
    with pytest.raises(ValueError, match="no sequence"):
        lm.read_corpus([a], min_length=50)


def test_sample_batch_crops_windows():
    rng = np.random.default_rng(6)
    corpus = [np.arange(5, 5 + n, dtype=np.int32) for n in (3, 40, 150)]
    tokens, lengths = lm.sample_batch(rng, corpus, 13, 33, bucket=16)
    assert tokens.shape == (13, 33) and tokens.dtype == np.int32
    for row, n in zip(tokens, lengths):
        assert n == 3 or n == 33
        w = row[:n]
        assert np.all(np.diff(w) == 1)                # a contiguous window of a sequence
        assert np.all(row[n:] == 0)


def test_save_and_load_round_trip(params, tmp_path):
    path = lm.save_params(params, tmp_path / "lm.npz", CFG)
    loaded, cfg = lm.load_params(path)
    assert cfg == CFG
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_unigram_nll_direct():
    corpus = [np.array([5, 5, 6])]
    valid = [np.array([5, 6])]
    # counts + 1 over V = 8: id 5 -> 3, id 6 -> 2, six others -> 1; total 11.
    want = -(np.log(3 / 11) + np.log(2 / 11)) / 2
    assert abs(lm.unigram_nll(corpus, valid, 8) - want) < 1e-12


# --- scoring mutants through zoo.bio.escape ----------------------------------------------------

def test_score_mutants_with_the_lm(params):
    from zoo.bio.tokenizers import ProteinTokenizer
    tok = ProteinTokenizer()
    vocab = {a: tok.token_to_id(a) for a in escape.AMINO_ACIDS}
    f = lambda t: lm._apply(params, t, jnp.full(t.shape[:1], t.shape[1], jnp.int32), CFG)
    wt = "MKVLAW"
    s = escape.score_mutants(f, wt, vocab, batch_size=16)
    assert len(s.mutants) == 6 * 19
    lp, h = lm.apply(params, jnp.asarray(tok.encode(wt))[None], None, CFG)
    pos, _, mut = s.mutants[40]
    assert abs(s.prob[40] - float(np.exp(lp[0, pos, tok.token_to_id(mut)]))) < 1e-6
    mutant = wt[:pos] + mut + wt[pos + 1:]
    hm = lm.apply(params, jnp.asarray(tok.encode(mutant))[None], None, CFG)[1]
    want = float(np.abs(np.asarray(h[0]).mean(0) - np.asarray(hm[0]).mean(0)).sum())
    assert abs(s.change[40] - want) < 1e-5


@needs_full
def test_wildtypes_match_the_published_tables():
    for virus, length in (("flu_h1", 565), ("flu_h3", 566), ("hiv", 860), ("cov", 1273)):
        table = escape.load_published(virus, data_dir=FULL)
        seq, first = lm.wildtype(virus, table, data_dir=FULL)
        assert len(seq) == length, virus
        assert all(seq[p] == w for p, w in zip(table.pos, table.wt))
        assert first == (29 if virus == "hiv" else 0)


def test_settings_refuse_unknown_virus_and_model():
    with pytest.raises(ValueError, match="viruses"):
        lm.Settings(viruses=("flu_h5",))
    with pytest.raises(ValueError, match="model"):
        lm.Settings(model="huge")


# --- training beats chance ---------------------------------------------------------------------

def _periodic_corpus(rng, n, motif="ACDEFG"):
    from zoo.bio.tokenizers import ProteinTokenizer
    tok = ProteinTokenizer()
    seqs = []
    for _ in range(n):
        k = int(rng.integers(0, len(motif)))
        seqs.append((motif[k:] + motif * 6)[: int(rng.integers(10, 24))])
    return [tok.encode(s) for s in seqs]


def test_short_training_beats_residue_frequencies():
    """A periodic language: each residue is fixed by its neighbours, so a two-sided model
    that learns anything beats the uniform-over-six frequency baseline (log 6 nats)."""
    rng = np.random.default_rng(7)
    corpus, valid = _periodic_corpus(rng, 64), _periodic_corpus(rng, 16)
    cfg = lm.Config(embed_dim=8, hidden_dim=16)
    params, log = lm.train(corpus, cfg, steps=60, batch_size=16, max_length=24, lr=1e-2)
    chance = lm.unigram_nll(corpus, valid, cfg.vocab_size)
    assert chance > 1.7                                    # about log 6
    assert lm.evaluate(params, valid, cfg, max_length=24) < chance - 0.5
    assert log["steps"] == 60


# --- the comparison on EVEscape's labels -------------------------------------------------------

SUBSET = Path(__file__).parent / "data" / "bio" / "escape"        # a viral_escape/ folder


def test_evescape_comparison_matches_the_escape_module_on_published_scores():
    """With the paper's own scores in place of ours, our CSCS on EVEscape's labels is the one
    zoo.bio.escape.cscs_on_evescape_labels computes by its own matching."""
    table = escape.load_published("flu_h1", data_dir=SUBSET)
    got = lm.evescape_comparison({"flu_h1": (table, None)}, data_dir=SUBSET)["flu_h1"]
    want = escape.cscs_on_evescape_labels("flu_h1", data_dir=SUBSET)
    assert got["n"] == want["n"] and got["n_escape"] == want["n_escape"]
    for key in ("evescape", "cscs", "grammaticality", "semantic_change"):
        assert abs(got["ours_" + key if key != "evescape" else key] - want[key]) < 1e-12
    assert got["paper_cscs"] == got["ours_cscs"]


def test_read_mutant_scores(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("virus,pos,wt,mut,log10_prob,change,is_escape\n"
                    "flu_h1,0,M,A,-2.0000,0.5,1\nflu_h1,0,M,C,-1.0000,0.25,0\n"
                    "hiv,29,E,K,-3.0000,1.5,0\n")
    got = escape_report.read_mutant_scores(path)
    assert list(got) == ["flu_h1", "hiv"]
    np.testing.assert_allclose(got["flu_h1"].prob, [0.01, 0.1])
    np.testing.assert_array_equal(got["flu_h1"].is_escape, [True, False])
    assert got["hiv"].pos.tolist() == [29] and got["hiv"].mut.tolist() == ["K"]
