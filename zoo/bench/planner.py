"""Sizes for the Table 1 sweeps, chosen per device from its memory and speed.

A fit of time against size means something only where the device is saturated: each pass
long enough that the fixed cost of a call (dispatch, synchronisation) or of a loop's
iterations is small beside the work that grows with the swept size, and at least three
such sizes per fit. Too large, and the case does not fit in memory or the sweep does not
finish. :func:`plan` finds, for every layer, the batch and fixed size that give the most
saturated sizes within the device's memory and a time cap, using only arithmetic on shapes:

* the time of a pass is bounded below by ``FLOPs / peak`` (no layer runs faster than the
  device's dense matrix product), by ``bytes moved / bandwidth``, by ``steps · step_s`` (a
  loop's iterations run one after another) and ``call_s``, so a size planned to take
  ``min_time`` takes at least that;
* a size is saturated for a fit when the costs that grow with the swept size as the paper's
  row says (FLOPs always; memory traffic, ∝ n·d, where the row is linear in that size; a
  recurrence's steps, ∝ n, in n) take ``min_time``, the fixed ones at most
  :data:`FIXED_SHARE` of that, and traffic that grows otherwise stays under half the FLOPs'
  time (:func:`saturated`);
* memory is each layer's own conservative estimate of its peak bytes (inputs, weights,
  activations kept for the backward pass and, for attention, the ``n²`` scores of the
  explicit path, whichever path runs), kept under :data:`MEMORY_SHARE` of the device.

:func:`measure_device` reads a device's memory and times its matrix product, a loop's step
and an empty call; :class:`Device` can also be stated by hand (tests, a plan for elsewhere).

>>> gpu = Device("H100-like", memory_bytes=80 * 2 ** 30, flops_per_s=400e12)
>>> gpu.memory_bytes // 2 ** 30, f"{gpu.flops_per_s:.0e}"
(80, '4e+14')
"""

import dataclasses
import os
import time
from collections.abc import Mapping
from typing import Protocol

#: Fraction of the device's memory a planned case may use (XLA's temporaries and
#: fragmentation take the rest).
MEMORY_SHARE = 0.6
#: A size is saturated when the costs that do not grow with the swept size (a call; a loop's
#: steps in a d sweep) are at most this share of those that do.
FIXED_SHARE = 0.1
#: Lower bound of a forward+backward pass: this many times the forward FLOPs.
BACKWARD_FACTOR = 3.0
#: Sizes tried: powers of two.
N_GRID = tuple(2 ** k for k in range(4, 18))           # 16 .. 131072
D_GRID = tuple(2 ** k for k in range(6, 15))           # 64 .. 16384
BATCH_GRID = tuple(2 ** k for k in range(0, 14))       # 1 .. 8192


class LayerCost(Protocol):
    """What the planner needs of a Table 1 row (``zoo.bench.table1.Layer`` has it)."""
    n_exponent: int
    d_exponent: int
    def flops(self, b: int, n: int, d: int) -> float: ...
    def traffic(self, b: int, n: int, d: int, itemsize: int) -> float: ...
    def peak_bytes(self, b: int, n: int, d: int, itemsize: int, backward: bool) -> float: ...
    def steps(self, n: int) -> int: ...
    # optional: ``min_n``, the shortest n worth sweeping (default 1)


@dataclasses.dataclass(frozen=True)
class Device:
    """What the planner knows of a device.

    Attributes:
        name: for the report.
        memory_bytes: memory a program may use (GPU/TPU memory, or the host's for a CPU).
        flops_per_s: dense matrix-product rate at the sweep's dtype: no layer runs faster.
        bytes_per_s: memory bandwidth (a large copy's bytes read and written per second).
        step_s: least time of one iteration of a compiled loop.
        call_s: least time of one call of a compiled program, waiting for its result.
        compile_s: typical time to compile one program (only for the time estimate).
    """
    name: str
    memory_bytes: int
    flops_per_s: float
    bytes_per_s: float = 1e12
    step_s: float = 5e-6
    call_s: float = 2e-5
    compile_s: float = 1.0

    def __post_init__(self):
        for field in ("memory_bytes", "flops_per_s", "bytes_per_s"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{field} must be a positive number, got {value!r}")
        for field in ("step_s", "call_s", "compile_s"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{field} must be a number >= 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Where one layer is timed: n swept at batch ``n_batch`` and width ``d``; d swept at
    batch ``d_batch`` and length ``n`` (forward pass only)."""
    n_batch: int
    d: int
    ns: tuple[int, ...]
    d_batch: int
    n: int
    ds: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Everything one Table 1 run measures, and how long it samples.

    Attributes:
        name: ``"quick"``, ``"smoke"``, ``"full"`` or a planned sweep's name.
        sizes: the timed sizes of each layer (by layer name).
        window: ``r`` of the restricted self-attention row.
        crossover_batch, crossover_d, crossover_n: self-attention and the Elman RNN timed at
            every ``(n, d)`` of these (forward), for the crossover table.
        path_n: lengths at which path lengths are probed.
        repeats: timed runs per pass in the first round; rounds: further rounds over all
            sizes; sample_s: each round samples a pass at least this long (more runs);
            min_time: passes shorter than this are left out of time fits.
        peers, peer_repeats: the size set of :mod:`zoo.bench.peers` and its repeats.
    """
    name: str
    sizes: Mapping[str, Sizes]
    window: int
    crossover_batch: int
    crossover_d: tuple[int, ...]
    crossover_n: tuple[int, ...]
    path_n: tuple[int, ...]
    repeats: int = 2
    rounds: int = 3
    sample_s: float = 0.0
    min_time: float = 1e-3
    peers: str = "quick"
    peer_repeats: int = 3

    def layer_sizes(self, name: str) -> Sizes:
        """The sizes of layer ``name``.

        Raises:
            ValueError: naming the layer and the layers this sweep has.
        """
        if name not in self.sizes:
            raise ValueError(f"unknown layer {name!r}; choose from {list(self.sizes)}")
        return self.sizes[name]


# --- the cost model ---------------------------------------------------------------------------

def costs(layer: LayerCost, device: Device, b: int, n: int, d: int,
          itemsize: int = 4) -> dict[str, float]:
    """Least seconds of a forward pass by each bound: ``compute`` (FLOPs at peak),
    ``traffic`` (bytes at the bandwidth), ``loop`` (steps one after another), ``call``."""
    return {"compute": layer.flops(b, n, d) / device.flops_per_s,
            "traffic": layer.traffic(b, n, d, itemsize) / device.bytes_per_s,
            "loop": layer.steps(n) * device.step_s, "call": device.call_s}


def pass_seconds(layer: LayerCost, device: Device, b: int, n: int, d: int,
                 backward: bool = False, itemsize: int = 4) -> float:
    """Least time one pass can take: the largest of its compute, traffic and loop bounds
    (times ``1 + BACKWARD_FACTOR`` with the backward pass), plus one call."""
    c = costs(layer, device, b, n, d, itemsize)
    factor = 1.0 + BACKWARD_FACTOR * backward
    return factor * max(c["compute"], c["traffic"], c["loop"]) + c["call"]


def saturated(layer: LayerCost, device: Device, b: int, n: int, d: int, axis: str,
              min_time: float, itemsize: int = 4) -> bool:
    """Whether the forward pass at ``(b, n, d)`` is in the saturated regime of a sweep over
    ``axis`` (``"n"`` or ``"d"``), in a roofline model: time ``max(compute, traffic)`` plus
    the loop's steps plus the call. The costs that grow with the swept size as the paper's
    row says (FLOPs; traffic where the row is linear in that size; steps in n for a
    recurrence) take at least ``min_time`` even if they overlapped; those that do not (the
    call; the steps in d)
    are at most :data:`FIXED_SHARE` of them; and where traffic does not grow as the row
    says, the FLOPs take at least twice as long as it (compute-bound, with a margin)."""
    if axis not in ("n", "d"):
        raise ValueError(f"axis must be 'n' or 'd', got {axis!r}")
    c = costs(layer, device, b, n, d, itemsize)
    theory = layer.n_exponent if axis == "n" else layer.d_exponent
    traffic_agrees = theory == 1
    loop_agrees = axis == "n" and theory == 1 and layer.steps(2 * n) > layer.steps(n)
    if not traffic_agrees and c["traffic"] > c["compute"] / 2:
        return False
    growing = max(c["compute"], c["traffic"]) + c["loop"] * loop_agrees
    fixed = c["call"] + c["loop"] * (not loop_agrees)
    least = max(c["compute"], c["traffic"], c["loop"])        # what no overlap can hide
    return least >= min_time and fixed <= FIXED_SHARE * growing


def fits(layer: LayerCost, device: Device, b: int, n: int, d: int, itemsize: int,
         backward: bool) -> bool:
    """Whether the case's estimated peak bytes stay under :data:`MEMORY_SHARE` of memory."""
    return layer.peak_bytes(b, n, d, itemsize, backward) <= MEMORY_SHARE * device.memory_bytes


# --- the plan ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Limits:
    """What a plan must respect: ``min_time`` per pass in a fit, ``max_case_s`` (least time of
    the slowest pass), ``sizes`` per fit (at least 3), the sweep's fixed width ``d`` and
    total ``budget_s`` (estimated time of the whole sweep)."""
    min_time: float = 1e-3
    max_case_s: float = 0.25
    sizes: int = 5
    d: int = 256
    budget_s: float = 240.0

    def __post_init__(self):
        if self.sizes < 3:
            raise ValueError(f"sizes must be >= 3 (a fit needs three saturated sizes), got "
                             f"{self.sizes}")


def plan_layer(layer: LayerCost, device: Device, itemsize: int, limits: Limits) -> Sizes:
    """The n and d sweeps of one layer: for each, the batch (and fixed size) giving the most
    saturated sizes, then the least estimated time; the first ``limits.sizes`` of them.

    Raises:
        ValueError: if no batch gives three saturated sizes within memory and the time cap.
    """
    best_n = max(((_saturated_run(layer, device, itemsize, limits, b, None, limits.d), b)
                  for b in BATCH_GRID), key=_preference)
    best_d = max(((_saturated_run(layer, device, itemsize, limits, b, n, None), (b, n))
                  for b in BATCH_GRID for n in N_GRID), key=_preference)
    for ((sizes, _), _), axis in ((best_n, "n"), (best_d, "d")):
        if len(sizes) < 3:
            raise ValueError(
                f"no batch gives 3 saturated sizes of {getattr(layer, 'name', layer)} in "
                f"{axis} on {device.name} ({device.memory_bytes / 2 ** 30:.0f} GiB, "
                f"{device.flops_per_s / 1e12:.3g} TFLOP/s); lower min_time "
                f"({limits.min_time}) or raise max_case_s ({limits.max_case_s})")
    ((ns, _), n_batch), ((ds, _), (d_batch, n)) = best_n, best_d
    return Sizes(n_batch=n_batch, d=limits.d, ns=ns, d_batch=d_batch, n=n, ds=ds)


def _saturated_run(layer, device, itemsize, limits, b, n, d):
    """The first ``limits.sizes`` saturated sizes along the free axis (``n`` or ``d`` is
    None) that fit and stay under the time cap, with their estimated seconds."""
    axis = "n" if n is None else "d"
    backward = axis == "n"                  # the n sweep times forward+backward too
    grid = N_GRID if axis == "n" else D_GRID
    min_n = getattr(layer, "min_n", 1)
    if axis == "n":
        grid = tuple(g for g in grid if g >= min_n)
    elif n < min_n:
        return (), 0.0
    keep = []
    for size in grid:
        nn, dd = (size, d) if axis == "n" else (n, size)
        if not fits(layer, device, b, nn, dd, itemsize, backward):
            break
        if pass_seconds(layer, device, b, nn, dd, backward, itemsize) > limits.max_case_s:
            break
        if saturated(layer, device, b, nn, dd, axis, limits.min_time, itemsize):
            keep.append(size)
        if len(keep) == limits.sizes:
            break
    cost = sum(pass_seconds(layer, device, b, *((s, d) if axis == "n" else (n, s)), backward,
                            itemsize) for s in keep)
    return tuple(keep), cost


def _preference(candidate):
    (sizes, seconds), _ = candidate
    return len(sizes), -seconds


def plan(layers: Mapping[str, LayerCost], device: Device, *, dtype: str = "float32",
         window: int = 64, limits: Limits = Limits(), name: str = "full") -> Sweep:
    """A sweep of ``layers`` for ``device`` (every constraint of the module doc), trimmed
    from the largest sizes down (never under three per fit) while its estimated time, the
    crossover cases' included, exceeds ``limits.budget_s``.

    >>> from zoo.bench import table1
    >>> gpu = Device("H100-like", memory_bytes=80 * 2 ** 30, flops_per_s=400e12)
    >>> sweep = plan(table1.table(64), gpu)
    >>> all(len(s.ns) >= 3 and len(s.ds) >= 3 for s in sweep.sizes.values())
    True
    """
    itemsize = _itemsize(dtype)
    sizes = {name_: plan_layer(layer, device, itemsize, limits)
             for name_, layer in layers.items()}
    batch = 16
    pair = [k for k in ("self-attention", "recurrent-elman") if k in layers]

    def crossover_ns(d):
        return {n for n in N_GRID[2:9] if all(
            fits(layers[k], device, batch, n, d, itemsize, False)
            and pass_seconds(layers[k], device, batch, n, d, itemsize=itemsize)
            <= limits.max_case_s for k in pair)}
    cross_d = tuple(d for d in (64, 256, 1024) if len(crossover_ns(d)) >= 3)
    cross_n = tuple(sorted(set.intersection(*map(crossover_ns, cross_d)))) if cross_d else ()
    cross_s = sum(device.compile_s + 4 * pass_seconds(layers[k], device, batch, n, d)
                  for k in pair for d in cross_d for n in cross_n)
    while estimate_seconds(layers, device, sizes) + cross_s > limits.budget_s:
        trimmable = [k for k, s in sizes.items() if len(s.ns) > 3 or len(s.ds) > 3]
        if not trimmable:
            break
        longest = max(trimmable, key=lambda k: _layer_seconds(layers[k], device, sizes[k]))
        s = sizes[longest]
        sizes[longest] = (dataclasses.replace(s, ns=s.ns[:-1]) if len(s.ns) >= len(s.ds)
                          else dataclasses.replace(s, ds=s.ds[:-1]))
    return Sweep(name=name, sizes=sizes, window=window, crossover_batch=batch,
                 crossover_d=cross_d, crossover_n=cross_n, path_n=(16, 64, 256, 1024),
                 repeats=3, rounds=3, sample_s=0.05, min_time=limits.min_time,
                 peers="full", peer_repeats=5)


def estimate_seconds(layers: Mapping[str, LayerCost], device: Device,
                     sizes: Mapping[str, Sizes], samples: int = 8) -> float:
    """Estimated time of the timed sweeps: per case one or two compiles and ``samples`` runs
    of each pass at its least time."""
    return sum(_layer_seconds(layers[k], device, s, samples) for k, s in sizes.items())


def _layer_seconds(layer, device, s: Sizes, samples: int = 8) -> float:
    n_sweep = sum(2 * device.compile_s + samples * (
        pass_seconds(layer, device, s.n_batch, n, s.d)
        + pass_seconds(layer, device, s.n_batch, n, s.d, backward=True)) for n in s.ns)
    d_sweep = sum(device.compile_s + samples * pass_seconds(layer, device, s.d_batch, s.n, d)
                  for d in s.ds)
    return n_sweep + d_sweep


def _itemsize(dtype: str) -> int:
    sizes = {"float32": 4, "bfloat16": 2, "float16": 2}
    if dtype not in sizes:
        raise ValueError(f"dtype must be one of {list(sizes)}, got {dtype!r}")
    return sizes[dtype]


# --- measuring a device -----------------------------------------------------------------------

def measure_device(dtype: str = "float32") -> Device:
    """The default JAX device as the planner sees it: memory from the device's statistics
    (the host's available memory on a CPU), the best of several square products at
    ``dtype``, and the times of a loop's step and of an empty call."""
    import jax
    import jax.numpy as jnp
    from zoo.bench import harness
    dev = jax.devices()[0]
    size = 2048 if dev.platform == "cpu" else 8192
    a, b = harness.random_inputs(0, (size, size), (size, size), dtype=dtype)
    peak = 2 * size ** 3 / harness.time_jax(jnp.matmul, a, b, repeats=5)["min_s"]
    steps = 4096

    def loop(c):
        return jax.lax.fori_loop(0, steps, lambda i, c: jnp.sin(c) + 1.0, c)
    (big,) = harness.random_inputs(1, (2 ** 24 if dev.platform == "cpu" else 2 ** 28,))
    bandwidth = 2 * big.nbytes / harness.time_jax(lambda a: a * 2.0, big, repeats=5)["min_s"]
    x = jnp.ones((8,), jnp.float32)
    step_s = harness.time_jax(loop, x, repeats=5)["min_s"] / steps
    call_s = harness.time_jax(lambda c: c + 1.0, x, repeats=20)["min_s"]
    start = time.perf_counter()
    jax.jit(lambda c: jnp.tanh(c) @ c).lower(jnp.ones((256, 256))).compile()
    compile_s = max(0.2, 4 * (time.perf_counter() - start))
    return Device(name=f"{dev.device_kind} ({dev.platform})", memory_bytes=_memory(dev),
                  flops_per_s=peak, bytes_per_s=bandwidth, step_s=step_s, call_s=call_s,
                  compile_s=compile_s)


def _memory(dev) -> int:
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def describe(sweep: Sweep, device: Device) -> str:
    """One line per layer: the planned batch and sizes."""
    lines = [f"plan for {device.name}: {device.memory_bytes / 2 ** 30:.1f} GiB, "
             f"{device.flops_per_s / 1e12:.3g} TFLOP/s, {device.bytes_per_s / 1e9:.0f} GB/s, "
             f"loop step "
             f"{device.step_s * 1e6:.1f} µs, call {device.call_s * 1e6:.1f} µs"]
    for name, s in sweep.sizes.items():
        lines.append(f"  {name}: n {list(s.ns)} at B {s.n_batch}, d {s.d}; "
                     f"d {list(s.ds)} at B {s.d_batch}, n {s.n}")
    return "\n".join(lines)

