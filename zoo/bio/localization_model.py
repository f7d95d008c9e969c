"""The localization models of :mod:`zoo.bio.localization`: a bidirectional LSTM with
attention pooling (DeepLoc), and a Transformer-encoder and a CNN variant of one interface.

The DeepLoc architecture (Almagro Armenteros et al. 2017) on the zoo's layers: amino-acid
embedding ``x_t = E[s_t]``, a bidirectional LSTM (:mod:`zoo.rnn`) giving ``h_t [E·D]``, the
attention pooling of DeepLoc over positions, masked on padding::

    e_t = v · tanh(W h_t + b),    a_t = exp(e_t) / Σ_{s valid} exp(e_s),    c = Σ_t a_t h_t

then a dense ReLU layer and two heads: the 10 locations (:data:`DEEPLOC_LOCATIONS`) and
membrane/soluble (``M``/``S``; ``U`` unknown is masked out of that loss)::

    L = CE(loc) + membrane_weight · Σ_{i: m_i ≠ U} CE(mem_i) / #{i: m_i ≠ U}

Proteins longer than ``max_length`` keep their termini (:func:`zoo.bio.fasta.crop_termini`);
padding never changes a protein's outputs (the LSTM freezes past each length, the pooling
and the Transformer's keys are masked, the CNN's single convolution sees zeros as its own
"same" padding and its global max runs over valid positions only).

Variants, one :class:`Config` (``kind``): ``"blstm"`` (above), ``"transformer"``
(:func:`zoo.transformer.encode` of an ``encoder`` Transformer, then attention or mean
pooling) and ``"cnn"`` (:func:`zoo.cnn.features`, one 1-D convolution over the embedded
sequence, then a global max over valid positions).

Shape letters: ``B`` batch (proteins), ``T`` positions, ``D`` features per position,
``I`` attention hidden width, ``V`` vocabulary (the 30 ids of
:class:`zoo.bio.tokenizers.ProteinTokenizer`), ``O`` classes.

>>> cfg = Config(kind="blstm", embed_dim=4, hidden_dim=3, attention_dim=5, dense_dim=6)
>>> params = init(jax.random.key(0), cfg)
>>> tokens, lengths = encode_sequences(["MKV", "MKVLA"], 7)
>>> loc, mem, weights = apply(params, tokens, lengths, cfg)
>>> loc.shape, mem.shape, weights.sum(axis=1).round(4).tolist()
((2, 10), (2, 2), [1.0, 1.0])

References:
    Almagro Armenteros J.J., Sønderby C.K., Sønderby S.K., Nielsen H., Winther O. "DeepLoc:
    prediction of protein subcellular localization using deep learning." Bioinformatics
    33(21):3387-3395, 2017. https://doi.org/10.1093/bioinformatics/btx431

    Stärk H., Dallago C., Heinzinger M., Rost B. "Light attention predicts protein location
    from the language of life." Bioinformatics Advances 1(1):vbab035, 2021.
    https://doi.org/10.1093/bioadv/vbab035
"""

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from zoo import _checks, cnn, layers, rnn, transformer
from zoo.bio.fasta import DEEPLOC_LOCATIONS, crop_termini
from zoo.bio.tokenizers import ProteinTokenizer
from zoo.types import Params

KINDS = ("blstm", "transformer", "cnn")
#: Membrane label -> membrane-head class (``U`` unknown is -1, masked out of the loss).
MEMBRANE_CLASS = {"M": 0, "S": 1, "U": -1}
_TOKENIZER = ProteinTokenizer(unknown="map")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """A localization model.

    Attributes:
        kind: ``"blstm"``, ``"transformer"`` or ``"cnn"``.
        embed_dim: amino-acid embedding width (``blstm``, ``cnn``).
        hidden_dim: LSTM width per direction; the Transformer's ``d_model``; CNN filters.
        attention_dim: width ``I`` of the attention pooling's ``W``.
        dense_dim: the hidden dense layer before the two heads.
        num_layers: Transformer layers.
        num_heads: Transformer heads (divides ``hidden_dim``).
        kernel_size: CNN kernel width.
        pooling: ``"attention"`` (blstm; transformer), ``"mean"`` (transformer) or ``"max"``
            (cnn; the only pooling it takes).
        max_length: longest input after cropping (the Transformer's position table).
        dropout: on the pooled vector (and inside the Transformer) while training.
    """
    kind: str = "blstm"
    embed_dim: int = 32
    hidden_dim: int = 64
    attention_dim: int = 64
    dense_dim: int = 64
    num_layers: int = 2
    num_heads: int = 4
    kernel_size: int = 9
    pooling: str | None = None
    max_length: int = 400
    dropout: float = 0.25

    def __post_init__(self):
        _checks.one_of(self.kind, "kind", KINDS)
        for name in ("embed_dim", "hidden_dim", "attention_dim", "dense_dim", "num_layers",
                     "num_heads", "kernel_size"):
            _checks.positive_int(getattr(self, name), name)
        _checks.positive_int(self.max_length, "max_length", minimum=2)
        allowed = {"blstm": ("attention",), "transformer": ("attention", "mean"),
                   "cnn": ("max",)}[self.kind]
        if self.pooling is not None and self.pooling not in allowed:
            raise ValueError(f"pooling for kind {self.kind!r} must be one of {allowed}, got "
                             f"{self.pooling!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.kind == "transformer" and self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} must be divisible by num_heads "
                             f"{self.num_heads}")

    @property
    def pool(self) -> str:
        """The pooling used: ``pooling`` or the kind's default."""
        return self.pooling or {"blstm": "attention", "transformer": "attention",
                                "cnn": "max"}[self.kind]

    @property
    def features(self) -> int:
        """Width of the per-position features that are pooled."""
        return 2 * self.hidden_dim if self.kind == "blstm" else self.hidden_dim

    def rnn_config(self) -> rnn.Config:
        return rnn.Config(cell="lstm", in_dim=self.embed_dim, hidden_dim=self.hidden_dim,
                          bidirectional=True, output="sequence")

    def transformer_config(self) -> transformer.Config:
        return transformer.Config(kind="encoder", vocab_size=_TOKENIZER.vocab_size,
                                  d_model=self.hidden_dim, num_heads=self.num_heads,
                                  d_ff=2 * self.hidden_dim, num_layers=self.num_layers,
                                  max_len=self.max_length, norm="pre",
                                  dropout=min(self.dropout, 0.1))

    def cnn_config(self) -> cnn.Config:
        return cnn.Config(input_size=(self.max_length,), in_channels=self.embed_dim,
                          num_classes=len(DEEPLOC_LOCATIONS), channels=(self.hidden_dim,),
                          kernel_size=self.kernel_size, padding="same")


# --- the pieces ---------------------------------------------------------------------------

def attention_pool_init(key: jax.Array, d: int, i: int) -> Params:
    """Params of :func:`attention_pool`: ``w_di [D, I]``, ``b_i [I]``, ``v_i [I]``."""
    k_w, k_v = jax.random.split(key)
    return {"w_di": layers.dense_init(k_w, (d, i)), "b_i": jnp.zeros((i,), jnp.float32),
            "v_i": layers.dense_init(k_v, (i, 1))[:, 0]}


def attention_pool(p: Params, h: Float[Array, "B T D"], mask: Array
                   ) -> tuple[Float[Array, "B D"], Float[Array, "B T"]]:
    """DeepLoc's attention pooling: ``(c [B, D], a [B, T])``.

    ``e_t = v · tanh(W h_t + b)``, ``a = softmax_t(e)`` over the positions where ``mask``
    ``[B, T]`` is true (zero elsewhere), ``c = Σ_t a_t h_t``.

    >>> p = {"w_di": jnp.eye(2), "b_i": jnp.zeros(2), "v_i": jnp.array([1.0, 0.0])}
    >>> h = jnp.array([[[0.0, 1.0], [1.0, 0.0], [5.0, 5.0]]])
    >>> c, a = attention_pool(p, h, jnp.array([[True, True, False]]))
    >>> [round(float(x), 4) for x in a[0]]     # softmax(0, tanh 1) over the two valid ones
    [0.3183, 0.6817, 0.0]
    """
    e = jnp.tanh(h @ p["w_di"].astype(h.dtype) + p["b_i"].astype(h.dtype)) \
        @ p["v_i"].astype(h.dtype)
    a = layers.masked_softmax(e.astype(jnp.float32), mask)
    return jnp.einsum("BT,BTD->BD", a, h.astype(jnp.float32)), a


def encode_sequences(seqs: Sequence[str], length: int, *, max_length: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Tokens ``[B, length]`` (int32, :class:`ProteinTokenizer` ids, unknown letters mapped to
    ``<unk>``, right-padded with 0) and lengths ``[B]``, after cropping each sequence to
    ``max_length`` (default ``length``) with :func:`crop_termini`.

    >>> tokens, lengths = encode_sequences(["MKVLAG"], 6, max_length=4)   # MK + AG
    >>> tokens.tolist(), lengths.tolist()
    ([[15, 13, 5, 10, 0, 0]], [4])

    Raises:
        ValueError: if ``max_length`` exceeds ``length``.
    """
    max_length = length if max_length is None else max_length
    if max_length > length:
        raise ValueError(f"max_length {max_length} must be <= length {length}")
    cropped = [crop_termini(s, max_length) for s in seqs]
    tokens, mask = _TOKENIZER.encode_batch(cropped, length)
    return tokens, mask.sum(axis=1).astype(np.int32)


# --- the model ----------------------------------------------------------------------------

def init(key: jax.Array, cfg: Config) -> Params:
    """Params: the encoder (``embed`` and ``rnn``, ``transformer``, or ``embed`` and
    ``cnn``), ``pool`` (attention pooling), ``dense``, ``loc`` and ``mem`` heads."""
    k_embed, k_body, k_pool, k_dense, k_loc, k_mem = jax.random.split(key, 6)
    params = {}
    if cfg.kind in ("blstm", "cnn"):
        table = jax.random.normal(k_embed, (_TOKENIZER.vocab_size, cfg.embed_dim)) * 0.3
        params["embed"] = {"table_vd": table}
    if cfg.kind == "blstm":
        params["rnn"] = rnn.init(k_body, cfg.rnn_config())
    elif cfg.kind == "transformer":
        params["transformer"] = transformer.init(k_body, cfg.transformer_config())
    else:
        params["cnn"] = cnn.init(k_body, cfg.cnn_config())
    if cfg.pool == "attention":
        params["pool"] = attention_pool_init(k_pool, cfg.features, cfg.attention_dim)
    dense = lambda k, i, o: {"w": layers.dense_init(k, (i, o)), "b": jnp.zeros((o,))}
    params["dense"] = dense(k_dense, cfg.features, cfg.dense_dim)
    params["loc"] = dense(k_loc, cfg.dense_dim, len(DEEPLOC_LOCATIONS))
    params["mem"] = dense(k_mem, cfg.dense_dim, 2)
    return params


def apply(params: Params, tokens: Int[Array, "B T"], lengths: Int[Array, "B"], cfg: Config,
          *, key: jax.Array | None = None, train: bool = False):
    """``(location logits [B, 10], membrane logits [B, 2], pooling weights [B, T])``.

    The pooling weights are the attention ``a_t`` (attention pooling), ``1/length`` (mean),
    or the fraction of CNN filters whose maximum sits at ``t`` (max); zero on padding.

    Raises:
        ValueError: if ``tokens`` is not ``[B, T]`` or ``lengths`` not ``[B]``.
    """
    if tokens.ndim != 2 or lengths.shape != tokens.shape[:1]:
        raise ValueError(f"tokens must be [B, T] and lengths [B], got shapes {tokens.shape} "
                         f"and {lengths.shape}")
    mask = jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]
    k_body, k_drop = (None, None) if key is None or not train else jax.random.split(key)
    h = _per_position(params, tokens, lengths, mask, cfg, k_body)
    pooled, weights = _pool(params, h, mask, cfg)
    if k_drop is not None and cfg.dropout:
        keep = jax.random.bernoulli(k_drop, 1.0 - cfg.dropout, pooled.shape)
        pooled = jnp.where(keep, pooled / (1.0 - cfg.dropout), 0.0)
    z = jax.nn.relu(layers.dense(params["dense"], pooled))
    return layers.dense(params["loc"], z), layers.dense(params["mem"], z), weights


def _per_position(params, tokens, lengths, mask, cfg, key):
    if cfg.kind == "transformer":
        h, _ = transformer.encode(params["transformer"], tokens, cfg.transformer_config(),
                                  key=key)
        return h
    x = jnp.take(params["embed"]["table_vd"], tokens, axis=0) * mask[..., None]
    if cfg.kind == "blstm":
        return rnn.apply(params["rnn"], x, lengths, cfg.rnn_config())
    return jax.nn.relu(cnn.features(params["cnn"], x, cfg.cnn_config()))


def _pool(params, h, mask, cfg):
    if cfg.pool == "attention":
        return attention_pool(params["pool"], h, mask)
    if cfg.pool == "mean":
        w = mask / jnp.maximum(mask.sum(axis=1, keepdims=True), 1)
        return jnp.einsum("BT,BTD->BD", w, h), w
    masked = jnp.where(mask[..., None], h, -jnp.inf)
    top = masked.max(axis=1)
    at_max = (masked == top[:, None, :]) & mask[..., None]
    share = at_max / jnp.maximum(at_max.sum(axis=1, keepdims=True), 1)   # ties split
    return top, share.mean(axis=-1)


def loss(params: Params, batch: dict, cfg: Config, *, key=None,
         membrane_weight: float = 0.5) -> jax.Array:
    """Mean location cross-entropy plus ``membrane_weight`` times the membrane one over the
    proteins whose label is known (``batch["membrane"] >= 0``), both weighted by
    ``batch["weight"]`` (0 for filler rows).

    ``batch``: ``tokens [B, T]``, ``lengths [B]``, ``label [B]``, ``membrane [B]``,
    ``weight [B]``.
    """
    loc, mem, _ = apply(params, batch["tokens"], batch["lengths"], cfg, key=key,
                        train=key is not None)
    w = batch["weight"]
    ce_loc = optax.softmax_cross_entropy_with_integer_labels(loc, batch["label"])
    known = w * (batch["membrane"] >= 0)
    ce_mem = optax.softmax_cross_entropy_with_integer_labels(
        mem, jnp.maximum(batch["membrane"], 0))
    return (ce_loc * w).sum() / jnp.maximum(w.sum(), 1) + membrane_weight * (
        (ce_mem * known).sum() / jnp.maximum(known.sum(), 1))


__all__ = ["KINDS", "MEMBRANE_CLASS", "Config", "attention_pool_init", "attention_pool",
           "encode_sequences", "init", "apply", "loss"]
