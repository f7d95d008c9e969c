"""Old (d342c98) against new rnn/attention on the CPU, interleaved in one process.

Run from the repository root: python benchmarks/results/kernels_ab_cpu.py
"""
import importlib.util, json, subprocess, sys, tempfile
from pathlib import Path
import jax, jax.numpy as jnp
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from zoo.bench.harness import jax_call, time_interleaved
from zoo import rnn, attention as A
from zoo.kernels import attention_local
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m
OLD = tempfile.mkdtemp()
for name in ("rnn", "attention"):
    text = subprocess.run(["git", "show", f"d342c98:zoo/{name}.py"], capture_output=True,
                          text=True, check=True).stdout
    Path(OLD, f"old_{name}.py").write_text(text)
old_rnn = load("old_rnn", f"{OLD}/old_rnn.py")
old_att = load("old_attention", f"{OLD}/old_attention.py")
out = []
for t in (64, 128, 256):
    x = jax.random.normal(jax.random.key(t), (32, t, 256))
    new_cfg = rnn.Config(cell="lstm", in_dim=256, hidden_dim=256, output="sequence")
    old_cfg = old_rnn.Config(cell="lstm", in_dim=256, hidden_dim=256, output="sequence")
    p = rnn.init(jax.random.key(0), new_cfg)
    for mode in ("fwd", "fwd+bwd"):
        def mk(mod, cfg):
            f = lambda p, x: mod.apply(p, x, None, cfg)
            if mode == "fwd+bwd":
                return jax_call(lambda p, x: jax.grad(lambda p: jnp.sum(f(p, x)))(p), p, x)
            return jax_call(f, p, x)
        times = time_interleaved({"old": mk(old_rnn, old_cfg), "new": mk(rnn, new_cfg)},
                                 repeats=15, warmup=2, lead=1)
        r = {"case": f"lstm T{t} {mode}", **{k: (v["min_s"]*1e3, v["median_s"]*1e3) for k, v in times.items()}}
        print(json.dumps(r), flush=True); out.append(r)
for n in (1024, 4096):
    q = jax.random.normal(jax.random.key(n), (16, n, 1, 64))
    for mode in ("fwd", "fwd+bwd"):
        def mk(fn):
            if mode == "fwd+bwd":
                return jax_call(lambda q: jax.grad(lambda q: jnp.sum(fn(q) ** 2))(q), q)
            return jax_call(fn, q)
        calls = {"old tiles": mk(lambda q: old_att.local_attention(q, q, q, window=16)),
                 "new auto": mk(lambda q: A.attend(q, q, q, window=16)[0])}
        times = time_interleaved(calls, repeats=15, warmup=2, lead=1)
        r = {"case": f"local n{n} {mode}", **{k: (v["min_s"]*1e3, v["median_s"]*1e3) for k, v in times.items()}}
        print(json.dumps(r), flush=True); out.append(r)
q = jax.random.normal(jax.random.key(1), (8, 1024, 8, 64))
calls = {"old auto": jax_call(lambda q: old_att.attend(q, q, q)[0], q),
         "new auto": jax_call(lambda q: A.attend(q, q, q)[0], q)}
times = time_interleaved(calls, repeats=9, warmup=1, lead=1)
r = {"case": "full b8 n1024 h8x64 fwd", **{k: (v["min_s"]*1e3, v["median_s"]*1e3) for k, v in times.items()}}
print(json.dumps(r), flush=True)
