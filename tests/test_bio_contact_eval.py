"""Tests of zoo.bio.contact_eval: the family split, the L1 logistic regression over heads, the
predictors read from maps, the scores and the MI+APC baseline's cache."""

from pathlib import Path

import numpy as np
import pytest

from zoo.bio import contact_eval, contacts, msa, structure

DATA = Path(__file__).parents[2] / "shared" / "data"
TESTDATA = Path(__file__).parent / "data" / "bio" / "pfam"
needs_data = pytest.mark.skipif(not (DATA / structure.DATASET).is_dir(),
                                reason="the full Pfam data is not in ../shared/data")


def test_split_constants_disjoint_and_cover_40():
    train, held = contact_eval.TRAIN_FAMILIES, contact_eval.HELDOUT_FAMILIES
    assert len(train) == 30 and len(held) == 10
    assert not set(train) & set(held)
    assert len(set(train) | set(held)) == 40
    assert list(train) == sorted(train) and list(held) == sorted(held)


def test_split_follows_the_documented_rule():
    ids = sorted(contact_eval.TRAIN_FAMILIES + contact_eval.HELDOUT_FAMILIES)
    perm = np.random.default_rng(0).permutation(40)          # the rule, written out
    held = sorted(ids[i] for i in perm[:10])
    assert tuple(held) == contact_eval.HELDOUT_FAMILIES
    assert contact_eval.split_families(ids[::-1]) == (contact_eval.TRAIN_FAMILIES,
                                                    contact_eval.HELDOUT_FAMILIES)


@needs_data
def test_split_covers_the_families_of_the_data():
    ids = structure.list_families(DATA)
    assert sorted(ids) == sorted(contact_eval.TRAIN_FAMILIES + contact_eval.HELDOUT_FAMILIES)


def test_split_refuses_bad_arguments():
    with pytest.raises(ValueError, match="num_heldout"):
        contact_eval.split_families(["a", "b"], num_heldout=2)
    with pytest.raises(ValueError, match="distinct"):
        contact_eval.split_families(["a", "a", "b"])


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
    model = contact_eval.fit_l1_logistic(x, y, l1=0.02, steps=400)
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
    m = contact_eval.fit_l1_logistic(x, y, l1=0.0, steps=3000)
    z = m.decision_function(x)
    p = 1 / (1 + np.exp(-z))
    xs = (x[:, 0] - x[:, 0].mean()) / x[:, 0].std()
    assert abs(np.mean(p - y)) < 1e-4 and abs(np.mean((p - y) * xs)) < 1e-4


def test_l1_logistic_refuses_bad_inputs():
    with pytest.raises(ValueError, match="0/1"):
        contact_eval.fit_l1_logistic(np.ones((3, 2)), np.array([0, 2, 1]))
    with pytest.raises(ValueError, match=r"\[P, I\]"):
        contact_eval.fit_l1_logistic(np.ones((3, 2)), np.array([0, 1]))


def test_mi_apc_cached_is_the_baseline_and_round_trips(tmp_path):
    fam = structure.load_family("PF00327", TESTDATA)
    x = fam.alignment.encoded()
    want = contacts.mi_apc(x, msa.sequence_weights(x))
    got = contact_eval.mi_apc_cached(fam, str(tmp_path))
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert (tmp_path / "mi_apc_PF00327.npy").is_file()
    np.testing.assert_allclose(contact_eval.mi_apc_cached(fam, str(tmp_path)), want)
    sub = contact_eval.mi_apc_cached(fam, None, max_sequences=50, seed=1)
    rows = x[np.sort(np.random.default_rng(1).permutation(len(x))[:50])]
    np.testing.assert_allclose(sub, contacts.mi_apc(rows, msa.sequence_weights(rows)),
                               atol=1e-12)




def _noisy_stack(family, heads, signal, seed=0):
    """``heads`` symmetric noise maps on the family's columns; head ``signal`` is its true
    contacts (1 in contact, 0 not or unresolved) plus a little noise."""
    rng = np.random.default_rng(seed)
    t = len(family.column_residue)
    maps = rng.normal(size=(heads, t, t))
    maps = (maps + maps.transpose(0, 2, 1)) / 2
    maps[signal] = (family.contacts() > 0) + 0.01 * maps[signal]
    return maps


def test_fit_predictors_finds_the_head_that_is_the_contact_map():
    fam = structure.load_family("PF00327", TESTDATA)
    maps = {"PF00327": _noisy_stack(fam, 5, 3)}
    pred = contact_eval.fit_predictors(maps, {"PF00327": fam}, tag=" (x)")
    assert pred["best_head"] == 3 and pred["head_train"].shape == (5,)
    # each head's score is its own long-range P@L/5, computed here straight from the map
    for h in range(5):
        want = contacts.family_precisions(fam, maps["PF00327"][h])["long_P@L/5"]
        assert pred["head_train"][h] == pytest.approx(want)
    assert set(pred["scores"]) == {"best head (x)", "mean of heads (x)",
                                   "supervised attention (x)"}
    np.testing.assert_array_equal(pred["scores"]["best head (x)"]["PF00327"],
                                  maps["PF00327"][3])
    np.testing.assert_allclose(pred["scores"]["mean of heads (x)"]["PF00327"],
                               maps["PF00327"].mean(0))
    rows = contact_eval.evaluate(pred["scores"], {"PF00327": fam}, ["PF00327"])
    got = {r["method"]: r["long_P@L/5"] for r in rows}
    assert got["supervised attention (x)"] == 1.0 and got["best head (x)"] == 1.0
    with pytest.raises(ValueError, match="TRAIN_FAMILIES"):
        contact_eval.fit_predictors({"PF00018": maps["PF00327"]}, {"PF00018": fam})


def test_summarize_is_the_mean_over_families_and_the_goal_line_compares():
    rows = [{"method": "a", "family": "f", "L": 10, "long_P@L/5": 0.5, "long_density": 0.1},
            {"method": "a", "family": "g", "L": 20, "long_P@L/5": 0.25, "long_density": 0.3},
            {"method": "b", "family": "f", "L": 10, "long_P@L/5": 0.4, "long_density": 0.1}]
    summary = contact_eval.summarize(rows)
    assert summary == {"a": {"long_P@L/5": 0.375, "long_density": 0.2},
                       "b": {"long_P@L/5": 0.4, "long_density": 0.1}}
    assert "**not met** (a 0.375; b 0.400)" in contact_eval.goal_line(summary, "a", ("b",))
    assert "**met** (b 0.400; a 0.375)" in contact_eval.goal_line(summary, "b", ("a",))


def test_saved_params_names_the_file_of_another_model():
    read = lambda path: ({"w": 1}, "config A")
    assert contact_eval.saved_params("p.npz", "config A", read) == {"w": 1}
    with pytest.raises(ValueError, match="p.npz holds a model of config A"):
        contact_eval.saved_params("p.npz", "config B", read)


def test_print_summary_writes_one_aligned_line_per_method(capsys):
    summary = {"MI+APC": {k: 0.5 for k in contact_eval.METRICS},
               "supervised attention": {k: 0.25 + i / 1000
                                        for i, k in enumerate(contact_eval.METRICS)}}
    contact_eval.print_summary(summary)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "MI+APC               long_P@L/5 0.500 long_P@L 0.500 " \
                       "medium_P@L/5 0.500 medium_P@L 0.500"
    assert lines[1] == "supervised attention long_P@L/5 0.250 long_P@L 0.251 " \
                       "medium_P@L/5 0.252 medium_P@L 0.253"
