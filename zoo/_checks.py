"""Input checks for the public API: each failure names the argument, what was expected and
what arrived.

Value checks (ids in range, lengths, labels) run at once on concrete values and with the
compiled program on traced ones (see :func:`in_range`). Setting ``ZOO_TRACED_CHECKS=0`` in the
environment before ``import zoo`` drops the traced half for the process (and with it the
dispatch cost of a host callback), leaving the eager checks.
"""

import functools
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def shape_str(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def check_array(x, name: str, *, rank: int | None = None,
                shape: Sequence[int | None] | None = None, letters: str = "",
                kind: str | None = None, nonempty: bool = False):
    """Validates an input array's rank, shape and dtype kind.

    Args:
        x: the value to check (anything with ``shape`` and ``dtype``; tracers work).
        name: the argument's name, for the message.
        rank: expected number of dimensions.
        shape: expected shape; ``None`` entries match any size.
        letters: the shape letters of the expected shape (e.g. ``"B I"``), for the message.
        kind: ``"float"``, ``"int"`` or ``"number"`` (float or int).
        nonempty: refuse an axis of size 0 (an empty batch or sequence), naming its letter.

    Raises:
        TypeError: if ``x`` is not an array (a tuple of inputs where one array belongs is
            named as such) or has the wrong dtype kind.
        ValueError: if the rank or shape differs, or (``nonempty``) an axis is empty.
    """
    if isinstance(x, tuple | list) and x and all(hasattr(a, "shape") for a in x):
        raise TypeError(f"{name} must be an array, got a {type(x).__name__} of {len(x)} "
                        f"array(s): pass a model's inputs unpacked, apply(params, *inputs)")
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
    if nonempty and 0 in x.shape:
        axis = x.shape.index(0)
        names = letters.split()
        which = f" ({names[axis]})" if len(names) == x.ndim else ""
        raise ValueError(f"{name} is empty: axis {axis}{which} of shape {shape_str(x.shape)} "
                         f"has size 0, expected at least 1")
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


# --- values: checked now when concrete, by the compiled program when traced -------------------
#
# Under ``jit`` (and ``vmap``, ``grad``, ``scan``, ``shard_map``) an argument's values are not
# known while tracing. ``jax.debug.callback`` runs a host function on the values when the
# program runs, under every one of those transforms, with nothing for the caller to wrap
# (``checkify`` needs the caller to functionalize the call and throw its error outside ``jit``;
# an unfunctionalized ``checkify.check`` does not trace). The program reduces the array on the
# device (a min and a max) and calls back under ``lax.cond`` only when the values are bad, so
# good calls move nothing to the host; when the callback raises, the runtime error of the
# call carries its message. (Under ``vmap`` the cond becomes a select and the callback runs
# every call, deciding on the host.) A program holding a host callback leaves JAX's C++
# dispatch fast path: 0.5-1 ms more per call of the outermost jitted function on a 2-core
# CPU (jitted transformer lm_tiny apply 117 us -> 873 us at B 8, 2.44 -> 2.91 ms at B 64;
# decode_step 45 us -> 1.08 ms), nothing per scan step inside it. ZOO_TRACED_CHECKS=0 removes
# it where batches are checked at the data boundary.

#: Whether value checks on traced arrays are compiled in (``ZOO_TRACED_CHECKS=0``: not).
TRACED_CHECKS = os.environ.get("ZOO_TRACED_CHECKS", "1") != "0"


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _report(report, bad, *values) -> None:
    """Calls ``report`` on ``values`` now if they are concrete, else when the program runs and
    ``bad`` holds (a concrete array reduced inside a trace gives traced values too)."""
    if any(map(_is_traced, (bad,) + values)):
        if TRACED_CHECKS:
            jax.lax.cond(bad, lambda: jax.debug.callback(report, *values), lambda: None)
    else:
        report(*(np.asarray(v) for v in jax.device_get(values)))


def in_range(x, name: str, low: int, high: int, *, what: str = "values",
             hint: str = "") -> None:
    """Raises ``ValueError`` unless every value of ``x`` lies in ``[low, high]`` (inclusive).

    Concrete ``x`` is checked now; a traced one when the compiled program runs (the error
    then reaches the caller as a ``jax.errors.JaxRuntimeError`` whose message is this one).
    An empty ``x`` passes (emptiness is :func:`check_array`'s ``nonempty``).

    Args:
        x: an integer or float array (a tracer works).
        name: the argument, for the message (``"tokens"``).
        low, high: the allowed range, both ends included.
        what: what the values are (``"token ids"``), for the message.
        hint: a sentence appended to the message (what the range comes from, a fix).

    >>> in_range(np.array([0, 3]), "tokens", 0, 3, what="token ids")
    >>> in_range(np.array([0, 4]), "tokens", 0, 3, what="token ids", hint="vocab_size is 4.")
    Traceback (most recent call last):
    ...
    ValueError: tokens must hold token ids in [0, 3], got values from 0 to 4. vocab_size is 4.
    """
    if np.size(x) == 0:
        return
    report = functools.partial(_raise_outside, name, low, high, what, hint)
    if isinstance(x, np.ndarray | np.generic | int | float):
        report(np.min(x), np.max(x))
    else:
        lo, hi = jnp.min(x), jnp.max(x)
        _report(report, (lo < low) | (hi > high), lo, hi)


def _raise_outside(name, low, high, what, hint, lo, hi):
    lo, hi = np.min(lo), np.max(hi)        # under vmap: one per batch element
    if lo < low or hi > high:
        got = f"{lo.item()!r} to {hi.item()!r}"
        raise ValueError(f"{name} must hold {what} in [{low}, {high}], got values from {got}."
                         + (f" {hint}" if hint else ""))


def one_of_values(x, name: str, allowed: Sequence[float], *, hint: str = "") -> None:
    """Raises ``ValueError`` unless every value of ``x`` is one of ``allowed`` (e.g. labels
    in {0, 1}); concrete now, traced when the program runs, as :func:`in_range`.

    >>> one_of_values(np.array([1.0, -1.0]), "y", (0, 1))
    Traceback (most recent call last):
    ...
    ValueError: y must hold values in {0, 1}, got -1.0 (and 1 value(s) outside in all).
    """
    if np.size(x) == 0:
        return
    report = functools.partial(_raise_not_in, name, tuple(allowed), hint)
    bad = functools.reduce(lambda acc, a: acc & (x != a), allowed, jnp.ones(jnp.shape(x), bool))
    first = jnp.where(bad.any(), jnp.ravel(x)[jnp.argmax(jnp.ravel(bad))], allowed[0])
    _report(report, bad.any(), bad.sum(), first)


def _raise_not_in(name, allowed, hint, count, first):
    if np.ndim(count):                     # under vmap: one per batch element
        first = np.ravel(first)[np.argmax(np.ravel(count) > 0)]
    count = int(np.sum(count))
    if count:
        shown = "{" + ", ".join(str(a) for a in allowed) + "}"
        raise ValueError(f"{name} must hold values in {shown}, got {np.asarray(first).item()!r}"
                         f" (and {count} value(s) outside in all)." + (f" {hint}" if hint else ""))


def less_than(value, name: str, limit: int, *, hint: str = "") -> None:
    """Raises ``ValueError`` unless the integer scalar ``value < limit`` (a cache index below
    its length, say); concrete now, traced when the program runs, as :func:`in_range`.

    >>> less_than(np.int32(6), "cache.index", 6, hint="The cache is full.")
    Traceback (most recent call last):
    ...
    ValueError: cache.index must be < 6, got 6. The cache is full.
    """
    value = jnp.max(value)
    _report(functools.partial(_raise_not_less, name, limit, hint), value >= limit, value)


def _raise_not_less(name, limit, hint, value):
    value = np.max(value)
    if value >= limit:
        raise ValueError(f"{name} must be < {limit}, got {value.item()!r}."
                         + (f" {hint}" if hint else ""))


# --- structure --------------------------------------------------------------------------------

def same_batch(**arrays) -> None:
    """Raises ``ValueError`` unless every named array has the same leading (batch) size.

    >>> same_batch(src=np.zeros((2, 5)), tgt_in=np.zeros((3, 4)))
    Traceback (most recent call last):
    ...
    ValueError: src and tgt_in must have the same batch size (axis 0): src has shape (2, 5), tgt_in has shape (3, 4)
    """
    sizes = {name: np.shape(a) for name, a in arrays.items()}
    if len({s[0] for s in sizes.values()}) > 1:
        names = " and ".join(sizes)
        shapes = ", ".join(f"{n} has shape {shape_str(s)}" for n, s in sizes.items())
        raise ValueError(f"{names} must have the same batch size (axis 0): {shapes}")


def inputs_tuple(inputs, name: str, count: int, what: str) -> tuple:
    """Returns ``inputs`` as a tuple of ``count`` inputs, or raises naming ``name``.

    Args:
        inputs: what a ``loss`` or trainer received as the model's inputs.
        name: the argument (``"inputs"``).
        count: how many inputs the model takes.
        what: the inputs spelled out (``"(src, src_lengths, tgt_in)"``).

    Raises:
        TypeError: a bare array (or anything not a tuple or list) was passed.
        ValueError: a tuple of another length.

    >>> inputs_tuple(np.zeros((2, 3)), "inputs", 1, "(x,)")
    Traceback (most recent call last):
    ...
    TypeError: inputs must be a tuple (x,) of 1 array(s), got a bare ndarray of shape (2, 3): wrap it as (x,)
    """
    if not isinstance(inputs, tuple | list):
        shape = f" of shape {shape_str(inputs.shape)}" if hasattr(inputs, "shape") else ""
        raise TypeError(f"{name} must be a tuple {what} of {count} array(s), got a bare "
                        f"{type(inputs).__name__}{shape}: wrap it as (x,)" if count == 1 else
                        f"{name} must be a tuple {what} of {count} arrays, got a bare "
                        f"{type(inputs).__name__}{shape}")
    if len(inputs) != count:
        raise ValueError(f"{name} must be a tuple {what} of {count} array(s), got {len(inputs)}")
    return tuple(inputs)


def boolean(value, name: str) -> None:
    """Raises ``ValueError`` unless ``value`` is a bool (``"no"``, 0 or 1 are refused: a
    non-empty string is truthy).

    >>> boolean("no", "causal")
    Traceback (most recent call last):
    ...
    ValueError: causal must be a bool (True or False), got 'no' (str)
    """
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be a bool (True or False), got {value!r} "
                         f"({type(value).__name__})")


@functools.lru_cache(maxsize=128)
def _param_shapes(init: Callable, cfg) -> dict:
    shapes = jax.eval_shape(lambda: init(jax.random.key(0), cfg))
    return {jax.tree_util.keystr(path): leaf.shape
            for path, leaf in jax.tree_util.tree_leaves_with_path(shapes)}


def check_params(params, init: Callable, cfg, name: str = "params") -> None:
    """Raises ``ValueError`` unless ``params`` has the tree and shapes ``init(key, cfg)``
    makes; the message names the first differing parameter and both shapes.

    Only shapes are compared (params of any float dtype, tracers included, pass). The
    expected shapes are computed once per config, abstractly.

    >>> from zoo import mlp
    >>> small, wide = mlp.PRESETS["xor"], mlp.Config(in_dim=2, hidden_dims=(9,), out_dim=2)
    >>> check_params(mlp.init(jax.random.key(0), small), mlp.init, wide)
    Traceback (most recent call last):
    ...
    ValueError: params['dense_0']['b'] has shape (8), but the config expects (9): were the params made for another config?
    """
    want = _param_shapes(init, cfg)
    try:
        flat = jax.tree_util.tree_leaves_with_path(params)
    except Exception:                     # noqa: BLE001 - an unflattenable object
        flat = []
    got = {jax.tree_util.keystr(path): np.shape(leaf) for path, leaf in flat}
    missing = [p for p in want if p not in got]
    extra = [p for p in got if p not in want]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks {name}{missing[0]} (shape {shape_str(want[missing[0]])})"
                         + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
        if extra:
            parts.append(f"has {name}{extra[0]}, which the config does not make"
                         + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
        raise ValueError(f"{name} is not the tree this config's init makes: it "
                         f"{' and '.join(parts)}; were the params made for another config "
                         f"or model?")
    for path, shape in want.items():
        if tuple(got[path]) != tuple(shape):
            raise ValueError(f"{name}{path} has shape {shape_str(got[path])}, but the config "
                             f"expects {shape_str(shape)}: were the params made for another "
                             f"config?")


def sequence_lengths(lengths, b: int, t: int):
    """Checks ``lengths`` for a ``[B, T, ...]`` batch of sequences: ``None`` (all valid),
    ``[B]`` integers in ``[0, T]`` or a ``[B, T]`` bool prefix mask (True on each sequence's
    first steps). Returns the ``[B]`` lengths (``None`` stays ``None``); the ranges are
    checked under ``jit`` too.

    >>> sequence_lengths(np.array([[True, True, False], [True, False, False]]), 2, 3).tolist()
    [2, 1]

    Raises:
        ValueError: a wrong shape, a length outside ``[0, T]``, a mask that is not a prefix
            mask.
        TypeError: lengths that are not integers, a mask that is not bool.
    """
    if lengths is None:
        return None
    if getattr(lengths, "ndim", 1) != 2:
        check_array(lengths, "lengths", shape=(b,), letters="B", kind="int")
        in_range(lengths, "lengths", 0, t, what="valid steps per sequence",
                 hint=f"x has T = {t} steps.")
        return lengths
    check_array(lengths, "lengths (a mask)", shape=(b, t), letters="B T")
    if lengths.dtype != jnp.bool_:
        raise TypeError(f"lengths given as a [B, T] mask must have a bool dtype, got "
                        f"{lengths.dtype}")
    counts = lengths.sum(-1).astype(jnp.int32)
    off = (lengths != (jnp.arange(t)[None] < counts[:, None])).sum()
    in_range(off, "the count of steps off a prefix mask in lengths", 0, 0, what="a value",
             hint="A [B, T] mask passed as lengths must be True on each sequence's first "
                  "steps only.")
    return counts
