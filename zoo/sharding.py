"""Sharding: one table maps logical axis names to the mesh axes ``data``, ``fsdp``, ``tensor``.

Model files name only logical axes (``batch``, ``embed``, ``hidden`` ...; see
:mod:`zoo.types`). This module owns the mapping, so changing a parallelism strategy is a
change to :data:`RULES` and nothing else.

* ``batch`` splits over ``data`` and ``fsdp`` (both are data-parallel for activations);
* ``embed`` splits parameters over ``fsdp`` (fully-sharded data parallel);
* ``mlp``, ``hidden``, ``heads``, ``gates``, ``vocab``, ``channels`` split over ``tensor``
  (tensor parallelism, Megatron style).

When one array names two logical axes that map to the same mesh axis, the name listed first in
:data:`RULES` keeps it and the other is replicated (:func:`flax.linen.logical_to_mesh_axes`
resolves this), so a ``[hidden, mlp]`` matrix splits its ``mlp`` columns only.

Meshes are made with ``AxisType.Auto`` on every axis: the compiler propagates shardings from
the placed parameters and the constraints at block boundaries, the classic GSPMD model. Every
model then runs unchanged on one device, eight, or many hosts. On a user's mesh of
``Explicit`` axes (``jax.make_mesh``'s default) the models' entry points switch those axes to
``Auto`` for their body and return outputs split over the batch (:func:`auto_inside`); inside
a user's ``shard_map`` the scans' carries are marked varying over its axes
(:func:`vary_together`).

Example:
    >>> import jax, zoo
    >>> from zoo import sharding
    >>> spec = zoo.get("mlp-tiny")
    >>> mesh = sharding.make_mesh((2, 2, 2))
    >>> params = sharding.shard_params(spec.init(jax.random.key(0)), spec.param_axes(), mesh)
    >>> x = sharding.shard_batch(spec.example_inputs(jax.random.key(1), 8)[0], mesh)
    >>> with sharding.use_mesh(mesh):
    ...     y = jax.jit(spec.apply)(params, x)
    >>> y.shape
    (8, 3)
"""

import difflib
import functools
import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from zoo._checks import shape_str
from zoo.types import LOGICAL_AXES

MESH_AXES = ("data", "fsdp", "tensor")

#: Logical axis name -> mesh axis (or tuple of mesh axes). Names absent here are replicated.
RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("hidden", "tensor"),
    ("heads", "tensor"),
    ("gates", "tensor"),
    ("vocab", "tensor"),
    ("channels", "tensor"),
    ("seq", None),
    ("head_dim", None),
    ("layers", None),
)


def make_mesh(shape: Sequence[int] | None = None, *, devices=None) -> Mesh:
    """Builds a ``(data, fsdp, tensor)`` mesh with explicit ``Auto`` axis types.

    Args:
        shape: sizes of the ``data``, ``fsdp`` and ``tensor`` axes; their product must equal
            the number of devices. Default: every device on ``data``.
        devices: the devices to use (default ``jax.devices()``).

    Raises:
        ValueError: if ``shape`` does not have three positive entries or does not fit the
            devices.
    """
    devices = list(jax.devices() if devices is None else devices)
    shape = (len(devices), 1, 1) if shape is None else tuple(shape)
    if len(shape) != 3 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in shape):
        raise ValueError(
            f"mesh shape must be three positive ints for {MESH_AXES}, got {shape!r}")
    if math.prod(shape) != len(devices):
        raise ValueError(
            f"mesh shape {shape_str(shape)} needs {math.prod(shape)} devices, "
            f"but {len(devices)} are available")
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def use_mesh(mesh: Mesh):
    """Context manager that makes ``mesh`` current for :func:`constrain` and jit."""
    return jax.set_mesh(mesh)


def logical_to_mesh(logical: PartitionSpec | Sequence[str | None],
                    rules=RULES) -> PartitionSpec:
    """Maps a spec of logical names to a spec of mesh axes through ``rules``.

    >>> logical_to_mesh(("batch", "embed", "hidden")) == PartitionSpec(("data", "fsdp"), None,
    ...                                                                "tensor")
    True
    """
    from flax.linen import logical_to_mesh_axes   # deferred: keeps `import zoo` light
    return logical_to_mesh_axes(tuple(logical), rules)


def sharding_for(mesh: Mesh, logical, shape: Sequence[int], *, name: str = "array",
                 rules=RULES) -> NamedSharding:
    """The ``NamedSharding`` for an array of ``shape`` with logical axes ``logical``.

    Raises:
        ValueError: if the rank differs from ``len(logical)``, a name is not a logical axis
            (:data:`zoo.types.LOGICAL_AXES`, or one ``rules`` names), the mesh lacks a mesh
            axis the rules map to, or a dimension does not divide the mesh axes it is split
            over.
    """
    logical = tuple(logical)
    if len(logical) != len(shape):
        raise ValueError(
            f"{name}: logical axes {logical} have rank {len(logical)}, "
            f"but the array has shape {shape_str(shape)}")
    _check_logical(logical, name, rules)
    spec = logical_to_mesh(logical, rules)
    _check_mesh_axes(mesh, spec, logical, name)
    for dim, (size, axes) in enumerate(zip(shape, spec)):
        parts = _axis_size(mesh, axes)
        if size % parts:
            raise ValueError(
                f"{name}: dimension {dim} (logical {logical[dim]!r}) has size {size}, which "
                f"does not divide mesh axes {axes!r} of size {parts}")
    return NamedSharding(mesh, spec)


def shard_params(params, axes, mesh: Mesh, *, rules=RULES):
    """Places every parameter on ``mesh`` as its ``param_axes`` entry says.

    Raises:
        ValueError: if ``axes`` is not the same tree as ``params``, or a dimension does not
            divide its mesh axes (the message names the parameter).
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    flat_axes, axes_def = jax.tree_util.tree_flatten(
        axes, is_leaf=lambda a: isinstance(a, PartitionSpec))
    if axes_def.num_leaves != treedef.num_leaves or \
            jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(
                jax.tree_util.tree_unflatten(axes_def, [0] * axes_def.num_leaves)):
        raise ValueError(f"param_axes tree {axes_def} does not match the params tree {treedef}")
    placed = [
        jax.device_put(leaf, sharding_for(
            mesh, spec, leaf.shape, name="params" + jax.tree_util.keystr(path), rules=rules))
        for (path, leaf), spec in zip(flat, flat_axes)
    ]
    return jax.tree_util.tree_unflatten(treedef, placed)


def shard_batch(batch, mesh: Mesh, *, rules=RULES):
    """Splits the leading (batch) axis of every array in ``batch`` over the data axes.

    Raises:
        ValueError: if a batch size does not divide ``data * fsdp``.
    """
    def place(path, x):
        logical = ("batch",) + (None,) * (np.ndim(x) - 1)
        name = "batch" + jax.tree_util.keystr(path)
        return jax.device_put(x, sharding_for(mesh, logical, np.shape(x), name=name,
                                              rules=rules))
    return jax.tree_util.tree_map_with_path(place, batch)


def constrain(x: jax.Array, logical: Sequence[str | None], *, rules=RULES) -> jax.Array:
    """Constrains an activation's sharding by logical axis names.

    The identity when no mesh is current (see :func:`use_mesh`), so model code calls it
    unconditionally. Axes whose size does not divide their mesh axes are left replicated.
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    if len(logical) != x.ndim:
        raise ValueError(f"constrain: logical axes {tuple(logical)} do not match the "
                         f"activation's shape {shape_str(x.shape)}")
    spec = [_on_mesh(mesh, axes) for axes in logical_to_mesh(logical, rules)]
    spec = PartitionSpec(*(
        axes if size % _axis_size(mesh, axes) == 0 else None
        for size, axes in zip(x.shape, spec)))
    if all(axes is None for axes in spec):
        return x
    return jax.lax.with_sharding_constraint(x, spec)


def gather_params(params, axes, *, rules=RULES):
    """FSDP's all-gather: constrains each parameter to its sharding without ``fsdp``.

    Parameters are stored split over ``fsdp`` (and ``tensor``); a model's ``apply`` calls this
    first so that the compute sees weights split over ``tensor`` only, while the batch stays
    split over ``data`` and ``fsdp``. The identity when no mesh is current.

    (Gathering explicitly also keeps XLA's partitioner away from programs where one mesh axis
    splits both the batch and a weight's output dimension, which it miscompiled on CPU in
    jax 0.10: see ``tests/test_sharding.py::test_fsdp_gather_keeps_results_exact``.)
    """
    if jax.sharding.get_abstract_mesh().empty:
        return params
    compute_rules = tuple((name, _without(axes_, "fsdp")) for name, axes_ in rules)
    leaves, treedef = jax.tree.flatten(params)
    specs = jax.tree.leaves(axes, is_leaf=lambda a: isinstance(a, PartitionSpec))
    return treedef.unflatten(
        [constrain(p, tuple(ax), rules=compute_rules) for p, ax in zip(leaves, specs)])


def vary_together(*trees):
    """The pytrees, every array leaf marked as varying over each manual mesh axis that any
    leaf of any of them varies over.

    Inside ``shard_map``, an array made there (a zero state, a start token, a gradient
    accumulator) or passed in replicated (the parameters) does not vary over the batch's axis,
    while one computed from the batch does; a scan's carry must keep its type, and a
    ``custom_vjp`` must return cotangents of its inputs' types. Marking the inputs first makes
    both hold, and differentiating the marking sums a replicated input's gradient over the
    axis, as JAX does for its own operations. Outside ``shard_map`` (or on a JAX that tracks
    no varying axes) every tree comes back unchanged.

    Raises:
        TypeError: a leaf that is neither an array nor a number (the message gives its path).

    >>> import jax.numpy as jnp
    >>> h, x = vary_together(jnp.zeros(3), jnp.ones(3))      # no shard_map: unchanged
    >>> h.tolist()
    [0.0, 0.0, 0.0]
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(trees)
    for path, leaf in flat:
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, bool, int, float, complex)):
            raise TypeError(f"vary_together: leaf trees{jax.tree_util.keystr(path)} is a "
                            f"{type(leaf).__name__}, not an array")
    leaves = [leaf for _, leaf in flat]
    axes = frozenset().union(*map(_varying_axes, leaves))
    leaves = [a if not axes - _varying_axes(a) else
              jax.lax.pcast(a, tuple(sorted(axes - _varying_axes(a))), to="varying")
              for a in leaves]
    return jax.tree.unflatten(treedef, leaves)


def auto_inside(fn):
    """Decorator: ``fn(params, x, ...)`` runs with the current mesh's ``Explicit`` axes made
    ``Auto``; every output comes back split over the batch as ``x`` is.

    ``jax.make_mesh`` makes ``Explicit`` axes by default, where every operation must resolve
    its output's sharding from its inputs' types (an embedding lookup of batch-split tokens,
    a scan whose zero carry meets a batch-split update, a reshape of a split axis fail until
    told). The models are written for ``Auto`` axes, so their entry points switch those axes
    to ``Auto`` for their body (``jax.sharding.auto_axes``) and hand back outputs split as
    their batch input is, like any ``Explicit``-mode function. With no ``Explicit`` axis
    current (no mesh, ``Auto`` meshes, inside ``shard_map``) ``fn`` runs unchanged.

    ``x`` is the first argument after ``params`` (its first leaf, if a pytree); every output
    leaf of ``fn`` leads with the batch axis (the model contract).

    Raises:
        TypeError: ``fn`` is not callable.
        ValueError: under an ``Explicit`` axis, an output leaf whose leading axis is not the
            batch's (the message gives its path).

    >>> import jax, jax.numpy as jnp
    >>> from jax.sharding import AxisType, PartitionSpec as P
    >>> table = jnp.arange(12.0).reshape(6, 2)
    >>> lookup = auto_inside(lambda table, tokens: table[tokens])
    >>> mesh = jax.make_mesh((1,), ("shards",), axis_types=(AxisType.Explicit,),
    ...                      devices=jax.devices()[:1])
    >>> with jax.set_mesh(mesh):
    ...     tokens = jax.device_put(jnp.array([[1, 5]]), P("shards"))
    ...     out = jax.jit(lookup)(table, tokens)
    >>> out.sharding.spec == P("shards", None, None), out.tolist()
    (True, [[[2.0, 3.0], [10.0, 11.0]]])
    """
    if not callable(fn):
        raise TypeError(f"auto_inside: fn must be callable, got a {type(fn).__name__}")

    @functools.wraps(fn)
    def wrapped(params, x, *args, **kwargs):
        mesh = jax.sharding.get_abstract_mesh()
        explicit = tuple(name for name, kind in zip(mesh.axis_names, mesh.axis_types)
                         if kind == AxisType.Explicit)
        leads = jax.tree.leaves(x) if explicit else ()
        if not leads or np.ndim(leads[0]) == 0:
            return fn(params, x, *args, **kwargs)             # fn's own checks name bad input
        spec = jax.typeof(leads[0]).sharding.spec
        # auto_axes re-types its positional array arguments only: pass every array leaf of
        # the call that way, and the rest (the config, flags, sizes) as they are.
        leaves, treedef = jax.tree.flatten((params, x, args, kwargs))
        is_array = [isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves]

        def body(*arrays):
            arrays = iter(arrays)
            p, x_, a, kw = treedef.unflatten(
                [next(arrays) if array else leaf for leaf, array in zip(leaves, is_array)])
            out = fn(p, x_, *a, **kw)
            _check_batch_leading(out, np.shape(leads[0])[0], getattr(fn, "__name__", "fn"))
            return out
        split = PartitionSpec(spec[0] if len(spec) else None)
        return jax.sharding.auto_axes(body, axes=explicit, out_sharding=split)(
            *(leaf for leaf, array in zip(leaves, is_array) if array))
    return wrapped


def _check_logical(logical, name, rules):
    """Refuses a name that is neither a logical axis of the zoo nor one ``rules`` maps (a
    misspelling would otherwise be replicated silently)."""
    known = tuple(dict.fromkeys(LOGICAL_AXES + tuple(rule for rule, _ in rules)))
    for axis in logical:
        if axis is not None and axis not in known:
            close = difflib.get_close_matches(str(axis), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{name}: {axis!r} is not a logical axis name: expected None or "
                             f"one of {known} (zoo.types.LOGICAL_AXES){hint}")


def _check_mesh_axes(mesh, spec, logical, name):
    """Refuses a spec naming mesh axes the mesh lacks (a mesh not built with the zoo's axis
    names, ``make_mesh``)."""
    needed = [a for axes in spec if axes is not None
              for a in ((axes,) if isinstance(axes, str) else axes)]
    missing = [a for a in needed if a not in mesh.axis_names]
    if missing:
        raise ValueError(
            f"{name}: the sharding rules map logical axes {logical} to mesh axes {spec}, but "
            f"the mesh has axes {tuple(mesh.axis_names)}, without {tuple(missing)}: the zoo's "
            f"rules need a mesh with axes {MESH_AXES} (zoo.sharding.make_mesh), or pass "
            f"rules= mapping the logical axes onto your mesh's axes")


def _check_batch_leading(out, batch_size: int, name: str):
    for path, leaf in jax.tree_util.tree_leaves_with_path(out):
        if np.ndim(leaf) == 0 or np.shape(leaf)[0] != batch_size:
            raise ValueError(
                f"{name}: output{jax.tree_util.keystr(path)} of shape "
                f"{shape_str(np.shape(leaf))} does not lead with the batch axis "
                f"({batch_size}), so it cannot be split as the batch is")


def _varying_axes(x) -> frozenset:
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)                     # jax 0.10
    return manual.varying if manual is not None else getattr(aval, "vma", frozenset())


def _without(axes, name):
    return _keep_axes(axes, lambda a: a != name)


def _on_mesh(mesh, axes):
    """``axes`` without the mesh axes that ``mesh`` lacks or that are manual (inside
    ``shard_map``, where the caller has already split the arrays)."""
    manual = getattr(mesh, "manual_axes", ())
    return _keep_axes(axes, lambda a: a in mesh.axis_names and a not in manual)


def _keep_axes(axes, keep):
    """The mesh axes of one spec entry (``None``, a name or a tuple) for which ``keep`` holds:
    ``None`` if none, a name if one, else a tuple."""
    if axes is None:
        return None
    kept = tuple(a for a in ((axes,) if isinstance(axes, str) else axes) if keep(a))
    return kept[0] if len(kept) == 1 else (kept or None)


def _axis_size(mesh, axes) -> int:
    if axes is None:
        return 1
    names = (axes,) if isinstance(axes, str) else axes
    return math.prod(mesh.shape[a] for a in names)


__all__ = [
    "MESH_AXES", "RULES", "make_mesh", "use_mesh", "logical_to_mesh", "sharding_for",
    "shard_params", "shard_batch", "constrain", "gather_params", "vary_together", "auto_inside",
]
