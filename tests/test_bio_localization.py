"""zoo.bio.localization: the attention pooling against its NumPy formula, cropping and
tokens by hand, padding (a padded batch equals each protein alone, for all three kinds), the
masked membrane loss, the composition baseline by direct count, the scores, a short training
run that beats chance, and the console run on the DeepLoc subsets in tests/data/bio."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.tolerances import REORDERED, assert_close
from zoo.bio import localization as loc
from zoo.bio.fasta import DEEPLOC_FILES, DEEPLOC_LOCATIONS
from zoo.bio.tokenizers import AMINO_ACIDS

DATA = Path(__file__).parent / "data" / "bio"
SUBSETS = {"train": "deeploc_train_subset.fasta", "test": "deeploc_test_subset.fasta",
           "hard": "deeploc_hard_subset.fasta"}
SMALL = dict(embed_dim=5, hidden_dim=6, attention_dim=7, dense_dim=9, num_heads=2,
             kernel_size=3, max_length=13)


@pytest.fixture
def subset_root(tmp_path):
    folder = tmp_path / "deeploc"
    folder.mkdir()
    for split, name in SUBSETS.items():
        (folder / DEEPLOC_FILES[split]).write_bytes((DATA / name).read_bytes())
    return tmp_path


def _numpy_pool(w, b, v, h, mask):
    """e_t = v · tanh(W h_t + b), softmax over the valid t, c = Σ a_t h_t, by loops."""
    B, T, _ = h.shape
    a = np.zeros((B, T))
    for i in range(B):
        e = [float(v @ np.tanh(h[i, t] @ w + b)) for t in range(T) if mask[i, t]]
        ex = np.exp(np.array(e) - max(e))
        a[i, mask[i]] = ex / ex.sum()
    c = np.einsum("bt,btd->bd", a, h)
    return c, a


def test_attention_pool_matches_numpy_formula():
    rng = np.random.default_rng(1)
    B, T, D, I = 3, 7, 5, 4
    h = rng.normal(size=(B, T, D))
    mask = np.arange(T)[None, :] < np.array([7, 2, 5])[:, None]
    p = {"w_di": rng.normal(size=(D, I)), "b_i": rng.normal(size=I), "v_i": rng.normal(size=I)}
    c, a = loc.attention_pool(jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), p),
                              jnp.asarray(h, jnp.float32), jnp.asarray(mask))
    c_ref, a_ref = _numpy_pool(p["w_di"], p["b_i"], p["v_i"], h, mask)
    assert_close(a, a_ref)
    assert_close(c, c_ref)
    assert np.all(np.asarray(a)[~mask] == 0)


def test_encode_sequences_crops_termini_and_pads():
    tokens, lengths = loc.encode_sequences(["MKVLAGW", "CD"], 6, max_length=4)
    ids = lambda s: [5 + AMINO_ACIDS.index(c) for c in s]
    assert tokens.tolist() == [ids("MKGW") + [0, 0], ids("CD") + [0, 0, 0, 0]]
    assert lengths.tolist() == [4, 2]
    unknown, _ = loc.encode_sequences(["AXJ"], 3)     # X is a protein letter, J is not
    assert unknown.tolist() == [[5, 25, 4]]


@pytest.mark.parametrize("kind", loc.KINDS)
def test_padded_batch_equals_each_protein_alone(kind):
    cfg = loc.Config(kind=kind, **SMALL)
    params = loc.init(jax.random.key(3), cfg)
    seqs = ["MKVLAGHWQ", "MCD", "AYTRPLKESNMG"]
    tokens, lengths = loc.encode_sequences(seqs, 13)
    batch = loc.apply(params, jnp.asarray(tokens), jnp.asarray(lengths), cfg)
    for i, s in enumerate(seqs):
        t1, l1 = loc.encode_sequences([s], len(s))
        alone = loc.apply(params, jnp.asarray(t1), jnp.asarray(l1), cfg)
        for got, want in zip(batch[:2], alone[:2]):
            assert_close(got[i], want[0], **REORDERED)
        assert_close(batch[2][i, :len(s)], alone[2][0], **REORDERED)
        assert np.all(np.asarray(batch[2][i, len(s):]) == 0)


def test_pooling_weights_sum_to_one_over_residues():
    # (attention pooling's weights: the doctest and test_attention_pool_matches_numpy_formula)
    for kind, pooling in (("transformer", "mean"), ("cnn", "max")):
        cfg = loc.Config(kind=kind, pooling=pooling, **SMALL)
        tokens, lengths = loc.encode_sequences(["MKVLA", "MKVLAGHW"], 11)
        _, _, w = loc.apply(loc.init(jax.random.key(0), cfg), jnp.asarray(tokens),
                            jnp.asarray(lengths), cfg)
        assert_close(np.asarray(w).sum(axis=1), [1.0, 1.0], **REORDERED)


def test_config_refuses_bad_values_naming_them():
    with pytest.raises(ValueError, match="kind"):
        loc.Config(kind="gru")
    with pytest.raises(ValueError, match="pooling"):
        loc.Config(kind="cnn", pooling="attention")
    with pytest.raises(ValueError, match="num_heads"):
        loc.Config(kind="transformer", hidden_dim=10, num_heads=4)
    with pytest.raises(ValueError, match="holdout"):
        loc.Settings(holdout=0.7)


def _np_ce(logits, labels):
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(labels)), labels]


def test_loss_masks_unknown_membrane_and_filler_rows():
    cfg = loc.Config(kind="cnn", **SMALL)
    params = loc.init(jax.random.key(5), cfg)
    tokens, lengths = loc.encode_sequences(["MKVLA", "MKVLAGHW", "CDE", "A"], 11)
    batch = {"tokens": jnp.asarray(tokens), "lengths": jnp.asarray(lengths),
             "label": jnp.array([2, 0, 7, 0]), "membrane": jnp.array([0, -1, 1, -1]),
             "weight": jnp.array([1.0, 1.0, 1.0, 0.0])}
    lo, me, _ = (np.asarray(x, np.float64) for x in loc.apply(params, batch["tokens"],
                                                               batch["lengths"], cfg))
    want = _np_ce(lo[:3], [2, 0, 7]).mean() + 0.3 * _np_ce(me[[0, 2]], [0, 1]).mean()
    got = loc.loss(params, batch, cfg, membrane_weight=0.3)
    assert_close(got, want)


def test_composition_counts_directly():
    x = loc.composition(["MKMK", "AXA"])
    assert x.shape == (2, 420)
    m, k = AMINO_ACIDS.index("M"), AMINO_ACIDS.index("K")
    assert x[0, m] == x[0, k] == 0.5
    assert np.isclose(x[0, 20 + 20 * m + k], 2 / 3) and np.isclose(x[0, 20 + 20 * k + m], 1 / 3)
    assert x[1, AMINO_ACIDS.index("A")] == 1.0 and x[1, 20:].sum() == 0   # AX, XA skipped


def test_scores_count_membrane_only_where_known():
    records = [{"label": 0, "membrane": "M"}, {"label": 1, "membrane": "U"},
               {"label": 1, "membrane": "S"}, {"label": 2, "membrane": "S"}]
    loc_prob = np.eye(10)[[0, 1, 2, 2]]
    mem_prob = np.eye(2)[[0, 0, 0, 1]]     # right, (unknown), wrong, right
    s = loc.scores(records, {"loc_prob": loc_prob, "mem_prob": mem_prob})
    assert s["accuracy"] == 0.75 and s["membrane_known"] == 3
    assert np.isclose(s["membrane_accuracy"], 2 / 3)
    # Gorodkin by hand: s=4, c=3, t=(1,2,1), p=(1,1,2): (12-5)/sqrt((16-6)(16-6)) = 0.7
    assert np.isclose(s["mcc"], 0.7)


def test_attention_head_mass_sums_first_residues():
    w = [np.full(40, 1 / 40), np.array([0.5, 0.25, 0.25])]
    assert np.allclose(loc.attention_head_mass(w), [30 / 40, 1.0])


def test_batches_cover_every_record_once_with_fillers_weighted_zero():
    cfg = loc.Config(kind="cnn", **SMALL)
    records = [{"sequence": "M" * n, "label": n % 10, "membrane": "MSU"[n % 3]}
               for n in (3, 9, 13, 20, 5, 7, 30)]
    batches = loc.make_batches(records, cfg, 3, rng=np.random.default_rng(0))
    idx = np.concatenate([b["index"] for b in batches])
    assert sorted(idx[idx >= 0].tolist()) == list(range(7))
    for b in batches:
        assert b["tokens"].shape[1] in (6, 13)
        assert np.array_equal(b["weight"] == 0, b["index"] < 0)
        assert np.array_equal(b["membrane"][b["index"] < 0], [-1] * (b["index"] < 0).sum())


def _synthetic(n, seed):
    """Class 0 proteins start with a hydrophobic stretch (a signal-peptide-like N-terminus),
    class 1 with a charged one; the rest is random."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = i % 2
        head = "".join(rng.choice(list("LIVF" if label == 0 else "KRDE"), 6))
        body = "".join(rng.choice(list(AMINO_ACIDS), int(rng.integers(8, 20))))
        out.append({"sequence": head + body, "label": label, "membrane": "MS"[label]})
    return out


def _train_beats_chance(kind, epochs):
    cfg = loc.Config(kind=kind, embed_dim=8, hidden_dim=8, attention_dim=8, dense_dim=8,
                     kernel_size=5, max_length=26, dropout=0.0)
    settings = loc.Settings(models=(kind,), epochs=epochs, batch_size=16, learning_rate=1e-2)
    splits = {"train": _synthetic(64, 0), "holdout": _synthetic(16, 1)}
    params, history = loc.train(cfg, splits, settings, 0, progress=False)
    test = _synthetic(40, 2)
    acc = loc.scores(test, loc.predict(params, cfg, test))["accuracy"]
    assert acc >= 0.8, (acc, history)       # chance is 0.5


def test_short_cnn_training_beats_chance():
    _train_beats_chance("cnn", 6)


@pytest.mark.slow
def test_short_blstm_training_beats_chance():
    _train_beats_chance("blstm", 8)


def test_console_run_on_subsets_writes_report(subset_root, tmp_path):
    out = tmp_path / "out"
    code = loc.main(["--quick", "--data-dir", str(subset_root), "--out", str(out),
                     "--models", "cnn", "--epochs", "1"])
    assert code == 0
    assert {p.name for p in out.iterdir()} == {"report.md", "scores.csv", "per_class.csv",
                                               "predictions.csv", "confusion.png"}
    report = (out / "report.md").read_text()
    assert "kmer-LR" in report and "about a sixth" in report
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 6 + 5     # header, the test and setHARD subsets
    assert set(DEEPLOC_LOCATIONS) >= {r.split(",")[-1] for r in rows[1:]}
