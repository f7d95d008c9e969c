"""Tests of zoo.bio.msa_lm: masking and cropping, the maps → APC read-out, the rows read,
the console, and a short training run whose tied attention finds coupled columns of
alignments it never saw (the network itself: tests/test_bio_msa_transformer.py)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.bio import contact_eval, contacts, msa, msa_lm, protein_lm, structure

DATA = Path(__file__).parents[2] / "shared" / "data"
TESTDATA = Path(__file__).parent / "data" / "bio" / "pfam"


def _tiny(**kw):
    return msa_lm.Config(**{"d_model": 8, "num_heads": 2, "d_ff": 16, "num_layers": 2,
                            "max_cols": 12, **kw})


def test_head_maps_do_not_depend_on_the_column_padding():
    cfg = _tiny(max_cols=80)
    params = msa_lm.init(jax.random.key(2), cfg)
    x = np.asarray(jax.random.randint(jax.random.key(3), (5, 7), 0, 21))
    tokens = np.full((1, 5, cfg.max_cols), msa_lm.PAD, np.int32)
    tokens[0, :, :7] = x
    full = np.asarray(msa_lm.apply(params, jnp.asarray(tokens), cfg, return_maps=True)[1],
                      np.float64)[:, 0, :, :7, :7].reshape(-1, 7, 7)
    want = contacts.apc(contacts.symmetrize(full))
    np.testing.assert_allclose(msa_lm.head_maps(params, cfg, x), want, rtol=1e-4, atol=1e-7)


def test_settings_refuse_bad_sizes_by_name():
    for name in ("rows", "crop", "batch_size", "steps", "eval_rows", "eval_draws"):
        with pytest.raises(ValueError, match=f"{name} must be >= 1, got 0"):
            msa_lm.Settings(**{name: 0})
    with pytest.raises(ValueError, match="crop 200 is wider than the network's max_cols 192"):
        msa_lm.Settings(crop=200)


def test_masking_rule_on_counts():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 21, size=(2, 200, 150))
    x[:, :, 120:] = msa_lm.PAD
    inputs, targets = msa_lm.mask_msa(x, rng, rate=0.15)
    real, selected = x != msa_lm.PAD, targets >= 0
    assert not (selected & ~real).any() and (inputs[~real] == msa_lm.PAD).all()
    np.testing.assert_array_equal(targets[selected], x[selected])
    n_real, n_sel = real.sum(), selected.sum()
    assert abs(n_sel - 0.15 * n_real) < 5 * np.sqrt(n_real * 0.15 * 0.85)
    masked = (inputs == msa_lm.MASK) & selected
    assert abs(masked.sum() - 0.8 * n_sel) < 5 * np.sqrt(n_sel * 0.16)
    changed = selected & (inputs != msa_lm.MASK) & (inputs != x)
    # 10% draw a random amino acid, which equals the original 1/20 of the time.
    assert abs(changed.sum() - 0.1 * n_sel * 0.95) < 5 * np.sqrt(n_sel * 0.1)
    assert (inputs[~selected] == x[~selected]).all()
    with pytest.raises(ValueError, match="rate"):
        msa_lm.mask_msa(x, rng, rate=0.0)


def test_sample_crop_takes_distinct_rows_and_one_window():
    m = np.arange(40 * 30).reshape(40, 30) % 21
    rows = np.arange(40)[:, None] * 100 + np.arange(30)[None]        # traceable cells
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = msa_lm.sample_crop(rows, rng, 8, 12)
        r, c0 = out[:, 0] // 100, out[0, 0] % 100
        assert len(set(r.tolist())) == 8 and list(r) == sorted(r)
        np.testing.assert_array_equal(out, rows[r][:, c0:c0 + 12])
    narrow = msa_lm.sample_crop(m[:3, :5], rng, 5, 8)                  # fewer rows, columns
    assert narrow.shape == (5, 8) and (narrow[:, 5:] == msa_lm.PAD).all()
    assert {tuple(r) for r in narrow[:, :5]} <= {tuple(r) for r in m[:3, :5]}


def test_relabel_states_renames_the_amino_acids_by_one_bijection():
    rng = np.random.default_rng(5)
    x = rng.integers(0, msa_lm.VOCAB, size=(30, 40))
    seen = np.zeros((20, 20))
    for _ in range(400):
        y = msa_lm.relabel_states(x, rng)
        kept = x >= 20                                      # gap, mask, pad
        np.testing.assert_array_equal(y[kept], x[kept])
        image = {a: set(y[x == a].tolist()) for a in range(20)}
        assert all(len(v) == 1 for v in image.values())     # each letter one new letter
        targets = [v.pop() for v in image.values()]
        assert sorted(targets) == list(range(20))           # and no two letters merge
        seen[np.arange(20), targets] += 1
    # uniform over permutations: each letter lands on each letter 400/20 times
    assert np.abs(seen - 20).max() < 5 * np.sqrt(20 * 0.95)
    with pytest.raises(ValueError, match="relabel must be in"):
        msa_lm.Settings(relabel=1.5)
    with pytest.raises(ValueError, match=r"id -1 at index \(0, 1\)"):
        msa_lm.relabel_states(np.array([[0, -1, 2]]), rng)
    with pytest.raises(ValueError, match="id 23"):
        msa_lm.relabel_states(np.array([[msa_lm.VOCAB]]), rng)


def test_crops_without_relabelling_draw_the_same_stream():
    m = np.random.default_rng(0).integers(0, 21, size=(50, 30))
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    plain = msa_lm.sample_crop(m, a, 8, 16)
    np.testing.assert_array_equal(msa_lm._crop(msa_lm.Settings(rows=8, crop=16), m, b), plain)
    assert a.random() == b.random()                         # nothing extra was drawn
    c = np.random.default_rng(1)
    renamed = msa_lm._crop(msa_lm.Settings(rows=8, crop=16, relabel=1.0), m, c)
    assert (renamed != plain).any() and ((renamed == 20) == (plain == 20)).all()


def test_head_maps_are_the_apc_of_the_symmetrised_tied_maps():
    cfg = _tiny()
    params = msa_lm.init(jax.random.key(0), cfg)
    x = np.asarray(jax.random.randint(jax.random.key(7), (5, 9), 0, 21))
    got = msa_lm.head_maps(params, cfg, x)
    _, a = msa_lm.apply(params, jnp.asarray(x)[None], cfg, return_maps=True)
    a = np.asarray(a, np.float64)[:, 0].reshape(-1, 9, 9)            # layer-major heads
    s = (a + np.swapaxes(a, -1, -2)) / 2
    want = s - s.sum(-1, keepdims=True) * s.sum(-2, keepdims=True) / s.sum((-1, -2),
                                                                           keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match="max_cols 12"):
        msa_lm.head_maps(params, cfg, np.zeros((2, 13), np.int8))


def test_family_rows_put_the_domain_first():
    fam = structure.load_family("PF00327", TESTDATA)
    x = msa_lm.family_rows(fam, 4, seed=0)
    np.testing.assert_array_equal(x[0], msa.encode([fam.domain])[0])
    picked = protein_lm.homolog_rows(fam, 4, seed=0)
    np.testing.assert_array_equal(x[1:], fam.alignment.encoded()[picked])
    cfg = _tiny(max_cols=64)
    params = msa_lm.init(jax.random.key(0), cfg)
    maps = msa_lm.family_head_maps(params, cfg, fam, rows=4, draws=2)
    want = (msa_lm.head_maps(params, cfg, x)
            + msa_lm.head_maps(params, cfg, msa_lm.family_rows(fam, 4, seed=1))) / 2
    np.testing.assert_allclose(maps, want, atol=1e-6)
    with pytest.raises(ValueError, match="draws"):
        msa_lm.family_head_maps(params, cfg, fam, draws=0)


def test_family_rows_diverse_take_the_farthest_eligible_rows():
    fam = structure.load_family("PF00327", TESTDATA)
    domain = msa.encode([fam.domain])[0]
    aligned = fam.alignment.encoded()
    eligible = protein_lm.homolog_rows(fam, len(aligned) + 1)
    x = msa_lm.family_rows(fam, 6, rows_by="diverse", seed=0)
    assert x.shape == (6, aligned.shape[1])
    np.testing.assert_array_equal(x[0], domain)
    np.testing.assert_array_equal(x, msa_lm.family_rows(fam, 6, rows_by="diverse", seed=3))
    picked = [next(b for b in eligible if (aligned[b] == row).all()) for row in x[1:]]
    assert len(set(picked)) == 5                           # distinct eligible rows
    farthest = eligible[np.argmax((aligned[eligible] != domain).sum(1))]
    assert farthest in picked                              # the first greedy pick
    far = (aligned[picked] != domain).sum(1).mean()
    drawn = (aligned[protein_lm.homolog_rows(fam, 6, seed=0)] != domain).sum(1).mean()
    assert far > drawn
    assert len(msa_lm.family_rows(fam, 1, rows_by="diverse")) == 1
    with pytest.raises(ValueError, match="rows_by must be one of .*got 'best'"):
        msa_lm.family_rows(fam, 6, rows_by="best")
    with pytest.raises(ValueError, match="rows must be >= 1 .*got 0"):
        msa_lm.family_rows(fam, 0, rows_by="diverse")
    cfg = _tiny(max_cols=64)
    params = msa_lm.init(jax.random.key(0), cfg)
    with pytest.raises(ValueError, match="draws must be 1 with rows_by 'diverse'"):
        msa_lm.family_head_maps(params, cfg, fam, rows=4, draws=2, rows_by="diverse")
    with pytest.raises(ValueError, match="eval_draws must be 1 with rows_by 'diverse'"):
        msa_lm.Settings(rows_by="diverse", eval_draws=2)


def _copy_family(rng, m=64, c=16):
    """Independent columns, each drawn from its own profile, except one column that copies
    another: the only co-varying pair."""
    profile = rng.dirichlet(np.full(20, 0.5), size=c)
    x = np.stack([rng.choice(20, m, p=p) for p in profile], 1)
    i, j = rng.choice(c, 2, replace=False)
    x[:, j] = x[:, i]
    return x.astype(np.int8), (min(i, j), max(i, j))


def test_short_training_finds_the_coupled_columns_of_unseen_alignments():
    rng = np.random.default_rng(0)
    settings = msa_lm.Settings(d_model=32, num_heads=2, d_ff=64, num_layers=1, rows=16,
                               crop=16, batch_size=4, steps=1500, learning_rate=3e-3)
    cfg = settings.model_config()
    msas = [_copy_family(rng)[0] for _ in range(200)]
    params, history = msa_lm.train(settings, msas, progress=False, log_every=100)
    assert history[-1][1] < history[0][1] - 0.3
    found = 0
    for _ in range(20):                           # fresh alignments, fresh coupled pairs
        x, pair = _copy_family(rng)
        maps = msa_lm.head_maps(params, cfg, x[:16])
        tops = set()
        for h in maps:
            i, j = np.triu_indices(16, 1)
            k = int(np.argmax(h[i, j]))
            tops.add((int(i[k]), int(j[k])))
        found += pair in tops
    assert found >= 16                            # chance: about 2 heads / 120 pairs


def test_console_entry_refuses_bad_steps(capsys):
    with pytest.raises(SystemExit):
        msa_lm.main(["--steps", "0"])
    assert "--steps must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        msa_lm.main(["--heads", "3"])
    assert "divisible by num_heads 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        msa_lm.main(["--crop", "200"])
    assert "crop 200 is wider than the network's max_cols 192" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        msa_lm.main(["--rows", "0"])
    assert "rows must be >= 1, got 0" in capsys.readouterr().err


def test_console_entry_names_the_missing_data(tmp_path, capsys):
    from zoo import cli
    assert cli.main(["bio", "msa-lm", "--data-dir", str(tmp_path)]) == 2
    assert structure.DATASET in capsys.readouterr().err


def test_console_entry_passes_its_settings_to_run(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(msa_lm, "run", lambda settings, **kw: seen.update(
        settings=settings, **kw) or {"summary": {}, "heldout_loss": 1.0})
    from zoo import cli
    assert cli.main(["bio", "msa-lm", "--data-dir", str(TESTDATA), "--quick", "--steps", "7",
                     "--no-column-attention", "--heads", "8", "--column-heads", "2",
                     "--relabel", "0.5", "--center-rows", "--rows", "32", "--crop", "128",
                     "--rows-by", "diverse", "--out", str(tmp_path)]) == 0
    s = seen["settings"]
    assert (s.rows, s.crop, s.rows_by) == (32, 128, "diverse")
    assert s.steps == 7 and not s.column_attention and s.eval_draws == msa_lm.QUICK.eval_draws
    assert (s.num_heads, s.column_heads, s.relabel, s.center_rows) == (8, 2, 0.5, True)
    assert s.model_config().center_rows
    assert seen["out"] == str(tmp_path)
    assert cli.main(["bio", "msa-lm", "--data-dir", str(TESTDATA), "--quick",
                     "--no-center-rows"]) == 0
    assert seen["settings"].center_rows is False
    assert cli.main(["bio", "msa-lm", "--data-dir", str(TESTDATA), "--quick"]) == 0
    assert seen["settings"].center_rows is msa_lm.Settings().center_rows
    assert seen["settings"].rows_by == msa_lm.Settings().rows_by == "random"


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / structure.DATASET).is_dir(),
                    reason="the full Pfam data is not in ../shared/data")
def test_run_writes_the_report_on_the_full_data(tmp_path):
    settings = msa_lm.Settings(d_model=16, num_heads=2, d_ff=32, num_layers=1, steps=20,
                               eval_draws=1)
    result = msa_lm.run(settings, data_dir=DATA, out=tmp_path, progress=False)
    assert {"MI+APC", "supervised attention (MSA LM)"} <= set(result["summary"])
    assert len(result["rows"]) == 4 * len(contact_eval.HELDOUT_FAMILIES)
    for name in ("report.md", "per_family.csv", "heads.png", "contact_maps.png",
                 "msa_lm_params.npz"):
        assert (tmp_path / name).is_file()
    assert "Goal (supervised attention (MSA LM) beats MI+APC" in (
        tmp_path / "report.md").read_text()
    back, cfg = msa_lm.load_params(tmp_path / "msa_lm_params.npz")
    assert cfg == settings.model_config()
    again = msa_lm.run(settings, data_dir=DATA, out=tmp_path / "again", progress=False,
                       params=tmp_path / "msa_lm_params.npz")
    assert not (tmp_path / "again" / "msa_lm_params.npz").exists()
    assert "not retrained" in (tmp_path / "again" / "report.md").read_text()
    assert again["history"] == [] and np.isfinite(again["heldout_loss"])


def test_console_entry_scores_saved_params_with_their_network(tmp_path, monkeypatch, capsys):
    cfg = msa_lm.Config(d_model=8, num_heads=4, d_ff=16, num_layers=1, column_heads=2)
    path = tmp_path / "p.npz"
    msa_lm.save_params(msa_lm.init(jax.random.key(0), cfg), path, cfg)
    seen = {}
    monkeypatch.setattr(msa_lm, "run", lambda settings, **kw: seen.update(
        settings=settings, **kw) or {"summary": {}, "heldout_loss": 1.0})
    assert msa_lm.main(["--data-dir", str(TESTDATA), "--params", str(path), "--heads", "16",
                        "--out", str(tmp_path)]) == 0
    assert seen["settings"].model_config() == cfg and seen["params"] == str(path)
    with pytest.raises(SystemExit):
        msa_lm.main(["--params", str(tmp_path / "absent.npz")])
    assert "--params" in capsys.readouterr().err


def test_run_refuses_params_of_another_network_before_reading_data(tmp_path):
    cfg = _tiny()
    msa_lm.save_params(msa_lm.init(jax.random.key(0), cfg), tmp_path / "p.npz", cfg)
    with pytest.raises(ValueError, match="params: .* holds a model of"):
        msa_lm.run(msa_lm.Settings(), data_dir=tmp_path / "nowhere", params=tmp_path / "p.npz")


def test_report_says_where_saved_params_came_from():
    result = {"params_from": "x.npz", "history": [], "train_loss": 1.0, "heldout_loss": 2.0}
    read = "\n".join(msa_lm._lm_lines(result, msa_lm.Settings()))
    assert "read from `x.npz`" in read and "Training loss" not in read and "**2.000**" in read
    trained = "\n".join(msa_lm._lm_lines({**result, "params_from": None,
                                           "history": [(50, 3.0), (100, 2.5)]},
                                          msa_lm.Settings()))
    assert "50: 3.000, 100: 2.500" in trained and "read from" not in trained
