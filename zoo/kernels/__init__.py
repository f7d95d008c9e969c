"""Device-tuned kernels, kept apart from the models' plain math, and the one dispatch.

A family module (``zoo/rnn.py``, ``zoo/attention.py``) says what a model computes in plain
JAX; the modules here compute the same numbers faster on one kind of device, each tested
against its family's plain path:

==========================  ==============================================================
``rnn_loops``               CPU loops of the recurrent layers: chunked input projections,
                            LSTM row groups, a hand-written LSTM backward pass
``lstm_cudnn``              the cuDNN LSTM (``jax.experimental.rnn``) behind the contract
``attention_chunked``       blocked, flash-style full attention for CPU caches
``attention_local``         restricted attention in cache-sized tiles for CPU
``attention_window_cudnn``  restricted attention as one causal cuDNN call (GPU)
``splash``                  full and restricted attention through Pallas TPU splash kernels
==========================  ==============================================================

:func:`by_platform` picks among them by the platform the program is *lowered* for
(``jax.lax.platform_dependent``), so one jitted function is right on CPU, GPU and TPU; a
platform without a measured faster kernel runs the family's plain path (``default``).
Nothing here reads ``jax.devices()[0]`` or ``jax.default_backend()`` to choose.
"""

import functools
from collections.abc import Callable

import jax

#: The platform names of ``jax.lax.platform_dependent``.
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


def by_platform(*args, default: Callable, cpu: Callable | None = None,
                cuda: Callable | None = None, rocm: Callable | None = None,
                tpu: Callable | None = None):
    """``branch(*args)`` for the platform the program is lowered for, else ``default(*args)``.

    Every given branch is traced (``jax.lax.platform_dependent`` lowers only the one for the
    target platform), so a branch whose kernels cannot even be traced without its device (a
    cuDNN or Mosaic call) is kept only where this process has that platform; elsewhere the
    default serves. All branches must return the same shapes and dtypes.

    >>> import jax.numpy as jnp
    >>> f = jax.jit(lambda x: by_platform(x, default=lambda x: x + 1, cpu=lambda x: x + 2))
    >>> int(f(jnp.int32(0)))                 # lowered for this CPU: the cpu branch
    2
    """
    branches = {name: fn for name, fn in
                (("cpu", cpu), ("cuda", cuda), ("rocm", rocm), ("tpu", tpu))
                if fn is not None and has_platform(name)}
    if not branches:
        return default(*args)
    return jax.lax.platform_dependent(*args, default=default, **branches)


@functools.cache
def has_platform(name: str) -> bool:
    """Whether this process has devices of platform ``name`` (``"cpu"``, ``"cuda"``, ...).

    >>> has_platform("cpu")
    True
    """
    if name not in PLATFORMS:
        raise ValueError(f"platform must be one of {list(PLATFORMS)}, got {name!r}")
    try:
        return len(jax.devices(name)) > 0
    except RuntimeError:
        return False
