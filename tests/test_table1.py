"""The Table 1 suite: its probes on the zoo's real layers, its FLOP formulas against XLA's
count, the planner on stated devices, the crossover and fits on synthetic timings, and a
smoke run end to end."""

import json

import jax
import numpy as np
import pytest

from zoo.bench import analysis, planner, table1, table1_report


# --- path lengths, each derived here from the layer's definition -------------------------------

def _hops(n, reach):
    """Layers from output n−1 back to input 0 when each layer sees ``reach`` positions back."""
    position, hops = n - 1, 0
    while position > 0:
        position, hops = max(0, position - reach), hops + 1
    return hops


def _dilated_depth(n, k):
    """Least depth whose receptive field 1 + Σ_l (k−1)·kˡ covers n positions."""
    depth, field = 0, 1
    while field < n:
        field += (k - 1) * k ** depth
        depth += 1
    return depth


def _expected_path(name, n, window):
    return {"self-attention": 1, "recurrent-elman": n - 1, "recurrent-gru": n - 1,
            "recurrent-lstm": n - 1, "convolutional": _hops(n, table1.KERNEL - 1),
            "convolutional-dilated": _dilated_depth(n, table1.KERNEL),
            "restricted-attention": _hops(n, window)}[name]


@pytest.mark.parametrize("n, window", [(1024, 64), (4096, 256)])
@pytest.mark.parametrize("name", list(table1.LAYERS))
def test_path_length_at_long_sequences(name, n, window):
    # unscaled, the gradient through n − 1 recurrent steps underflows even float64 here
    assert table1.measure_path(name, n, window) == _expected_path(name, n, window)


def test_the_tables_path_column_is_the_definition():
    for n in (2, 3, 9, 10, 28, 1000):
        for name, layer in table1.table(5).items():
            assert layer.path_theory(n) == _expected_path(name, n, 5), (name, n)


# --- FLOPs: the analytic formula against XLA's count of a loop-free program -------------------

def _loop_free(name, b, n, d):
    """The layer as a program without loops, so that XLA counts all of its work."""
    layer = table1.table(16)[name]
    if name.startswith("recurrent"):
        cell = {"recurrent-elman": "rnn", "recurrent-gru": "gru", "recurrent-lstm": "lstm"}
        return table1._recurrent(cell[name], unroll=n)(0, b, n, d)
    return layer.count_build(0, b, n, d)


@pytest.mark.parametrize("name", list(table1.LAYERS))
def test_analytic_flops_match_xlas_count_at_two_sizes(name):
    layer = table1.table(16)[name]
    b, d = 2, 128
    # recurrences unrolled: short; convolutions: long enough that the causal padding's
    # missing taps (which XLA does not count) are a few percent
    sizes = (12, 24) if name.startswith("recurrent") else (128, 256)
    counts = []
    for n in sizes:
        fn, args = _loop_free(name, b, n, d)
        compiled = jax.jit(fn).lower(*args).compile()
        xla, note = analysis.reported_flops(compiled.as_text(), compiled.cost_analysis())
        assert xla is not None, note
        counts.append(xla)
        if name == "restricted-attention":
            # the analytic count is the band's useful work (2r + 1 keys a query); a blocked
            # path computes whole blocks around it, no less and a bounded multiple more
            assert layer.flops(b, n, d) <= xla <= 3 * layer.flops(b, n, d)
        else:
            # XLA also counts the elementwise work (softmax, gates) and skips padded taps
            assert xla == pytest.approx(layer.flops(b, n, d), rel=0.15), (name, n)
    ratio = layer.flops(b, sizes[1], d) / layer.flops(b, sizes[0], d)
    assert counts[1] / counts[0] == pytest.approx(ratio, rel=0.04)


def test_reported_flops_refuses_custom_calls_loops_and_zero_counts():
    assert analysis.reported_flops('custom_call_target="__cudnn$fmhaSoftmax"',
                                   {"flops": -0.0})[0] is None
    assert analysis.reported_flops("ENTRY %main () -> f32[] {", {"flops": -0.0})[0] is None
    scan = jax.jit(lambda x: jax.lax.scan(lambda c, t: (c * t, c), 1.0, x)[1])
    compiled = scan.lower(np.ones(5, np.float32)).compile()
    flops, note = analysis.reported_flops(compiled.as_text(), compiled.cost_analysis())
    assert flops is None and "while loop" in note


# --- the planner on stated devices --------------------------------------------------------------

DEVICES = {
    "80 GiB, 400 TFLOP/s": (planner.Device("gpu", 80 * 2 ** 30, 400e12, bytes_per_s=3.3e12,
                                           step_s=5e-6, call_s=2e-5), "bfloat16", 2),
    "24 GiB CPU, 100 GFLOP/s": (planner.Device("cpu", 24 * 2 ** 30, 100e9, bytes_per_s=2e10,
                                               step_s=2e-6, call_s=1e-5), "float32", 4),
}


@pytest.mark.parametrize("device_name", list(DEVICES))
def test_plan_gives_every_fit_three_long_enough_sizes_within_memory(device_name):
    device, dtype, itemsize = DEVICES[device_name]
    layers = table1.table(64)
    limits = planner.Limits()
    sweep = planner.plan(layers, device, dtype=dtype, window=64, limits=limits)
    assert set(sweep.sizes) == set(layers)
    for name, s in sweep.sizes.items():
        layer = layers[name]
        cases = [(s.n_batch, n, s.d, True) for n in s.ns] + [(s.d_batch, s.n, d, False)
                                                              for d in s.ds]
        assert len(s.ns) >= 3 and len(s.ds) >= 3, name
        assert list(s.ns) == sorted(set(s.ns)) and list(s.ds) == sorted(set(s.ds))
        for b, n, d, backward in cases:
            # at least ~1 ms: the FLOPs at the stated peak, the bytes of the inputs and
            # outputs (attention: q, k, v and outputs; a blocked window also writes and
            # reads the scores of 3 blocks of max(r, 16) keys per query) at the stated
            # bandwidth, or a recurrence's n steps one after another
            heads = max(1, d // 64)
            moved = (4 * b * n * d * itemsize if "attention" in name
                     else 2 * b * n * d * itemsize)
            if name == "restricted-attention":
                moved += 2 * b * heads * n * 3 * 64 * 4
            least = max(layer.flops(b, n, d) / device.flops_per_s, moved / device.bytes_per_s,
                        n * device.step_s * name.startswith("recurrent"))
            assert least >= limits.min_time, (name, b, n, d)
            # nothing beyond the memory: the plan's estimate, and the arrays themselves
            assert layer.peak_bytes(b, n, d, itemsize, backward) <= device.memory_bytes
            assert 2 * b * n * d * itemsize < device.memory_bytes
        if name == "restricted-attention":
            assert min(s.ns) >= 4 * 64 and s.n >= 4 * 64      # the window matters there
    assert planner.estimate_seconds(layers, device, sweep.sizes) <= limits.budget_s
    assert sweep.crossover_d and len(sweep.crossover_n) >= 3      # a ratio curve per d
    for d in sweep.crossover_d:
        for n in sweep.crossover_n:
            for name in ("self-attention", "recurrent-elman"):
                b = sweep.crossover_batch
                assert layers[name].peak_bytes(b, n, d, itemsize, False) <= device.memory_bytes


def test_attention_memory_estimate_grows_as_its_scores():
    attention = table1.table(16)["self-attention"]
    small, large = (attention.peak_bytes(4, n, 256, 4, True) for n in (512, 1024))
    assert 3.5 < large / small <= 4.0         # below the kernel's key blocks: n² scores
    far = attention.peak_bytes(4, 8 * table1.SCORE_KEYS, 256, 4, True)
    assert far > 4 * 8 * table1.SCORE_KEYS * 4 * table1.SCORE_KEYS * 4   # 4 heads' blocks


def test_plan_refuses_a_device_too_small_for_three_sizes():
    tiny = planner.Device("tiny", memory_bytes=2 ** 20, flops_per_s=1e9)
    with pytest.raises(ValueError, match="3 saturated sizes of self-attention"):
        planner.plan({"self-attention": table1.LAYERS["self-attention"]}, tiny)
    with pytest.raises(ValueError, match="memory_bytes must be a positive number"):
        planner.Device("bad", memory_bytes=0, flops_per_s=1e9)


# --- fits and crossovers on synthetic timings --------------------------------------------------

def test_time_fit_recovers_a_known_exponent_past_a_fixed_cost():
    n = 2 ** np.arange(6, 14)
    flops = 4.0 * n ** 2                       # a layer with time ∝ n² once saturated
    times = 5e-5 + flops / 1e9                 # plus a fixed 50 µs per call
    recs = [{"n": int(a), "flops": f, "t": t} for a, f, t in zip(n, flops, times)]
    out = table1_report.fit(recs, "n", "t", min_time=1e-3)
    assert out["saturated"] and min(out["sizes"]) >= 256
    assert out["exponent"] == pytest.approx(2.0, abs=0.05)
    everything = analysis.fit_exponent(n, times)["exponent"]
    assert everything < 1.8                    # the fixed cost bends a fit over all sizes


def test_crossover_is_where_attention_time_reaches_recurrence():
    # attention a·n²·d, recurrence c·n·d²: equal at n = (c / a)·d
    a, c, batch = 1e-12, 3e-12, 16
    records = []
    for d in (64, 128):
        for n in (32, 64, 128, 256, 512, 1024):
            for layer, t in (("self-attention", a * n * n * d), ("recurrent-elman", c * n * d * d)):
                records.append({"kind": "crossover", "layer": layer, "d": d, "n": n,
                                "batch": batch, "fwd_min_s": t})
    records.append({"kind": "crossover", "layer": "self-attention", "d": 64, "n": 32,
                    "batch": batch + 1, "fwd_min_s": 1.0})      # another batch: not used
    found = {c_["d"]: c_["crossover_n"] for c_ in table1_report.crossovers(records, batch)}
    assert found[64] == pytest.approx(3 * 64, rel=1e-9)
    assert found[128] == pytest.approx(3 * 128, rel=1e-9)
    assert table1_report.crossing([32, 64], [0.5, 0.9]) is None


# --- the sweep ----------------------------------------------------------------------------------

def test_quick_jobs_use_each_rows_shape_and_time_only_the_forward_pass_in_d():
    names = ["convolutional", "recurrent-lstm", "self-attention"]
    jobs = table1._jobs(names, table1.QUICK)
    for name in names:
        s = table1.QUICK.layer_sizes(name)
        n_jobs = [args[1:] for kind, args in jobs if kind == "n_sweep" and args[0] == name]
        d_jobs = [args[1:] for kind, args in jobs if kind == "d_sweep" and args[0] == name]
        assert n_jobs == [(s.n_batch, n, s.d, True) for n in s.ns]
        assert d_jobs == [(s.d_batch, s.n, d, False) for d in s.ds]
    # the rows differ where their costs differ (module comment of _quick)
    conv, lstm = (table1.QUICK.layer_sizes(name) for name in ("convolutional", "recurrent-lstm"))
    assert conv.n_batch > lstm.n_batch and lstm.d_batch > conv.d_batch and lstm.n < conv.n
    with pytest.raises(ValueError, match="unknown layer 'lstm2'"):
        table1.QUICK.layer_sizes("lstm2")


def test_smoke_run_writes_the_report_with_exact_counts(tmp_path):
    layers = "self-attention,recurrent-elman"
    assert table1.main(["--smoke", "--layers", layers, "--out", str(tmp_path),
                        "--no-progress"]) == 0
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["layer"] for r in records} == set(layers.split(","))
    assert all(r["platform"] == "cpu" and "jax" in r for r in records)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name, row in summary["rows"].items():
        assert row["sequential"] == {str(n): n if name.startswith("recurrent") else 1
                                     for n in table1.SMOKE.sizes[name].ns}, name
        assert row["path"] == {str(n): n - 1 if name.startswith("recurrent") else 1
                               for n in table1.SMOKE.path_n}, name
    timed = [r for r in records if r["kind"] == "n_sweep"]
    assert all(0 < r["fwd_min_s"] <= r["fwd_median_s"] <= r["fwd_max_s"] for r in timed)
    looped = [r for r in timed if r["sequential_ops_timed_path"] != 1]
    assert looped and all(r["xla_flops"] is None and "while loop" in r["xla_flops_note"]
                          for r in looped)
    by_d = [r for r in records if r["kind"] == "d_sweep"]
    assert by_d and all("fwdbwd_min_s" not in r and r["fwd_min_s"] > 0 for r in by_d)
    report = (tmp_path / "report.md").read_text()
    assert "| self-attention | O(n²·d) |" in report and "not reported" in report
    assert (tmp_path / "time_vs_n.png").stat().st_size > 0
    assert "| LSTM | B=2 n=8 d=8 | fwd+bwd |" in report


def test_unknown_layer_is_refused(capsys):
    with pytest.raises(SystemExit):
        table1.main(["--smoke", "--layers", "self-attention,lstm2"])
    assert "unknown layers ['lstm2']" in capsys.readouterr().err


def test_full_plan_is_printed_without_running(capsys, tmp_path, monkeypatch):
    stated, _, _ = DEVICES["24 GiB CPU, 100 GFLOP/s"]
    monkeypatch.setattr(planner, "measure_device", lambda dtype: stated)
    assert table1.main(["--full", "--plan", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("plan for cpu: 24.0 GiB, 0.1 TFLOP/s")
    assert all(f"  {name}: n [" in err for name in table1.LAYERS)
    assert not (tmp_path / "results.jsonl").exists()
    tiny = planner.Device("tiny", memory_bytes=2 ** 20, flops_per_s=1e9)
    monkeypatch.setattr(planner, "measure_device", lambda dtype: tiny)
    with pytest.raises(SystemExit):
        table1.main(["--full", "--plan"])
    assert "no batch gives 3 saturated sizes" in capsys.readouterr().err


def test_measured_device_has_memory_and_speed():
    device = planner.measure_device("float32")
    assert device.memory_bytes > 2 ** 26 and device.flops_per_s > 1e8
    assert device.bytes_per_s > 1e8 and 0 < device.step_s < 1e-3 and device.call_s < 1e-1


def test_plan_trims_its_largest_sizes_to_the_time_budget():
    device, dtype, _ = DEVICES["80 GiB, 400 TFLOP/s"]
    layers = table1.table(64)
    roomy = planner.plan(layers, device, dtype=dtype, window=64)
    tight = planner.plan(layers, device, dtype=dtype, window=64,
                         limits=planner.Limits(budget_s=1.0))
    for name in layers:
        r, t = roomy.sizes[name], tight.sizes[name]
        assert len(t.ns) == 3 and len(t.ds) == 3, name        # trimmed down to the minimum
        assert t.ns == r.ns[:3] and t.ds == r.ds[:3], name     # from the largest sizes down
    assert (planner.estimate_seconds(layers, device, tight.sizes)
            < planner.estimate_seconds(layers, device, roomy.sizes))


@pytest.mark.slow
def test_full_run_on_a_stated_small_device_writes_the_planned_report(tmp_path, monkeypatch):
    toy = planner.Device("toy", memory_bytes=2 ** 31, flops_per_s=2e10, bytes_per_s=2e10,
                         step_s=1e-6, call_s=1e-6, compile_s=0.1)
    monkeypatch.setattr(planner, "measure_device", lambda dtype: toy)
    layers = "self-attention,recurrent-elman"
    assert table1.main(["--full", "--layers", layers, "--out", str(tmp_path), "--no-peers",
                        "--no-progress"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    sweep = summary["sweep"]
    assert summary["device"]["name"] == "toy" and sweep["path_n"][-1] == 1024
    for name, row in summary["rows"].items():
        assert row["path"]["1024"] == (1023 if name.startswith("recurrent") else 1)
        assert len(row["sequential"]) == len(sweep["sizes"][name]["ns"]) >= 3
    assert summary["crossover"] and "## Planned sizes" in (tmp_path / "report.md").read_text()
