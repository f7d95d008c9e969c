"""The attention kernels of zoo.kernels against the explicit path of zoo.attention (and a
NumPy loop): values and gradients, masks in every layout, grouped heads, windows."""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from zoo import attention as A
from zoo.kernels import attention_chunked, attention_local, attention_window_cudnn, has_platform
from tests.test_attention import B, N, S, T, H, _qkv, _random_mask, numpy_attention, numpy_band
from tests.tolerances import assert_close


@pytest.mark.parametrize("shape", [(1, 1, 1, S), (B, 1, 1, S), (1, N, T, S), (B, N, 1, S),
                                   (B, N, T, 1)])
@pytest.mark.parametrize("block", [None, 2, 5])
def test_chunked_slices_every_mask_layout_per_head_and_block(shape, block):
    # Grouped heads (N/K = 2), a query block that does not divide T, and masks broadcast along
    # any axis: each (batch, key/value head, query block) must read its own part of the mask.
    q, k, v = _qkv()
    mask = _random_mask(3, shape)
    ref = numpy_attention(q, k, v, np.asarray(jnp.broadcast_to(mask, (B, N, T, S))))
    assert_close(attention_chunked.chunked_attention(q, k, v, mask=mask, block=block), ref)
    with pytest.raises(ValueError, match="block"):
        attention_chunked.chunked_attention(q, k, v, block=0)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("block", [None, 3])
def test_chunked_backward_equals_autodiff_of_explicit_path(causal, block):
    # The hand-written (flash-style) backward against jax.grad through the explicit softmax,
    # in float64: grouped heads, a padded last block, a fully masked row.
    with jax.enable_x64(True):
        q, k, v = (x.astype(jnp.float64) for x in _qkv(t=S))
        mask = _random_mask(4, (B, 1, S, S)).at[:, :, 3].set(False)
        cot = jax.random.normal(jax.random.key(5), q.shape, jnp.float64)
        f = lambda *a: attention_chunked.chunked_attention(*a, mask=mask, causal=causal,
                                                           block=block)

        def grads(f):
            return jax.grad(lambda *a: jnp.vdot(f(*a), cot), argnums=(0, 1, 2))(q, k, v)
        want = grads(lambda *a: A.dot_product_attention(*a, mask=mask, causal=causal)[0])
        for g, w in zip(grads(f), want):
            assert_close(g, w, rtol=1e-10, atol=1e-12)
        jax.test_util.check_grads(f, (q, k, v), order=1, modes=("rev",), atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("budget", ["one block", "three blocks", "whole rows", "default"])
def test_local_tiles_equal_the_explicit_path_under_a_band_mask(causal, budget, monkeypatch):
    # A small score budget runs the kernel tile by tile under lax.map (halo blocks at the
    # tiles' edges, padded blocks past the end); values and gradients must not change.
    # 37 positions in blocks of 5: 8 blocks per row.
    q, k, v = _qkv(t=37, s=37)
    key_mask = jnp.ones((B, 37), bool).at[1, 30:].set(False)
    band = numpy_band(37, 5, causal) & np.asarray(key_mask)[:, None, None, :]
    per_block = N * 5 * (2 if causal else 3) * 5             # scores of one block of one row
    span = {"one block": 1, "three blocks": 3, "whole rows": 8, "default": None}[budget]
    if span:
        monkeypatch.setattr(attention_local, "LOCAL_SCORES", span * per_block)
    f = lambda q, k, v: attention_local.local_attention(q, k, v, window=5, causal=causal,
                                                        key_mask=key_mask, block=4)
    assert_close(f(q, k, v), numpy_attention(q, k, v, band))
    grads = jax.grad(lambda *a: (f(*a) ** 2).sum(), argnums=(0, 1, 2))(q, k, v)
    want = jax.grad(lambda *a: (A.dot_product_attention(*a, mask=jnp.asarray(band))[0] ** 2
                                ).sum(), argnums=(0, 1, 2))(q, k, v)
    for g, w in zip(grads, want):
        assert_close(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", [1, 3, 16, 40])
def test_window_as_one_causal_call_covers_exactly_the_band(window, causal):
    # The index arithmetic of the cuDNN window (queries shifted by R, a one-sided window of
    # 2R) through jax.nn's XLA implementation, which runs anywhere; values and gradients.
    q, k, v = _qkv(t=37, s=37)
    band = jnp.asarray(numpy_band(37, window, causal))
    f = lambda *a: attention_window_cudnn.local_attention(*a, window=window, causal=causal,
                                                          implementation="xla")
    assert_close(f(q, k, v), numpy_attention(q, k, v, np.asarray(band)))
    grads = jax.grad(lambda *a: (f(*a) ** 2).sum(), argnums=(0, 1, 2))(q, k, v)
    want = jax.grad(lambda *a: (A.dot_product_attention(*a, mask=band)[0] ** 2).sum(),
                    argnums=(0, 1, 2))(q, k, v)
    for g, w in zip(grads, want):
        assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_window_kernel_says_when_cudnn_cannot_apply():
    assert attention_window_cudnn.applies(jnp.bfloat16, 128) == []
    reasons = attention_window_cudnn.applies(jnp.float32, 12)
    assert len(reasons) == 2 and "float32" in reasons[0] and "12" in reasons[1]


@pytest.mark.skipif(not has_platform("cuda"), reason="cuDNN needs a CUDA GPU")
@pytest.mark.parametrize("causal", [False, True])
def test_cudnn_window_equals_the_band_masked_explicit_path_on_a_gpu(causal):
    t, window = 1024, 64
    ks = jax.random.split(jax.random.key(7), 3)
    q, k, v = (jax.random.normal(kk, (2, t, 4, 64), jnp.bfloat16) for kk in ks)
    band = jnp.asarray(numpy_band(t, window, causal))
    got = lambda *a: A.attend(*a, window=window, causal=causal, implementation="cudnn")[0]
    want = lambda *a: A.dot_product_attention(*a, mask=band)[0]
    assert_close(got(q, k, v), want(q, k, v), "bfloat16")
    g = jax.grad(lambda *a: got(*a).astype(jnp.float32).sum(), argnums=(0, 1, 2))(q, k, v)
    w = jax.grad(lambda *a: want(*a).astype(jnp.float32).sum(), argnums=(0, 1, 2))(q, k, v)
    for a, b in zip(g, w):
        assert_close(a, b, "bfloat16", atol=5e-2)


def test_splash_forward_in_interpret_mode_with_a_window_and_key_padding():
    from zoo.kernels import splash
    q, k, v = _qkv(t=37, s=37)
    key_mask = jnp.ones((B, 37), bool).at[1, 30:].set(False)
    band = numpy_band(37, 5) & np.asarray(key_mask)[:, None, None, :]
    got = splash.attention(q, k, v, window=5, key_mask=key_mask, interpret=True)
    assert_close(got, numpy_attention(q, k, v, band), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("causal, window", [(False, 5), (True, None)])
def test_splash_in_interpret_mode_equals_the_explicit_path(causal, window):
    # Pallas TPU kernels run on a CPU in interpret mode: a window (LocalMask), causality,
    # grouped heads, key padding and a length that is not a block multiple; values and
    # gradients.
    from zoo.kernels import splash
    q, k, v = _qkv(t=37, s=37)
    key_mask = jnp.ones((B, 37), bool).at[1, 30:].set(False)
    band = (numpy_band(37, window, causal) if window else
            numpy_band(37, 37, causal)) & np.asarray(key_mask)[:, None, None, :]
    f = lambda *a: splash.attention(*a, causal=causal, window=window, key_mask=key_mask,
                                    interpret=True)
    assert_close(f(q, k, v), numpy_attention(q, k, v, band), rtol=1e-5, atol=1e-5)
    grads = jax.grad(lambda *a: (f(*a) ** 2).sum(), argnums=(0, 1, 2))(q, k, v)
    want = jax.grad(lambda *a: (A.dot_product_attention(*a, mask=jnp.asarray(band))[0] ** 2
                                ).sum(), argnums=(0, 1, 2))(q, k, v)
    for g, w in zip(grads, want):
        assert_close(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not has_platform("tpu"), reason="splash kernels compile for a TPU only")
@pytest.mark.parametrize("window", [None, 64])
def test_splash_on_a_tpu_equals_the_explicit_path(window):
    ks = jax.random.split(jax.random.key(8), 3)
    q, k, v = (jax.random.normal(kk, (2, 1024, 4, 128), jnp.float32) for kk in ks)
    band = jnp.asarray(numpy_band(1024, window or 1024))
    got = A.attend(q, k, v, window=window, implementation="splash")[0]
    assert_close(got, A.dot_product_attention(q, k, v, mask=band)[0], "float32")


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("rows", [1, 3, 7])
def test_query_blocks_equal_the_explicit_path_with_masks_and_gradients(rows, causal):
    # blocks of 1, 3 (T 7 padded to 9) and all 7 queries; grouped heads, a mask broadcast
    # over heads with a fully masked row; values and gradients
    from zoo.kernels import attention_query_blocks as qb
    q, k, v = _qkv()
    mask = _random_mask(6, (B, 1, T, S)).at[:, :, 2].set(False)
    budget = rows * B * N * S
    f = lambda *a: qb.attention(*a, mask=mask, causal=causal, budget=budget)
    ref_mask = np.asarray(mask) & (np.tril(np.ones((T, S), bool)) if causal else True)
    assert_close(f(q, k, v), numpy_attention(q, k, v, ref_mask))
    grads = jax.grad(lambda *a: (f(*a) ** 2).sum(), argnums=(0, 1, 2))(q, k, v)
    want = jax.grad(lambda *a: (A.dot_product_attention(*a, mask=mask, causal=causal)[0] ** 2
                                ).sum(), argnums=(0, 1, 2))(q, k, v)
    for g, w in zip(grads, want):
        assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_auto_runs_query_blocks_where_the_scores_would_not_fit(monkeypatch):
    from jax import export
    from zoo.kernels import attention_query_blocks as qb
    q = jnp.zeros((2, 64, 4, 8))
    # a new function each time: jit would reuse the first trace of the same one
    text = lambda: export.export(jax.jit(lambda q: A.attend(q, q, q)[0]),
                                 platforms=("cuda",))(q).mlir_module()
    assert "stablehlo.while" not in text()
    monkeypatch.setattr(qb, "SCORE_BUDGET", 2 * 4 * 64 * 16)    # 16 queries a block
    assert not qb.fits(2, 4, 64, 64)
    assert "stablehlo.while" in text()
