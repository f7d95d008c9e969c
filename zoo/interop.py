"""Any registered model as a Flax Linen module, a Flax NNX module, or an Equinox module.

The adapters hold the zoo's params tree unchanged (one Flax variable per leaf), so params
move freely between the pure functions and the wrapped module, and the outputs are the same.

>>> import jax, zoo
>>> from zoo import interop
>>> spec = zoo.get("mlp-tiny")
>>> x, = spec.example_inputs(jax.random.key(1), 4)
>>> module = interop.to_linen(spec)
>>> variables = module.init(jax.random.key(0), x)
>>> params = variables["params"]["zoo"]           # the zoo's own params tree
>>> bool(jax.numpy.allclose(module.apply(variables, x), spec.apply(params, x)))
True
"""

import jax
from flax import linen as nn
from flax import nnx

from zoo.registry import ModelSpec, get


class LinenModel(nn.Module):
    """A Linen module over a :class:`~zoo.registry.ModelSpec`.

    Params live in the ``"params"`` collection under the key ``"zoo"``, initialised by
    ``spec.init`` with the module's ``params`` RNG. With ``train=True`` the model's key comes
    from the ``"dropout"`` RNG stream.
    """
    spec: ModelSpec

    @nn.compact
    def __call__(self, *inputs, train: bool = False):
        params = self.param("zoo", lambda key: self.spec.init(key))
        key = self.make_rng("dropout") if train else None
        return self.spec.apply(params, *inputs, key=key, train=train)


class NNXModel(nnx.Module):
    """An NNX module over a :class:`~zoo.registry.ModelSpec`; each leaf is an ``nnx.Param``."""

    def __init__(self, spec: ModelSpec, *, rngs: nnx.Rngs):
        self.spec = nnx.static(spec) if hasattr(nnx, "static") else spec
        self.params = nnx.data(jax.tree.map(nnx.Param, spec.init(rngs.params())))
        self.rngs = rngs

    def __call__(self, *inputs, train: bool = False):
        params = jax.tree.map(lambda v: v[...], self.params,
                              is_leaf=lambda v: isinstance(v, nnx.Variable))
        key = self.rngs.dropout() if train else None
        return self.spec.apply(params, *inputs, key=key, train=train)

    def zoo_params(self):
        """The plain params tree (what ``spec.apply`` takes)."""
        return jax.tree.map(lambda v: v[...], self.params,
                            is_leaf=lambda v: isinstance(v, nnx.Variable))


def to_linen(spec: ModelSpec | str) -> LinenModel:
    """Wraps a model (a spec or a registry name) as a Linen module."""
    return LinenModel(_spec(spec))


def to_nnx(spec: ModelSpec | str, key: jax.Array) -> NNXModel:
    """Wraps a model as an NNX module whose params come from ``spec.init(key)``'s stream.

    The ``params`` stream of ``nnx.Rngs(params=key)`` draws one key, so the NNX params equal
    ``spec.init`` of that drawn key; use :meth:`NNXModel.zoo_params` to read them back.
    """
    return NNXModel(_spec(spec), rngs=nnx.Rngs(params=key, dropout=jax.random.fold_in(key, 1)))


def to_equinox(spec: ModelSpec | str, key: jax.Array):
    """Wraps a model as an Equinox module (needs ``equinox`` installed)."""
    try:
        import equinox as eqx
    except ImportError as err:
        raise ImportError("to_equinox needs equinox: pip install equinox") from err
    spec = _spec(spec)

    class EquinoxModel(eqx.Module):
        params: dict
        spec: ModelSpec = eqx.field(static=True)

        def __call__(self, *inputs, key=None, train: bool = False):
            return self.spec.apply(self.params, *inputs, key=key, train=train)

    return EquinoxModel(spec.init(key), spec)


def _spec(spec) -> ModelSpec:
    if isinstance(spec, str):
        return get(spec)
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec or a registry name, got {type(spec).__name__}")
    return spec
