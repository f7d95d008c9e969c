"""The MLP: forward pass against NumPy and PyTorch, backpropagation against jax.grad, XOR."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import zoo
from zoo import mlp
from zoo.train import init_state, make_train_step
from tests.tolerances import assert_close, tol

NP_ACT = {
    "identity": lambda z: z,
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "relu": lambda z: np.maximum(z, 0),
}


def numpy_forward(params, x, cfg):
    """The MLP written as loops over layers and blocks, float64."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    act, a = NP_ACT[cfg.activation], np.asarray(x, np.float64)
    for i in range(len(cfg.hidden_dims)):
        a = act(a @ p[f"dense_{i}"]["w"] + p[f"dense_{i}"]["b"])
    for l in range(cfg.num_blocks):
        b = {k: v[l] for k, v in p["blocks"].items()}
        mu = a.mean(-1, keepdims=True)
        var = ((a - mu) ** 2).mean(-1, keepdims=True)
        u = (a - mu) / np.sqrt(var + 1e-6) * b["norm_scale_ld"] + b["norm_bias_ld"]
        a = a + act(u @ b["w1_ldf"] + b["b1_lf"]) @ b["w2_lfd"] + b["b2_ld"]
    return NP_ACT[cfg.out_activation](a @ p["out"]["w"] + p["out"]["b"])


def _random_params(cfg, seed):
    """Init, then random biases and norm params so that no term is trivially zero."""
    params = mlp.init(jax.random.key(seed), cfg)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [l + 0.3 * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)]
    return treedef.unflatten(leaves)


@pytest.mark.parametrize("cfg", [
    mlp.Config(in_dim=5, out_dim=3, hidden_dims=(7, 11), activation="tanh"),
    mlp.Config(in_dim=5, out_dim=2, hidden_dims=(6,), activation="relu", num_blocks=3,
               block_mlp_dim=9),
    mlp.Config(in_dim=4, out_dim=3, activation="sigmoid", num_blocks=2),
    mlp.Config(in_dim=4, out_dim=1, out_activation="sigmoid"),
], ids=["plain", "blocks", "blocks-only", "linear-sigmoid"])
def test_forward_matches_numpy_loop(cfg):
    params = _random_params(cfg, 0)
    x = np.random.default_rng(0).normal(size=(9, cfg.in_dim)).astype(np.float32)
    assert_close(mlp.apply(params, jnp.asarray(x), cfg), numpy_forward(params, x, cfg))


def test_forward_matches_torch_sequential():
    torch = pytest.importorskip("torch")
    cfg = mlp.Config(in_dim=5, out_dim=4, hidden_dims=(13, 6), activation="tanh")
    params = _random_params(cfg, 3)
    mods = []
    for name in ["dense_0", "dense_1", "out"]:
        lin = torch.nn.Linear(*params[name]["w"].shape).double()
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(np.asarray(params[name]["w"]).T))
            lin.bias.copy_(torch.tensor(np.asarray(params[name]["b"])))
        mods += [lin, torch.nn.Tanh()]
    net = torch.nn.Sequential(*mods[:-1])
    x = np.random.default_rng(1).normal(size=(8, 5))
    expected = net(torch.tensor(x)).detach().numpy()
    assert_close(mlp.apply(params, jnp.asarray(x, jnp.float32), cfg), expected)


@pytest.mark.parametrize("activation, out_activation, hidden", [
    ("sigmoid", "sigmoid", (7, 5)),     # the course's network: σ everywhere
    ("tanh", "identity", (6,)),
    ("relu", "identity", (9, 8, 7)),
    ("gelu", "sigmoid", (4, 4)),
    ("sigmoid", "identity", ()),         # no hidden layer: one δ
])
def test_backprop_equals_jax_grad_in_float64(activation, out_activation, hidden):
    with jax.enable_x64(True):
        cfg = mlp.Config(in_dim=3, out_dim=2, hidden_dims=hidden, activation=activation,
                         out_activation=out_activation, dtype="float64")
        params = jax.tree.map(lambda p: p.astype(jnp.float64), _random_params(cfg, 4))
        rng = np.random.default_rng(2)
        x, y = jnp.asarray(rng.normal(size=(11, 3))), jnp.asarray(rng.normal(size=(11, 2)))
        cost, grads = mlp.backprop(params, x, y, cfg)

        def quadratic_cost(p):
            return 0.5 * jnp.sum((mlp.apply(p, x, cfg) - y) ** 2) / x.shape[0]
        ref_cost, ref_grads = jax.value_and_grad(quadratic_cost)(params)
        assert jax.tree.structure(grads) == jax.tree.structure(ref_grads)
        assert_close(cost, ref_cost, dtype="float64")
        for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
            assert g.dtype == jnp.float64
            assert_close(g, r, dtype="float64")


def test_backprop_refuses_residual_blocks():
    cfg = mlp.PRESETS["tiny"]
    with pytest.raises(ValueError, match="num_blocks must be 0"):
        mlp.backprop(mlp.init(jax.random.key(0), cfg), jnp.ones((2, 6)), jnp.ones((2, 3)), cfg)


def test_backprop_checks_target_shape():
    cfg = mlp.PRESETS["xor"]
    with pytest.raises(ValueError, match=r"y must have shape \(2, 2\)"):
        mlp.backprop(mlp.init(jax.random.key(0), cfg), jnp.ones((2, 2)), jnp.ones((2, 3)), cfg)


def test_mlp_learns_xor_to_100_percent():
    spec = zoo.get("mlp-xor")
    x = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = jnp.array([0, 1, 1, 0])
    optimizer = optax.adam(0.05)
    state, step = init_state(spec, optimizer, jax.random.key(0)), make_train_step(spec, optimizer)
    for _ in range(300):
        state, loss = step(state, (x,), y)
    np.testing.assert_array_equal(spec.apply(state.params, x).argmax(-1), y)
    assert float(loss) < 0.05


def test_blocks_start_near_identity_and_scan_over_layers():
    cfg = mlp.Config(in_dim=4, out_dim=2, hidden_dims=(8,), num_blocks=5)
    params = mlp.init(jax.random.key(0), cfg)
    assert params["blocks"]["w1_ldf"].shape == (5, 8, 32)
    jaxpr = jax.make_jaxpr(lambda p, x: mlp.apply(p, x, cfg))(params, jnp.ones((3, 4)))
    assert "scan" in str(jaxpr), "repeated blocks run under lax.scan"


@pytest.mark.parametrize("kwargs, field", [
    (dict(in_dim=0, out_dim=2), "in_dim"),
    (dict(in_dim=2, out_dim=-1), "out_dim"),
    (dict(in_dim=2, out_dim=2, hidden_dims=[4]), "hidden_dims"),
    (dict(in_dim=2, out_dim=2, hidden_dims=(4, 0)), r"hidden_dims\[1\]"),
    (dict(in_dim=2, out_dim=2, activation="swish2"), "activation"),
    (dict(in_dim=2, out_dim=2, num_blocks=-1), "num_blocks"),
    (dict(in_dim=2, out_dim=2, block_mlp_dim=0), "block_mlp_dim"),
    (dict(in_dim=2, out_dim=2, dtype="float17"), "dtype"),
])
def test_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        mlp.Config(**kwargs)


def test_bad_inputs_name_the_argument():
    cfg = mlp.PRESETS["tiny"]
    params = mlp.init(jax.random.key(0), cfg)
    with pytest.raises(ValueError, match=r"x must have shape \(\?, 6\) \[B I\], got \(2, 5\)"):
        mlp.apply(params, jnp.ones((2, 5)), cfg)
    with pytest.raises(TypeError, match="x must have a number dtype"):
        mlp.apply(params, jnp.ones((2, 6), jnp.complex64), cfg)
