"""Blocked, flash-style full attention for CPU caches: the numbers of
:func:`zoo.attention.dot_product_attention`, one (batch, key/value head) pair and one block of
queries at a time under ``lax.map``, so that each block's products are plain matrix products
on data in cache, with its own backward pass that recomputes each block's probabilities from
the saved log-sum-exp (memory O(n)). Reverse-mode only (``jax.jvp`` needs the plain path).

:data:`SCORE_BLOCK` carries its one line of why; the timings behind it are in
``benchmarks/results/attention_speed.md`` (``python -m zoo.bench.attention_speed``). Tested
against the explicit path in ``tests/kernels/test_attention_kernels.py``.

Shape letters: ``B`` batch, ``T`` query positions, ``S`` key positions, ``N`` query heads,
``K`` key/value heads, ``Q`` query heads per key/value head, ``H`` head dim.
"""

import functools
import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from zoo import _checks
from zoo.layers import NEG_INF as _NEG, score_dtype as _acc
from zoo.sharding import vary_together

#: Scores (float32) one block holds: 2^20 ran 2-5x faster than one fused pass on a 2-core CPU.
SCORE_BLOCK = 2 ** 20


def chunked_attention(q, k, v, *, mask=None, causal: bool = False,
                      block: int | None = None) -> Float[Array, "B T N H"]:
    """Scaled dot-product attention, one (batch, key/value head) at a time, queries in blocks.

    Same numbers as :func:`zoo.attention.dot_product_attention`. ``lax.map`` runs over the
    ``B·K`` pairs and, within each, over blocks of ``block`` queries (by default as many as keep the
    ``Q·block·S`` float32 scores within :data:`SCORE_BLOCK`): each block's scores are made,
    used and dropped, and its products are plain matrix products on data that stays in
    cache. The softmax is normalised after the product with ``V``:

        out = (exp(s − m) V) / Σ exp(s − m),   s = q kᵀ/√H,  m = max s (per row)

    (one division per output row instead of one per score).

    >>> from zoo.attention import dot_product_attention
    >>> q = jax.random.normal(jax.random.key(0), (2, 9, 4, 8))
    >>> bool(jnp.allclose(chunked_attention(q, q, q, block=4),
    ...                   dot_product_attention(q, q, q)[0], atol=1e-6))
    True
    """
    if block is not None:
        _checks.positive_int(block, "block")
    g = q.shape[2] // k.shape[2]
    blk = min(q.shape[1], block or _query_block(g, k.shape[1]))
    q, k, v = vary_together(q, k, v)
    return _chunked(q, k, v, mask, causal, blk)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _chunked(q, k, v, mask, causal, blk):
    return _chunked_forward(q, k, v, mask, causal, blk)[0]


def _chunked_forward(q, k, v, mask, causal, blk):
    """``(out [B, T, N, H], lse [BK, J, Q, blk])``: the output and each row's log-sum-exp."""
    ctx = _Chunks(q, k, mask, causal, blk)

    def pair(i):
        qi, ki, vi = ctx.slice(q, i), ctx.kv(k, i), ctx.kv(v, i)

        def one(j):
            return _block_attention(ctx.block(qi, j), ki, vi, ctx.valid(i, j))
        return ctx.over_blocks(one)

    out, lse = jax.lax.map(pair, jnp.arange(ctx.pairs))                  # BK J Q blk (H)
    out = ctx.unslice(out)
    return out, (q, k, v, mask, out, lse)


def _chunked_backward(causal, blk, res, d_out):
    """Flash-style backward: each block's probabilities are recomputed from the saved
    log-sum-exp, so memory stays O(n) and each (batch, head) works in cache.

        dV = Pᵀ dO,  dS = P ⊙ (dO Vᵀ − rowsum(dO ⊙ O)),  dQ = dS K / √H,  dK = dSᵀ Q / √H
    """
    q, k, v, mask, out, lse = res
    ctx = _Chunks(q, k, mask, causal, blk)

    def pair(i):
        qi, ki, vi = ctx.slice(q, i), ctx.kv(k, i), ctx.kv(v, i)
        doi, oi = ctx.slice(d_out.astype(q.dtype), i), ctx.slice(out, i)

        def one(acc, j):
            qb, dob = ctx.block(qi, j), ctx.block(doi, j)                 # Q blk H
            s = jnp.einsum("qbh,sh->qbs", qb, ki, preferred_element_type=_acc(qb)) * ctx.scale
            p = jnp.exp(s - lse[i, j][..., None])
            valid = ctx.valid(i, j)
            if valid is not None:
                p = jnp.where(valid, p, 0.0)
            dp = jnp.einsum("qbh,sh->qbs", dob, vi, preferred_element_type=_acc(qb))
            ds = p * (dp - (dob * ctx.block(oi, j)).sum(-1, keepdims=True))
            dk = acc[0] + jnp.einsum("qbs,qbh->sh", ds, qb)
            dv = acc[1] + jnp.einsum("qbs,qbh->sh", p, dob)
            return (dk, dv), jnp.einsum("qbs,sh->qbh", ds, ki) * ctx.scale
        zero = vary_together(jnp.zeros(ki.shape, _acc(q)), ki)[0]
        (dk, dv), dq = jax.lax.scan(one, (zero, zero), jnp.arange(ctx.nb))
        return dq, dk * ctx.scale, dv

    dq, dk, dv = jax.lax.map(pair, jnp.arange(ctx.pairs))
    return (ctx.unslice(dq).astype(q.dtype), ctx.unslice_kv(dk).astype(k.dtype),
            ctx.unslice_kv(dv).astype(v.dtype), None)


_chunked.defvjp(_chunked_forward, _chunked_backward)


class _Chunks:
    """Index arithmetic of the chunked kernel: pair ``i`` is (batch ``i // K``, key/value
    head ``i % K``); block ``j`` is queries ``j·blk .. (j+1)·blk − 1`` (``T`` padded)."""

    def __init__(self, q, k, mask, causal, blk):
        self.b, self.t, n, h = q.shape
        self.s, self.kh = k.shape[1], k.shape[2]
        self.g, self.h, self.blk, self.causal = n // self.kh, h, blk, causal
        self.nb = -(-self.t // blk)
        self.pairs = self.b * self.kh
        self.scale = 1.0 / math.sqrt(h)
        self.mask = None if mask is None else _pad_rows(mask, self.nb * blk)

    def slice(self, x, i):
        """``[B, T, N, H]`` -> pair ``i``'s ``[T', Q, H]`` (padded ``T' = J·blk``). Slicing
        here, rather than transposing whole inputs beforehand, keeps the copies in cache
        (1.2x faster forward at B 8, n 1024, 8 heads of 64)."""
        x = jax.lax.dynamic_index_in_dim(x, i // self.kh, 0, keepdims=False)
        x = jax.lax.dynamic_slice_in_dim(x, (i % self.kh) * self.g, self.g, 1)
        return jnp.pad(x, ((0, self.nb * self.blk - self.t), (0, 0), (0, 0)))

    def kv(self, x, i):
        """``[B, S, K, H]`` -> pair ``i``'s ``[S, H]``."""
        x = jax.lax.dynamic_index_in_dim(x, i // self.kh, 0, keepdims=False)
        return jax.lax.dynamic_index_in_dim(x, i % self.kh, 1, keepdims=False)

    def block(self, xi, j):
        """Block ``j`` of a pair's ``[T', Q, H]`` as ``[Q, blk, H]``."""
        return jax.lax.dynamic_slice_in_dim(xi, j * self.blk, self.blk, 0).transpose(1, 0, 2)

    def valid(self, i, j):
        """Pair ``i``, block ``j``'s mask ``[Q|1, blk|1, S]`` (or None)."""
        valid = None if self.mask is None else _mask_block(
            self.mask, i // self.kh, i % self.kh, j, self.g, self.blk)
        if self.causal:
            c = (j * self.blk + jnp.arange(self.blk))[:, None] >= jnp.arange(self.s)[None, :]
            valid = c if valid is None else valid & c
        return valid

    def over_blocks(self, one):
        return jax.tree.map(lambda x: x[None], one(0)) if self.nb == 1 else \
            jax.lax.map(one, jnp.arange(self.nb))

    def unslice(self, x):
        """Per-pair blocks ``[BK, J, Q, blk, H]`` -> ``[B, T, N, H]``."""
        x = x.reshape(self.b, self.kh, self.nb, self.g, self.blk, self.h)
        x = x.transpose(0, 2, 4, 1, 3, 5).reshape(self.b, self.nb * self.blk, -1, self.h)
        return x[:, :self.t]

    def unslice_kv(self, x):
        """Per-pair ``[BK, S, H]`` -> ``[B, S, K, H]``."""
        return x.reshape(self.b, self.kh, self.s, self.h).transpose(0, 2, 1, 3)


def _query_block(g, s_len):
    """Queries per block of :func:`chunked_attention`: ``Q·block·S ≤ SCORE_BLOCK``, ≥ 16."""
    return max(16, SCORE_BLOCK // (g * s_len))


def _block_attention(qb, k, v, valid):
    """One block: ``qb [Q, b, H]``, ``k, v [S, H]``, ``valid`` broadcastable to ``[Q, b, S]``
    or None. Returns ``(out [Q, b, H], lse [Q, b])``; rows with no valid key give zeros."""
    s = jnp.einsum("qbh,sh->qbs", qb, k, preferred_element_type=_acc(qb))
    s = s * (1.0 / math.sqrt(qb.shape[-1]))
    if valid is not None:
        s = jnp.where(valid, s, _NEG)
    m = jax.lax.stop_gradient(s.max(-1, keepdims=True))
    e = jnp.exp(s - m)
    if valid is not None:
        e = jnp.where(valid, e, 0.0)
    denom = e.sum(-1, keepdims=True)
    o = jnp.matmul(e.astype(v.dtype), v, preferred_element_type=_acc(v))     # Q b H
    if valid is not None:
        denom = jnp.where(denom > 0, denom, 1.0)
    return (o / denom).astype(v.dtype), (m + jnp.log(denom))[..., 0]


def _pad_rows(mask, rows):
    """A rank-4 mask with its query axis (when not broadcast) padded to ``rows``."""
    if mask.shape[2] == 1:
        return mask
    return jnp.pad(mask, ((0, 0), (0, 0), (0, rows - mask.shape[2]), (0, 0)))


def _mask_block(mask, bi, ki, j, g, blk):
    """The ``[Q|1, blk|1, S|1]`` part of a rank-4 mask for batch ``bi``, key/value head ``ki``
    and query block ``j`` (axes of size 1 stay broadcast)."""
    m = jax.lax.dynamic_index_in_dim(mask, bi if mask.shape[0] > 1 else 0, 0, keepdims=False)
    if m.shape[0] > 1:
        m = jax.lax.dynamic_slice_in_dim(m, ki * g, g, 0)
    if m.shape[1] > 1:
        m = jax.lax.dynamic_slice_in_dim(m, j * blk, blk, 1)
    return m
