"""Full attention in blocks of queries, for inputs whose ``B·N·T·S`` scores do not fit in
memory at once: each block's scores are made, used and dropped (``jax.lax.map``), and the
backward pass recomputes them (``jax.checkpoint``), so memory holds one block's scores.

A block takes all batch rows and heads at once, so on a GPU it is a few large batched products
rather than the many small ones of a per-head loop. The budget carries one line of why; no
speed is claimed for it: it is what runs where the one-pass paths would not fit (float32 on a
GPU, where cuDNN takes 16-bit inputs only). Tested against the explicit path in
``tests/kernels/test_attention_kernels.py``.

Shape letters: ``B`` batch, ``T`` query positions, ``S`` key positions, ``N`` query heads,
``K`` key/value heads, ``H`` head dim, ``J`` blocks.
"""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from zoo import _checks
from zoo.layers import masked_softmax, score_dtype

#: Scores one block holds: 2^28 float32 (1 GiB), a small share of an accelerator's memory.
SCORE_BUDGET = 2 ** 28


def fits(b: int, n: int, t: int, s: int, budget: int | None = None) -> bool:
    """Whether all ``B·N·T·S`` scores fit the budget (then one pass serves).

    >>> fits(16, 16, 16384, 16384), fits(2, 8, 512, 512)
    (False, True)
    """
    return b * n * t * s <= (budget or SCORE_BUDGET)


def attention(q: Float[Array, "B T N H"], k: Float[Array, "B S K H"],
              v: Float[Array, "B S K H"], *, mask=None, causal: bool = False,
              budget: int | None = None) -> Float[Array, "B T N H"]:
    """``softmax(q kᵀ/√H + M) v`` in blocks of queries whose scores fit ``budget`` (default
    :data:`SCORE_BUDGET`); ``mask``
    broadcastable to ``[B, N, T, S]``, rows that no key may see give zeros.

    >>> from zoo.attention import dot_product_attention
    >>> q = jax.random.normal(jax.random.key(0), (2, 9, 4, 8))
    >>> bool(jnp.allclose(attention(q, q, q, budget=2 * 4 * 9 * 2),
    ...                   dot_product_attention(q, q, q)[0], atol=1e-6))
    True
    """
    budget = budget or SCORE_BUDGET
    _checks.positive_int(budget, "budget")
    b, t, n, h = q.shape
    s = k.shape[1]
    rows = min(t, max(1, budget // (b * n * s)))
    blocks = -(-t // rows)
    pad = blocks * rows - t
    q = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0)))
    full = None if mask is None else jnp.broadcast_to(mask, mask.shape[:2] + (t, s))
    if full is not None and full.shape[2] > 1:
        full = jnp.pad(full, ((0, 0), (0, 0), (0, pad), (0, 0)))

    def block(j):
        start = j * rows
        q_j = jax.lax.dynamic_slice_in_dim(q, start, rows, axis=1)
        m = None if full is None else jax.lax.dynamic_slice_in_dim(full, start, rows, axis=2)
        if causal:
            c = (start + jnp.arange(rows))[:, None] >= jnp.arange(s)[None, :]
            m = c if m is None else m & c
        return _explicit(q_j, k, v, m)
    out = jax.lax.map(jax.checkpoint(block), jnp.arange(blocks))          # [J, B, rows, N, H]
    out = jnp.moveaxis(out, 0, 1).reshape(b, blocks * rows, n, h)
    return out[:, :t]


def _explicit(q, k, v, mask):
    """One block: ``softmax(q kᵀ/√H + M) v`` with grouped key/value heads repeated."""
    groups = q.shape[2] // k.shape[2]
    k, v = jnp.repeat(k, groups, axis=2), jnp.repeat(v, groups, axis=2)
    s = jnp.einsum("BTNH,BSNH->BNTS", q, k, preferred_element_type=score_dtype(q))
    w = masked_softmax(s / math.sqrt(q.shape[-1]), mask)
    return jnp.einsum("BNTS,BSNH->BTNH", w.astype(v.dtype), v)
