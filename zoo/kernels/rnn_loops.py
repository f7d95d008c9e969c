"""CPU loops for the recurrent layers of :mod:`zoo.rnn`: the same numbers, in cache-sized work.

* The input projection ``x W_i`` runs once per chunk of ``C`` steps, an outer scan around the
  step scan, so its ``[C·B, G·D]`` output stays in cache (:func:`chunk_length` sizes ``C``).
  Sequences stay batch-major ``[B, T, ..]``: each chunk is read and written time-major as the
  loop reaches it, so no whole sequence is transposed.
* The LSTM evaluates its three sigmoids and one tanh as one ``tanh`` over all gates
  (``sigmoid(a) = (1 + tanh(a/2)) / 2``), runs its batch as ``groups`` independent groups of
  rows (XLA's CPU runtime runs their chains on different cores at once), and has a
  hand-written backward pass that forms the weight gradients chunk by chunk as matrix
  products (:func:`lstm_layer`).

Each constant below carries one line of why; the timings behind them are in
``benchmarks/results/lstm_speed.md`` (``python -m zoo.bench.lstm_speed``). Tested against the
plain path of :mod:`zoo.rnn` in ``tests/kernels/test_rnn_loops.py``.

Shape letters: ``B`` batch, ``T`` steps, ``I`` input features, ``D`` hidden width, ``G``
gates.
"""

import functools

import jax
import jax.numpy as jnp

from zoo import _checks
from zoo.sharding import constrain, vary_together

#: Fewest steps per chunk: chunks of 8-64 steps all beat one whole-sequence product on CPU.
CHUNK = 16
#: Chunks grow past :data:`CHUNK` steps while one chunk's projection stays within 2 MiB.
CHUNK_BYTES = 2 << 20
#: Row groups of the LSTM step loop on a CPU (2 groups beat 1 and 4 on 2 cores).
CPU_GROUPS = 2
#: Fewest rows per group: smaller groups only add work per step.
MIN_GROUP_ROWS = 4
#: Steps per iteration of the LSTM's forward step loop (4 ran 1.3x faster than 1 on CPU).
LSTM_UNROLL = 4
#: One step per backward iteration: XLA:CPU emitted an unrolled backward step as scalar code.
_BACKWARD_UNROLL = 1
#: Per-gate scale of the LSTM pre-activations (gates ``i, f, g, o``) for the one-tanh step.
_GATE_SCALE = (0.5, 0.5, 1.0, 0.5)


def chunk_length(t: int, b: int, width: int, itemsize: int) -> int:
    """Steps per chunk for ``t`` steps of a batch of ``b`` whose projection is ``width``
    (``G·D``) numbers of ``itemsize`` bytes per row and step: all ``t`` steps if one chunk
    holds at most ``cap = max(CHUNK, CHUNK_BYTES / (b·width·itemsize))`` steps' worth; else
    the largest divisor of ``t`` in ``(cap/2, cap]`` (no padded steps); else ``t`` spread
    evenly over the ``⌈t/cap⌉`` chunks it needs.

    >>> chunk_length(256, 32, 4 * 256, 4), chunk_length(128, 16, 4 * 256, 4)
    (16, 32)
    >>> chunk_length(7, 3, 32, 4)
    7
    """
    for value, name in ((t, "t"), (b, "b"), (width, "width"), (itemsize, "itemsize")):
        _checks.positive_int(value, name)
    cap = max(CHUNK, CHUNK_BYTES // (b * width * itemsize))
    if t <= cap:
        return t
    divisor = next((c for c in range(cap, cap // 2, -1) if t % c == 0), None)
    return divisor or -(-t // -(-t // cap))


def gated_layer(core, weights, xs, mask, carry, *, unroll: int = 1,
                steps: int | None = None):
    """One direction of an Elman or GRU layer in chunks: ``(final carry, ys [B, T, D])``.

    ``core(w_h, b_h, carry, xp_t) -> carry`` is the family's cell on one step, with ``xp_t``
    a tuple of the ``G`` gates' projected inputs ``[B, D]``; ``carry`` is a tuple whose first
    entry is ``h``. ``weights = (w_i [I, G, D], b_in [G, D], w_h, b_h)`` (``b_in``: the biases
    added to the projection; ``w_h, b_h`` go to ``core``), ``mask [B, T]`` (a prefix mask) or
    None; ``steps`` overrides :func:`chunk_length`.
    """
    w_i, b_in, w_h, b_h = weights
    b, t = xs.shape[:2]
    g, d = b_in.shape
    steps = steps or chunk_length(t, b, g * d, xs.dtype.itemsize)
    w = w_i.reshape(-1, g * d)

    def step(carry, inputs):
        xp_t, m_t = inputs
        new = core(w_h, b_h, carry, xp_t)
        if m_t is None:
            return new, new[0]
        keep = m_t[:, None]
        new = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, carry)
        return new, jnp.where(keep, new[0], 0)

    def chunk(state, k):
        carry, ys = state
        # one [C, B, D] array per gate: a step that sliced the gate axis out of its
        # dynamically indexed input ran ~2x slower on CPU
        xp = (read_chunk(xs, k, steps) @ w + b_in.reshape(-1)).reshape(steps, b, g, d)
        xp = tuple(xp[:, :, j] for j in range(g))
        carry, y = jax.lax.scan(step, carry, (xp, read_chunk(mask, k, steps)), unroll=unroll)
        return (carry, write_chunk(ys, y, k, steps)), None

    xs, mask = pad_to_chunks(xs, mask, steps)
    (carry, ys), _ = jax.lax.scan(chunk, (carry, sequence_buffer(xs, d)),
                                  jnp.arange(xs.shape[1] // steps))
    return carry, ys[:, :t]


def lstm_layer(xs, weights, state, mask, *, unroll: int = LSTM_UNROLL, groups: int = 1,
               steps: int | None = None):
    """``(ys [B, T, D], h_T, c_T)`` of one LSTM direction over ``xs [B, T, I]``.

    ``weights = (w_i [I, 4, D], b [4, D] (both biases), w_h [D, 4, D])``, ``state = (h_0,
    c_0)``, ``mask [B, T]`` (a prefix mask) or None; the step loop runs the batch as
    ``groups`` groups of rows where each keeps :data:`MIN_GROUP_ROWS` (else one). Equal to
    scanning the LSTM cell up to float32 rounding. ``T`` is padded to a multiple of the chunk
    length with masked steps.
    """
    t = xs.shape[1]
    w_h = weights[2]
    steps = steps or chunk_length(t, xs.shape[0], w_h.shape[1] * w_h.shape[2],
                                  xs.dtype.itemsize)
    xs, weights, state = vary_together(xs, tuple(weights), tuple(state))
    xs, mask = pad_to_chunks(xs, mask, steps)
    n = row_groups(xs.shape[0], groups)
    ys, h, c = _lstm_scan(xs, weights, state, mask, unroll, steps, n)
    return ys[:, :t], h, c


def row_groups(bsz: int, groups: int) -> int:
    """Groups the LSTM step loop runs for a batch of ``bsz``: ``groups`` if they divide the
    batch and each keeps at least :data:`MIN_GROUP_ROWS` rows, else 1.

    >>> row_groups(32, 2), row_groups(7, 2), row_groups(6, 2)
    (2, 1, 1)
    """
    _checks.positive_int(groups, "groups")
    ok = bsz % groups == 0 and bsz // groups >= MIN_GROUP_ROWS
    return groups if ok else 1


# --- chunks -------------------------------------------------------------------------------

def pad_to_chunks(xs, mask, steps):
    """Pads batch-major ``xs [B, T, ..]`` to a multiple of ``steps`` steps; the padded steps
    are masked (carry frozen, output zero). Returns ``(xs, mask)``."""
    b, t = xs.shape[:2]
    pad = -t % steps
    if not pad:
        return xs, mask
    keep = jnp.arange(t + pad) < t
    mask = keep[None, :] if mask is None else jnp.pad(mask, ((0, 0), (0, pad)))
    mask = jnp.broadcast_to(mask, (b, t + pad))
    return jnp.pad(xs, ((0, 0), (0, pad)) + ((0, 0),) * (xs.ndim - 2)), mask


def read_chunk(a, k, steps):
    """Chunk ``k`` of batch-major ``a [B, T, ..]``, time-major ``[steps, B, ..]`` (``None``
    stays ``None``); one chunk's transpose stays in cache."""
    if a is None:
        return None
    return jnp.swapaxes(jax.lax.dynamic_slice_in_dim(a, k * steps, steps, axis=1), 0, 1)


def write_chunk(buffer, y, k, steps):
    """``buffer [B, T, ..]`` with chunk ``k`` set to the time-major ``y [steps, B, ..]``."""
    return jax.lax.dynamic_update_slice_in_dim(buffer, jnp.swapaxes(y, 0, 1).astype(
        buffer.dtype), k * steps, axis=1)


def sequence_buffer(xs, width):
    """Zeros ``[B, T, width]`` like ``xs [B, T, ..]``, typed for a loop's carry (split over
    the batch as ``xs`` is, varying over the same manual axes)."""
    buffer = jnp.zeros(xs.shape[:2] + (width,), xs.dtype)
    return vary_together(constrain(buffer, ("batch", "seq", None)), xs)[0]


# --- the LSTM with a hand-written backward pass -------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _lstm_scan(xs, weights, state, mask, unroll, steps, groups):
    """The LSTM recurrence over ``xs [B, T, I]`` in chunks of ``steps`` (which divides
    ``T``); returns ``(ys [B, T, D], h_T, c_T)``.

    Its backward pass runs chunk by chunk in reverse: ``dh_{t−1} = da_t W_hᵀ`` inside the
    step scan, then per chunk ``dW_h += H_{prev}ᵀ dA``, ``dW_i += Xᵀ dA`` and ``dX = dA W_iᵀ``
    as ``[C·B, ·]`` matrix products, so gate gradients never fill a whole-sequence buffer.
    """
    return _lstm_forward(xs, weights, state, mask, unroll, steps, groups, save=False)[0]


def _split_rows(a, n):
    """``n`` groups of the rows of ``a [B, ..]``, group ``k`` the rows ``b % n == k``
    (``None`` gives ``n`` Nones); interleaved, so a batch split over devices leaves each
    group split the same way."""
    if a is None:
        return (None,) * n
    if n == 1:
        return (a,)
    a = a.reshape((a.shape[0] // n, n) + a.shape[1:])
    return tuple(a[:, k] for k in range(n))


def _merge_rows(parts):
    """Inverse of :func:`_split_rows`."""
    if len(parts) == 1:
        return parts[0]
    a = jnp.stack(parts, 1)
    return a.reshape((-1,) + a.shape[2:])


def _gate_activations(zi, zf, zg, zo):
    """``(i, f, g, o)`` from each gate's ``z = tanh(scaled pre-activation)``."""
    return 0.5 + 0.5 * zi, 0.5 + 0.5 * zf, zg, 0.5 + 0.5 * zo


def _lstm_forward(xs, weights, state, mask, unroll, steps, groups, save=True):
    (w_i, b, w_h), (h0, c0) = weights, state
    bsz, d = xs.shape[0], w_h.shape[0]
    n = groups
    scale = jnp.asarray(_GATE_SCALE, xs.dtype)[:, None]                  # [4, 1]
    w, wi = w_h.reshape(d, -1), w_i.reshape(w_i.shape[0], -1)

    def cell(h, c, xp_t, m_t):
        # the bias joins the step's fused elementwise work (a pass over each chunk's
        # product to add it cost 2-3% of the forward pass)
        z = jnp.tanh((xp_t + (h @ w).reshape(xp_t.shape) + b) * scale)
        i, f, g, o = _gate_activations(*(z[:, k] for k in range(4)))
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        y = h_new
        if m_t is not None:
            keep = m_t[:, None]
            h_new, c_new = jnp.where(keep, h_new, h), jnp.where(keep, c_new, c)
            y = jnp.where(keep, h_new, 0)
        return (h_new, c_new), (y, z, c)

    def step(carry, inputs):
        xp_t, m_t = inputs
        new, outs = zip(*(cell(h, c, x_k, m_k) for (h, c), x_k, m_k
                          in zip(carry, _split_rows(xp_t, n), _split_rows(m_t, n))))
        ys, zs, cs = zip(*outs)                                  # (y, z, c_prev) per group
        return new, ((_merge_rows(ys), _merge_rows(zs), _merge_rows(cs)) if save
                     else _merge_rows(ys))

    def chunk(state, k):
        carry, ys = state
        xp = (read_chunk(xs, k, steps) @ wi).reshape(steps, bsz, 4, d)
        carry, out = jax.lax.scan(step, carry, (xp, read_chunk(mask, k, steps)), unroll=unroll)
        y, res = (out[0], out[1:]) if save else (out, None)
        return (carry, write_chunk(ys, y, k, steps)), res

    carry = tuple(zip(_split_rows(h0, n), _split_rows(c0, n)))
    (carry, ys), res = jax.lax.scan(chunk, (carry, sequence_buffer(xs, d)),
                                    jnp.arange(xs.shape[1] // steps))
    h, c = (_merge_rows(a) for a in zip(*carry))
    if not save:
        return (ys, h, c), None
    z, c_prev = res                                          # [T/C, C, B, 4, D], [T/C, C, B, D]
    return (ys, h, c), (xs, w_i, w_h, h0, ys, z, c_prev, mask)


def _lstm_cell_backward(dh, dc, dy, z, c_p, m_t, w_t):
    """One step back: with ``u = dh + dy`` and ``c_t = f c_{t−1} + i g``,

        dc_t = dc + u·o·(1 − tanh² c_t);  da = [dc_t·g·i(1−i), dc_t·c_{t−1}·f(1−f),
        dc_t·i·(1−g²), u·tanh c_t·o(1−o)];  dh_{t−1} = da W_hᵀ;  dc_{t−1} = dc_t·f

    A masked step passes ``(dh, dc)`` through and has no gate gradient."""
    i, f, g, o = _gate_activations(*z)
    tc = jnp.tanh(f * c_p + i * g)
    u = dh + dy
    dc_new = dc + u * o * (1 - tc * tc)
    da = jnp.concatenate([dc_new * g * i * (1 - i), dc_new * c_p * f * (1 - f),
                          dc_new * i * (1 - g * g), u * tc * o * (1 - o)], axis=-1)
    dh_prev = (da @ w_t).astype(dh.dtype)
    dc_prev = dc_new * f
    if m_t is not None:
        keep = m_t[:, None]
        dh_prev, dc_prev = jnp.where(keep, dh_prev, dh), jnp.where(keep, dc_prev, dc)
        da = jnp.where(keep, da, 0)
    return (dh_prev, dc_prev), da


def _lstm_backward(_unroll, steps, n, res, cotangents):
    """Reverse scan over ``(dh, dc)``, chunk by chunk (:func:`_lstm_cell_backward` per step).

    ``h_{t−1}`` for ``dW_h`` is read off the outputs (``y_{t−1}``, or ``h_0`` at ``t = 0``):
    under a prefix mask every step with a gate gradient follows a valid step.
    """
    xs, w_i, w_h, h0, ys, z, c_prev, mask = res
    dys, dh_t, dc_t = cotangents
    d, n_in = w_h.shape[0], w_i.shape[0]
    w_t, wi_t = w_h.reshape(d, -1).T, w_i.reshape(n_in, -1).T
    ends = jnp.swapaxes(ys[:, steps - 1:-1:steps], 0, 1)     # h at each chunk's last step
    starts = jnp.concatenate([h0[None], ends])               # h before each chunk [T/C, B, D]

    def step(carry, inputs):
        rows = zip(*(_split_rows(a, n) for a in inputs))        # (dy, zi, zf, zg, zo, c, m)
        new, da = zip(*(_lstm_cell_backward(dh, dc, r[0], r[1:5], r[5], r[6], w_t)
                        for (dh, dc), r in zip(carry, rows)))
        return new, _merge_rows(da)

    def chunk(carry, inputs):
        dhc, dw_h, dw_i, db, dxs = carry
        k, start, z_c, cp_c = inputs
        x_c = read_chunk(xs, k, steps)                                         # [C, B, I]
        gates = tuple(z_c[:, :, j] for j in range(4))                      # 4 x [C, B, D]
        dhc, da = jax.lax.scan(step, dhc, (read_chunk(dys, k, steps), *gates, cp_c,
                                           read_chunk(mask, k, steps)),
                               reverse=True, unroll=_BACKWARD_UNROLL)
        da = da.reshape(-1, da.shape[-1])                                  # [C·B, 4D]
        h_prev = jnp.concatenate([start[None], read_chunk(ys, k, steps)[:-1]]).reshape(-1, d)
        dw_h = dw_h + h_prev.T @ da
        dw_i = dw_i + x_c.reshape(-1, n_in).T @ da
        dxs = write_chunk(dxs, (da @ wi_t).reshape(x_c.shape), k, steps)
        return (dhc, dw_h, dw_i, db + da.sum(0), dxs), None

    sums, _ = vary_together((jnp.zeros((d, 4 * d), w_h.dtype),
                             jnp.zeros((n_in, 4 * d), w_i.dtype), jnp.zeros(4 * d, w_h.dtype)), xs)
    acc = (tuple(zip(_split_rows(dh_t, n), _split_rows(dc_t, n))), *sums,
           sequence_buffer(xs, n_in))
    (dhc, dw_h, dw_i, db, dxs), _ = jax.lax.scan(
        chunk, acc, (jnp.arange(xs.shape[1] // steps), starts, z, c_prev), reverse=True)
    dh0, dc0 = (_merge_rows(a) for a in zip(*dhc))
    return (dxs, (dw_i.reshape(w_i.shape), db.reshape(4, d), dw_h.reshape(w_h.shape)),
            (dh0, dc0), None)


_lstm_scan.defvjp(_lstm_forward, _lstm_backward)
