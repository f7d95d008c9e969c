"""The speed benchmarks: smoke runs on tiny sizes (every implementation is timed, ratios are
taken against the same run's PyTorch time) and their argument checks."""

import json

import pytest


def test_lstm_speed_times_all_three_in_one_run(tmp_path):
    pytest.importorskip("torch")
    from benchmarks import lstm_speed
    for _ in range(2):      # a second run replaces the first one's records
        lstm_speed.main(["--lengths", "8", "--repeats", "2", "--unroll", "1", "--out",
                         str(tmp_path)])
    records = [json.loads(line) for line in
               (tmp_path / "lstm_speed.jsonl").read_text().splitlines()]
    assert sorted((r["mode"], r["impl"]) for r in records) == sorted(
        (mode, impl) for mode in ("fwd", "fwd+bwd")
        for impl in ("torch.nn.LSTM", "flax OptimizedLSTMCell", "zoo unroll=1"))
    for r in records:
        assert r["repeats"] == 2 and 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
        if r["impl"] == "torch.nn.LSTM":
            assert r["ratio_to_torch"] == 1.0
    assert "| 8 | fwd+bwd | zoo unroll=1 |" in (tmp_path / "lstm_speed.md").read_text()


def test_interleaved_timing_and_sweep_shapes_refuse_bad_arguments():
    from benchmarks import harness, table1
    with pytest.raises(ValueError, match="repeats"):
        harness.time_interleaved({"a": lambda: None}, repeats=0)
    with pytest.raises(ValueError, match="at least one call"):
        harness.time_interleaved({})
    with pytest.raises(ValueError, match="unknown layer 'lstm2'"):
        table1.d_shape("lstm2", table1.SWEEPS["quick"])
