"""The Table 1 report: fitted exponents, crossovers, the markdown table and log-log plots,
from the records :mod:`zoo.bench.table1` measures."""

import math
import sys
from collections.abc import Mapping
from pathlib import Path

from zoo.bench import analysis

def summarize(records: list[dict], sweep, layers: Mapping) -> dict:
    """Fitted exponents, sequential operations, path lengths and crossovers per layer
    (``sweep`` a :class:`zoo.bench.planner.Sweep`, ``layers`` the rows by name)."""
    rows = {}
    for name in dict.fromkeys(r["layer"] for r in records):
        layer = layers[name]
        by_n = sorted((r for r in records if r["layer"] == name and r["kind"] == "n_sweep"),
                      key=lambda r: r["n"])
        by_d = sorted((r for r in records if r["layer"] == name and r["kind"] == "d_sweep"),
                      key=lambda r: r["d"])
        paths = sorted((r for r in records if r["layer"] == name and r["kind"] == "path"),
                       key=lambda r: r["n"])
        rows[name] = {
            "layer": name, "row": layer.row, "complexity": layer.complexity,
            "n_theory": layer.n_exponent, "d_theory": layer.d_exponent,
            "flops_n": fit(by_n, "n", "flops"), "flops_d": fit(by_d, "d", "flops"),
            "time_n": fit(by_n, "n", "fwd_min_s", sweep.min_time),
            "time_d": fit(by_d, "d", "fwd_min_s", sweep.min_time),
            "time_n_bwd": fit(by_n, "n", "fwdbwd_min_s", sweep.min_time),
            "sequential_theory": layer.sequential,
            "sequential": {r["n"]: r["sequential_ops"] for r in by_n},
            "sequential_expected": {r["n"]: layer.sequential_theory(r["n"]) for r in by_n},
            "path_theory": layer.path_length,
            "path": {r["n"]: r["path_length"] for r in paths},
            "path_expected": {r["n"]: r["path_theory"] for r in paths},
        }
    return {"rows": rows, "crossover": crossovers(records, sweep.crossover_batch)}


#: Saturated sizes run at one FLOP rate, within this factor (slower ones still pay fixed
#: costs, faster ones still fit in a cache the others overflow).
SATURATION = 0.8


def fit(recs: list[dict], size_key: str, cost_key: str, min_time: float | None = None):
    """Log-log fit of ``cost_key`` against ``size_key``. Time fits (``min_time`` given) keep
    the saturated sizes: those taking at least ``min_time`` and, among them, the largest set
    whose analytic-FLOP rates agree within a factor :data:`SATURATION`
    (:func:`zoo.bench.analysis.saturated`); with fewer than three such
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
    out = analysis.fit_exponent([p[0] for p in pts], [p[1] for p in pts])
    out["sizes"] = [p[0] for p in pts]
    out["saturated"] = saturated
    return out


def crossovers(records: list[dict], batch: int) -> list[dict]:
    """For each d, self-attention's forward time over the Elman RNN's at every n both were
    timed at (batch ``batch``), and the n where that ratio crosses 1 (:func:`crossing`)."""
    out = []
    ds = sorted({r["d"] for r in records if r["kind"] in ("crossover", "n_sweep")})
    for d in ds:
        att = _times(records, "self-attention", d, batch)
        rec = _times(records, "recurrent-elman", d, batch)
        common = sorted(set(att) & set(rec))
        if len(common) < 2:
            continue
        ratio = [att[n] / rec[n] for n in common]
        out.append({"d": d, "n": common, "attention_over_recurrent": ratio,
                    "crossover_n": crossing(common, ratio)})
    return out


def _times(records, layer, d, batch):
    return {r["n"]: r["fwd_min_s"] for r in records
            if r["kind"] in ("crossover", "n_sweep") and r["layer"] == layer and r["d"] == d
            and r["batch"] == batch}


def crossing(ns, ratio) -> float | None:
    """The n where ``ratio`` (at sizes ``ns``, ascending) first crosses 1, interpolated
    linearly in log n against log ratio; None if it never does.

    >>> round(crossing([64, 128, 256], [0.5, 0.8, 1.6]))
    160
    """
    for (n0, r0), (n1, r1) in zip(zip(ns, ratio), zip(ns[1:], ratio[1:])):
        if (r0 - 1) * (r1 - 1) <= 0 and r0 != r1:
            f = math.log(r0) / (math.log(r0) - math.log(r1))
            return float(math.exp(math.log(n0) + f * (math.log(n1) - math.log(n0))))
    return None


def markdown(summary: dict, records: list[dict], sweep) -> str:
    """The report: the table, the crossover table and every measurement."""
    env = next(iter(records), {})
    lines = [
        "# Table 1 of \"Attention Is All You Need\", measured", "",
        f"Device: {env.get('device_kind')} ({env.get('platform')}, {env.get('device_count')} "
        f"device(s)), host CPU {env.get('cpu')}; jax {env.get('jax')}, zoo {env.get('zoo')}, "
        f"{next((r['dtype'] for r in records if 'dtype' in r), 'float32')}, matmul precision "
        f"{env.get('matmul_precision')}; sweep `{sweep.name}`; host memory allocator: "
        f"{env.get('malloc', 'system default')}.", "",
        _method(sweep), "",
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
              "Measured: forward time of the self-attention layer over that of the Elman RNN "
              f"layer at the same n and d, batch {sweep.crossover_batch} (< 1: attention "
              "faster); the crossover n is interpolated in log n.", "",
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
        xla = f"{r['xla_flops'] / 1e9:.3f}" if r.get("xla_flops") else "not reported"
        lines.append(
            f"| {r['layer']} | {r['batch']} | {r['n']} | {r['d']} | {r['fwd_median_s'] * 1e3:.2f} "
            f"({r['fwd_min_s'] * 1e3:.2f}–{r['fwd_max_s'] * 1e3:.2f}) | "
            f"{_ms(r.get('fwdbwd_min_s'))} | {r['fwd_compile_s']:.2f} | "
            f"{r['flops'] / 1e9:.3f} | {xla} | {r.get('temp_bytes', 0) / 2 ** 20:.1f} | "
            f"{r['sequential_ops']} |")
    lines += ["", "XLA GFLOP reads \"not reported\" where XLA's cost analysis cannot count the "
              "program: it counts one iteration of a while loop, and nothing inside a custom "
              "call (cuDNN, Pallas), for which it returns 0 or -0 (`xla_flops_note` in "
              "results.jsonl says which)."]
    return "\n".join(lines) + "\n"


def _method(sweep) -> str:
    """How the table was measured, for the report."""
    return (
        "Exponents are least-squares slopes of log cost against log size ± their standard "
        "error, with the theory's exponent and the number of sizes fitted in brackets. Time "
        "fits use the minimum over all samples, taken in rounds that revisit every size in "
        "turn (on a shared machine other work only adds time, and a burst of it lands on "
        "some samples of each size rather than on all samples of a few) "
        f"at the saturated sizes: those whose pass takes at least the sweep's minimum time "
        f"and, among those, the largest set whose FLOP rates agree (the slowest at least "
        f"{SATURATION:.0%} of the fastest; larger sizes on a tie), so that neither fixed "
        "costs nor a cache that only the smaller sizes fit in bends a fit (marked † "
        "where fewer than three sizes qualified). The d sweep times the forward pass at the "
        "batch and n listed under Measurements (recurrence at a larger batch: its step's "
        "product has only the batch as rows). "
        "Sequential operations are the loop trip counts of the compiled forward program (for "
        "attention, the minimum over the zoo's paths: XLA's fused path has no loop, the timed "
        "CPU paths map over query blocks or tiles). Path lengths are counted by pulling a "
        "cotangent back from output n−1 one layer (a recurrence: one step) at a time, "
        "rescaled after each hop so that nothing underflows, until input 0 is reached. "
        "Unless run with `--system-malloc`, the process keeps "
        "freed memory for reuse (`harness.keep_freed_memory`): by default glibc maps blocks "
        "over 32 MiB afresh on every call, and faulting their pages in again slowed only the "
        "largest sizes. The self-attention rows have width d = heads × 64 and project "
        "from and to a model width of 8, so their projections add a small term linear in n "
        "to the n²·d the paper's row counts (the analytic FLOPs include it: their fitted "
        f"exponents are not the theory's by construction). Restricted attention's window r = "
        f"{sweep.window}; its analytic FLOPs count the 2r + 1 keys each query sees.")


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


