"""Tests of zoo.bio.protein_lm: the family split, BERT masking, attention maps → APC →
precision, the L1 logistic regression over heads, and a short masked-LM training run."""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import transformer
from zoo.bio import contacts, protein_lm, structure

DATA = Path(__file__).parents[2] / "shared" / "data"
TESTDATA = Path(__file__).parent / "data" / "bio" / "pfam"
needs_data = pytest.mark.skipif(not (DATA / structure.DATASET).is_dir(),
                                reason="the full Pfam data is not in ../shared/data")


def test_split_constants_disjoint_and_cover_40():
    train, held = protein_lm.TRAIN_FAMILIES, protein_lm.HELDOUT_FAMILIES
    assert len(train) == 30 and len(held) == 10
    assert not set(train) & set(held)
    assert len(set(train) | set(held)) == 40
    assert list(train) == sorted(train) and list(held) == sorted(held)


def test_split_follows_the_documented_rule():
    ids = sorted(protein_lm.TRAIN_FAMILIES + protein_lm.HELDOUT_FAMILIES)
    perm = np.random.default_rng(0).permutation(40)          # the rule, written out
    held = sorted(ids[i] for i in perm[:10])
    assert tuple(held) == protein_lm.HELDOUT_FAMILIES
    assert protein_lm.split_families(ids[::-1]) == (protein_lm.TRAIN_FAMILIES,
                                                    protein_lm.HELDOUT_FAMILIES)


@needs_data
def test_split_covers_the_families_of_the_data():
    ids = structure.list_families(DATA)
    assert sorted(ids) == sorted(protein_lm.TRAIN_FAMILIES + protein_lm.HELDOUT_FAMILIES)


def test_split_refuses_bad_arguments():
    with pytest.raises(ValueError, match="num_heldout"):
        protein_lm.split_families(["a", "b"], num_heldout=2)
    with pytest.raises(ValueError, match="distinct"):
        protein_lm.split_families(["a", "a", "b"])


def test_masking_rule_on_counts():
    rng = np.random.default_rng(3)
    ids = rng.integers(5, 25, size=(400, 250))
    ids[:, 200:] = 0                                          # padding is never selected
    inputs, targets = protein_lm.mask_tokens(ids, rng, rate=0.15)
    real = ids != 0
    selected = targets != 0
    n_real, n_sel = real.sum(), selected.sum()
    assert not (selected & ~real).any() and (inputs[~real] == 0).all()
    # Binomial counts within 5 standard deviations.
    assert abs(n_sel - 0.15 * n_real) < 5 * np.sqrt(n_real * 0.15 * 0.85)
    assert (targets[selected] == ids[selected]).all()
    assert (inputs[~selected] == ids[~selected]).all()
    masked = (inputs == 1) & selected
    changed = selected & (inputs != 1) & (inputs != ids)
    kept = selected & (inputs == ids)
    for count, p in ((masked.sum(), 0.8), (kept.sum(), 0.1 + 0.1 / 20)):
        assert abs(count - p * n_sel) < 5 * np.sqrt(n_sel * p * (1 - p)), (count, p)
    # A random replacement is a standard amino acid (ids 5..24), drawn uniformly.
    assert abs(changed.sum() - 0.1 * 19 / 20 * n_sel) < 5 * np.sqrt(n_sel * 0.095 * 0.905)
    assert inputs[changed].min() >= 5 and inputs[changed].max() <= 24


def test_masking_refuses_bad_rate():
    with pytest.raises(ValueError, match="rate"):
        protein_lm.mask_tokens(np.ones((2, 3), int), np.random.default_rng(0), rate=0.0)


def test_attention_maps_to_apc_to_precision_by_hand():
    # Two hand-made heads over 7 residues: head 0 puts weight on the pair (0, 6) only
    # (plus a flat background); head 1 is flat. After sym + APC, head 0 ranks (0, 6) first.
    n = 7
    a0 = np.full((n, n), 1.0 / n)
    a0[0, 6] = a0[6, 0] = 0.9
    a1 = np.full((n, n), 1.0 / n)
    maps = contacts.apc(contacts.symmetrize(np.stack([a0, a1])))
    # APC by a direct loop.
    s = (a0 + a0.T) / 2
    ref = np.array([[s[i, j] - s[i].sum() * s[:, j].sum() / s.sum() for j in range(n)]
                    for i in range(n)])
    np.testing.assert_allclose(maps[0], ref, atol=1e-12)
    np.testing.assert_allclose(maps[1], 0.0, atol=1e-12)      # flat maps carry nothing
    true = np.eye(n, dtype=int)
    true[0, 6] = true[6, 0] = 1
    assert contacts.precision_at(maps[0], true, 1, min_sep=6) == 1.0
    assert contacts.precision_at(maps[0], true, 1, min_sep=1) == 1.0   # (0, 6) first


def test_head_maps_pad_invariance_and_shapes():
    cfg = dataclasses.replace(protein_lm.Settings(d_model=16, num_heads=2, d_ff=32,
                                                  num_layers=2).model_config(), max_len=24)
    params = transformer.init(jax.random.key(1), cfg)
    seq = "MKTAYIAKQRQISFVKSH"
    maps = protein_lm.head_maps(params, cfg, seq)
    assert maps.shape == (4, len(seq), len(seq))
    ids = jnp.asarray(np.array([[5 + "ACDEFGHIKLMNPQRSTVWY".index(c) for c in seq]]))
    raw = np.asarray(transformer.attention_maps(params, ids, cfg=cfg), np.float64)[:, 0]
    alone = contacts.apc(contacts.symmetrize(raw.reshape(4, len(seq), len(seq))))
    np.testing.assert_allclose(maps, alone, atol=1e-5)
    with pytest.raises(ValueError, match="max_len"):
        protein_lm.head_maps(params, cfg, "A" * 25)


def test_l1_logistic_picks_the_head_that_is_the_contact_map():
    rng = np.random.default_rng(5)
    n, heads = 60, 6
    true = (rng.random((n, n)) < 0.06).astype(int)
    true = np.triu(true, 1) + np.triu(true, 1).T
    maps = rng.normal(size=(heads, n, n))
    maps = (maps + maps.transpose(0, 2, 1)) / 2
    maps[3] = true + 0.01 * maps[3]                           # head 3 is the contact map
    i, j = np.triu_indices(n, 6)
    x, y = maps[:, i, j].T, true[i, j]
    model = protein_lm.fit_l1_logistic(x, y, l1=0.02, steps=400)
    assert np.argmax(np.abs(model.w_i)) == 3
    others = np.delete(np.abs(model.w_i), 3)
    assert others.max() < 0.05 * abs(model.w_i[3])            # the L1 penalty zeroes them
    pred = model.score_maps(maps)
    assert pred.shape == (n, n)
    k = int(y.sum())
    assert contacts.precision_at(pred, true, k, min_sep=6) == 1.0


def test_l1_logistic_matches_unpenalised_optimum_in_one_dimension():
    # With l1 = 0 on one feature, the gradient of the mean BCE vanishes at the optimum.
    x = np.array([[0.0], [1.0], [2.0], [3.0], [1.5], [2.5]])
    y = np.array([0, 0, 1, 1, 1, 0])
    m = protein_lm.fit_l1_logistic(x, y, l1=0.0, steps=3000)
    z = m.decision_function(x)
    p = 1 / (1 + np.exp(-z))
    xs = (x[:, 0] - x[:, 0].mean()) / x[:, 0].std()
    assert abs(np.mean(p - y)) < 1e-4 and abs(np.mean((p - y) * xs)) < 1e-4


def test_l1_logistic_refuses_bad_inputs():
    with pytest.raises(ValueError, match="0/1"):
        protein_lm.fit_l1_logistic(np.ones((3, 2)), np.array([0, 2, 1]))
    with pytest.raises(ValueError, match=r"\[P, I\]"):
        protein_lm.fit_l1_logistic(np.ones((3, 2)), np.array([0, 1]))


def test_crop_batch_windows_and_padding():
    rng = np.random.default_rng(0)
    seq = "ACDEFGHIKLMNPQRSTVWY"
    ids = protein_lm.crop_batch([seq, "MK"], rng, 8)
    assert ids.shape == (2, 8)
    text = "".join("ACDEFGHIKLMNPQRSTVWY"[t - 5] for t in ids[0])
    assert text in seq                                          # a contiguous window
    assert ids[1].tolist() == [15, 13, 0, 0, 0, 0, 0, 0]


def test_save_and_load_params_round_trip(tmp_path):
    cfg = protein_lm.Settings(d_model=8, num_heads=2, d_ff=16, num_layers=1).model_config()
    params = transformer.init(jax.random.key(2), cfg)
    protein_lm.save_params(params, tmp_path / "p.npz", cfg)
    back, cfg2 = protein_lm.load_params(tmp_path / "p.npz")
    assert cfg2 == cfg
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-3)


def test_tiny_mlm_training_loss_falls():
    # Sequences of one repeated motif: a masked residue is predictable from its neighbours.
    rng = np.random.default_rng(0)
    motif = "MKTAYIAKQR"
    seqs = [(motif * 4)[s:s + 24] for s in rng.integers(0, 10, 64)]
    settings = protein_lm.Settings(d_model=32, num_heads=4, d_ff=64, num_layers=1, crop=24,
                                   batch_size=16, steps=60, learning_rate=3e-3)
    params, history = protein_lm.train(settings, seqs, log_every=20, progress=False)
    assert history[-1][1] < history[0][1] - 0.5
    cfg = settings.model_config()
    ppl = protein_lm.masked_perplexity(params, cfg, seqs[:32], crop=24, rate=0.3)
    assert ppl < 8.0          # below the 10 equally frequent letters of the motif


def test_mi_apc_cached_is_the_baseline_and_round_trips(tmp_path):
    fam = structure.load_family("PF00327", TESTDATA)
    x = fam.alignment.encoded()
    want = contacts.mi_apc(x, protein_lm._msa.sequence_weights(x))
    got = protein_lm.mi_apc_cached(fam, str(tmp_path))
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert (tmp_path / "mi_apc_PF00327.npy").is_file()
    np.testing.assert_allclose(protein_lm.mi_apc_cached(fam, str(tmp_path)), want)
    sub = protein_lm.mi_apc_cached(fam, None, max_sequences=50, seed=1)
    rows = x[np.sort(np.random.default_rng(1).permutation(len(x))[:50])]
    np.testing.assert_allclose(sub, contacts.mi_apc(rows, protein_lm._msa.sequence_weights(rows)),
                               atol=1e-12)


def test_family_head_maps_sit_on_the_domain_columns():
    fam = structure.load_family("PF00327", TESTDATA)
    cfg = dataclasses.replace(protein_lm.Settings(d_model=16, num_heads=2, d_ff=32,
                                                  num_layers=1).model_config(), max_len=64)
    params = transformer.init(jax.random.key(3), cfg)
    maps = protein_lm.family_head_maps(params, cfg, fam)
    t = len(fam.domain)
    assert maps.shape == (2, t, t)
    cols = [c for c, letter in enumerate(fam.domain) if letter != "-"]
    seq = "".join(fam.domain[c] for c in cols)
    alone = protein_lm.head_maps(params, cfg, seq)
    np.testing.assert_allclose(maps[:, cols][:, :, cols], alone)
    gaps = [c for c in range(t) if c not in cols]
    assert not maps[:, gaps].any() and not maps[:, :, gaps].any()
