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
