"""Restricted (windowed) self-attention in cache-sized tiles for CPU: the numbers of
:func:`zoo.attention.local_attention`, in blocks of at least :data:`LOCAL_BLOCK` positions
grouped into tiles of at most :data:`LOCAL_SCORES` scores, run one after another under
``lax.map`` so each tile's temporaries stay in cache whatever ``B`` and ``n``; a tile
recomputes its scores in the backward pass (``jax.checkpoint``). On a GPU such a loop is a
sequence of small kernels: this is a CPU kernel only.

Each constant carries one line of why; the timings behind them are in
``benchmarks/results/attention_speed.md``. Tested against the explicit path under a band mask
in ``tests/kernels/test_attention_kernels.py``.

Shape letters: ``B`` batch (a tile's rows), ``T`` positions, ``N`` query heads, ``K``
key/value heads, ``Q`` query heads per key/value head, ``H`` head dim, ``R`` window, ``J``
blocks of a tile.
"""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from zoo import _checks
from zoo.layers import masked_softmax as _masked_softmax, score_dtype as _acc

#: Smallest block: 16-position blocks keep each product large enough to vectorize on CPU.
LOCAL_BLOCK = 16
#: Scores one tile holds (1 MiB of float32): 2^18 ran 1.3-3x faster than one pass on CPU.
LOCAL_SCORES = 2 ** 18


def local_attention(q: Float[Array, "B T N H"], k: Float[Array, "B T K H"],
                    v: Float[Array, "B T K H"], *, window: int, causal: bool = False,
                    key_mask: Bool[Array, "B T"] | None = None,
                    block: int | None = None) -> Float[Array, "B T N H"]:
    """Self-attention restricted to ``|t − s| <= window`` (and ``s <= t`` if causal), tiled.

    The sequence is cut into blocks of ``b = max(window, block or 16)`` positions; block ``i``
    attends to blocks ``i − 1, i, i + 1`` (``i − 1, i`` when causal), so scores are
    ``[B, n/b, N, b, 3b]``: memory and FLOPs grow linearly in ``n`` for a fixed window.
    The work runs in tiles holding at most :data:`LOCAL_SCORES` scores (a span of blocks of
    one batch row with the key block on either side, or several whole rows), one after
    another under ``lax.map`` when there are several, so that each tile's temporaries stay
    in cache whatever ``B`` and ``n``. Under differentiation a tile recomputes its scores in
    the backward pass (``jax.checkpoint``) rather than storing them: the backward pass holds
    the inputs and one tile's temporaries, its time linear in ``n`` as well.

    Args:
        q, k, v: ``[B, T, N, H]`` and ``[B, T, K, H]`` (self-attention: same length).
        window: ``R >= 1``.
        causal: also mask later positions.
        key_mask: ``[B, T]`` boolean key padding (``True`` = real position).
        block: minimum block length (default 16).

    Raises:
        ValueError: if ``window < 1`` or the lengths differ.

    >>> q = jax.random.normal(jax.random.key(0), (1, 40, 2, 4))
    >>> local_attention(q, q, q, window=3).shape
    (1, 40, 2, 4)
    """
    _checks.positive_int(window, "window")
    if k.shape[1] != q.shape[1]:
        raise ValueError(f"local_attention is self-attention: q has {q.shape[1]} positions, "
                         f"k has {k.shape[1]}")
    bsz, t, n, h = q.shape
    blk = max(window, block or LOCAL_BLOCK)
    per_block = n * blk * (2 if causal else 3) * blk         # scores of one block of one row
    span, tiles = _local_tiling(-(-t // blk), per_block)
    rows = _batch_rows(bsz, span * per_block) if tiles == 1 else 1
    length = span * tiles * blk
    key_valid = jnp.ones((bsz, t), bool) if key_mask is None else key_mask
    pad = lambda x: x if length == t else jnp.pad(
        x, ((0, 0), (0, length - t)) + ((0, 0),) * (x.ndim - 2))
    q, k, v, key_valid = (pad(x) for x in (q, k, v, key_valid))
    # one leading entry per tile: a pure reshape, since rows == 1 or tiles == 1
    lead = lambda x, per_tile: x.reshape((bsz * tiles // rows, rows, per_tile) + x.shape[2:])
    args = [lead(x, span * blk) for x in (q, k, v, key_valid)]
    args += [lead(a, blk) for a in _halos(k, v, key_valid, tiles, blk)]
    tile = jax.checkpoint(lambda a: _local_tile(a[:4], a[4:7], a[7:], window=window,
                                                causal=causal, blk=blk))
    if len(args[0]) == 1:
        out = tile([a[0] for a in args])
    else:
        out = jax.lax.map(tile, args)
    return out.reshape(bsz, length, n, h)[:, :t]


def _local_tiling(blocks, scores_per_block):
    """``(span, tiles)``: blocks per tile and tiles per row, ``span·tiles >= blocks``; the
    fewest tiles whose scores fit :data:`LOCAL_SCORES`, then the shortest span for that many
    tiles (the least padding)."""
    most = max(1, LOCAL_SCORES // scores_per_block)
    tiles = -(-blocks // most)
    return -(-blocks // tiles), tiles


def _batch_rows(bsz, scores_per_row):
    """Batch rows one tile of :func:`local_attention` holds when a tile spans whole rows: the
    largest divisor of ``bsz`` whose scores fit :data:`LOCAL_SCORES` (at least 1)."""
    fit = max(1, LOCAL_SCORES // max(1, scores_per_row))
    return max(r for r in range(1, bsz + 1) if bsz % r == 0 and r <= fit)


def _halos(k, v, valid, tiles, blk):
    """The key block before and after each tile, ``[B, tiles·b, ..]`` each for ``k``, ``v``
    and ``valid`` (zeros and False past the sequence's ends): ``(before..., after...)``."""
    def edges(x, first):
        xt = x.reshape((x.shape[0], tiles, -1) + x.shape[2:])
        zero = jnp.zeros((x.shape[0], 1, blk) + x.shape[2:], x.dtype)
        if first:       # block before tile j: the last block of tile j − 1
            e = jnp.concatenate([zero, xt[:, :-1, -blk:]], axis=1)
        else:           # block after tile j: the first block of tile j + 1
            e = jnp.concatenate([xt[:, 1:, :blk], zero], axis=1)
        return e.reshape((x.shape[0], tiles * blk) + x.shape[2:])
    return [edges(x, first) for first in (True, False) for x in (k, v, valid)]


def _local_tile(tile, before, after, *, window, causal, blk):
    """Banded attention on one tile: ``tile = (q [B, T, N, H], k, v [B, T, K, H], key valid
    [B, T])`` (``T = J·b``, J blocks), and ``before``/``after``, the ``(k, v, valid)`` of the
    key block just before and just after the tile (``[B, b, ..]``). Query block ``i`` reads
    key blocks ``i − 1 .. i + 1`` (``i − 1, i`` when causal).

    Heads move ahead of positions first (``[B, K, J, .., H]``), so both products are batched
    over ``(B, K, J)`` with ``H`` the minor axis of every operand (XLA:CPU transposed ``H``
    element by element otherwise).
    """
    (q, k, v, valid), (k_before, v_before, valid_before) = tile, before
    k_after, v_after, valid_after = after
    r, length, n, h = q.shape
    kh = k.shape[2]
    span = length // blk
    width = 2 if causal else 3
    qh = (q * jnp.asarray(1.0 / math.sqrt(h), q.dtype)).reshape(r, span, blk, kh, n // kh, h)
    qh = jnp.transpose(qh, (0, 3, 1, 4, 2, 5))                          # [B, K, J, Q, b, H]

    def extend(x, before, after):                                        # [B, T', ..]
        return jnp.concatenate([before, x] if causal else [before, x, after], axis=1)

    def windows(x):                                   # x [B, .., T', H'] -> [B, .., J, w·b, H']
        return jnp.concatenate(
            [x[..., i * blk:(i + span) * blk, :].reshape(x.shape[:-2] + (span, blk, x.shape[-1]))
             for i in range(width)], axis=-2)
    kn = windows(jnp.swapaxes(extend(k, k_before, k_after), 1, 2))         # [B, K, J, w·b, H]
    vn = windows(jnp.swapaxes(extend(v, v_before, v_after), 1, 2))
    mn = windows(extend(valid, valid_before, valid_after)[..., None])[..., 0]   # [B, J, w·b]
    q_pos = jnp.arange(blk)[:, None]
    k_pos = jnp.arange(width * blk)[None, :] - blk                        # relative to block
    band = jnp.abs(q_pos - k_pos) <= window
    if causal:
        band &= k_pos <= q_pos
    s = jnp.einsum("BKJQtH,BKJuH->BKJQtu", qh, kn, preferred_element_type=_acc(qh))
    w = _masked_softmax(s, band & mn[:, None, :, None, None, :])
    out = jnp.einsum("BKJQtu,BKJuH->BKJQtH", w.astype(v.dtype), vn)
    return jnp.transpose(out, (0, 2, 4, 1, 3, 5)).reshape(r, length, n, h)
