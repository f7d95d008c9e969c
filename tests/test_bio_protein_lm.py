"""Tests of zoo.bio.protein_lm: BERT masking, attention maps → APC → precision, homolog
averaging, and a short masked-LM training run."""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import transformer
from zoo.bio import contacts, msa, protein_lm, structure

TESTDATA = Path(__file__).parent / "data" / "bio" / "pfam"


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


# --- attention averaged over a family's homologs -------------------------------------------

def _made_up_family():
    # Six columns. The domain has residues in columns 0, 1, 2, 4, 5 (all structured); r0 and
    # r1 cover three of those five columns each, r2 one (too sparse), r3 is the domain again.
    # r1's "a" is an insert state: a residue of the sequence that sits in no column.
    text = ">r0\nMK-GL-\n>r1\nA-aC--W\n>r2\n---G-W\n>r3\nMKV-LW\n"
    return structure.Family("PF99999", "9XYZ_A", msa.parse_alignment(text), "MKV-LW", None,
                            np.array([0, 1, 2, -1, 3, 4]))


def _tiny_lm(max_len=24, seed=4):
    cfg = dataclasses.replace(protein_lm.Settings(d_model=16, num_heads=2, d_ff=32,
                                                  num_layers=2).model_config(), max_len=max_len)
    return transformer.init(jax.random.key(seed), cfg), cfg


def test_homolog_sequences_by_hand():
    seqs, index = protein_lm.homolog_sequences(_made_up_family(), 10)
    assert seqs == ["MKVLW", "MKGL", "AACW"]          # the domain first; r2 sparse, r3 = domain
    assert index.tolist() == [[0, 1, 2, -1, 3, 4],     # M K V - L W
                              [0, 1, -1, 2, 3, -1],    # M K - G L -
                              [0, -1, 2, -1, -1, 3]]   # A - (a) C - - W: the insert skipped
    assert protein_lm.homolog_rows(_made_up_family(), 1).tolist() == []   # the domain alone
    # A stricter coverage keeps none of r0, r1 (3 of 5 structured columns each).
    assert protein_lm.homolog_rows(_made_up_family(), 10, min_fraction=0.7).tolist() == []
    assert protein_lm.homolog_rows(_made_up_family(), 10, max_len=3).tolist() == []


def test_place_on_columns_by_hand():
    # Two rows of the made-up alignment with hand-made maps, I = 2 heads, padded to S = 4.
    r0, r1 = [0, 1, -1, 2, 3, -1], [0, -1, 2, -1, -1, 3]
    m = np.zeros((2, 2, 4, 4))
    m[0] = np.arange(32.0).reshape(2, 4, 4)
    m[1] = 100 + np.arange(32.0).reshape(2, 4, 4)
    total, count = protein_lm.place_on_columns(jnp.asarray(m), jnp.array([r0, r1]))
    total, count = np.asarray(total), np.asarray(count)
    assert total.shape == (2, 6, 6) and count.shape == (6, 6)
    np.testing.assert_allclose(total[:, 0, 0], m[0, :, 0, 0] + m[1, :, 0, 0])  # both rows
    np.testing.assert_allclose(total[:, 0, 5], m[1, :, 0, 3])                 # r1 only
    np.testing.assert_allclose(total[:, 4, 1], m[0, :, 3, 1])                 # r0 only
    assert count[0, 0] == 2 and count[0, 5] == 1 and count[4, 1] == 1
    assert count[1, 2] == 0 and not total[:, 1, 2].any()      # no row has both columns
    want, n = np.zeros((2, 6, 6)), np.zeros((6, 6))
    for maps, r in zip(m, (r0, r1)):
        for c in range(6):
            for d in range(6):
                if r[c] >= 0 and r[d] >= 0:
                    want[:, c, d] += maps[:, r[c], r[d]]
                    n[c, d] += 1
    np.testing.assert_allclose(total, want, atol=1e-4)
    np.testing.assert_array_equal(count, n)


def test_homolog_head_maps_are_the_mean_over_rows_present():
    params, cfg = _tiny_lm()
    got = protein_lm.homolog_head_maps(params, cfg, _made_up_family(), 10)
    per_row = {"MKVLW": [0, 1, 2, -1, 3, 4], "MKGL": [0, 1, -1, 2, 3, -1],
               "AACW": [0, -1, 2, -1, -1, 3]}
    total, n = np.zeros((4, 6, 6)), np.zeros((6, 6))
    for seq, r in per_row.items():
        maps = protein_lm.head_maps(params, cfg, seq)          # sym + APC of one sequence
        for c in range(6):
            for d in range(6):
                if r[c] >= 0 and r[d] >= 0:
                    total[:, c, d] += maps[:, r[c], r[d]]
                    n[c, d] += 1
    want = np.where(n > 0, total / np.maximum(n, 1), 0.0)
    assert got.shape == (4, 6, 6)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert n[3, 2] == 0 and not got[:, 3, 2].any() and not got[:, 2, 3].any()
    assert n[0, 0] == 3 and n[3, 3] == 1


def test_homolog_head_maps_of_one_sequence_are_the_domain_maps():
    fam = structure.load_family("PF00327", TESTDATA)
    params, cfg = _tiny_lm(max_len=64)
    np.testing.assert_allclose(protein_lm.homolog_head_maps(params, cfg, fam, 1),
                               protein_lm.family_head_maps(params, cfg, fam), atol=1e-5)


def test_homolog_rows_follow_the_seed_and_skip_the_domain():
    fam = structure.load_family("PF00327", TESTDATA)
    rows = protein_lm.homolog_rows(fam, 17, seed=3)
    assert len(rows) == 16 and list(rows) == sorted(set(rows.tolist()))
    np.testing.assert_array_equal(rows, protein_lm.homolog_rows(fam, 17, seed=3))
    assert set(rows.tolist()) != set(protein_lm.homolog_rows(fam, 17, seed=4).tolist())
    domain = fam.domain.upper()
    eligible = [b for b, r in enumerate(fam.alignment.rows)
                if r != domain and sum(r[c] != "-" for c in range(len(r))
                                       if fam.column_residue[c] >= 0)
                >= 0.5 * (fam.column_residue >= 0).sum()]
    pick = np.sort(np.random.default_rng(3).permutation(len(eligible))[:16])
    assert rows.tolist() == [eligible[k] for k in pick]        # the documented draw
    seqs, _ = protein_lm.homolog_sequences(fam, 17, seed=3)
    assert seqs[0] == "".join(c for c in fam.domain if c != "-")


def test_homologs_below_zero_are_refused_by_name(capsys):
    with pytest.raises(ValueError, match="homologs must be >= 0"):
        protein_lm.Settings(homologs=-1)
    params, cfg = _tiny_lm()
    with pytest.raises(ValueError, match="homologs must be >= 0"):
        protein_lm.attention_predictors(params, cfg, {}, homologs=-1, progress=False)
    with pytest.raises(ValueError, match="homologs must be >= 1"):
        protein_lm.homolog_rows(_made_up_family(), 0)
    with pytest.raises(SystemExit):
        protein_lm.main(["--homologs", "-2"])
    assert "--homologs must be >= 0" in capsys.readouterr().err


def test_params_flag_scores_a_saved_model_without_training(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(protein_lm, "run", lambda settings, **kw: seen.update(
        settings=settings, **kw) or {"summary": {}, "perplexity": 1.0})
    from zoo import cli
    assert cli.main(["bio", "contacts", "--data-dir", str(TESTDATA), "--homologs", "16",
                     "--params", "p.npz", "--out", str(tmp_path)]) == 0
    assert seen["params"] == "p.npz" and seen["settings"].homologs == 16
    assert seen["out"] == str(tmp_path)


def test_run_refuses_params_of_another_model(tmp_path):
    params, cfg = _tiny_lm()
    protein_lm.save_params(params, tmp_path / "p.npz", cfg)
    with pytest.raises(ValueError, match="params: .*p.npz holds a model"):
        protein_lm.run(protein_lm.Settings(), params=tmp_path / "p.npz", progress=False)
