"""Tests for zoo.rnn: PyTorch and Flax references, a NumPy loop, padding and state invariants,
bad inputs, the cuDNN weight layout and the vanishing-gradient measure."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import rnn
from zoo.bench import rnn_vanishing
from tests.tolerances import assert_close

B, T, I, D = 3, 7, 5, 6          # pairwise distinct sizes
LENGTHS = np.array([7, 4, 1])


def _cfg(cell, num_layers=1, bidirectional=False, **kw):
    return rnn.Config(cell=cell, in_dim=I, hidden_dim=D, num_layers=num_layers,
                      bidirectional=bidirectional, output="sequence", **kw)


def _data(seed=0, b=B, t=T, i=I):
    return jax.random.normal(jax.random.key(seed), (b, t, i), jnp.float32)


# --- PyTorch ----------------------------------------------------------------------------------

def _torch_module(params, cfg):
    torch = pytest.importorskip("torch")
    cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cfg.cell]
    kw = {"nonlinearity": cfg.activation} if cfg.cell == "rnn" else {}
    module = cls(cfg.in_dim, cfg.hidden_dim, num_layers=cfg.num_layers, batch_first=True,
                 bidirectional=cfg.bidirectional, **kw).double()
    with torch.no_grad():
        for l in range(cfg.num_layers):
            for k, name in enumerate(("fwd", "bwd")[:cfg.directions]):
                p = jax.tree.map(np.asarray, params[f"layer_{l}"][name])
                sfx = f"_l{l}" + ("_reverse" if k else "")
                gd = cfg.gates * cfg.hidden_dim
                getattr(module, "weight_ih" + sfx).copy_(torch.from_numpy(
                    p["w_i_igd"].transpose(1, 2, 0).reshape(gd, -1).astype(np.float64)))
                getattr(module, "weight_hh" + sfx).copy_(torch.from_numpy(
                    p["w_h_dgd"].transpose(1, 2, 0).reshape(gd, -1).astype(np.float64)))
                getattr(module, "bias_ih" + sfx).copy_(torch.from_numpy(
                    p["b_i_gd"].reshape(-1).astype(np.float64)))
                getattr(module, "bias_hh" + sfx).copy_(torch.from_numpy(
                    p["b_h_gd"].reshape(-1).astype(np.float64)))
    return module


def _torch_run(module, x, lengths=None):
    torch = pytest.importorskip("torch")
    xt = torch.from_numpy(np.asarray(x, np.float64))
    with torch.no_grad():
        if lengths is None:
            y, state = module(xt)
        else:
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                xt, torch.as_tensor(lengths), batch_first=True, enforce_sorted=False)
            y, state = module(packed)
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True,
                                                          total_length=x.shape[1])
    h, c = state if isinstance(state, tuple) else (state, None)
    to_np = lambda a: None if a is None else a.numpy().swapaxes(0, 1)   # batch first
    return y.numpy(), to_np(h), to_np(c)


IMPLS = ["scan", "loops"]      # the plain path and the CPU kernel (tests/kernels for more)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layers_dirs", [(1, False), (2, True)], ids=["1layer", "2layer-bidir"])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_equals_torch_with_copied_weights(cell, layers_dirs, impl):
    cfg = _cfg(cell, *layers_dirs, implementation=impl)
    params = rnn.init(jax.random.key(1), cfg)
    x = _data()
    y, state = rnn.apply(params, x, None, cfg, return_state=True)
    y_ref, h_ref, c_ref = _torch_run(_torch_module(params, cfg), x)
    assert_close(y, y_ref)
    assert_close(state.h, h_ref)
    if cell == "lstm":
        assert_close(state.c, c_ref)


# Lengths that differ within each interleaved group of rows of the CPU kernel's LSTM.
GROUPED_LENGTHS = np.array([7, 2, 5, 7, 1, 6, 3, 4])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("cell, lengths", [
    ("gru", LENGTHS), ("lstm", LENGTHS), ("lstm", GROUPED_LENGTHS)],
    ids=["gru", "lstm", "lstm-batch-8"])
def test_gradients_equal_torch_autograd_padded_bidirectional_with_initial_state(
        cell, lengths, impl):
    # The LSTM's hand-written backward (and the GRU's autodiff) against PyTorch's autograd in
    # float64: parameters, inputs and the initial state, through 2 bidirectional layers over
    # padded sequences, with random cotangents on the outputs and on the final state.
    torch = pytest.importorskip("torch")
    cfg = _cfg(cell, 2, True, dtype="float64", implementation=impl)
    lengths, t = np.asarray(lengths), T
    B = len(lengths)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: a.astype(jnp.float64), rnn.init(jax.random.key(7), cfg))
        x = _data(8, b=B, t=t).astype(jnp.float64)
        keys = jax.random.split(jax.random.key(9), 5)
        h0 = jax.random.normal(keys[0], (B, 4, D), jnp.float64)
        c0 = jax.random.normal(keys[1], (B, 4, D), jnp.float64) if cell == "lstm" else None
        cy = jax.random.normal(keys[2], (B, t, 2 * D), jnp.float64)
        ch = jax.random.normal(keys[3], (B, 4, D), jnp.float64)
        cc = jax.random.normal(keys[4], (B, 4, D), jnp.float64)

        def loss(params, x, h0, c0):
            y, st = rnn.apply(params, x, jnp.asarray(lengths), cfg,
                              initial_state=rnn.State(h0, c0), return_state=True)
            extra = 0.0 if st.c is None else jnp.vdot(st.c, cc)
            return jnp.vdot(y, cy) + jnp.vdot(st.h, ch) + extra
        grads = jax.grad(loss, argnums=(0, 1, 2, 3) if cell == "lstm" else (0, 1, 2))(
            params, x, h0, c0)

    module = _torch_module(params, cfg)
    leaf = lambda a: torch.tensor(np.asarray(a), requires_grad=True)
    xt, h0t = leaf(x), leaf(np.swapaxes(h0, 0, 1))
    state0 = (h0t, leaf(np.swapaxes(c0, 0, 1))) if cell == "lstm" else h0t
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        xt, torch.as_tensor(lengths), batch_first=True, enforce_sorted=False)
    y, st = module(packed, state0)
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=t)
    h, c = st if cell == "lstm" else (st, None)
    total = (y * torch.tensor(np.asarray(cy))).sum() + \
        (h * torch.tensor(np.asarray(ch).swapaxes(0, 1))).sum()
    if c is not None:
        total = total + (c * torch.tensor(np.asarray(cc).swapaxes(0, 1))).sum()
    total.backward()
    assert_close(grads[1], xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert_close(grads[2], h0t.grad.numpy().swapaxes(0, 1), rtol=1e-10, atol=1e-12)
    if cell == "lstm":
        assert_close(grads[3], state0[1].grad.numpy().swapaxes(0, 1), rtol=1e-10, atol=1e-12)
    g, d = cfg.gates, D
    for l in range(2):
        for k, name in enumerate(("fwd", "bwd")):
            sfx = f"_l{l}" + ("_reverse" if k else "")
            got = grads[0][f"layer_{l}"][name]
            w = lambda n: getattr(module, n + sfx).grad.numpy()
            assert_close(got["w_i_igd"], w("weight_ih").reshape(g, d, -1).transpose(2, 0, 1),
                         rtol=1e-10, atol=1e-12)
            assert_close(got["w_h_dgd"], w("weight_hh").reshape(g, d, -1).transpose(2, 0, 1),
                         rtol=1e-10, atol=1e-12)
            assert_close(got["b_i_gd"], w("bias_ih").reshape(g, d), rtol=1e-10, atol=1e-12)
            assert_close(got["b_h_gd"], w("bias_hh").reshape(g, d), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_padded_batch_equals_torch_packed_sequences(cell, impl):
    cfg = _cfg(cell, 2, True, implementation=impl)
    params = rnn.init(jax.random.key(2), cfg)
    x = _data(3)
    y, state = rnn.apply(params, x, jnp.asarray(LENGTHS), cfg, return_state=True)
    y_ref, h_ref, _ = _torch_run(_torch_module(params, cfg), x, LENGTHS)
    assert_close(y, y_ref)
    assert_close(state.h, h_ref)


def test_elman_relu_equals_torch():
    cfg = _cfg("rnn", activation="relu")
    params = rnn.init(jax.random.key(4), cfg)
    x = _data(5)
    assert_close(rnn.apply(params, x, None, cfg), _torch_run(_torch_module(params, cfg), x)[0])


# --- Flax -------------------------------------------------------------------------------------

def _flax_params(p, cell):
    """Our per-gate weights as Flax LSTMCell / GRUCell params (Dense kernels are [in, out])."""
    names = {"lstm": "ifgo", "gru": "rzn"}[cell]
    out = {}
    for g, n in enumerate(names):
        out["i" + n] = {"kernel": p["w_i_igd"][:, g]}
        out["h" + n] = {"kernel": p["w_h_dgd"][:, g]}
        if cell == "lstm":                       # Flax's LSTM has its bias on the h side only
            out["h" + n]["bias"] = p["b_i_gd"][g] + p["b_h_gd"][g]
        else:                                    # GRU: input biases on i*, recurrent on hn only
            out["i" + n]["bias"] = p["b_i_gd"][g] + (p["b_h_gd"][g] if n != "n" else 0)
    if cell == "gru":
        out["hn"]["bias"] = p["b_h_gd"][2]
    return out


@pytest.mark.parametrize("flax_cell", ["GRUCell", "LSTMCell", "OptimizedLSTMCell"])
def test_equals_flax_cells_over_a_sequence(flax_cell):
    from flax import linen as nn
    cell = "gru" if flax_cell == "GRUCell" else "lstm"
    cfg = _cfg(cell)
    params = rnn.init(jax.random.key(6), cfg)
    x = _data(7)
    module = nn.RNN(getattr(nn, flax_cell)(features=D))
    variables = {"params": {"cell": _flax_params(params["layer_0"]["fwd"], cell)}}
    assert_close(rnn.apply(params, x, None, cfg), module.apply(variables, x))


def test_lstm_cell_equals_flax_one_step_with_state():
    from flax import linen as nn
    cfg = _cfg("lstm")
    p = rnn.init(jax.random.key(8), cfg)["layer_0"]["fwd"]
    h, c, x = (jax.random.normal(jax.random.key(k), s) for k, s in
               ((9, (B, D)), (10, (B, D)), (11, (B, I))))
    (c_ref, h_ref), _ = nn.LSTMCell(features=D).apply(
        {"params": _flax_params(p, "lstm")}, (c, h), x)
    new = rnn.lstm_cell(p, rnn.State(h, c), x)
    assert_close(new.h, h_ref)
    assert_close(new.c, c_ref)


# --- NumPy and step loops ---------------------------------------------------------------------

def _np_gru_reset_before(p, x):
    sig = lambda a: 1 / (1 + np.exp(-a))
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
    h = np.zeros((x.shape[0], D))
    ys = []
    for t in range(x.shape[1]):
        xt = np.asarray(x[:, t], np.float64)
        a = lambda g: xt @ p["w_i_igd"][:, g] + p["b_i_gd"][g]
        r = sig(a(0) + h @ p["w_h_dgd"][:, 0] + p["b_h_gd"][0])
        z = sig(a(1) + h @ p["w_h_dgd"][:, 1] + p["b_h_gd"][1])
        n = np.tanh(a(2) + (r * h) @ p["w_h_dgd"][:, 2] + p["b_h_gd"][2])
        h = (1 - z) * n + z * h
        ys.append(h)
    return np.stack(ys, 1)


def test_gru_reset_before_equals_numpy_loop_and_differs_from_reset_after():
    cfg = _cfg("gru", reset_after=False)
    params = rnn.init(jax.random.key(12), cfg)
    x = _data(13)
    y = rnn.apply(params, x, None, cfg)
    assert_close(y, _np_gru_reset_before(params["layer_0"]["fwd"], x))
    other = rnn.apply(params, x, None, dataclasses.replace(cfg, reset_after=True))
    assert float(jnp.abs(y - other).max()) > 1e-3


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_scan_equals_python_step_loop(cell):
    cfg = _cfg(cell, unroll=3)
    params = rnn.init(jax.random.key(14), cfg)
    p = params["layer_0"]["fwd"]
    x = _data(15)
    h0 = jax.random.normal(jax.random.key(16), (B, 1, D))
    state = rnn.State(h0, h0 * 0.5 if cell == "lstm" else None)
    y, final = rnn.apply(params, x, None, cfg, initial_state=state, return_state=True)
    carry = rnn.State(state.h[:, 0], None if state.c is None else state.c[:, 0])
    ys = []
    for t in range(T):
        carry = rnn.CELLS[cell](p, carry, x[:, t])
        ys.append(carry.h)
    assert_close(y, jnp.stack(ys, 1))
    assert_close(final.h[:, 0], carry.h)


# --- invariants -------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_padding_never_changes_results(cell):
    cfg = _cfg(cell, 2, True)
    params = rnn.init(jax.random.key(17), cfg)
    x = _data(18)
    noise = jax.random.normal(jax.random.key(19), x.shape) * 100
    pad = jnp.arange(T)[None, :, None] >= jnp.asarray(LENGTHS)[:, None, None]
    y, state = rnn.apply(params, jnp.where(pad, noise, x), jnp.asarray(LENGTHS), cfg,
                         return_state=True)
    for b, n in enumerate(LENGTHS):
        y1, s1 = rnn.apply(params, x[b:b + 1, :n], None, cfg, return_state=True)
        assert_close(y[b, :n], y1[0])
        assert_close(y[b, n:], np.zeros((T - n, 2 * D)))
        assert_close(state.h[b], s1.h[0])


def test_mask_equals_lengths_and_final_output_picks_each_end():
    cfg = dataclasses.replace(_cfg("lstm", 1, True), output="final")
    params = rnn.init(jax.random.key(20), cfg)
    x = _data(21)
    mask = jnp.arange(T)[None] < jnp.asarray(LENGTHS)[:, None]
    by_len = rnn.apply(params, x, jnp.asarray(LENGTHS), cfg)
    assert_close(rnn.apply(params, x, mask, cfg), by_len)
    seq = rnn.apply(params, x, jnp.asarray(LENGTHS), dataclasses.replace(cfg, output="sequence"))
    for b, n in enumerate(LENGTHS):        # forward ends at n-1, backward at 0
        assert_close(by_len[b, :D], seq[b, n - 1, :D])
        assert_close(by_len[b, D:], seq[b, 0, D:])


def test_initial_state_is_used_and_returned_not_mutated():
    cfg = _cfg("lstm", 2)
    params = rnn.init(jax.random.key(22), cfg)
    x = _data(23)
    h0 = jax.random.normal(jax.random.key(24), (B, 2, D))
    state = rnn.State(h0, -h0)
    kept = np.asarray(h0).copy()
    y1, s1 = rnn.apply(params, x, None, cfg, initial_state=state, return_state=True)
    y0 = rnn.apply(params, x, None, cfg)
    assert float(jnp.abs(y1 - y0).max()) > 1e-3
    np.testing.assert_array_equal(np.asarray(state.h), kept)
    # Carrying the state across a split sequence equals one pass over the whole of it.
    ya, sa = rnn.apply(params, x[:, :3], None, cfg, initial_state=state, return_state=True)
    yb, sb = rnn.apply(params, x[:, 3:], None, cfg, initial_state=sa, return_state=True)
    assert_close(jnp.concatenate([ya, yb], 1), y1)
    assert_close(sb.c, s1.c)


def test_unroll_does_not_change_results():
    cfg = _cfg("gru", 1, True)
    params = rnn.init(jax.random.key(25), cfg)
    x = _data(26)
    base = rnn.apply(params, x, jnp.asarray(LENGTHS), cfg)
    assert_close(rnn.apply(params, x, jnp.asarray(LENGTHS), dataclasses.replace(cfg, unroll=4)),
                 base)


def test_gradient_norms_decay_faster_for_elman_than_lstm():
    x = _data(27, b=2, t=40, i=I)
    ratios = {}
    for cell in ("rnn", "lstm"):
        cfg = _cfg(cell)
        g = rnn_vanishing.gradient_norms(rnn.init(jax.random.key(28), cfg), x, cfg)
        assert g.shape == (2, 40) and bool(jnp.all(g > 0))
        ratios[cell] = float(jnp.mean(g[:, 10] / g[:, -1]))   # distance 29 vs distance 0
    assert ratios["rnn"] < 1e-3 and ratios["lstm"] > 10 * ratios["rnn"]
    # The definition, by hand for one step: the Jacobian of h_T w.r.t. x_t.
    cfg = _cfg("rnn")
    params = rnn.init(jax.random.key(28), cfg)
    jac = jax.jacrev(lambda x1: rnn.apply(params, x1[None], None, cfg, return_state=True)[1]
                     .h[0, 0])(x[0])
    assert_close(rnn_vanishing.gradient_norms(params, x[:1], cfg)[0, 5],
                 jnp.linalg.norm(jac[:, 5]))


# --- dispatch ---------------------------------------------------------------------------------

def _while_loops(cfg, platforms):
    from jax import export
    params = rnn.init(jax.random.key(40), cfg)
    fn = jax.jit(lambda p, x: rnn.apply(p, x, None, cfg))
    return export.export(fn, platforms=platforms)(params, _data()).mlir_module().count(
        "stablehlo.while")


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_auto_runs_the_cpu_loops_only_where_lowered_for_a_cpu(cell):
    # The plain path is one scan per layer and direction; the CPU kernel scans chunks around a
    # step scan. The choice follows the platform the program is lowered for, whatever this
    # process's devices are.
    cfg = _cfg(cell, 2, True)
    assert cfg.implementation == "auto"
    scans = cfg.num_layers * cfg.directions
    assert _while_loops(cfg, ("cpu",)) == 2 * scans
    assert _while_loops(cfg, ("cuda",)) == scans
    assert _while_loops(cfg, ("tpu",)) == scans
    assert _while_loops(dataclasses.replace(cfg, implementation="scan"), ("cpu",)) == scans
    assert _while_loops(dataclasses.replace(cfg, implementation="loops"), ("cuda",)) == 2 * scans


def test_cudnn_refused_where_it_cannot_run_naming_the_argument():
    params = rnn.init(jax.random.key(41), _cfg("gru"))
    with pytest.raises(ValueError, match="implementation='cudnn'.*'lstm' only"):
        rnn.apply(params, _data(), None, _cfg("gru", implementation="cudnn"))
    with pytest.raises(ValueError, match="implementation='cudnn'.*float32 only"):
        rnn.apply(rnn.init(jax.random.key(41), _cfg("lstm")), _data(), None,
                  _cfg("lstm", implementation="cudnn", dtype="bfloat16"))
    if not any(d.platform == "gpu" for d in jax.devices()):
        with pytest.raises(ValueError, match="no CUDA device"):
            rnn.apply(rnn.init(jax.random.key(41), _cfg("lstm")), _data(), None,
                      _cfg("lstm", implementation="cudnn"))


# --- bad input --------------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors():
    cfg = _cfg("lstm", 2)
    params = rnn.init(jax.random.key(32), cfg)
    x = _data()
    with pytest.raises(ValueError, match=r"lengths must hold valid steps .* in \[0, 7\], "
                                         r"got values from 1 to 8"):
        rnn.apply(params, x, jnp.array([8, 2, 1]), cfg)
    with pytest.raises(ValueError, match=r"lengths must hold .* from -1 to 3"):
        rnn.apply(params, x, jnp.array([3, -1, 1]), cfg)
    with pytest.raises(ValueError, match="empty batch"):
        rnn.apply(params, x[:0], None, cfg)
    with pytest.raises(ValueError, match=r"params\['layer_1'\].*another config"):
        rnn.apply(rnn.init(jax.random.key(0), _cfg("lstm", 1)), x, None, cfg)
    with pytest.raises(ValueError, match="lengths must have shape"):
        rnn.apply(params, x, jnp.array([3, 1]), cfg)
    with pytest.raises(TypeError, match="lengths must have a int dtype"):
        rnn.apply(params, x, jnp.array([3.0, 1.0, 1.0]), cfg)
    with pytest.raises(ValueError, match=r"lengths \(a mask\) must have shape"):
        rnn.apply(params, x, jnp.ones((B, T + 1), bool), cfg)
    with pytest.raises(ValueError, match="prefix mask"):
        rnn.apply(params, x, jnp.arange(T)[None].repeat(B, 0) % 2 == 0, cfg)
    with pytest.raises(Exception, match="prefix mask"):            # checked under jit too
        jax.block_until_ready(jax.jit(lambda m: rnn.apply(params, x, m, cfg))(
            jnp.arange(T)[None].repeat(B, 0) % 2 == 0))
    with pytest.raises(TypeError, match="mask must have a bool dtype"):
        rnn.apply(params, x, jnp.ones((B, T), jnp.int32), cfg)
    with pytest.raises(ValueError, match="empty sequence"):
        rnn.apply(params, x[:, :0], None, cfg)
    with pytest.raises(ValueError, match=r"initial_state.h must have shape \(3, 2, 6\)"):
        rnn.apply(params, x, None, cfg, initial_state=rnn.State(jnp.zeros((B, 1, D)),
                                                                jnp.zeros((B, 1, D))))
    with pytest.raises(ValueError, match="initial_state.c is required"):
        rnn.apply(params, x, None, cfg, initial_state=rnn.State(jnp.zeros((B, 2, D))))
    with pytest.raises(ValueError, match="x must have shape"):
        rnn.apply(params, x[..., :2], None, cfg)
    with pytest.raises(ValueError, match="cell must be one of"):
        rnn.Config(cell="lstmx", in_dim=1, hidden_dim=1)


def test_lengths_are_checked_under_jit_too():
    cfg = _cfg("gru")
    params = rnn.init(jax.random.key(33), cfg)
    x = _data()
    f = jax.jit(lambda p, x, l: rnn.apply(p, x, l, cfg))
    lengths = jnp.asarray(LENGTHS)
    assert_close(f(params, x, lengths), rnn.apply(params, x, lengths, cfg))
    for bad in ([8, 2, 1], [3, -1, 1]):
        with pytest.raises(Exception, match=r"lengths must hold valid steps per sequence"):
            jax.block_until_ready(f(params, x, jnp.asarray(bad)))
