"""The speed benchmarks: smoke runs on tiny sizes (every implementation is timed, ratios are
taken against the same run's PyTorch time) and their argument checks."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.bench import harness


def test_lstm_speed_times_all_implementations_in_one_run(tmp_path):
    pytest.importorskip("torch")
    from zoo.bench import lstm_speed
    for _ in range(2):      # a second run replaces the first one's records
        lstm_speed.main(["--lengths", "8", "--repeats", "2", "--unroll", "1", "--out",
                         str(tmp_path)])
    records = [json.loads(line) for line in
               (tmp_path / "lstm_speed.jsonl").read_text().splitlines()]
    assert sorted((r["mode"], r["impl"]) for r in records) == sorted(
        (mode, impl) for mode in ("fwd", "fwd+bwd")
        for impl in ("torch.nn.LSTM", "flax OptimizedLSTMCell", "zoo loops unroll=1",
                     "zoo scan", "zoo products only"))
    for r in records:
        assert r["repeats"] == 2 and 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
        if r["impl"] == "torch.nn.LSTM":
            assert r["ratio_to_torch"] == 1.0
    assert "| 8 | fwd+bwd | zoo loops unroll=1 |" in (tmp_path / "lstm_speed.md").read_text()


def test_lstm_speed_sizes_name_their_results_and_bad_sizes_are_refused(tmp_path, capsys):
    pytest.importorskip("torch")
    from zoo.bench import lstm_speed
    lstm_speed.main(["--lengths", "5", "--repeats", "1", "--unroll", "2", "--batch", "3",
                     "--hidden", "4", "--out", str(tmp_path)])
    records = [json.loads(line) for line in
               (tmp_path / "lstm_speed_b3_h4.jsonl").read_text().splitlines()]
    assert {(r["batch"], r["hidden"], r["length"]) for r in records} == {(3, 4, 5)}
    assert "batch 3, hidden 4" in (tmp_path / "lstm_speed_b3_h4.md").read_text()
    assert not (tmp_path / "lstm_speed.jsonl").exists()
    for bad in (["--batch", "0"], ["--lengths", "8", "-1"], ["--unroll", "0"]):
        with pytest.raises(SystemExit):
            lstm_speed.main(bad + ["--out", str(tmp_path)])
        assert bad[0] + " " + bad[-1] in capsys.readouterr().err


def test_torch_runner_takes_the_gradient_of_the_summed_output():
    # d/dW sum(x W^T + b) = 1 x^T summed over rows, by hand; forward leaves no gradient
    torch = pytest.importorskip("torch")
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    layer = torch.nn.Linear(3, 2)
    harness.torch_runner(layer, x, backward=False)()
    assert layer.weight.grad is None
    harness.torch_runner(layer, x, backward=True)()
    np.testing.assert_allclose(layer.weight.grad.numpy(), np.tile(x.sum(0), (2, 1)))
    np.testing.assert_allclose(layer.bias.grad.numpy(), [4.0, 4.0])
    if jax.default_backend() == "cpu":
        assert harness.torch_device() == "cpu"      # PyTorch meets JAX on the same device
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        harness.torch_runner(lambda x: x, x, backward=False)


def test_interleaved_timing_and_sweep_shapes_refuse_bad_arguments():
    from zoo.bench import table1
    with pytest.raises(ValueError, match="repeats"):
        harness.time_interleaved({"a": lambda: None}, repeats=0)
    with pytest.raises(ValueError, match="at least one call"):
        harness.time_interleaved({})
    with pytest.raises(ValueError, match="unknown layer 'lstm2'"):
        table1.QUICK.layer_sizes("lstm2")


def test_interleaved_timing_runs_each_call_in_rounds_with_its_lead_runs():
    log = []
    calls = {name: (lambda name=name: log.append(name)) for name in "ab"}
    times = harness.time_interleaved(calls, repeats=3, warmup=1, lead=2)
    assert log == ["a", "b"] + ["a", "a", "a", "b", "b", "b"] * 3
    assert [times[n]["repeats"] for n in "ab"] == [3, 3]
    with pytest.raises(ValueError, match="lead"):
        harness.time_interleaved(calls, lead=-1)


_FAULTS = """
import ctypes, ctypes.util, resource, threading
from zoo.bench import harness
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def faults(size):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)
    libc.free(p)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
"""

_FAULT_PROBE = _FAULTS + """
size = 64 << 20                      # over glibc's largest threshold for mapping a block afresh
faults(size)
default = faults(size)
kept = harness.keep_freed_memory()
faults(size)
print(default, kept, faults(size), harness.environment()["malloc"])
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_stops_page_faults_on_reuse():
    """A 64 MiB block freed and allocated again faults every page in afresh under glibc's
    default policy (16,384 pages of 4 KiB), and none once freed memory is kept."""
    out = subprocess.run([sys.executable, "-c", _FAULT_PROBE], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[1]).stdout.split(maxsplit=3)
    default, kept, after, policy = int(out[0]), out[1], int(out[2]), out[3]
    assert default >= (64 << 20) // 4096 // 2            # at least half the pages faulted
    assert kept == "True" and after < default // 20
    assert "M_MMAP_MAX 0" in policy


_THREAD_PROBE = _FAULTS + """
size = 96 << 20                # over the 64 MiB of a heap glibc gives another thread's arena

def in_thread():
    out = []
    t = threading.Thread(target=lambda: out.extend([faults(size), faults(size)]))
    t.start()
    t.join()
    return out[1]              # the second block: the first one's pages freed and reusable

harness.keep_freed_memory()
print(in_thread())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_reuses_large_blocks_of_other_threads():
    """XLA runs a program on worker threads: a 96 MiB block freed and allocated again on a
    thread started after the policy is set faults in none of its 24,576 pages again."""
    out = subprocess.run([sys.executable, "-c", _THREAD_PROBE], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[1]).stdout
    assert int(out) < (96 << 20) // 4096 // 20


@pytest.mark.parametrize("bad", [0, -1, 2 ** 31, 1.5, "1G", True])
def test_keep_freed_memory_refuses_bad_threshold(bad):
    with pytest.raises(ValueError, match="trim_threshold"):
        harness.keep_freed_memory(bad)


def test_lstm_products_floor_runs_the_layers_products():
    # The floor's forward is the recurrence h_{t+1} = (x_t W_i + h_t W_h)[:, :D] with the
    # zoo's weights, checked against a NumPy loop over steps (19 steps of D 256 at B 2 run as
    # one chunk of the kernel's loops).
    from zoo.bench import lstm_speed
    from zoo import rnn
    d = lstm_speed.HIDDEN
    cfg = rnn.Config(cell="lstm", in_dim=d, hidden_dim=d, output="sequence")
    params = rnn.init(jax.random.key(0), cfg)
    x = jax.random.normal(jax.random.key(1), (2, 19, d)) * 0.1
    fwd, fwd_bwd = lstm_speed._products_fns(cfg)
    w_i = np.asarray(params["layer_0"]["fwd"]["w_i_igd"], np.float64).reshape(d, -1)
    w_h = np.asarray(params["layer_0"]["fwd"]["w_h_dgd"], np.float64).reshape(d, -1)
    h, want = np.zeros((2, d)), []
    for t in range(19):
        h = (np.asarray(x[:, t], np.float64) @ w_i + h @ w_h)[:, :d]
        want.append(h)
    np.testing.assert_allclose(fwd(params, x), np.stack(want, 1), rtol=1e-4, atol=1e-5)
    grads = fwd_bwd(params, x)
    assert float(jnp.abs(grads["layer_0"]["fwd"]["w_h_dgd"]).sum()) > 0


# --- the training-throughput benchmark ----------------------------------------------------------

@pytest.fixture(scope="module")
def plain_step():
    from zoo.bench import train_throughput as tt
    run = tt.Run(model="transformer-lm_tiny", batch=4, length=16, dtype="float32", repeats=2)
    return tt.measure(run)


def test_training_flops_are_the_formula_with_parameters_counted_from_init(plain_step):
    import math
    import zoo
    spec = zoo.get("transformer-lm_tiny")
    shapes = jax.eval_shape(spec.init, jax.random.key(0))
    params = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
    cfg = spec.config
    tokens = 4 * 16
    by_hand = 6 * params * tokens + 12 * cfg.num_layers * 16 * cfg.d_model * tokens
    assert plain_step["params"] == params and plain_step["tokens_per_step"] == tokens
    assert plain_step["flops_per_step"] == by_hand
    assert plain_step["tokens_per_s"] == pytest.approx(tokens / plain_step["median_s"])
    assert plain_step["flops_per_s"] == pytest.approx(by_hand / plain_step["median_s"])
    assert len(plain_step["losses"]) == 4 and plain_step["losses"][0] > plain_step["losses"][-1]


@pytest.mark.slow
def test_remat_and_accumulation_keep_the_plain_steps_losses(plain_step):
    from zoo.bench import train_throughput as tt
    for changes in ({"remat": "full", "accumulate": 2}, {"remat": "dots"}):
        run = tt.Run(model="transformer-lm_tiny", batch=4, length=16, dtype="float32",
                     repeats=2, **changes)
        np.testing.assert_allclose(tt.measure(run)["losses"], plain_step["losses"],
                                   rtol=1e-5, err_msg=str(changes))


def test_utilisation_against_the_datasheet_and_the_measured_product():
    from zoo.bench import train_throughput as tt
    rec = tt.utilisation({"flops_per_s": 300e12}, gemm_flops_per_s=750e12,
                         peak=tt.datasheet_peak("NVIDIA H200"))
    assert rec["mfu_datasheet"] == pytest.approx(300 / 989)
    assert rec["mfu_gemm"] == pytest.approx(0.4)
    assert tt.datasheet_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert tt.datasheet_peak("TPU v4") == 275e12 and tt.datasheet_peak("TPU v5e") == 197e12
    assert tt.utilisation({"flops_per_s": 1e9}, 1e11, None)["mfu_datasheet"] is None


def test_training_throughput_refuses_what_is_not_a_decoder():
    from zoo.bench import train_throughput as tt
    with pytest.raises(ValueError, match="registered decoder, got 'gpt-7'"):
        tt.decoder("gpt-7")
    with pytest.raises(ValueError, match="must be a decoder language model"):
        tt.decoder("transformer-tiny")
    with pytest.raises(ValueError, match="batch must be divisible by accumulate"):
        tt.Run(batch=6, accumulate=4)
    with pytest.raises(ValueError, match="remat must be one of"):
        tt.Run(remat="some")
