"""Training throughput of the registered models: examples/s, tokens/s, and model FLOP
utilisation against a measured matrix-product peak of the same device.

One optimiser step (AdamW with clipping, float32 unless ``--dtype``) is timed on example
batches on one device. FLOPs per step use the dense-model estimate ``6 · P · E`` (P params, E
examples, or tokens for ``[B, T]`` integer inputs: 2 for the forward pass, 4 for the backward;
it undercounts weight sharing such as convolutions and attention scores); XLA's own count of
the compiled step is reported beside it as a cross-check. The peak is the best of several
``n × n`` float32 products, ``2 n³ / t``.

Usage:
    python -m benchmarks.train_throughput [--quick] [--out benchmarks/results] [--models ...]
"""

import argparse
import time
from pathlib import Path

import jax
import numpy as np

import zoo
from benchmarks import harness
from zoo import train


def matmul_peak(n: int, dtype: str = "float32") -> dict:
    """FLOP/s of the best of several ``n × n`` products on the default device."""
    a, b = harness.random_inputs(jax.random.key(0), (n, n), (n, n), dtype=dtype)
    r = harness.time_jax(lambda x, y: x @ y, a, b, repeats=10, warmup=2)
    return {"n": n, "dtype": dtype, "flops_per_s": 2 * n ** 3 / r["min_s"], **r}


def bench_model(name: str, batch: int, dtype: str, repeats: int) -> dict:
    """Times one training step of ``name`` on ``batch`` examples."""
    spec = zoo.get(name)
    spec = spec.replace(dtype=dtype) if dtype != spec.config.dtype else spec
    opt = train.make_optimizer(train.TrainConfig(), 1000)
    state = train.init_state(spec, opt, jax.random.key(0))
    inputs, targets = jax.device_put(spec.example_batch(jax.random.key(1), batch))
    step = train.make_train_step(spec, opt)
    xla = step.lower(state, inputs, targets).compile().cost_analysis()
    xla = xla[0] if isinstance(xla, list) else xla
    start = time.perf_counter()
    state, loss = step(state, inputs, targets)
    jax.block_until_ready(loss)
    compile_s = time.perf_counter() - start
    holder = [state]

    def one_step():
        holder[0], loss = step(holder[0], inputs, targets)
        jax.block_until_ready(loss)
    t = harness.time_python(one_step, repeats=repeats, warmup=1)
    x0 = inputs[0]
    tokens = int(np.prod(x0.shape[:2])) if x0.ndim == 2 and np.issubdtype(
        x0.dtype, np.integer) else 0
    params = spec.num_params()
    flops = 6 * params * (tokens or batch)
    return {"model": name, "family": spec.family, "task": spec.task, "params": params,
            "batch": batch, "dtype": dtype, "tokens_per_step": tokens,
            "examples_per_s": batch / t["median_s"],
            "tokens_per_s": tokens / t["median_s"] if tokens else None,
            "flops_6P": flops, "flops_xla": float(xla.get("flops", 0)) if xla else None,
            "achieved_flops_per_s": flops / t["median_s"], "first_step_s": compile_s, **t}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny presets, few repeats")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--models", nargs="*", help="default: every model up to --max-params")
    parser.add_argument("--max-params", type=int, default=5_000_000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args(argv)
    names = args.models or [n for n in zoo.list_models()
                            if zoo.get(n).num_params() <= args.max_params
                            and (not args.quick or "tiny" in n)]
    repeats = 3 if args.quick else 10
    env = harness.environment()
    peak = matmul_peak(512 if args.quick else 2048)
    print(f"matmul peak {peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({env['device_kind']})")
    records = []
    for name in names:
        try:
            r = bench_model(name, args.batch, args.dtype, repeats)
        except Exception as err:        # a model the trainer cannot drive: say so, go on
            r = {"model": name, "error": f"{type(err).__name__}: {err}"[:300]}
        else:
            r["mfu_6P"] = r["achieved_flops_per_s"] / peak["flops_per_s"]
            if r["flops_xla"]:
                r["mfu_xla"] = r["flops_xla"] / r["median_s"] / peak["flops_per_s"]
        r.update(env=env, peak_flops_per_s=peak["flops_per_s"])
        records.append(r)
        print(_row(r))
    out = Path(args.out)
    stem = "train_throughput" + ("_quick" if args.quick else "") + f"_{env['platform']}"
    (out / f"{stem}.jsonl").unlink(missing_ok=True)
    harness.write_jsonl(out / f"{stem}.jsonl", records)
    (out / f"{stem}.md").write_text(_table(records, peak, env))
    return 0


def _row(r) -> str:
    if "error" in r:
        return f"{r['model']:<24} error: {r['error']}"
    tok = f"{r['tokens_per_s']:>12,.0f}" if r["tokens_per_s"] else f"{'-':>12}"
    mfu_x = f"{r['mfu_xla']:.2%}" if r.get("mfu_xla") else "-"
    return (f"{r['model']:<24} {r['params']:>10,} {r['examples_per_s']:>12,.0f} {tok} "
            f"{r['median_s'] * 1e3:>9.2f} {r['mfu_6P']:>8.2%} {mfu_x:>8}")


def _table(records, peak, env) -> str:
    lines = [
        "# Training throughput", "",
        f"Device: {env['device_kind']} ({env['platform']}, {env['cpu']}, host {env['host']}), "
        f"jax {env['jax']}, matmul precision {env['matmul_precision']}. One AdamW step with "
        f"clipping on one device, batch {records[0].get('batch', '-')}, median of the runs.",
        f"Matmul peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({peak['n']}×{peak['n']} "
        f"{peak['dtype']}, best run). MFU(6P) = 6·params·(tokens or examples) per step / time / "
        "peak; MFU(XLA) uses XLA's FLOP count of the compiled step (a cross-check: it counts "
        "a scanned loop's body once).", "",
        "| model | params | examples/s | tokens/s | step ms | first step s | MFU(6P) | "
        "MFU(XLA) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['model']} | | | | | | | {r['error'][:80]} |")
            continue
        tok = f"{r['tokens_per_s']:,.0f}" if r["tokens_per_s"] else "-"
        mfu_x = f"{r['mfu_xla']:.2%}" if r.get("mfu_xla") else "-"
        lines.append(f"| {r['model']} | {r['params']:,} | {r['examples_per_s']:,.0f} | {tok} | "
                     f"{r['median_s'] * 1e3:.2f} | {r['first_step_s']:.1f} | "
                     f"{r['mfu_6P']:.2%} | {mfu_x} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
