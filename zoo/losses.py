"""Losses shared by the families and the trainer, and the one vocabulary of tasks.

Every loss is a mean over entries, computed in float32, with an optional ``mask`` (1 on real
entries, 0 on padding) that weights them::

    L = Σ_i m_i ℓ_i / max(Σ_i m_i, 1)

A model's ``task`` (``zoo.get(name).task``) names what its outputs mean and so which loss
trains it; the trainer and the console read the same names from :data:`TASKS`.
Language-modelling targets are the next tokens already aligned with the inputs
(``labels[:, t] = tokens[:, t + 1]``); masked-LM targets are the original tokens with the
mask selecting the masked positions.

>>> float(cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3])))     # log 4
1.3862...
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from zoo._checks import in_range


def cross_entropy(logits: Float[Array, "... V"], labels: Int[Array, "..."],
                  mask: Array | None = None) -> jax.Array:
    """Mean softmax cross-entropy with integer labels, in float32; ``mask`` weights entries.

    Labels where the mask is nonzero must lie in ``[0, V)``, checked under ``jit`` too (a
    ``ValueError`` naming ``labels``, not a NaN loss). Serves classification (``[B, V]``
    logits), sequence labelling and language modelling (``[B, T, V]`` logits against
    ``[B, T]`` labels, padding masked out).

    >>> logits = jnp.array([[[0.0, 0.0], [5.0, -5.0]]])
    >>> float(cross_entropy(logits, jnp.array([[0, 1]]), jnp.array([[1, 0]])))  # log 2
    0.6931...
    """
    if mask is not None:          # a masked position may hold any label (padding)
        kept = mask.reshape(mask.shape + (1,) * (labels.ndim - mask.ndim)) != 0
        labels = jnp.where(jnp.broadcast_to(kept, labels.shape), labels, 0)
    in_range(labels, "labels", 0, logits.shape[-1] - 1, what="class ids",
             hint=f"The outputs have {logits.shape[-1]} classes.")
    losses = optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), labels)
    return masked_mean(losses, mask)


def binary_cross_entropy(logits: Float[Array, "..."], labels: Array,
                         mask: Array | None = None) -> jax.Array:
    """Mean sigmoid cross-entropy of logits against {0, 1} labels, in float32.

    >>> round(float(binary_cross_entropy(jnp.zeros(3), jnp.array([0, 1, 1]))), 4)  # log 2
    0.6931
    """
    losses = optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32),
                                                labels.astype(jnp.float32))
    return masked_mean(losses, mask)


def mean_squared_error(outputs: Array, targets: Array, mask: Array | None = None) -> jax.Array:
    """Mean of ``(outputs − targets)²``, in float32.

    >>> float(mean_squared_error(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0])))
    5.0
    """
    losses = jnp.square(outputs.astype(jnp.float32) - targets.astype(jnp.float32))
    return masked_mean(losses, mask)


def masked_mean(losses: Array, mask: Array | None) -> jax.Array:
    """``Σ m ℓ / max(Σ m, 1)``; a mask of fewer axes than ``losses`` broadcasts on the right.

    >>> float(masked_mean(jnp.array([1.0, 2.0, 9.0]), jnp.array([1, 1, 0])))
    1.5
    """
    if mask is None:
        return losses.mean()
    mask = mask.astype(losses.dtype).reshape(mask.shape + (1,) * (losses.ndim - mask.ndim))
    mask = jnp.broadcast_to(mask, losses.shape)
    return (losses * mask).sum() / jnp.maximum(mask.sum(), 1)


#: Rows of logits one chunk of :func:`projected_cross_entropy` holds (with V 50304 in float32,
#: 4096 rows are 0.8 GB, against 3.3 GB for a whole batch of 16 x 1024 tokens).
LOGIT_ROWS = 4096


def projected_cross_entropy(h: Float[Array, "... D"], w_vd: Float[Array, "V D"],
                            b_v: Float[Array, "V"], labels: Int[Array, "..."],
                            mask: Array | None = None, *, rows: int | None = None) -> jax.Array:
    """``cross_entropy(h W_vdᵀ + b_v, labels, mask)`` without the whole ``[.., V]`` logits:
    rows of ``h`` are projected ``rows`` at a time (default :data:`LOGIT_ROWS`), each chunk's
    float32 log-sum-exp taken and dropped, and recomputed in the backward pass
    (``jax.checkpoint``), so memory holds one chunk of logits.

    >>> h, w = jnp.ones((2, 3, 4)), jnp.ones((5, 4))
    >>> round(float(projected_cross_entropy(h, w, jnp.zeros(5), jnp.zeros((2, 3), int), rows=4)), 4)
    1.6094
    """
    rows = rows or LOGIT_ROWS
    flat_h = h.reshape(-1, h.shape[-1])
    n = flat_h.shape[0]
    weight = jnp.ones(n, jnp.float32) if mask is None else mask.reshape(-1).astype(jnp.float32)
    rows = min(rows, n)
    pad = -n % rows
    chunks = lambda x: jnp.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1)).reshape(
        (-1, rows) + x.shape[1:])

    def chunk(args):
        h_c, labels_c, weight_c = args
        logits = (h_c @ w_vd.astype(h_c.dtype).T + b_v.astype(h_c.dtype)).astype(jnp.float32)
        picked = jnp.take_along_axis(logits, labels_c[:, None], axis=-1)[:, 0]
        return jnp.sum((jax.nn.logsumexp(logits, axis=-1) - picked) * weight_c)
    total = jax.lax.map(jax.checkpoint(chunk), (chunks(flat_h), chunks(labels.reshape(-1)),
                                                chunks(weight))).sum()
    return total / jnp.maximum(weight.sum(), 1)


#: Task -> loss on ``(outputs, labels, mask=None)``: the vocabulary of every model's ``task``,
#: the trainer's default losses and the console's ``--task``.
LOSSES: dict[str, Callable[..., jax.Array]] = {
    "binary": binary_cross_entropy,
    "classification": cross_entropy,
    "regression": mean_squared_error,
    "sequence_labelling": cross_entropy,
    "lm": cross_entropy,
    "masked_lm": cross_entropy,
    "seq2seq": cross_entropy,
}
TASKS = tuple(LOSSES)
