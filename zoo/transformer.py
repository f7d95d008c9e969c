"""The Transformer: encoder, decoder, the encoder-decoder of Vaswani et al. (2017), an
encoder-only masked language model and a decoder-only language model; incremental decoding
with a key/value cache is :mod:`zoo.kv_cache`.

Each layer wraps its sub-layers (self-attention, cross-attention, position-wise feed-forward)
in a residual connection with layer norm, after the residual (``norm="post"``, the paper)::

    x ← LN(x + Dropout(Sublayer(x)))

or before the sub-layer (``norm="pre"``, with one final norm after the stack)::

    x ← x + Dropout(Sublayer(LN(x)))

    FFN(x) = max(0, x W1 + b1) W2 + b2
    PE(pos, 2i) = sin(pos / 10000^{2i/D}),   PE(pos, 2i+1) = cos(pos / 10000^{2i/D})

Token embeddings are scaled by √D and added to the positions (sinusoidal, or learned with
``positions="learned"``). The vocabulary is shared: the source and target embeddings and the
output projection are one matrix (``logits = h Eᵀ``). Layers are stacked on a leading ``L``
axis and run with ``lax.scan``. Decoder self-attention is causal; cross-attention sees the
encoder's output ``memory`` except padded source positions. Token id 0 is padding (:data:`PAD`),
1 starts a target (:data:`BOS`), 2 is the masked-LM mask (:data:`MASK`).

Kinds (``Config.kind``) and their inputs:

* ``"encoder_decoder"``: ``apply(params, src [B, S], tgt_in [B, T], cfg=cfg) -> [B, T, V]``;
* ``"encoder"`` (masked LM): ``apply(params, tokens [B, T], cfg=cfg) -> [B, T, V]``;
* ``"decoder"`` (LM): ``apply(params, tokens [B, T], cfg=cfg) -> [B, T, V]``.

Every entry point checks its inputs and names the culprit: token ids outside
``[0, vocab_size)``, a source and target of different batch sizes, empty sequences, params of
another config, a full cache. Under ``jit`` the value checks run with the program
(:func:`zoo._checks.in_range`) and fail the call with the same message.

Shape letters: ``B`` batch, ``S`` source / key positions (for the key/value cache, its
length), ``T`` target positions, ``D`` model width, ``F`` feed-forward width, ``N`` heads,
``K`` key/value heads, ``H`` head dim, ``V`` vocabulary, ``L`` layers.

References:
    A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    https://arxiv.org/abs/1706.03762
    R. Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020.
    https://arxiv.org/abs/2002.04745
    J. Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
    Understanding", 2019. https://arxiv.org/abs/1810.04805
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float, Int

from zoo import _checks, attention, layers
from zoo.losses import cross_entropy
from zoo.sharding import auto_inside, constrain, gather_params
from zoo.types import ParamAxes, Params

PAD, BOS, MASK = 0, 1, 2
KINDS = ("encoder_decoder", "encoder", "decoder")
_TASKS = {"encoder_decoder": "seq2seq", "encoder": "masked_lm", "decoder": "lm"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Transformer hyper-parameters.

    Attributes:
        kind: ``"encoder_decoder"``, ``"encoder"`` (masked LM) or ``"decoder"`` (LM).
        vocab_size: ``V`` (shared by source and target), >= 4.
        d_model: ``D``; divisible by ``num_heads``.
        num_heads: ``N``.
        num_kv_heads: ``K`` (default ``N``).
        d_ff: feed-forward width ``F``.
        num_layers: encoder layers (the only stack for ``encoder``/``decoder`` kinds).
        num_decoder_layers: decoder layers of an encoder-decoder (default ``num_layers``).
        max_len: longest sequence the positional table covers.
        positions: ``"sinusoidal"`` or ``"learned"``.
        norm: ``"post"`` (the paper) or ``"pre"``.
        dropout: residual, embedding and attention-output dropout rate in ``[0, 1)``.
        norm_eps: layer-norm epsilon.
        window: restrict self-attention to ``|t − s| <= window`` (``None``: full).
        implementation: attention path, see :mod:`zoo.attention`.
        dtype: computation dtype.
    """
    kind: str = "encoder_decoder"
    vocab_size: int
    d_model: int
    num_heads: int
    num_kv_heads: int | None = None
    d_ff: int
    num_layers: int
    num_decoder_layers: int | None = None
    max_len: int = 512
    positions: str = "sinusoidal"
    norm: str = "post"
    dropout: float = 0.0
    norm_eps: float = 1e-5
    window: int | None = None
    implementation: str = "auto"
    dtype: str = "float32"

    def __post_init__(self):
        _checks.one_of(self.kind, "kind", KINDS)
        _checks.positive_int(self.vocab_size, "vocab_size", minimum=4)
        _checks.positive_int(self.d_ff, "d_ff")
        _checks.positive_int(self.num_layers, "num_layers")
        if self.num_decoder_layers is not None:
            _checks.positive_int(self.num_decoder_layers, "num_decoder_layers")
        _checks.positive_int(self.max_len, "max_len")
        _checks.one_of(self.positions, "positions", ("sinusoidal", "learned"))
        _checks.one_of(self.norm, "norm", ("post", "pre"))
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        _checks.positive_float(self.norm_eps, "norm_eps")
        self.attention  # validates d_model, heads, window, implementation, dtype

    @property
    def attention(self) -> attention.Config:
        return attention.Config(d_model=self.d_model, num_heads=self.num_heads,
                                num_kv_heads=self.num_kv_heads, window=self.window,
                                implementation=self.implementation, dtype=self.dtype)

    @property
    def decoder_layers(self) -> int:
        return self.num_decoder_layers or self.num_layers


PRESETS: dict[str, Config] = {
    "tiny": Config(vocab_size=12, d_model=8, num_heads=4, d_ff=16, num_layers=1,
                   max_len=16, dropout=0.1),
    "lm_tiny": Config(kind="decoder", vocab_size=12, d_model=8, num_heads=4, d_ff=16,
                      num_layers=1, max_len=16, positions="learned", norm="pre"),
    "mlm_tiny": Config(kind="encoder", vocab_size=12, d_model=8, num_heads=4, d_ff=16,
                       num_layers=1, max_len=16, norm="pre"),
    # Vaswani et al. 2017, Table 3 "base": shared 37k BPE vocabulary, 6 + 6 layers.
    "base": Config(vocab_size=37000, d_model=512, num_heads=8, d_ff=2048, num_layers=6,
                   max_len=512, dropout=0.1),
    # GPT-2 small's shapes (Radford et al. 2019): 12 pre-norm layers of 768, 1024 positions,
    # the 50257-token vocabulary padded to 50304 (a multiple of 64) as in nanoGPT.
    "gpt2-small": Config(kind="decoder", vocab_size=50304, d_model=768, num_heads=12,
                         d_ff=3072, num_layers=12, max_len=1024, positions="learned",
                         norm="pre"),
}


def task_of(cfg: Config) -> str:
    """``"seq2seq"``, ``"masked_lm"`` or ``"lm"``: all use :func:`loss`."""
    return _TASKS[cfg.kind]


def init(key: jax.Array, cfg: Config) -> Params:
    """Embedding N(0, 1/D), LeCun-normal weights, zero biases, unit norms (float32).

    >>> p = init(jax.random.key(0), PRESETS["tiny"])
    >>> p["embed"]["tokens_vd"].shape, p["encoder"]["ffn"]["w1_ldf"].shape
    ((12, 8), (1, 8, 16))
    """
    k_emb, k_pos, k_enc, k_dec = jax.random.split(key, 4)
    d = cfg.d_model
    params = {"embed": {"tokens_vd": layers.dense_init(k_emb, (cfg.vocab_size, d), fan_in=d)}}
    if cfg.positions == "learned":
        params["embed"]["pos_pd"] = 0.02 * jax.random.normal(k_pos, (cfg.max_len, d))
    if cfg.kind != "decoder":
        params["encoder"] = _stack_init(k_enc, cfg, cfg.num_layers, cross=False)
    if cfg.kind != "encoder":
        n = cfg.decoder_layers if cfg.kind == "encoder_decoder" else cfg.num_layers
        params["decoder"] = _stack_init(k_dec, cfg, n, cross=cfg.kind == "encoder_decoder")
    if cfg.norm == "pre":
        params["final_norm"] = _norm_init((), d)
        if cfg.kind == "encoder_decoder":
            params["encoder_norm"] = _norm_init((), d)
    params["out"] = {"b_v": jnp.zeros((cfg.vocab_size,), jnp.float32)}
    return params


def param_axes(cfg: Config) -> ParamAxes:
    """Heads and the FFN's inner width over ``tensor``; the vocabulary over ``tensor``."""
    axes = {"embed": {"tokens_vd": P("vocab", "embed")}}
    if cfg.positions == "learned":
        axes["embed"]["pos_pd"] = P(None, "embed")
    if cfg.kind != "decoder":
        axes["encoder"] = _stack_axes(cross=False)
    if cfg.kind != "encoder":
        axes["decoder"] = _stack_axes(cross=cfg.kind == "encoder_decoder")
    if cfg.norm == "pre":
        axes["final_norm"] = {"scale_d": P(None), "bias_d": P(None)}
        if cfg.kind == "encoder_decoder":
            axes["encoder_norm"] = {"scale_d": P(None), "bias_d": P(None)}
    axes["out"] = {"b_v": P("vocab")}
    return axes


@auto_inside
def apply(params: Params, tokens: Int[Array, "B S"], tgt_in: Int[Array, "B T"] | None = None,
          *, cfg: Config | None = None, key: jax.Array | None = None,
          train: bool = False) -> Float[Array, "B T V"]:
    """Logits of the model: ``apply(params, src, tgt_in, cfg=cfg)`` for an encoder-decoder,
    ``apply(params, tokens, cfg=cfg)`` for the other kinds.

    Args:
        params: from :func:`init`.
        tokens: integer tokens ``[B, T]``; for an encoder-decoder, the source ``[B, S]``.
        tgt_in: an encoder-decoder's target input ``[B, T]`` (``BOS`` then the target
            shifted right); ``None`` for the other kinds.
        cfg: the model's config (keyword-only, required).
        key: dropout key (used when ``train``).
        train: apply dropout.

    Returns:
        ``[B, T, V]`` logits in ``cfg.dtype``.

    Raises:
        ValueError: ``tgt_in`` missing (or given) for the kind, ranks, an empty batch or
            sequence, a sequence longer than ``max_len``, token ids outside
            ``[0, vocab_size)`` (under ``jit``: when the program runs), ``src`` and
            ``tgt_in`` of different batch sizes, params of another config.
        TypeError: non-integer tokens, the config passed positionally.

    >>> cfg = PRESETS["tiny"]
    >>> p = init(jax.random.key(0), cfg)
    >>> apply(p, jnp.ones((2, 5), int), jnp.ones((2, 3), int), cfg=cfg).shape
    (2, 3, 12)
    """
    _check_inputs(params, tokens, tgt_in, cfg)
    params = gather_params(params, param_axes(cfg))
    keys = _split_key(key if train else None, 2)
    if cfg.kind == "encoder_decoder":
        memory, _ = _memory(params, tokens, cfg, key=keys[0])
        h, _ = _decoder(params, tgt_in, cfg, memory=memory, src_mask=tokens != PAD,
                        key=keys[1])
    elif cfg.kind == "encoder":
        h, _ = _encoder(params, tokens, cfg, key=keys[0])
    else:
        h, _ = _decoder(params, tokens, cfg, key=keys[1])
    return _logits(params, h)


def loss(params: Params, inputs: tuple, targets: Int[Array, "B T"], cfg: Config, *,
         key: jax.Array | None = None) -> jax.Array:
    """Mean token cross-entropy over non-padding targets (``targets != PAD``), float32.

    ``inputs`` is the tuple :func:`apply` takes: ``(src, tgt_in)`` or ``(tokens,)``.
    """
    enc_dec = cfg.kind == "encoder_decoder"
    inputs = _checks.inputs_tuple(inputs, "inputs", 2 if enc_dec else 1,
                                  "(src, tgt_in)" if enc_dec else "(tokens,)")
    logits = apply(params, *inputs, cfg=cfg, key=key, train=key is not None)
    return cross_entropy(logits, targets, targets != PAD)


def example_batch(key: jax.Array, cfg: Config, batch_size: int, length: int = 9):
    """A batch of the kind's task on random symbols ``3 .. V-1``.

    Encoder-decoder: copy (``src``, ``[BOS] + src[:-1]`` -> ``src``); decoder: next token;
    encoder: 15% of positions masked, targets there (``PAD`` elsewhere).
    """
    k_tok, k_mask = jax.random.split(key)
    seq = jax.random.randint(k_tok, (batch_size, length), 3, cfg.vocab_size)
    if cfg.kind == "encoder_decoder":
        tgt_in = jnp.concatenate([jnp.full((batch_size, 1), BOS), seq[:, :-1]], axis=1)
        return (seq, tgt_in), seq
    if cfg.kind == "decoder":
        return (seq[:, :-1],), seq[:, 1:]
    masked = jax.random.bernoulli(k_mask, 0.15, seq.shape).at[:, 0].set(True)
    return (jnp.where(masked, MASK, seq),), jnp.where(masked, seq, PAD)


def encode(params: Params, src: Int[Array, "B S"], cfg: Config, *, key=None,
           return_weights: bool = False):
    """The encoder's output ``memory [B, S, D]`` (after the final norm when pre-norm), and
    its self-attention weights ``[L, B, N, S, S]`` if asked (else ``None``).

    Raises:
        ValueError, TypeError: bad ``src`` or params, as in :func:`apply`.
    """
    _check_config(cfg, None, "encode")
    if cfg.kind == "decoder":
        raise ValueError("a decoder-only model has no encoder; call apply(params, tokens, "
                         "cfg=cfg)")
    _check_tokens(src, "src", cfg)
    _checks.check_params(params, init, cfg)
    return _memory(params, src, cfg, key=key, return_weights=return_weights)


def _memory(params, src, cfg, *, key=None, return_weights=False):
    # ``encode`` without the input checks (its callers have made them)
    h, w = _encode(params, src, cfg, key=key, return_weights=return_weights)
    return h, _swap_layers_and_batch(w)


@auto_inside
def _encode(params, src, cfg, *, key, return_weights):
    # ``encode`` with the weights batch-major ``[B, L, ...]``, as auto_inside splits them
    h, w = _encoder(params, src, cfg, key=key, return_weights=return_weights)
    if cfg.kind == "encoder_decoder" and cfg.norm == "pre":
        h = layers.layer_norm(h, params["encoder_norm"]["scale_d"],
                              params["encoder_norm"]["bias_d"], cfg.norm_eps)
    return h, _swap_layers_and_batch(w)


def _swap_layers_and_batch(weights):
    """Stacked attention weights ``[L, B, ...] <-> [B, L, ...]`` (``None`` stays ``None``)."""
    return jax.tree.map(lambda w: jnp.swapaxes(w, 0, 1), weights)


STACKS = ("encoder", "decoder", "cross")


def attention_maps(params: Params, tokens: Int[Array, "B S"],
                   tgt_in: Int[Array, "B T"] | None = None, *, cfg: Config | None = None,
                   stack: str | None = None) -> Float[Array, "L B N T S"]:
    """Every layer's and head's attention weights ``[L, B, N, T, S]``, through the explicit
    path: ``softmax(q kᵀ/√H + M)`` of each layer, stacked over layers.

    Call as ``attention_maps(params, tokens, cfg=cfg)`` (encoder or decoder models) or
    ``attention_maps(params, src, tgt_in, cfg=cfg, stack=...)`` (encoder-decoder). ``stack`` picks
    the attention: ``"encoder"`` (self-attention over the source, ``T = S``), ``"decoder"``
    (causal self-attention over the target) or ``"cross"`` (target over source). It defaults
    to the model's own self-attention; an encoder-decoder must name it.

    >>> cfg = PRESETS["lm_tiny"]
    >>> attention_maps(init(jax.random.key(0), cfg), jnp.ones((2, 5), int), cfg=cfg).shape
    (1, 2, 4, 5, 5)

    Raises:
        ValueError: for an unknown ``stack``, one the model does not have, or none given for
            an encoder-decoder; bad inputs as in :func:`apply`.
    """
    _check_config(cfg, tgt_in, "attention_maps")
    if stack is None and cfg.kind not in ("encoder", "decoder"):
        raise ValueError(f"an encoder-decoder has three kinds of attention: pass stack= one "
                         f"of {STACKS}")
    stack = stack or cfg.kind
    has = {"encoder": ("encoder",), "decoder": ("decoder",)}.get(cfg.kind, STACKS)
    if stack not in has:
        raise ValueError(f"stack must be one of {has} for a model of kind {cfg.kind!r}, "
                         f"got {stack!r}")
    _check_inputs(params, tokens, tgt_in, cfg)
    return _swap_layers_and_batch(_attention_maps(params, tokens, tgt_in, cfg=cfg, stack=stack))


@auto_inside
def _attention_maps(params, tokens, tgt_in, *, cfg, stack):
    # ``attention_maps`` batch-major ``[B, L, N, T, S]``, as auto_inside splits them
    return _swap_layers_and_batch(_layer_major_maps(params, tokens, tgt_in, cfg, stack))


def _layer_major_maps(params, tokens, tgt_in, cfg, stack):
    params = gather_params(params, param_axes(cfg))
    if cfg.kind == "decoder":
        return _decoder(params, tokens, cfg, return_weights=True)[1][0]
    memory, enc_w = _memory(params, tokens, cfg, return_weights=True)
    if stack == "encoder":
        return enc_w
    _, (self_w, cross_w) = _decoder(params, tgt_in, cfg, memory=memory,
                                    src_mask=tokens != PAD, return_weights=True)
    return self_w if stack == "decoder" else cross_w


def positional_encoding(length: int, d: int) -> np.ndarray:
    """The sinusoidal table ``[length, D]`` (float32, NumPy).

    >>> positional_encoding(2, 4).astype(float).round(3).tolist()
    [[0.0, 1.0, 0.0, 1.0], [0.841, 0.54, 0.01, 1.0]]
    """
    pos = np.arange(length)[:, None]
    i = np.arange((d + 1) // 2)[None, :]
    angle = pos / np.power(10000.0, 2 * i / d)
    table = np.zeros((length, 2 * angle.shape[1]))
    table[:, 0::2], table[:, 1::2] = np.sin(angle), np.cos(angle)
    return table[:, :d].astype(np.float32)


# --- layers ----------------------------------------------------------------------------------

def encoder_layer(p: Params, h: Float[Array, "B S D"], cfg: Config, *, mask=None, key=None,
                  return_weights: bool = False):
    """One encoder layer (``p``: one slice of the stacked ``encoder`` params): self-attention
    then the FFN, each a residual sub-layer. Returns ``(h, weights or None)``.

    ``mask`` is boolean, broadcastable to ``[B, N, S, S]`` (``True`` = may attend).
    """
    k1, k2 = _split_key(key, 2)
    self_attn = _self_attention(p["self_attn"], cfg, mask=mask, causal=False,
                                return_weights=return_weights)
    h, w = _residual_aux(h, self_attn, p["norm1"], cfg, k1)
    h = _residual(h, lambda u: _ffn(p["ffn"], u), p["norm3"], cfg, k2)
    return h, w


def decoder_layer(p: Params, h: Float[Array, "B T D"], cfg: Config, *, memory=None,
                  src_mask=None, key=None, return_weights: bool = False):
    """One decoder layer: causal self-attention, cross-attention to ``memory [B, S, D]``
    (skipped when ``None``) except where ``src_mask [B, S]`` is False, then the FFN.
    Returns ``(h, (self_weights, cross_weights))`` (``None`` unless ``return_weights``)."""
    k1, k2, k3 = _split_key(key, 3)
    acfg = cfg.attention
    self_attn = _self_attention(p["self_attn"], cfg, mask=None, causal=True,
                                return_weights=return_weights)
    h, w_self = _residual_aux(h, self_attn, p["norm1"], cfg, k1)
    w_cross = None
    if memory is not None:
        cross_mask = None if src_mask is None else src_mask[:, None, None, :]

        def cross_attn(u):
            q = attention.project_q(p["cross_attn"], u)
            kk, vv = attention.project_kv(p["cross_attn"], memory)
            o, w = attention.attend(q, kk, vv, mask=cross_mask,
                                    implementation=acfg.implementation,
                                    return_weights=return_weights)
            return attention.project_out(p["cross_attn"], o), w
        h, w_cross = _residual_aux(h, cross_attn, p["norm2"], cfg, k2)
    h = _residual(h, lambda u: _ffn(p["ffn"], u), p["norm3"], cfg, k3)
    return h, (w_self, w_cross)


# --- private pieces ---------------------------------------------------------------------------

def _encoder(params, tokens, cfg, *, key=None, return_weights=False):
    x = _dropout(_embed(params, tokens, cfg), cfg, _fold(key, 0))
    mask = (tokens != PAD)[:, None, None, :]

    def layer(h, xs):
        p, k = xs
        h, w = encoder_layer(p, h, cfg, mask=mask, key=k, return_weights=return_weights)
        return constrain(h, ("batch", "seq", "embed")), w

    h, w = jax.lax.scan(layer, x, (params["encoder"], _layer_keys(key, cfg.num_layers)))
    if cfg.kind == "encoder":
        h = _final_norm(params, h, cfg)
    return h, w


def _decoder(params, tokens, cfg, *, memory=None, src_mask=None, key=None,
             return_weights=False):
    x = _dropout(_embed(params, tokens, cfg), cfg, _fold(key, 0))
    n_layers = params["decoder"]["ffn"]["w1_ldf"].shape[0]

    def layer(h, xs):
        p, k = xs
        h, w = decoder_layer(p, h, cfg, memory=memory, src_mask=src_mask, key=k,
                             return_weights=return_weights)
        return constrain(h, ("batch", "seq", "embed")), w

    h, w = jax.lax.scan(layer, x, (params["decoder"], _layer_keys(key, n_layers)))
    return _final_norm(params, h, cfg), w


def _self_attention(p, cfg, *, mask, causal, return_weights):
    """The self-attention sub-layer ``u -> (out, weights or None)`` of one layer."""
    acfg = cfg.attention

    def self_attn(u):
        q = attention.project_q(p, u)
        kk, vv = attention.project_kv(p, u)
        o, w = attention.attend(q, kk, vv, mask=mask, causal=causal, window=acfg.window,
                                implementation=acfg.implementation,
                                return_weights=return_weights)
        return attention.project_out(p, o), w
    return self_attn


def _attend_kv(p, u, k, v, mask):
    q = attention.project_q(p, u)
    o, _ = attention.attend(q, k, v, mask=mask, return_weights=True)
    return attention.project_out(p, o)


def _residual_aux(x, f, norm, cfg, key=None):
    """A residual sub-layer whose function also returns something (weights, new cache)."""
    if cfg.norm == "pre":
        y, aux = f(layers.layer_norm(x, norm["scale_ld"], norm["bias_ld"], cfg.norm_eps))
        return x + _dropout(y, cfg, key), aux
    y, aux = f(x)
    return layers.layer_norm(x + _dropout(y, cfg, key), norm["scale_ld"], norm["bias_ld"],
                             cfg.norm_eps), aux


def _residual(x, f, norm, cfg, key=None):
    return _residual_aux(x, lambda u: (f(u), None), norm, cfg, key)[0]


def _ffn(p, x):
    h = jax.nn.relu(x @ p["w1_ldf"].astype(x.dtype) + p["b1_lf"].astype(x.dtype))
    return h @ p["w2_lfd"].astype(x.dtype) + p["b2_ld"].astype(x.dtype)


def _embed(params, tokens, cfg, offset=0):
    """``E[tokens]·√D + PE[offset : offset + T]``."""
    table = params["embed"]["tokens_vd"].astype(cfg.dtype)
    x = jnp.take(table, tokens, axis=0) * jnp.asarray(math.sqrt(cfg.d_model), cfg.dtype)
    t = tokens.shape[1]
    if cfg.positions == "learned":
        pos = jax.lax.dynamic_slice_in_dim(params["embed"]["pos_pd"], offset, t)
    else:
        pos = jax.lax.dynamic_slice_in_dim(
            jnp.asarray(positional_encoding(cfg.max_len, cfg.d_model)), offset, t)
    return constrain(x + pos.astype(cfg.dtype), ("batch", "seq", "embed"))


def _logits(params, h):
    table = params["embed"]["tokens_vd"].astype(h.dtype)
    return jnp.einsum("BTD,VD->BTV", h, table) + params["out"]["b_v"].astype(h.dtype)


def _final_norm(params, h, cfg):
    if cfg.norm != "pre":
        return h
    return layers.layer_norm(h, params["final_norm"]["scale_d"],
                             params["final_norm"]["bias_d"], cfg.norm_eps)


def _dropout(x, cfg, key):
    if key is None or cfg.dropout == 0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - cfg.dropout, x.shape)
    return jnp.where(keep, x / (1.0 - cfg.dropout), 0).astype(x.dtype)


def _split_key(key, n):
    return (None,) * n if key is None else tuple(jax.random.split(key, n))


def _fold(key, i):
    return None if key is None else jax.random.fold_in(key, i)


def _layer_keys(key, n):
    return None if key is None else jax.random.split(jax.random.fold_in(key, 1), n)


def _check_config(cfg, tgt_in, where):
    if isinstance(cfg, Config):
        return
    if isinstance(tgt_in, Config):
        raise TypeError(f"{where}: cfg is keyword-only: call {where}(params, tokens, cfg=cfg), "
                        f"or {where}(params, src, tgt_in, cfg=cfg) for an encoder-decoder")
    raise TypeError(f"{where}: cfg must be a zoo.transformer.Config, got "
                    f"{type(cfg).__name__}")


def _check_inputs(params, tokens, tgt_in, cfg):
    """The checks of :func:`apply`'s inputs (shared with :func:`attention_maps`)."""
    _check_config(cfg, tgt_in, "apply")
    enc_dec = cfg.kind == "encoder_decoder"
    if enc_dec and tgt_in is None:
        raise ValueError("an encoder_decoder takes two token arrays, src [B, S] and tgt_in "
                         "[B, T] (the target input); tgt_in is missing")
    if not enc_dec and tgt_in is not None:
        raise ValueError(f"a {cfg.kind} takes one token array, tokens [B, T]; got tgt_in too")
    _check_tokens(tokens, "src" if enc_dec else "tokens", cfg)
    if enc_dec:
        _check_tokens(tgt_in, "tgt_in", cfg)
        _checks.same_batch(src=tokens, tgt_in=tgt_in)
    _checks.check_params(params, init, cfg)


def _check_tokens(x, name, cfg):
    _checks.check_array(x, name, rank=2, letters="B T", kind="int", nonempty=True)
    if x.shape[1] > cfg.max_len:
        raise ValueError(f"{name} has {x.shape[1]} positions, more than the positional table "
                         f"holds (max_len={cfg.max_len})")
    _checks.in_range(x, name, 0, cfg.vocab_size - 1, what="token ids",
                     hint=f"The vocabulary has vocab_size={cfg.vocab_size} ids.")


def _norm_init(leading, d):
    suffix = "_ld" if leading else "_d"
    return {"scale" + suffix: jnp.ones(leading + (d,), jnp.float32),
            "bias" + suffix: jnp.zeros(leading + (d,), jnp.float32)}


def _stack_init(key, cfg, n, *, cross):
    d, f = cfg.d_model, cfg.d_ff
    acfg = cfg.attention
    k_self, k_cross, k1, k2 = jax.random.split(key, 4)
    proj = lambda k: attention._proj_init(k, d, acfg.num_heads, acfg.kv_heads, acfg.head_size,
                                          leading=(n,))
    stack = {
        "self_attn": proj(k_self),
        "ffn": {"w1_ldf": layers.dense_init(k1, (n, d, f), fan_in=d),
                "b1_lf": jnp.zeros((n, f), jnp.float32),
                "w2_lfd": layers.dense_init(k2, (n, f, d), fan_in=f),
                "b2_ld": jnp.zeros((n, d), jnp.float32)},
        "norm1": _norm_init((n,), d),
        "norm3": _norm_init((n,), d),
    }
    if cross:
        stack["cross_attn"] = proj(k_cross)
        stack["norm2"] = _norm_init((n,), d)
    return stack


def _stack_axes(*, cross):
    norm = {"scale_ld": P("layers", None), "bias_ld": P("layers", None)}
    axes = {
        "self_attn": attention._proj_axes(leading=("layers",)),
        "ffn": {"w1_ldf": P("layers", "embed", "mlp"), "b1_lf": P("layers", "mlp"),
                "w2_lfd": P("layers", "mlp", "embed"), "b2_ld": P("layers", None)},
        "norm1": dict(norm), "norm3": dict(norm),
    }
    if cross:
        axes["cross_attn"] = attention._proj_axes(leading=("layers",))
        axes["norm2"] = dict(norm)
    return axes

