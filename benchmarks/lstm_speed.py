"""The zoo's LSTM against Flax's ``nn.RNN(OptimizedLSTMCell)`` and ``torch.nn.LSTM``, one run.

Batch 32, hidden 256 (input 256), sequence lengths 64-512, forward and forward+backward
(gradient of the summed outputs with respect to the parameters). All three run on the same
device in the same process, in rounds of one timed run of each per case, so their ratios are
comparable even on a busy machine; an untimed run of the same call comes right before each
timed run, so that none is timed in the wake of another library's threads. Ratios are
``time / PyTorch's time`` (below 1: faster than PyTorch). Beside them, the zoo LSTM's
matrix products alone in the same loops (no gate arithmetic) give a floor for the zoo's time
on the device.

Usage:
    python benchmarks/lstm_speed.py [--quick] [--out benchmarks/results] [--unroll 1 8 16]
"""

import argparse
import dataclasses
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import (environment, jax_call, keep_freed_memory, time_interleaved,
                                write_jsonl)
from zoo import rnn

BATCH, HIDDEN = 32, 256
PRODUCTS = "zoo products only"


def _zoo_fns(cfg):
    def fwd(p, x):
        return rnn.apply(p, x, None, cfg)

    def fwd_bwd(p, x):
        return jax.grad(lambda p: jnp.sum(rnn.apply(p, x, None, cfg)))(p)
    return fwd, fwd_bwd


def _products_fns(cfg):
    """The zoo LSTM's matrix products without its gate arithmetic: a floor for its time.

    The layer's own loops (time-major, padded and cut into chunks of
    :meth:`zoo.rnn.Config.chunk_length` steps by its helpers; per chunk ``X_c W_i`` as one
    product, per step ``h W_h``, unrolled as ``cfg`` says), with
    ``h_{t+1} = (x_t W_i + h_t W_h)[:, :D]`` in place of the cell.
    """
    d = cfg.hidden_dim

    def fwd(p, x):
        w_i = p["layer_0"]["fwd"]["w_i_igd"].reshape(cfg.in_dim, -1)
        w_h = p["layer_0"]["fwd"]["w_h_dgd"].reshape(d, -1)
        steps = cfg.chunk_length(x.shape[1], x.shape[0], x.dtype.itemsize)
        xs, _ = rnn._pad_to_chunks(jnp.swapaxes(x, 0, 1), None, steps)

        def step(h, xp_t):
            h = (xp_t + h @ w_h)[:, :d]
            return h, h

        def chunk(h, x_c):
            return jax.lax.scan(step, h, x_c @ w_i, unroll=cfg.steps_per_iteration)
        _, ys = jax.lax.scan(chunk, jnp.zeros((x.shape[0], d), x.dtype),
                             rnn._chunks(xs, steps))
        return jnp.swapaxes(ys.reshape((-1,) + ys.shape[2:])[:x.shape[1]], 0, 1)

    def fwd_bwd(p, x):
        return jax.grad(lambda p: jnp.sum(fwd(p, x)))(p)
    return fwd, fwd_bwd


def _flax_fns():
    from flax import linen as nn
    module = nn.RNN(nn.OptimizedLSTMCell(HIDDEN))

    def fwd(v, x):
        return module.apply(v, x)

    def fwd_bwd(v, x):
        return jax.grad(lambda v: jnp.sum(module.apply(v, x)))(v)
    return module, fwd, fwd_bwd


def _torch_case(x_np, backward):
    import torch
    lstm = torch.nn.LSTM(HIDDEN, HIDDEN, batch_first=True)
    x = torch.from_numpy(np.array(x_np))
    if backward:
        def run():
            lstm.zero_grad(set_to_none=True)
            lstm(x)[0].sum().backward()
    else:
        def run():
            with torch.no_grad():
                lstm(x)
    return run


def run_case(length, mode, unrolls, repeats):
    """Times PyTorch, Flax, the zoo (one record per zoo ``unroll``) and the zoo's products
    alone (:func:`_products_fns`) on one case, in rounds of one run of each."""
    key = jax.random.key(length)
    x = jax.random.normal(key, (BATCH, length, HIDDEN), jnp.float32)
    backward = mode == "fwd+bwd"
    calls = {"torch.nn.LSTM": _torch_case(np.asarray(x), backward)}
    module, f_fwd, f_bwd = _flax_fns()
    variables = module.init(jax.random.key(1), x)
    calls["flax OptimizedLSTMCell"] = jax_call(f_bwd if backward else f_fwd, variables, x)
    cfg = rnn.Config(cell="lstm", in_dim=HIDDEN, hidden_dim=HIDDEN, output="sequence")
    params = rnn.init(jax.random.key(2), cfg)
    for unroll in unrolls:
        z_fwd, z_bwd = _zoo_fns(dataclasses.replace(cfg, unroll=unroll))
        calls[f"zoo unroll={unroll}"] = jax_call(z_bwd if backward else z_fwd, params, x)
    p_fwd, p_bwd = _products_fns(cfg)
    calls[PRODUCTS] = jax_call(p_bwd if backward else p_fwd, params, x)
    times = time_interleaved(calls, repeats=repeats, warmup=2, lead=1)
    base = dict(batch=BATCH, hidden=HIDDEN, length=length, mode=mode)
    torch_t = times["torch.nn.LSTM"]
    return [{**base, "impl": impl, **t, "ratio_to_torch": t["median_s"] / torch_t["median_s"],
             "min_ratio_to_torch": t["min_s"] / torch_t["min_s"]} for impl, t in times.items()]


def markdown(records, env) -> str:
    lines = [
        "# LSTM speed: zoo vs Flax vs PyTorch",
        "",
        f"Device: {env['device_kind']} ({env['platform']}, {env['cpu']}), "
        f"jax {env['jax']}, flax {env.get('flax')}, torch {env.get('torch')}; "
        f"batch {BATCH}, hidden {HIDDEN}, input {HIDDEN}, float32. "
        "Median of the repeats in ms (min in brackets), each timed run right after an untimed "
        "run of the same call; ratio = median / PyTorch's median, "
        "and the same for the minima (steadier when other work lands on a few rounds). "
        f"{env.get('torch_threads')} PyTorch threads; memory allocator: {env.get('malloc')}; "
        "1-minute load average "
        f"{env.get('loadavg_start', float('nan')):.1f} at the start, "
        f"{env.get('loadavg_end', float('nan')):.1f} at the end (other jobs share the CPU: "
        "a load above the core count makes every figure, PyTorch's most, unreliable). "
        f"`{PRODUCTS}` runs the zoo LSTM's matrix products in the same loops without the gate "
        "arithmetic: a floor for the zoo's time on this device.",
        "",
        "| length | mode | implementation | time ms | ratio to torch | ratio of minima |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(f"| {r['length']} | {r['mode']} | {r['impl']} | "
                     f"{1e3 * r['median_s']:.1f} ({1e3 * r['min_s']:.1f}) | "
                     f"{r['ratio_to_torch']:.2f} | {r['min_ratio_to_torch']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="length 64 only, 3 repeats")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--unroll", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="have malloc keep freed memory for reuse instead of returning "
                             "blocks over 32 MiB to the system (harness.keep_freed_memory; "
                             "PyTorch's backward gains the most)")
    args = parser.parse_args(argv)
    if args.keep_freed_memory:
        keep_freed_memory()
    lengths = [64] if args.quick else args.lengths
    repeats = 3 if args.quick else args.repeats
    env = environment()
    env["loadavg_start"] = os.getloadavg()[0]
    try:
        import torch
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:
        raise SystemExit("lstm_speed needs torch (pip install torch)")
    records = []
    for length in lengths:
        for mode in ("fwd", "fwd+bwd"):
            for r in run_case(length, mode, args.unroll, repeats):
                r.update(env=env, time=time.strftime("%Y-%m-%d %H:%M:%S"))
                records.append(r)
                print(f"{length:4d} {mode:8s} {r['impl']:24s} {1e3 * r['median_s']:9.1f} ms"
                      f"  x{r['ratio_to_torch']:.2f}", flush=True)
    env["loadavg_end"] = os.getloadavg()[0]
    out = Path(args.out)
    suffix = "_quick" if args.quick else ""
    (out / f"lstm_speed{suffix}.jsonl").unlink(missing_ok=True)
    write_jsonl(out / f"lstm_speed{suffix}.jsonl", records)
    (out / f"lstm_speed{suffix}.md").write_text(markdown(records, env))
    return records


if __name__ == "__main__":
    main()
