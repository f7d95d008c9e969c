"""Input checks for the public API: each failure names the argument, what was expected and
what arrived."""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np


def shape_str(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def check_array(x, name: str, *, rank: int | None = None,
                shape: Sequence[int | None] | None = None, letters: str = "",
                kind: str | None = None):
    """Validates an input array's rank, shape and dtype kind.

    Args:
        x: the value to check (anything with ``shape`` and ``dtype``; tracers work).
        name: the argument's name, for the message.
        rank: expected number of dimensions.
        shape: expected shape; ``None`` entries match any size.
        letters: the shape letters of the expected shape (e.g. ``"B I"``), for the message.
        kind: ``"float"``, ``"int"`` or ``"number"`` (float or int).

    Raises:
        TypeError: if ``x`` is not an array or has the wrong dtype kind.
        ValueError: if the rank or shape differs.
    """
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    want = f" [{letters}]" if letters else ""
    if shape is not None:
        rank = len(shape)
    if rank is not None and x.ndim != rank:
        raise ValueError(f"{name} must have rank {rank}{want}, got shape {shape_str(x.shape)}")
    if shape is not None:
        for got, exp in zip(x.shape, shape):
            if exp is not None and got != exp:
                expected = shape_str("?" if e is None else e for e in shape)
                raise ValueError(
                    f"{name} must have shape {expected}{want}, got {shape_str(x.shape)}")
    if kind is not None:
        _check_kind(x.dtype, name, kind)
    return x


def _check_kind(dtype, name: str, kind: str) -> None:
    is_float = jnp.issubdtype(dtype, jnp.floating)
    is_int = jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, np.bool_)
    ok = {"float": is_float, "int": is_int, "number": is_float or is_int}[kind]
    if not ok:
        raise TypeError(f"{name} must have a {kind} dtype, got {dtype}")


def positive_int(value, name: str, *, minimum: int = 1) -> None:
    """Raises ``ValueError`` unless ``value`` is an int >= ``minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def positive_float(value, name: str) -> None:
    """Raises ``ValueError`` unless ``value`` is a finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def one_of(value, name: str, choices) -> None:
    """Raises ``ValueError`` unless ``value`` is in ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")


def dtype_name(value, name: str = "dtype") -> None:
    """Raises ``ValueError`` unless ``value`` names a floating dtype JAX knows."""
    try:
        ok = jnp.issubdtype(jnp.dtype(value), jnp.floating)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must name a floating dtype such as 'float32', got {value!r}")
