"""The MSA Transformer (Rao et al. 2021): a masked language model over alignments, whose
tied row attention gives one map per head for a whole family. Trained and read for contacts
by :mod:`zoo.bio.msa_lm`.

The input is an alignment crop ``x [B, T]`` (``B`` rows, ``T`` columns; :mod:`zoo.bio.msa`
ids, gap 20, plus :data:`MASK` and the column padding :data:`PAD`). Each token is embedded
with a sinusoidal position of its column, and every layer applies, each pre-normed with a
residual::

    tied row attention   A_nts = softmax_s( Σ_b q_btn · k_bsn / (B·√H) ),
                         o_btn = Σ_s A_nts v_bsn            (one map per head, all rows)
    column attention     o_btn = Σ_c softmax_c( q_btn · k_ctn / √H ) v_ctn   (c: rows)
    feed-forward         W₂ gelu(W₁ h)

A column's logits are a mean over every row of the alignment, so a head's map
``A^{(l,n)}`` is a statistic of the whole family: the network can learn, on the training
families, to read co-variation between columns, and that reading carries over to alignments
it never saw. The mean (where Rao et al. divide the sum by ``√B``) keeps the logits' scale
independent of ``B``, so maps read from more rows than a training crop holds estimate the
same statistic with less noise.

Shape letters: ``A`` alignments, ``B`` rows (sequences), ``T`` columns (``S`` as keys),
``D`` width, ``N`` heads, ``H`` head width, ``F`` feed-forward width, ``L`` layers, ``V``
states.

>>> cfg = Config(d_model=8, num_heads=2, d_ff=16, num_layers=1)
>>> params = init(jax.random.key(0), cfg)
>>> logits, maps = apply(params, jnp.zeros((1, 3, 5), jnp.int32), cfg, return_maps=True)
>>> logits.shape, maps.shape                  # [A, B, T, V], [L, A, N, T, T]
((1, 3, 5, 21), (1, 1, 2, 5, 5))

References:
    R. Rao, J. Liu, R. Verkuil, J. Meier, J. Canny, P. Abbeel, T. Sercu, A. Rives, "MSA
    Transformer", ICML 2021. https://doi.org/10.1101/2021.02.12.430858
    J. Ho, N. Kalchbrenner, D. Weissenborn, T. Salimans, "Axial Attention in
    Multidimensional Transformers", 2019. https://arxiv.org/abs/1912.12180
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int

from zoo import attention as _attention
from zoo import layers
from zoo import transformer
from zoo.bio import msa as _msa

#: The mask token (after the 20 amino acids and the gap of :mod:`zoo.bio.msa`).
MASK = _msa.NUM_STATES
#: The padding of columns past an alignment's width (never attended to, never scored).
PAD = _msa.NUM_STATES + 1
#: Input vocabulary: 21 states, mask, pad.
VOCAB = _msa.NUM_STATES + 2


@dataclasses.dataclass(frozen=True)
class Config:
    """The network.

    Attributes:
        d_model, num_heads, d_ff, num_layers: widths and depth (``d_model`` divisible by
            ``num_heads``).
        max_cols: the widest alignment (the sinusoidal table's length).
        column_attention: whether layers attend over rows too (``False``: rows meet only
            through the tied row attention's shared maps).
        column_heads: the column attention's heads (``None`` becomes ``num_heads``); the row
            attention's heads give the contact maps, while the column attention's cost
            grows with its heads times the rows squared.
        center_rows: whether the tied row attention centres queries and keys over the
            rows (:func:`tied_row_attention`).
    """
    d_model: int = 64
    num_heads: int = 16
    d_ff: int = 256
    num_layers: int = 4
    max_cols: int = 192
    column_attention: bool = True
    column_heads: int | None = None
    center_rows: bool = False

    def __post_init__(self):
        for name in ("d_model", "num_heads", "d_ff", "num_layers", "max_cols"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.column_heads is None:
            object.__setattr__(self, "column_heads", self.num_heads)
        if self.column_heads < 1:
            raise ValueError(f"column_heads must be >= 1 or None, got {self.column_heads!r}")
        for name in ("num_heads", "column_heads"):
            if self.d_model % getattr(self, name):
                raise ValueError(f"d_model {self.d_model} must be divisible by {name} "
                                 f"{getattr(self, name)}")


# --- the network -------------------------------------------------------------------------------

def _norm_init(d):
    return {"scale": jnp.ones(d), "bias": jnp.zeros(d)}


def _attn_init(key, d):
    kq, kk, kv, ko = jax.random.split(key, 4)
    return {name: {"w": layers.dense_init(k, (d, d)), "b": jnp.zeros(d)}
            for name, k in (("q", kq), ("k", kk), ("v", kv), ("o", ko))}


def _layer_init(key, cfg: Config):
    kr, kc, k1, k2 = jax.random.split(key, 4)
    d, f = cfg.d_model, cfg.d_ff
    p = {"row_norm": _norm_init(d), "row": _attn_init(kr, d), "ffn_norm": _norm_init(d),
         "ffn1": {"w": layers.dense_init(k1, (d, f)), "b": jnp.zeros(f)},
         "ffn2": {"w": layers.dense_init(k2, (f, d)), "b": jnp.zeros(d)}}
    if cfg.column_attention:
        p.update(col_norm=_norm_init(d), col=_attn_init(kc, d))
    return p


def init(key: jax.Array, cfg: Config) -> dict:
    """Parameters: token embedding ``[V_in, D]``, ``num_layers`` layers, final norm and the
    output map to the 21 states."""
    ke, ko, *kl = jax.random.split(key, 2 + cfg.num_layers)
    return {"embed": jax.random.normal(ke, (VOCAB, cfg.d_model)) * 0.1,
            "layers": [_layer_init(k, cfg) for k in kl],
            "norm": _norm_init(cfg.d_model),
            "out": {"w": layers.dense_init(ko, (cfg.d_model, _msa.NUM_STATES)),
                    "b": jnp.zeros(_msa.NUM_STATES)}}


def _heads(p, x, n):
    y = layers.dense(p, x)
    return y.reshape(*y.shape[:-1], n, -1)


def tied_row_attention(p: dict, x: Float[Array, "A B T D"], valid: Bool[Array, "A T"],
                       num_heads: int, *, center: bool = False
                       ) -> tuple[Float[Array, "A B T D"], Float[Array, "A N T T"]]:
    """``(output, maps)``: one attention map per head over the columns, its logits summed
    over the rows and scaled by ``1/(B·√H)`` (module docstring); pad columns get no weight.
    With ``center``, queries and keys are centred over the rows of each column first
    (``q_btn − mean_b q_btn``), so the logits are the cross-covariance of the two columns'
    projections, and the columns' mean profiles no longer enter them.

    Tied attention is plain scaled dot-product attention with the rows folded into the head
    width: ``Σ_b q_btn·k_bsn / (B·√H)`` is ``q'_tn·k'_sn / √H'`` for ``q'_tn`` the
    concatenation of ``q_btn / √B`` over ``b`` (``H' = B·H``), and the same weights applied to
    the folded values give every row's output. :func:`zoo.attention.dot_product_attention`
    computes it."""
    a_, b_, t_, _ = x.shape
    fold = lambda y: jnp.moveaxis(y, 1, 3).reshape(a_, t_, num_heads, -1)  # [A T N B·H]
    q, k, v = (_heads(p[name], x, num_heads) for name in ("q", "k", "v"))
    if center:
        q, k = (y - jnp.mean(y, axis=1, keepdims=True) for y in (q, k))
    q, k, v = fold(q), fold(k), fold(v)
    o, w = _attention.dot_product_attention(q / np.sqrt(b_), k, v,
                                            mask=valid[:, None, None, :])
    o = jnp.moveaxis(o.reshape(a_, t_, num_heads, b_, -1), 3, 1)          # [A B T N H]
    return layers.dense(p["o"], o.reshape(x.shape)), w


def column_attention(p: dict, x: Float[Array, "A B T D"], num_heads: int
                     ) -> Float[Array, "A B T D"]:
    """Attention over the rows of each column, ``softmax_c(q_btn · k_ctn / √H)`` (``b``,
    ``c`` rows), with the columns as batch, through :func:`zoo.attention.attend`: its
    weights are never needed, so the platform's kernel serves, and on CPU the blocked one
    keeps a deep alignment's ``N·B²`` scores per column out of memory."""
    a_, b_, t_, _ = x.shape
    per_column = lambda y: jnp.moveaxis(y, 2, 1).reshape(a_ * t_, b_, num_heads, -1)
    q, k, v = (per_column(_heads(p[name], x, num_heads)) for name in ("q", "k", "v"))
    o, _ = _attention.attend(q, k, v)                                      # [A·T B N H]
    o = jnp.moveaxis(o.reshape(a_, t_, b_, -1), 1, 2)
    return layers.dense(p["o"], o.reshape(x.shape))


def _norm(p, x):
    return layers.layer_norm(x, p["scale"], p["bias"])


def _layer(p, x, valid, cfg):
    o, a = tied_row_attention(p["row"], _norm(p["row_norm"], x), valid, cfg.num_heads,
                              center=cfg.center_rows)
    x = x + o
    if cfg.column_attention:
        x = x + column_attention(p["col"], _norm(p["col_norm"], x), cfg.column_heads)
    h = jax.nn.gelu(layers.dense(p["ffn1"], _norm(p["ffn_norm"], x)))
    return x + layers.dense(p["ffn2"], h), a


def apply(params: dict, tokens: Int[Array, "A B T"], cfg: Config, *,
          return_maps: bool = False):
    """Logits ``[A, B, T, 21]`` over the states of every token; with ``return_maps`` also
    the tied row attention maps ``[L, A, N, T, T]``.

    Raises:
        ValueError: if ``tokens`` is not ``[A, B, T]`` or is wider than ``cfg.max_cols``.
    """
    if tokens.ndim != 3:
        raise ValueError(f"tokens must be [A, B, T] (alignments, rows, columns), got shape "
                         f"{tokens.shape}")
    if tokens.shape[2] > cfg.max_cols:
        raise ValueError(f"tokens has {tokens.shape[2]} columns, more than max_cols "
                         f"{cfg.max_cols}")
    valid = tokens[:, 0] != PAD                                            # [A, T]
    pos = transformer.positional_encoding(tokens.shape[2], cfg.d_model)
    x = params["embed"][tokens] + jnp.asarray(pos, jnp.float32)
    maps = []
    for p in params["layers"]:
        x, a = _layer(p, x, valid, cfg)
        maps.append(a)
    logits = layers.dense(params["out"], _norm(params["norm"], x))
    return (logits, jnp.stack(maps)) if return_maps else logits


def loss(params: dict, inputs: Int[Array, "A B T"], targets: Int[Array, "A B T"],
         cfg: Config) -> jax.Array:
    """Mean cross-entropy at the selected tokens (``targets ≥ 0``; −1 elsewhere)."""
    logits = apply(params, inputs, cfg)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(targets, 0))
    keep = targets >= 0
    return jnp.sum(jnp.where(keep, ce, 0.0)) / jnp.maximum(jnp.sum(keep), 1)


# --- parameters on disk ------------------------------------------------------------------------

def save_params(params: dict, path, cfg: Config) -> None:
    """The parameters as float16 ``.npz`` (one key per leaf, its path) with the config in
    ``__config__``."""
    flat = {jax.tree_util.keystr(kp): np.asarray(v, np.float16)
            for kp, v in jax.tree_util.tree_leaves_with_path(params)}
    np.savez_compressed(path, __config__=json.dumps(dataclasses.asdict(cfg)), **flat)


def load_params(path) -> tuple[dict, Config]:
    """Reads :func:`save_params`' file: ``(params as float32, config)``; a config without
    ``center_rows`` is a network whose tied attention does not centre.

    Raises:
        ValueError: if the file lacks a leaf of the config's network.
    """
    with np.load(path) as data:
        fields = json.loads(str(data["__config__"]))
        cfg = Config(**{"center_rows": False, **fields})   # a file without it: not centred
        template = jax.eval_shape(lambda: init(jax.random.key(0), cfg))
        paths, treedef = jax.tree_util.tree_flatten_with_path(template)
        missing = [jax.tree_util.keystr(kp) for kp, _ in paths
                   if jax.tree_util.keystr(kp) not in data.files]
        if missing:
            raise ValueError(f"{path}: no parameter {missing[0]} of the saved config {cfg}")
        leaves = [jnp.asarray(data[jax.tree_util.keystr(kp)], jnp.float32) for kp, _ in paths]
    return jax.tree_util.tree_unflatten(treedef, leaves), cfg


__all__ = ["MASK", "PAD", "VOCAB", "Config", "init", "tied_row_attention",
           "column_attention", "apply", "loss", "save_params", "load_params"]
