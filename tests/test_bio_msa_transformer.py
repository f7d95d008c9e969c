"""Tests of zoo.bio.msa_transformer: tied row and column attention against NumPy loops,
the column attention's gradient against the explicit path, the invariances of the tied maps
(row order, pad columns), bad input refused by name, and parameters on disk."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.bio import msa_transformer as mt


def _tiny(**kw):
    return mt.Config(**{"d_model": 8, "num_heads": 2, "d_ff": 16, "num_layers": 2,
                        "max_cols": 12, **kw})


def _np_heads(p, x, n):
    y = x @ np.asarray(p["w"], np.float64) + np.asarray(p["b"], np.float64)
    return y.reshape(*y.shape[:-1], n, -1)


def _np_softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize("center", [False, True])
def test_tied_row_attention_matches_a_numpy_loop(center):
    p = mt._attn_init(jax.random.key(1), 8)
    x = np.asarray(jax.random.normal(jax.random.key(2), (1, 3, 5, 8)), np.float64)
    valid = np.array([[1, 1, 1, 1, 0]])
    out, a = mt.tied_row_attention(p, jnp.asarray(x, jnp.float32), jnp.asarray(valid), 2,
                                   center=center)
    q, k, v = (_np_heads(p[n], x[0], 2) for n in ("q", "k", "v"))        # [R, C, N, H]
    r_, c_, n_, h_ = q.shape
    if center:                                     # each column's mean over the 3 rows
        q = q - sum(q[r] for r in range(r_)) / r_
        k = k - sum(k[r] for r in range(r_)) / r_
    want_a = np.zeros((n_, c_, c_))
    o = np.zeros((r_, c_, n_, h_))
    for n in range(n_):
        for i in range(c_):
            logits = np.array([sum(q[r, i, n] @ k[r, j, n] for r in range(r_))
                               for j in range(4)]) / (r_ * np.sqrt(h_))   # 4 valid keys
            want_a[n, i, :4] = _np_softmax(logits)
            for r in range(r_):
                o[r, i, n] = sum(want_a[n, i, j] * v[r, j, n] for j in range(c_))
    want = _np_heads({"w": p["o"]["w"], "b": p["o"]["b"]}, o.reshape(r_, c_, -1), 1)
    np.testing.assert_allclose(np.asarray(a[0]), want_a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out[0]), want.reshape(r_, c_, -1), rtol=1e-4,
                               atol=1e-5)


def test_column_attention_matches_a_numpy_loop():
    p = mt._attn_init(jax.random.key(3), 8)
    x = np.asarray(jax.random.normal(jax.random.key(4), (1, 4, 3, 8)), np.float64)
    out = mt.column_attention(p, jnp.asarray(x, jnp.float32), 2)
    q, k, v = (_np_heads(p[n], x[0], 2) for n in ("q", "k", "v"))
    r_, c_, n_, h_ = q.shape
    o = np.zeros_like(q)
    for c in range(c_):
        for n in range(n_):
            for r in range(r_):
                w = _np_softmax(np.array([q[r, c, n] @ k[s, c, n] for s in range(r_)])
                                / np.sqrt(h_))
                o[r, c, n] = w @ v[:, c, n]
    want = _np_heads({"w": p["o"]["w"], "b": p["o"]["b"]}, o.reshape(r_, c_, -1), 1)
    np.testing.assert_allclose(np.asarray(out[0]), want.reshape(r_, c_, -1), rtol=1e-4,
                               atol=1e-5)


def test_column_attention_gradient_matches_the_explicit_path(monkeypatch):
    # the dispatch picks the platform's kernel (the blocked one on CPU); the explicit
    # weights-returning path is the reference for its values and its backward pass
    p = mt._attn_init(jax.random.key(5), 8)
    x = jax.random.normal(jax.random.key(6), (2, 40, 3, 8))
    f = lambda p, x: jnp.sum(jnp.sin(mt.column_attention(p, x, 2)))
    got = jax.grad(f, argnums=(0, 1))(p, x)
    attention = mt._attention
    monkeypatch.setattr(attention, "attend",
                        lambda q, k, v: attention.dot_product_attention(q, k, v))
    want = jax.grad(f, argnums=(0, 1))(p, x)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("column_attention", [True, False])
def test_tied_maps_ignore_row_order_and_logits_follow_it(column_attention):
    cfg = _tiny(column_attention=column_attention)
    params = mt.init(jax.random.key(0), cfg)
    x = jax.random.randint(jax.random.key(5), (1, 6, 7), 0, 21)
    perm = np.array([3, 0, 5, 1, 4, 2])
    logits, maps = mt.apply(params, x, cfg, return_maps=True)
    logits_p, maps_p = mt.apply(params, x[:, perm], cfg, return_maps=True)
    np.testing.assert_allclose(np.asarray(maps_p), np.asarray(maps), atol=1e-5)
    np.testing.assert_allclose(np.asarray(logits_p), np.asarray(logits)[:, perm], atol=1e-4)


def test_pad_columns_change_nothing_on_the_real_columns():
    cfg = _tiny()
    params = mt.init(jax.random.key(0), cfg)
    x = np.asarray(jax.random.randint(jax.random.key(6), (1, 4, 5), 0, 21))
    padded = np.concatenate([x, np.full((1, 4, 3), mt.PAD)], axis=2)
    logits, maps = mt.apply(params, jnp.asarray(x), cfg, return_maps=True)
    logits_p, maps_p = mt.apply(params, jnp.asarray(padded), cfg, return_maps=True)
    np.testing.assert_allclose(np.asarray(logits_p)[:, :, :5], np.asarray(logits), atol=1e-4)
    np.testing.assert_allclose(np.asarray(maps_p)[..., :5, :5], np.asarray(maps), atol=1e-5)
    assert float(np.abs(np.asarray(maps_p)[..., :5, 5:]).max()) == 0.0   # no weight on pads


def test_apply_and_config_refuse_bad_input_by_name():
    cfg = _tiny()
    params = mt.init(jax.random.key(0), cfg)
    with pytest.raises(ValueError, match=r"\[A, B, T\]"):
        mt.apply(params, jnp.zeros((3, 5), jnp.int32), cfg)
    with pytest.raises(ValueError, match="max_cols 12"):
        mt.apply(params, jnp.zeros((1, 2, 13), jnp.int32), cfg)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        mt.Config(d_model=10, num_heads=4)
    with pytest.raises(ValueError, match="num_layers"):
        mt.Config(num_layers=0)
    with pytest.raises(ValueError, match="divisible by column_heads 3"):
        mt.Config(d_model=8, num_heads=2, column_heads=3)
    with pytest.raises(ValueError, match="column_heads must be >= 1"):
        mt.Config(column_heads=0)


def test_column_heads_reach_the_column_attention(monkeypatch):
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 21, (1, 3, 6)), jnp.int32)
    params = mt.init(jax.random.key(0), _tiny(num_heads=4))
    same = [mt.apply(params, tokens, _tiny(num_heads=4, column_heads=h)) for h in (None, 4)]
    np.testing.assert_array_equal(np.asarray(same[0]), np.asarray(same[1]))
    seen, plain = [], mt.column_attention
    monkeypatch.setattr(mt, "column_attention",
                        lambda p, x, n: seen.append(n) or plain(p, x, n))
    one = mt.apply(params, tokens, _tiny(num_heads=4, column_heads=1))
    assert seen == [1, 1]                                   # both layers, one column head
    assert float(jnp.abs(one - same[0]).max()) > 1e-4


def test_save_and_load_params_round_trip(tmp_path):
    cfg = _tiny(column_attention=False)
    params = mt.init(jax.random.key(0), cfg)
    mt.save_params(params, tmp_path / "p.npz", cfg)
    back, cfg_back = mt.load_params(tmp_path / "p.npz")
    assert cfg_back == cfg
    assert jax.tree.structure(back) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_allclose(a, np.asarray(b, np.float16), rtol=1e-3)


@pytest.mark.parametrize("center", [False, True])
def test_load_params_reads_a_config_without_center_rows_as_not_centred(tmp_path, center):
    cfg = _tiny(center_rows=center)
    mt.save_params(mt.init(jax.random.key(0), cfg), tmp_path / "p.npz", cfg)
    with np.load(tmp_path / "p.npz") as data:
        files = dict(data)
    fields = json.loads(str(files["__config__"]))
    assert fields.pop("center_rows") is center
    np.savez(tmp_path / "old.npz", **{**files, "__config__": json.dumps(fields)})
    assert mt.load_params(tmp_path / "p.npz")[1].center_rows is center
    assert mt.load_params(tmp_path / "old.npz")[1].center_rows is False
