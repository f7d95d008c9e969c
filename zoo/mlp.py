"""Multi-layer perceptrons, residual MLP blocks, and backpropagation written out by hand.

A plain MLP feeds forward through dense layers ``l = 1 … L``::

    z^l = a^{l-1} W^l + b^l,    a^l = σ(z^l),    a^0 = x

(the output layer uses ``out_activation``, the identity by default, giving logits). After the
plain layers, ``num_blocks`` residual blocks of width ``D`` may follow, stacked on a leading
``L`` axis and run with ``lax.scan``::

    h ← h + σ(LN(h) W1 + b1) W2 + b2

:func:`backprop` computes the gradient of the quadratic cost ``C = 1/(2B) Σ ||a^L − y||²`` with
the four equations of backpropagation (Nielsen 2015, ch. 2), vectorised over the batch::

    δ^L = ∇_a C ⊙ σ'(z^L)                  (output error)
    δ^l = (δ^{l+1} (W^{l+1})ᵀ) ⊙ σ'(z^l)    (error carried backwards)
    ∂C/∂W^l = (a^{l-1})ᵀ δ^l,    ∂C/∂b^l = Σ_batch δ^l

Shape letters: ``B`` batch, ``I`` input features, ``D`` hidden width, ``F`` block MLP width,
``L`` blocks, ``O`` outputs.

References:
    D. E. Rumelhart, G. E. Hinton, R. J. Williams, "Learning representations by
    back-propagating errors", Nature 323, 1986. https://doi.org/10.1038/323533a0
    M. Nielsen, "Neural Networks and Deep Learning", ch. 2, 2015.
    http://neuralnetworksanddeeplearning.com/chap2.html
    K. He, X. Zhang, S. Ren, J. Sun, "Identity Mappings in Deep Residual Networks", 2016.
    https://arxiv.org/abs/1603.05027
"""

import dataclasses

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float

from zoo import _checks, layers
from zoo.sharding import auto_inside, constrain, gather_params
from zoo.types import ParamAxes, Params

TASK = "classification"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """MLP hyper-parameters.

    Attributes:
        in_dim: input features ``I``.
        out_dim: outputs ``O`` (logits for classification).
        hidden_dims: widths of the plain hidden layers, in order (may be empty).
        activation: hidden activation, a name in :data:`zoo.layers.ACTIVATIONS`.
        out_activation: activation of the output layer (``identity`` gives logits).
        num_blocks: residual blocks after the plain layers (0 for a plain MLP).
        block_mlp_dim: inner width ``F`` of each block (default ``4 D``).
        dtype: computation dtype (params stay float32).
    """
    in_dim: int
    out_dim: int
    hidden_dims: tuple[int, ...] = ()
    activation: str = "tanh"
    out_activation: str = "identity"
    num_blocks: int = 0
    block_mlp_dim: int | None = None
    dtype: str = "float32"

    def __post_init__(self):
        _checks.positive_int(self.in_dim, "in_dim")
        _checks.positive_int(self.out_dim, "out_dim")
        if not isinstance(self.hidden_dims, tuple):
            raise ValueError(f"hidden_dims must be a tuple of ints, got {self.hidden_dims!r}")
        for i, d in enumerate(self.hidden_dims):
            _checks.positive_int(d, f"hidden_dims[{i}]")
        layers.activation(self.activation)
        layers.activation(self.out_activation)
        _checks.positive_int(self.num_blocks, "num_blocks", minimum=0)
        if self.block_mlp_dim is not None:
            _checks.positive_int(self.block_mlp_dim, "block_mlp_dim")
        _checks.dtype_name(self.dtype)

    @property
    def width(self) -> int:
        """``D``: the width entering the blocks and the output layer."""
        return self.hidden_dims[-1] if self.hidden_dims else self.in_dim

    @property
    def mlp_dim(self) -> int:
        return self.block_mlp_dim or 4 * self.width


PRESETS: dict[str, Config] = {
    "tiny": Config(in_dim=6, hidden_dims=(12,), out_dim=3, num_blocks=2, block_mlp_dim=20),
    "xor": Config(in_dim=2, hidden_dims=(8,), out_dim=2, activation="tanh"),
    "mnist": Config(in_dim=784, hidden_dims=(512, 512), out_dim=10, activation="relu"),
    "resmlp": Config(in_dim=784, hidden_dims=(256,), out_dim=10, activation="gelu",
                     num_blocks=6),
}


def init(key: jax.Array, cfg: Config) -> Params:
    """LeCun-normal weights and zero biases for every layer, float32.

    >>> p = init(jax.random.key(0), PRESETS["tiny"])
    >>> p["dense_0"]["w"].shape, p["blocks"]["w1_ldf"].shape, p["out"]["w"].shape
    ((6, 12), (2, 12, 20), (12, 3))
    """
    k_dense, k_blocks, k_out = jax.random.split(key, 3)
    dims = (cfg.in_dim,) + cfg.hidden_dims
    keys = jax.random.split(k_dense, max(len(cfg.hidden_dims), 1))
    params = {f"dense_{i}": _dense_init(keys[i], dims[i], dims[i + 1])
              for i in range(len(cfg.hidden_dims))}
    if cfg.num_blocks:
        params["blocks"] = _blocks_init(k_blocks, cfg)
    params["out"] = _dense_init(k_out, cfg.width, cfg.out_dim)
    return params


def param_axes(cfg: Config) -> ParamAxes:
    """Megatron-style: dense layers alternate column- and row-splitting over ``hidden``."""
    axes = {}
    for i in range(len(cfg.hidden_dims)):
        a_in, a_out = ("embed", "hidden") if i % 2 == 0 else ("hidden", "embed")
        axes[f"dense_{i}"] = {"w": P(a_in, a_out), "b": P(a_out)}
    if cfg.num_blocks:
        axes["blocks"] = {
            "norm_scale_ld": P("layers", None), "norm_bias_ld": P("layers", None),
            "w1_ldf": P("layers", "embed", "mlp"), "b1_lf": P("layers", "mlp"),
            "w2_lfd": P("layers", "mlp", "embed"), "b2_ld": P("layers", None),
        }
    last = "hidden" if len(cfg.hidden_dims) % 2 and not cfg.num_blocks else "embed"
    axes["out"] = {"w": P(last, None), "b": P(None)}
    return axes


@auto_inside
def apply(params: Params, x: Float[Array, "B I"], cfg: Config, *, key=None,
          train: bool = False) -> Float[Array, "B O"]:
    """Feeds ``x`` forward through the plain layers, the blocks and the output layer.

    Args:
        params: from :func:`init`.
        x: inputs ``[B, I]``.
        cfg: the model's config.
        key, train: unused (no dropout); accepted for the contract.

    Returns:
        ``[B, O]`` outputs (logits unless ``out_activation`` says otherwise) in ``cfg.dtype``.

    Raises:
        ValueError: if ``x`` is not ``[B, I]`` (or is empty), or ``params`` were made for
            another config (the message names the parameter and both shapes).
        TypeError: if ``x`` is not a number array.

    >>> cfg = PRESETS["tiny"]
    >>> apply(init(jax.random.key(0), cfg), jnp.ones((4, 6)), cfg).shape
    (4, 3)
    """
    _check_x(x, cfg)
    _checks.check_params(params, init, cfg)
    params = gather_params(params, param_axes(cfg))
    a = x.astype(cfg.dtype)
    for _, a in _forward(params, a, cfg):
        pass
    return a


def backprop(params: Params, x: Float[Array, "B I"], y: Float[Array, "B O"],
             cfg: Config) -> tuple[Array, Params]:
    """Quadratic cost and its gradient by the backpropagation equations (no autodiff).

    The cost is ``C = 1/(2B) Σ_b ||a^L_b − y_b||²`` on the output activations.

    Args:
        params: a plain MLP's params (``num_blocks == 0``).
        x: inputs ``[B, I]``.
        y: targets ``[B, O]``.
        cfg: the model's config.

    Returns:
        ``(C, grads)`` with ``grads`` the same tree as ``params``.

    Raises:
        ValueError: if the config has residual blocks, or ``x``/``y`` have the wrong shape.

    >>> cfg = PRESETS["xor"]
    >>> p = init(jax.random.key(0), cfg)
    >>> x, y = jnp.ones((3, 2)), jnp.zeros((3, 2))
    >>> cost, g = backprop(p, x, y, cfg)
    >>> ref = jax.grad(lambda p: 0.5 * jnp.sum((apply(p, x, cfg) - y) ** 2) / 3)(p)
    >>> bool(jnp.allclose(g["out"]["w"], ref["out"]["w"], atol=1e-6))
    True
    """
    if cfg.num_blocks:
        raise ValueError(f"backprop covers plain MLPs; cfg.num_blocks must be 0, "
                         f"got {cfg.num_blocks}")
    _check_x(x, cfg)
    _checks.check_array(y, "y", shape=(x.shape[0], cfg.out_dim), letters="B O", kind="number")
    _checks.check_params(params, init, cfg)
    names = [f"dense_{i}" for i in range(len(cfg.hidden_dims))] + ["out"]
    acts = [cfg.activation] * len(cfg.hidden_dims) + [cfg.out_activation]
    a = [x.astype(cfg.dtype)]               # a^0 … a^L
    zs = []                                  # z^1 … z^L
    for (z, out) in _forward(params, a[0], cfg):
        zs.append(z)
        a.append(out)
    batch = x.shape[0]
    cost = 0.5 * jnp.sum((a[-1] - y) ** 2) / batch
    delta = (a[-1] - y) / batch * _derivative(acts[-1], zs[-1])        # δ^L
    grads = {}
    for l in reversed(range(len(names))):
        grads[names[l]] = {"w": a[l].T @ delta, "b": delta.sum(0)}
        if l:
            delta = (delta @ params[names[l]]["w"].T) * _derivative(acts[l - 1], zs[l - 1])
    return cost, {n: grads[n] for n in params}


def example_batch(key: jax.Array, cfg: Config, batch_size: int):
    """Random inputs and random class labels in ``[0, out_dim)``."""
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (batch_size, cfg.in_dim), jnp.float32)
    return (x,), jax.random.randint(ky, (batch_size,), 0, cfg.out_dim)


# --- private pieces ---------------------------------------------------------------------------

def _forward(params, a, cfg):
    """Yields ``(z, a)`` per dense layer (the blocks run between the plain and output layers;
    they yield ``(None, h)``)."""
    sigma = layers.activation(cfg.activation)
    for i in range(len(cfg.hidden_dims)):
        z = layers.dense(params[f"dense_{i}"], a)
        a = constrain(sigma(z), ("batch", "hidden"))
        yield z, a
    if cfg.num_blocks:
        a = _blocks_apply(params["blocks"], a, cfg)
        yield None, a
    z = layers.dense(params["out"], a)
    yield z, layers.activation(cfg.out_activation)(z)


def _blocks_apply(blocks, h, cfg):
    sigma = layers.activation(cfg.activation)

    def block(h, p):
        u = layers.layer_norm(h, p["norm_scale_ld"], p["norm_bias_ld"])
        u = sigma(u @ p["w1_ldf"].astype(h.dtype) + p["b1_lf"].astype(h.dtype))
        h = h + u @ p["w2_lfd"].astype(h.dtype) + p["b2_ld"].astype(h.dtype)
        return constrain(h, ("batch", "embed")), None

    return jax.lax.scan(block, h, blocks)[0]


def _derivative(name: str, z):
    """σ'(z), by its formula for the classic activations, by forward-mode AD otherwise."""
    if name == "identity":
        return jnp.ones_like(z)
    if name == "sigmoid":
        s = jax.nn.sigmoid(z)
        return s * (1 - s)
    if name == "tanh":
        return 1 - jnp.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(z.dtype)
    return jax.jvp(layers.activation(name), (z,), (jnp.ones_like(z),))[1]


def _dense_init(key, d_in, d_out):
    return {"w": layers.dense_init(key, (d_in, d_out)), "b": jnp.zeros((d_out,), jnp.float32)}


def _blocks_init(key, cfg):
    k1, k2 = jax.random.split(key)
    n, d, f = cfg.num_blocks, cfg.width, cfg.mlp_dim
    return {
        "norm_scale_ld": jnp.ones((n, d), jnp.float32),
        "norm_bias_ld": jnp.zeros((n, d), jnp.float32),
        "w1_ldf": layers.dense_init(k1, (n, d, f)),
        "b1_lf": jnp.zeros((n, f), jnp.float32),
        # Zero-mean, small last projection keeps each block near the identity at init.
        "w2_lfd": layers.dense_init(k2, (n, f, d)) / jnp.sqrt(2.0 * n),
        "b2_ld": jnp.zeros((n, d), jnp.float32),
    }


def _check_x(x, cfg):
    _checks.check_array(x, "x", shape=(None, cfg.in_dim), letters="B I", kind="number",
                        nonempty=True)
