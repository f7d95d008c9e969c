"""Attention: scaled dot-product, multi-head (self and cross, grouped key/value heads) and
self-attention restricted to a window, blocked so that it costs O(R·n·D).

Scaled dot-product attention of queries ``q`` against keys ``k`` and values ``v``::

    Attention(Q, K, V) = softmax(Q Kᵀ / √H + M) V

where ``M`` is 0 where the mask allows a query to see a key and −∞ (in practice
``finfo(float32).min``) elsewhere. A query that no key may see gets a zero output (and zero
gradients), never NaN. Multi-head attention projects the inputs ``N`` times::

    head_i = Attention(X W_q^i, C W_k^{g(i)}, C W_v^{g(i)}),   MHA = concat(head_1..head_N) W_o

with ``C = X`` for self-attention and the context for cross-attention; ``g(i) = i // Q`` maps
query heads to ``K = N / Q`` key/value heads (grouped-query attention; ``K = N`` is the
classic layer). Restricted self-attention lets position ``t`` see only ``|t − s| <= R`` (and
``s <= t`` when causal); :func:`local_attention` cuts the sequence into blocks of ``R``
positions and lets each block attend to itself and its neighbours, so the scores take
``3·n·R`` memory and ``O(R·n·H)`` FLOPs per head instead of ``n²``, in one pass.

Paths, all giving the same numbers (tested):

* :func:`dot_product_attention`: explicit, returns the weights ``[B, N, T, S]`` too (maps,
  contact prediction).
* :func:`fused_attention`: ``jax.nn.dot_product_attention`` with ``implementation`` ``"xla"``
  or ``"cudnn"``.
* :func:`local_attention`: the blocked window.
* device-tuned kernels in :mod:`zoo.kernels`: blocked flash-style attention and tiled local
  attention for CPU caches (``attention_chunked``, ``attention_local``), and the window as one
  causal cuDNN call (``attention_window_cudnn``).

``Config.implementation`` picks the path by the platform the program is lowered for
(:func:`zoo.kernels.by_platform`): ``"auto"`` takes the CPU kernels where lowered for a CPU
(measured faster there), cuDNN on a GPU where its arguments allow (16-bit dtype, head dim a
multiple of 8 up to 128, no explicit mask; measured at 600+ TFLOP/s on an H200) and
otherwise XLA's fused attention (in blocks of queries,
:mod:`zoo.kernels.attention_query_blocks`, where its scores would not fit in memory at once),
or :func:`local_attention` for a window; ``"xla"`` forces
the plain paths, ``"cudnn"`` cuDNN (a GPU, also for a window), ``"chunked"`` the CPU kernels,
``"splash"`` the Pallas TPU splash kernels (a TPU; self-attention with at most a key-padding
mask). No TPU has been measured, so ``"auto"`` keeps the plain paths there.
The CPU kernels have their own backward passes, so they support reverse-mode
differentiation only; use ``"xla"`` for forward-mode (``jax.jvp``).

Shape letters: ``B`` batch, ``T`` query positions, ``S`` key positions, ``D`` model width,
``N`` query heads, ``K`` key/value heads, ``Q = N/K`` query heads per key/value head, ``H``
head dim, ``R`` window, ``J`` blocks.

References:
    A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    https://arxiv.org/abs/1706.03762
    J. Ainslie et al., "GQA: Training Generalized Multi-Query Transformer Models from
    Multi-Head Checkpoints", 2023. https://arxiv.org/abs/2305.13245
    I. Beltagy, M. Peters, A. Cohan, "Longformer: The Long-Document Transformer", 2020.
    https://arxiv.org/abs/2004.05150
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Bool, Float

from zoo import _checks, layers
from zoo.kernels import (attention_chunked, attention_local, attention_query_blocks,
                         attention_window_cudnn, by_platform, has_platform, splash)
from zoo.layers import masked_softmax as _masked_softmax, score_dtype as _acc
from zoo.sharding import auto_inside, constrain, gather_params
from zoo.types import ParamAxes, Params

TASK = "regression"
IMPLEMENTATIONS = ("auto", "xla", "cudnn", "chunked", "splash")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Multi-head attention hyper-parameters.

    Attributes:
        d_model: model width ``D`` (input and output features).
        num_heads: query heads ``N``; must divide ``d_model`` unless ``head_dim`` is given.
        num_kv_heads: key/value heads ``K`` (default ``N``); must divide ``num_heads``.
        head_dim: ``H`` (default ``d_model // num_heads``).
        causal: self-attention sees no later position.
        window: restrict self-attention to ``|t − s| <= window`` (``None``: full).
        implementation: ``"auto"``, ``"xla"``, ``"cudnn"`` or ``"chunked"`` (module doc).
        dtype: computation dtype (params stay float32; scores and softmax run in float32).
    """
    d_model: int
    num_heads: int
    num_kv_heads: int | None = None
    head_dim: int | None = None
    causal: bool = False
    window: int | None = None
    implementation: str = "auto"
    dtype: str = "float32"

    def __post_init__(self):
        _checks.positive_int(self.d_model, "d_model")
        _checks.positive_int(self.num_heads, "num_heads")
        if self.head_dim is None and self.d_model % self.num_heads:
            raise ValueError(f"d_model must be divisible by num_heads, got d_model="
                             f"{self.d_model}, num_heads={self.num_heads}")
        if self.head_dim is not None:
            _checks.positive_int(self.head_dim, "head_dim")
        if self.num_kv_heads is not None:
            _checks.positive_int(self.num_kv_heads, "num_kv_heads")
            if self.num_heads % self.num_kv_heads:
                raise ValueError(f"num_kv_heads must divide num_heads, got num_kv_heads="
                                 f"{self.num_kv_heads}, num_heads={self.num_heads}")
        _checks.boolean(self.causal, "causal")
        if self.window is not None:
            _checks.positive_int(self.window, "window")
        _checks.one_of(self.implementation, "implementation", IMPLEMENTATIONS)
        _checks.dtype_name(self.dtype)

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def head_size(self) -> int:
        return self.head_dim or self.d_model // self.num_heads


PRESETS: dict[str, Config] = {
    "tiny": Config(d_model=8, num_heads=4),
    "local": Config(d_model=8, num_heads=4, window=2, causal=True),
}


def init(key: jax.Array, cfg: Config) -> Params:
    """LeCun-normal projections, zero biases (float32).

    >>> p = init(jax.random.key(0), PRESETS["tiny"])
    >>> p["w_q_dnh"].shape, p["w_o_nhd"].shape
    ((8, 4, 2), (4, 2, 8))
    """
    return _proj_init(key, cfg.d_model, cfg.num_heads, cfg.kv_heads, cfg.head_size)


def param_axes(cfg: Config) -> ParamAxes:
    """Heads split over ``tensor`` (Megatron: column-parallel Q/K/V, row-parallel output)."""
    return _proj_axes()


@auto_inside
def apply(params: Params, x: Float[Array, "B T D"], cfg: Config, *,
          context: Float[Array, "B S D"] | None = None,
          mask: Bool[Array, "B N T S"] | None = None, key=None,
          train: bool = False) -> Float[Array, "B T D"]:
    """Multi-head attention of ``x`` over itself (or over ``context``).

    Args:
        params: from :func:`init`.
        x: queries' inputs ``[B, T, D]``.
        cfg: the layer's config.
        context: keys' and values' inputs ``[B, S, D]`` (cross-attention); default ``x``.
        mask: boolean, ``True`` where a query may see a key: ``[B, S]`` (key padding) or
            rank 4 broadcastable to ``[B, N, T, S]``.
        key, train: unused (no dropout here); accepted for the contract.

    Returns:
        ``[B, T, D]`` in ``cfg.dtype``.

    Raises:
        ValueError: wrong shapes or ranks, or a window with cross-attention.
        TypeError: non-float inputs or a non-boolean mask.

    >>> cfg = PRESETS["tiny"]
    >>> apply(init(jax.random.key(0), cfg), jnp.ones((2, 5, 8)), cfg).shape
    (2, 5, 8)
    """
    out, _ = _mha(params, x, cfg, context=context, mask=mask, return_weights=False)
    return out


@auto_inside
def attention_weights_of(params: Params, x: Float[Array, "B T D"], cfg: Config, *,
                         context=None, mask=None) -> tuple[Array, Array]:
    """Like :func:`apply` through the explicit path, also returning weights ``[B, N, T, S]``.

    >>> cfg = PRESETS["tiny"]
    >>> y, w = attention_weights_of(init(jax.random.key(0), cfg), jnp.ones((2, 5, 8)), cfg)
    >>> w.shape
    (2, 4, 5, 5)
    """
    return _mha(params, x, cfg, context=context, mask=mask, return_weights=True)


def example_batch(key: jax.Array, cfg: Config, batch_size: int):
    """Random inputs ``[B, 7, D]`` and random regression targets of the same shape."""
    kx, ky = jax.random.split(key)
    shape = (batch_size, 7, cfg.d_model)
    return (jax.random.normal(kx, shape),), jax.random.normal(ky, shape)


# --- attention cores ---------------------------------------------------------------------------

def dot_product_attention(q: Float[Array, "B T N H"], k: Float[Array, "B S K H"],
                          v: Float[Array, "B S K H"], *, mask=None, causal: bool = False
                          ) -> tuple[Float[Array, "B T N H"], Float[Array, "B N T S"]]:
    """Explicit scaled dot-product attention, returning the output and the weights.

    ``softmax(q kᵀ/√H + M) v``, scores and softmax in float32; fully masked rows give zeros.

    Args:
        q: queries ``[B, T, N, H]``.
        k, v: keys and values ``[B, S, K, H]`` with ``K`` dividing ``N``.
        mask: boolean, broadcastable to ``[B, N, T, S]`` (``True`` = may attend).
        causal: also mask ``s > t``.

    Returns:
        ``(out [B, T, N, H], weights [B, N, T, S] float32)``.

    >>> q = jnp.ones((1, 3, 2, 4))
    >>> out, w = dot_product_attention(q, q, q, causal=True)
    >>> w[0, 0].tolist()
    [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.3333333432674408, 0.3333333432674408, 0.3333333432674408]]
    """
    _check_heads(q, k, v)
    groups = q.shape[2] // k.shape[2]
    k, v = jnp.repeat(k, groups, axis=2), jnp.repeat(v, groups, axis=2)
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = jnp.einsum("BTNH,BSNH->BNTS", q, k, preferred_element_type=_acc(q)) * scale
    valid = _valid(mask, causal, q.shape[1], k.shape[1])
    w = _masked_softmax(s, valid)
    out = jnp.einsum("BNTS,BSNH->BTNH", w.astype(v.dtype), v)
    return out, w


def fused_attention(q, k, v, *, mask=None, causal: bool = False,
                    implementation: str = "xla") -> Float[Array, "B T N H"]:
    """``jax.nn.dot_product_attention`` with the zoo's convention for fully masked rows (zero).

    >>> q = jnp.ones((1, 3, 2, 4))
    >>> fused_attention(q, q, q, causal=True).shape
    (1, 3, 2, 4)
    """
    out = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=causal,
                                       implementation=implementation)
    if mask is None:
        return out
    seen = jnp.broadcast_to(_valid(mask, causal, q.shape[1], k.shape[1]).any(-1),
                            (q.shape[0], q.shape[2], q.shape[1]))
    return out * seen.transpose(0, 2, 1)[..., None].astype(out.dtype)


def local_attention(q: Float[Array, "B T N H"], k: Float[Array, "B T K H"],
                    v: Float[Array, "B T K H"], *, window: int, causal: bool = False,
                    key_mask: Bool[Array, "B T"] | None = None) -> Float[Array, "B T N H"]:
    """Self-attention restricted to ``|t − s| <= window`` (and ``s <= t`` if causal), blocked.

    The sequence (padded to ``J·R`` positions) is cut into ``J`` blocks of ``R = window``
    positions; block ``j`` attends to blocks ``j − 1, j, j + 1``, which hold every key within
    ``R`` of its queries, so the scores are ``[B, J, N, R, 3R]``: memory and FLOPs grow
    linearly in ``n`` for a fixed window, in one pass with no loop.

    Args:
        q, k, v: ``[B, T, N, H]`` and ``[B, T, K, H]`` (self-attention: same length).
        window: ``R >= 1``.
        causal: also mask later positions.
        key_mask: ``[B, T]`` boolean key padding (``True`` = real position).

    Raises:
        ValueError: if ``window < 1`` or the lengths differ.

    >>> q = jax.random.normal(jax.random.key(0), (1, 40, 2, 4))
    >>> local_attention(q, q, q, window=3).shape
    (1, 40, 2, 4)
    """
    _checks.positive_int(window, "window")
    _check_heads(q, k, v)
    if k.shape[1] != q.shape[1]:
        raise ValueError(f"local_attention is self-attention: q has {q.shape[1]} positions, "
                         f"k has {k.shape[1]}")
    b, t, n, h = q.shape
    kh, r = k.shape[2], window
    j = -(-t // r)
    valid = jnp.ones((b, t), bool) if key_mask is None else key_mask
    pad = lambda x, front, back: jnp.pad(x, ((0, 0), (front, back)) + ((0, 0),) * (x.ndim - 2))
    qb = pad(q, 0, j * r - t).reshape(b, j, r, kh, n // kh, h)            # [B, J, R, K, Q, H]
    # keys of blocks j − 1, j, j + 1 for each block j: [B, J, 3R, ..]
    neighbours = lambda x: jnp.concatenate(
        [pad(x, r, j * r - t + r)[:, i * r:(i + j) * r].reshape((b, j, r) + x.shape[2:])
         for i in range(3)], axis=2)
    kn, vn, mn = neighbours(k), neighbours(v), neighbours(valid)
    offset = jnp.arange(3 * r)[None, :] - r - jnp.arange(r)[:, None]     # s − t, [R, 3R]
    band = (jnp.abs(offset) <= r) & ((offset <= 0) if causal else True)
    s = jnp.einsum("BJtKQH,BJuKH->BJKQtu", qb, kn, preferred_element_type=_acc(q))
    w = _masked_softmax(s / math.sqrt(h), band & mn[:, :, None, None, None, :])
    out = jnp.einsum("BJKQtu,BJuKH->BJtKQH", w.astype(v.dtype), vn)
    return out.reshape(b, j * r, n, h)[:, :t]


def band_mask(t: int, window: int, causal: bool = False) -> Bool[Array, "T T"]:
    """The ``[T, T]`` mask ``|t − s| <= window`` (and ``s <= t``): local attention's meaning.

    >>> band_mask(3, 1).astype(int).tolist()
    [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    """
    i, j = jnp.arange(t)[:, None], jnp.arange(t)[None, :]
    m = jnp.abs(i - j) <= window
    return m & (j <= i) if causal else m


def check_mask(mask, name: str, batch: int, heads: int, t: int, s: int):
    """Validates a boolean mask and returns it as rank 4, broadcastable to ``[B, N, T, S]``.

    Accepts ``[B, S]`` (key padding) or rank 4 with each axis 1 or the full size.

    Raises:
        TypeError: if the mask is not a boolean array.
        ValueError: if its shape cannot broadcast to ``[B, N, T, S]``.
    """
    if mask is None:
        return None
    if not hasattr(mask, "dtype") or mask.dtype != jnp.bool_:
        got = getattr(mask, "dtype", type(mask).__name__)
        raise TypeError(f"{name} must be a boolean array (True = may attend), got dtype {got}")
    full = (batch, heads, t, s)
    if mask.ndim == 2 and mask.shape == (batch, s):
        return mask[:, None, None, :]
    if mask.ndim != 4 or any(m not in (1, f) for m, f in zip(mask.shape, full)):
        raise ValueError(f"{name} must have shape [B, S] = {_checks.shape_str((batch, s))} or "
                         f"broadcast to [B, N, T, S] = {_checks.shape_str(full)}, "
                         f"got {_checks.shape_str(mask.shape)}")
    return mask


# --- multi-head layer pieces (also used by zoo.transformer) ------------------------------------

def project_q(p, x):
    """``[B, T, D] -> [B, T, N, H]``."""
    return _project(x, p["w_q_dnh"], p["b_q_nh"])


def project_kv(p, c):
    """``[B, S, D] -> ([B, S, K, H], [B, S, K, H])``."""
    return _project(c, p["w_k_dkh"], p["b_k_kh"]), _project(c, p["w_v_dkh"], p["b_v_kh"])


def project_out(p, o):
    """``[B, T, N, H] -> [B, T, D]``."""
    w = p["w_o_nhd"].astype(o.dtype)
    y = o.reshape(o.shape[:-2] + (-1,)) @ w.reshape(-1, w.shape[-1])
    return y + p["b_o_d"].astype(o.dtype)


def _project(x, w, b):
    """``x [.., D] @ w [D, N, H] + b [N, H]`` as one 2-D matrix product (on CPU, 15% faster
    than the same contraction written as an einsum over ``(N, H)``)."""
    w, b = w.astype(x.dtype), b.astype(x.dtype)
    y = x @ w.reshape(w.shape[0], -1) + b.reshape(-1)
    return y.reshape(x.shape[:-1] + w.shape[1:])


def attend(q, k, v, *, mask=None, causal=False, window=None, implementation="auto",
           return_weights=False):
    """Dispatches to the path ``implementation`` and the arguments call for, by the platform
    the program is lowered for (module docstring).

    Returns ``(out [B, T, N, H], weights [B, N, T, S] or None)``.

    Raises:
        ValueError: an ``implementation`` that cannot apply to these arguments.
    """
    _checks.one_of(implementation, "implementation", IMPLEMENTATIONS)
    if return_weights:
        if window is not None:
            band = band_mask(q.shape[1], window, causal)
            mask = band if mask is None else mask & band
            causal = False
        return dot_product_attention(q, k, v, mask=mask, causal=causal)
    if implementation == "splash":
        return _splash(q, k, v, mask, causal, window), None
    if window is not None:
        key_mask = None if mask is None else _key_mask(mask, q.shape[0], k.shape[1])
        return _local(q, k, v, key_mask, window, causal, implementation), None
    cpu = functools.partial(attention_chunked.chunked_attention, causal=causal)
    xla = functools.partial(fused_attention, causal=causal, implementation="xla")
    cudnn = functools.partial(fused_attention, causal=causal, implementation="cudnn")
    if implementation == "xla":
        return xla(q, k, v, mask=mask), None
    if implementation == "chunked":
        return cpu(q, k, v, mask=mask), None
    if implementation == "cudnn":
        _require_cudnn(q, mask)
        return cudnn(q, k, v, mask=mask), None
    cudnn_ok = mask is None and not _cudnn_reasons(q, None)
    if not attention_query_blocks.fits(q.shape[0], q.shape[2], q.shape[1], k.shape[1]):
        # the one-pass path would hold every score at once: blocks of queries instead
        xla = functools.partial(attention_query_blocks.attention, causal=causal)
    return by_platform(q, k, v, mask, default=lambda q, k, v, m: xla(q, k, v, mask=m),
                       cpu=lambda q, k, v, m: cpu(q, k, v, mask=m),
                       cuda=(lambda q, k, v, m: cudnn(q, k, v)) if cudnn_ok else None), None


# --- private pieces ---------------------------------------------------------------------------

def _mha(params, x, cfg, *, context, mask, return_weights):
    _checks.check_array(x, "x", shape=(None, None, cfg.d_model), letters="B T D", kind="float")
    if context is not None:
        _checks.check_array(context, "context", shape=(x.shape[0], None, cfg.d_model),
                            letters="B S D", kind="float")
        if cfg.window is not None:
            raise ValueError("window restricts self-attention; pass no context with window="
                             f"{cfg.window}")
    c = x if context is None else context
    mask = check_mask(mask, "mask", x.shape[0], cfg.num_heads, x.shape[1], c.shape[1])
    params = gather_params(params, param_axes(cfg))
    x, c = x.astype(cfg.dtype), c.astype(cfg.dtype)
    q = project_q(params, x)
    k, v = project_kv(params, c)
    o, w = attend(q, k, v, mask=mask, causal=cfg.causal and context is None, window=cfg.window,
                  implementation=cfg.implementation, return_weights=return_weights)
    return constrain(project_out(params, o), ("batch", "seq", "embed")), w


def _valid(mask, causal, t, s):
    if not causal:
        return mask
    c = jnp.arange(t)[:, None] >= jnp.arange(s)[None, :]
    return c if mask is None else mask & c


def _key_mask(mask, batch, s):
    """A rank-4 mask that only pads keys (``[B|1, 1, 1, S]``) as ``[B, S]``."""
    if mask.shape[1] != 1 or mask.shape[2] != 1:
        raise ValueError("with a window or splash, mask must be a key-padding mask [B, S] or "
                         f"[B, 1, 1, S], got {_checks.shape_str(mask.shape)}")
    return jnp.broadcast_to(mask[:, 0, 0, :], (batch, s))


def _local(q, k, v, key_mask, window, causal, implementation):
    """The window through ``implementation``: the CPU tiles, one cuDNN call, or the plain
    blocked path (:func:`local_attention`)."""
    plain = lambda q, k, v, m: local_attention(q, k, v, window=window, causal=causal,
                                               key_mask=m)
    tiles = lambda q, k, v, m: attention_local.local_attention(q, k, v, window=window,
                                                               causal=causal, key_mask=m)
    if implementation == "xla":
        return plain(q, k, v, key_mask)
    if implementation == "chunked":
        return tiles(q, k, v, key_mask)
    if implementation == "cudnn":
        _require_cudnn(q, key_mask)
        return attention_window_cudnn.local_attention(q, k, v, window=window, causal=causal)
    return by_platform(q, k, v, key_mask, default=plain, cpu=tiles)


def _splash(q, k, v, mask, causal, window):
    if not has_platform("tpu"):
        raise ValueError("implementation='splash' needs a TPU; elsewhere the kernels run only "
                         "in interpret mode: zoo.kernels.splash.attention(..., interpret=True)")
    key_mask = None if mask is None else _key_mask(mask, q.shape[0], k.shape[1])
    return splash.attention(q, k, v, causal=causal, window=window, key_mask=key_mask)


def _cudnn_reasons(q, mask):
    reasons = attention_window_cudnn.applies(q.dtype, q.shape[-1])
    if mask is not None:
        reasons.append("a mask was given and the zoo's cuDNN paths take none")
    return reasons


def _require_cudnn(q, mask):
    reasons = _cudnn_reasons(q, mask)
    if not has_platform("cuda"):
        reasons.append("this process has no CUDA device")
    if reasons:
        raise ValueError("implementation='cudnn' does not apply: " + "; ".join(reasons))


def _check_heads(q, k, v):
    if k.shape[2] == 0 or q.shape[2] % k.shape[2] or k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape [B, S, K, H] with K dividing q's "
                         f"N heads; got q {_checks.shape_str(q.shape)}, k "
                         f"{_checks.shape_str(k.shape)}, v {_checks.shape_str(v.shape)}")


def _proj_init(key, d, n, kh, h, leading=()):
    kq, kk, kv, ko = jax.random.split(key, 4)
    z = lambda *s: jnp.zeros(leading + s, jnp.float32)
    return {
        "w_q_dnh": layers.dense_init(kq, leading + (d, n, h), fan_in=d),
        "b_q_nh": z(n, h),
        "w_k_dkh": layers.dense_init(kk, leading + (d, kh, h), fan_in=d),
        "b_k_kh": z(kh, h),
        "w_v_dkh": layers.dense_init(kv, leading + (d, kh, h), fan_in=d),
        "b_v_kh": z(kh, h),
        "w_o_nhd": layers.dense_init(ko, leading + (n, h, d), fan_in=n * h),
        "b_o_d": z(d),
    }


def _proj_axes(leading=()):
    return {
        "w_q_dnh": P(*leading, "embed", "heads", "head_dim"),
        "b_q_nh": P(*leading, "heads", "head_dim"),
        "w_k_dkh": P(*leading, "embed", "heads", "head_dim"),
        "b_k_kh": P(*leading, "heads", "head_dim"),
        "w_v_dkh": P(*leading, "embed", "heads", "head_dim"),
        "b_v_kh": P(*leading, "heads", "head_dim"),
        "w_o_nhd": P(*leading, "heads", "head_dim", "embed"),
        "b_o_d": P(*leading, None),
    }
