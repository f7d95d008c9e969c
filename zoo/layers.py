"""Primitives that several families share: activations, initialisers, dense layers, norms.

Shape letters: ``I`` input features, ``O`` output features, ``D`` width.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

#: Name -> elementwise activation. Each is differentiable almost everywhere.
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "identity": lambda z: z,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
}


def activation(name: str) -> Callable[[Array], Array]:
    """Looks up an activation by name, raising ``ValueError`` that lists the choices."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def dense_init(key: jax.Array, shape: tuple[int, ...], fan_in: int | None = None) -> jax.Array:
    """LeCun-normal weights: N(0, 1/fan_in), float32. ``fan_in`` defaults to ``shape[-2]``."""
    fan_in = shape[-2] if fan_in is None else fan_in
    return jax.random.normal(key, shape, jnp.float32) / jnp.sqrt(fan_in)


def dense(params: dict, x: Float[Array, "... I"]) -> Float[Array, "... O"]:
    """Affine map ``x @ w + b`` computed in the dtype of ``x``."""
    return x @ params["w"].astype(x.dtype) + params["b"].astype(x.dtype)


def layer_norm(x: Float[Array, "... D"], scale: Float[Array, "D"], bias: Float[Array, "D"],
               eps: float = 1e-6) -> Float[Array, "... D"]:
    """LayerNorm over the last axis, computed in at least float32, cast back to ``x.dtype``.

    y = (x - mean(x)) / sqrt(var(x) + eps) * scale + bias
    """
    x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean = x32.mean(-1, keepdims=True)
    var = jnp.square(x32 - mean).mean(-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + eps) * scale + bias
    return y.astype(x.dtype)


#: The score a mask gives a forbidden (query, key) pair before the softmax.
NEG_INF = float(jnp.finfo(jnp.float32).min)


def score_dtype(x: Array):
    """Dtype of attention scores for inputs like ``x``: at least float32 (float64 stays
    float64, for gradient checks).

    >>> score_dtype(jnp.ones(2, jnp.bfloat16))
    dtype('float32')
    """
    return jnp.promote_types(x.dtype, jnp.float32)


def masked_softmax(s: Array, valid: Array | None) -> Array:
    """Softmax over the last axis where ``valid`` (broadcastable to ``s``) allows; a row with
    no valid entry becomes zeros (and zero gradients), never NaN.

    >>> masked_softmax(jnp.zeros((2, 2)), jnp.array([[True, True], [False, False]])).tolist()
    [[0.5, 0.5], [0.0, 0.0]]
    """
    if valid is None:
        return jax.nn.softmax(s, axis=-1)
    s = jnp.where(valid, s, NEG_INF)
    m = jax.lax.stop_gradient(s.max(-1, keepdims=True))
    e = jnp.where(valid, jnp.exp(s - m), 0.0)
    denom = e.sum(-1, keepdims=True)
    return e / jnp.where(denom > 0, denom, 1.0)
