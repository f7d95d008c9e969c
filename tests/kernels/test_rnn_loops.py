"""The CPU loops of zoo.kernels.rnn_loops against the plain path of zoo.rnn: values and
gradients, padding and masks, several chunks and row groups, several shapes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import rnn
from zoo.kernels import rnn_loops
from tests.tolerances import assert_close


def _cfg(cell, impl, **kw):
    return rnn.Config(cell=cell, in_dim=5, hidden_dim=6, output="sequence", implementation=impl,
                      **kw)


def _run(cfg, params, x, lengths, state):
    """Outputs, final state and the gradient of a scalar of all of them."""
    def f(p, x, state):
        y, final = rnn.encode(p, x, lengths, cfg, initial_state=state)
        extra = 0.0 if final.c is None else jnp.sum(jnp.cos(final.c))
        return jnp.sum(jnp.sin(y)) + jnp.sum(final.h ** 2) + extra, (y, final)
    (_, out), grads = jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)(params, x, state)
    return out, grads


# several chunks of CHUNK steps (the layer is small, so chunks are CHUNK steps only when
# CHUNK_BYTES is tiny), lengths ending inside, at and before a chunk's end; batches of 3 (one
# row group) and 8 (two groups on CPU); bidirectional, two layers
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("lengths", [
    [37, 17, 16], [37, 2, 21, 37, 1, 33, 16, 0]], ids=["B3", "B8-groups"])
def test_loops_equal_the_plain_scan_over_several_chunks(cell, lengths, monkeypatch):
    monkeypatch.setattr(rnn_loops, "CHUNK_BYTES", 1)
    t = 2 * rnn_loops.CHUNK + 5
    assert rnn_loops.chunk_length(t, len(lengths), 4 * 6, 4) == (t + 2) // 3   # 3 chunks
    # float64: two summation orders of 2 layers x 37 steps agree to rounding only
    base = dataclasses.replace(_cfg(cell, "scan"), num_layers=2, bidirectional=True,
                               dtype="float64")
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: a.astype(jnp.float64), rnn.init(jax.random.key(1), base))
        x = jax.random.normal(jax.random.key(2), (len(lengths), t, 5), jnp.float64)
        h0 = jax.random.normal(jax.random.key(3), (len(lengths), 4, 6), jnp.float64)
        state = rnn.State(h0, -h0 if cell == "lstm" else None)
        want = _run(base, params, x, jnp.asarray(lengths), state)
        got = _run(dataclasses.replace(base, implementation="loops"), params, x,
                   jnp.asarray(lengths), state)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert_close(a, b, "float64")


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("steps", [1, 2, 3, 7])
def test_chunk_length_does_not_change_results(cell, steps):
    # T 7 in chunks of 1, 2, 3 (padded to 8 and 9 with masked steps) and 7 steps, no mask.
    cfg = _cfg(cell, "scan")
    p = rnn.init(jax.random.key(4), cfg)["layer_0"]["fwd"]
    x = jax.random.normal(jax.random.key(5), (4, 7, 5))
    h0 = jax.random.normal(jax.random.key(6), (4, 6))
    b_in, b_h = rnn._split_bias(p["b_i_gd"], p["b_h_gd"], cfg)

    def kernel(p_w_i, x, h0):
        if cell == "lstm":
            ys, h, c = rnn_loops.lstm_layer(x, (p_w_i, b_in, p["w_h_dgd"]), (h0, h0 * 0.5),
                                            None, groups=1, steps=steps)
            return ys, h, c
        carry, ys = rnn_loops.gated_layer(
            lambda w_h, b_h, c, xp: rnn._core_gru(w_h, b_h, c, xp, cfg),
            (p_w_i, b_in, p["w_h_dgd"], b_h), x, None, rnn.State(h0), steps=steps)
        return ys, carry.h

    def plain(p_w_i, x, h0):
        w = {"w_i": p_w_i, "b_in": b_in, "w_h": p["w_h_dgd"], "b_h": b_h}
        carry = rnn.State(h0, h0 * 0.5 if cell == "lstm" else None)
        carry, ys = rnn._scan_layer(w, x, None, carry, cfg)
        return (ys, carry.h, carry.c) if cell == "lstm" else (ys, carry.h)

    scalar = lambda f: lambda *a: sum(jnp.sum(jnp.sin(o)) for o in f(*a))
    for f in (kernel, plain):
        assert len(f(p["w_i_igd"], x, h0)) == (3 if cell == "lstm" else 2)
    for a, b in zip(kernel(p["w_i_igd"], x, h0), plain(p["w_i_igd"], x, h0)):
        assert_close(a, b)
    g_kernel = jax.grad(scalar(kernel), argnums=(0, 1, 2))(p["w_i_igd"], x, h0)
    g_plain = jax.grad(scalar(plain), argnums=(0, 1, 2))(p["w_i_igd"], x, h0)
    for a, b in zip(g_kernel, g_plain):
        assert_close(a, b)


def test_chunk_length_refuses_bad_arguments():
    with pytest.raises(ValueError, match="itemsize"):
        rnn_loops.chunk_length(16, 32, 1024, 0)
    with pytest.raises(ValueError, match="t must be"):
        rnn_loops.chunk_length(0, 32, 1024, 4)


def test_row_groups_split_only_batches_that_divide_with_enough_rows():
    for bsz in range(1, 40):
        for groups in (1, 2, 3, 4):
            n = rnn_loops.row_groups(bsz, groups)
            assert bsz % n == 0
            assert n in (1, groups)
            assert n == 1 or bsz // n >= rnn_loops.MIN_GROUP_ROWS
    with pytest.raises(ValueError, match="groups"):
        rnn_loops.row_groups(8, 0)


def test_row_groups_keep_every_row_in_place():
    a = np.arange(24).reshape(12, 2)
    parts = rnn_loops._split_rows(jnp.asarray(a), 3)
    np.testing.assert_array_equal(parts[1], a[1::3])
    np.testing.assert_array_equal(rnn_loops._merge_rows(parts), a)
