"""Tests of zoo.bio.pair_cnn: the pair features against direct computations, the residual
dilated CNN's receptive field and shapes, crops, and a short training run that beats chance."""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.bio import contacts, msa, pair_cnn, structure

TESTDATA = Path(__file__).parent / "data" / "bio" / "pfam"


def _direct_statistics(rows, lam):
    """MI, COV, entropy and gap fraction by loops over the columns (unit weights)."""
    x = msa.encode(rows)
    b, t = x.shape
    v = msa.NUM_STATES
    f1 = np.zeros((t, v))
    for i in range(t):
        for a in range(v):
            f1[i, a] = (1 - lam) * np.mean(x[:, i] == a) + lam / v
    mi, cov = np.zeros((t, t)), np.zeros((t, t))
    for i in range(t):
        for j in range(t):
            if i == j:
                continue
            f2 = np.zeros((v, v))
            for s in range(b):
                f2[x[s, i], x[s, j]] += 1.0 / b
            f2 = (1 - lam) * f2 + lam / v**2
            mi[i, j] = np.sum(f2 * np.log(f2 / np.outer(f1[i], f1[j])))
            d = f2[:20, :20] - np.outer(f1[i, :20], f1[j, :20])
            cov[i, j] = np.sqrt(np.sum(d * d))
    entropy = -np.sum(f1 * np.log(f1), axis=1)
    return mi, cov, entropy, f1[:, msa.GAP]


def test_msa_statistics_against_loops():
    rows = ["ACDA-", "ACDC-", "GCEAK", "GCEC-", "AYDAK", "GYEA-"]
    stats = pair_cnn.msa_statistics(msa.encode(rows))
    mi, cov, entropy, gap = _direct_statistics(rows, contacts.MI_PSEUDOCOUNT)
    np.testing.assert_allclose(stats["mi"], mi, atol=1e-10)
    np.testing.assert_allclose(stats["cov"], cov, atol=1e-10)
    np.testing.assert_allclose(stats["entropy"], entropy, atol=1e-10)
    np.testing.assert_allclose(stats["gap"], gap, atol=1e-10)
    # MI equals the library's MI (the baseline), so apc(mi) is MI+APC.
    np.testing.assert_allclose(stats["mi"], contacts.mutual_information(msa.encode(rows)),
                               atol=1e-10)


def test_pair_features_channels_against_direct_values():
    rows = ["ACDAK", "ACDCK", "GCEAK", "GCECL", "AYDAK", "GYEAL", "ACEAK"]
    stats = pair_cnn.msa_statistics(msa.encode(rows))
    domain = "AC-AK"
    heads = np.random.default_rng(0).normal(size=(3, 5, 5))
    f = pair_cnn.pair_features(domain, stats, heads)
    assert f.shape == (5, 5, pair_cnn.MSA_CHANNELS + 3) and f.dtype == np.float32
    v = msa.NUM_STATES
    # one-hot of residue i (first 21 channels) and of residue j (next 21)
    assert f[1, 3, "ACDEFGHIKLMNPQRSTVWY".index("C")] == 1 and f[1, 3, :v].sum() == 1
    assert f[1, 2, v + msa.GAP] == 1 and f[1, 2, v:2 * v].sum() == 1
    off = ~np.eye(5, dtype=bool)
    mi_apc = contacts.apc(stats["mi"])
    z = (mi_apc - mi_apc[off].mean()) / mi_apc[off].std()
    np.testing.assert_allclose(f[..., 2 * v + 1], z, atol=1e-5)
    k = 2 * v + 4
    np.testing.assert_allclose(f[2, 4, k:k + 4], [stats["entropy"][2], stats["entropy"][4],
                                                  stats["gap"][2], stats["gap"][4]], atol=1e-6)
    np.testing.assert_allclose(f[0, 4, k + 4], np.log(5), atol=1e-6)   # log(1 + |0 − 4|)
    # separation one-hot: |0 − 4| = 4 < 6 is the first bin
    assert f[0, 4, k + 5:k + 9].tolist() == [1, 0, 0, 0]
    h = heads[2]
    np.testing.assert_allclose(f[..., -1], (h - h[off].mean()) / h[off].std(), atol=1e-5)


def test_separation_bins_on_a_long_map():
    stats = {"mi": np.ones((30, 30)), "cov": np.ones((30, 30)), "entropy": np.zeros(30),
             "gap": np.zeros(30)}
    f = pair_cnn.pair_features("A" * 30, stats)
    k = 2 * msa.NUM_STATES + 9
    for j, want in ((5, 0), (6, 1), (11, 1), (12, 2), (23, 2), (24, 3), (29, 3)):
        assert np.argmax(f[0, j, k:k + 4]) == want and f[0, j, k:k + 4].sum() == 1


def _small():
    return pair_cnn.Settings(width=4, dilations=(1, 2, 3), crop=16)


def test_receptive_field_formula_and_gradient_support():
    s = _small()
    assert pair_cnn.receptive_field(s) == 1 + 4 * (1 + 2 + 3)        # 25
    assert pair_cnn.receptive_field(pair_cnn.Settings()) == 121
    params = pair_cnn.init(jax.random.key(0), s, 3)
    # Make every block's second kernel non-zero and generic (init scales it down only).
    size = 41
    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, size, size, 3)), jnp.float32)
    c = size // 2
    grad = jax.grad(lambda x: pair_cnn.apply(params, x, s)[0, c, c])(x)
    support = np.flatnonzero(np.abs(np.asarray(grad[0, :, c, :])).sum(-1) > 0)
    assert support.max() - support.min() + 1 == pair_cnn.receptive_field(s)


def test_apply_shapes():
    s = _small()
    params = pair_cnn.init(jax.random.key(2), s, 5)
    y = pair_cnn.apply(params, jnp.ones((2, 11, 13, 5)), s)
    assert y.shape == (2, 11, 13)
    feats = np.random.default_rng(3).normal(size=(19, 19, 5)).astype(np.float32)
    pred = pair_cnn.predict(params, feats, s, multiple=8)
    assert pred.shape == (19, 19)
    np.testing.assert_allclose(pred, pred.T)


def test_random_crops_pad_small_maps_and_cut_windows():
    rng = np.random.default_rng(0)
    n = 10
    feats = np.arange(n * n, dtype=np.float32).reshape(n, n, 1)
    data = [(feats, np.ones((n, n), np.float32), np.ones((n, n), np.float32))]
    x, t, w = pair_cnn.random_crops(data, rng, 16, 3)
    assert x.shape == (3, 16, 16, 1)
    assert (w[:, :n, :n] == 1).all() and w[:, n:].sum() == 0 and w[:, :, n:].sum() == 0
    x, t, w = pair_cnn.random_crops(data, rng, 4, 20)
    for b in range(20):                        # each window is feats[i0:i0+4, j0:j0+4]
        i0, j0 = divmod(int(x[b, 0, 0, 0]), n)
        np.testing.assert_array_equal(x[b, ..., 0], feats[i0:i0 + 4, j0:j0 + 4, 0])


def test_training_target_masks_unresolved_and_short_range():
    fam = structure.load_family("PF00327", TESTDATA)
    target, weight = pair_cnn.training_target(fam)
    c = fam.contacts()
    pos = fam.column_residue
    for i in range(0, len(c), 5):
        for j in range(0, len(c), 3):
            resolved = c[i, j] >= 0 and pos[i] >= 0 and pos[j] >= 0
            assert weight[i, j] == float(resolved and abs(pos[i] - pos[j]) >= 6)
            assert target[i, j] == float(c[i, j] == 1)


def test_short_training_beats_chance():
    # Planted contacts: pairs whose feature channel 0 is high are contacts.
    rng = np.random.default_rng(4)
    data = []
    for n in (24, 30, 20):
        true = np.triu((rng.random((n, n)) < 0.1).astype(np.float32), 1)
        true = true + true.T
        feats = np.stack([true + 0.3 * rng.normal(size=(n, n)),
                          rng.normal(size=(n, n))], -1).astype(np.float32)
        data.append((feats, true, np.ones((n, n), np.float32)))
    s = pair_cnn.Settings(width=8, dilations=(1, 2), crop=16, batch_size=4, steps=60,
                          learning_rate=3e-3)
    params, history = pair_cnn.train(s, data, progress=False)
    assert history[-1][1] < history[0][1]
    feats, true, _ = data[1]
    pred = pair_cnn.predict(params, feats, s, multiple=8)
    k = int(np.triu(true, 1).sum())
    density = k / (30 * 29 / 2)
    assert contacts.precision_at(pred, true.astype(int), k, min_sep=1) > 3 * density


def test_family_statistics_mi_is_the_baseline_mi_and_caches(tmp_path):
    fam = structure.load_family("PF00327", TESTDATA)
    x = fam.alignment.encoded()
    stats = pair_cnn.family_statistics(fam, cache_dir=str(tmp_path))
    want = contacts.mi_apc(x, msa.sequence_weights(x))
    np.testing.assert_allclose(contacts.apc(stats["mi"]), want, atol=1e-10)
    again = pair_cnn.family_statistics(fam, cache_dir=str(tmp_path))
    np.testing.assert_allclose(again["cov"], stats["cov"])
    assert (tmp_path / "msa_PF00327_all.npz").is_file()
