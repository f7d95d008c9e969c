"""Table 1 of "Attention Is All You Need", measured.

For each layer type the paper compares (self-attention, recurrent, convolutional, restricted
self-attention) this suite sweeps the sequence length n and the width d and measures:

* time of the forward pass and of forward+backward (compile time apart; median, min, max);
* FLOPs from the analytic formula next to each layer, cross-checked against XLA's
  ``cost_analysis()`` where XLA counts correctly (not for programs with loops: XLA counts one
  iteration of a while loop, and the report says so rather than print a wrong number);
* memory of the compiled program (arguments, outputs, temporaries) and, on accelerators,
  the device's peak bytes in use;
* minimum sequential operations, counted from the compiled program's loop trip counts;
* maximum path length, measured from gradients through stacks of the layer.

It fits exponents of time and FLOPs in n and d (log-log least squares over the sizes where
the device is saturated), finds where self-attention becomes slower than recurrence for
several d, and times the zoo's layers beside Flax's built-ins and PyTorch's.

Run ``python -m benchmarks.table1`` (``--quick`` is the default; ``--full`` for
accelerators). Results: ``results.jsonl`` (one line per measurement), ``report.md`` and
log-log PNG plots under ``--out``.

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
import numpy as np

from benchmarks import analysis, harness, peers

KERNEL = 3          # k of the convolutional rows
WINDOW = 16         # r of the restricted row
HEAD_DIM = 64       # d_k of the attention rows, as in the paper's base model
ROUND_LONGEST_S = 1.0    # passes this long get no more samples in the extra timing rounds


@dataclasses.dataclass(frozen=True)
class Layer:
    """One row of the table: how to build the layer and what the paper claims for it."""
    name: str
    row: str                                  # the paper's row
    complexity: str
    sequential: str
    path: str
    flops: Callable[[int, int, int], float]   # (batch, n, d) -> forward FLOPs
    n_exponent: int
    d_exponent: int
    path_theory: Callable[[int], int]
    seq_theory: Callable[[int], int]


def _attention_core(seed, b, n, d, dtype="float32", window=None, implementation="auto"):
    """The attention core at width d split into heads of the paper's d_k = 64 (one head below
    64), so that both its products (∝ n²·d) and its softmax (∝ n²·heads) grow as n²·d."""
    from zoo import attention
    heads = max(1, d // HEAD_DIM)
    shape = (b, n, heads, d // heads)
    q, k, v = harness.random_inputs(seed, shape, shape, shape, dtype=dtype)

    def fn(q, k, v):
        return attention.attend(q, k, v, window=window, implementation=implementation)[0]
    return fn, (q, k, v)


def _recurrent(cell, unroll=None):
    def build(seed, b, n, d, dtype="float32"):
        from zoo import rnn
        cfg = rnn.Config(cell=cell, in_dim=d, hidden_dim=d, output="sequence", dtype=dtype,
                         unroll=unroll)
        # rnn.init's distribution, U(−1/√d, 1/√d), drawn on the host (no compile per shape)
        rng = harness.host_rng(seed)
        shapes = jax.eval_shape(functools.partial(rnn.init, cfg=cfg), jax.random.key(0))
        params = jax.tree.map(lambda a: jnp.asarray(
            rng.uniform(-d ** -0.5, d ** -0.5, a.shape).astype(a.dtype)), shapes)
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


def _restricted_flops(b, n, d):
    from zoo import attention
    blk = max(WINDOW, attention.LOCAL_BLOCK)
    return 4.0 * b * n * 3 * blk * d       # each block of queries against 3 blocks of keys


LAYERS = {
    "self-attention": Layer(
        "self-attention", "Self-Attention", "O(n²·d)", "O(1)", "O(1)",
        lambda b, n, d: 4.0 * b * n * n * d, 2, 1, lambda n: 1, lambda n: 1),
    "recurrent-elman": Layer(
        "recurrent-elman", "Recurrent", "O(n·d²)", "O(n)", "O(n)",
        lambda b, n, d: 2.0 * b * n * 2 * d * d, 1, 2, lambda n: n - 1, lambda n: n),
    "recurrent-gru": Layer(
        "recurrent-gru", "Recurrent", "O(n·d²)", "O(n)", "O(n)",
        lambda b, n, d: 2.0 * b * n * 2 * 3 * d * d, 1, 2, lambda n: n - 1, lambda n: n),
    "recurrent-lstm": Layer(
        "recurrent-lstm", "Recurrent", "O(n·d²)", "O(n)", "O(n)",
        lambda b, n, d: 2.0 * b * n * 2 * 4 * d * d, 1, 2, lambda n: n - 1, lambda n: n),
    "convolutional": Layer(
        "convolutional", "Convolutional", "O(k·n·d²)", "O(1)", "O(n/k)",
        lambda b, n, d: 2.0 * b * n * KERNEL * d * d, 1, 2,
        lambda n: math.ceil((n - 1) / (KERNEL - 1)), lambda n: 1),
    "convolutional-dilated": Layer(
        "convolutional-dilated", "Convolutional", "O(k·n·d²)", "O(1)", "O(log_k n)",
        lambda b, n, d: 2.0 * b * n * KERNEL * d * d, 1, 2,
        lambda n: math.ceil(math.log(n, KERNEL) - 1e-9), lambda n: 1),
    "restricted-attention": Layer(
        "restricted-attention", "Self-Attention (restricted)", "O(r·n·d)", "O(1)", "O(n/r)",
        _restricted_flops, 1, 1, lambda n: math.ceil((n - 1) / WINDOW), lambda n: 1),
}

BUILD = {
    "self-attention": _attention_core,
    "recurrent-elman": _recurrent("rnn"),
    "recurrent-gru": _recurrent("gru"),
    "recurrent-lstm": _recurrent("lstm"),
    "convolutional": _conv(1),
    "convolutional-dilated": _conv(KERNEL),     # one layer of the dilated stack
    "restricted-attention": lambda *a, **kw: _attention_core(*a, **kw, window=WINDOW),
}

SWEEPS = {
    # quick: sizes that finish in a few minutes on two CPU cores. The d sweep times the
    # forward pass from d = 256, where the layers' products run near the CPU's plateau; a
    # recurrent step's product has only the batch as rows, so recurrence is swept in d at a
    # larger batch and shorter n (same b·n, same FLOPs as the other layers' shape). A
    # convolution at d 64 does so little per position that its n sweep runs at batch 32,
    # or its shorter sizes would finish under min_time.
    "quick": dict(batch=16, d_fixed=64, n_sweep=(128, 256, 512, 1024, 2048),
                  n_batch={"Convolutional": 32},
                  d_batch=64, n_fixed=64, d_sweep=(256, 512, 1024, 2048),
                  d_shapes={"Recurrent": (256, 16)},
                  crossover_d=(64, 128, 256),
                  crossover_n=(64, 128, 256, 512, 1024), path_n=(16, 64, 256),
                  repeats=2, rounds=3, sample_s=0.04, min_time=2e-3, peers="quick",
                  peer_repeats=3),
    "full": dict(batch=16, d_fixed=256, n_sweep=(256, 512, 1024, 2048, 4096, 8192, 16384),
                 n_fixed=1024, d_sweep=(128, 256, 512, 1024, 2048),
                 d_shapes={"Recurrent": (1024, 64)},
                 crossover_d=(128, 256, 512, 1024),
                 crossover_n=(64, 128, 256, 512, 1024, 2048, 4096, 8192),
                 path_n=(16, 64, 256, 1024), repeats=3, rounds=5, sample_s=0.2,
                 min_time=5e-4, peer_repeats=10,
                 peers="full"),
}


# --- measuring one configuration ---------------------------------------------------------------

def prepare(name: str, b: int, n: int, d: int, *, repeats: int, backward: bool = True,
            dtype: str = "float32", sample_s: float = 0.0) -> tuple[dict, dict, dict]:
    """Builds and compiles one layer at one size, warms it up, records everything but time
    and takes a first round of samples: ``(record, passes, samples)``, ``passes`` mapping
    ``"fwd"`` (and ``"fwdbwd"``) to ``(compiled, args)`` for more :func:`time_round` calls,
    ``samples`` the run times so far, per pass, for :func:`finish`."""
    layer = LAYERS[name]
    fn, args = BUILD[name](n * 7919 + d, b, n, d, dtype)
    args = jax.block_until_ready(jax.device_put(args))
    rec = {"layer": name, "row": layer.row, "batch": b, "n": n, "d": d, "dtype": dtype,
           "flops": layer.flops(b, n, d)}
    fwd = _compiled(fn, args)
    rec["fwd_compile_s"] = fwd["compile_s"]
    rec.update(fwd["memory"])
    rec["sequential_ops_timed_path"] = fwd["sequential"]
    rec["sequential_ops"] = _sequential(name, b, n, d, dtype, fwd["sequential"])
    rec["xla_flops"] = fwd["flops"] if fwd["sequential"] == 1 else None
    rec["xla_flops_note"] = ("" if fwd["sequential"] == 1 else
                             "not reported: XLA counts one iteration of a while loop")
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
        rec.update(_prefixed(key + "_", harness.stats(times)))
    return rec


def _sequential(name, b, n, d, dtype, timed):
    """Sequential operations of the layer, as loop trips of a compiled program.

    The timed recurrent layers unroll several steps per loop iteration (and nest a loop over
    steps in a loop over chunks), so their steps are counted on the same layer built with
    ``unroll=1``, where each trip is one step. The timed attention paths on CPU map over
    independent blocks or tiles under ``lax.map`` (a loop, fast for the cache); the same
    layer through XLA's fused attention has no loop, and the minimum over the zoo's paths is
    what the table's column asks for. A loop's trip count depends on n alone, so these
    second programs are built once per n, at batch 1 and width 64.
    """
    if name.startswith("recurrent"):
        return _recurrent_steps(name, n, dtype)
    if not name.endswith("attention"):
        return timed
    return min(timed, _attention_loops(name, n, dtype))


@functools.lru_cache(maxsize=None)
def _recurrent_steps(name, n, dtype):
    cell = {"recurrent-elman": "rnn", "recurrent-gru": "gru", "recurrent-lstm": "lstm"}[name]
    fn, args = _recurrent(cell, unroll=1)(0, 1, n, HEAD_DIM, dtype)
    return analysis.count_sequential(fn, *args)


@functools.lru_cache(maxsize=None)
def _attention_loops(name, n, dtype):
    window = WINDOW if name == "restricted-attention" else None
    fn, args = _attention_core(0, 1, n, HEAD_DIM, dtype, window=window,
                               implementation="xla")
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
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) and cost else cost
    return {"call": compiled, "compile_s": compile_s, "memory": memory,
            "sequential": analysis.sequential_operations(compiled.as_text()),
            "flops": float(cost["flops"]) if cost and "flops" in cost else None}


def _prefixed(prefix, d):
    return {prefix + k: v for k, v in d.items() if k != "compile_s"}


def _peak_bytes():
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


# --- path lengths -----------------------------------------------------------------------------

def measure_path(name: str, n: int, d: int = 8) -> int:
    """Maximum path length between input 0 and output n−1 for a stack of ``name`` layers."""
    key = jax.random.key(n)
    if name.startswith("recurrent"):
        return _recurrent_path(name, n, d, key)
    if name == "convolutional-dilated":
        return _dilated_path(n, d, key)
    fn, args = BUILD[name](n, 1, n, d)
    if name.endswith("attention"):
        layer = lambda x: fn(x[None, :, None], x[None, :, None], x[None, :, None])[0, :, 0]
    else:
        layer = lambda x: jnp.tanh(fn(args[0], x[None])[0])
    return analysis.path_length(layer, jax.random.normal(key, (n, d)))


def _recurrent_path(name, n, d, key):
    from zoo import rnn
    cell = {"recurrent-elman": "rnn", "recurrent-gru": "gru", "recurrent-lstm": "lstm"}[name]
    cfg = rnn.Config(cell=cell, in_dim=d, hidden_dim=d)
    p = rnn.init(key, cfg)["layer_0"]["fwd"]
    zeros = jnp.zeros((1, d))
    carry0 = rnn.State(zeros, zeros if cell == "lstm" else None)

    def step(carry, x_t):
        new = rnn.CELLS[cell](p, carry, x_t[None])
        return new, new.h
    xs = jax.random.normal(jax.random.fold_in(key, 1), (n, d))
    return analysis.recurrent_path_length(step, carry0, xs)


def _dilated_path(n, d, key):
    from zoo import cnn
    w = jax.random.normal(key, (KERNEL, d, d)) / math.sqrt(KERNEL * d)
    x = jax.random.normal(jax.random.fold_in(key, 1), (n, d))
    for depth in range(1, 64):
        def stack(x, depth=depth):
            h = x[None]
            for l in range(depth):
                h = jnp.tanh(cnn.conv(h, w, padding="causal", dilation=KERNEL ** l))
            return h[0]
        try:
            if analysis.path_length(stack, x, max_layers=1) == 1:
                return depth
        except ValueError:
            continue
    raise ValueError(f"dilated stack does not reach position 0 of {n}")


# --- the sweep and the report -------------------------------------------------------------------

def run(layers, sweep: dict, out: Path, progress: bool = True,
        dtype: str = "float32") -> list[dict]:
    """Measures every job of the sweep. Each timed configuration first gets ``repeats`` runs
    per pass; then ``rounds`` more rounds visit the n and d sweeps' sizes again, one after
    another, so that a burst of other work on a shared machine lands on some samples of
    every size rather than on all samples of a few (fits use the minimum over all rounds)."""
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    results_path.unlink(missing_ok=True)
    env = harness.environment()
    jobs = _jobs(layers, sweep)
    rounds = sweep.get("rounds", 0)
    timed = [j for j in jobs if j[0] in ("n_sweep", "d_sweep")]
    bar = _progress(len(jobs) + rounds * len(timed), progress)
    records, pending = [], []
    for kind, args in jobs:
        if kind == "path":
            name, n = args
            rec = {"kind": "path", "layer": name, "n": n, "path_length": measure_path(name, n),
                   "path_theory": LAYERS[name].path_theory(n)}
        else:
            name, b, n, d, backward = args
            rec, passes, samples = prepare(name, b, n, d, repeats=sweep["repeats"],
                                           backward=backward, dtype=dtype,
                                           sample_s=sweep.get("sample_s", 0.0))
            rec = {"kind": kind, **rec}
            if kind != "crossover":         # ratios only: one round is enough there
                pending.append((rec, passes, samples))
            else:
                finish(rec, samples)
        rec.update(env)
        records.append(rec)
        bar.update(1)
        bar.set_postfix_str(f"{rec['layer']} n={rec['n']}")
    for r in range(rounds):
        for rec, passes, samples in pending:
            time_round(passes, samples, 1, sweep.get("sample_s", 0.0), ROUND_LONGEST_S)
            bar.update(1)
            bar.set_postfix_str(f"round {r + 2}: {rec['layer']} n={rec['n']} d={rec['d']}")
    bar.close()
    for rec, _, samples in pending:
        finish(rec, samples)
    harness.write_jsonl(results_path, records)
    return records


def _jobs(layers, sweep):
    """``(kind, args)`` per measurement: ``(name, batch, n, d, backward)`` for the timed
    kinds (the d sweep times the forward pass alone; ``n_batch`` and ``d_shapes`` change the
    batch or shape per Table 1 row), ``(name, n)`` for path lengths."""
    jobs = []
    b = sweep["batch"]
    for name in layers:
        db, dn = d_shape(name, sweep)
        nb = sweep.get("n_batch", {}).get(LAYERS[name].row, b)
        jobs += [("n_sweep", (name, nb, n, sweep["d_fixed"], True)) for n in sweep["n_sweep"]]
        jobs += [("d_sweep", (name, db, dn, d, False)) for d in sweep["d_sweep"]]
        jobs += [("path", (name, n)) for n in sweep["path_n"]]
    pair = [l for l in ("self-attention", "recurrent-elman") if l in layers]
    if len(pair) == 2:
        for d in sweep["crossover_d"]:
            if d == sweep["d_fixed"]:
                continue
            jobs += [("crossover", (name, b, n, d, False))
                     for name in pair for n in sweep["crossover_n"]]
    return jobs


def d_shape(name: str, sweep: dict) -> tuple[int, int]:
    """Batch and sequence length at which ``name`` is swept in d: the sweep's ``d_shapes``
    entry for the layer's Table 1 row, else ``(d_batch, n_fixed)``.

    >>> d_shape("recurrent-gru", SWEEPS["quick"]), d_shape("convolutional", SWEEPS["quick"])
    ((256, 16), (64, 64))
    """
    if name not in LAYERS:
        raise ValueError(f"unknown layer {name!r}; choose from {list(LAYERS)}")
    shapes = sweep.get("d_shapes", {})
    return shapes.get(LAYERS[name].row, (sweep.get("d_batch", sweep["batch"]), sweep["n_fixed"]))


def _progress(total, enabled):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="table1", disable=not enabled, file=sys.stderr)


def summarize(records: list[dict], sweep: dict) -> dict:
    """Fitted exponents, sequential operations, path lengths and crossovers per layer."""
    rows = {}
    for name in dict.fromkeys(r["layer"] for r in records):
        layer = LAYERS[name]
        by_n = sorted((r for r in records if r["layer"] == name and r["kind"] == "n_sweep"),
                      key=lambda r: r["n"])
        by_d = sorted((r for r in records if r["layer"] == name and r["kind"] == "d_sweep"),
                      key=lambda r: r["d"])
        paths = sorted((r for r in records if r["layer"] == name and r["kind"] == "path"),
                       key=lambda r: r["n"])
        rows[name] = {
            "layer": name, "row": layer.row, "complexity": layer.complexity,
            "n_theory": layer.n_exponent, "d_theory": layer.d_exponent,
            "flops_n": _fit(by_n, "n", "flops"), "flops_d": _fit(by_d, "d", "flops"),
            "time_n": _fit(by_n, "n", "fwd_min_s", sweep["min_time"]),
            "time_d": _fit(by_d, "d", "fwd_min_s", sweep["min_time"]),
            "time_n_bwd": _fit(by_n, "n", "fwdbwd_min_s", sweep["min_time"]),
            "sequential_theory": layer.sequential,
            "sequential": {r["n"]: r["sequential_ops"] for r in by_n},
            "sequential_expected": {r["n"]: layer.seq_theory(r["n"]) for r in by_n},
            "path_theory": layer.path,
            "path": {r["n"]: r["path_length"] for r in paths},
            "path_expected": {r["n"]: r["path_theory"] for r in paths},
        }
    return {"rows": rows, "crossover": crossovers(records, sweep)}


#: A size counts as saturated when the layer runs there at this fraction of the best FLOP rate
#: it reaches in the same sweep (below it, fixed per-call or per-step costs still dominate).
SATURATION = 0.7


def _fit(recs, size_key, cost_key, min_time=None):
    """Log-log fit of ``cost_key`` against ``size_key``. Time fits (``min_time`` given) keep
    the saturated sizes: those taking at least ``min_time`` and, among them, running at
    least :data:`SATURATION` of their best analytic-FLOP rate; with fewer than three such
    sizes the fit is marked unsaturated (and uses the three fastest-running sizes when fewer
    than two)."""
    pts = [(r[size_key], r[cost_key], r["flops"]) for r in recs if r.get(cost_key)]
    if len(pts) < 2:
        return None
    saturated = True
    if min_time is not None:
        keep = [pts[i] for i in analysis.saturated([p[1] for p in pts], [p[2] for p in pts],
                                                   min_time=min_time, fraction=SATURATION)]
        saturated = len(keep) >= 3
        if len(keep) < 2:
            keep = sorted(pts, key=lambda p: p[2] / p[1])[-3:]
        pts = sorted(keep)
    fit = analysis.fit_exponent([p[0] for p in pts], [p[1] for p in pts])
    fit["sizes"] = [p[0] for p in pts]
    fit["saturated"] = saturated
    return fit


def crossovers(records, sweep) -> list[dict]:
    """For each d, the n at which self-attention's forward time reaches the Elman RNN's."""
    out = []
    ds = sorted({r["d"] for r in records if r["kind"] in ("crossover", "n_sweep")})
    for d in ds:
        att = _times(records, "self-attention", d)
        rec = _times(records, "recurrent-elman", d)
        common = sorted(set(att) & set(rec))
        if len(common) < 2:
            continue
        ratio = [att[n] / rec[n] for n in common]
        out.append({"d": d, "n": common, "attention_over_recurrent": ratio,
                    "crossover_n": _crossing(common, ratio)})
    return out


def _times(records, layer, d):
    return {r["n"]: r["fwd_min_s"] for r in records
            if r["kind"] in ("crossover", "n_sweep") and r["layer"] == layer and r["d"] == d}


def _crossing(ns, ratio):
    """Log-linear interpolation of the n where ratio crosses 1 (None if it never does)."""
    for (n0, r0), (n1, r1) in zip(zip(ns, ratio), zip(ns[1:], ratio[1:])):
        if (r0 - 1) * (r1 - 1) <= 0 and r0 != r1:
            f = math.log(r0) / (math.log(r0) - math.log(r1))
            return float(math.exp(math.log(n0) + f * (math.log(n1) - math.log(n0))))
    return None


def markdown(summary: dict, records: list[dict], sweep_name: str) -> str:
    env = next(iter(records), {})
    lines = [
        "# Table 1 of \"Attention Is All You Need\", measured", "",
        f"Device: {env.get('device_kind')} ({env.get('platform')}, {env.get('device_count')} "
        f"device(s)), host CPU {env.get('cpu')}; jax {env.get('jax')}, zoo {env.get('zoo')}, "
        f"{next((r['dtype'] for r in records if 'dtype' in r), 'float32')}, matmul precision "
        f"{env.get('matmul_precision')}; sweep `{sweep_name}`; host memory allocator: "
        f"{env.get('malloc', 'system default')}.", "",
        "Exponents are least-squares slopes of log cost against log size ± their standard "
        "error, with the theory's exponent and the number of sizes fitted in brackets. Time "
        "fits use the minimum over all samples, taken in rounds that revisit every size in "
        "turn (on a shared machine other work only adds time, and a burst of it lands on "
        "some samples of each size rather than on all samples of a few) "
        f"at the saturated sizes: those whose pass takes at least the sweep's minimum time "
        f"and, among them, runs at least {SATURATION:.0%} of their best FLOP rate (marked † "
        "where fewer than three sizes qualified). The d sweep times the forward pass at the "
        "batch and n listed under Measurements (recurrence at a larger batch: its step's "
        "product has only the batch as rows). "
        "Sequential operations are the loop trip counts of the compiled forward program (for "
        "attention, the minimum over the zoo's paths: XLA's fused path has no loop, the timed "
        "CPU paths map over query blocks or tiles); path lengths are measured from gradients "
        "through stacks of the layer. Unless run with `--system-malloc`, the process keeps "
        "freed memory for reuse (`harness.keep_freed_memory`): by default glibc maps blocks "
        "over 32 MiB afresh on every call, and faulting their pages in again slowed only the "
        "largest sizes.", "",
        "| layer | complexity per layer | FLOPs ∝ n^ | FLOPs ∝ d^ | time ∝ n^ (fwd) | "
        "time ∝ n^ (fwd+bwd) | time ∝ d^ | sequential ops (theory → measured) | "
        "max path length (theory → measured) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["rows"].values():
        lines.append(
            f"| {row['layer']} | {row['complexity']} | {_exp(row['flops_n'], row['n_theory'])} "
            f"| {_exp(row['flops_d'], row['d_theory'])} | {_exp(row['time_n'], row['n_theory'])} "
            f"| {_exp(row['time_n_bwd'], row['n_theory'])} "
            f"| {_exp(row['time_d'], row['d_theory'])} | {row['sequential_theory']} → "
            f"{_pairs(row['sequential'])} | {row['path_theory']} → {_pairs(row['path'])} |")
    lines += ["", "## Where self-attention stops being cheaper than recurrence", "",
              "The paper argues self-attention is faster than a recurrent layer when n < d. "
              "Measured: forward time of the self-attention core over that of the Elman RNN "
              "layer at the same n and d (< 1: attention faster).", "",
              "| d | " + " | ".join(f"n={n}" for n in _all_n(summary["crossover"]))
              + " | crossover n |", "|---|" + "---|" * (len(_all_n(summary["crossover"])) + 1)]
    for c in summary["crossover"]:
        cells = dict(zip(c["n"], c["attention_over_recurrent"]))
        ratios = " | ".join(f"{cells[n]:.2f}" if n in cells else ""
                            for n in _all_n(summary["crossover"]))
        cross = f"{c['crossover_n']:.0f}" if c["crossover_n"] else "none"
        lines.append(f"| {c['d']} | {ratios} | {cross} |")
    lines += ["", "## Measurements", "",
              "| layer | B | n | d | fwd median ms (min–max) | fwd+bwd min ms | compile s | "
              "analytic GFLOP | XLA GFLOP | temp MiB | seq ops |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        if r["kind"] not in ("n_sweep", "d_sweep"):
            continue
        xla = f"{r['xla_flops'] / 1e9:.3f}" if r.get("xla_flops") else "—"
        lines.append(
            f"| {r['layer']} | {r['batch']} | {r['n']} | {r['d']} | {r['fwd_median_s'] * 1e3:.2f} "
            f"({r['fwd_min_s'] * 1e3:.2f}–{r['fwd_max_s'] * 1e3:.2f}) | "
            f"{_ms(r.get('fwdbwd_min_s'))} | {r['fwd_compile_s']:.2f} | "
            f"{r['flops'] / 1e9:.3f} | {xla} | {r.get('temp_bytes', 0) / 2 ** 20:.1f} | "
            f"{r['sequential_ops']} |")
    lines += ["", "XLA GFLOP is blank (—) for programs with loops: XLA's cost analysis counts one "
              "iteration of a while loop."]
    return "\n".join(lines) + "\n"


def _ms(seconds):
    return "—" if seconds is None else f"{seconds * 1e3:.2f}"


def _exp(fit, theory):
    if fit is None:
        return "—"
    mark = "" if fit.get("saturated", True) else "†"
    err = "" if math.isnan(fit["stderr"]) else f" ± {fit['stderr']:.2f}"
    return f"{fit['exponent']:.2f}{err}{mark} ({theory}; {fit['points']} sizes)"


def _pairs(d):
    return ", ".join(f"{v}" for v in d.values()) + (f" (n = {', '.join(map(str, d))})" if d else "")


def _all_n(crossover):
    return sorted({n for c in crossover for n in c["n"]})


def plots(records, summary, out: Path) -> list[Path]:
    """Log-log plots: time and FLOPs against n per layer (with fitted slopes); path length."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots (pip install -e '.[bench]')", file=sys.stderr)
        return []
    paths = []
    for key, label, fname in (("fwd_min_s", "forward time (s)", "time_vs_n.png"),
                              ("flops", "FLOPs (analytic)", "flops_vs_n.png")):
        fig, ax = plt.subplots(figsize=(7, 5))
        for name, row in summary["rows"].items():
            pts = sorted((r["n"], r[key]) for r in records
                         if r["layer"] == name and r["kind"] == "n_sweep")
            fit = row["time_n" if key == "fwd_min_s" else "flops_n"]
            slope = f" (slope {fit['exponent']:.2f})" if fit else ""
            ax.loglog(*zip(*pts), "o-", label=name + slope)
        ax.set_xlabel("sequence length n")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs n at fixed d")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        paths.append(out / fname)
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, row in summary["rows"].items():
        if row["path"]:
            ax.loglog(list(row["path"]), list(row["path"].values()), "o-", label=name)
    ax.set_xlabel("sequence length n")
    ax.set_ylabel("maximum path length (layers or steps)")
    ax.set_title("measured maximum path length")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "path_length.png", dpi=110)
    plt.close(fig)
    return paths + [out / "path_length.png"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sweep for a CPU (default)")
    mode.add_argument("--full", action="store_true", help="large sweep for accelerators")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (CI)")
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
    args = parser.parse_args(argv)
    layers = [l.strip() for l in args.layers.split(",") if l.strip()]
    unknown = [l for l in layers if l not in LAYERS]
    if unknown:
        parser.error(f"unknown layers {unknown}; choose from {list(LAYERS)}")
    if not args.system_malloc:
        harness.keep_freed_memory()
    sweep_name = "full" if args.full else "smoke" if args.smoke else "quick"
    sweep = SMOKE if args.smoke else SWEEPS[sweep_name]
    out = args.out or Path("benchmarks/out") / f"table1-{jax.default_backend()}-{sweep_name}"
    start = time.perf_counter()
    records = run(layers, sweep, out, progress=not args.no_progress, dtype=args.dtype)
    summary = summarize(records, sweep)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    report = markdown(summary, records, sweep_name)
    if not args.no_peers:
        peer_records = peers.run(sweep["peers"], repeats=sweep["peer_repeats"])
        (out / "peers.jsonl").unlink(missing_ok=True)
        harness.write_jsonl(out / "peers.jsonl", peer_records)
        report += ("\n## The zoo beside Flax and PyTorch\n\nSame sizes, same process, "
                   "interleaved, each timed run right after an untimed run of the same call; "
                   "ratios are zoo time / peer time (below 1: the zoo is faster)."
                   "\n\n" + peers.markdown(peer_records))
    (out / "report.md").write_text(report)
    plots(records, summary, out)
    print(report.split("## Where")[0])
    print(f"wrote {out}/report.md, results.jsonl and plots in {time.perf_counter() - start:.0f} s")
    return 0


SMOKE = dict(batch=2, d_fixed=16, n_sweep=(16, 32, 64), n_fixed=32, d_sweep=(8, 16, 32),
             crossover_d=(8,), crossover_n=(16, 32, 64), path_n=(16, 32), repeats=1,
             rounds=1, min_time=0.0, peers="smoke", peer_repeats=2)


if __name__ == "__main__":
    sys.exit(main())
