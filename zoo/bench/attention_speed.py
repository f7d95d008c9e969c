"""Attention speed on this machine: the zoo against jax.nn, Flax (Linen, NNX) and PyTorch, and
restricted-window attention against full attention as n grows.

    python -m zoo.bench.attention_speed            # B 8, n 1024; windows for n 128 .. 4096
    python -m zoo.bench.attention_speed --quick    # small sizes, for CI

Writes ``attention_speed.jsonl`` and ``attention_speed.md`` under ``--out``. Forward passes
only, float32, default matmul precision; the tables give the fastest repeat and the median
(min, median and max are in the JSON lines).
"""

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from zoo.bench import harness
from zoo import attention as A
from zoo import transformer as tf
from zoo.kernels import attention_chunked, attention_local


def _torch_time(fn, repeats):
    import torch
    with torch.inference_mode():
        return harness.time_python(fn, repeats=repeats, warmup=2)


def core_cases(b, n, heads, h, repeats):
    """The attention core: softmax(q kᵀ/√H) v on [B, n, N, H]."""
    import torch
    q, k, v = harness.random_inputs(jax.random.key(0), *[(b, n, heads, h)] * 3)
    flops = 4 * b * heads * n * n * h
    rows = [
        ("core", "zoo chunked (implementation='auto' on CPU)",
         harness.time_jax(lambda q, k, v: attention_chunked.chunked_attention(q, k, v), q, k, v,
                          repeats=repeats),
         harness.memory_analysis(lambda q, k, v: attention_chunked.chunked_attention(q, k, v),
                                 q, k, v)),
        ("core", "zoo explicit (returns weights)",
         harness.time_jax(lambda q, k, v: A.dot_product_attention(q, k, v)[0], q, k, v,
                          repeats=repeats),
         harness.memory_analysis(lambda q, k, v: A.dot_product_attention(q, k, v)[0], q, k, v)),
        ("core", "jax.nn.dot_product_attention (xla)",
         harness.time_jax(jax.nn.dot_product_attention, q, k, v, repeats=repeats),
         harness.memory_analysis(jax.nn.dot_product_attention, q, k, v)),
    ]
    tq, tk, tv = (torch.from_numpy(np.asarray(a)).transpose(1, 2).contiguous()
                  for a in (q, k, v))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    rows.append(("core", "torch scaled_dot_product_attention",
                 _torch_time(lambda: sdpa(tq, tk, tv), repeats), {}))
    return [_record(kind, name, t, m, flops, b=b, n=n, heads=heads, head_dim=h)
            for kind, name, t, m in rows]


def layer_cases(b, n, d, heads, repeats):
    """Multi-head self-attention layers (projections included) and one encoder layer."""
    import torch
    from flax import linen, nnx
    x, = harness.random_inputs(jax.random.key(1), (b, n, d))
    flops = 4 * b * heads * n * n * (d // heads) + 8 * b * n * d * d
    cfg = A.Config(d_model=d, num_heads=heads)
    params = A.init(jax.random.key(0), cfg)
    rows = [("mha", "zoo attention.apply", harness.time_jax(
        lambda p, x: A.apply(p, x, cfg), params, x, repeats=repeats),
        harness.memory_analysis(lambda p, x: A.apply(p, x, cfg), params, x))]
    lin = linen.MultiHeadDotProductAttention(num_heads=heads, qkv_features=d)
    variables = lin.init(jax.random.key(0), x)
    f = lambda v, x: lin.apply(v, x)
    rows.append(("mha", "flax linen MultiHeadDotProductAttention",
                 harness.time_jax(f, variables, x, repeats=repeats),
                 harness.memory_analysis(f, variables, x)))
    mod = nnx.MultiHeadAttention(num_heads=heads, in_features=d, decode=False,
                                 rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(mod)
    g = lambda s, x: nnx.merge(graphdef, s)(x)
    rows.append(("mha", "flax nnx MultiHeadAttention",
                 harness.time_jax(g, state, x, repeats=repeats),
                 harness.memory_analysis(g, state, x)))
    tx = torch.from_numpy(np.asarray(x))
    mha = torch.nn.MultiheadAttention(d, heads, batch_first=True).eval()
    rows.append(("mha", "torch nn.MultiheadAttention",
                 _torch_time(lambda: mha(tx, tx, tx, need_weights=False), repeats), {}))
    out = [_record(k, nm, t, m, flops, b=b, n=n, d_model=d, heads=heads)
           for k, nm, t, m in rows]

    tcfg = tf.Config(kind="encoder", vocab_size=8, d_model=d, num_heads=heads, d_ff=4 * d,
                     num_layers=1, norm="post")
    layer = jax.tree.map(lambda a: a[0], tf.init(jax.random.key(0), tcfg)["encoder"])
    enc = lambda p, x: tf.encoder_layer(p, x, tcfg)[0]
    enc_flops = flops + 4 * b * n * d * 4 * d
    out.append(_record("encoder_layer", "zoo transformer.encoder_layer",
                       harness.time_jax(enc, layer, x, repeats=repeats),
                       harness.memory_analysis(enc, layer, x), enc_flops, b=b, n=n, d_model=d))
    tl = torch.nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0,
                                          batch_first=True).eval()
    out.append(_record("encoder_layer", "torch nn.TransformerEncoderLayer",
                       _torch_time(lambda: tl(tx), repeats), {}, enc_flops, b=b, n=n,
                       d_model=d))
    return out


def window_cases(lengths, window, heads, h, repeats):
    """Restricted (blocked) against full attention, batch 1."""
    out = []
    for n in lengths:
        q, = harness.random_inputs(jax.random.key(n), (1, n, heads, h))
        tiles = lambda q: attention_local.local_attention(q, q, q, window=window)
        local = lambda q: A.local_attention(q, q, q, window=window)
        full = lambda q: attention_chunked.chunked_attention(q, q, q)
        full_explicit = lambda q: A.dot_product_attention(q, q, q)[0]
        for name, fn in (("restricted (CPU tiles)", tiles), ("restricted (plain blocked)", local),
                         ("full (chunked)", full), ("full (explicit)", full_explicit)):
            rec = _record("window", name, harness.time_jax(fn, q, repeats=repeats),
                          harness.memory_analysis(fn, q), None, n=n, window=window,
                          heads=heads, head_dim=h)
            rec["xla_flops"] = harness.xla_flops(fn, q)
            out.append(rec)
    return out


def _record(kind, name, timing, memory, flops, **shape):
    rec = {"suite": "attention_speed", "kind": kind, "name": name, **shape, **timing,
           **memory}
    if flops:
        rec["gflops_per_s"] = flops / timing["min_s"] / 1e9
    return rec


def markdown(records, env):
    lines = [f"# Attention speed\n\nMachine: {env['cpu']} ({env['device_count']} XLA CPU "
             f"device(s), platform {env['platform']}); jax {env['jax']}, flax "
             f"{env.get('flax')}, torch {env.get('torch')}; matmul precision "
             f"{env['matmul_precision']}. Forward pass, float32. Ratios and GFLOP/s use the "
             "fastest of the repeats (on a shared machine other work only adds time); the "
             "median is shown beside it.\n"]
    for kind, title in (("core", "Attention core"), ("mha", "Multi-head self-attention layer"),
                        ("encoder_layer", "Encoder layer")):
        rows = [r for r in records if r["kind"] == kind]
        if not rows:
            continue
        ref = rows[0]["min_s"]
        shape = {k: rows[0][k] for k in ("b", "n", "heads", "head_dim", "d_model")
                 if k in rows[0]}
        lines += [f"\n## {title} {shape}\n",
                  "| implementation | min ms (median) | GFLOP/s | time / zoo | temp MiB |",
                  "|---|---:|---:|---:|---:|"]
        for r in rows:
            temp = f"{r['temp_bytes'] / 2**20:.1f}" if "temp_bytes" in r else "n/a"
            lines.append(f"| {r['name']} | {1e3 * r['min_s']:.2f} ({1e3 * r['median_s']:.2f}) | "
                         f"{r.get('gflops_per_s', 0):.1f} | {r['min_s'] / ref:.2f} | {temp} |")
    rows = [r for r in records if r["kind"] == "window"]
    if rows:
        lines += [f"\n## Restricted (window {rows[0]['window']}) vs full attention, batch 1, "
                  f"{rows[0]['heads']} heads of {rows[0]['head_dim']}\n",
                  "| n | attention | min ms | XLA GFLOP | temp MiB |", "|---:|---|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['n']} | {r['name']} | {1e3 * r['min_s']:.2f} | "
                         f"{(r['xla_flops'] or 0) / 1e9:.3f} | {r['temp_bytes'] / 2**20:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    if args.quick:
        b, n, lengths, repeats = 2, 256, (128, 256, 512), 3
    else:
        b, n, lengths, repeats = 8, 1024, (128, 256, 512, 1024, 2048, 4096), 5
    env = harness.environment()
    records = core_cases(b, n, 8, 64, repeats)
    records += layer_cases(b, n, 512, 8, repeats)
    records += window_cases(lengths, 32, 8, 64, repeats)
    for r in records:
        r["env"] = env
    out = Path(args.out)
    stem = "attention_speed_quick" if args.quick else "attention_speed"
    (out / f"{stem}.jsonl").unlink(missing_ok=True)
    harness.write_jsonl(out / f"{stem}.jsonl", records)
    text = markdown(records, env)
    (out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
