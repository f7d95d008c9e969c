"""The sharding rules: meshes, placement, constraints, FSDP gathering, Explicit-mode entry
points, and their errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import zoo
from zoo import sharding
from tests.tolerances import SHARDED


def test_eight_devices_are_simulated():
    assert jax.device_count() == 8


def test_make_mesh_defaults_to_every_device_on_data_with_auto_axes():
    """As documented: every device on ``data``, and ``Auto`` axis types passed explicitly,
    where ``jax.make_mesh`` left to itself would make ``Explicit`` ones."""
    mesh = sharding.make_mesh()
    assert mesh.axis_names == sharding.MESH_AXES
    assert dict(mesh.shape) == {"data": 8, "fsdp": 1, "tensor": 1}
    assert set(mesh.devices.flat) == set(jax.devices())
    assert mesh.axis_types == (AxisType.Auto,) * 3
    assert jax.make_mesh((8, 1, 1), sharding.MESH_AXES).axis_types != mesh.axis_types


@pytest.mark.parametrize("shape, match", [
    ((2, 2), "three positive ints"),
    ((2, 0, 4), "three positive ints"),
    ((2, 2, 3), r"needs 12 devices, but 8 are available"),
    ((1, 1, 1), r"needs 1 devices, but 8 are available"),
])
def test_make_mesh_rejects_shapes_that_do_not_fit(shape, match):
    with pytest.raises(ValueError, match=match):
        sharding.make_mesh(shape)


@pytest.mark.parametrize("logical, expected", [
    (("batch", "seq", "embed"), P(("data", "fsdp"), None, None)),
    (("embed", "mlp"), P("fsdp", "tensor")),
    (("mlp", "embed"), P("tensor", "fsdp")),
    (("hidden", "mlp"), P(None, "tensor")),          # one mesh axis per array: RULES order
    (("layers", "embed", "heads", "head_dim"), P(None, "fsdp", "tensor", None)),
    ((None, "vocab"), P(None, "tensor")),
])
def test_rules_table(logical, expected):
    assert sharding.logical_to_mesh(logical) == expected


def test_shard_params_places_each_leaf_by_its_logical_axes():
    spec = zoo.get("mlp-tiny")
    mesh = sharding.make_mesh((1, 2, 4))
    params = sharding.shard_params(spec.init(jax.random.key(0)), spec.param_axes(), mesh)
    w = params["dense_0"]["w"]                        # [6, 12] over (embed, hidden)
    assert w.sharding.spec == P("fsdp", "tensor")
    assert w.addressable_shards[0].data.shape == (3, 3)
    assert params["blocks"]["w1_ldf"].sharding.spec == P(None, "fsdp", "tensor")


def test_shard_params_names_the_parameter_that_does_not_divide():
    spec = zoo.get("mlp-tiny").replace(hidden_dims=(10,))
    mesh = sharding.make_mesh((1, 2, 4))
    with pytest.raises(ValueError, match=r"params\['dense_0'\]\['b'\]: dimension 0 "
                                         r"\(logical 'hidden'\) has size 10.*'tensor' of size 4"):
        sharding.shard_params(spec.init(jax.random.key(0)), spec.param_axes(), mesh)


def test_shard_params_rejects_a_mismatched_axes_tree():
    spec = zoo.get("mlp-xor")
    axes = spec.param_axes()
    del axes["out"]
    with pytest.raises(ValueError, match="does not match the params tree"):
        sharding.shard_params(spec.init(jax.random.key(0)), axes, sharding.make_mesh())


def test_sharding_for_rejects_a_rank_mismatch():
    with pytest.raises(ValueError, match=r"w: logical axes \('embed',\) have rank 1"):
        sharding.sharding_for(sharding.make_mesh(), ("embed",), (4, 4), name="w")


def test_shard_batch_splits_the_leading_axis_and_checks_divisibility():
    mesh = sharding.make_mesh((2, 2, 2))
    x = sharding.shard_batch({"x": jnp.ones((8, 3)), "y": jnp.ones(8)}, mesh)
    assert x["x"].sharding.spec == P(("data", "fsdp"), None)
    assert x["x"].addressable_shards[0].data.shape == (2, 3)
    with pytest.raises(ValueError, match=r"batch\['x'\]: dimension 0 \(logical 'batch'\) "
                                         r"has size 6"):
        sharding.shard_batch({"x": jnp.ones((6, 3))}, mesh)


def test_constrain_is_the_identity_without_a_mesh():
    x = jnp.arange(12.0).reshape(4, 3)
    assert sharding.constrain(x, ("batch", "embed")) is x
    assert sharding.gather_params({"w": x}, {"w": P("embed", "mlp")})["w"] is x


def test_constrain_applies_the_rules_under_a_mesh():
    mesh = sharding.make_mesh((2, 1, 4))
    with sharding.use_mesh(mesh):
        y = jax.jit(lambda x: sharding.constrain(x * 2, ("batch", "mlp")))(jnp.ones((8, 12)))
        # a size that does not divide its mesh axis stays replicated instead of failing
        z = jax.jit(lambda x: sharding.constrain(x * 2, ("batch", "mlp")))(jnp.ones((8, 6)))
    assert y.addressable_shards[0].data.shape == (4, 3)
    assert z.addressable_shards[0].data.shape == (4, 6)
    with sharding.use_mesh(mesh), pytest.raises(ValueError, match="do not match"):
        sharding.constrain(jnp.ones((8, 12)), ("batch",))


def test_constrain_keeps_only_the_axes_a_users_mesh_has():
    # a mesh of the user's own axis names: nothing to constrain, no error
    foreign = jax.make_mesh((8,), ("shards",), axis_types=(AxisType.Auto,))
    with jax.set_mesh(foreign):
        y = jax.jit(lambda x: sharding.constrain(x * 2, ("batch", "mlp")))(jnp.ones((8, 12)))
    np.testing.assert_array_equal(y, 2 * np.ones((8, 12)))
    # a mesh with only some of them: the batch still splits over the one it has
    partial = jax.make_mesh((4, 2), ("data", "shards"), axis_types=(AxisType.Auto,) * 2)
    with jax.set_mesh(partial):
        z = jax.jit(lambda x: sharding.constrain(x * 2, ("batch", "mlp")))(jnp.ones((8, 12)))
    assert z.addressable_shards[0].data.shape == (2, 12)


def test_vary_together_lets_a_zero_carry_scan_inside_shard_map_and_sums_its_gradient():
    mesh = jax.make_mesh((8,), ("shards",), axis_types=(AxisType.Auto,))
    x = jnp.arange(32.0).reshape(8, 4) / 10

    def local(w, x):
        # a running sum over the rows of the shard, scaled by the replicated w
        h0, w = sharding.vary_together((jnp.zeros(4), w), x)[0]
        h, _ = jax.lax.scan(lambda h, row: (h + w * row, None), h0, x)
        return h[None]

    run = jax.shard_map(local, mesh=mesh, in_specs=(P(), P("shards")), out_specs=P("shards"))
    w = jnp.full(4, 2.0)
    np.testing.assert_allclose(run(w, x), 2 * np.asarray(x), rtol=1e-6)
    # d/dw of the sum over all shards is the sum of all rows: the replicated w's gradient is
    # summed over the shards, as for JAX's own operations
    grad = jax.grad(lambda w: run(w, x).sum())(w)
    np.testing.assert_allclose(grad, np.asarray(x).sum(0), rtol=1e-6)
    with pytest.raises(TypeError, match=r"trees\[1\]\['name'\] is a str"):
        sharding.vary_together(x, {"name": "h0"})


def _running_lookup(table, tokens, scale, *, offset=None):
    """A zero-carry scan over embedded tokens: a running sum of ``scale * table[token]``
    (plus ``offset``). Under ``Explicit`` axes both the lookup of batch-split tokens and the
    replicated zero carry meeting a batch-split update are sharding-type errors."""
    emb = table[tokens] * scale + (0 if offset is None else offset)          # [B, T, D]
    h0, emb = sharding.vary_together(jnp.zeros((tokens.shape[0], table.shape[1])), emb)
    h, ys = jax.lax.scan(lambda h, e: (h + e, h + e), h0, jnp.swapaxes(emb, 0, 1))
    return h, jnp.swapaxes(ys, 0, 1)


def test_auto_inside_runs_explicit_mode_code_and_splits_the_outputs_over_the_batch():
    table = jnp.arange(12.0).reshape(6, 2)
    tokens = jax.random.randint(jax.random.key(0), (8, 5), 0, 6)
    offset = jnp.linspace(0, 1, 8 * 5 * 2).reshape(8, 5, 2)
    emb = np.asarray(table)[np.asarray(tokens)] * 3 + np.asarray(offset)
    want = np.cumsum(emb, axis=1)                                   # the running sum, by NumPy
    mesh = jax.make_mesh((8,), ("shards",), axis_types=(AxisType.Explicit,))
    with jax.set_mesh(mesh):
        tokens, offset = jax.device_put((tokens, offset), P("shards"))
        with pytest.raises(Exception, match="out_sharding"):
            jax.jit(_running_lookup, static_argnums=2)(jax.device_put(table, P()), tokens, 3,
                                                       offset=offset)
        # the table as made outside the mesh, a static argument, an array keyword
        run = jax.jit(sharding.auto_inside(_running_lookup), static_argnums=2)
        h, ys = run(table, tokens, 3, offset=offset)
    np.testing.assert_allclose(ys, want, rtol=1e-6)
    np.testing.assert_allclose(h, want[:, -1], rtol=1e-6)
    assert h.sharding.spec == P("shards", None) and ys.sharding.spec == P("shards", None, None)


def test_auto_inside_is_the_plain_function_without_explicit_axes_and_names_a_bad_output():
    total = sharding.auto_inside(lambda w, x: {"sum": (w * x).sum()})
    x = jnp.ones((8, 3))
    assert float(total(2.0, x)["sum"]) == 48.0                     # no mesh: fn as it is
    with jax.set_mesh(jax.make_mesh((8,), ("shards",), axis_types=(AxisType.Auto,))):
        assert float(jax.jit(total)(2.0, x)["sum"]) == 48.0
    with jax.set_mesh(jax.make_mesh((8,), ("shards",), axis_types=(AxisType.Explicit,))):
        with pytest.raises(ValueError, match=r"output\['sum'\] of shape \(\) does not lead"):
            jax.jit(total)(2.0, jax.device_put(x, P("shards")))
    with pytest.raises(TypeError, match="fn must be callable, got a str"):
        sharding.auto_inside("apply")


def test_auto_inside_within_a_shard_map_over_one_axis_of_an_explicit_mesh():
    """Manual over ``shards``, ``Explicit`` over ``data``: only ``data`` turns ``Auto``."""
    mesh = jax.make_mesh((2, 4), ("shards", "data"), axis_types=(AxisType.Explicit,) * 2)
    table = jnp.arange(12.0).reshape(6, 2)
    tokens = jax.random.randint(jax.random.key(1), (8, 5), 0, 6)
    step = jax.shard_map(lambda t, x: sharding.auto_inside(_running_lookup)(t, x, 1)[0],
                         mesh=mesh, in_specs=(P(), P("shards")), out_specs=P("shards"),
                         axis_names={"shards"})
    with jax.set_mesh(mesh):
        h = jax.jit(step)(table, jax.device_put(tokens, P("shards")))
    np.testing.assert_allclose(h, np.asarray(table)[np.asarray(tokens)].sum(1), rtol=1e-6)


@pytest.mark.parametrize("name, entry", [("cnn-protein_tiny", "features"),
                                         ("attention-local", "attention_weights_of")])
def test_entry_points_beyond_apply_on_a_users_explicit_mesh(name, entry):
    spec = zoo.get(name)
    params, (x,) = spec.init(jax.random.key(0)), spec.example_inputs(jax.random.key(1), 8)
    call = functools.partial(getattr(spec.module, entry), cfg=spec.config)
    with jax.set_mesh(jax.make_mesh((8,), ("shards",), axis_types=(AxisType.Explicit,))):
        got = jax.jit(call)(params, jax.device_put(x, P("shards")))
    for g, expected in zip(jax.tree.leaves(got), jax.tree.leaves(call(params, x)), strict=True):
        assert g.sharding.spec[0] == "shards"
        np.testing.assert_allclose(np.asarray(g), np.asarray(expected), **SHARDED)


def test_fsdp_gather_keeps_results_exact():
    """FSDP + tensor parallelism on the pattern of a residual MLP block.

    The batch is split over (data, fsdp), the hidden activation over tensor, and the
    row-parallel weight over (tensor, fsdp). Gathering the fsdp splits of the weights before
    the compute (what `gather_params` does in every model) must give the unsharded result.
    """
    mesh = sharding.make_mesh((2, 2, 2))
    keys = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(keys[0], (8, 6))
    params = {"w0": jax.random.normal(keys[1], (6, 12)), "w1": jax.random.normal(keys[2], (12, 20)),
              "w2": jax.random.normal(keys[3], (20, 12))}
    axes = {"w0": P("embed", "hidden"), "w1": P("embed", "mlp"), "w2": P("mlp", "embed")}

    def block(p, x):
        p = sharding.gather_params(p, axes)
        a = sharding.constrain(jnp.tanh(x @ p["w0"]), ("batch", "hidden"))
        return a + jnp.tanh(a @ p["w1"]) @ p["w2"]

    expected = block(params, x)
    placed = sharding.shard_params(params, axes, mesh)
    with sharding.use_mesh(mesh):
        out = jax.jit(block)(placed, sharding.shard_batch(x, mesh))
    np.testing.assert_allclose(out, expected, **SHARDED)
