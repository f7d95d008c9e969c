"""zoo: classic deep-learning architectures as pure, jit-compiled, shardable JAX functions.

>>> import jax, zoo
>>> spec = zoo.get("mlp-xor")
>>> params = spec.init(jax.random.key(0))
>>> jax.jit(spec.apply)(params, *spec.example_inputs(jax.random.key(1), 4)).shape
(4, 2)
"""

import importlib

from zoo.registry import FAMILIES, ModelSpec, get, list_models

__version__ = "0.1.0"

# Family and helper modules load on first use, so `import zoo` stays light (no Flax until a
# model or the interop layer needs it, never `datasets`).
_LAZY = set(FAMILIES) | {"layers", "sharding", "train", "interop", "registry", "types",
                         "checkpoints", "losses", "data", "kernels", "bio", "bench",
                         "convolution", "kv_cache"}


def save(path, spec, params, **kw):
    """``zoo.checkpoints.save``: a trained model's params and what rebuilds its spec."""
    return importlib.import_module("zoo.checkpoints").save(path, spec, params, **kw)


def load(path):
    """``zoo.checkpoints.load``: ``(spec, params)`` of a model written by :func:`save`."""
    return importlib.import_module("zoo.checkpoints").load(path)


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"zoo.{name}")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


__all__ = ["ModelSpec", "get", "list_models", "FAMILIES", "save", "load", "__version__",
           *sorted(_LAZY)]
