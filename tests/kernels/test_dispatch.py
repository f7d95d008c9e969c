"""zoo.kernels.by_platform: the branch follows the platform a program is lowered for."""

import jax
import jax.numpy as jnp
import pytest
from jax import export

from zoo.kernels import PLATFORMS, by_platform, has_platform


def _f(x):
    return by_platform(x, default=jnp.cos, cpu=jnp.sin)


def _ops(platforms):
    text = export.export(jax.jit(_f), platforms=platforms)(jnp.ones(3)).mlir_module()
    return "stablehlo.sine" in text, "stablehlo.cosine" in text


def test_branch_follows_the_lowering_platform_not_the_process():
    assert _ops(("cpu",)) == (True, False)
    assert _ops(("cuda",)) == (False, True)          # lowered for a GPU on this CPU machine
    assert _ops(("tpu",)) == (False, True)
    assert _ops(("cpu", "tpu")) == (True, True)      # one program for both: both branches


def test_runs_the_branch_of_the_device_it_runs_on():
    x = jnp.linspace(0, 1, 5)
    assert bool(jnp.allclose(jax.jit(_f)(x), jnp.sin(x)))
    assert bool(jnp.allclose(jax.grad(lambda x: _f(x).sum())(x), jnp.cos(x)))
    assert bool(jnp.allclose(jax.vmap(_f)(x), jnp.sin(x)))


def test_branches_this_process_cannot_trace_are_left_out():
    def untraceable(x):
        raise AssertionError("traced a branch for a platform this process lacks")
    missing = [p for p in ("cuda", "rocm", "tpu") if not has_platform(p)]
    if not missing:
        pytest.skip("this process has every platform")
    out = jax.jit(lambda x: by_platform(x, default=jnp.cos, **{missing[0]: untraceable}))(
        jnp.zeros(2))
    assert bool(jnp.all(out == 1))


def test_has_platform_refuses_unknown_names():
    assert has_platform("cpu") and set(PLATFORMS) >= {"cpu", "cuda", "tpu"}
    with pytest.raises(ValueError, match="platform must be one of"):
        has_platform("gpu0")
