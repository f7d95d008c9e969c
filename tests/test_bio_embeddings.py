"""Tests for zoo.bio.embeddings: padding helpers, the LM embedding as the mean hidden state
(batched and padded equal to each sequence alone), the autoencoder's teacher-forcing arrays and
its reconstruction improving on a tiny run, the cross-validated probe (folds that never see
their own test examples), the PCA projection against an eigendecomposition, and the k-mer
baseline."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.tolerances import assert_close
from zoo.bio import bilstm_lm, embeddings, tokenizers


def test_pad_tokens_cuts_and_pads():
    ids, n = embeddings.pad_tokens([np.array([5, 6, 7, 8]), np.array([9])], 3)
    np.testing.assert_array_equal(ids, [[5, 6, 7], [9, 0, 0]])
    np.testing.assert_array_equal(n, [3, 1])


def test_lm_embeddings_equal_each_sequence_alone():
    cfg = bilstm_lm.Config(embed_dim=4, hidden_dim=6)
    params = bilstm_lm.init(jax.random.key(1), cfg)
    rng = np.random.default_rng(0)
    tokens = [rng.integers(5, 25, n).astype(np.int32) for n in (9, 3, 14, 5, 11)]
    got = embeddings.lm_embeddings(params, cfg, tokens, batch_size=2, widths=(16,))
    assert got.shape == (5, 12)
    from tests.test_bio_bilstm_lm import _np_model      # the model as NumPy loops
    for i, t in enumerate(tokens):
        _, h = _np_model(params, t, cfg)
        assert_close(got[i], h.mean(0), rtol=1e-5, atol=1e-5)


def test_autoencoder_batch_targets_are_the_source_then_eos():
    cfg = embeddings.autoencoder_config(30, embed_dim=4, hidden_dim=5)
    (src, n, tgt_in), tgt_out = embeddings.autoencoder_batch(
        [np.array([5, 6, 7]), np.array([8])], 4, cfg)
    eos, cls = tokenizers.EOS, tokenizers.CLS
    np.testing.assert_array_equal(src, [[5, 6, 7, 0], [8, 0, 0, 0]])
    np.testing.assert_array_equal(n, [3, 1])
    np.testing.assert_array_equal(tgt_out, [[5, 6, 7, eos, 0], [8, eos, 0, 0, 0]])
    np.testing.assert_array_equal(tgt_in, [[cls, 5, 6, 7, eos], [cls, 8, eos, 0, 0]])


def test_autoencoder_embeddings_are_the_encoder_state():
    rng = np.random.default_rng(6)
    tokens = [rng.integers(5, 9, int(rng.integers(2, 7))).astype(np.int32) for _ in range(7)]
    cfg = embeddings.autoencoder_config(11, embed_dim=3, hidden_dim=5)
    from zoo import seq2seq
    params = seq2seq.init(jax.random.key(2), cfg)
    z = embeddings.autoencoder_embeddings(params, cfg, tokens, 6, batch_size=4)
    assert z.shape == (7, 10)
    want = seq2seq.embed(params, *embeddings.pad_tokens(tokens, 6), cfg)   # one batch of 7
    assert_close(z, np.asarray(want))


@pytest.mark.slow
def test_autoencoder_reconstruction_improves():
    rng = np.random.default_rng(2)
    tokens = [rng.integers(5, 9, int(rng.integers(3, 7))).astype(np.int32) for _ in range(48)]
    cfg = embeddings.autoencoder_config(12, embed_dim=6, hidden_dim=10)
    batch = embeddings.autoencoder_batch(tokens[:16], 8, cfg)
    from zoo import seq2seq
    before = embeddings.reconstruction_accuracy(seq2seq.init(jax.random.key(0), cfg), cfg, batch)
    params, losses = embeddings.train_autoencoder(tokens, cfg, steps=80, width=8,
                                                  batch_size=16, lr=1e-2, progress=False)
    after = embeddings.reconstruction_accuracy(params, cfg, batch)
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.3
    assert after > before + 0.2, (before, after)
    z = embeddings.autoencoder_embeddings(params, cfg, tokens[:7], 8, batch_size=4)
    assert z.shape == (7, 20)
    want = np.asarray(seq2seq.embed(params, *embeddings.pad_tokens(tokens[:7], 8), cfg))
    assert_close(z, want)


# --- the probe ---------------------------------------------------------------------------------

def test_probe_separable_classes_and_fold_count():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 14)
    x = np.eye(3)[y] * 4 + rng.normal(0, 0.1, (42, 3))
    s = embeddings.probe(x, y, k=4)
    assert s["accuracy"] == 1.0 and abs(s["mcc"] - 1.0) < 1e-9
    assert len(s["fold_accuracy"]) == 4


def test_probe_never_tests_on_its_training_examples():
    """Noise features, random labels, more features than examples: a model fitted on its test
    examples would score ~1; out-of-fold it is at chance."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 60)
    x = rng.normal(size=(60, 200))
    from zoo.bio import features
    train_acc = (features.LogisticRegression(l2=1e-2).fit(x, y).predict(x) == y).mean()
    assert train_acc > 0.95
    s = embeddings.probe(x, y, k=5)
    assert s["accuracy"] < 0.7
    # the out-of-fold accuracy is the fold accuracies weighted by fold size (12 each)
    assert abs(s["accuracy"] - np.mean(s["fold_accuracy"])) < 1e-9


# --- the projection and the baseline -----------------------------------------------------------

def test_pca_against_eigendecomposition():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(23, 6)) @ rng.normal(size=(6, 6)) + 3.0
    xy = embeddings.pca_2d(x)
    cov = np.cov(x.T, bias=True)
    vals, vecs = np.linalg.eigh(cov)
    top = vecs[:, ::-1][:, :2]
    want = (x - x.mean(0)) @ top
    for j in range(2):
        assert abs(abs(np.dot(xy[:, j], want[:, j])) - np.dot(want[:, j], want[:, j])) < 1e-8
        assert abs(xy[:, j].var() - vals[::-1][j]) < 1e-9
    with pytest.raises(ValueError, match="x must"):
        embeddings.pca_2d(np.ones(4))


def test_kmer_features_are_concatenated_compositions():
    f = embeddings.kmer_features(["ACGTA", "CCCC"], tokenizers.DNA, (1, 2))
    assert f.shape == (2, 4 + 16)
    np.testing.assert_allclose(f[:, :4].sum(1), 1)
    np.testing.assert_allclose(f[:, 4:].sum(1), 1)
    assert f[1, 1] == 1.0 and f[1, 4 + 5] == 1.0          # C and CC
