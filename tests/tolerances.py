"""The one table of numerical tolerances, each with its reason.

Keys are ``(backend, dtype)``; values are ``dict(rtol=..., atol=...)`` for
``numpy.testing.assert_allclose``.
"""

import jax
import numpy as np

TOLERANCES = {
    # float32 on CPU under "highest" matmul precision against float64 NumPy references:
    # rounding of float32 accumulations only.
    ("cpu", "float32"): dict(rtol=1e-5, atol=1e-6),
    # TF32/reduced-precision paths and different reduction orders on accelerators.
    ("gpu", "float32"): dict(rtol=1e-3, atol=1e-3),
    ("tpu", "float32"): dict(rtol=1e-3, atol=1e-3),
    # bfloat16 keeps 8 bits of mantissa.
    ("cpu", "bfloat16"): dict(rtol=2e-2, atol=2e-2),
    ("gpu", "bfloat16"): dict(rtol=2e-2, atol=2e-2),
    ("tpu", "bfloat16"): dict(rtol=2e-2, atol=2e-2),
    # Hand-written backpropagation against jax.grad, both in float64: equal to rounding.
    ("cpu", "float64"): dict(rtol=1e-10, atol=1e-10),
}

# The same float32 program compiled two ways (sharded and unsharded, jit and eager, vmapped and
# batched, wrapped and bare): identical math, but XLA fuses and orders reductions differently,
# so results near zero differ by a few float32 ulps of the larger terms that cancelled there.
REORDERED = dict(rtol=1e-5, atol=1e-5)
SHARDED = REORDERED


def tol(dtype="float32", backend: str | None = None) -> dict:
    """Tolerance for ``dtype`` on ``backend`` (default: JAX's current backend)."""
    backend = backend or jax.default_backend()
    return TOLERANCES[(backend, np.dtype(dtype).name)]


def assert_close(actual, desired, dtype="float32", **override):
    """``assert_allclose`` at the table's tolerance for ``dtype`` (overrides must say why)."""
    kw = {**tol(dtype), **override}
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(desired, np.float64),
                               **kw)
