"""Table 1 of "Attention Is All You Need", measured.

For each layer type the paper compares (self-attention, recurrent, convolutional, restricted
self-attention) this suite sweeps the sequence length n and the width d and measures:

* time of the forward pass and of forward+backward (compile time apart; median, min, max);
* FLOPs from the analytic formula of each row, cross-checked against XLA's
  ``cost_analysis()`` where XLA can count (not in programs with loops, where it counts one
  iteration, nor inside custom calls such as cuDNN's: the report says "not reported");
* memory of the compiled program (arguments, outputs, temporaries) and, on accelerators,
  the device's peak bytes in use;
* minimum sequential operations, counted from the compiled program's loop trip counts;
* maximum path length, pulled back through the layer one hop at a time (:mod:`analysis`).

It fits exponents of time and FLOPs in n and d (log-log least squares over the sizes where
the device is saturated), finds where self-attention becomes slower than recurrence for
several d, and times the zoo's layers beside Flax's built-ins and PyTorch's.

Each row is one :class:`Layer`, built from the families' public functions only
(``attention.apply``, ``rnn.apply``, ``cnn.conv``). The self-attention rows have width
``d = heads × 64`` and project from and to a narrow model width :data:`D_IN`, so that their
projections add only ``8·n·D_IN·d`` FLOPs beside the ``4·n²·d`` the paper's row counts.

Run ``python -m zoo.bench.table1`` (``--quick``, the default, is a fixed sweep for a CPU;
``--full`` plans sizes for the device it runs on, :mod:`zoo.bench.planner`; ``--plan``
prints that plan and stops). Results: ``results.jsonl`` (one line per measurement),
``summary.json``, ``report.md`` and log-log PNG plots under ``--out``.

Reference: A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017, Table 1.
https://arxiv.org/abs/1706.03762
"""

import argparse
import dataclasses
import functools
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp

from zoo.bench import analysis, harness, peers, planner, table1_report
from zoo.bench.planner import Sizes, Sweep

KERNEL = 3          # k of the convolutional rows
WINDOW = 16         # r of the restricted row in the quick sweep
HEAD_DIM = 64       # d_k of the attention rows, as in the paper's base model
D_IN = 8            # model width the attention rows project from and to
ROUND_LONGEST_S = 1.0    # passes this long get no more samples in the extra timing rounds
PATH_WIDTH = 8      # d of the path-length probes
#: Keys per query whose scores the planner assumes a self-attention pass holds at once:
#: ``implementation="auto"`` runs memory-efficient kernels (blocks of keys, never the n×n
#: scores; cuDNN's flash attention in 16 bits); 1024 keys is several times their blocks.
SCORE_KEYS = 1024


@dataclasses.dataclass(frozen=True)
class Layer:
    """One row of the table: what the paper claims, how to build and measure the layer, and
    what the planner needs to size it.

    Attributes:
        name, row: the suite's name and the paper's row.
        complexity, sequential, path_length: the paper's three columns, as printed.
        n_exponent, d_exponent: the exponents of n and d in ``complexity``.
        build: ``(seed, b, n, d, dtype) -> (fn, args)``, the timed program.
        count_build: the same layer as a program whose loop trips count its sequential
            operations (a recurrence unrolled by 1; attention through XLA's fused path).
        flops: ``(b, n, d) -> forward FLOPs`` (multiply-adds count 2).
        traffic: ``(b, n, d, itemsize) -> bytes`` a forward pass reads and writes at least.
        peak_bytes: ``(b, n, d, itemsize, backward) -> bytes``, a conservative estimate.
        steps: ``n -> `` iterations of the timed program's loop, for the planner.
        path_theory, sequential_theory: the paper's columns as exact counts at n.
        probe: ``n ->`` the measured maximum path length.
        min_n: shortest n the planner sweeps (where the row's leading term dominates: the
            attention rows' projections are small; a window shorter than the sequence).
    """
    name: str
    row: str
    complexity: str
    sequential: str
    path_length: str
    n_exponent: int
    d_exponent: int
    build: Callable[..., tuple[Callable, tuple]]
    count_build: Callable[..., tuple[Callable, tuple]]
    flops: Callable[[int, int, int], float]
    traffic: Callable[[int, int, int, int], float]
    peak_bytes: Callable[[int, int, int, int, bool], float]
    steps: Callable[[int], int]
    path_theory: Callable[[int], int]
    sequential_theory: Callable[[int], int]
    probe: Callable[[int], int]
    min_n: int = 1


# --- building the layers ----------------------------------------------------------------------

def _attention_config(d, window, dtype, implementation="auto"):
    from zoo import attention
    heads = max(1, d // HEAD_DIM)
    return attention.Config(d_model=D_IN, num_heads=heads, head_dim=d // heads, window=window,
                            implementation=implementation, dtype=dtype)


def _attention(window=None, implementation="auto"):
    def build(seed, b, n, d, dtype="float32"):
        from zoo import attention
        cfg = _attention_config(d, window, dtype, implementation)
        params = _host_params(seed, functools.partial(attention.init, cfg=cfg))
        (x,) = harness.random_inputs(seed + 1, (b, n, D_IN), dtype=dtype)
        return (lambda p, x: attention.apply(p, x, cfg)), (params, x)
    return build


def _recurrent(cell, unroll=None):
    def build(seed, b, n, d, dtype="float32"):
        from zoo import rnn
        cfg = rnn.Config(cell=cell, in_dim=d, hidden_dim=d, output="sequence", dtype=dtype,
                         unroll=unroll)
        params = _host_params(seed, functools.partial(rnn.init, cfg=cfg), bound=d ** -0.5)
        (x,) = harness.random_inputs(seed + 1, (b, n, d), dtype=dtype)
        return (lambda p, x: rnn.apply(p, x, None, cfg)), (params, x)
    return build


def _conv(dilation):
    def build(seed, b, n, d, dtype="float32"):
        from zoo import cnn
        w, x = harness.random_inputs(seed, (KERNEL, d, d), (b, n, d), dtype=dtype)
        w = w / math.sqrt(KERNEL * d)
        return (lambda w, x: cnn.conv(x, w, padding="causal", dilation=dilation)), (w, x)
    return build


def _host_params(seed, init, bound=None):
    """``init``'s tree of shapes filled on the host (no program compiled per shape): each
    leaf from U(−a, a), ``a = bound`` or ``1/√(fan-in)`` with fan-in its size over its last
    axis."""
    rng = harness.host_rng(seed)
    shapes = jax.eval_shape(init, jax.random.key(0))

    def draw(a):
        limit = bound or (a.shape[-1] / max(1, math.prod(a.shape))) ** 0.5
        return jnp.asarray(rng.uniform(-limit, limit, a.shape).astype(a.dtype))
    return jax.tree.map(draw, shapes)


# --- costs ------------------------------------------------------------------------------------

def _attention_flops(window):
    def flops(b, n, d):
        keys = n if window is None else min(n, 2 * window + 1)
        return 4.0 * b * n * keys * d + 8.0 * b * n * D_IN * d
    return flops


def _attention_bytes(window):
    def peak(b, n, d, itemsize, backward):
        heads = max(1, d // HEAD_DIM)
        keys = min(n, SCORE_KEYS if window is None else 3 * max(window, 16))
        acts = b * n * (2 * D_IN + 4 * d) * itemsize
        scores = 2 * b * heads * n * keys * 4          # float32 scores and weights
        return (1 + backward) * (acts + scores) + 3 * 8 * D_IN * d * 4
    return peak


def _attention_traffic(window):
    def traffic(b, n, d, itemsize):
        """Inputs, q, k, v, outputs; a blocked window also writes and reads its scores."""
        heads = max(1, d // HEAD_DIM)
        scores = 0 if window is None else 2 * b * heads * n * min(n, 3 * max(window, 16)) * 4
        return b * n * (2 * D_IN + 4 * d) * itemsize + scores
    return traffic


def _recurrent_traffic(gates):
    def traffic(b, n, d, itemsize):
        return b * n * d * (2 + gates) * itemsize + 2 * gates * d * d * 4
    return traffic


def _conv_traffic(b, n, d, itemsize):
    return 2 * b * n * d * itemsize + KERNEL * d * d * 4


def _recurrent_bytes(gates):
    def peak(b, n, d, itemsize, backward):
        acts = b * n * d * (2 + 2 * gates) * itemsize
        return (1 + 2 * backward) * acts + 3 * 2 * gates * d * d * 4 + b * gates * d * 16
    return peak


def _conv_bytes(b, n, d, itemsize, backward):
    return (1 + 2 * backward) * 2 * b * n * d * itemsize + 3 * KERNEL * d * d * 4


# --- path lengths -----------------------------------------------------------------------------

def _attention_path(window):
    def probe(n):
        from zoo import attention
        cfg = _attention_config(PATH_WIDTH, window, "float32")
        params = _host_params(n, functools.partial(attention.init, cfg=cfg))
        # small inputs keep the softmax near uniform: no weight rounds to an exact zero
        x = 0.1 * jax.random.normal(jax.random.key(n), (n, PATH_WIDTH))
        return analysis.path_length(lambda x: attention.apply(params, x[None], cfg)[0], x,
                                    max_layers=n)
    return probe


def _recurrent_path(cell):
    def probe(n):
        from zoo import rnn
        cfg = rnn.Config(cell=cell, in_dim=PATH_WIDTH, hidden_dim=PATH_WIDTH,
                         output="sequence")
        params = rnn.init(jax.random.key(n), cfg)

        def step(state, x_t):           # one step of the layer, through its public apply
            y, state = rnn.apply(params, x_t[None, None], None, cfg, initial_state=state,
                                 return_state=True)
            return state, y[0, 0]
        xs = jax.random.normal(jax.random.key(n + 1), (n, PATH_WIDTH))
        return analysis.recurrent_path_length(step, rnn.zero_state(1, cfg), xs)
    return probe


def _conv_stack(n, dilations):
    from zoo import cnn
    w = jax.random.normal(jax.random.key(n), (KERNEL, PATH_WIDTH, PATH_WIDTH))
    w = w / math.sqrt(KERNEL * PATH_WIDTH)

    def stack(x):
        h = x[None]
        for dilation in dilations:
            h = jnp.tanh(cnn.conv(h, w, padding="causal", dilation=dilation))
        return h[0]
    return stack


def _conv_path(n):
    x = jax.random.normal(jax.random.key(n + 1), (n, PATH_WIDTH))
    return analysis.path_length(_conv_stack(n, (1,)), x, max_layers=n)


def _dilated_path(n):
    """Layer ℓ of the dilated stack has dilation kˡ, so the stack is not a repeat of one
    layer: the path is the least depth whose whole stack reaches position 0 in one pull."""
    x = jax.random.normal(jax.random.key(n + 1), (n, PATH_WIDTH))
    for depth in range(1, 64):
        stack = _conv_stack(n, tuple(KERNEL ** l for l in range(depth)))
        try:
            if analysis.path_length(stack, x, max_layers=1) == 1:
                return depth
        except ValueError:
            continue
    raise ValueError(f"dilated stack does not reach position 0 of {n}")


def _log_ceil(n, k):
    """Least L with kᴸ >= n (integers only, no rounding of logarithms)."""
    depth = 0
    while k ** depth < n:
        depth += 1
    return depth


# --- the table --------------------------------------------------------------------------------

def table(window: int = WINDOW) -> dict[str, Layer]:
    """The rows of Table 1, with restricted self-attention's window ``r = window``."""
    one = lambda n: 1                                            # noqa: E731

    def attention(name, row, complexity, path_text, n_exponent, r, path_theory, min_n):
        return Layer(name=name, row=row, complexity=complexity, sequential="O(1)",
                     path_length=path_text, n_exponent=n_exponent, d_exponent=1,
                     build=_attention(r), count_build=_attention(r, "xla"),
                     flops=_attention_flops(r), traffic=_attention_traffic(r),
                     peak_bytes=_attention_bytes(r), steps=one, path_theory=path_theory,
                     sequential_theory=one, probe=_attention_path(r), min_n=min_n)

    def recurrent(name, cell, gates):
        return Layer(name=name, row="Recurrent", complexity="O(n·d²)", sequential="O(n)",
                     path_length="O(n)", n_exponent=1, d_exponent=2, build=_recurrent(cell),
                     count_build=_recurrent(cell, unroll=1),
                     flops=lambda b, n, d: 2.0 * b * n * 2 * gates * d * d,
                     traffic=_recurrent_traffic(gates), peak_bytes=_recurrent_bytes(gates),
                     steps=lambda n: n, path_theory=lambda n: n - 1,
                     sequential_theory=lambda n: n, probe=_recurrent_path(cell))

    def conv(name, dilation, path_text, path_theory, probe):
        return Layer(name=name, row="Convolutional", complexity="O(k·n·d²)", sequential="O(1)",
                     path_length=path_text, n_exponent=1, d_exponent=2, build=_conv(dilation),
                     count_build=_conv(dilation),
                     flops=lambda b, n, d: 2.0 * b * n * KERNEL * d * d, traffic=_conv_traffic,
                     peak_bytes=_conv_bytes, steps=one, path_theory=path_theory,
                     sequential_theory=one, probe=probe)

    rows = [
        attention("self-attention", "Self-Attention", "O(n²·d)", "O(1)", 2, None, one,
                  32 * D_IN),
        recurrent("recurrent-elman", "rnn", 1),
        recurrent("recurrent-gru", "gru", 3),
        recurrent("recurrent-lstm", "lstm", 4),
        conv("convolutional", 1, "O(n/k)", lambda n: math.ceil((n - 1) / (KERNEL - 1)),
             _conv_path),
        conv("convolutional-dilated", KERNEL, "O(log_k n)", lambda n: _log_ceil(n, KERNEL),
             _dilated_path),
        attention("restricted-attention", "Self-Attention (restricted)", "O(r·n·d)", "O(n/r)",
                  1, window, lambda n: math.ceil((n - 1) / window), 4 * window),
    ]
    return {layer.name: layer for layer in rows}


LAYERS = table()


def measure_path(name: str, n: int, window: int = WINDOW) -> int:
    """Measured maximum path length between input 0 and output n−1 of layer ``name``."""
    return table(window)[name].probe(n)


# --- the sweeps -------------------------------------------------------------------------------

def _quick() -> Sweep:
    # Sizes that finish in a few minutes on two CPU cores with at least three sizes per fit
    # at or over min_time: the n sweep runs to 4096, where the cheapest rows' forward passes
    # (recurrence, convolution, restricted attention) take a few ms. The d sweep times the
    # forward pass from d = 256, where the layers' products run near the CPU's plateau
    # (self-attention from 512: at 256 its scores still sit in the cache and run faster per
    # FLOP than at every larger d); a recurrent step's product has only the batch as rows, so
    # recurrence is swept in d at a larger batch and shorter n (same b·n). A convolution at
    # d 64 does so little per position that its n sweep runs at batch 32; restricted
    # attention's at batch 64, where its scores overflow the CPU's cache from the shortest n
    # on (at batch 16 they outgrow it within the sweep, and the larger n run slower per FLOP).
    # The Elman step, the cheapest, runs its n sweep to 8192 for three sizes over the floor.
    ns, ds = (256, 512, 1024, 2048, 4096), (256, 512, 1024, 2048)
    base = Sizes(n_batch=16, d=64, ns=ns, d_batch=64, n=64, ds=ds)
    sizes = {name: base for name in LAYERS}
    sizes["self-attention"] = dataclasses.replace(base, ds=(512, 1024, 2048, 4096))
    for name in ("convolutional", "convolutional-dilated"):
        sizes[name] = dataclasses.replace(base, n_batch=32)
    sizes["restricted-attention"] = dataclasses.replace(base, n_batch=64)
    for name in ("recurrent-elman", "recurrent-gru", "recurrent-lstm"):
        sizes[name] = dataclasses.replace(base, d_batch=256, n=16)
    sizes["recurrent-elman"] = dataclasses.replace(sizes["recurrent-elman"],
                                                   ns=(512, 1024, 2048, 4096, 8192))
    return Sweep(name="quick", sizes=sizes, window=WINDOW, crossover_batch=16,
                 crossover_d=(64, 128, 256), crossover_n=(64, 128, 256, 512, 1024),
                 path_n=(16, 64, 256), repeats=2, rounds=3, sample_s=0.04, min_time=2e-3,
                 peers="quick", peer_repeats=3)


def _smoke() -> Sweep:
    base = Sizes(n_batch=2, d=16, ns=(16, 32, 64), d_batch=2, n=32, ds=(8, 16, 32))
    return Sweep(name="smoke", sizes={name: base for name in LAYERS}, window=4,
                 crossover_batch=2, crossover_d=(8,), crossover_n=(16, 32, 64),
                 path_n=(16, 32), repeats=1, rounds=1, sample_s=0.0, min_time=0.0,
                 peers="smoke", peer_repeats=2)


QUICK, SMOKE = _quick(), _smoke()


def planned(dtype: str = "float32", device: planner.Device | None = None,
            window: int = 128) -> tuple[Sweep, planner.Device]:
    """The ``--full`` sweep for ``device`` (by default the default JAX device, measured)."""
    device = device or planner.measure_device(dtype)
    return planner.plan(table(window), device, dtype=dtype, window=window), device


# --- measuring one configuration ---------------------------------------------------------------

def prepare(layer: Layer, b: int, n: int, d: int, *, repeats: int, backward: bool = True,
            dtype: str = "float32", sample_s: float = 0.0) -> tuple[dict, dict, dict]:
    """Builds and compiles one layer at one size, warms it up, records everything but time
    and takes a first round of samples: ``(record, passes, samples)``, ``passes`` mapping
    ``"fwd"`` (and ``"fwdbwd"``) to ``(compiled, args)`` for more :func:`time_round` calls,
    ``samples`` the run times so far, per pass, for :func:`finish`."""
    fn, args = layer.build(n * 7919 + d, b, n, d, dtype)
    args = jax.block_until_ready(jax.device_put(args))
    rec = {"layer": layer.name, "row": layer.row, "batch": b, "n": n, "d": d, "dtype": dtype,
           "flops": layer.flops(b, n, d),
           "planned_peak_bytes": layer.peak_bytes(b, n, d, jnp.dtype(dtype).itemsize,
                                                  backward)}
    fwd = _compiled(fn, args)
    rec["fwd_compile_s"] = fwd["compile_s"]
    rec.update(fwd["memory"])
    rec["sequential_ops_timed_path"] = fwd["sequential"]
    rec["sequential_ops"] = _sequential(layer, n, dtype, fwd["sequential"])
    rec["xla_flops"], rec["xla_flops_note"] = fwd["flops"]
    passes = {"fwd": (fwd["call"], args)}
    if backward:
        def loss(*a):
            return jnp.sum(fn(*a).astype(jnp.float32) ** 2)
        bwd = _compiled(jax.grad(loss, argnums=tuple(range(len(args)))), args)
        rec["fwdbwd_compile_s"] = bwd["compile_s"]
        passes["fwdbwd"] = (bwd["call"], args)
    for compiled, a in passes.values():
        jax.block_until_ready(compiled(*a))                     # warm-up
    rec["peak_bytes_in_use"] = _peak_bytes()
    samples = {p: [] for p in passes}
    time_round(passes, samples, repeats, sample_s)
    return rec, passes, samples


def time_round(passes: dict, samples: dict, repeats: int, sample_s: float = 0.0,
               longest_s: float = math.inf) -> None:
    """Adds ``repeats`` timed runs of each pass to ``samples``, and more while that round's
    runs add up to less than ``sample_s``; passes already sampled that took ``longest_s`` or
    more are left out (a long run is already an average over the machine's bursts)."""
    for key, (compiled, args) in passes.items():
        if samples[key] and min(samples[key]) >= longest_s:
            continue
        t = harness.time_jax(compiled, *args, repeats=repeats, warmup=0, jit=False,
                             min_total_s=sample_s)
        samples[key].extend(t["times"])


def finish(rec: dict, samples: dict) -> dict:
    """The record with each pass's time statistics over all its samples."""
    for key, times in samples.items():
        rec.update({f"{key}_{k}": v for k, v in harness.stats(times).items()})
    return rec


def _sequential(layer, n, dtype, timed):
    """Sequential operations of the layer, as loop trips of a compiled program.

    A timed recurrence unrolls several steps per loop iteration (and nests a loop over steps
    in a loop over chunks), so its steps are counted on the same layer built with
    ``unroll=1``, where each trip is one step. Timed attention may map over blocks or tiles
    (a loop that suits a CPU's cache) where XLA's fused path has none; the minimum over the
    zoo's paths is what the table's column asks for. A loop's trip count depends on n
    alone, so the counting programs are built once per n, at batch 1 and width 64.
    """
    counted = _count(layer.name, layer.count_build, n, dtype)
    if layer.steps(n) > 1 or timed is None:
        return counted
    return min(timed, counted) if counted is not None else timed


@functools.lru_cache(maxsize=None)
def _count(name, build, n, dtype):
    fn, args = build(0, 1, n, HEAD_DIM, dtype)
    return analysis.count_sequential(fn, *args)


def _compiled(fn, args) -> dict:
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    mem = compiled.memory_analysis()
    memory = {} if mem is None else {
        "argument_bytes": int(mem.argument_size_in_bytes),
        "output_bytes": int(mem.output_size_in_bytes),
        "temp_bytes": int(mem.temp_size_in_bytes)}
    text = compiled.as_text()
    return {"call": compiled, "compile_s": compile_s, "memory": memory,
            "sequential": analysis.sequential_operations(text),
            "flops": analysis.reported_flops(text, compiled.cost_analysis())}


def _peak_bytes():
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


# --- the sweep --------------------------------------------------------------------------------

def run(layers: list[str], sweep: Sweep, out: Path, progress: bool = True,
        dtype: str = "float32") -> list[dict]:
    """Measures every job of the sweep. Each timed configuration first gets ``repeats`` runs
    per pass; then ``rounds`` more rounds visit the n and d sweeps' sizes again, one after
    another, so that a burst of other work on a shared machine lands on some samples of
    every size rather than on all samples of a few (fits use the minimum over all rounds)."""
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    results_path.unlink(missing_ok=True)
    env = harness.environment()
    rows = table(sweep.window)
    jobs = _jobs(layers, sweep)
    timed = [j for j in jobs if j[0] in ("n_sweep", "d_sweep")]
    bar = _progress(len(jobs) + sweep.rounds * len(timed), progress)
    records, pending = [], []
    for kind, args in jobs:
        if kind == "path":
            name, n = args
            rec = {"kind": "path", "layer": name, "n": n, "window": sweep.window,
                   "path_length": rows[name].probe(n),
                   "path_theory": rows[name].path_theory(n)}
        else:
            name, b, n, d, backward = args
            rec, passes, samples = prepare(rows[name], b, n, d, repeats=sweep.repeats,
                                           backward=backward, dtype=dtype,
                                           sample_s=sweep.sample_s)
            rec = {"kind": kind, "window": sweep.window, **rec}
            if kind != "crossover":         # ratios only: one round is enough there
                pending.append((rec, passes, samples))
            else:
                finish(rec, samples)
        rec.update(env)
        records.append(rec)
        bar.update(1)
        bar.set_postfix_str(f"{rec['layer']} n={rec['n']}")
    for r in range(sweep.rounds):
        for rec, passes, samples in pending:
            time_round(passes, samples, 1, sweep.sample_s, ROUND_LONGEST_S)
            bar.update(1)
            bar.set_postfix_str(f"round {r + 2}: {rec['layer']} n={rec['n']} d={rec['d']}")
    bar.close()
    for rec, _, samples in pending:
        finish(rec, samples)
    harness.write_jsonl(results_path, records)
    return records


def _jobs(layers: list[str], sweep: Sweep) -> list[tuple[str, tuple]]:
    """``(kind, args)`` per measurement: ``(name, batch, n, d, backward)`` for the timed
    kinds (the d sweep times the forward pass alone), ``(name, n)`` for path lengths.
    Crossover cases that an n sweep already times (same batch, n and d) are not repeated."""
    jobs = []
    for name in layers:
        s = sweep.layer_sizes(name)
        jobs += [("n_sweep", (name, s.n_batch, n, s.d, True)) for n in s.ns]
        jobs += [("d_sweep", (name, s.d_batch, s.n, d, False)) for d in s.ds]
        jobs += [("path", (name, n)) for n in sweep.path_n]
    pair = [l for l in ("self-attention", "recurrent-elman") if l in layers]
    if len(pair) == 2:
        b = sweep.crossover_batch
        for d in sweep.crossover_d:
            for name in pair:
                s = sweep.layer_sizes(name)
                jobs += [("crossover", (name, b, n, d, False)) for n in sweep.crossover_n
                         if not (s.n_batch == b and s.d == d and n in s.ns)]
    return jobs


def _progress(total, enabled):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="table1", disable=not enabled, file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fixed small sweep for a CPU "
                      "(default)")
    mode.add_argument("--full", action="store_true",
                      help="sizes planned for this device from its memory and speed")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (CI)")
    parser.add_argument("--plan", action="store_true",
                        help="with --full: print the planned sizes and stop")
    parser.add_argument("--layers", default=",".join(LAYERS),
                        help=f"comma-separated subset of {','.join(LAYERS)}")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--no-peers", action="store_true",
                        help="skip the comparison with Flax's and PyTorch's layers")
    parser.add_argument("--system-malloc", action="store_true",
                        help="keep the C library's default allocation policy (by default "
                             "freed memory is kept for reuse: harness.keep_freed_memory)")
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    layers = [l.strip() for l in args.layers.split(",") if l.strip()]
    unknown = [l for l in layers if l not in LAYERS]
    if unknown:
        parser.error(f"unknown layers {unknown}; choose from {list(LAYERS)}")
    if not args.system_malloc:
        harness.keep_freed_memory()
    device = None
    if args.full:
        try:
            sweep, device = planned(args.dtype)
        except ValueError as err:           # a device too small for three sizes per fit
            parser.error(str(err))
        print(planner.describe(sweep, device), file=sys.stderr)
        if args.plan:
            return 0
    else:
        sweep = SMOKE if args.smoke else QUICK
    out = args.out or Path("benchmarks/out") / f"table1-{jax.default_backend()}-{sweep.name}"
    start = time.perf_counter()
    records = run(layers, sweep, out, progress=not args.no_progress, dtype=args.dtype)
    summary = table1_report.summarize(records, sweep, table(sweep.window))
    summary["sweep"] = dataclasses.asdict(sweep)
    if device is not None:
        summary["device"] = dataclasses.asdict(device)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    report = table1_report.markdown(summary, records, sweep)
    if device is not None:
        report += ("\n## Planned sizes\n\n`zoo.bench.planner` chose them from the device's "
                   "memory and measured speed:\n\n```\n" + planner.describe(sweep, device)
                   + "\n```\n")
    if not args.no_peers:
        peer_records = peers.run(sweep.peers, repeats=sweep.peer_repeats)
        (out / "peers.jsonl").unlink(missing_ok=True)
        harness.write_jsonl(out / "peers.jsonl", peer_records)
        report += ("\n## The zoo beside Flax and PyTorch\n\nSame sizes, same process, "
                   "interleaved, each timed run right after an untimed run of the same call; "
                   "ratios are zoo time / peer time (below 1: the zoo is faster)."
                   "\n\n" + peers.markdown(peer_records))
    (out / "report.md").write_text(report)
    table1_report.plots(records, summary, out)
    print(report.split("## Where")[0])
    print(f"wrote {out}/report.md, results.jsonl and plots in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
