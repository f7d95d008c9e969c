"""The zoo's LSTM against Flax's ``nn.RNN(OptimizedLSTMCell)`` and ``torch.nn.LSTM``, one run.

Batch 32, hidden 256 (input 256), sequence lengths 64-512 by default, forward and
forward+backward (gradient of the summed outputs with respect to the parameters). All three
run on the same device (PyTorch on CUDA when JAX's backend is a GPU) in the same process, in
rounds of one timed run of each per case, so their ratios are comparable even on a busy
machine; an untimed run of the same call comes right before each timed run, so that none is
timed in the wake of another library's threads. Ratios are ``time / PyTorch's time`` (below 1:
faster than PyTorch). Beside them, the zoo LSTM's matrix products alone in the CPU kernel's
loops (no gate arithmetic) give a floor for the zoo's time on the device. The zoo runs once per
candidate implementation, so each platform's default can be chosen by measurement: the plain
scan (``implementation="scan"``), the CPU-tuned loops (``"loops"``, once per ``--unroll``) and,
on a GPU, cuDNN's LSTM (``"cudnn"``), which PyTorch uses there too.

Usage:
    python -m zoo.bench.lstm_speed [--quick] [--out benchmarks/results] [--unroll 1 8 16]
    python -m zoo.bench.lstm_speed --batch 64 --hidden 1024 --lengths 1024    # on a GPU
"""

import argparse
import dataclasses
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from zoo.bench.harness import (environment, jax_call, keep_freed_memory, time_interleaved,
                                torch_device, torch_runner, write_jsonl)
from zoo import rnn
from zoo.kernels import has_platform, rnn_loops

BATCH, HIDDEN = 32, 256      # the defaults
PRODUCTS = "zoo products only"


def _zoo_fns(cfg):
    def fwd(p, x):
        return rnn.apply(p, x, None, cfg)

    def fwd_bwd(p, x):
        return jax.grad(lambda p: jnp.sum(rnn.apply(p, x, None, cfg)))(p)
    return fwd, fwd_bwd


def _products_fns(cfg):
    """The zoo LSTM's matrix products without its gate arithmetic: a floor for its time.

    The CPU kernel's loops (padded and cut into chunks of
    :func:`zoo.kernels.rnn_loops.chunk_length` steps, each read and written by its helpers;
    per chunk ``X_c W_i`` as one product, per step ``h W_h``, unrolled as ``cfg`` says), with
    ``h_{t+1} = (x_t W_i + h_t W_h)[:, :D]`` in place of the cell.
    """
    d = cfg.hidden_dim

    def fwd(p, x):
        w_i = p["layer_0"]["fwd"]["w_i_igd"].reshape(cfg.in_dim, -1)
        w_h = p["layer_0"]["fwd"]["w_h_dgd"].reshape(d, -1)
        steps = rnn_loops.chunk_length(x.shape[1], x.shape[0], 4 * d, x.dtype.itemsize)
        xs, _ = rnn_loops.pad_to_chunks(x, None, steps)

        def step(h, xp_t):
            h = (xp_t + h @ w_h)[:, :d]
            return h, h

        def chunk(state, k):
            h, ys = state
            h, y = jax.lax.scan(step, h, rnn_loops.read_chunk(xs, k, steps) @ w_i,
                                unroll=cfg.unroll or rnn_loops.LSTM_UNROLL)
            return (h, rnn_loops.write_chunk(ys, y, k, steps)), None
        (_, ys), _ = jax.lax.scan(
            chunk, (jnp.zeros((x.shape[0], d), x.dtype), rnn_loops.sequence_buffer(xs, d)),
            jnp.arange(xs.shape[1] // steps))
        return ys[:, :x.shape[1]]

    def fwd_bwd(p, x):
        return jax.grad(lambda p: jnp.sum(fwd(p, x)))(p)
    return fwd, fwd_bwd


def _flax_fns(hidden):
    from flax import linen as nn
    module = nn.RNN(nn.OptimizedLSTMCell(hidden))

    def fwd(v, x):
        return module.apply(v, x)

    def fwd_bwd(v, x):
        return jax.grad(lambda v: jnp.sum(module.apply(v, x)))(v)
    return module, fwd, fwd_bwd


def _torch_case(x_np, backward):
    import torch
    torch.manual_seed(0)
    hidden = x_np.shape[-1]
    return torch_runner(torch.nn.LSTM(hidden, hidden, batch_first=True), x_np, backward,
                        call=lambda m, x: m(x)[0])


def run_case(length, mode, unrolls, repeats, batch=BATCH, hidden=HIDDEN):
    """Times PyTorch, Flax, the zoo (the plain scan, the loops once per ``unroll``, and cuDNN's
    LSTM on a GPU)
    and the zoo's products alone (:func:`_products_fns`) on one case, in rounds of one run of
    each."""
    key = jax.random.key(length)
    x = jax.random.normal(key, (batch, length, hidden), jnp.float32)
    backward = mode == "fwd+bwd"
    calls = {"torch.nn.LSTM": _torch_case(np.asarray(x), backward)}
    module, f_fwd, f_bwd = _flax_fns(hidden)
    variables = module.init(jax.random.key(1), x)
    calls["flax OptimizedLSTMCell"] = jax_call(f_bwd if backward else f_fwd, variables, x)
    cfg = rnn.Config(cell="lstm", in_dim=hidden, hidden_dim=hidden, output="sequence",
                     implementation="loops")
    params = rnn.init(jax.random.key(2), cfg)
    variants = {f"zoo loops unroll={u}": dataclasses.replace(cfg, unroll=u) for u in unrolls}
    variants["zoo scan"] = dataclasses.replace(cfg, implementation="scan")
    if has_platform("cuda"):
        variants["zoo cuDNN"] = dataclasses.replace(cfg, implementation="cudnn")
    for name, c in variants.items():
        z_fwd, z_bwd = _zoo_fns(c)
        calls[name] = jax_call(z_bwd if backward else z_fwd, params, x)
    p_fwd, p_bwd = _products_fns(cfg)
    calls[PRODUCTS] = jax_call(p_bwd if backward else p_fwd, params, x)
    times = time_interleaved(calls, repeats=repeats, warmup=2, lead=1)
    base = dict(batch=batch, hidden=hidden, length=length, mode=mode)
    torch_t = times["torch.nn.LSTM"]
    return [{**base, "impl": impl, **t, "ratio_to_torch": t["median_s"] / torch_t["median_s"],
             "min_ratio_to_torch": t["min_s"] / torch_t["min_s"]} for impl, t in times.items()]


def markdown(records, env, batch=BATCH, hidden=HIDDEN) -> str:
    lines = [
        "# LSTM speed: zoo vs Flax vs PyTorch",
        "",
        f"Device: {env['device_kind']} ({env['platform']}, {env['cpu']}), "
        f"jax {env['jax']}, flax {env.get('flax')}, torch {env.get('torch')}; "
        f"batch {batch}, hidden {hidden}, input {hidden}, float32; PyTorch on "
        f"{env.get('torch_device')}. "
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


def _stem(quick, platform, batch, hidden):
    """The results' file name: ``lstm_speed``, then ``_quick``, the platform unless it is the
    CPU, and the sizes unless they are the defaults (``lstm_speed_gpu_b64_h1024``)."""
    stem = "lstm_speed" + ("_quick" if quick else "")
    stem += "" if platform == "cpu" else f"_{platform}"
    return stem + ("" if (batch, hidden) == (BATCH, HIDDEN) else f"_b{batch}_h{hidden}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="length 64 only, 3 repeats")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--unroll", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--hidden", type=int, default=HIDDEN, help="hidden and input size")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="have malloc keep freed memory for reuse instead of returning "
                             "blocks over 32 MiB to the system (harness.keep_freed_memory; "
                             "PyTorch's backward gains the most)")
    args = parser.parse_args(argv)
    bad = [f"--{k} {v}" for k in ("batch", "hidden", "repeats", "lengths", "unroll")
           for v in np.atleast_1d(getattr(args, k)) if v < 1]
    if bad:
        parser.error(f"every size, length, unroll and repeat count must be >= 1, got "
                     f"{', '.join(bad)}")
    if args.keep_freed_memory:
        keep_freed_memory()
    lengths = [64] if args.quick else args.lengths
    repeats = 3 if args.quick else args.repeats
    env = environment()
    env["loadavg_start"] = os.getloadavg()[0]
    try:
        import torch
        env["torch_threads"] = torch.get_num_threads()
        env["torch_device"] = torch_device()
    except ImportError:
        raise SystemExit("lstm_speed needs torch (pip install torch)")
    records = []
    for length in lengths:
        for mode in ("fwd", "fwd+bwd"):
            for r in run_case(length, mode, args.unroll, repeats, args.batch, args.hidden):
                r.update(env=env, time=time.strftime("%Y-%m-%d %H:%M:%S"))
                records.append(r)
                print(f"{length:4d} {mode:8s} {r['impl']:24s} {1e3 * r['median_s']:9.1f} ms"
                      f"  x{r['ratio_to_torch']:.2f}", flush=True)
    env["loadavg_end"] = os.getloadavg()[0]
    out = Path(args.out)
    stem = _stem(args.quick, env["platform"], args.batch, args.hidden)
    (out / f"{stem}.jsonl").unlink(missing_ok=True)
    write_jsonl(out / f"{stem}.jsonl", records)
    (out / f"{stem}.md").write_text(markdown(records, env, args.batch, args.hidden))
    return records


if __name__ == "__main__":
    main()
