"""The LSTM stack of :mod:`zoo.rnn` through cuDNN (``jax.experimental.rnn``), on a GPU.

cuDNN takes float32 only, no GRU, and one unpartitioned call: :func:`applies` says when it
serves. The glue keeps the family's contract: zeros on padding, and a sequence of length 0
returns its initial state (cuDNN runs it as one step, whose output is dropped). Tested on the
CPU through ``jax.experimental.rnn``'s reference in place of the kernel, and against the plain
path on a GPU (``tests/kernels/test_lstm_cudnn.py``).

Shape letters: ``B`` batch, ``T`` steps, ``I`` input features, ``D`` hidden width, ``L``
layers, ``E`` directions, ``P`` parameters flattened.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from zoo.kernels import has_platform
from zoo.types import Params

_DIRECTIONS = ("fwd", "bwd")


def reasons_against(cell: str, dtype, mesh_active: bool) -> list[str]:
    """Why the cuDNN LSTM cannot run a stack (empty when it can)."""
    reasons = []
    if cell != "lstm":
        reasons.append(f"cell is {cell!r}, cuDNN's path covers 'lstm' only")
    if jnp.dtype(dtype) != jnp.float32:
        reasons.append(f"dtype is {jnp.dtype(dtype).name}, jax.experimental.rnn is float32 only")
    if mesh_active:
        reasons.append("a mesh is active and the cuDNN call does not partition")
    return reasons


def require(cell: str, dtype) -> None:
    """Refuses ``implementation="cudnn"`` where cuDNN cannot run the stack.

    Raises:
        ValueError: naming ``implementation`` and every reason (:func:`reasons_against`, an
            active mesh, a process without a CUDA device).
    """
    reasons = reasons_against(cell, dtype, not jax.sharding.get_abstract_mesh().empty)
    if not has_platform("cuda"):
        reasons.append("this process has no CUDA device")
    if reasons:
        raise ValueError("implementation='cudnn' does not apply: " + "; ".join(reasons))


def weights(params: Params, num_layers: int, directions: int) -> Float[Array, "P"]:
    """The stack's LSTM weights flattened in cuDNN's layout (``jax.experimental.rnn``).

    All ``W_ih, W_hh`` (each ``[4D, in]``, gates i, f, g, o) per layer and direction, then all
    ``b_ih, b_hh``: the layout ``jax.experimental.rnn.unpack_lstm_weights`` reads.
    """
    mats, biases = [], []
    for l in range(num_layers):
        for name in _DIRECTIONS[:directions]:
            p = params[f"layer_{l}"][name]
            for w in (p["w_i_igd"], p["w_h_dgd"]):
                mats.append(jnp.transpose(w, (1, 2, 0)).reshape(-1))
            biases += [p["b_i_gd"].reshape(-1), p["b_h_gd"].reshape(-1)]
    return jnp.concatenate(mats + biases)


def encode(params: Params, x: Float[Array, "B T I"], lengths, h0: Float[Array, "B LE D"],
           c0: Float[Array, "B LE D"], *, num_layers: int, bidirectional: bool):
    """``(ys [B, T, E·D], h [B, L·E, D], c [B, L·E, D])`` of the stack through cuDNN.

    ``lengths [B]`` (ints in ``[0, T]``) or None for all ``T`` steps.
    """
    from jax.experimental import rnn as jrnn
    b, t, i = x.shape
    d = h0.shape[-1]
    lengths = jnp.full((b,), t, jnp.int32) if lengths is None else lengths.astype(jnp.int32)
    y, h, c = jrnn.lstm(
        x.astype(jnp.float32), jnp.swapaxes(h0, 0, 1), jnp.swapaxes(c0, 0, 1),
        weights(params, num_layers, 2 if bidirectional else 1), jnp.maximum(lengths, 1),
        input_size=i, hidden_size=d, num_layers=num_layers, dropout=0.0,
        bidirectional=bidirectional)
    y = jnp.where((jnp.arange(t)[None, :] < lengths[:, None])[..., None], y, 0)
    empty = (lengths == 0)[:, None, None]
    return (y, jnp.where(empty, h0, jnp.swapaxes(h, 0, 1)),
            jnp.where(empty, c0, jnp.swapaxes(c, 0, 1)))
