"""Smoke runs of the speed benchmarks on tiny sizes: every implementation is timed and the
ratios are taken against the same run's PyTorch time."""

import json

import pytest

pytest.importorskip("torch")


def test_lstm_speed_times_all_three_in_one_run(tmp_path):
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
