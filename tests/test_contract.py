"""One battery over every registered model: what the model contract promises, checked.

A model added to the registry is covered here without further wiring. Models above
``FULL_LIMIT`` parameters get the shape checks only (abstract evaluation, nothing allocated).
"""

import dataclasses

import jax
import jax.test_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, PartitionSpec
from jax.sharding import PartitionSpec as P

import zoo
from zoo import interop, sharding
from zoo.train import init_state, loss_fn, make_train_step
from zoo.types import LOGICAL_AXES
from tests.tolerances import REORDERED, SHARDED

FULL_LIMIT = 5_000_000     # parameters: above this, shape checks only
GRAD_LIMIT = 20_000        # parameters: numerical gradient checks in float64
BATCH = 8                  # divides every data-axis size of the meshes below
MESHES = [(8, 1, 1), (2, 2, 2), (1, 2, 4)]

ALL = zoo.list_models()
FULL = [n for n in ALL if zoo.get(n).num_params() <= FULL_LIMIT]
# Numerical gradient checks in float64 (the slowest check) on each family's tiny preset.
SMALL = [n for n in ALL if n == f"{zoo.get(n).family}-tiny"
         and zoo.get(n).num_params() <= GRAD_LIMIT]


def _setup(name, batch=BATCH):
    spec = zoo.get(name)
    params = spec.init(jax.random.key(0))
    inputs = spec.example_inputs(jax.random.key(1), batch)
    return spec, params, inputs


def _leaves_close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **REORDERED)


@pytest.mark.parametrize("name", ALL)
def test_config_is_frozen_hashable_and_has_dtype(name):
    cfg = zoo.get(name).config
    hash(cfg)
    assert dataclasses.is_dataclass(cfg) and cfg.__dataclass_params__.frozen
    assert hasattr(cfg, "dtype"), "every Config has a dtype field"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.dtype = "float16"


@pytest.mark.parametrize("name", ALL)
def test_eval_shape_params_are_float32_dicts(name):
    spec = zoo.get(name)
    shapes = jax.eval_shape(spec.init, jax.random.key(0))

    def check(node, path="params"):
        assert isinstance(node, dict), f"{path} is a {type(node).__name__}, not a dict"
        for k, v in node.items():
            if isinstance(v, dict):
                check(v, f"{path}[{k!r}]")
            else:
                assert v.dtype == jnp.float32, f"{path}[{k!r}] is {v.dtype}"
    check(shapes)


@pytest.mark.parametrize("name", ALL)
def test_eval_shape_matches_apply(name):
    spec = zoo.get(name)
    params = jax.eval_shape(spec.init, jax.random.key(0))
    inputs = jax.eval_shape(lambda k: spec.example_inputs(k, 3), jax.random.key(1))
    out = jax.eval_shape(spec.apply, params, *inputs)
    for leaf in jax.tree.leaves(out):
        assert leaf.shape[0] == 3, f"outputs lead with the batch axis, got {leaf.shape}"
    if name in FULL:
        real = spec.apply(spec.init(jax.random.key(0)), *spec.example_inputs(jax.random.key(1), 3))
        assert jax.tree.map(lambda a: (a.shape, a.dtype), real) == \
            jax.tree.map(lambda a: (a.shape, a.dtype), out)


@pytest.mark.parametrize("name", ALL)
def test_param_axes_match_params(name):
    spec = zoo.get(name)
    shapes = jax.eval_shape(spec.init, jax.random.key(0))
    axes = spec.param_axes()
    is_spec = lambda a: isinstance(a, PartitionSpec)
    assert jax.tree.structure(shapes) == jax.tree.structure(
        jax.tree.map(lambda a: 0, axes, is_leaf=is_spec))
    for leaf, ax in zip(jax.tree.leaves(shapes), jax.tree.leaves(axes, is_leaf=is_spec)):
        assert is_spec(ax)
        assert len(ax) == leaf.ndim, f"axes {ax} for a leaf of shape {leaf.shape}"
        assert all(a is None or a in LOGICAL_AXES for a in ax), ax


@pytest.mark.parametrize("name", FULL)
def test_same_key_same_params_other_key_other_params(name):
    spec = zoo.get(name)
    a, b = spec.init(jax.random.key(3)), spec.init(jax.random.key(3))
    c = spec.init(jax.random.key(4))
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c)))


@pytest.mark.parametrize("name", FULL)
def test_jit_equals_eager(name):
    spec, params, inputs = _setup(name)
    with jax.disable_jit():
        eager = spec.apply(params, *inputs)
    _leaves_close(jax.jit(spec.apply)(params, *inputs), eager)


@pytest.mark.parametrize("name", FULL)
def test_vmap_equals_batched_call(name):
    spec, params, inputs = _setup(name)

    def one(*xs):
        out = spec.apply(params, *(x[None] for x in xs))
        return jax.tree.map(lambda o: o[0], out)
    _leaves_close(jax.vmap(one)(*inputs), spec.apply(params, *inputs))


@pytest.mark.parametrize("name", SMALL)
def test_gradients_match_finite_differences_in_float64(name):
    with jax.enable_x64(True):
        spec = zoo.get(name).replace(dtype="float64")
        params = jax.tree.map(lambda p: p.astype(jnp.float64), spec.init(jax.random.key(0)))
        inputs = tuple(x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x
                       for x in spec.example_inputs(jax.random.key(1), 4))
        out = spec.apply(params, *inputs)
        weights = jax.tree.map(lambda o: jax.random.normal(jax.random.key(2), o.shape,
                                                            jnp.float64), out)

        def f(p):
            o = spec.apply(p, *inputs)
            return sum(jnp.vdot(a, w) for a, w in zip(jax.tree.leaves(o), jax.tree.leaves(weights)))
        grads = jax.grad(f)(params)
        assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
        jax.test_util.check_grads(f, (params,), order=1, modes=("rev",), atol=1e-6, rtol=1e-6,
                                 eps=1e-6)


def _check_sharded(spec, params, inputs, mesh):
    """The jitted model on ``params`` and ``inputs`` placed on ``mesh`` by the zoo's rules
    equals the unsharded run; returns its outputs."""
    expected = jax.jit(spec.apply)(params, *inputs)
    placed = sharding.shard_params(params, spec.param_axes(), mesh)
    batch = sharding.shard_batch(inputs, mesh)
    with jax.set_mesh(mesh):
        out = jax.jit(spec.apply)(placed, *batch)
    for o, e in zip(jax.tree.leaves(out), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(o), np.asarray(e), **SHARDED)
    for x in jax.tree.leaves(batch):
        assert len(x.addressable_shards) == 8
        assert x.addressable_shards[0].data.shape[0] == BATCH // (
            mesh.shape["data"] * mesh.shape["fsdp"])
    return out


@pytest.mark.parametrize("mesh_shape", MESHES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", FULL)
def test_sharded_equals_unsharded(name, mesh_shape):
    spec, params, inputs = _setup(name)
    _check_sharded(spec, params, inputs, sharding.make_mesh(mesh_shape))


@pytest.mark.parametrize("name", FULL)
def test_sharded_equals_unsharded_on_explicit_axes(name):
    """``jax.make_mesh``'s default axis type, ``Explicit``, on the zoo's axis names: the
    parameters split over ``fsdp`` and ``tensor`` as the rules say, the batch over ``data``
    and ``fsdp``."""
    spec, params, inputs = _setup(name)
    mesh = jax.make_mesh((2, 2, 2), sharding.MESH_AXES, axis_types=(AxisType.Explicit,) * 3)
    out = _check_sharded(spec, params, inputs, mesh)
    assert all(o.sharding.spec[0] == ("data", "fsdp") for o in jax.tree.leaves(out))


def _weighted_objective(spec, weights):
    """``params, inputs -> <apply(params, *inputs), weights>`` summed over the output leaves."""
    def objective(p, xs):
        o = spec.apply(p, *xs)
        return sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(o), jax.tree.leaves(weights)))
    return objective


def _assert_grads_close(got, expected):
    # entries that cancel to ~0 (a key bias's gradient is exactly 0 in exact arithmetic)
    # keep rounding noise of the larger terms: absolute tolerance against the largest entry
    scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(expected))
    for (path, g), x in zip(jax.tree_util.tree_leaves_with_path(expected),
                            jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(g), rtol=1e-4, atol=1e-6 * scale,
                                   err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("name", FULL)
def test_runs_inside_a_users_shard_map(name):
    """A user's data-parallel step: ``shard_map`` over a mesh of the user's own axis name
    (none of the zoo's), the batch split eight ways, the parameters replicated. The outputs
    and the gradient of a weighted sum of them (``psum`` over the shards) equal the
    unsharded ones."""
    spec, params, inputs = _setup(name)
    out = spec.apply(params, *inputs)
    weights = jax.tree.map(lambda o: jax.random.normal(jax.random.key(2), o.shape), out)
    objective = _weighted_objective(spec, weights)

    def local(p, xs, w):
        grad = jax.grad(lambda p: jax.lax.psum(_weighted_objective(spec, w)(p, xs), "shards"))
        return spec.apply(p, *xs), grad(p)

    mesh = jax.make_mesh((8,), ("shards",), axis_types=(AxisType.Auto,))
    run = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P("shards"), P("shards")),
                                out_specs=(P("shards"), P())))
    got_out, got_grad = run(params, inputs, weights)
    _leaves_close(got_out, out)
    _assert_grads_close(got_grad, jax.grad(objective)(params, inputs))


@pytest.mark.parametrize("name", FULL)
def test_runs_on_a_users_explicit_mesh(name):
    """A user's data-parallel step in ``Explicit`` mode (``jax.make_mesh``'s default): a
    mesh of the user's own axis name, the batch placed split eight ways, the parameters
    replicated, everything under ``jax.jit``. The outputs come back split over the batch and
    equal the unsharded ones, and so does the gradient of a weighted sum of them."""
    spec, params, inputs = _setup(name)
    out = spec.apply(params, *inputs)
    weights = jax.tree.map(lambda o: jax.random.normal(jax.random.key(2), o.shape), out)
    objective = _weighted_objective(spec, weights)
    mesh = jax.make_mesh((8,), ("shards",), axis_types=(AxisType.Explicit,))
    with jax.set_mesh(mesh):
        xs = jax.device_put(inputs, P("shards"))
        got_out = jax.jit(spec.apply)(jax.device_put(params, P()), *xs)
        got_grad = jax.jit(jax.grad(objective))(jax.device_put(params, P()), xs)
    _leaves_close(got_out, out)
    assert all(o.sharding.spec[0] == "shards" for o in jax.tree.leaves(got_out))
    _assert_grads_close(got_grad, jax.grad(objective)(params, inputs))


@pytest.mark.parametrize("name", [n for n in ALL if n not in FULL])
def test_large_models_trace_on_a_users_explicit_mesh(name):
    """The models above ``FULL_LIMIT``, abstractly: on an ``Explicit`` mesh the outputs'
    types say they are split over the batch."""
    spec = zoo.get(name)
    mesh = jax.make_mesh((8,), ("shards",), axis_types=(AxisType.Explicit,))
    params = jax.eval_shape(spec.init, jax.random.key(0))
    inputs = jax.eval_shape(lambda k: spec.example_inputs(k, BATCH), jax.random.key(1))
    split = jax.sharding.NamedSharding(mesh, P("shards"))
    inputs = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=split),
                          inputs)
    with jax.set_mesh(mesh):
        out = jax.eval_shape(spec.apply, params, *inputs)
    for leaf in jax.tree.leaves(out):
        assert leaf.sharding.spec[0] == "shards", leaf


@pytest.mark.parametrize("name", FULL)
def test_interop_wrappers_agree(name):
    spec, _, inputs = _setup(name)
    linen = interop.to_linen(spec)
    variables = linen.init(jax.random.key(0), *inputs)
    _leaves_close(linen.apply(variables, *inputs), spec.apply(variables["params"]["zoo"], *inputs))
    nnx_model = interop.to_nnx(spec, jax.random.key(0))
    _leaves_close(nnx_model(*inputs), spec.apply(nnx_model.zoo_params(), *inputs))
    eqx = pytest.importorskip("equinox")
    eqx_model = interop.to_equinox(spec, jax.random.key(0))
    _leaves_close(eqx.filter_jit(lambda m, *xs: m(*xs))(eqx_model, *inputs),
                  spec.apply(spec.init(jax.random.key(0)), *inputs))


@pytest.mark.parametrize("name", FULL)
def test_train_step_lowers_the_loss(name):
    spec = zoo.get(name)
    optimizer = optax.adam(1e-3)
    state = init_state(spec, optimizer, jax.random.key(0))
    inputs, targets = spec.example_batch(jax.random.key(1), BATCH)
    before = loss_fn(spec)(state.params, inputs, targets)
    step = make_train_step(spec, optimizer)
    for _ in range(5):
        state, loss = step(state, inputs, targets)
    after = loss_fn(spec)(state.params, inputs, targets)
    assert np.isfinite(float(loss)) and float(after) < float(before)
    assert int(state.step) == 5


@pytest.mark.parametrize("name", FULL)
def test_bad_inputs_name_the_argument(name):
    spec, params, inputs = _setup(name, batch=2)
    for i in range(len(inputs)):
        wrong_rank = list(inputs)
        wrong_rank[i] = inputs[i][None]
        with pytest.raises(ValueError, match="rank|shape"):   # rnn: a rank-2 lengths is a mask
            spec.apply(params, *wrong_rank)
        wrong_dtype = list(inputs)
        wrong_dtype[i] = inputs[i].astype(jnp.complex64)
        with pytest.raises(TypeError, match="dtype"):
            spec.apply(params, *wrong_dtype)
