"""Restricted (windowed) self-attention against full attention: every implementation the
zoo has for this device, in useful TFLOP/s.

Useful FLOPs count only the band: ``4·B·N·H·Σ_t |window(t)|`` forward (``Q Kᵀ`` and
``P V``, ``|window(t)|`` the keys query ``t`` may see), and 2.5 times that more for the
backward pass (flash attention's count), so a path that computes all ``n²`` scores and masks
them scores low. Candidates: the plain blocked path (``implementation="xla"``), the CPU tiles
(``"chunked"``), one causal cuDNN call (``"cudnn"``, a GPU, 16-bit), and full attention by
cuDNN or XLA for comparison. Each is timed by ``harness.time_jax`` (compile apart, warm-up,
minimum and median of the repeats); a case that does not fit or fails is recorded with its
error.

Usage:
    python -m zoo.bench.window_speed --quick                       # CPU, seconds
    python -m zoo.bench.window_speed --lengths 8192 16384 32768 65536 --windows 256 1024
"""

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from zoo.bench import harness
from zoo import attention as A
from zoo.kernels import has_platform


@dataclasses.dataclass(frozen=True, kw_only=True)
class Case:
    """One shape: ``n`` positions, a window ``r`` (``None``: full attention)."""
    n: int
    window: int | None
    batch: int = 1
    heads: int = 16
    head_dim: int = 128
    dtype: str = "bfloat16"
    causal: bool = False

    def useful_flops(self, backward: bool) -> float:
        """``4·B·N·H·Σ_t |window(t)|``, times 3.5 with the backward pass."""
        t = np.arange(self.n)
        r = self.n if self.window is None else self.window
        hi = t if self.causal else np.minimum(t + r, self.n - 1)
        seen = float((hi - np.maximum(t - r, 0) + 1).sum())
        return 4.0 * self.batch * self.heads * self.head_dim * seen * (3.5 if backward else 1)


def candidates(window: int | None) -> list[str]:
    """The implementations to time on this process's devices."""
    if window is None:
        return ["auto"] + (["cudnn"] if has_platform("cuda") else []) + ["xla"]
    names = ["xla", "chunked"]
    return names + (["cudnn"] if has_platform("cuda") else [])


def run_case(case: Case, impl: str, backward: bool, repeats: int) -> dict:
    q, k, v = harness.random_inputs(case.n, *[(case.batch, case.n, case.heads,
                                               case.head_dim)] * 3, dtype=case.dtype)

    def fwd(q, k, v):
        return A.attend(q, k, v, window=case.window, causal=case.causal,
                        implementation=impl)[0]

    def fwd_bwd(q, k, v):
        return jax.grad(lambda *a: fwd(*a).astype(jnp.float32).sum(), argnums=(0, 1, 2))(
            q, k, v)
    rec = {"suite": "window_speed", **dataclasses.asdict(case), "impl": impl,
           "mode": "fwd+bwd" if backward else "fwd"}
    try:
        timing = harness.time_jax(fwd_bwd if backward else fwd, q, k, v, repeats=repeats,
                                  min_total_s=0.2)
    except Exception as err:                       # noqa: BLE001 - recorded, not raised
        return {**rec, "error": f"{type(err).__name__}: {str(err)[:200]}"}
    timing.pop("times")
    tflops = case.useful_flops(backward) / timing["min_s"] / 1e12
    return {**rec, **timing, "useful_tflops": tflops}


def markdown(records: list[dict], env: dict) -> str:
    lines = ["# Restricted attention speed", "",
             f"Device: {env['device_kind']} ({env['platform']}); jax {env['jax']}. Useful "
             "TFLOP/s count only the band's scores (module docstring), from the fastest "
             "repeat; ms are min (median).", "",
             "| n | window | mode | implementation | ms | useful TFLOP/s |",
             "|---:|---:|---|---|---:|---:|"]
    for r in records:
        shown = (f"{1e3 * r['min_s']:.2f} ({1e3 * r['median_s']:.2f}) | "
                 f"{r['useful_tflops']:.3g}") if "error" not in r else f"— | {r['error']}"
        lines.append(f"| {r['n']} | {r['window'] or 'full'} | {r['mode']} | {r['impl']} | "
                     f"{shown} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m zoo.bench.window_speed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small CPU sizes, float32")
    parser.add_argument("--lengths", type=int, nargs="+", default=[8192, 16384, 32768, 65536])
    parser.add_argument("--windows", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.windows, args.heads, args.head_dim = [256, 512], [16], 2, 32
        args.dtype, args.repeats = "float32", 2
    bad = [v for v in (*args.lengths, *args.windows, args.heads, args.head_dim, args.repeats)
           if v < 1]
    if bad:
        parser.error(f"every length, window, head count and repeat count must be >= 1, got {bad}")
    env, records = harness.environment(), []
    for n in args.lengths:
        for window in [*args.windows, None]:
            case = Case(n=n, window=window, heads=args.heads, head_dim=args.head_dim,
                        dtype=args.dtype)
            for backward in (False, True):
                for impl in candidates(window):
                    r = run_case(case, impl, backward, args.repeats)
                    records.append({**r, "env": env, "time": time.strftime("%Y-%m-%d %H:%M:%S")})
                    print(markdown([r], env).splitlines()[-1], flush=True)
    stem = "window_speed" + ("_quick" if args.quick else "") + (
        "" if env["platform"] == "cpu" else f"_{env['platform']}")
    out = Path(args.out)
    (out / f"{stem}.jsonl").unlink(missing_ok=True)
    harness.write_jsonl(out / f"{stem}.jsonl", records)
    (out / f"{stem}.md").write_text(markdown(records, env))
    return records


if __name__ == "__main__":
    main()
