"""Losses and a minimal optax training step that works for every registered model.

A family may define ``loss(params, inputs, targets, cfg, *, key=None)`` (the perceptron does:
its criterion makes gradient descent the perceptron rule); otherwise the task's default loss
from :data:`LOSSES` is applied to the model's outputs.

>>> import jax, optax, zoo
>>> spec = zoo.get("mlp-xor")
>>> state = init_state(spec, optax.adam(1e-2), jax.random.key(0))
>>> step = make_train_step(spec, optax.adam(1e-2))
>>> inputs, targets = spec.example_batch(jax.random.key(1), 8)
>>> state, loss = step(state, inputs, targets)
>>> int(state.step), loss.shape
(1, ())
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from zoo.registry import ModelSpec


def cross_entropy(logits: Float[Array, "... V"], labels: Int[Array, "..."],
                  mask: Array | None = None) -> jax.Array:
    """Mean softmax cross-entropy with integer labels, in float32; ``mask`` weights entries."""
    losses = optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), labels)
    return _masked_mean(losses, mask)


def binary_cross_entropy(logits: Float[Array, "..."], labels: Array,
                         mask: Array | None = None) -> jax.Array:
    """Mean sigmoid cross-entropy of logits against {0, 1} labels, in float32."""
    losses = optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32),
                                                labels.astype(jnp.float32))
    return _masked_mean(losses, mask)


def mean_squared_error(outputs: Array, targets: Array, mask: Array | None = None) -> jax.Array:
    """Mean of ``(outputs − targets)²``, in float32."""
    losses = jnp.square(outputs.astype(jnp.float32) - targets.astype(jnp.float32))
    return _masked_mean(losses, mask)


#: Task -> loss on ``(outputs, targets)``.
LOSSES: dict[str, Callable[..., jax.Array]] = {
    "classification": cross_entropy,
    "binary": binary_cross_entropy,
    "regression": mean_squared_error,
}


def loss_fn(spec: ModelSpec) -> Callable[..., jax.Array]:
    """``loss(params, inputs, targets, key=None) -> scalar`` for ``spec``.

    Raises:
        ValueError: if the family defines no loss and the task has no default one.
    """
    own = getattr(spec.module, "loss", None)
    if own is not None:
        return lambda params, inputs, targets, key=None: own(
            params, inputs, targets, spec.config, key=key)
    if spec.task not in LOSSES:
        raise ValueError(f"no default loss for task {spec.task!r} of model {spec.name!r}; "
                         f"known tasks: {sorted(LOSSES)}")
    task_loss = LOSSES[spec.task]

    def loss(params, inputs, targets, key=None):
        train = key is not None
        return task_loss(spec.apply(params, *inputs, key=key, train=train), targets)
    return loss


class TrainState(NamedTuple):
    """Everything a training step carries: params, optimizer state and the step count."""
    params: dict
    opt_state: optax.OptState
    step: jax.Array


def init_state(spec: ModelSpec, optimizer: optax.GradientTransformation,
               key: jax.Array) -> TrainState:
    """Fresh params from ``key`` and the optimizer's initial state."""
    params = spec.init(key)
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def make_train_step(spec: ModelSpec, optimizer: optax.GradientTransformation):
    """A jit-compiled ``step(state, inputs, targets, key=None) -> (state, loss)``.

    The incoming state's buffers are donated: do not reuse a state after passing it in.
    """
    loss = loss_fn(spec)

    @jax.jit(donate_argnums=0)
    def step(state: TrainState, inputs: tuple, targets, key=None):
        value, grads = jax.value_and_grad(loss)(state.params, inputs, targets, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1), value

    return step


def _masked_mean(losses, mask):
    if mask is None:
        return losses.mean()
    mask = mask.astype(losses.dtype)
    return (losses * mask).sum() / jnp.maximum(mask.sum(), 1)
