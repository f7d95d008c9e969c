"""Full and restricted attention through the Pallas TPU splash-attention kernels
(``jax.experimental.pallas.ops.tpu.splash_attention``), for TPUs.

Splash attention skips the key blocks a mask leaves empty, so a window ``|t − s| <= R``
(``LocalMask``) costs ``O(R·n·H)`` per head; key padding becomes segment ids (a padded key is
in segment 0, every query in segment 1). The kernels take ``[N, T, H]`` per batch element and
no ``1/√H`` scaling: :func:`attention` scales the queries, repeats grouped key/value heads,
pads ``T`` to a multiple of the block with padded keys, and maps over the batch. On other
platforms the kernels run only in interpret mode (``interpret=True``), which is how they are
tested against the explicit path (``tests/kernels/test_attention_kernels.py``).

Shape letters: ``B`` batch, ``T`` positions, ``N`` query heads, ``K`` key/value heads, ``H``
head dim, ``R`` window.
"""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from zoo import _checks

#: Block length of queries and keys: the kernels' 128-lane tiles, up to 512 for long inputs.
BLOCK = 512


def attention(q: Float[Array, "B T N H"], k: Float[Array, "B T K H"],
              v: Float[Array, "B T K H"], *, causal: bool = False, window: int | None = None,
              key_mask: Bool[Array, "B T"] | None = None,
              interpret: bool = False) -> Float[Array, "B T N H"]:
    """``softmax(q kᵀ/√H + M) v`` self-attention, ``M`` open where ``|t − s| <= window``
    (everywhere if ``None``), ``s <= t`` when causal, and on real keys of ``key_mask``.

    Raises:
        ValueError: cross-attention (key and query lengths differ) or a bad window.
    """
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
    if window is not None:
        _checks.positive_int(window, "window")
    b, t, n, h = q.shape
    if k.shape[1] != t:
        raise ValueError(f"splash attention here is self-attention: q has {t} positions, k "
                         f"has {k.shape[1]}")
    blk = min(BLOCK, 128 * -(-t // 128))
    length = blk * -(-t // blk)
    pad = lambda x: jnp.pad(x, ((0, 0), (0, length - t)) + ((0, 0),) * (x.ndim - 2))
    valid = jnp.ones((b, t), bool) if key_mask is None else key_mask
    q, k, v, valid = pad(q * (1.0 / math.sqrt(h))), pad(k), pad(v), pad(valid)
    k, v = (jnp.repeat(x, n // x.shape[2], axis=2) for x in (k, v))
    kernel = sk.make_splash_mha(_mask(length, n, causal, window), block_sizes=_blocks(blk),
                                head_shards=1, q_seq_shards=1, interpret=interpret)
    heads_first = lambda x: jnp.swapaxes(x, 0, 1)                        # [T, N, H] -> [N, T, H]

    def one(q1, k1, v1, valid1):
        ids = sk.SegmentIds(q=jnp.ones(length, jnp.int32), kv=valid1.astype(jnp.int32))
        return heads_first(kernel(heads_first(q1), heads_first(k1), heads_first(v1),
                                  segment_ids=ids))
    out = jax.vmap(one)(q, k, v, valid)[:, :t]
    if key_mask is not None:     # a query with no real key in reach: zeros, as everywhere
        out = out * _sees_a_key(key_mask, causal, window)[:, :, None, None]
    return out.astype(v.dtype)


def _sees_a_key(valid, causal, window):
    """``[B, T]``: whether query ``t`` has a real key within its band, by prefix sums."""
    t = valid.shape[1]
    counts = jnp.pad(jnp.cumsum(valid, axis=1), ((0, 0), (1, 0)))       # keys before each s
    pos = jnp.arange(t)
    reach = t if window is None else window
    hi = pos + 1 if causal else jnp.minimum(pos + reach + 1, t)
    lo = jnp.maximum(pos - reach, 0)
    return (counts[:, hi] - counts[:, lo]) > 0


def _mask(length, heads, causal, window):
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm
    shape = (length, length)
    if window is not None:
        one = sm.LocalMask(shape, (window, 0 if causal else window), offset=0)
    else:
        one = sm.CausalMask(shape) if causal else sm.FullMask(shape)
    return sm.MultiHeadMask([one] * heads)


def _blocks(blk):
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
    return sk.BlockSizes(block_q=blk, block_kv_compute=blk, block_kv=blk, block_q_dkv=blk,
                         block_kv_dkv=blk, block_kv_dkv_compute=blk, block_q_dq=blk,
                         block_kv_dq=blk)
