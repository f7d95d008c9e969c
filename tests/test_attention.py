"""Attention against hand-worked numbers, a NumPy loop, PyTorch and jax.nn; masks, windows,
bad input, and the restricted window's linear cost read off the compiled program."""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from zoo.bench.harness import memory_analysis, xla_flops
from zoo import attention as A
from zoo.kernels import attention_chunked
from tests.tolerances import assert_close

B, T, S, D, N, K = 2, 7, 11, 12, 4, 2
H = D // N


def _qkv(key=0, t=T, s=S, n=N, k=K, h=H):
    kq, kk, kv = jax.random.split(jax.random.key(key), 3)
    return (jax.random.normal(kq, (B, t, n, h)), jax.random.normal(kk, (B, s, k, h)),
            jax.random.normal(kv, (B, s, k, h)))


def numpy_attention(q, k, v, mask=None):
    """A plain loop: for each batch, head and query, softmax over the allowed keys."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    b_, t_, n_, h_ = q.shape
    s_ = k.shape[1]
    g = n_ // k.shape[2]
    mask = np.ones((b_, n_, t_, s_), bool) if mask is None else \
        np.broadcast_to(np.asarray(mask), (b_, n_, t_, s_))
    out = np.zeros_like(q)
    for b in range(b_):
        for n in range(n_):
            for t in range(t_):
                allowed = mask[b, n, t]
                if not allowed.any():
                    continue
                scores = np.array([q[b, t, n] @ k[b, s, n // g] for s in range(s_)])
                scores = scores / np.sqrt(h_)
                scores = np.where(allowed, scores, -np.inf)
                w = np.exp(scores - scores.max())
                w = w / w.sum()
                out[b, t, n] = sum(w[s] * v[b, s, n // g] for s in range(s_))
    return out


def _random_mask(key, shape, p=0.7):
    return jax.random.bernoulli(jax.random.key(key), p, shape)


def numpy_band(t, window, causal=False):
    """``[T, T]``: query ``i`` may see key ``j`` when ``|i − j| <= window`` (and ``j <= i``)."""
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    return (np.abs(i - j) <= window) & ((j <= i) | (not causal))


# --- the course's walk-through ----------------------------------------------------------------

def test_self_attention_walkthrough_by_hand():
    x = jnp.array([[1, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]], jnp.float32)[None]
    w_key = np.array([[0, 0, 1], [1, 1, 0], [0, 1, 0], [1, 1, 0]], np.float32)
    w_query = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 1]], np.float32)
    w_value = np.array([[0, 2, 0], [0, 3, 0], [1, 0, 3], [1, 1, 0]], np.float32)
    # Step 1, by hand: keys, queries, values are row sums of the weights picked by the input.
    keys = np.array([[0, 1, 1], [4, 4, 0], [2, 3, 1]])
    queries = np.array([[1, 0, 2], [2, 2, 2], [2, 1, 3]])
    values = np.array([[1, 2, 3], [2, 8, 0], [2, 6, 3]])
    # Step 2: scores q_i · k_j.
    scores = np.array([[2, 4, 4], [4, 16, 12], [4, 12, 10]])
    # Step 3: scale by 1/√d_k (d_k = 3), softmax per row.
    scaled = scores / np.sqrt(3.0)
    e = np.exp(scaled - scaled.max(1, keepdims=True))
    weights = e / e.sum(1, keepdims=True)
    # Step 4: weighted sum of the values.
    expected = weights @ values

    cfg = A.Config(d_model=4, num_heads=1, head_dim=3)
    zeros = lambda *s: jnp.zeros(s)
    params = {"w_q_dnh": jnp.asarray(w_query)[:, None], "b_q_nh": zeros(1, 3),
              "w_k_dkh": jnp.asarray(w_key)[:, None], "b_k_kh": zeros(1, 3),
              "w_v_dkh": jnp.asarray(w_value)[:, None], "b_v_kh": zeros(1, 3),
              "w_o_nhd": jnp.eye(3, 4)[None], "b_o_d": zeros(4)}
    q = A.project_q(params, x)
    k, v = A.project_kv(params, x)
    np.testing.assert_array_equal(q[0, :, 0], queries)
    np.testing.assert_array_equal(k[0, :, 0], keys)
    np.testing.assert_array_equal(v[0, :, 0], values)
    y, w = A.attention_weights_of(params, x, cfg)
    assert_close(w[0, 0], weights)
    assert_close(y[0, :, :3], expected)
    assert_close(y[0, :, 3], np.zeros(3))
    assert_close(A.apply(params, x, cfg)[0, :, :3], expected)
    # The walk-through itself skips the scaling: softmax([2, 4, 4]) · V for the first input.
    out1 = A.dot_product_attention(q * np.sqrt(3.0), k, v)[0][0, 0, 0]
    assert_close(out1, [1.9366, 6.6831, 1.5951], rtol=0, atol=5e-5)  # course's 4 decimals


# --- cores against NumPy, jax.nn and each other -----------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
def test_all_paths_equal_numpy_loop(causal):
    q, k, v = _qkv()
    mask = _random_mask(1, (B, 1, T, S))
    ref_mask = np.asarray(mask) & (np.tril(np.ones((T, S), bool)) if causal else True)
    ref = numpy_attention(q, k, v, ref_mask)
    explicit, w = A.dot_product_attention(q, k, v, mask=mask, causal=causal)
    assert_close(explicit, ref)
    assert_close(w.sum(-1), np.broadcast_to(ref_mask.any(-1), (B, N, T)).astype(float))
    assert_close(A.fused_attention(q, k, v, mask=mask, causal=causal), ref)
    assert_close(attention_chunked.chunked_attention(q, k, v, mask=mask, causal=causal, block=3),
                 ref)
    for impl in ("auto", "xla", "chunked"):        # cuDNN: GPU tests; splash: TPU tests
        out, _ = A.attend(q, k, v, mask=mask, causal=causal, implementation=impl)
        assert_close(out, ref)


def test_fused_equals_jax_nn_and_grouped_heads_equal_repeated():
    q, k, v = _qkv()
    expected = jax.nn.dot_product_attention(q, k, v)
    assert_close(A.dot_product_attention(q, k, v)[0], expected)
    assert_close(attention_chunked.chunked_attention(q, k, v, block=4), expected)
    rep = lambda a: jnp.repeat(a, N // K, axis=2)
    assert_close(A.dot_product_attention(q, rep(k), rep(v))[0], expected)


def test_fully_masked_row_is_zero_with_finite_gradients():
    q, k, v = _qkv()
    mask = _random_mask(2, (B, N, T, S)).at[:, :, 3].set(False)
    paths = {
        "explicit": lambda q, k, v: A.dot_product_attention(q, k, v, mask=mask)[0],
        "fused": lambda q, k, v: A.fused_attention(q, k, v, mask=mask),
        "chunked": lambda q, k, v: attention_chunked.chunked_attention(q, k, v, mask=mask,
                                                                       block=2),
    }
    for name, f in paths.items():
        out = f(q, k, v)
        assert bool(jnp.isfinite(out).all()), name
        assert_close(out[:, 3], np.zeros((B, N, H)))
        grads = jax.grad(lambda *a: f(*a).sum(), argnums=(0, 1, 2))(q, k, v)
        assert all(bool(jnp.isfinite(g).all()) for g in grads), name
        assert_close(grads[0][:, 3], np.zeros((B, N, H)))
    # A padded key position everywhere plus a window: local attention stays finite too.
    key_mask = jnp.zeros((B, T), bool).at[:, :2].set(True)
    out = A.local_attention(q, q, q, window=1, key_mask=key_mask)
    assert bool(jnp.isfinite(out).all())
    assert_close(out[:, 4:], np.zeros((B, T - 4, N, H)))


# --- multi-head layer against PyTorch -----------------------------------------------------------

def _torch_mha_params(mha):
    e = mha.embed_dim
    w = mha.in_proj_weight.detach().numpy()
    b = mha.in_proj_bias.detach().numpy()
    qw, kw, vw = w[:e], w[e:2 * e], w[2 * e:]
    qb, kb, vb = b[:e], b[e:2 * e], b[2 * e:]
    split = lambda m: jnp.asarray(m.T.reshape(e, N, H))
    return {"w_q_dnh": split(qw), "b_q_nh": jnp.asarray(qb.reshape(N, H)),
            "w_k_dkh": split(kw), "b_k_kh": jnp.asarray(kb.reshape(N, H)),
            "w_v_dkh": split(vw), "b_v_kh": jnp.asarray(vb.reshape(N, H)),
            "w_o_nhd": jnp.asarray(mha.out_proj.weight.detach().numpy().T.reshape(N, H, e)),
            "b_o_d": jnp.asarray(mha.out_proj.bias.detach().numpy())}


@pytest.mark.parametrize("implementation", ["xla", "chunked"])
def test_self_and_cross_attention_equal_torch(implementation):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(D, N, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    params = jax.tree.map(lambda a: a.astype(jnp.float32), _torch_mha_params(mha))
    cfg = A.Config(d_model=D, num_heads=N, implementation=implementation)
    x = np.random.default_rng(0).normal(size=(B, T, D))
    c = np.random.default_rng(1).normal(size=(B, S, D))
    pad = np.ones((B, S), bool)
    pad[1, 8:] = False
    t = lambda a: torch.from_numpy(a)
    ref_self, _ = mha(t(x), t(x), t(x), need_weights=False)
    ref_cross, ref_w = mha(t(x), t(c), t(c), key_padding_mask=t(~pad),
                           average_attn_weights=False)
    got_self = A.apply(params, jnp.asarray(x, jnp.float32), cfg)
    got_cross = A.apply(params, jnp.asarray(x, jnp.float32), cfg,
                        context=jnp.asarray(c, jnp.float32), mask=jnp.asarray(pad))
    assert_close(got_self, ref_self.detach().numpy())
    assert_close(got_cross, ref_cross.detach().numpy())
    _, w = A.attention_weights_of(params, jnp.asarray(x, jnp.float32), cfg,
                                  context=jnp.asarray(c, jnp.float32), mask=jnp.asarray(pad))
    assert_close(w, ref_w.detach().numpy())


def test_causal_receptive_field_from_gradients():
    cfg = A.Config(d_model=D, num_heads=N, num_kv_heads=K, causal=True)
    params = A.init(jax.random.key(0), cfg)
    x = jax.random.normal(jax.random.key(1), (1, T, D))
    jac = jax.jacrev(lambda x: A.apply(params, x, cfg)[0].sum(-1))(x)[:, 0]   # [T, T, D]
    depends = np.abs(np.asarray(jac)).sum(-1) > 0
    np.testing.assert_array_equal(depends, np.tril(np.ones((T, T), bool)))


# --- restricted windows ------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", [1, 3, 6])
def test_local_equals_full_under_band_mask(window, causal):
    q, k, v = _qkv(t=37, s=37)
    key_mask = jnp.ones((B, 37), bool).at[1, 30:].set(False)
    band = numpy_band(37, window, causal) & np.asarray(key_mask)[:, None, None, :]
    np.testing.assert_array_equal(A.band_mask(37, window, causal), numpy_band(37, window, causal))
    got = A.local_attention(q, k, v, window=window, causal=causal, key_mask=key_mask)
    assert_close(got, numpy_attention(q, k, v, band))
    grads = jax.grad(lambda *a: (A.local_attention(*a, window=window, causal=causal,
                                                   key_mask=key_mask) ** 2).sum(),
                     argnums=(0, 1, 2))(q, k, v)
    want = jax.grad(lambda *a: (A.dot_product_attention(*a, mask=jnp.asarray(band))[0] ** 2
                                ).sum(), argnums=(0, 1, 2))(q, k, v)
    for g, w in zip(grads, want):
        assert_close(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_window_covering_the_sequence_equals_full_attention(causal):
    q, k, v = _qkv(t=T, s=T)
    full = A.dot_product_attention(q, k, v, causal=causal)[0]
    assert_close(A.local_attention(q, k, v, window=T, causal=causal), full)
    cfg = A.Config(d_model=D, num_heads=N, window=T - 1, causal=causal)
    params = A.init(jax.random.key(0), cfg)
    x = jax.random.normal(jax.random.key(1), (B, T, D))
    full_cfg = A.Config(d_model=D, num_heads=N, causal=causal)
    assert_close(A.apply(params, x, cfg), A.apply(params, x, full_cfg))


def test_local_cost_is_linear_in_n():
    # the plain blocked path is one pass (no loop), so XLA's cost analysis sees all of it
    window, h = 8, 16
    flops, temps, full = [], [], []
    for n in (256, 512, 1024):
        q = jnp.zeros((1, n, 2, h))
        f = lambda q: A.local_attention(q, q, q, window=window)
        flops.append(xla_flops(f, q))
        temps.append(memory_analysis(f, q)["temp_bytes"])
        full.append(xla_flops(lambda q: A.dot_product_attention(q, q, q)[0], q))
    for i in (1, 2):
        assert 1.8 < flops[i] / flops[i - 1] < 2.2, flops
        assert 1.6 < temps[i] / temps[i - 1] < 2.4, temps
        assert full[i] / full[i - 1] > 3.5, full


# --- bad input ------------------------------------------------------------------------------------

def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="d_model must be divisible by num_heads"):
        A.Config(d_model=10, num_heads=4)
    with pytest.raises(ValueError, match="window"):
        A.Config(d_model=8, num_heads=4, window=0)
    with pytest.raises(ValueError, match="num_kv_heads"):
        A.Config(d_model=12, num_heads=4, num_kv_heads=3)
    with pytest.raises(ValueError, match="implementation"):
        A.Config(d_model=8, num_heads=4, implementation="flash")
    with pytest.raises(ValueError, match="causal must be a bool"):
        A.Config(d_model=8, num_heads=4, causal="no")
    q = jnp.ones((1, 5, 2, 4))
    with pytest.raises(ValueError, match="window"):
        A.local_attention(q, q, q, window=0)


def test_bad_masks_and_context_name_the_argument():
    cfg = A.Config(d_model=D, num_heads=N)
    params = A.init(jax.random.key(0), cfg)
    x = jnp.ones((B, T, D))
    with pytest.raises(TypeError, match="mask.*dtype"):
        A.apply(params, x, cfg, mask=jnp.ones((B, T), jnp.float32))
    with pytest.raises(ValueError, match="mask must have shape"):
        A.apply(params, x, cfg, mask=jnp.ones((B, T + 1), bool))
    with pytest.raises(ValueError, match="mask must have shape"):
        A.apply(params, x, cfg, mask=jnp.ones((B, 3, T, T), bool))
    with pytest.raises(ValueError, match="context"):
        A.apply(params, x, cfg, context=jnp.ones((B, S, D + 1)))
    local = A.Config(d_model=D, num_heads=N, window=2)
    with pytest.raises(ValueError, match="window"):
        A.apply(params, x, local, context=x)


def _lowered(f, platforms, *args):
    from jax import export
    return export.export(jax.jit(f), platforms=platforms)(*args).mlir_module()


@pytest.mark.parametrize("window", [None, 4])
def test_auto_takes_the_cpu_kernels_only_where_lowered_for_a_cpu(window):
    # The CPU kernels loop (lax.map) over (batch, head) pairs or tiles; the plain paths are
    # one pass. 2048 positions make several tiles of the windowed kernel.
    q = jnp.zeros((1, 2048, 4, 8), jnp.bfloat16)
    f = lambda q: A.attend(q, q, q, window=window)[0]
    assert "stablehlo.while" in _lowered(f, ("cpu",), q)
    for platform in ("cuda", "tpu"):
        assert "stablehlo.while" not in _lowered(f, (platform,), q)
    xla = lambda q: A.attend(q, q, q, window=window, implementation="xla")[0]
    assert "stablehlo.while" not in _lowered(xla, ("cpu",), q)


def test_cudnn_refused_where_it_cannot_apply_naming_the_argument():
    q = jnp.ones((1, 5, 2, 8), jnp.float32)
    with pytest.raises(ValueError, match="implementation='cudnn'.*float32"):
        A.attend(q, q, q, implementation="cudnn")
    with pytest.raises(ValueError, match="implementation='cudnn'.*mask"):
        A.attend(q.astype(jnp.bfloat16), q, q, mask=jnp.ones((1, 1, 1, 5), bool),
                 implementation="cudnn", window=2)
    with pytest.raises(ValueError, match="implementation must be one of"):
        A.attend(q, q, q, implementation="flash")
