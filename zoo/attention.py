"""Attention: scaled dot-product, multi-head (self and cross, grouped key/value heads) and
self-attention restricted to a window, blocked so that it costs O(R·n·D).

Scaled dot-product attention of queries ``q`` against keys ``k`` and values ``v``::

    Attention(Q, K, V) = softmax(Q Kᵀ / √H + M) V

where ``M`` is 0 where the mask allows a query to see a key and −∞ (in practice
``finfo(float32).min``) elsewhere. A query that no key may see gets a zero output (and zero
gradients), never NaN. Multi-head attention projects the inputs ``N`` times::

    head_i = Attention(X W_q^i, C W_k^{g(i)}, C W_v^{g(i)}),   MHA = concat(head_1..head_N) W_o

with ``C = X`` for self-attention and the context for cross-attention; ``g(i) = i // (N/K)``
maps query heads to ``K <= N`` key/value heads (grouped-query attention; ``K = N`` is the
classic layer). Restricted self-attention lets position ``t`` see only ``|t − s| <= R`` (and
``s <= t`` when causal); :func:`local_attention` splits the sequence into blocks of ``b >= R``
positions and lets each block attend to itself and its neighbours, so the scores take
``B·N·n·3b`` memory and ``O(b·n·H)`` FLOPs per head instead of ``n²``.

Paths, all giving the same numbers (tested):

* :func:`dot_product_attention`: explicit, returns the weights ``[B, N, T, S]`` too (maps,
  contact prediction).
* :func:`fused_attention`: ``jax.nn.dot_product_attention`` with ``implementation`` ``"xla"``
  or ``"cudnn"``.
* :func:`chunked_attention`: the zoo's own XLA kernel; one (batch, head) and one block of
  queries at a time under ``lax.map``, so each block's products are plain matrix products on
  data in cache (the fast path on CPU).
* :func:`local_attention`: the blocked window.

``Config.implementation`` picks the path: ``"auto"`` uses the chunked kernel on CPU, cuDNN
on GPU where the arguments allow (16-bit dtype, head dim a multiple of 8 up to 128, no
explicit mask) and XLA's fused attention otherwise; ``"xla"``/``"cudnn"`` go through
``jax.nn``; ``"chunked"`` forces the zoo kernel. The chunked kernel has its own (flash-style)
backward pass, so it supports reverse-mode differentiation only; use ``"xla"`` for
forward-mode (``jax.jvp``).

Shape letters: ``B`` batch, ``T`` query positions, ``S`` key positions, ``D`` model width,
``N`` query heads, ``K`` key/value heads, ``G = N/K`` queries per key/value head, ``H`` head
dim, ``R`` window.

References:
    A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    https://arxiv.org/abs/1706.03762
    J. Ainslie et al., "GQA: Training Generalized Multi-Query Transformer Models from
    Multi-Head Checkpoints", 2023. https://arxiv.org/abs/2305.13245
    I. Beltagy, M. Peters, A. Cohan, "Longformer: The Long-Document Transformer", 2020.
    https://arxiv.org/abs/2004.05150
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Bool, Float

from zoo import _checks, layers
from zoo.sharding import auto_inside, constrain, gather_params, vary_together
from zoo.types import ParamAxes, Params

TASK = "regression"
IMPLEMENTATIONS = ("auto", "xla", "cudnn", "chunked")
#: Scores (float32 elements) one block of the chunked kernel holds: 4 MiB. On a 2-core x86
#: CPU, blocks of 2^18-2^22 scores ran at 80-116 GFLOP/s against 23 for one fused pass and
#: 54 for all heads at once in 64-query blocks (B 8, n 1024, 8 heads of 64; n 4096). The
#: backward pass holds four arrays of a block's size: at n 2048 (B 16, one head of 64) 2^20
#: ran it 7% faster than 2^22, the forward pass as fast, and in a quarter of the memory.
SCORE_BLOCK = 2 ** 20
#: Smallest block of :func:`local_attention` (a block is ``max(window, LOCAL_BLOCK)`` long).
LOCAL_BLOCK = 16
#: Scores one tile of :func:`local_attention` holds (float32 elements: 1 MiB); larger inputs
#: run tile after tile under ``lax.map``. On a 2-core x86 CPU (B 16, d 64, window 16), tiles
#: of 2^18 scores ran forward and backward 1.3-3x faster than one pass over all rows at n
#: 512-2048, and forward as fast; 2^14-2^16 ran slower.
LOCAL_SCORES = 2 ** 18
_NEG = float(jnp.finfo(jnp.float32).min)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Multi-head attention hyper-parameters.

    Attributes:
        d_model: model width ``D`` (input and output features).
        num_heads: query heads ``N``; must divide ``d_model`` unless ``head_dim`` is given.
        num_kv_heads: key/value heads ``K`` (default ``N``); must divide ``num_heads``.
        head_dim: ``H`` (default ``d_model // num_heads``).
        causal: self-attention sees no later position.
        window: restrict self-attention to ``|t − s| <= window`` (``None``: full).
        implementation: ``"auto"``, ``"xla"``, ``"cudnn"`` or ``"chunked"`` (module doc).
        dtype: computation dtype (params stay float32; scores and softmax run in float32).
    """
    d_model: int
    num_heads: int
    num_kv_heads: int | None = None
    head_dim: int | None = None
    causal: bool = False
    window: int | None = None
    implementation: str = "auto"
    dtype: str = "float32"

    def __post_init__(self):
        _checks.positive_int(self.d_model, "d_model")
        _checks.positive_int(self.num_heads, "num_heads")
        if self.head_dim is None and self.d_model % self.num_heads:
            raise ValueError(f"d_model must be divisible by num_heads, got d_model="
                             f"{self.d_model}, num_heads={self.num_heads}")
        if self.head_dim is not None:
            _checks.positive_int(self.head_dim, "head_dim")
        if self.num_kv_heads is not None:
            _checks.positive_int(self.num_kv_heads, "num_kv_heads")
            if self.num_heads % self.num_kv_heads:
                raise ValueError(f"num_kv_heads must divide num_heads, got num_kv_heads="
                                 f"{self.num_kv_heads}, num_heads={self.num_heads}")
        if self.window is not None:
            _checks.positive_int(self.window, "window")
        _checks.one_of(self.implementation, "implementation", IMPLEMENTATIONS)
        _checks.dtype_name(self.dtype)

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def head_size(self) -> int:
        return self.head_dim or self.d_model // self.num_heads


PRESETS: dict[str, Config] = {
    "tiny": Config(d_model=8, num_heads=4),
    "local": Config(d_model=8, num_heads=4, window=2, causal=True),
}


def init(key: jax.Array, cfg: Config) -> Params:
    """LeCun-normal projections, zero biases (float32).

    >>> p = init(jax.random.key(0), PRESETS["tiny"])
    >>> p["w_q_dnh"].shape, p["w_o_nhd"].shape
    ((8, 4, 2), (4, 2, 8))
    """
    return _proj_init(key, cfg.d_model, cfg.num_heads, cfg.kv_heads, cfg.head_size)


def param_axes(cfg: Config) -> ParamAxes:
    """Heads split over ``tensor`` (Megatron: column-parallel Q/K/V, row-parallel output)."""
    return _proj_axes()


@auto_inside
def apply(params: Params, x: Float[Array, "B T D"], cfg: Config, *,
          context: Float[Array, "B S D"] | None = None,
          mask: Bool[Array, "B N T S"] | None = None, key=None,
          train: bool = False) -> Float[Array, "B T D"]:
    """Multi-head attention of ``x`` over itself (or over ``context``).

    Args:
        params: from :func:`init`.
        x: queries' inputs ``[B, T, D]``.
        cfg: the layer's config.
        context: keys' and values' inputs ``[B, S, D]`` (cross-attention); default ``x``.
        mask: boolean, ``True`` where a query may see a key: ``[B, S]`` (key padding) or
            rank 4 broadcastable to ``[B, N, T, S]``.
        key, train: unused (no dropout here); accepted for the contract.

    Returns:
        ``[B, T, D]`` in ``cfg.dtype``.

    Raises:
        ValueError: wrong shapes or ranks, or a window with cross-attention.
        TypeError: non-float inputs or a non-boolean mask.

    >>> cfg = PRESETS["tiny"]
    >>> apply(init(jax.random.key(0), cfg), jnp.ones((2, 5, 8)), cfg).shape
    (2, 5, 8)
    """
    out, _ = _mha(params, x, cfg, context=context, mask=mask, return_weights=False)
    return out


@auto_inside
def attention_weights_of(params: Params, x: Float[Array, "B T D"], cfg: Config, *,
                         context=None, mask=None) -> tuple[Array, Array]:
    """Like :func:`apply` through the explicit path, also returning weights ``[B, N, T, S]``.

    >>> cfg = PRESETS["tiny"]
    >>> y, w = attention_weights_of(init(jax.random.key(0), cfg), jnp.ones((2, 5, 8)), cfg)
    >>> w.shape
    (2, 4, 5, 5)
    """
    return _mha(params, x, cfg, context=context, mask=mask, return_weights=True)


def example_batch(key: jax.Array, cfg: Config, batch_size: int):
    """Random inputs ``[B, 7, D]`` and random regression targets of the same shape."""
    kx, ky = jax.random.split(key)
    shape = (batch_size, 7, cfg.d_model)
    return (jax.random.normal(kx, shape),), jax.random.normal(ky, shape)


# --- attention cores ---------------------------------------------------------------------------

def dot_product_attention(q: Float[Array, "B T N H"], k: Float[Array, "B S K H"],
                          v: Float[Array, "B S K H"], *, mask=None, causal: bool = False
                          ) -> tuple[Float[Array, "B T N H"], Float[Array, "B N T S"]]:
    """Explicit scaled dot-product attention, returning the output and the weights.

    ``softmax(q kᵀ/√H + M) v``, scores and softmax in float32; fully masked rows give zeros.

    Args:
        q: queries ``[B, T, N, H]``.
        k, v: keys and values ``[B, S, K, H]`` with ``K`` dividing ``N``.
        mask: boolean, broadcastable to ``[B, N, T, S]`` (``True`` = may attend).
        causal: also mask ``s > t``.

    Returns:
        ``(out [B, T, N, H], weights [B, N, T, S] float32)``.

    >>> q = jnp.ones((1, 3, 2, 4))
    >>> out, w = dot_product_attention(q, q, q, causal=True)
    >>> w[0, 0].tolist()
    [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.3333333432674408, 0.3333333432674408, 0.3333333432674408]]
    """
    groups = q.shape[2] // k.shape[2]
    k, v = jnp.repeat(k, groups, axis=2), jnp.repeat(v, groups, axis=2)
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = jnp.einsum("BTNH,BSNH->BNTS", q, k, preferred_element_type=_acc(q)) * scale
    valid = _valid(mask, causal, q.shape[1], k.shape[1])
    w = _masked_softmax(s, valid)
    out = jnp.einsum("BNTS,BSNH->BTNH", w.astype(v.dtype), v)
    return out, w


def fused_attention(q, k, v, *, mask=None, causal: bool = False,
                    implementation: str = "xla") -> Float[Array, "B T N H"]:
    """``jax.nn.dot_product_attention`` with the zoo's convention for fully masked rows (zero).

    >>> q = jnp.ones((1, 3, 2, 4))
    >>> fused_attention(q, q, q, causal=True).shape
    (1, 3, 2, 4)
    """
    out = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=causal,
                                       implementation=implementation)
    if mask is None:
        return out
    seen = jnp.broadcast_to(_valid(mask, causal, q.shape[1], k.shape[1]).any(-1),
                            (q.shape[0], q.shape[2], q.shape[1]))
    return out * seen.transpose(0, 2, 1)[..., None].astype(out.dtype)


def chunked_attention(q, k, v, *, mask=None, causal: bool = False,
                      block: int | None = None) -> Float[Array, "B T N H"]:
    """Scaled dot-product attention, one (batch, key/value head) at a time, queries in blocks.

    Same numbers as :func:`dot_product_attention`. ``lax.map`` runs over the ``B·K`` pairs
    and, within each, over blocks of ``block`` queries (by default as many as keep the
    ``G·block·S`` float32 scores within :data:`SCORE_BLOCK`): each block's scores are made,
    used and dropped, and its products are plain matrix products on data that stays in
    cache. The softmax is normalised after the product with ``V``:

        out = (exp(s − m) V) / Σ exp(s − m),   s = q kᵀ/√H,  m = max s (per row)

    (one division per output row instead of one per score).

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
    """``(out [B, T, N, H], lse [BK, nb, G, blk])``: the output and each row's log-sum-exp."""
    ctx = _Chunks(q, k, mask, causal, blk)

    def pair(i):
        qi, ki, vi = ctx.slice(q, i), ctx.kv(k, i), ctx.kv(v, i)

        def one(j):
            return _block_attention(ctx.block(qi, j), ki, vi, ctx.valid(i, j))
        return ctx.over_blocks(one)

    out, lse = jax.lax.map(pair, jnp.arange(ctx.pairs))                  # BK nb G blk (H)
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
            qb, dob = ctx.block(qi, j), ctx.block(doi, j)                 # G blk H
            s = jnp.einsum("gbh,sh->gbs", qb, ki, preferred_element_type=_acc(qb)) * ctx.scale
            p = jnp.exp(s - lse[i, j][..., None])
            valid = ctx.valid(i, j)
            if valid is not None:
                p = jnp.where(valid, p, 0.0)
            dp = jnp.einsum("gbh,sh->gbs", dob, vi, preferred_element_type=_acc(qb))
            ds = p * (dp - (dob * ctx.block(oi, j)).sum(-1, keepdims=True))
            dk = acc[0] + jnp.einsum("gbs,gbh->sh", ds, qb)
            dv = acc[1] + jnp.einsum("gbs,gbh->sh", p, dob)
            return (dk, dv), jnp.einsum("gbs,sh->gbh", ds, ki) * ctx.scale
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
        """``[B, T, N, H]`` -> pair ``i``'s ``[T', G, H]`` (padded ``T' = nb·blk``). Slicing
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
        """Block ``j`` of a pair's ``[T', G, H]`` as ``[G, blk, H]``."""
        return jax.lax.dynamic_slice_in_dim(xi, j * self.blk, self.blk, 0).transpose(1, 0, 2)

    def valid(self, i, j):
        """Pair ``i``, block ``j``'s mask ``[G|1, blk|1, S]`` (or None)."""
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
        """Per-pair blocks ``[BK, nb, G, blk, H]`` -> ``[B, T, N, H]``."""
        x = x.reshape(self.b, self.kh, self.nb, self.g, self.blk, self.h)
        x = x.transpose(0, 2, 4, 1, 3, 5).reshape(self.b, self.nb * self.blk, -1, self.h)
        return x[:, :self.t]

    def unslice_kv(self, x):
        """Per-pair ``[BK, S, H]`` -> ``[B, S, K, H]``."""
        return x.reshape(self.b, self.kh, self.s, self.h).transpose(0, 2, 1, 3)


def local_attention(q: Float[Array, "B T N H"], k: Float[Array, "B T K H"],
                    v: Float[Array, "B T K H"], *, window: int, causal: bool = False,
                    key_mask: Bool[Array, "B T"] | None = None,
                    block: int | None = None) -> Float[Array, "B T N H"]:
    """Self-attention restricted to ``|t − s| <= window`` (and ``s <= t`` if causal), blocked.

    The sequence is cut into blocks of ``b = max(window, block or 16)`` positions; block ``i``
    attends to blocks ``i − 1, i, i + 1`` (``i − 1, i`` when causal), so scores are
    ``[B, n/b, N, b, 3b]``: memory and FLOPs grow linearly in ``n`` for a fixed window.
    The work runs in tiles holding at most :data:`LOCAL_SCORES` scores (a span of blocks of
    one batch row with the key block on either side, or several whole rows), one after
    another under ``lax.map`` when there are several, so that each tile's temporaries stay
    in cache whatever ``B`` and ``n``. Under differentiation a tile recomputes its scores in
    the backward pass (``jax.checkpoint``) rather than storing them: the backward pass holds
    the inputs and one tile's temporaries, its time linear in ``n`` as well.

    Args:
        q, k, v: ``[B, T, N, H]`` and ``[B, T, K, H]`` (self-attention: same length).
        window: ``R >= 1``.
        causal: also mask later positions.
        key_mask: ``[B, T]`` boolean key padding (``True`` = real position).
        block: minimum block length (default 16).

    Raises:
        ValueError: if ``window < 1`` or the lengths differ.

    >>> q = jax.random.normal(jax.random.key(0), (1, 40, 2, 4))
    >>> local_attention(q, q, q, window=3).shape
    (1, 40, 2, 4)
    """
    _checks.positive_int(window, "window")
    if k.shape[1] != q.shape[1]:
        raise ValueError(f"local_attention is self-attention: q has {q.shape[1]} positions, "
                         f"k has {k.shape[1]}")
    bsz, t, n, h = q.shape
    blk = max(window, block or LOCAL_BLOCK)
    per_block = n * blk * (2 if causal else 3) * blk         # scores of one block of one row
    span, tiles = _local_tiling(-(-t // blk), per_block)
    rows = _batch_rows(bsz, span * per_block) if tiles == 1 else 1
    length = span * tiles * blk
    key_valid = jnp.ones((bsz, t), bool) if key_mask is None else key_mask
    pad = lambda x: x if length == t else jnp.pad(
        x, ((0, 0), (0, length - t)) + ((0, 0),) * (x.ndim - 2))
    q, k, v, key_valid = (pad(x) for x in (q, k, v, key_valid))
    # one leading entry per tile: a pure reshape, since rows == 1 or tiles == 1
    lead = lambda x, per_tile: x.reshape((bsz * tiles // rows, rows, per_tile) + x.shape[2:])
    args = [lead(x, span * blk) for x in (q, k, v, key_valid)]
    args += [lead(a, blk) for a in _halos(k, v, key_valid, tiles, blk)]
    tile = jax.checkpoint(functools.partial(_local_tile, window=window, causal=causal, blk=blk))
    if len(args[0]) == 1:
        out = tile(*(a[0] for a in args))
    else:
        out = jax.lax.map(lambda a: tile(*a), args)
    return out.reshape(bsz, length, n, h)[:, :t]


def _local_tiling(blocks, scores_per_block):
    """``(span, tiles)``: blocks per tile and tiles per row, ``span·tiles >= blocks``; the
    fewest tiles whose scores fit :data:`LOCAL_SCORES`, then the shortest span for that many
    tiles (the least padding)."""
    most = max(1, LOCAL_SCORES // scores_per_block)
    tiles = -(-blocks // most)
    return -(-blocks // tiles), tiles


def _batch_rows(bsz, scores_per_row):
    """Batch rows one tile of :func:`local_attention` holds when a tile spans whole rows: the
    largest divisor of ``bsz`` whose scores fit :data:`LOCAL_SCORES` (at least 1)."""
    fit = max(1, LOCAL_SCORES // max(1, scores_per_row))
    return max(r for r in range(1, bsz + 1) if bsz % r == 0 and r <= fit)


def _halos(k, v, valid, tiles, blk):
    """The key block before and after each tile, ``[B, tiles·b, ..]`` each for ``k``, ``v``
    and ``valid`` (zeros and False past the sequence's ends): ``(before..., after...)``."""
    def edges(x, first):
        xt = x.reshape((x.shape[0], tiles, -1) + x.shape[2:])
        zero = jnp.zeros((x.shape[0], 1, blk) + x.shape[2:], x.dtype)
        if first:       # block before tile j: the last block of tile j − 1
            e = jnp.concatenate([zero, xt[:, :-1, -blk:]], axis=1)
        else:           # block after tile j: the first block of tile j + 1
            e = jnp.concatenate([xt[:, 1:, :blk], zero], axis=1)
        return e.reshape((x.shape[0], tiles * blk) + x.shape[2:])
    return [edges(x, first) for first in (True, False) for x in (k, v, valid)]


def _local_tile(q, k, v, valid, k_before, v_before, valid_before, k_after, v_after,
                valid_after, *, window, causal, blk):
    """Banded attention on one tile: ``q [R, L, N, H]`` (``L = S·b``, S blocks), ``k, v
    [R, L, K, H]``, key ``valid [R, L]``, and the key block just before and just after the
    tile (``[R, b, ..]``). Query block ``i`` reads key blocks ``i − 1 .. i + 1``
    (``i − 1, i`` when causal).

    The tile moves heads ahead of positions first (``[R, K, S, .., H]``), so both products
    are batched over ``(R, K, S)`` with ``H`` the minor axis of every operand. With heads
    left between positions and features, XLA transposed ``H`` against positions element by
    element on the three times larger key windows. On a 2-core CPU, over seven shapes (B
    1-64, 1-16 heads of 64, windows 8-64, n 64-4096), this layout took 0.64-1.00x that
    layout's time forward and 0.74-1.06x forward+backward (B 16, one head, window 16, n 2048:
    10.4 against 14.6 ms forward).
    """
    r, length, n, h = q.shape
    kh = k.shape[2]
    span = length // blk
    width = 2 if causal else 3
    qh = (q * jnp.asarray(1.0 / math.sqrt(h), q.dtype)).reshape(r, span, blk, kh, n // kh, h)
    qh = jnp.transpose(qh, (0, 3, 1, 4, 2, 5))                          # [R, K, S, G, b, H]

    def extend(x, before, after):                                        # [R, L', ..]
        return jnp.concatenate([before, x] if causal else [before, x, after], axis=1)

    def windows(x):                                   # x [R, .., L', H'] -> [R, .., S, w·b, H']
        return jnp.concatenate(
            [x[..., i * blk:(i + span) * blk, :].reshape(x.shape[:-2] + (span, blk, x.shape[-1]))
             for i in range(width)], axis=-2)
    kn = windows(jnp.swapaxes(extend(k, k_before, k_after), 1, 2))         # [R, K, S, w·b, H]
    vn = windows(jnp.swapaxes(extend(v, v_before, v_after), 1, 2))
    mn = windows(extend(valid, valid_before, valid_after)[..., None])[..., 0]   # [R, S, w·b]
    q_pos = jnp.arange(blk)[:, None]
    k_pos = jnp.arange(width * blk)[None, :] - blk                        # relative to block
    band = jnp.abs(q_pos - k_pos) <= window
    if causal:
        band &= k_pos <= q_pos
    s = jnp.einsum("RKSGtH,RKSuH->RKSGtu", qh, kn, preferred_element_type=_acc(qh))
    w = _masked_softmax(s, band & mn[:, None, :, None, None, :])
    out = jnp.einsum("RKSGtu,RKSuH->RKSGtH", w.astype(v.dtype), vn)
    return jnp.transpose(out, (0, 2, 4, 1, 3, 5)).reshape(r, length, n, h)


def band_mask(t: int, window: int, causal: bool = False) -> Bool[Array, "T T"]:
    """The ``[T, T]`` mask ``|t − s| <= window`` (and ``s <= t``): local attention's meaning.

    >>> band_mask(3, 1).astype(int).tolist()
    [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    """
    i, j = jnp.arange(t)[:, None], jnp.arange(t)[None, :]
    m = jnp.abs(i - j) <= window
    return m & (j <= i) if causal else m


def check_mask(mask, name: str, batch: int, heads: int, t: int, s: int):
    """Validates a boolean mask and returns it as rank 4, broadcastable to ``[B, N, T, S]``.

    Accepts ``[B, S]`` (key padding) or rank 4 with each axis 1 or the full size.

    Raises:
        TypeError: if the mask is not a boolean array.
        ValueError: if its shape cannot broadcast to ``[B, N, T, S]``.
    """
    if mask is None:
        return None
    if not hasattr(mask, "dtype") or mask.dtype != jnp.bool_:
        got = getattr(mask, "dtype", type(mask).__name__)
        raise TypeError(f"{name} must be a boolean array (True = may attend), got dtype {got}")
    full = (batch, heads, t, s)
    if mask.ndim == 2 and mask.shape == (batch, s):
        return mask[:, None, None, :]
    if mask.ndim != 4 or any(m not in (1, f) for m, f in zip(mask.shape, full)):
        raise ValueError(f"{name} must have shape [B, S] = {_checks.shape_str((batch, s))} or "
                         f"broadcast to [B, N, T, S] = {_checks.shape_str(full)}, "
                         f"got {_checks.shape_str(mask.shape)}")
    return mask


# --- multi-head layer pieces (also used by zoo.transformer) ------------------------------------

def project_q(p, x):
    """``[B, T, D] -> [B, T, N, H]``."""
    return _project(x, p["w_q_dnh"], p["b_q_nh"])


def project_kv(p, c):
    """``[B, S, D] -> ([B, S, K, H], [B, S, K, H])``."""
    return _project(c, p["w_k_dkh"], p["b_k_kh"]), _project(c, p["w_v_dkh"], p["b_v_kh"])


def project_out(p, o):
    """``[B, T, N, H] -> [B, T, D]``."""
    w = p["w_o_nhd"].astype(o.dtype)
    y = o.reshape(o.shape[:-2] + (-1,)) @ w.reshape(-1, w.shape[-1])
    return y + p["b_o_d"].astype(o.dtype)


def _project(x, w, b):
    """``x [.., D] @ w [D, N, H] + b [N, H]`` as one 2-D matrix product (on CPU, 15% faster
    than the same contraction written as an einsum over ``(N, H)``)."""
    w, b = w.astype(x.dtype), b.astype(x.dtype)
    y = x @ w.reshape(w.shape[0], -1) + b.reshape(-1)
    return y.reshape(x.shape[:-1] + w.shape[1:])


def attend(q, k, v, *, mask=None, causal=False, window=None, implementation="auto",
           return_weights=False):
    """Dispatches to the path ``implementation`` and the arguments call for.

    Returns ``(out [B, T, N, H], weights [B, N, T, S] or None)``.
    """
    if return_weights:
        if window is not None:
            band = band_mask(q.shape[1], window, causal)
            mask = band if mask is None else mask & band
            causal = False
        return dot_product_attention(q, k, v, mask=mask, causal=causal)
    if window is not None:
        key_mask = None if mask is None else _key_mask(mask, q.shape[0], k.shape[1])
        return local_attention(q, k, v, window=window, causal=causal, key_mask=key_mask), None
    impl = _resolve(implementation, q, mask)
    if impl == "chunked":
        return chunked_attention(q, k, v, mask=mask, causal=causal), None
    return fused_attention(q, k, v, mask=mask, causal=causal, implementation=impl), None


# --- private pieces ---------------------------------------------------------------------------

def _mha(params, x, cfg, *, context, mask, return_weights):
    _checks.check_array(x, "x", shape=(None, None, cfg.d_model), letters="B T D", kind="float")
    if context is not None:
        _checks.check_array(context, "context", shape=(x.shape[0], None, cfg.d_model),
                            letters="B S D", kind="float")
        if cfg.window is not None:
            raise ValueError("window restricts self-attention; pass no context with window="
                             f"{cfg.window}")
    c = x if context is None else context
    mask = check_mask(mask, "mask", x.shape[0], cfg.num_heads, x.shape[1], c.shape[1])
    params = gather_params(params, param_axes(cfg))
    x, c = x.astype(cfg.dtype), c.astype(cfg.dtype)
    q = project_q(params, x)
    k, v = project_kv(params, c)
    o, w = attend(q, k, v, mask=mask, causal=cfg.causal and context is None, window=cfg.window,
                  implementation=cfg.implementation, return_weights=return_weights)
    return constrain(project_out(params, o), ("batch", "seq", "embed")), w


def _acc(x):
    """Scores' dtype: at least float32 (float64 stays float64 for gradient checks)."""
    return jnp.promote_types(x.dtype, jnp.float32)


def _valid(mask, causal, t, s):
    if not causal:
        return mask
    c = jnp.arange(t)[:, None] >= jnp.arange(s)[None, :]
    return c if mask is None else mask & c


def _masked_softmax(s, valid):
    """Softmax over the last axis in float32; rows with no valid entry become zeros."""
    if valid is None:
        return jax.nn.softmax(s, axis=-1)
    s = jnp.where(valid, s, _NEG)
    m = jax.lax.stop_gradient(s.max(-1, keepdims=True))
    e = jnp.exp(s - m)
    e = jnp.where(valid, e, 0.0)
    denom = e.sum(-1, keepdims=True)
    return e / jnp.where(denom > 0, denom, 1.0)


def _query_block(g, s_len):
    """Queries per block of :func:`chunked_attention`: ``G·block·S ≤ SCORE_BLOCK``, ≥ 16."""
    return max(16, SCORE_BLOCK // (g * s_len))


def _block_attention(qb, k, v, valid):
    """One block: ``qb [G, b, H]``, ``k, v [S, H]``, ``valid`` broadcastable to ``[G, b, S]``
    or None. Returns ``(out [G, b, H], lse [G, b])``; rows with no valid key give zeros."""
    s = jnp.einsum("gbh,sh->gbs", qb, k, preferred_element_type=_acc(qb))
    s = s * (1.0 / math.sqrt(qb.shape[-1]))
    if valid is not None:
        s = jnp.where(valid, s, _NEG)
    m = jax.lax.stop_gradient(s.max(-1, keepdims=True))
    e = jnp.exp(s - m)
    if valid is not None:
        e = jnp.where(valid, e, 0.0)
    denom = e.sum(-1, keepdims=True)
    o = jnp.matmul(e.astype(v.dtype), v, preferred_element_type=_acc(v))     # G b H
    if valid is not None:
        denom = jnp.where(denom > 0, denom, 1.0)
    return (o / denom).astype(v.dtype), (m + jnp.log(denom))[..., 0]


def _pad_rows(mask, rows):
    """A rank-4 mask with its query axis (when not broadcast) padded to ``rows``."""
    if mask.shape[2] == 1:
        return mask
    return jnp.pad(mask, ((0, 0), (0, 0), (0, rows - mask.shape[2]), (0, 0)))


def _mask_block(mask, bi, ki, j, g, blk):
    """The ``[G|1, blk|1, S|1]`` part of a rank-4 mask for batch ``bi``, key/value head ``ki``
    and query block ``j`` (axes of size 1 stay broadcast)."""
    m = jax.lax.dynamic_index_in_dim(mask, bi if mask.shape[0] > 1 else 0, 0, keepdims=False)
    if m.shape[0] > 1:
        m = jax.lax.dynamic_slice_in_dim(m, ki * g, g, 0)
    if m.shape[1] > 1:
        m = jax.lax.dynamic_slice_in_dim(m, j * blk, blk, 1)
    return m


def _key_mask(mask, batch, s):
    """A rank-4 mask that only pads keys (``[B|1, 1, 1, S]``) as ``[B, S]``."""
    if mask.shape[1] != 1 or mask.shape[2] != 1:
        raise ValueError("with a window, mask must be a key-padding mask [B, S] or "
                         f"[B, 1, 1, S], got {_checks.shape_str(mask.shape)}")
    return jnp.broadcast_to(mask[:, 0, 0, :], (batch, s))


def _resolve(implementation, q, mask):
    if implementation != "auto":
        return implementation
    platform = jax.devices()[0].platform
    if platform == "cpu":
        return "chunked"
    ok = (q.dtype in (jnp.bfloat16, jnp.float16) and q.shape[-1] % 8 == 0
          and q.shape[-1] <= 128 and mask is None)
    return "cudnn" if platform == "gpu" and ok else "xla"


def _proj_init(key, d, n, kh, h, leading=()):
    kq, kk, kv, ko = jax.random.split(key, 4)
    z = lambda *s: jnp.zeros(leading + s, jnp.float32)
    return {
        "w_q_dnh": layers.dense_init(kq, leading + (d, n, h), fan_in=d),
        "b_q_nh": z(n, h),
        "w_k_dkh": layers.dense_init(kk, leading + (d, kh, h), fan_in=d),
        "b_k_kh": z(kh, h),
        "w_v_dkh": layers.dense_init(kv, leading + (d, kh, h), fan_in=d),
        "b_v_kh": z(kh, h),
        "w_o_nhd": layers.dense_init(ko, leading + (n, h, d), fan_in=n * h),
        "b_o_d": z(d),
    }


def _proj_axes(leading=()):
    return {
        "w_q_dnh": P(*leading, "embed", "heads", "head_dim"),
        "b_q_nh": P(*leading, "heads", "head_dim"),
        "w_k_dkh": P(*leading, "embed", "heads", "head_dim"),
        "b_k_kh": P(*leading, "heads", "head_dim"),
        "w_v_dkh": P(*leading, "embed", "heads", "head_dim"),
        "b_v_kh": P(*leading, "heads", "head_dim"),
        "w_o_nhd": P(*leading, "heads", "head_dim", "embed"),
        "b_o_d": P(*leading, None),
    }
