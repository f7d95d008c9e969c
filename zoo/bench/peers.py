"""The zoo's layers beside Flax's built-ins and PyTorch's, timed in one run.

Each case builds the same layer three ways at the same size: the zoo's pure function, Flax's
module, and (when installed) PyTorch's module, and times the forward pass and forward+backward
(gradient of the summed output with respect to the parameters). Ratios are
``zoo time / peer time`` (below 1: the zoo is faster). The three run in turn, one run of
each per round, in one process, so the ratios hold even when absolute times drift on a
shared machine.

Run ``python -m zoo.bench.peers [--quick]``; :mod:`zoo.bench.table1` runs it too.
"""

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from zoo.bench import harness


def _grad_sum(apply):
    """forward+backward: d(sum of outputs)/d(params)."""
    return lambda p, x: jax.grad(lambda p: jnp.sum(apply(p, x)))(p)


def attention_case(b, n, d, heads):
    from flax import linen as nn
    from zoo import attention
    cfg = attention.Config(d_model=d, num_heads=heads)
    flax_mod = nn.MultiHeadDotProductAttention(num_heads=heads, qkv_features=d, out_features=d)

    def torch_mod():
        import torch
        return torch.nn.MultiheadAttention(d, heads, batch_first=True)
    return dict(
        layer="multi-head self-attention", shape=f"B={b} n={n} d={d} heads={heads}",
        x_shape=(b, n, d),
        zoo=(lambda p, x: attention.apply(p, x, cfg), lambda k: attention.init(k, cfg)),
        flax=(lambda v, x: flax_mod.apply(v, x), lambda k, x: flax_mod.init(k, x)),
        torch=(torch_mod, lambda m, x: m(x, x, x, need_weights=False)[0]))


def lstm_case(b, n, d):
    from flax import linen as nn
    from zoo import rnn
    cfg = rnn.Config(cell="lstm", in_dim=d, hidden_dim=d, output="sequence")
    flax_mod = nn.RNN(nn.OptimizedLSTMCell(d))

    def torch_mod():
        import torch
        return torch.nn.LSTM(d, d, batch_first=True)
    return dict(
        layer="LSTM", shape=f"B={b} n={n} d={d}", x_shape=(b, n, d),
        zoo=(lambda p, x: rnn.apply(p, x, None, cfg), lambda k: rnn.init(k, cfg)),
        flax=(lambda v, x: flax_mod.apply(v, x), lambda k, x: flax_mod.init(k, x)),
        torch=(torch_mod, lambda m, x: m(x)[0]))


def conv_case(b, n, d, k):
    from flax import linen as nn
    from zoo import cnn
    flax_mod = nn.Conv(d, (k,), padding="SAME")

    def zoo_apply(p, x):
        return cnn.conv(x, p["w"], p["b"], padding="same")

    def zoo_init(key):
        return {"w": jax.random.normal(key, (k, d, d)) / np.sqrt(k * d), "b": jnp.zeros(d)}

    def torch_mod():
        import torch
        return torch.nn.Conv1d(d, d, k, padding="same")
    return dict(
        layer="1D convolution", shape=f"B={b} n={n} d={d} k={k}", x_shape=(b, n, d),
        zoo=(zoo_apply, zoo_init),
        flax=(lambda v, x: flax_mod.apply(v, x), lambda k_, x: flax_mod.init(k_, x)),
        # PyTorch convolves channels-first: the transpose is part of its layer here.
        torch=(torch_mod, lambda m, x: m(x.transpose(1, 2)).transpose(1, 2)))


SIZES = {
    "quick": [("attention", (4, 512, 128, 4)), ("lstm", (16, 128, 128)),
              ("conv", (8, 1024, 128, 3))],
    "full": [("attention", (16, 2048, 512, 8)), ("lstm", (64, 512, 512)),
             ("conv", (32, 4096, 256, 3))],
    "smoke": [("attention", (2, 16, 8, 2)), ("lstm", (2, 8, 8)), ("conv", (2, 16, 8, 3))],
}
CASES = {"attention": attention_case, "lstm": lstm_case, "conv": conv_case}


def run_case(case: dict, repeats: int) -> list[dict]:
    key = jax.random.key(0)
    (x,) = harness.random_inputs(key, case["x_shape"])
    zoo_apply, zoo_init = case["zoo"]
    flax_apply, flax_init = case["flax"]
    params, variables = zoo_init(jax.random.key(1)), flax_init(jax.random.key(2), x)
    records = []
    for mode in ("fwd", "fwd+bwd"):
        wrap = (lambda f: f) if mode == "fwd" else _grad_sum
        calls = {"zoo": harness.jax_call(wrap(zoo_apply), params, x),
                 "flax": harness.jax_call(wrap(flax_apply), variables, x)}
        torch_call = _torch_call(case, np.asarray(x), mode == "fwd+bwd")
        if torch_call:
            calls["torch"] = torch_call
        times = harness.time_interleaved(calls, repeats=repeats, lead=1)
        rec = {"layer": case["layer"], "shape": case["shape"], "mode": mode}
        for impl, t in times.items():
            rec[f"{impl}_median_s"] = t["median_s"]
            rec[f"{impl}_min_s"], rec[f"{impl}_max_s"] = t["min_s"], t["max_s"]
        for peer in ("flax", "torch"):
            if peer in times:
                rec[f"zoo_over_{peer}"] = times["zoo"]["median_s"] / times[peer]["median_s"]
        records.append(rec)
    return records


def _torch_call(case, x_np, backward):
    try:
        import torch
    except ImportError:
        return None
    make, call = case["torch"]
    torch.manual_seed(0)
    return harness.torch_runner(make(), x_np, backward, call)


def run(sizes: str = "quick", repeats: int = 5) -> list[dict]:
    return [rec for name, args in SIZES[sizes] for rec in run_case(CASES[name](*args), repeats)]


def markdown(records: list[dict]) -> str:
    lines = ["| layer | size | pass | zoo ms | Flax ms | PyTorch ms | zoo / Flax | zoo / PyTorch |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        torch_ms = f"{r['torch_median_s'] * 1e3:.2f}" if "torch_median_s" in r else "—"
        over_torch = f"{r['zoo_over_torch']:.2f}" if "zoo_over_torch" in r else "—"
        lines.append(f"| {r['layer']} | {r['shape']} | {r['mode']} | "
                     f"{r['zoo_median_s'] * 1e3:.2f} | {r['flax_median_s'] * 1e3:.2f} | "
                     f"{torch_ms} | {r['zoo_over_flax']:.2f} | {over_torch} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", choices=sorted(SIZES), default="quick")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/peers"))
    args = parser.parse_args(argv)
    records = run(args.sizes, args.repeats)
    env = harness.environment()
    args.out.mkdir(parents=True, exist_ok=True)
    harness.write_jsonl(args.out / "results.jsonl", [{**r, **env} for r in records])
    table = markdown(records)
    (args.out / "report.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
