"""Tests of zoo.bio.msa_ensemble: the stack of the members' maps, the members' map cache,
the cross-validation of λ against each family's own precision, the console entry and (slow)
a run on the full data."""

import dataclasses
from pathlib import Path

import jax
import numpy as np
import pytest

from zoo.bio import contact_eval, contacts, msa_ensemble, msa_lm, structure

DATA = Path(__file__).parents[2] / "shared" / "data"
TESTDATA = Path(__file__).parent / "data" / "bio" / "pfam"


def _tiny(**kw):
    return msa_lm.Config(**{"d_model": 8, "num_heads": 2, "d_ff": 16, "num_layers": 1,
                            "max_cols": 128, **kw})


def _saved(tmp_path, name, seed, **kw):
    cfg = _tiny(**kw)
    path = tmp_path / name
    msa_lm.save_params(msa_lm.init(jax.random.key(seed), cfg), path, cfg)
    return path


def test_stack_maps_is_model_major_and_refuses_other_widths():
    a = np.arange(2 * 9).reshape(2, 3, 3).astype(float)
    b = -np.arange(3 * 9).reshape(3, 3, 3).astype(float)
    got = msa_ensemble.stack_maps([a, b])
    assert got.shape == (5, 3, 3)
    np.testing.assert_array_equal(got[1], a[1])
    np.testing.assert_array_equal(got[4], b[2])
    with pytest.raises(ValueError, match=r"shapes \[\(2, 3, 3\), \(1, 4, 4\)\]"):
        msa_ensemble.stack_maps([a, np.zeros((1, 4, 4))])
    with pytest.raises(ValueError, match="one T"):
        msa_ensemble.stack_maps([])


def test_load_members_needs_two_distinct_readable_files(tmp_path):
    one, two = _saved(tmp_path, "a.npz", 0), _saved(tmp_path, "b.npz", 1)
    members = msa_ensemble.load_members([one, two])
    assert [c for _, c in members] == [_tiny(), _tiny()]
    with pytest.raises(ValueError, match="at least two params files, got 1"):
        msa_ensemble.load_members([one])
    with pytest.raises(ValueError, match="a.npz is named twice"):
        msa_ensemble.load_members([one, two, tmp_path / "." / "a.npz"])
    with pytest.raises(OSError):
        msa_ensemble.load_members([one, tmp_path / "absent.npz"])


def test_member_maps_are_the_members_maps_and_come_back_from_the_cache(tmp_path,
                                                                       monkeypatch):
    fam = structure.load_family("PF00327", TESTDATA)
    families = {"PF00327": fam}
    settings = msa_ensemble.Settings(eval_rows=6, rows_by="random",
                                     cache_dir=str(tmp_path / "cache"))
    path = _saved(tmp_path, "a.npz", 0)
    member = msa_lm.load_params(path)
    want = msa_lm.family_head_maps(*member, fam, rows=6, seed=0)
    got = msa_ensemble.member_maps(path, member, families, settings, progress=False)
    np.testing.assert_allclose(got["PF00327"], want, atol=1e-6)
    assert len(list((tmp_path / "cache").glob("msa_maps_*_6_1_0.npz"))) == 1

    def refuse(*a, **k):
        raise AssertionError("read again")
    monkeypatch.setattr(msa_lm, "family_head_maps", refuse)
    again = msa_ensemble.member_maps(path, member, families, settings, progress=False)
    np.testing.assert_allclose(again["PF00327"], want, rtol=1e-6, atol=1e-7)
    other = _saved(tmp_path, "b.npz", 1)                   # another file: another entry
    with pytest.raises(AssertionError, match="read again"):
        msa_ensemble.member_maps(other, msa_lm.load_params(other), families, settings,
                                 progress=False)
    for changed in ({"eval_rows": 5}, {"rows_by": "diverse"}, {"seed": 1}):
        with pytest.raises(AssertionError, match="read again"):   # other rows: other entry
            msa_ensemble.member_maps(path, member, families,
                                     dataclasses.replace(settings, **changed), progress=False)


def test_member_maps_read_the_diverse_rows_by_default(tmp_path):
    fam = structure.load_family("PF00327", TESTDATA)
    path = _saved(tmp_path, "a.npz", 0)
    member = msa_lm.load_params(path)
    settings = msa_ensemble.Settings(eval_rows=6, cache_dir=str(tmp_path / "cache"))
    assert settings.rows_by == "diverse"
    got = msa_ensemble.member_maps(path, member, {"PF00327": fam}, settings, progress=False)
    want = msa_lm.head_maps(*member, msa_lm.family_rows(fam, 6, rows_by="diverse"))
    np.testing.assert_allclose(got["PF00327"], want, atol=1e-6)
    assert len(list((tmp_path / "cache").glob("msa_maps_*_6_diverse.npz"))) == 1


def test_cross_validation_scores_every_training_family_once():
    fam = structure.load_family("PF00327", TESTDATA)
    true = (fam.contacts() > 0).astype(float)
    rng = np.random.default_rng(0)
    ids = contact_eval.TRAIN_FAMILIES[:6]
    families, maps, want = {}, {}, []
    for p in ids:                       # one structure, six noisy readings of its contacts
        noise = rng.normal(size=true.shape)
        signal = true + 0.9 * (noise + noise.T)
        families[p] = fam
        maps[p] = np.stack([signal, 2 * signal + 1])      # one direction of evidence
        want.append(contacts.family_precisions(fam, signal)["long_P@L/5"])
    maps["PF00018"] = maps[ids[0]]                         # a held-out family: never read
    families["PF00018"] = fam
    got = msa_ensemble.cross_validate_l1(maps, families, (1e-4,), folds=3)
    assert set(got) == {1e-4}
    assert got[1e-4] == pytest.approx(np.mean(want), abs=1e-12)
    assert 0.2 < got[1e-4] < 1.0
    with pytest.raises(ValueError, match=r"folds must be in \[2, 6\].*got 7"):
        msa_ensemble.cross_validate_l1(maps, families, (1e-4,), folds=7)


def test_settings_refuse_bad_values_by_name():
    with pytest.raises(ValueError, match="eval_rows must be >= 1, got 0"):
        msa_ensemble.Settings(eval_rows=0)
    with pytest.raises(ValueError, match="folds"):
        msa_ensemble.Settings(folds=0)
    with pytest.raises(ValueError, match="l1 and l1_grid must be > 0"):
        msa_ensemble.Settings(l1=0.0)
    with pytest.raises(ValueError, match="rows_by must be one of .*got 'best'"):
        msa_ensemble.Settings(rows_by="best")
    with pytest.raises(ValueError, match="eval_draws must be 1 with rows_by 'diverse'"):
        msa_ensemble.Settings(eval_draws=2)


def test_console_entry_passes_its_settings_to_run(tmp_path, monkeypatch, capsys):
    one, two = _saved(tmp_path, "a.npz", 0), _saved(tmp_path, "b.npz", 1, center_rows=True)
    seen = {}
    monkeypatch.setattr(msa_ensemble, "run", lambda paths, settings, **kw: seen.update(
        paths=paths, settings=settings, **kw) or {"summary": {}})
    from zoo import cli
    assert cli.main(["bio", "msa-ensemble", str(one), str(two), "--data-dir", str(TESTDATA),
                     "--rows", "33", "--l1", "0.003", "--seed", "2", "--rows-by", "random",
                     "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o")]) == 0
    s = seen["settings"]
    assert seen["paths"] == [str(one), str(two)] and seen["out"] == str(tmp_path / "o")
    assert (s.eval_rows, s.l1, s.seed, s.rows_by, s.cache_dir) == (33, 0.003, 2, "random",
                                                                   str(tmp_path / "c"))
    assert s.l1_grid == msa_ensemble.Settings().l1_grid
    assert cli.main(["bio", "msa-ensemble", str(one), str(two), "--data-dir", str(TESTDATA),
                     "--quick"]) == 0
    assert seen["settings"] == msa_ensemble.QUICK
    with pytest.raises(SystemExit):
        msa_ensemble.main([str(one), "--data-dir", str(TESTDATA)])
    assert "at least two params files" in capsys.readouterr().err
    assert cli.main(["bio", "msa-ensemble", str(one), str(two), "--data-dir",
                     str(tmp_path)]) == 2
    assert structure.DATASET in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / structure.DATASET).is_dir(),
                    reason="the full Pfam data is not in ../shared/data")
def test_run_writes_the_report_on_the_full_data(tmp_path):
    cfg = _tiny(max_cols=192)
    paths = []
    for k in range(2):
        paths.append(tmp_path / f"m{k}.npz")
        msa_lm.save_params(msa_lm.init(jax.random.key(k), cfg), paths[-1], cfg)
    settings = msa_ensemble.Settings(eval_rows=16, l1_grid=(1e-3,),
                                     cache_dir=str(tmp_path / "cache"))
    result = msa_ensemble.run(paths, settings, data_dir=DATA, out=tmp_path / "o",
                              progress=False)
    methods = {"MI+APC", "supervised attention (model 0)", "supervised attention (model 1)",
               msa_ensemble.SUPERVISED}
    assert methods <= set(result["summary"]) and result["weights"] == 4
    assert len(result["rows"]) == 6 * len(contact_eval.HELDOUT_FAMILIES)
    assert set(result["cv"]) == {1e-3} and len(result["heldout_loss"]) == 2
    for name in ("report.md", "per_family.csv", "contact_maps.png"):
        assert (tmp_path / "o" / name).is_file()
    report = (tmp_path / "o" / "report.md").read_text()
    assert "Goal (supervised attention (ensemble) beats MI+APC" in report
    assert result["cached"] == 0 and "0 of the 2 members' maps read from the cache" in report
    again = msa_ensemble.run(paths, settings, data_dir=DATA, progress=False)
    assert again["cached"] == 2
    key = (msa_ensemble.SUPERVISED, "long_P@L/5")
    assert abs(again["summary"][key[0]][key[1]] - result["summary"][key[0]][key[1]]) < 0.02
