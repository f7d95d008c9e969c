"""The perceptron: output, learning rule against a NumPy loop, logic gates, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import perceptron
from zoo.train import loss_fn
import zoo

GATE_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
GATES = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "XOR": [0, 1, 1, 0], "NAND": [1, 1, 1, 0]}


def numpy_perceptron(w, b, x, y, lr, epochs):
    """Rosenblatt's rule, one example at a time, in float64 NumPy."""
    w, b = np.array(w, np.float64), float(b)
    errors = []
    for _ in range(epochs):
        mistakes = 0
        for xi, yi in zip(x, y):
            y_hat = 1.0 if xi @ w + b > 0 else 0.0
            w += lr * (yi - y_hat) * xi
            b += lr * (yi - y_hat)
            mistakes += y_hat != yi
        errors.append(mistakes)
    return w, b, errors


def test_apply_is_a_threshold_unit():
    cfg = perceptron.Config(in_dim=3)
    params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(0.25)}
    x = np.array([[1, 1, 1], [0, 0, 0], [2, 0, -3], [0, 1, 5]], np.float32)
    expected = (x @ np.array([1.0, -2.0, 0.5]) + 0.25 > 0).astype(np.float32)
    np.testing.assert_array_equal(perceptron.apply(params, jnp.asarray(x), cfg), expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learning_rule_matches_numpy_loop(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(13, 5)).astype(np.float32)
    y = (x @ rng.normal(size=5) + 0.3 > 0).astype(np.float32)
    cfg = perceptron.Config(in_dim=5, learning_rate=0.5, max_epochs=9)
    params = perceptron.init(jax.random.key(seed), cfg)
    out = perceptron.fit(params, jnp.asarray(x), jnp.asarray(y), cfg)
    w, b, errors = numpy_perceptron(params["w"], params["b"], x, y, 0.5, 9)
    np.testing.assert_allclose(out.params["w"], w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.params["b"], b, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out.errors, errors)


@pytest.mark.parametrize("gate", ["AND", "OR", "NAND"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_linearly_separable_gates_reach_100_percent(gate, seed):
    cfg = perceptron.PRESETS["tiny"]
    y = jnp.array(GATES[gate], jnp.float32)
    out = perceptron.fit(perceptron.init(jax.random.key(seed), cfg), jnp.asarray(GATE_X), y, cfg)
    assert bool(out.converged) and int(out.epochs) <= cfg.max_epochs
    assert out.errors[int(out.epochs) - 1] == 0
    np.testing.assert_array_equal(perceptron.apply(out.params, jnp.asarray(GATE_X), cfg), y)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_xor_cannot_be_learned(seed, shuffle):
    cfg = perceptron.Config(in_dim=2, max_epochs=50)
    y = jnp.array(GATES["XOR"], jnp.float32)
    key = jax.random.key(100 + seed) if shuffle else None
    out = perceptron.fit(perceptron.init(jax.random.key(seed), cfg), jnp.asarray(GATE_X), y, cfg,
                         key=key)
    assert not bool(out.converged)
    assert int(out.epochs) == cfg.max_epochs
    assert (np.asarray(out.errors) > 0).all()
    accuracy = float((perceptron.apply(out.params, jnp.asarray(GATE_X), cfg) == y).mean())
    assert accuracy < 1.0


def test_criterion_gradient_is_the_perceptron_rule():
    """−∇ of max(0, −(2y−1)z) on one mistaken example is (y − ŷ) x, the rule's step."""
    cfg = perceptron.Config(in_dim=3)
    params = {"w": jnp.array([0.5, -1.0, 0.25]), "b": jnp.array(0.1)}
    x, y = jnp.array([[1.0, 2.0, -1.0]]), jnp.array([1.0])           # z < 0, label 1: a mistake
    grads = jax.grad(loss_fn(zoo.get("perceptron-tiny").replace(in_dim=3)))(params, (x,), y)
    y_hat = perceptron.apply(params, x, cfg)
    np.testing.assert_allclose(-grads["w"], (y - y_hat) * x[0])
    np.testing.assert_allclose(-grads["b"], (y - y_hat)[0])


@pytest.mark.parametrize("field, value", [
    ("in_dim", 0), ("in_dim", 2.5), ("learning_rate", 0.0), ("learning_rate", float("nan")),
    ("max_epochs", 0), ("dtype", "int32"),
])
def test_config_rejects_bad_values(field, value):
    kwargs = {"in_dim": 2, field: value}
    with pytest.raises(ValueError, match=field):
        perceptron.Config(**kwargs)


def test_bad_inputs_name_the_argument():
    cfg = perceptron.PRESETS["tiny"]
    params = perceptron.init(jax.random.key(0), cfg)
    with pytest.raises(ValueError, match=r"x must have shape \(\?, 2\)"):
        perceptron.apply(params, jnp.ones((4, 3)), cfg)
    with pytest.raises(ValueError, match="x must have rank 2"):
        perceptron.apply(params, jnp.ones(2), cfg)
    with pytest.raises(TypeError, match="x must be an array"):
        perceptron.apply(params, [[0.0, 1.0]], cfg)
    with pytest.raises(ValueError, match=r"y must have shape \(4\)"):
        perceptron.fit(params, jnp.ones((4, 2)), jnp.ones(3), cfg)
