"""zoo.bio.dna_models: encodings, the Transformer head and its one-hot forward, saliency and
attention averages against NumPy references, masking, a planted-motif training run that
beats chance, and the whole application on the shipped subsets."""

import dataclasses
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.tolerances import REORDERED, assert_close
from zoo import transformer
from zoo.bio import dna, tokenizers
from zoo.bio import dna_models as dm

DATA = Path(__file__).parent / "data" / "bio"
TINY = dm.Settings(d_model=16, num_heads=2, num_layers=2, hidden=8, batch_size=8)


def test_one_hot_by_hand():
    got = dm.one_hot(["ACGT", "NRd"])
    assert got.shape == (2, 4, 4)
    np.testing.assert_array_equal(got[0], np.eye(4))
    np.testing.assert_array_equal(got[1, 0], [0.25] * 4)            # N: any base
    np.testing.assert_array_equal(got[1, 1], [0.5, 0, 0.5, 0])        # R: A or G
    np.testing.assert_allclose(got[1, 2], [1 / 3, 0, 1 / 3, 1 / 3])   # D: A, G or T
    np.testing.assert_array_equal(got[1, 3], 0)                       # padding


def test_one_hot_names_bad_letter():
    with pytest.raises(ValueError, match=r"sequence 1: letter 'X' at position 2"):
        dm.one_hot(["ACG", "ACX"])


def test_window_mass_by_hand():
    p = np.arange(1.0, 11.0)          # sum 55; indices 2..4 hold 3 + 4 + 5 = 12
    assert dm.window_mass(p, slice(2, 5)) == pytest.approx(12 / 55)
    assert dm.JUNCTION_WINDOW == slice(27, 34)   # ±3 around index 30: 7 of 60
    assert dm.window_mass(np.ones(60), dm.JUNCTION_WINDOW) == pytest.approx(7 / 60)


def _encoder(length=13):
    s = dataclasses.replace(TINY, d_model=12, num_heads=3)
    cfg = dm.encoder_config(length, s)
    return cfg, transformer.init(jax.random.key(1), cfg)


def test_encode_onehot_equals_encode():
    cfg, params = _encoder()
    tok = jnp.asarray(np.random.default_rng(0).integers(5, 20, (3, 11)), jnp.int32)
    want, _ = transformer.encode(params, tok, cfg)
    got = dm.encode_onehot(params, jax.nn.one_hot(tok, cfg.vocab_size), tok != 0, cfg)
    assert_close(got, want, **REORDERED)


def test_pooled_head_against_numpy():
    rng = np.random.default_rng(2)
    h, w, b = rng.normal(size=(2, 5, 3)), rng.normal(size=(3, 4)), rng.normal(size=4)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    want = np.stack([h[i, mask[i]].mean(0) @ w + b for i in range(2)])
    got = dm.pooled_head({"w_do": jnp.asarray(w), "b_o": jnp.asarray(b)}, jnp.asarray(h),
                         jnp.asarray(mask))
    assert_close(got, want)


def test_transformer_padded_batch_equals_each_alone():
    model = dm.transformer_model(13, 3, dataclasses.replace(TINY, d_model=12, num_heads=3))
    params = model.init(jax.random.key(3))
    seqs = ["ACGTACG", "TTGACATTATAAT"]
    tok = dm.tokens(seqs)                               # [2, 13], the first padded
    batch = np.asarray(model.logits(params, jnp.asarray(tok)))
    for i, s in enumerate(seqs):
        alone = np.asarray(model.logits(params, jnp.asarray(dm.tokens([s]))))
        assert_close(batch[i], alone[0], **REORDERED)


def _linear_model(w_sco):
    w = jnp.asarray(w_sco)
    logits = lambda p, x: jnp.einsum("BSC,SCO->BO", x, w)
    return dm.Model("linear", "onehot", lambda key: {}, logits, logits)


def test_saliency_of_a_linear_model():
    # z_o = Σ_{s,c} x_sc W_sco, so ∂z_y/∂x_sc = W_scy whatever x is.
    rng = np.random.default_rng(4)
    w = rng.normal(size=(7, 4, 3))
    x = dm.one_hot(["ACGTACG", "TTTTAAA"])
    y = np.array([2, 0])
    want = np.stack([np.abs(w[:, :, c]).sum(1) for c in y])
    want /= want.sum(1, keepdims=True)
    got = dm.saliency(_linear_model(w), {}, x, y)
    assert_close(got, want)


def test_transformer_saliency_matches_finite_differences():
    model = dm.transformer_model(9, 2, dataclasses.replace(TINY, d_model=12, num_heads=3))
    x = np.asarray(jax.nn.one_hot(dm.tokens(["ACGTTGACA"]), 20), np.float64)
    eps, grad = 1e-6, np.zeros((9, 4))
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32
                              else a, model.init(jax.random.key(5)))
        logit = jax.jit(lambda v: model.onehot_logits(params, v)[0, 1])
        f = lambda v: float(logit(jnp.asarray(v)))
        for s in range(9):
            for c in range(4):
                up, down = x.copy(), x.copy()
                up[0, s, 5 + c] += eps
                down[0, s, 5 + c] -= eps
                grad[s, c] = (f(up) - f(down)) / (2 * eps)
        got = dm.saliency(model, params, x, np.array([1]))
    want = np.abs(grad).sum(1)
    np.testing.assert_allclose(got[0], want / want.sum(), rtol=1e-4, atol=1e-7)


def test_attention_mass_is_the_average_received():
    cfg, params = _encoder()
    tok = np.random.default_rng(6).integers(5, 9, (2, 13)).astype(np.int32)
    maps = np.asarray(transformer.attention_maps(params, jnp.asarray(tok), cfg=cfg))
    n_layers, _, n_heads, n_query, n_key = maps.shape
    want = np.zeros((2, n_key))
    for b in range(2):
        for l in range(n_layers):
            for n in range(n_heads):
                for t in range(n_query):
                    want[b] += maps[l, b, n, t] / (n_layers * n_heads * n_query)
    assert_close(dm.attention_mass(params, tok, cfg), want, **REORDERED)
    assert_close(dm.attention_mass(params, tok, cfg, last=True),
                 maps[-1].mean(axis=(1, 2)), **REORDERED)
    np.testing.assert_allclose(dm.attention_mass(params, tok, cfg).sum(1), 1, rtol=1e-5)


def test_class_profiles_against_a_loop():
    rng = np.random.default_rng(7)
    per_seq, y = rng.random((9, 5)), np.array([0, 1, 2, 0, 1, 2, 0, 0, 1])
    want = np.stack([sum(per_seq[i] for i in range(9) if y[i] == c) / (y == c).sum()
                     for c in range(3)])
    np.testing.assert_allclose(dm.class_profiles(per_seq, y, 3), want)


def test_mask_tokens_masks_real_positions_only():
    tok = np.full((400, 17), 7, np.int32)
    tok[:, 12:] = tokenizers.PAD                  # 12 real positions per row
    inputs, targets = (np.asarray(a) for a in
                       dm.mask_tokens(jnp.asarray(tok), 0.15, jax.random.key(0)))
    chosen = inputs == tokenizers.MASK
    assert not chosen[:, 12:].any() and (inputs[:, 12:] == tokenizers.PAD).all()
    assert chosen.any(axis=1).all()               # at least one per sequence
    np.testing.assert_array_equal(targets, np.where(chosen, 7, tokenizers.PAD))
    assert 0.12 < chosen[:, :12].mean() < 0.2     # 15% of 4,800 positions, ± 5 sd


def test_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="tasks must be"):
        dm.Settings(tasks=("protein",))
    with pytest.raises(ValueError, match="splice_folds must be >= 2, got 1"):
        dm.Settings(splice_folds=1)
    with pytest.raises(ValueError, match=r"d_model \(30\) must be divisible by num_heads"):
        dm.Settings(d_model=30, num_heads=4)


def _planted(n, seed):
    """Random 20-nt windows; class 0 holds GT at [10, 12), class 1 AG at [8, 10), class 2
    neither (both dinucleotides broken there)."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for i in range(n):
        s = list(rng.choice(list("ACGT"), 20))
        c = i % 3
        if c == 0:
            s[10:12] = "GT"
        elif c == 1:
            s[8:10] = "AG"
        else:
            s[10], s[8] = "C", "C"
        seqs.append("".join(s))
        labels.append(c)
    return dm.one_hot(seqs), dm.tokens(seqs), np.array(labels, np.int32)


def test_cnn_learns_a_planted_motif_and_looks_at_it():
    x, _, y = _planted(150, 0)
    x_test, _, y_test = _planted(60, 1)
    model = dm.cnn_model(20, 3, TINY)
    params = dm.train_classifier(model, x, y, 20, TINY, seed=0)
    acc = (dm.predict(model, params, x_test).argmax(1) == y_test).mean()
    assert acc > 0.6, acc                        # chance is 1/3
    sal = dm.saliency(model, params, x_test, y_test)
    assert dm.window_mass(sal[y_test == 0].mean(0), slice(10, 12)) > 2 / 20


@pytest.mark.slow
def test_lstm_and_transformer_learn_a_planted_motif():
    x, tok, y = _planted(150, 0)
    x_test, tok_test, y_test = _planted(60, 1)
    # Chance is 1/3: 20 of 60 test windows, sd 3.7; 0.5 is 30, 2.7 sd above it. The LSTM,
    # reading only its final states, learns the mid-window motif slowest.
    for model, (xs, xt), floor in ((dm.lstm_model(3, TINY), (x, x_test), 0.5),
                                   (dm.transformer_model(20, 3, TINY), (tok, tok_test), 0.6)):
        params = dm.train_classifier(model, xs, y, 30, TINY, seed=0)
        acc = (dm.predict(model, params, xt).argmax(1) == y_test).mean()
        assert acc > floor, (model.name, acc)


@pytest.fixture
def subset_root(tmp_path):
    folder = tmp_path / "data" / "dna_uci"
    folder.mkdir(parents=True)
    shutil.copy(DATA / "promoters_subset.data", folder / "promoters.data")
    shutil.copy(DATA / "splice_subset.csv", folder / "splice.csv")
    return tmp_path


@pytest.mark.slow
def test_run_on_the_subsets_writes_the_report(subset_root):
    s = dataclasses.replace(TINY, promoter_folds=2, splice_folds=2, promoter_epochs=1,
                            splice_epochs=1, pretrain_epochs=1)
    out = subset_root / "out"
    summary = dm.run(s, data_dir=subset_root / "data", out=out)
    assert sorted(p.name for p in out.iterdir()) == [
        "predictions.csv", "profiles.csv", "promoters_profiles.png", "report.md",
        "splice_profiles.png"]
    text = (out / "report.md").read_text()
    assert "KBANN 4/106" in text and "KBANN 4.62 / 7.56 / 8.47" in text
    acc = summary["splice"]["accuracy"]
    assert set(acc) == {"cnn", "lstm", "transformer", "transformer+mlm", "kmer_lr"}
    d = dna.splice(subset_root / "data")
    for name, a in acc.items():   # errors recounted from the CSV
        rows = [r.split(",") for r in (out / "predictions.csv").read_text().splitlines()[1:]]
        col = ["cnn", "lstm", "transformer", "transformer+mlm", "kmer_lr"].index(name) + 4
        wrong = sum(r[col] != r[3] for r in rows if r[0] == "splice")
        assert a["errors"] == wrong and len(d.labels) == 60


def test_main_says_where_the_data_goes(tmp_path, capsys):
    assert dm.main(["--quick", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "dna_uci" in capsys.readouterr().err
