"""Measurements behind the complexity table: fitted exponents, sequential operations counted
in the compiled program, and maximum path lengths read off gradients.

Nothing here asserts a theory: each function measures, and the report sets the measurement
beside the paper's claim.
"""

import math
import re
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


# --- scaling exponents ------------------------------------------------------------------------

def fit_exponent(sizes: Sequence[float], costs: Sequence[float]) -> dict:
    """Least-squares slope of log(cost) against log(size), with its standard error.

    cost ≈ c · size^p  ⇒  log cost = log c + p log size.

    Returns:
        ``{"exponent": p, "stderr": σ_p, "points": m}``; ``stderr`` is NaN for two points.

    >>> r = fit_exponent([8, 16, 32, 64], [3 * n ** 2 for n in [8, 16, 32, 64]])
    >>> round(r["exponent"], 6), r["points"]
    (2.0, 4)
    """
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(costs, float))
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError(f"fit_exponent needs at least two distinct sizes, got {list(sizes)}")
    design = np.stack([x, np.ones_like(x)], 1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = len(x) - 2
    if dof > 0:
        sigma2 = float(resid @ resid) / dof
        stderr = math.sqrt(sigma2 / float(((x - x.mean()) ** 2).sum()))
    else:
        stderr = float("nan")
    return {"exponent": float(coef[0]), "stderr": stderr, "points": len(x)}


def saturated(times: Sequence[float], flops: Sequence[float], *, min_time: float,
              fraction: float = 0.7) -> list[int]:
    """Indices of the saturated sizes: a pass of at least ``min_time`` (fixed per-call costs
    no longer dominate) and, among those, a FLOP rate at least ``fraction`` of their best
    (the device runs near its plateau for the layer).

    >>> saturated([1e-5, 1e-3, 2e-3, 4e-3], [1e6, 1e7, 3e7, 8e7], min_time=1e-4)
    [2, 3]
    """
    long_enough = [i for i, t in enumerate(times) if t >= min_time]
    best = max((flops[i] / times[i] for i in long_enough), default=0.0)
    return [i for i in long_enough if flops[i] / times[i] >= fraction * best]


# --- sequential operations --------------------------------------------------------------------

_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->.*\{\s*$")
_WHILE = re.compile(r"\bwhile\(.*?body=%?([\w.\-]+)")
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_CALLS = re.compile(r"(?:to_apply|calls|body|condition|branch_computations)=\{?%?([\w.\-, %]+)\}?")


def sequential_operations(compiled_text: str) -> int | None:
    """Longest chain of loop iterations in a compiled HLO module.

    Each ``while`` contributes its known trip count times the sequential operations of its
    body; loops in sequence take the maximum, nested loops multiply. A program with no loop
    counts 1. Returns ``None`` when a loop's trip count is unknown to XLA.

    >>> import jax, jax.numpy as jnp
    >>> f = lambda x: jax.lax.scan(lambda c, t: (c * t, c), 1.0, x)[1]
    >>> sequential_operations(jax.jit(f).lower(jnp.ones(23)).compile().as_text())
    23
    """
    comps, entry, current = {}, None, None
    for line in compiled_text.splitlines():
        m = _COMPUTATION.match(line.strip())
        if m:
            current = m.group(1)
            comps[current] = []
            if line.lstrip().startswith("ENTRY"):
                entry = current
            continue
        if current is not None:
            comps[current].append(line)
    if entry is None:
        raise ValueError("no ENTRY computation in the HLO text")

    memo: dict[str, int | None] = {}

    def count(name: str, depth: int = 0) -> int | None:
        if name in memo:
            return memo[name]
        if depth > 64 or name not in comps:
            return 1
        best = 1
        for line in comps[name]:
            w = _WHILE.search(line)
            if w:
                trip = _TRIP.search(line)
                inner = count(w.group(1), depth + 1)
                if trip is None or inner is None:
                    memo[name] = None
                    return None
                best = max(best, int(trip.group(1)) * inner)
                continue
            for callee in _callees(line):
                inner = count(callee, depth + 1)
                if inner is None:
                    memo[name] = None
                    return None
                best = max(best, inner)
        memo[name] = best
        return best

    return count(entry)


def _callees(line: str) -> list[str]:
    names = []
    for m in _CALLS.finditer(line):
        names += [n.strip().lstrip("%") for n in m.group(1).split(",") if n.strip()]
    return names


def count_sequential(fn: Callable, *args) -> int | None:
    """:func:`sequential_operations` of ``jax.jit(fn)`` compiled for ``args``."""
    return sequential_operations(jax.jit(fn).lower(*args).compile().as_text())


# --- maximum path length ----------------------------------------------------------------------

def path_length(layer: Callable, x: jax.Array, *, max_layers: int = 4096) -> int:
    """Layers a signal needs to travel from input position 0 to output position n−1.

    ``layer`` maps ``[T, D] → [T, D]`` (one layer of a stack of identical layers). Starting
    from a cotangent that is 1 at output position ``n−1``, the vector-Jacobian product is
    pulled back through one layer at a time (linearised at ``x``, with the layer's fixed random
    weights); after ``ℓ`` pulls its non-zero positions are exactly the inputs that an
    ``ℓ``-layer stack's last output depends on. The answer is the first ``ℓ`` at which
    position 0 is reached. After each pull the vector is reset to the indicator of its support,
    so products of many small Jacobian entries cannot underflow to a false zero.

    >>> shift = lambda x: x + jnp.roll(x, 1, axis=0).at[0].set(0)   # sees one step back
    >>> path_length(shift, jnp.ones((10, 2)))
    9
    """
    pull = jax.jit(lambda x, v: (jax.vjp(layer, x)[1](v)[0] != 0).astype(v.dtype))
    v = jnp.zeros_like(x).at[-1].set(1.0)
    for depth in range(1, max_layers + 1):
        v = pull(x, v)
        if bool(jnp.any(v[0] != 0)):
            return depth
    raise ValueError(f"position 0 not reached after {max_layers} layers")


def recurrent_path_length(step: Callable, carry0, xs: jax.Array) -> int:
    """Recurrent steps between input 0 and output n−1, measured by truncating backprop.

    ``step(carry, x_t) -> (carry, y_t)`` is one step of a recurrence over ``xs [T, ...]``.
    With gradients allowed through only the last ``m`` carry hops (every earlier carry is cut
    by ``stop_gradient``), output n−1 depends on input 0 only once ``m ≥ n−1``; this finds the
    least such ``m`` by bisection (dependence is monotone in ``m``).

    >>> step = lambda c, x: (jnp.tanh(0.5 * c + x), jnp.tanh(0.5 * c + x))
    >>> recurrent_path_length(step, jnp.zeros(3), jnp.ones((17, 3)))
    16
    """
    with jax.enable_x64(True):
        # float64: gradients through hundreds of contracting steps vanish below float32's range
        xs = xs.astype(jnp.float64)
        carry0 = jax.tree.map(lambda c: jnp.asarray(c, jnp.float64), carry0)
        return _bisect_truncation(step, carry0, xs)


def _bisect_truncation(step, carry0, xs):
    n = xs.shape[0]

    def last_output(x, m):
        def body(carry, inp):
            t, xt = inp
            cut = t <= n - 1 - m
            carry = jax.tree.map(lambda c: jnp.where(cut, jax.lax.stop_gradient(c), c), carry)
            return step(carry, xt)
        _, ys = jax.lax.scan(body, carry0, (jnp.arange(n), x))
        return jnp.sum(ys[-1])

    reaches = jax.jit(lambda m: jnp.any(jax.grad(last_output)(xs, m)[0] != 0))
    lo, hi = 0, n - 1
    if not bool(reaches(hi)):
        raise ValueError("input 0 does not reach output n−1 even without truncation")
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if bool(reaches(mid)) else (mid + 1, hi)
    return lo
