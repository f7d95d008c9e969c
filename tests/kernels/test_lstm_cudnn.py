"""The cuDNN LSTM glue of zoo.kernels.lstm_cudnn: the weight layout and the contract (padding,
length-0 sequences, state layout) through jax.experimental.rnn's CPU reference in place of the
kernel, and the kernel itself against the plain path where a GPU is present."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import rnn
from zoo.kernels import has_platform, lstm_cudnn
from tests.tolerances import assert_close

B, T, I, D = 3, 7, 5, 6


def _cfg(num_layers=2, bidirectional=True, **kw):
    return rnn.Config(cell="lstm", in_dim=I, hidden_dim=D, num_layers=num_layers,
                      bidirectional=bidirectional, output="sequence", **kw)


def _data(seed, b=B):
    return jax.random.normal(jax.random.key(seed), (b, T, I), jnp.float32)


def test_weight_layout_matches_jax_reference_lstm():
    from jax.experimental import rnn as jrnn
    cfg = _cfg()
    params = rnn.init(jax.random.key(30), cfg)
    flat = lstm_cudnn.weights(params, 2, 2)
    assert flat.size == jrnn.get_num_params_in_lstm(I, D, 2, True)
    w_ih, w_hh, b_ih, b_hh = jrnn.unpack_lstm_weights(flat, I, D, 2, True)
    x = _data(31)
    zeros = jnp.zeros((4, B, D))
    y, h, c = jrnn.lstm_ref(x, zeros, zeros, w_ih, w_hh, b_ih, b_hh,
                            jnp.full((B,), T, jnp.int32), I, D, 2, 0.0, True)
    ours, state = rnn.apply(params, x, None, dataclasses.replace(cfg, implementation="scan"),
                            return_state=True)
    assert_close(ours, y)
    assert_close(state.h, jnp.swapaxes(h, 0, 1))
    assert_close(state.c, jnp.swapaxes(c, 0, 1))


def _cudnn_by_reference(x, h_0, c_0, weights, seq_lengths, input_size, hidden_size,
                        num_layers, dropout, bidirectional, precision=None):
    # jax.experimental.rnn.lstm's arguments, run by its CPU reference (lstm_ref)
    from jax.experimental import rnn as jrnn
    unpacked = jrnn.unpack_lstm_weights(weights, input_size, hidden_size, num_layers,
                                        bidirectional)
    assert seq_lengths.dtype == jnp.int32 and int(seq_lengths.min()) >= 1
    return jrnn.lstm_ref(x, h_0, c_0, *unpacked, seq_lengths, input_size, hidden_size,
                         num_layers, dropout, bidirectional)


def test_glue_keeps_the_contract(monkeypatch):
    # Ragged lengths (a backward direction from each end), zeros on padding and a length-0
    # sequence returning its initial state, against the plain path.
    from jax.experimental import rnn as jrnn
    monkeypatch.setattr(jrnn, "lstm", _cudnn_by_reference)
    cfg = _cfg(implementation="scan")
    params = rnn.init(jax.random.key(33), cfg)
    x, lengths = _data(34, b=4), jnp.array([T, 3, 0, 5])
    shape = (4, 4, D)
    h0 = jax.random.normal(jax.random.key(35), shape)
    c0 = jax.random.normal(jax.random.key(36), shape)
    y, h, c = lstm_cudnn.encode(params, x, lengths, h0, c0, num_layers=2, bidirectional=True)
    want_y, want = rnn.encode(params, x, lengths, cfg, initial_state=rnn.State(h0, c0))
    assert_close(y, want_y)
    assert_close(h, want.h)
    assert_close(c, want.c)
    assert float(jnp.abs(y[2]).max()) == 0.0 and float(jnp.abs(y[1, 3:]).max()) == 0.0
    np.testing.assert_array_equal(h[2], h0[2])


def test_reasons_against_name_each_obstacle():
    assert lstm_cudnn.reasons_against("lstm", "float32", False) == []
    reasons = lstm_cudnn.reasons_against("gru", "bfloat16", True)
    assert len(reasons) == 3
    assert "'gru'" in reasons[0] and "bfloat16" in reasons[1] and "mesh" in reasons[2]


@pytest.mark.skipif(not has_platform("cuda"), reason="cuDNN needs a CUDA GPU")
def test_cudnn_equals_plain_path_with_gradients():
    cfg = _cfg(implementation="cudnn")
    plain = dataclasses.replace(cfg, implementation="scan")
    params = rnn.init(jax.random.key(37), cfg)
    x, lengths = _data(38, b=4), jnp.array([T, 3, 1, 5])

    def loss(p, x, c):
        y, state = rnn.apply(p, x, lengths, c, return_state=True)
        return jnp.sum(y * y) + jnp.sum(state.h) + jnp.sum(state.c)
    # cuDNN sums the gate products in its own order and blocks, 2 layers deep, both ways
    with jax.default_matmul_precision("highest"):
        assert_close(rnn.apply(params, x, lengths, cfg), rnn.apply(params, x, lengths, plain),
                     atol=1e-4, rtol=1e-4)
        got = jax.grad(loss, argnums=(0, 1))(params, x, cfg)
        want = jax.grad(loss, argnums=(0, 1))(params, x, plain)
    jax.tree.map(lambda a, b: assert_close(a, b, atol=1e-4, rtol=1e-3), got, want)
