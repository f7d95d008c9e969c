"""Measurements behind the complexity table: fitted exponents, sequential operations counted
in the compiled program, and maximum path lengths read off gradients.

Nothing here asserts a theory: each function measures, and the report sets the measurement
beside the paper's claim.
"""

import functools
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
    """Indices of the saturated sizes: passes of at least ``min_time`` (fixed per-call costs
    no longer dominate) that run at one FLOP rate, the largest set of them whose rates agree
    within a factor ``fraction`` (slowest ≥ ``fraction`` · fastest), the larger sizes on a tie.

    Sizes running much slower per FLOP than the rest still pay fixed costs; sizes running
    much faster still fit in a cache the others overflow; either would bend a fit of how cost
    grows with size.

    >>> saturated([1e-5, 1e-3, 2e-3, 4e-3], [1e6, 1e7, 3e7, 8e7], min_time=1e-4)
    [2, 3]
    >>> saturated([1e-3, 2e-3, 8e-3, 1.6e-2, 3.2e-2], [1e7, 2e7, 4e7, 8e7, 1.6e8], min_time=0)
    [2, 3, 4]
    """
    long_enough = [i for i, t in enumerate(times) if t >= min_time]
    rate = {i: flops[i] / times[i] for i in long_enough}
    best = []
    for i in long_enough:                       # each size's rate as the slowest of a set
        group = [j for j in long_enough if rate[i] <= rate[j] <= rate[i] / fraction]
        if (len(group), group) > (len(best), best):
            best = group
    return best


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
    """Recurrent steps between input 0 and output n−1, pulled back one hop at a time.

    ``step(carry, x_t) -> (carry, y_t)`` is one step of a recurrence over ``xs [T, ...]``.
    A cotangent starts at output n−1 and is pulled back through one step's vector-Jacobian
    product per hop, linearised at the forward pass's carries: each hop gives the cotangent
    of that step's input ``x_t`` and of the carry it read. After every hop the carry's
    cotangent is divided by its largest magnitude, so that a product of many contracting
    Jacobians cannot underflow to a false zero (unscaled, 1023 steps of a tanh cell vanish
    even in float64); a cotangent that is zero stays zero, so a step that ignores its carry
    still cuts the path. The answer is the number of carry hops crossed when input 0 is
    reached.

    Raises:
        ValueError: if input 0 does not reach output n−1.

    >>> step = lambda c, x: (jnp.tanh(0.5 * c + x), jnp.tanh(0.5 * c + x))
    >>> recurrent_path_length(step, jnp.zeros(3), jnp.ones((2000, 3)))
    1999
    """
    n = xs.shape[0]
    reached = np.asarray(_reached_inputs(step, carry0, xs))
    if not reached[0]:
        raise ValueError(f"input 0 does not reach output {n - 1}: the pulled-back cotangent "
                         f"is exactly zero after {n - 1 - int(np.argmin(reached[::-1]))} hops")
    return n - 1


@functools.partial(jax.jit, static_argnums=0)
def _reached_inputs(step, carry0, xs):
    """``reached [T]``: whether input ``t``'s cotangent is non-zero, pulled back from the last
    output hop by hop (:func:`recurrent_path_length`)."""
    def forward(carry, x):
        return step(carry, x)[0], carry                  # the carry each step reads

    _, carries = jax.lax.scan(forward, carry0, xs)
    last = jnp.arange(xs.shape[0]) == xs.shape[0] - 1

    def hop(d_carry, inp):
        carry, x, is_last = inp
        (_, y), pull = jax.vjp(step, carry, x)
        d_y = jax.tree.map(lambda a: jnp.full_like(a, is_last), y)
        d_prev, d_x = pull((d_carry, d_y))
        reached = jnp.any(jnp.stack([jnp.any(a != 0) for a in jax.tree.leaves(d_x)]))
        return _renormalise(d_prev), reached

    zeros = jax.tree.map(jnp.zeros_like, carry0)
    return jax.lax.scan(hop, zeros, (carries, xs, last), reverse=True)[1]


def _renormalise(tree):
    """``tree`` divided by its largest magnitude (unchanged when all zero)."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return tree
    top = jnp.max(jnp.stack([jnp.max(jnp.abs(a)) for a in leaves]))
    scale = jnp.where(top > 0, 1.0 / jnp.where(top > 0, top, 1.0), 1.0)
    return jax.tree.map(lambda a: a * scale.astype(a.dtype), tree)


# --- FLOPs XLA can see ------------------------------------------------------------------------

def reported_flops(compiled_text: str, cost: dict | list | None) -> tuple[float | None, str]:
    """XLA's FLOP count of a compiled program where it means something, else why not.

    XLA's cost analysis counts one iteration of a while loop, and nothing inside a custom
    call (cuDNN, cuBLAS-Lt epilogues, Pallas): such programs report 0, ``-0.0`` or a part of
    the work. Returns ``(flops, "")`` for a loop-free program without custom calls and a
    positive count, else ``(None, reason)``.

    >>> import jax, jax.numpy as jnp
    >>> c = jax.jit(lambda a: a @ a).lower(jnp.ones((4, 4))).compile()
    >>> reported_flops(c.as_text(), c.cost_analysis())
    (128.0, '')
    >>> reported_flops('custom_call_target="cudnn$fmha"', {"flops": -0.0})
    (None, 'not reported: XLA does not count inside custom calls')
    """
    cost = cost[0] if isinstance(cost, list) and cost else cost
    flops = float(cost["flops"]) if cost and "flops" in cost else None
    if "custom_call_target" in compiled_text:
        return None, "not reported: XLA does not count inside custom calls"
    if _WHILE.search(compiled_text):
        return None, "not reported: XLA counts one iteration of a while loop"
    if flops is None or not flops > 0:
        return None, "not reported: XLA's cost analysis gave no positive count"
    return flops, ""
