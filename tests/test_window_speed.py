"""zoo.bench.window_speed: the useful-FLOP count by a direct loop, and a quick run that times
every candidate of this device."""

import json

import pytest

from zoo.bench import window_speed as ws


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", [1, 3, None])
def test_useful_flops_count_the_band_by_a_direct_loop(window, causal):
    case = ws.Case(n=11, window=window, batch=2, heads=3, head_dim=5, causal=causal)
    r = 11 if window is None else window
    seen = sum(1 for t in range(11) for s in range(11)
               if abs(t - s) <= r and (s <= t or not causal))
    assert case.useful_flops(False) == 4 * 2 * 3 * 5 * seen
    assert case.useful_flops(True) == 3.5 * case.useful_flops(False)


def test_quick_run_times_every_candidate(tmp_path):
    records = ws.main(["--quick", "--out", str(tmp_path)])
    done = {(r["n"], r["window"], r["mode"], r["impl"]) for r in records}
    for n in (256, 512):
        for mode in ("fwd", "fwd+bwd"):
            assert {(n, 16, mode, i) for i in ws.candidates(16)} <= done
            assert {(n, None, mode, i) for i in ws.candidates(None)} <= done
    assert all("error" not in r and r["useful_tflops"] > 0 for r in records)
    lines = (tmp_path / "window_speed_quick.jsonl").read_text().splitlines()
    assert len(lines) == len(records) and json.loads(lines[0])["suite"] == "window_speed"
    assert "| 256 | 16 | fwd | xla |" in (tmp_path / "window_speed_quick.md").read_text()
