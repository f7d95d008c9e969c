"""Restricted self-attention as one causal cuDNN call, for GPUs: O(R·n·H) work per head, no
loop over tiles, and cuDNN's own backward pass.

cuDNN's window is one-sided: with ``is_causal=True`` and ``local_window_size=(w, 0)`` query
``i`` sees keys ``i − w .. i``. The causal band ``t − R <= s <= t`` is that call with
``w = R``. The symmetric band ``|t − s| <= R`` is the same call with ``w = 2R`` on the queries
shifted ``R`` positions later (``R`` zero queries in front, dropped afterwards): query
``i = t + R`` then sees keys ``t − R .. t + R``. Query and key lengths differ by ``R``, and the
causal diagonal is aligned at the first query and key (``jax.nn.dot_product_attention``'s
convention for both implementations).

``implementation`` is passed to ``jax.nn.dot_product_attention``: ``"cudnn"`` on a GPU (16-bit
inputs), ``"xla"`` to check the index arithmetic anywhere (XLA still computes all ``n²``
scores). Tested against the explicit path under a band mask in
``tests/kernels/test_attention_kernels.py``.

Shape letters: ``B`` batch, ``T`` positions, ``N`` query heads, ``K`` key/value heads, ``H``
head dim, ``R`` window.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from zoo import _checks


def applies(dtype, head_dim: int) -> list[str]:
    """Why cuDNN cannot run this window (empty when it can)."""
    reasons = []
    if jnp.dtype(dtype) not in (jnp.bfloat16, jnp.float16):
        reasons.append(f"dtype is {jnp.dtype(dtype).name}, cuDNN attention takes bfloat16 or "
                       "float16")
    if head_dim % 8 or head_dim > 128:
        reasons.append(f"head dim is {head_dim}, cuDNN takes multiples of 8 up to 128")
    return reasons


def local_attention(q: Float[Array, "B T N H"], k: Float[Array, "B T K H"],
                    v: Float[Array, "B T K H"], *, window: int, causal: bool = False,
                    implementation: str = "cudnn") -> Float[Array, "B T N H"]:
    """``softmax(q kᵀ/√H + M) v`` with ``M`` open where ``|t − s| <= window`` (and
    ``s <= t`` when causal), through one causal call (module docstring).

    >>> q = jax.random.normal(jax.random.key(0), (1, 9, 2, 8))
    >>> local_attention(q, q, q, window=2, implementation="xla").shape
    (1, 9, 2, 8)
    """
    _checks.positive_int(window, "window")
    if k.shape[1] != q.shape[1]:
        raise ValueError(f"local_attention is self-attention: q has {q.shape[1]} positions, "
                         f"k has {k.shape[1]}")
    if causal:
        return jax.nn.dot_product_attention(q, k, v, is_causal=True,
                                            local_window_size=(window, 0),
                                            implementation=implementation)
    shifted = jnp.pad(q, ((0, 0), (window, 0), (0, 0), (0, 0)))
    out = jax.nn.dot_product_attention(shifted, k, v, is_causal=True,
                                       local_window_size=(2 * window, 0),
                                       implementation=implementation)
    return out[:, window:]
