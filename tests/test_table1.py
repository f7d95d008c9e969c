"""The Table 1 suite: its probes on the zoo's real layers, and a smoke run end to end."""

import json

import pytest

from benchmarks import table1


@pytest.mark.parametrize("n", [16, 100, 256])
@pytest.mark.parametrize("name", ["self-attention", "restricted-attention", "convolutional",
                                  "convolutional-dilated", "recurrent-elman", "recurrent-lstm"])
def test_path_length_of_each_layer_is_the_formula(name, n):
    assert table1.measure_path(name, n) == table1.LAYERS[name].path_theory(n)


def test_smoke_run_writes_the_report_with_exact_counts(tmp_path):
    layers = "self-attention,recurrent-elman"
    assert table1.main(["--smoke", "--layers", layers, "--out", str(tmp_path),
                        "--no-progress"]) == 0
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["layer"] for r in records} == set(layers.split(","))
    assert all(r["platform"] == "cpu" and "jax" in r for r in records)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name, row in summary["rows"].items():
        assert row["flops_n"]["exponent"] == pytest.approx(row["n_theory"], abs=1e-9)
        assert row["flops_d"]["exponent"] == pytest.approx(row["d_theory"], abs=1e-9)
        assert row["sequential"] == row["sequential_expected"], name
        assert row["path"] == row["path_expected"], name
    timed = [r for r in records if r["kind"] == "n_sweep"]
    assert all(0 < r["fwd_min_s"] <= r["fwd_median_s"] <= r["fwd_max_s"] for r in timed)
    assert all(r["xla_flops"] is None for r in timed if r["sequential_ops"] > 1)
    by_d = [r for r in records if r["kind"] == "d_sweep"]
    assert by_d and all("fwdbwd_min_s" not in r and r["fwd_min_s"] > 0 for r in by_d)
    report = (tmp_path / "report.md").read_text()
    assert "| self-attention | O(n²·d) |" in report
    assert (tmp_path / "time_vs_n.png").stat().st_size > 0
    assert "| LSTM | B=2 n=8 d=8 | fwd+bwd |" in report


def test_unknown_layer_is_refused(capsys):
    with pytest.raises(SystemExit):
        table1.main(["--smoke", "--layers", "self-attention,lstm2"])
    assert "unknown layers ['lstm2']" in capsys.readouterr().err


def test_quick_jobs_use_each_rows_shape_and_time_only_the_forward_pass_in_d():
    jobs = table1._jobs(["convolutional", "recurrent-lstm", "self-attention"],
                        table1.SWEEPS["quick"])
    shapes = {(kind, name): (b, n, backward)
              for kind, args in jobs if kind != "path" for name, b, n, _, backward in [args]}
    assert shapes[("n_sweep", "convolutional")] == (32, 2048, True)
    assert shapes[("n_sweep", "recurrent-lstm")] == (16, 2048, True)
    assert shapes[("d_sweep", "recurrent-lstm")] == (256, 16, False)
    assert shapes[("d_sweep", "self-attention")] == (64, 64, False)
    assert {args[3] for kind, args in jobs if kind == "d_sweep"} == {256, 512, 1024, 2048}
