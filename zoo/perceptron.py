"""The perceptron (Rosenblatt 1958) and its learning rule.

The model is a single threshold unit::

    ŷ = f(w·x + w0),    f(z) = 1 if z > 0 else 0

and the perceptron learning rule visits the examples in turn and nudges the weights towards
each mistake::

    w  ← w  + η (y − ŷ) x
    w0 ← w0 + η (y − ŷ)

An epoch is one pass over the data. If the classes are linearly separable the rule converges
in finitely many epochs (Novikoff 1962); an epoch with no mistakes changes nothing, so training
simply runs to the epoch budget and reports the first error-free epoch. On XOR no weights
separate the classes and every epoch makes mistakes.

Shape letters: ``B`` batch, ``I`` input features.

References:
    F. Rosenblatt, "The perceptron: a probabilistic model for information storage and
    organization in the brain", Psychological Review 65(6), 1958.
    https://doi.org/10.1037/h0042519
    A. B. Novikoff, "On convergence proofs on perceptrons", Symposium on the Mathematical
    Theory of Automata, 1962.
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float, Int

from zoo import _checks
from zoo.sharding import auto_inside, gather_params
from zoo.types import ParamAxes, Params

TASK = "binary"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Perceptron hyper-parameters.

    Attributes:
        in_dim: number of input features ``I``.
        learning_rate: the step η of the learning rule.
        max_epochs: the epoch budget of :func:`fit`.
        dtype: dtype of the computation (params stay float32).
    """
    in_dim: int
    learning_rate: float = 1.0
    max_epochs: int = 100
    dtype: str = "float32"

    def __post_init__(self):
        _checks.positive_int(self.in_dim, "in_dim")
        _checks.positive_float(self.learning_rate, "learning_rate")
        _checks.positive_int(self.max_epochs, "max_epochs")
        _checks.dtype_name(self.dtype)


PRESETS: dict[str, Config] = {
    "tiny": Config(in_dim=2, max_epochs=20),     # the two-input logic gates
    "small": Config(in_dim=64, max_epochs=200),
}


class Fit(NamedTuple):
    """Result of :func:`fit`.

    Attributes:
        params: the trained weights.
        errors: mistakes made in each epoch, shape ``[max_epochs]``.
        epochs: epochs until the first error-free one (``max_epochs`` if none was).
        converged: whether an epoch made no mistakes.
    """
    params: Params
    errors: Int[Array, "epochs"]
    epochs: Int[Array, ""]
    converged: jax.Array


def init(key: jax.Array, cfg: Config) -> Params:
    """Weights ``w ~ N(0, 1/I)`` and bias ``w0 = 0``, float32.

    >>> p = init(jax.random.key(0), PRESETS["tiny"])
    >>> p["w"].shape, p["b"].shape
    ((2,), ())
    """
    w = jax.random.normal(key, (cfg.in_dim,), jnp.float32) / jnp.sqrt(cfg.in_dim)
    return {"w": w, "b": jnp.zeros((), jnp.float32)}


def param_axes(cfg: Config) -> ParamAxes:
    """Logical axes of :func:`init`'s tree: ``w`` splits over ``embed``."""
    return {"w": P("embed"), "b": P()}


def score(params: Params, x: Float[Array, "B I"], cfg: Config) -> Float[Array, "B"]:
    """The pre-activation z = w·x + w0.

    Raises:
        ValueError, TypeError: as :func:`apply`.
    """
    _check_x(x, cfg)
    _checks.check_params(params, init, cfg)
    params = gather_params(params, param_axes(cfg))
    dtype = jnp.dtype(cfg.dtype)
    return x.astype(dtype) @ params["w"].astype(dtype) + params["b"].astype(dtype)


@auto_inside
def apply(params: Params, x: Float[Array, "B I"], cfg: Config, *, key=None,
          train: bool = False) -> Float[Array, "B"]:
    """The perceptron's output ŷ = f(w·x + w0) in {0, 1}.

    Args:
        params: from :func:`init` or :func:`fit`.
        x: inputs, shape ``[B, I]``.
        cfg: the model's config.
        key, train: unused (the perceptron has no randomness); accepted for the contract.

    Returns:
        ``[B]`` array of 0.0 and 1.0 in ``cfg.dtype``.

    Raises:
        ValueError: if ``x`` is not ``[B, I]`` (or is empty), or ``params`` were made for
            another config.
        TypeError: if ``x`` is not a number array.

    >>> p = {"w": jnp.array([1.0, 1.0]), "b": jnp.array(-1.5)}   # AND
    >>> apply(p, jnp.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]]), PRESETS["tiny"])
    Array([0., 0., 0., 1.], dtype=float32)
    """
    z = score(params, x, cfg)
    return jnp.where(z > 0, 1, 0).astype(z.dtype)


def fit(params: Params, x: Float[Array, "B I"], y: Float[Array, "B"], cfg: Config, *,
        key: jax.Array | None = None) -> Fit:
    """Trains with the perceptron learning rule for ``cfg.max_epochs`` epochs, jit-compiled.

    Examples are visited in order (or in a fresh random order each epoch when ``key`` is
    given); each mistake moves the weights by ``η (y − ŷ) x``.

    Args:
        params: initial weights.
        x: inputs ``[B, I]``.
        y: targets ``[B]`` in {0, 1} (the unit's outputs; ±1 labels are refused: pass
            ``(y + 1) / 2``).
        cfg: the model's config (``learning_rate``, ``max_epochs``).
        key: optional key that shuffles the order of every epoch.

    Returns:
        A :class:`Fit` with the final params and per-epoch mistake counts.

    Raises:
        ValueError: ``x`` or ``y`` of the wrong shape or empty, ``y`` holding values other
            than 0 and 1 (under ``jit``: when the program runs), params of another config.
        TypeError: ``x`` or ``y`` not number arrays.

    >>> x = jnp.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]])
    >>> out = fit(init(jax.random.key(0), PRESETS["tiny"]), x, jnp.array([0., 1., 1., 1.]),
    ...           PRESETS["tiny"])                      # OR
    >>> bool(out.converged), apply(out.params, x, PRESETS["tiny"]).tolist()
    (True, [0.0, 1.0, 1.0, 1.0])
    """
    _check_x(x, cfg)
    _check_y(y, x)
    _checks.check_params(params, init, cfg)
    return _fit(params, x, y, cfg, key)


@jax.jit(static_argnames="cfg")
def _fit(params, x, y, cfg, key):
    dtype = jnp.dtype(cfg.dtype)
    x, y = x.astype(dtype), y.astype(dtype)
    keys = None if key is None else jax.random.split(key, cfg.max_epochs)

    def epoch(p, k):
        order = jnp.arange(x.shape[0]) if k is None else jax.random.permutation(k, x.shape[0])
        p, mistakes = jax.lax.scan(lambda p, i: _update(p, x[i], y[i], cfg), p, order)
        return p, mistakes.sum()

    params, errors = jax.lax.scan(epoch, params, keys, length=cfg.max_epochs)
    clean = errors == 0
    epochs = jnp.where(clean.any(), jnp.argmax(clean) + 1, cfg.max_epochs)
    return Fit(params, errors, epochs, clean.any())


def _update(params, x_i, y_i, cfg):
    y_hat = apply(params, x_i[None], cfg)[0]
    step = cfg.learning_rate * (y_i - y_hat)
    new = {"w": params["w"] + step * x_i, "b": params["b"] + step}
    return jax.tree.map(lambda a, b: a.astype(b.dtype), new, params), (step != 0).astype(jnp.int32)


def loss(params: Params, inputs: tuple, y: Float[Array, "B"], cfg: Config, *,
         key=None) -> jax.Array:
    """Rosenblatt's perceptron criterion, mean over the batch: max(0, −(2y − 1)(w·x + w0)).

    Its gradient is ``−(2y − 1) x`` on each mistake and zero otherwise, so gradient descent on
    it with step η is the (batch) perceptron learning rule; the generic trainer uses it.
    ``inputs`` is ``(x,)``; ``y`` holds labels in {0, 1}.
    """
    (x,) = _checks.inputs_tuple(inputs, "inputs", 1, "(x,)")
    _check_x(x, cfg)
    _check_y(y, x)
    return jnp.mean(jax.nn.relu(-(2 * y - 1) * score(params, x, cfg)))


def example_batch(key: jax.Array, cfg: Config, batch_size: int):
    """Random inputs and the labels of a random hyperplane (linearly separable)."""
    kx, kw = jax.random.split(key)
    x = jax.random.normal(kx, (batch_size, cfg.in_dim), jnp.float32)
    y = (x @ jax.random.normal(kw, (cfg.in_dim,)) > 0).astype(jnp.float32)
    return (x,), y


def _check_x(x, cfg):
    _checks.check_array(x, "x", shape=(None, cfg.in_dim), letters="B I", kind="number",
                        nonempty=True)


def _check_y(y, x):
    _checks.check_array(y, "y", shape=(x.shape[0],), letters="B", kind="number")
    _checks.one_of_values(y, "y", (0, 1), hint="The perceptron's labels are its outputs, 0 and "
                          "1; for labels in {-1, +1} pass (y + 1) / 2.")

