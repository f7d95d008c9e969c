"""Test setup for the whole tree (tests/ and the doctests in zoo/).

JAX reads the CPU device count once, when its backend starts, so this runs before any test
module touches a device: every run has 8 simulated CPU devices and exercises sharding.
"""

import jax

jax.config.update("jax_num_cpu_devices", 8)
# References are computed in float64 NumPy; compare at full float32 matmul precision.
jax.config.update("jax_default_matmul_precision", "highest")
