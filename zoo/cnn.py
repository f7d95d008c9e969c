"""Convolutional networks, 1D and 2D, built on :mod:`zoo.convolution`.

:func:`conv` (the cross-correlation ``y[b, t, o] = bias[o] + Σ_j Σ_c x[b, t·s + j·d, c] ·
w[j, c, o]`` after ``valid``, ``same`` or ``causal`` padding), :func:`max_pool`,
:func:`avg_pool` and :func:`sobel` are defined there and reachable from here.

The models (one :class:`Config`, several presets) run ``conv → σ → pool`` layers, then
``num_blocks`` residual blocks of equal width stacked on a leading ``L`` axis and run with
``lax.scan``::

    h ← h + conv₂(σ(conv₁(σ(LN(h)))))

then a global pooling over positions and a dense classifier head. Plain layer ``l`` uses
dilation ``dilation_base**l``: with ``dilation_base = 2`` this is the dilated stack whose
receptive field ``1 + (W−1)(2ᴸ − 1)`` grows exponentially with depth (``W = dilation_base``
gives exactly ``Wᴸ``), so any two of ``n`` positions are joined by a path of ``O(log_W n)``
layers, against ``O(n/W)`` for contiguous kernels. :func:`receptive_field` gives it for any
config.

Sequence inputs are either one-hot (or any float channels) ``[B, S, C]`` or integer tokens
``[B, S]`` embedded into ``in_channels`` features (``vocab_size`` set), e.g. DNA or protein.
Token ids outside ``[0, vocab_size)`` are refused (under ``jit``: when the program runs;
:func:`zoo._checks.in_range`), as are empty batches or inputs and params of another config.

Shape letters: ``B`` batch, ``S`` input positions (``*S``: the spatial axes of an input, a
sequence's ``S`` or an image's ``Y X``), ``T`` output positions (``*T``), ``Y``/``X`` image
rows and columns, ``W`` kernel taps per spatial axis, ``C`` (input) channels, ``O`` output
channels of a convolution and the classes of the head, ``L`` residual blocks, ``V``
vocabulary.

References:
    Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, "Gradient-based learning applied to document
    recognition", Proc. IEEE 86(11), 1998. https://doi.org/10.1109/5.726791
    K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
    https://arxiv.org/abs/1512.03385
    F. Yu, V. Koltun, "Multi-Scale Context Aggregation by Dilated Convolutions", ICLR 2016.
    https://arxiv.org/abs/1511.07122
    A. van den Oord et al., "WaveNet: A Generative Model for Raw Audio", 2016.
    https://arxiv.org/abs/1609.03499
    B. Alipanahi, A. Delong, M. Weirauch, B. Frey, "Predicting the sequence specificities of
    DNA- and RNA-binding proteins by deep learning" (DeepBind), Nat. Biotechnol. 33, 2015.
    https://doi.org/10.1038/nbt.3300
"""

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float

from zoo import _checks, layers
# The operation lives in zoo.convolution; its names stay reachable as zoo.cnn.conv etc.
from zoo.convolution import PADDINGS, SOBEL_X, avg_pool, conv, max_pool, sobel  # noqa: F401
from zoo.sharding import auto_inside, constrain, gather_params
from zoo.types import ParamAxes, Params

TASK = "classification"

POOLS = ("max", "avg", "none")
_POOL_FNS = {"max": max_pool, "avg": avg_pool}


# --- the models -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """CNN hyper-parameters (1D or 2D, picked by the length of ``input_size``).

    Attributes:
        input_size: spatial size of the inputs, ``(S,)`` or ``(Y, X)``; used by
            :func:`example_batch` and to check that the feature map never vanishes (any size
            that keeps it non-empty is accepted by :func:`apply`).
        in_channels: input channels ``C`` (float inputs), or the embedding width when
            ``vocab_size`` is set.
        num_classes: classes of the head.
        channels: output channels of the plain conv layers, in order (at least one).
        kernel_size: taps ``W`` per spatial axis of every kernel.
        dilation_base: plain layer ``l`` uses dilation ``dilation_base**l`` (1: contiguous).
        padding: ``"same"``, ``"valid"`` or ``"causal"`` (1D) for the plain layers; the
            residual blocks use ``"causal"`` if so, else ``"same"``.
        pool: ``"max"``, ``"avg"`` or ``"none"`` after each plain layer.
        pool_size: window and stride of that pooling.
        num_blocks: residual blocks ``L`` of width ``channels[-1]``.
        global_pool: ``"max"`` or ``"avg"`` over all positions before the head, or
            ``"flatten"`` (keeps where a motif is; inputs must then have ``input_size``).
        head_dim: width of a hidden dense layer in the head (0: none).
        vocab_size: if set, inputs are integer tokens ``[B, S]`` in ``[0, V)``.
        activation: a name in :data:`zoo.layers.ACTIVATIONS`.
        dtype: computation dtype (params stay float32).
    """
    input_size: tuple[int, ...]
    in_channels: int
    num_classes: int
    channels: tuple[int, ...]
    kernel_size: int = 3
    dilation_base: int = 1
    padding: str = "same"
    pool: str = "none"
    pool_size: int = 2
    num_blocks: int = 0
    global_pool: str = "max"
    head_dim: int = 0
    vocab_size: int | None = None
    activation: str = "relu"
    dtype: str = "float32"

    def __post_init__(self):
        if not isinstance(self.input_size, tuple) or len(self.input_size) not in (1, 2):
            raise ValueError(f"input_size must be a tuple (S,) or (Y, X), got {self.input_size!r}")
        for i, n in enumerate(self.input_size):
            _checks.positive_int(n, f"input_size[{i}]")
        _checks.positive_int(self.in_channels, "in_channels")
        _checks.positive_int(self.num_classes, "num_classes")
        if not isinstance(self.channels, tuple) or not self.channels:
            raise ValueError(f"channels must be a non-empty tuple of ints, got {self.channels!r}")
        for i, c in enumerate(self.channels):
            _checks.positive_int(c, f"channels[{i}]")
        _checks.positive_int(self.kernel_size, "kernel_size")
        _checks.positive_int(self.dilation_base, "dilation_base")
        _checks.one_of(self.padding, "padding", PADDINGS)
        if self.padding == "causal" and self.ndim != 1:
            raise ValueError(f"padding='causal' needs 1D inputs, got input_size {self.input_size}")
        _checks.one_of(self.pool, "pool", POOLS)
        _checks.positive_int(self.pool_size, "pool_size")
        _checks.positive_int(self.num_blocks, "num_blocks", minimum=0)
        _checks.one_of(self.global_pool, "global_pool", ("max", "avg", "flatten"))
        _checks.positive_int(self.head_dim, "head_dim", minimum=0)
        if self.vocab_size is not None:
            _checks.positive_int(self.vocab_size, "vocab_size")
            if self.ndim != 1:
                raise ValueError("vocab_size (token inputs) needs 1D inputs, got input_size "
                                 f"{self.input_size}")
        layers.activation(self.activation)
        _checks.dtype_name(self.dtype)
        self.feature_size(self.input_size)

    def feature_size(self, size: Sequence[int], name: str = "input_size") -> tuple[int, ...]:
        """Spatial size of the feature map for an input of spatial ``size``.

        Raises:
            ValueError: naming ``name`` if valid convolutions and pooling shrink it to nothing.
        """
        size = tuple(size)
        for l in range(len(self.channels)):
            if self.padding == "valid":
                span = (self.kernel_size - 1) * self.dilation_base ** l + 1
                size = tuple(n - span + 1 for n in size)
            if self.pool != "none":
                size = tuple(n // self.pool_size for n in size)
            if min(size) < 1:
                raise ValueError(
                    f"{name}: spatial size is too small for the layers: the feature map "
                    f"vanishes after conv layer {l} (kernel_size {self.kernel_size}, padding "
                    f"{self.padding!r}, pool {self.pool!r})")
        return size

    @property
    def ndim(self) -> int:
        """Spatial dimensions: 1 (sequences) or 2 (images)."""
        return len(self.input_size)

    @property
    def width(self) -> int:
        """Channels of the feature map entering the blocks and the head."""
        return self.channels[-1]

    @property
    def head_in(self) -> int:
        """Features entering the head: ``C``, or positions × ``C`` when flattening."""
        if self.global_pool != "flatten":
            return self.width
        return math.prod(self.feature_size(self.input_size)) * self.width


PRESETS: dict[str, Config] = {
    # 2D image classifier: conv → ReLU → max-pool, twice, global average, dense head.
    "tiny": Config(input_size=(10, 9), in_channels=3, num_classes=5, channels=(8, 12),
                   pool="max", global_pool="avg"),
    # Residual 2D CNN: a stem conv and pool, then two scanned residual blocks.
    "resnet_tiny": Config(input_size=(11, 13), in_channels=3, num_classes=5, channels=(8,),
                          pool="max", num_blocks=2, global_pool="avg"),
    # 1D sequence CNN on one-hot DNA: motif filters, global max pooling, dense head.
    "dna_tiny": Config(input_size=(23,), in_channels=4, num_classes=3, channels=(8,),
                       kernel_size=5, head_dim=4),
    # 1D sequence CNN on protein tokens (25 symbols) embedded into 6 features.
    "protein_tiny": Config(input_size=(19,), in_channels=6, vocab_size=25, num_classes=2,
                           channels=(12,), kernel_size=5),
    # Dilated causal stack: dilations 1, 2, 4, 8 with W = 2, receptive field 2⁴ = 16.
    "dilated_tiny": Config(input_size=(29,), in_channels=4, num_classes=3,
                           channels=(8, 8, 8, 8), kernel_size=2, dilation_base=2,
                           padding="causal", global_pool="avg", activation="tanh"),
    # UCI splice junctions (60 nt one-hot, classes EI/IE/N; examples/splice_cnn.py). The
    # junction sits mid-window, so the head keeps positions (flatten) rather than pooling
    # them away: with global max pooling instead, held-out accuracy stays at 68-77% (20
    # epochs, 32 or 64 filters); flattened, it is 95-97% (seeds 0-2).
    "splice": Config(input_size=(60,), in_channels=4, num_classes=3, channels=(32,),
                     kernel_size=5, pool="max", global_pool="flatten"),
}


def init(key: jax.Array, cfg: Config) -> Params:
    """He-normal kernels (``N(0, 2/fan_in)``), LeCun-normal logits layer, zero biases, float32.

    Tree: ``embed/table [V, C]`` (token inputs), ``conv_l/{w [*W, C, O], b [O]}``,
    ``blocks/{norm_scale, norm_bias [L, C], w1, w2 [L, *W, C, C], b1, b2 [L, C]}``,
    ``head/{w, b}`` (hidden layer, if any) and ``out/{w [C, classes], b [classes]}``.

    >>> p = init(jax.random.key(0), PRESETS["resnet_tiny"])
    >>> p["conv_0"]["w"].shape, p["blocks"]["w1"].shape, p["out"]["w"].shape
    ((3, 3, 3, 8), (2, 3, 3, 8, 8), (8, 5))
    """
    weights = _weight_shapes(cfg)
    sizes = [math.prod(shape) for _, _, shape, _ in weights]
    # One draw sliced into every weight: a config compiles one RNG kernel, not one per shape
    # (threefry kernels are slow to compile on CPU).
    draw = jax.random.normal(key, (sum(sizes),), jnp.float32)
    params, offset = {}, 0
    for (group, name, shape, std), size in zip(weights, sizes):
        params.setdefault(group, {})[name] = draw[offset:offset + size].reshape(shape) * std
        offset += size
    zeros = lambda *shape: jnp.zeros(shape, jnp.float32)
    for l, c in enumerate(cfg.channels):
        params[f"conv_{l}"]["b"] = zeros(c)
    if cfg.num_blocks:
        n, c = cfg.num_blocks, cfg.width
        params["blocks"].update(norm_scale=jnp.ones((n, c), jnp.float32),
                                norm_bias=zeros(n, c), b1=zeros(n, c), b2=zeros(n, c))
    if cfg.head_dim:
        params["head"]["b"] = zeros(cfg.head_dim)
    params["out"]["b"] = zeros(cfg.num_classes)
    return params


def param_axes(cfg: Config) -> ParamAxes:
    """Channel (tensor) parallelism, Megatron style: conv layers alternate splitting their
    output and their input channels over ``channels``; the other channel axis is ``embed``
    (FSDP). The first layer's input channels (often 1, 3 or 4) are not split."""
    w = (None,) * cfg.ndim
    axes = {}
    if cfg.vocab_size is not None:
        axes["embed"] = {"table": P(None, None)}
    for l in range(len(cfg.channels)):
        a_in, a_out = ("embed", "channels") if l % 2 == 0 else ("channels", "embed")
        axes[f"conv_{l}"] = {"w": P(*w, None if l == 0 else a_in, a_out), "b": P(a_out)}
    last = "channels" if len(cfg.channels) % 2 else "embed"
    if cfg.num_blocks:
        axes["blocks"] = {
            "norm_scale": P("layers", None), "norm_bias": P("layers", None),
            "w1": P("layers", *w, "embed", "channels"), "b1": P("layers", "channels"),
            "w2": P("layers", *w, "channels", "embed"), "b2": P("layers", None),
        }
        last = "embed"
    if cfg.global_pool == "flatten":
        last = None
    if cfg.head_dim:
        axes["head"] = {"w": P(last, "hidden"), "b": P("hidden")}
        last = "hidden"
    axes["out"] = {"w": P(last, None), "b": P(None)}
    return axes


@auto_inside
def apply(params: Params, x: Array, cfg: Config, *, key=None,
          train: bool = False) -> Float[Array, "B O"]:
    """Classifies ``x``: conv layers, residual blocks, global pooling, dense head.

    Args:
        params: from :func:`init`.
        x: ``[B, S, C]`` or ``[B, Y, X, C]`` numbers, or ``[B, S]`` int tokens in
            ``[0, vocab_size)`` when ``cfg.vocab_size`` is set.
        cfg: the model's config.
        key, train: unused (no dropout); accepted for the contract.

    Returns:
        Logits ``[B, O]`` (``O = num_classes``) in ``cfg.dtype``.

    Raises:
        ValueError: if ``x`` has the wrong rank or channels, is empty, is too small for the
            layers (valid padding and pooling shrink it), holds token ids outside
            ``[0, vocab_size)`` (under ``jit``: when the program runs), or ``params`` were
            made for another config.
        TypeError: if ``x`` has the wrong dtype.

    >>> cfg = PRESETS["dna_tiny"]
    >>> apply(init(jax.random.key(0), cfg), jnp.ones((2, 23, 4)), cfg).shape
    (2, 3)
    """
    _check_x(x, cfg)
    _checks.check_params(params, init, cfg)
    params = gather_params(params, param_axes(cfg))
    h = _features(params, x, cfg)
    h = _global_pool(h, cfg)
    if cfg.head_dim:
        h = layers.activation(cfg.activation)(layers.dense(params["head"], h))
        h = constrain(h, ("batch", None))
    return layers.dense(params["out"], h)


@auto_inside
def features(params: Params, x: Array, cfg: Config) -> Float[Array, "B *T C"]:
    """The feature map before global pooling: ``[B, *T, C]`` (``C = channels[-1]``).

    Position ``t`` of the output depends on the inputs in a window of
    :func:`receptive_field` positions (ending at ``t`` for causal padding). Arguments and
    errors as in :func:`apply`.

    >>> cfg = PRESETS["dilated_tiny"]
    >>> features(init(jax.random.key(0), cfg), jnp.ones((2, 29, 4)), cfg).shape
    (2, 29, 8)
    """
    _check_x(x, cfg)
    _checks.check_params(params, init, cfg)
    return _features(gather_params(params, param_axes(cfg)), x, cfg)


def receptive_field(cfg: Config) -> int:
    """Input positions (per spatial axis) that one position of :func:`features` sees.

    With ``j`` the product of the strides so far (the pooling), each kernel adds
    ``(W − 1)·d·j`` positions and each pooling ``(pool_size − 1)·j``. For the dilated stack
    (no pooling, ``d_l = bˡ``) this is ``1 + (W − 1)(bᴸ − 1)/(b − 1)``, which is ``Wᴸ`` when
    ``b = W``.

    >>> receptive_field(PRESETS["dilated_tiny"])   # W = 2, dilations 1, 2, 4, 8
    16
    """
    field, jump = 1, 1
    for l in range(len(cfg.channels)):
        field += (cfg.kernel_size - 1) * cfg.dilation_base ** l * jump
        if cfg.pool != "none":
            field += (cfg.pool_size - 1) * jump
            jump *= cfg.pool_size
    return field + 2 * cfg.num_blocks * (cfg.kernel_size - 1) * jump


def example_batch(key: jax.Array, cfg: Config, batch_size: int):
    """Random inputs (normal floats, or tokens) of ``cfg.input_size`` and random labels."""
    kx, ky = jax.random.split(key)
    shape = (batch_size,) + cfg.input_size
    if cfg.vocab_size is not None:
        x = jax.random.randint(kx, shape, 0, cfg.vocab_size)
    else:
        x = jax.random.normal(kx, shape + (cfg.in_channels,), jnp.float32)
    return (x,), jax.random.randint(ky, (batch_size,), 0, cfg.num_classes)


# --- private pieces ---------------------------------------------------------------------------

def _features(params, x, cfg):
    sigma = layers.activation(cfg.activation)
    if cfg.vocab_size is not None:
        h = params["embed"]["table"].astype(cfg.dtype)[x]
    else:
        h = x.astype(cfg.dtype)
    boundary = ("batch",) + (None,) * cfg.ndim + ("embed",)
    for l in range(len(cfg.channels)):
        p = params[f"conv_{l}"]
        h = sigma(conv(h, p["w"], p["b"], padding=cfg.padding, dilation=cfg.dilation_base ** l))
        if cfg.pool != "none":
            h = _POOL_FNS[cfg.pool](h, cfg.pool_size)
        h = constrain(h, boundary)
    if cfg.num_blocks:
        h = _blocks_apply(params["blocks"], h, cfg, boundary)
    return h


def _global_pool(h, cfg):
    axes = tuple(range(1, cfg.ndim + 1))
    if cfg.global_pool == "flatten":
        return h.reshape(h.shape[0], -1)
    return h.max(axes) if cfg.global_pool == "max" else h.mean(axes)


def _blocks_apply(blocks, h, cfg, boundary):
    sigma = layers.activation(cfg.activation)
    padding = "causal" if cfg.padding == "causal" else "same"

    def block(h, p):
        u = sigma(layers.layer_norm(h, p["norm_scale"], p["norm_bias"]))
        u = sigma(conv(u, p["w1"], p["b1"], padding=padding))
        h = h + conv(u, p["w2"], p["b2"], padding=padding)
        return constrain(h, boundary), None

    return jax.lax.scan(block, h, blocks)[0]


def _weight_shapes(cfg):
    """``(group, name, shape, std)`` of every random weight: He-normal ``√(2/fan_in)`` before
    ReLU-like activations, LeCun ``√(1/fan_in)`` for the logits."""
    w = (cfg.kernel_size,) * cfg.ndim
    taps = cfg.kernel_size ** cfg.ndim
    dims = (cfg.in_channels,) + cfg.channels
    out = []
    if cfg.vocab_size is not None:
        out.append(("embed", "table", (cfg.vocab_size, cfg.in_channels), 1.0))
    for l in range(len(cfg.channels)):
        out.append((f"conv_{l}", "w", w + dims[l:l + 2], math.sqrt(2 / (taps * dims[l]))))
    if cfg.num_blocks:
        n, c = cfg.num_blocks, cfg.width
        out.append(("blocks", "w1", (n,) + w + (c, c), math.sqrt(2 / (taps * c))))
        # A small last kernel keeps each block near the identity at init.
        out.append(("blocks", "w2", (n,) + w + (c, c), math.sqrt(1 / (2 * n * taps * c))))
    last = cfg.head_in
    if cfg.head_dim:
        out.append(("head", "w", (last, cfg.head_dim), math.sqrt(2 / last)))
        last = cfg.head_dim
    out.append(("out", "w", (last, cfg.num_classes), math.sqrt(1 / last)))
    return out


def _check_x(x, cfg):
    if cfg.vocab_size is not None:
        _checks.check_array(x, "x", rank=2, letters="B S", kind="int", nonempty=True)
        _checks.in_range(x, "x", 0, cfg.vocab_size - 1, what="token ids",
                         hint=f"The vocabulary has vocab_size={cfg.vocab_size} ids.")
    else:
        letters = "B S C" if cfg.ndim == 1 else "B Y X C"
        _checks.check_array(x, "x", shape=(None,) * (cfg.ndim + 1) + (cfg.in_channels,),
                            letters=letters, kind="number", nonempty=True)
    size = tuple(x.shape[1:1 + cfg.ndim])
    if cfg.global_pool == "flatten" and size != cfg.input_size:
        raise ValueError(f"x must have spatial size {cfg.input_size} (cfg.input_size; the "
                         f"head flattens positions), got shape {_checks.shape_str(x.shape)}")
    cfg.feature_size(size, "x")
