"""Training throughput: tokens/s and model FLOP utilisation of a decoder language model.

The flagship measurement trains a registered decoder (by default ``transformer-gpt2-small``:
124.5M parameters, vocabulary 50304, 12 layers, d 768, n 1024) for a few AdamW steps on one
device and reports tokens/s and model FLOP utilisation (MFU) against two peaks: the chip's
datasheet rate (:data:`DATASHEET_PEAKS`, dense bfloat16; ``--peak`` overrides) and a square
matrix product timed in the same run (8192³ on an accelerator, 1024³ on a CPU). FLOPs per
step count the dense-model estimate with attention (Kaplan et al. 2020; PaLM, Chowdhery et
al. 2022, appendix B)::

    FLOPs = 6·P·tokens + 12·L·n·d·tokens

``P`` every parameter, ``L`` layers, ``n`` the sequence length, ``d`` the model width: 2 per
multiply-add forward, 4 backward, and the attention scores ``QKᵀ`` and ``AV`` beside the
weights. Options: batch, gradient accumulation, dtype (bfloat16 computes in 16 bits with
float32 master weights and optimiser state), rematerialisation (``jax.checkpoint`` of the
loss with a policy) and the sequence length. ``--all`` times one step of every registered
model instead (examples/s, ``6·P·examples``).

Usage:
    python -m zoo.bench.train_throughput [--quick] [--model NAME] [--batch 16]
        [--accumulate 1] [--dtype bfloat16] [--remat none|dots|full] [--peak FLOP/s]
    python -m zoo.bench.train_throughput --all [--quick]

References:
    J. Kaplan et al., "Scaling Laws for Neural Language Models", 2020.
    https://arxiv.org/abs/2001.08361
    A. Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways", 2022, appendix B.
    https://arxiv.org/abs/2204.02311
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import zoo
from zoo.bench import harness
from zoo import train

DEFAULT_MODEL = "transformer-gpt2-small"
QUICK_MODEL = "transformer-lm_tiny"
#: Dense bfloat16 tensor rates from the vendors' datasheets (FLOP/s, no sparsity), matched
#: against ``device_kind`` by substring, longest first.
DATASHEET_PEAKS = {
    "H200": 989e12, "H100": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12,
    "L4": 121e12, "A10G": 70e12, "V100": 125e12, "TPU v6 lite": 918e12, "TPU v6e": 918e12,
    "TPU v5p": 459e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v4": 275e12,
    "TPU v3": 123e12,
}
#: ``--remat`` choices: what the checkpointed loss saves for the backward pass.
REMAT = {"none": None, "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
         "full": jax.checkpoint_policies.nothing_saveable}


def datasheet_peak(device_kind: str) -> float | None:
    """The datasheet's dense bfloat16 FLOP/s of a device, or None for one not in the table.

    >>> datasheet_peak("NVIDIA H200"), datasheet_peak("TPU v5 lite"), datasheet_peak("cpu")
    (989000000000000.0, 197000000000000.0, None)
    """
    for name in sorted(DATASHEET_PEAKS, key=len, reverse=True):
        if name.lower() in device_kind.lower():
            return DATASHEET_PEAKS[name]
    return None


def flops_per_step(params: int, layers: int, length: int, width: int, tokens: int) -> float:
    """``6·P·tokens + 12·L·n·d·tokens``: training FLOPs of a decoder step (module doc).

    >>> flops_per_step(params=10, layers=2, length=4, width=3, tokens=8)
    2784.0
    """
    return float(6 * params * tokens + 12 * layers * length * width * tokens)


def matmul_peak(n: int, dtype: str = "float32") -> dict:
    """FLOP/s of the best of several ``n × n`` products on the default device."""
    a, b = harness.random_inputs(jax.random.key(0), (n, n), (n, n), dtype=dtype)
    r = harness.time_jax(lambda x, y: x @ y, a, b, repeats=10, warmup=2)
    return {"n": n, "dtype": dtype, "flops_per_s": 2 * n ** 3 / r["min_s"], **r}


def decoder(name: str) -> zoo.registry.ModelSpec:
    """The registered decoder ``name``; for the default name, until it is registered, a
    decoder of the same shapes built here (saying so on stderr).

    Raises:
        ValueError: if ``name`` is not a registered decoder language model.
    """
    if name == DEFAULT_MODEL and name not in zoo.list_models():
        print(f"{name} is not registered in this zoo; timing a decoder of its shapes built "
              "from transformer.Config (vocabulary 50304, 12 layers, d 768, 12 heads, "
              "d_ff 3072, n 1024)", file=sys.stderr)
        from zoo import registry, transformer
        cfg = transformer.Config(kind="decoder", vocab_size=50304, d_model=768, num_heads=12,
                                 d_ff=3072, num_layers=12, max_len=1024, positions="learned",
                                 norm="pre")
        return registry.spec_for("transformer", cfg, name=name + " (built here)")
    if name not in zoo.list_models():
        decoders = [n for n in zoo.list_models() if _is_decoder(zoo.get(n))]
        raise ValueError(f"model must be a registered decoder, got {name!r}; registered "
                         f"decoders: {decoders}")
    spec = zoo.get(name)
    if not _is_decoder(spec):
        raise ValueError(f"model must be a decoder language model (family transformer, kind "
                         f"'decoder'), got {name!r} ({spec.family}, task {spec.task})")
    return spec


def _is_decoder(spec) -> bool:
    return spec.family == "transformer" and getattr(spec.config, "kind", None) == "decoder"


@dataclasses.dataclass(frozen=True)
class Run:
    """One throughput measurement's settings."""
    model: str = DEFAULT_MODEL
    batch: int = 16
    accumulate: int = 1
    dtype: str = "bfloat16"
    remat: str = "none"
    length: int | None = None        # default: the model's max_len
    repeats: int = 10

    def __post_init__(self):
        for field in ("batch", "accumulate", "repeats"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < 1:
                raise ValueError(f"{field} must be an int >= 1, got {getattr(self, field)!r}")
        if self.batch % self.accumulate:
            raise ValueError(f"batch must be divisible by accumulate, got batch={self.batch}, "
                             f"accumulate={self.accumulate}")
        if self.remat not in REMAT:
            raise ValueError(f"remat must be one of {list(REMAT)}, got {self.remat!r}")


def make_step(spec, optimizer, accumulate: int, remat: str):
    """The trainer's step (:func:`zoo.train.make_train_step`) for ``remat="none"``; else
    the same step with the loss under ``jax.checkpoint`` and the policy of :data:`REMAT`."""
    if REMAT[remat] is None:
        return train.make_train_step(spec, optimizer, accumulate=accumulate)
    grad = jax.value_and_grad(jax.checkpoint(train.loss_fn(spec), policy=REMAT[remat]))

    def step(state, inputs, targets):
        key = None if state.key is None else jax.random.fold_in(
            jax.random.wrap_key_data(state.key), state.step)     # as the trainer draws it
        keys = None if key is None else jax.random.split(key, accumulate)

        def body(total, xs):
            (mi, mt), k = xs
            value, g = grad(state.params, mi, mt, k)
            return jax.tree.map(jnp.add, total, (value, g)), None
        # micro-batch a holds rows a, a + A, a + 2A, ... as in the trainer
        micro = jax.tree.map(lambda x: x.reshape(-1, accumulate, *x.shape[1:]).swapaxes(0, 1),
                             (inputs, targets))
        zero = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, state.params))
        (value, grads), _ = jax.lax.scan(body, zero, (micro, keys))
        value, grads = value / accumulate, jax.tree.map(lambda g: g / accumulate, grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return train.TrainState(params, opt_state, state.step + 1, state.key), value
    return jax.jit(step, donate_argnums=0)


def measure(run: Run, spec=None) -> dict:
    """Times ``run.repeats`` optimiser steps (after one that compiles) and counts FLOPs."""
    spec = spec or decoder(run.model)
    spec = spec.replace(dtype=run.dtype) if run.dtype != spec.config.dtype else spec
    length = run.length or spec.config.max_len
    opt = train.make_optimizer(train.TrainConfig(weight_decay=0.1), 1000)
    state = train.init_state(spec, opt, jax.random.key(0))
    inputs, targets = jax.device_put(
        spec.module.example_batch(jax.random.key(1), spec.config, run.batch, length=length))
    step = make_step(spec, opt, run.accumulate, run.remat)
    start = time.perf_counter()
    state, loss = step(state, inputs, targets)
    losses = [jax.block_until_ready(loss)]
    compile_s = time.perf_counter() - start
    holder = [state]

    def one_step():
        holder[0], value = step(holder[0], inputs, targets)
        losses.append(jax.block_until_ready(value))
    t = harness.time_python(one_step, repeats=run.repeats, warmup=1)
    params = spec.num_params()
    tokens = run.batch * length
    cfg = spec.config
    flops = flops_per_step(params, cfg.num_layers, length, cfg.d_model, tokens)
    return {**dataclasses.asdict(run), "model": spec.name, "params": params,
            "layers": cfg.num_layers, "d_model": cfg.d_model, "length": length,
            "tokens_per_step": tokens, "tokens_per_s": tokens / t["median_s"],
            "flops_per_step": flops, "flops_per_s": flops / t["median_s"],
            "first_step_s": compile_s, "losses": [float(v) for v in losses[:5]], **t}


def utilisation(record: dict, gemm_flops_per_s: float, peak: float | None) -> dict:
    """The record with MFU against the measured product and the datasheet peak."""
    out = dict(record, gemm_flops_per_s=gemm_flops_per_s, datasheet_peak=peak,
               mfu_gemm=record["flops_per_s"] / gemm_flops_per_s)
    out["mfu_datasheet"] = None if peak is None else record["flops_per_s"] / peak
    return out


def flagship(args) -> int:
    env = harness.environment()
    run = Run(model=QUICK_MODEL if args.quick and not args.model else
              (args.model or DEFAULT_MODEL), batch=args.batch or (8 if args.quick else 16),
              accumulate=args.accumulate, dtype=args.dtype or ("float32" if args.quick
                                                               else "bfloat16"),
              remat=args.remat, length=args.length, repeats=3 if args.quick else 10)
    accelerator = env["platform"] != "cpu"
    gemm = matmul_peak(8192 if accelerator else 1024, "bfloat16" if accelerator else run.dtype)
    peak = args.peak or datasheet_peak(env["device_kind"])
    rec = utilisation(measure(run), gemm["flops_per_s"], peak)
    rec.update(env=env, gemm_n=gemm["n"], gemm_dtype=gemm["dtype"])
    out = Path(args.out)
    stem = "train_throughput_flagship" + ("_quick" if args.quick else "") + f"_{env['platform']}"
    (out / f"{stem}.jsonl").unlink(missing_ok=True)
    harness.write_jsonl(out / f"{stem}.jsonl", [rec])
    text = flagship_markdown(rec)
    (out / f"{stem}.md").write_text(text)
    print(text)
    return 0


def flagship_markdown(r: dict) -> str:
    env = r["env"]
    datasheet = ("not in the table (pass --peak)" if r["datasheet_peak"] is None else
                 f"{r['datasheet_peak'] / 1e12:.0f} TFLOP/s, MFU {r['mfu_datasheet']:.1%}")
    return "\n".join([
        "# Training throughput of a decoder", "",
        f"Device: {env['device_kind']} ({env['platform']}), jax {env['jax']}, matmul "
        f"precision {env['matmul_precision']}. Model {r['model']}: {r['params']:,} "
        f"parameters, {r['layers']} layers, d {r['d_model']}, n {r['length']}; batch "
        f"{r['batch']} in {r['accumulate']} micro-batch(es), {r['dtype']}, remat "
        f"{r['remat']}; AdamW, median of {r['repeats']} steps.", "",
        "FLOPs per step = 6·P·tokens + 12·L·n·d·tokens.", "",
        "| tokens/s | step ms (min–max) | TFLOP/s | datasheet peak | measured GEMM | "
        "first step s |", "|---:|---:|---:|---|---|---:|",
        f"| {r['tokens_per_s']:,.0f} | {r['median_s'] * 1e3:.1f} ({r['min_s'] * 1e3:.1f}–"
        f"{r['max_s'] * 1e3:.1f}) | {r['flops_per_s'] / 1e12:.3g} | {datasheet} | "
        f"{r['gemm_flops_per_s'] / 1e12:.3g} TFLOP/s ({r['gemm_n']}³ {r['gemm_dtype']}), MFU "
        f"{r['mfu_gemm']:.1%} | {r['first_step_s']:.1f} |", ""])


# --- every registered model -----------------------------------------------------------------

def bench_model(name: str, batch: int, dtype: str, repeats: int) -> dict:
    """Times one training step of ``name`` on ``batch`` examples (``6·P·examples``, or
    tokens for ``[B, T]`` integer inputs)."""
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


def all_models(args) -> int:
    names = [n for n in zoo.list_models() if zoo.get(n).num_params() <= args.max_params
             and (not args.quick or "tiny" in n)]
    repeats = 3 if args.quick else 10
    env = harness.environment()
    peak = matmul_peak(512 if args.quick else 2048)
    print(f"matmul peak {peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({env['device_kind']})")
    records = []
    for name in names:
        try:
            r = bench_model(name, args.batch or 32, args.dtype or "float32", repeats)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a tiny decoder ({QUICK_MODEL}) on a CPU, under a minute")
    parser.add_argument("--all", action="store_true",
                        help="one step of every registered model instead of the flagship")
    parser.add_argument("--model", default=None, help=f"registered decoder (default "
                        f"{DEFAULT_MODEL}; {QUICK_MODEL} with --quick)")
    parser.add_argument("--batch", type=int, default=None, help="examples per step")
    parser.add_argument("--accumulate", type=int, default=1, help="micro-batches per step")
    parser.add_argument("--dtype", default=None, choices=("float32", "bfloat16"))
    parser.add_argument("--remat", default="none", choices=list(REMAT))
    parser.add_argument("--length", type=int, default=None, help="sequence length n")
    parser.add_argument("--peak", type=float, default=None,
                        help="datasheet peak FLOP/s (default: the table for known chips)")
    parser.add_argument("--max-params", type=int, default=5_000_000, help="with --all")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    try:
        return all_models(args) if args.all else flagship(args)
    except ValueError as err:
        parser.error(str(err))


if __name__ == "__main__":
    raise SystemExit(main())
