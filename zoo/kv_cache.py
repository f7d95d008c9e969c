"""Incremental decoding of :mod:`zoo.transformer`'s decoders with a key/value cache: one
token per call, each layer's keys and values kept from the earlier positions.

At position ``t`` a decoder layer attends with the new query to the cached keys ``k_{≤t}``
(within ``cfg.window`` when the model is windowed) and appends its own::

    K_t = [K_{t−1}; x_t W_K],   V_t = [V_{t−1}; x_t W_V],   o_t = softmax(q_t K_tᵀ/√H) V_t

so a step costs ``O(S·D)`` per layer instead of the full pass's ``O(S²·D)``, and its logits
equal the full forward pass's at that position (tested). An encoder-decoder encodes the source
once into the cache's cross-attention keys and values.

Shape letters as in :mod:`zoo.transformer`.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from zoo import _checks, attention
from zoo.sharding import auto_inside, gather_params, vary_together
from zoo.transformer import (BOS, PAD, PRESETS, Config, _attend_kv, _check_config,
                             _check_tokens, _embed, _ffn, _final_norm, _logits, _memory,
                             _residual, _residual_aux, init, param_axes)
from zoo.types import Params


class KVCache(NamedTuple):
    """Decoder state carried between :func:`decode_step` calls (returned, never mutated).

    Attributes:
        k, v: self-attention keys and values ``[L, B, S, K, H]`` (``S``: the cache's length).
        index: positions filled so far (int32 scalar): the next token's position.
        memory_k, memory_v: cross-attention keys and values ``[L, B, S, K, H]``
            (encoder-decoder), else ``None``.
        memory_mask: ``[B, S]`` source padding (encoder-decoder), else ``None``.
    """
    k: jax.Array
    v: jax.Array
    index: jax.Array
    memory_k: jax.Array | None = None
    memory_v: jax.Array | None = None
    memory_mask: jax.Array | None = None


def init_cache(params: Params, cfg: Config, batch_size: int, max_len: int, *,
               src: Int[Array, "B S"] | None = None) -> KVCache:
    """An empty cache for ``max_len`` positions; an encoder-decoder also encodes ``src``.

    Raises:
        ValueError: if ``max_len`` exceeds ``cfg.max_len``, the kind is ``encoder``, ``src``
            is missing (or given) for the kind, its batch is not ``batch_size``, or it is bad
            input as in :func:`zoo.transformer.apply`.
    """
    _check_config(cfg, None, "init_cache")
    if cfg.kind == "encoder":
        raise ValueError("an encoder-only model has no incremental decoding")
    _checks.positive_int(batch_size, "batch_size")
    _checks.positive_int(max_len, "max_len")
    if max_len > cfg.max_len:
        raise ValueError(f"max_len {max_len} exceeds the positional table (cfg.max_len="
                         f"{cfg.max_len})")
    if (src is None) == (cfg.kind == "encoder_decoder"):
        raise ValueError(f"src must be given exactly for an encoder_decoder, kind={cfg.kind!r}")
    if src is not None:
        _check_tokens(src, "src", cfg)
        if src.shape[0] != batch_size:
            raise ValueError(f"src must have batch_size={batch_size} rows, got shape "
                             f"{_checks.shape_str(src.shape)}")
    _checks.check_params(params, init, cfg)
    return _init_cache(params, cfg, batch_size, max_len, src)


def _init_cache(params, cfg, batch_size, max_len, src):
    n_layers = params["decoder"]["ffn"]["w1_ldf"].shape[0]
    shape = (n_layers, batch_size, max_len, cfg.attention.kv_heads, cfg.attention.head_size)
    zeros = jnp.zeros(shape, cfg.dtype)
    cache = KVCache(zeros, zeros, jnp.zeros((), jnp.int32))
    if src is None:
        return cache
    params = gather_params(params, param_axes(cfg))
    memory, _ = _memory(params, src, cfg)
    mk, mv = jax.vmap(attention.project_kv, in_axes=(0, None))(
        params["decoder"]["cross_attn"], memory)
    return cache._replace(memory_k=mk, memory_v=mv, memory_mask=src != PAD)


def decode_step(params: Params, cache: KVCache, token: Int[Array, "B"],
                cfg: Config) -> tuple[Float[Array, "B V"], KVCache]:
    """Feeds one token per sequence at position ``cache.index``; returns its logits and the
    cache with that position's keys and values written in.

    Equal to the full forward pass's logits at that position (tested).

    >>> cfg = PRESETS["lm_tiny"]
    >>> p = init(jax.random.key(0), cfg)
    >>> logits, cache = decode_step(p, init_cache(p, cfg, 2, 6), jnp.array([3, 4]), cfg)
    >>> logits.shape, int(cache.index)
    ((2, 12), 1)

    Raises:
        ValueError: ``token`` not ``[B]`` for the cache's batch, ids outside
            ``[0, vocab_size)``, a full cache (``cache.index`` at its length), params of
            another config; under ``jit`` the value checks fail the call when it runs.
        TypeError: ``cache`` not a :class:`KVCache`, ``token`` not integers.
    """
    _check_config(cfg, None, "decode_step")
    if not isinstance(cache, KVCache):
        raise TypeError(f"cache must be a KVCache from init_cache, got {type(cache).__name__}")
    b, m = cache.k.shape[1], cache.k.shape[2]
    _checks.check_array(token, "token", rank=1, letters="B", kind="int", nonempty=True)
    if token.shape[0] != b:
        raise ValueError(f"token has shape {_checks.shape_str(token.shape)} but the cache was "
                         f"made for batch_size={b} (cache.k has shape "
                         f"{_checks.shape_str(cache.k.shape)} [L B S K H])")
    _checks.in_range(token, "token", 0, cfg.vocab_size - 1, what="token ids",
                     hint=f"The vocabulary has vocab_size={cfg.vocab_size} ids.")
    _checks.less_than(cache.index, "cache.index", m,
                      hint=f"The cache holds max_len={m} positions and all are filled: make "
                           f"a longer one with init_cache(..., max_len=).")
    _checks.check_params(params, init, cfg)
    return _decode_step(params, cache, token, cfg)


def _decode_step(params, cache, token, cfg):
    params = gather_params(params, param_axes(cfg))
    t = cache.index
    x = _embed(params, token[:, None], cfg, offset=t)                     # B 1 D
    m = cache.k.shape[2]
    pos = jnp.arange(m)
    seen = pos <= t
    if cfg.window is not None:
        seen &= pos >= t - cfg.window
    self_mask = seen[None, None, None, :]
    cross = cache.memory_k is not None
    cross_mask = cache.memory_mask[:, None, None, :] if cross else None

    def layer(h, xs):
        p, k_l, v_l, mk, mv = xs
        def self_attn(u):
            q = attention.project_q(p["self_attn"], u)
            k_new, v_new = attention.project_kv(p["self_attn"], u)
            k_c = jax.lax.dynamic_update_slice_in_dim(k_l, k_new.astype(k_l.dtype), t, 1)
            v_c = jax.lax.dynamic_update_slice_in_dim(v_l, v_new.astype(v_l.dtype), t, 1)
            o, _ = attention.attend(q, k_c, v_c, mask=self_mask, return_weights=True)
            return attention.project_out(p["self_attn"], o), (k_c, v_c)
        h, kv = _residual_aux(h, self_attn, p["norm1"], cfg)
        if cross:
            h = _residual(h, lambda u: _attend_kv(p["cross_attn"], u, mk, mv, cross_mask),
                          p["norm2"], cfg)
        h = _residual(h, lambda u: _ffn(p["ffn"], u), p["norm3"], cfg)
        return h, kv

    xs = (params["decoder"], cache.k, cache.v, cache.memory_k, cache.memory_v)
    h, (k_new, v_new) = jax.lax.scan(layer, x, xs)
    logits = _logits(params, _final_norm(params, h, cfg))[:, 0]
    return logits, cache._replace(k=k_new, v=v_new, index=t + 1)


@auto_inside
def greedy_decode(params: Params, src: Int[Array, "B S"], cfg: Config,
                  length: int) -> Int[Array, "B T"]:
    """Greedy decoding of ``length`` tokens with the KV cache: an encoder-decoder reads
    ``src``; a decoder continues the prompt ``src`` (fed token by token).

    Raises:
        ValueError: ``length`` not an int >= 1, or prompt and ``length`` together longer
            than ``cfg.max_len``; bad ``src`` or params as in :func:`zoo.transformer.apply`.

    >>> cfg = PRESETS["tiny"]
    >>> greedy_decode(init(jax.random.key(0), cfg), jnp.full((2, 4), 5), cfg, 3).shape
    (2, 3)
    """
    _check_config(cfg, None, "greedy_decode")
    if cfg.kind == "encoder":
        raise ValueError("an encoder-only model has no incremental decoding")
    _checks.positive_int(length, "length")
    _check_tokens(src, "src", cfg)
    enc_dec = cfg.kind == "encoder_decoder"
    prompt = jnp.full((src.shape[0], 1), BOS) if enc_dec else src
    positions = prompt.shape[1] + length - 1
    if positions > cfg.max_len:
        raise ValueError(f"length={length} after a prompt of {prompt.shape[1]} token(s) needs "
                         f"{positions} positions, more than the positional table holds "
                         f"(cfg.max_len={cfg.max_len})")
    _checks.check_params(params, init, cfg)
    cache = _init_cache(params, cfg, src.shape[0], positions, src if enc_dec else None)
    for t in range(prompt.shape[1] - 1):
        _, cache = _decode_step(params, cache, prompt[:, t], cfg)

    def step(carry, _):
        token, cache = carry
        logits, cache = _decode_step(params, cache, token, cfg)
        nxt = jnp.argmax(logits, -1).astype(token.dtype)
        return (nxt, cache), nxt
    start, _ = vary_together((prompt[:, -1], cache), src)
    _, out = jax.lax.scan(step, start, None, length=length)
    return out.T


__all__ = ["KVCache", "init_cache", "decode_step", "greedy_decode"]
