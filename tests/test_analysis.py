"""The measuring instruments of the benchmark suite, on costs and layers whose answers are
known by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.bench import analysis


@pytest.mark.parametrize("p", [1.0, 2.0, 0.5, 3.0])
def test_fit_recovers_a_known_exponent_under_noise(p):
    rng = np.random.default_rng(0)
    n = np.array([64, 128, 256, 512, 1024, 2048])
    cost = 1e-6 * n ** p * np.exp(rng.normal(0, 0.03, n.shape))   # ±3% timing noise
    fit = analysis.fit_exponent(n, cost)
    assert abs(fit["exponent"] - p) < 4 * fit["stderr"] + 1e-9
    assert 0 < fit["stderr"] < 0.05


def test_fit_is_exact_without_noise_and_refuses_one_size():
    fit = analysis.fit_exponent([10, 100, 1000], [7e3, 7e5, 7e7])
    assert fit["exponent"] == pytest.approx(2.0, abs=1e-12)
    with pytest.raises(ValueError, match="two distinct sizes"):
        analysis.fit_exponent([10, 10], [1.0, 2.0])


def test_saturated_keeps_the_long_sizes_that_run_at_one_rate():
    times = [1e-5, 2e-5, 3e-4, 6e-4, 1e-3]
    flops = [1e5, 2e5, 1e6, 6e6, 1e7]         # rates 1e10 (too short), 1e10, 3.3e9, 1e10, 1e10
    assert analysis.saturated(times, flops, min_time=1e-4) == [3, 4]
    assert analysis.saturated(times, flops, min_time=1e-4, fraction=0.3) == [2, 3, 4]
    assert analysis.saturated(times, flops, min_time=1.0) == []


def test_saturated_leaves_out_small_sizes_that_run_faster_in_a_cache():
    times = [1e-3, 2e-3, 6e-3, 1.2e-2, 2.4e-2]
    flops = [1e7, 2e7, 4e7, 8e7, 1.6e8]       # rates 1e10, 1e10, 6.7e9, 6.7e9, 6.7e9
    assert analysis.saturated(times, flops, min_time=1e-4) == [2, 3, 4]
    assert analysis.saturated(times, flops, min_time=1e-4, fraction=0.6) == [0, 1, 2, 3, 4]
    # the larger set wins: a last size out of the cache is left out here
    assert analysis.saturated([1e-3, 2e-3, 8e-3], [1e7, 2e7, 4e7], min_time=1e-4) == [0, 1]
    # on a tie, the larger sizes
    assert analysis.saturated([1e-3, 2e-3, 8e-3, 1.6e-2], [1e7, 2e7, 4e7, 8e7],
                              min_time=1e-4) == [2, 3]


@pytest.mark.parametrize("n", [9, 64, 300])
def test_sequential_operations_count_scan_steps(n):
    def rnn(x):
        return jax.lax.scan(lambda c, t: (jnp.tanh(c + t), c), jnp.zeros(4), x)[1]
    assert analysis.count_sequential(rnn, jnp.ones((n, 4))) == n


def test_sequential_operations_multiply_nested_loops_and_take_max_of_sequences():
    def f(x):
        def outer(c, t):
            inner = jax.lax.scan(lambda a, s: (jnp.sin(a * s), a), c, jnp.ones(40))[0]
            return inner + t, inner
        first = jax.lax.scan(outer, 1.0, x)[1]
        second = jax.lax.scan(lambda c, t: (jnp.cos(c + t), c), 0.0, jnp.ones(100))[1]
        return first.sum() + second.sum()
    assert analysis.count_sequential(f, jnp.ones(11)) == max(11 * 40, 100)


def test_a_program_without_loops_counts_one():
    q = jnp.ones((32, 8))
    assert analysis.count_sequential(lambda q: jax.nn.softmax(q @ q.T) @ q, q) == 1


# Stand-in layers over [T, D], written independently of zoo, with known receptive fields.

def _band_attention(r):
    def layer(x):
        t = jnp.arange(x.shape[0])
        mask = jnp.abs(t[:, None] - t[None, :]) <= r
        scores = jnp.where(mask, x @ x.T, -jnp.inf)
        return jax.nn.softmax(scores, -1) @ x
    return layer


def _causal_conv(k, dilation=1):
    w = jnp.linspace(0.5, 1.5, k)

    def layer(x):
        out = jnp.zeros_like(x)
        for j in range(k):
            shift = j * dilation
            out = out + w[j] * jnp.pad(x, ((shift, 0), (0, 0)))[:x.shape[0]]
        return jnp.tanh(out)
    return layer


@pytest.mark.parametrize("n", [16, 37, 128, 256])
def test_path_length_of_full_and_windowed_attention(n):
    x = jax.random.normal(jax.random.key(0), (n, 4))
    assert analysis.path_length(_band_attention(n), x) == 1
    for r in (3, 8):
        assert analysis.path_length(_band_attention(r), x) == math.ceil((n - 1) / r)


@pytest.mark.parametrize("n", [16, 100, 256])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_path_length_of_contiguous_convolution(n, k):
    x = jax.random.normal(jax.random.key(1), (n, 3))
    assert analysis.path_length(_causal_conv(k), x) == math.ceil((n - 1) / (k - 1))


@pytest.mark.parametrize("n", [16, 100, 256])
def test_path_length_of_a_dilated_stack(n):
    """A stack whose layer l has dilation 2^l: one 'layer' of the probe is the whole stack
    of depth ℓ, so measure the least ℓ whose stack reaches position 0."""
    x = jax.random.normal(jax.random.key(2), (n, 3))
    depth = next(l for l in range(1, 20) if _dilated_reaches(l, x))
    assert depth == math.ceil(math.log2(n))


def _dilated_reaches(depth, x):
    def stack(x):
        for l in range(depth):
            x = _causal_conv(2, 2 ** l)(x)
        return x
    try:
        return analysis.path_length(stack, x, max_layers=1) == 1
    except ValueError:
        return False


@pytest.mark.parametrize("n", [16, 50, 256, 4096])
def test_recurrent_path_is_the_chain_of_steps(n):
    w = jax.random.normal(jax.random.key(3), (4, 4)) / 2
    step = lambda c, x: (jnp.tanh(c @ w + x),) * 2
    xs = jax.random.normal(jax.random.key(4), (n, 4))
    assert analysis.recurrent_path_length(step, jnp.zeros(4), xs) == n - 1


def test_recurrent_path_survives_a_gradient_that_underflows_float64():
    # each step scales the carry by 0.01: the gradient of output n−1 by input 0 is 1e-2046
    # at n 1024, far below float64's smallest number, yet the dependence is there
    step = lambda c, x: (0.01 * c + x, 0.01 * c + x)
    xs = jnp.ones((1024, 2))
    with jax.enable_x64(True):
        g = jax.grad(lambda x: jax.lax.scan(step, jnp.zeros(2, jnp.float64), x)[1][-1].sum())(
            xs.astype(jnp.float64))
        assert g.dtype == jnp.float64 and float(jnp.abs(g[0]).sum()) == 0.0   # "no path"
    assert analysis.recurrent_path_length(step, jnp.zeros(2), xs) == 1023


def test_recurrent_path_refuses_a_step_that_forgets_its_carry():
    step = lambda c, x: (x, x)                          # output t depends on input t only
    with pytest.raises(ValueError, match="input 0 does not reach output 99"):
        analysis.recurrent_path_length(step, jnp.zeros(3), jnp.ones((100, 3)))


# --- the Table 1 harness ------------------------------------------------------------------------

def test_time_fit_keeps_only_the_sizes_near_the_best_flop_rate():
    from zoo.bench import table1_report as table1
    n = np.array([64, 128, 256, 512, 1024])
    flops = 1e6 * n.astype(float) ** 2
    rate = np.array([0.2, 0.5, 0.8, 0.95, 1.0]) * 1e10        # still climbing at small n
    recs = [{"n": int(a), "flops": f, "t": f / r} for a, f, r in zip(n, flops, rate)]
    fit = table1.fit(recs, "n", "t", min_time=0.0)
    assert fit["sizes"] == [256, 512, 1024] and fit["saturated"]
    by_hand = analysis.fit_exponent(n[2:], (flops / rate)[2:])
    assert fit["exponent"] == pytest.approx(by_hand["exponent"])
    # Fewer than three saturated sizes: marked, and fitted on the fastest-running ones.
    rate[2] = 0.1e10
    recs = [{"n": int(a), "flops": f, "t": f / r} for a, f, r in zip(n, flops, rate)]
    fit = table1.fit(recs, "n", "t", min_time=0.0)
    assert fit["sizes"] == [512, 1024] and not fit["saturated"]
    # Sizes under the minimum time neither count nor set the best rate: a tiny size running
    # fast from cache does not disqualify the larger ones.
    rate = np.array([3.0, 1.0, 0.9, 0.95, 1.0]) * 1e10
    recs = [{"n": int(a), "flops": f, "t": f / r} for a, f, r in zip(n, flops, rate)]
    fit = table1.fit(recs, "n", "t", min_time=recs[1]["t"])
    assert fit["sizes"] == [128, 256, 512, 1024] and fit["saturated"]


def test_time_jax_adds_repeats_until_the_sample_time_is_reached():
    from zoo.bench import harness
    x = jnp.ones((8, 8))
    fixed = harness.time_jax(lambda a: a @ a, x, repeats=2)
    assert fixed["repeats"] == 2
    sampled = harness.time_jax(lambda a: a @ a, x, repeats=2, min_total_s=10.0, max_repeats=6)
    assert sampled["repeats"] == 6                          # capped: 6 tiny calls < 10 s
    assert sampled["min_s"] <= sampled["median_s"] <= sampled["max_s"]
