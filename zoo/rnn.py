"""Recurrent networks: Elman RNN, GRU and LSTM cells, stacked and bidirectional layers.

Each cell maps an input ``x_t`` and a carry to a new carry. With gate pre-activations
``a = x_t W_i + b_i + h_{t-1} W_h + b_h`` split by gate:

Elman (1990)::

    h_t = σ(x_t W_i + b_i + h_{t-1} W_h + b_h)                     σ = tanh (or relu)

GRU (Cho et al. 2014), gates ``r, z, n``::

    r = sigmoid(a_r),  z = sigmoid(a_z)
    n = tanh(x_t W_in + b_in + r ⊙ (h_{t-1} W_hn + b_hn))         reset_after=True (default)
    n = tanh(x_t W_in + b_in + (r ⊙ h_{t-1}) W_hn + b_hn)         reset_after=False (Cho 2014)
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

The default ``reset_after=True`` is the convention of PyTorch, cuDNN, Flax and Keras: the
reset gate applies after the recurrent product, so all three gates share one matrix product.

LSTM (Hochreiter & Schmidhuber 1997, with forget gate, Gers et al. 2000), gates ``i, f, g, o``::

    i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g,    h_t = o ⊙ tanh(c_t)

A layer runs a cell over time with ``lax.scan``. The input projection ``x W_i`` never runs
per step: it is computed once per chunk of steps, an outer scan around the step scan, because
the product's output then stays in cache (for the LSTM at B 32, D 256 on a 2-core CPU,
1.3-1.6x faster forward than one product over all steps before the scan; a small layer's
chunk grows to the whole sequence, see :data:`CHUNK` and :data:`CHUNK_BYTES`). Sequences stay
batch-major ``[B, T, ..]`` throughout: each chunk is read and written time-major as the loop
reaches it, so no whole sequence is transposed. Only ``h W_h`` is inside the step loop; the
biases join the projection (Elman, GRU) or, in the LSTM, the step's fused elementwise work.
The LSTM evaluates its three sigmoids and one tanh as a single ``tanh`` over all gates
(``sigmoid(a) = (1 + tanh(a/2)) / 2``, the halving done on the pre-activation inside the
step), runs a batch as independent groups of rows in its step loop
(:data:`LSTM_BATCH_GROUPS`), and has a hand-written backward pass
(:func:`_lstm_backward`) that forms the weight gradients chunk by chunk, as matrix products.
Sequences of different lengths share a padded batch: past its length a sequence's carry is
frozen and its outputs are zero, and a backward direction reads each sequence from its own
last element, so padding never changes a result. Layers stack (each reads the previous
layer's outputs, both directions concatenated); the final state of every layer and
direction is returned as a :class:`State`.

On GPU an LSTM can run through cuDNN (``jax.experimental.rnn``): ``implementation="cudnn"``
asks for it, ``"auto"`` takes it where it applies (GPU, LSTM, float32, no mesh).

Parameters per layer and direction, gate axis ``G`` (1, 3 or 4) kept apart from ``D`` so that
tensor parallelism splits ``D`` inside every gate and the cell update stays local:
``w_i_igd [I, G, D]``, ``w_h_dgd [D, G, D]``, ``b_i_gd [G, D]``, ``b_h_gd [G, D]``.

Shape letters: ``B`` batch, ``T`` time steps, ``I`` input features, ``D`` hidden width,
``G`` gates, ``L`` layers, ``K`` directions (1 or 2), ``O`` outputs.

References:
    J. L. Elman, "Finding Structure in Time", Cognitive Science 14, 1990.
    https://doi.org/10.1207/s15516709cog1402_1
    S. Hochreiter, J. Schmidhuber, "Long Short-Term Memory", Neural Computation 9, 1997.
    https://doi.org/10.1162/neco.1997.9.8.1735
    F. A. Gers, J. Schmidhuber, F. Cummins, "Learning to Forget: Continual Prediction with
    LSTM", Neural Computation 12, 2000. https://doi.org/10.1162/089976600300015015
    K. Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for Statistical
    Machine Translation", 2014. https://arxiv.org/abs/1406.1078
    M. Schuster, K. K. Paliwal, "Bidirectional Recurrent Neural Networks", IEEE TSP 45, 1997.
    https://doi.org/10.1109/78.650093
    Y. Bengio, P. Simard, P. Frasconi, "Learning long-term dependencies with gradient descent
    is difficult", IEEE TNN 5, 1994. https://doi.org/10.1109/72.279181
"""

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float, Int

from zoo import _checks
from zoo.sharding import auto_inside, constrain, gather_params, vary_together
from zoo.types import ParamAxes, Params

TASK = "classification"

#: Cell name -> number of gates ``G``.
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


class State(NamedTuple):
    """A recurrent carry, returned and never mutated.

    For one cell ``h`` (and ``c``) are ``[B, D]``; for a stack they are ``[B, L*K, D]`` in
    PyTorch's order (layer 0 forward, layer 0 backward, layer 1 forward, ...), batch first.
    ``c`` is the LSTM cell state and ``None`` for the Elman RNN and the GRU.
    """
    h: Array
    c: Array | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Recurrent network hyper-parameters.

    Attributes:
        cell: ``"rnn"`` (Elman), ``"gru"`` or ``"lstm"``.
        in_dim: input features ``I``.
        hidden_dim: hidden width ``D`` of every layer and direction.
        num_layers: stacked layers ``L``.
        bidirectional: add a backward direction to every layer (``K = 2``).
        output: ``"final"`` (the top layer's last hidden state, ``[B, K*D]``) or
            ``"sequence"`` (the top layer's outputs, ``[B, T, K*D]``).
        out_dim: if set, a dense head maps the output to ``O`` logits.
        activation: the Elman cell's nonlinearity, ``"tanh"`` or ``"relu"``.
        reset_after: GRU convention; ``True`` is PyTorch's (see the module docstring).
        unroll: time steps per iteration of the scan's loop (speed only); ``None`` picks
            the cell's measured best on CPU: 4 for the LSTM, 1 for the others. The LSTM's
            hand-written backward loop runs one step per iteration whatever this says.
        chunk: time steps per input-projection product (speed only; see :data:`CHUNK`);
            ``None`` sizes chunks by :data:`CHUNK_BYTES`.
        implementation: ``"xla"`` (scan), ``"cudnn"`` (GPU LSTM only) or ``"auto"``.
        dtype: computation dtype (params stay float32).
    """
    cell: str = "lstm"
    in_dim: int
    hidden_dim: int
    num_layers: int = 1
    bidirectional: bool = False
    output: str = "final"
    out_dim: int | None = None
    activation: str = "tanh"
    reset_after: bool = True
    unroll: int | None = None
    chunk: int | None = None
    implementation: str = "xla"
    dtype: str = "float32"

    def __post_init__(self):
        _checks.one_of(self.cell, "cell", GATES)
        _checks.positive_int(self.in_dim, "in_dim")
        _checks.positive_int(self.hidden_dim, "hidden_dim")
        _checks.positive_int(self.num_layers, "num_layers")
        _checks.one_of(self.bidirectional, "bidirectional", (False, True))
        _checks.one_of(self.output, "output", ("final", "sequence"))
        if self.out_dim is not None:
            _checks.positive_int(self.out_dim, "out_dim")
        _checks.one_of(self.activation, "activation", ("tanh", "relu"))
        _checks.one_of(self.reset_after, "reset_after", (False, True))
        if self.unroll is not None:
            _checks.positive_int(self.unroll, "unroll")
        if self.chunk is not None:
            _checks.positive_int(self.chunk, "chunk")
        _checks.one_of(self.implementation, "implementation", ("xla", "cudnn", "auto"))
        _checks.dtype_name(self.dtype)

    @property
    def steps_per_iteration(self) -> int:
        """``unroll``, or the cell's default (LSTM 4: 1.3x faster forward at B 32, D 256)."""
        return self.unroll or (4 if self.cell == "lstm" else 1)

    def chunk_length(self, t: int, b: int, itemsize: int) -> int:
        """Steps per chunk for ``t`` steps of a batch of ``b``: ``chunk`` if set; else at
        most ``cap`` steps, as many as keep one chunk's projection (``C·B·G·D`` numbers of
        ``itemsize`` bytes) within :data:`CHUNK_BYTES` but at least :data:`CHUNK`: all
        ``t`` if they fit, else the largest divisor of ``t`` above ``cap / 2`` (no padded
        steps, which would cost a mask), else ``t`` spread evenly over the chunks it needs.

        >>> cfg = Config(cell="lstm", in_dim=256, hidden_dim=256)
        >>> cfg.chunk_length(256, 32, 4), cfg.chunk_length(128, 16, 4), cfg.chunk_length(7, 3, 4)
        (16, 32, 7)
        """
        for value, name in ((t, "t"), (b, "b"), (itemsize, "itemsize")):
            _checks.positive_int(value, name)
        if self.chunk is not None:
            return self.chunk
        cap = max(CHUNK, CHUNK_BYTES // (b * self.gates * self.hidden_dim * itemsize))
        if t <= cap:
            return t
        divisor = next((c for c in range(cap, cap // 2, -1) if t % c == 0), None)
        return divisor or -(-t // -(-t // cap))

    @property
    def directions(self) -> int:
        """``K``: 2 if bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def gates(self) -> int:
        """``G``: gates of the cell."""
        return GATES[self.cell]

    def layer_in_dim(self, layer: int) -> int:
        """Input width of ``layer``: ``I`` for the first, ``K*D`` after."""
        return self.in_dim if layer == 0 else self.directions * self.hidden_dim


PRESETS: dict[str, Config] = {
    "tiny": Config(cell="lstm", in_dim=6, hidden_dim=8, bidirectional=True, out_dim=3),
    "gru-tiny": Config(cell="gru", in_dim=4, hidden_dim=12, output="sequence", out_dim=5),
    "elman-tiny": Config(cell="rnn", in_dim=6, hidden_dim=8, num_layers=2, out_dim=3),
    # Graves et al. 2013-style deep bidirectional LSTM.
    "large": Config(cell="lstm", in_dim=512, hidden_dim=1024, num_layers=3,
                    bidirectional=True, out_dim=64),
}


def init(key: jax.Array, cfg: Config) -> Params:
    """PyTorch's initialisation: every weight and bias from U(−1/√D, 1/√D), float32.

    >>> p = init(jax.random.key(0), PRESETS["tiny"])
    >>> p["layer_0"]["bwd"]["w_i_igd"].shape, p["head"]["w"].shape
    ((6, 4, 8), (16, 3))
    """
    keys = jax.random.split(key, cfg.num_layers * cfg.directions + 1)
    params = {}
    for l in range(cfg.num_layers):
        params[f"layer_{l}"] = {
            name: _cell_init(keys[l * cfg.directions + k], cfg.layer_in_dim(l), cfg)
            for k, name in enumerate(_DIRECTIONS[:cfg.directions])}
    if cfg.out_dim is not None:
        bound = 1.0 / np.sqrt(cfg.directions * cfg.hidden_dim)
        kw, kb = jax.random.split(keys[-1])
        shape = (cfg.directions * cfg.hidden_dim, cfg.out_dim)
        params["head"] = {"w": _uniform(kw, shape, bound), "b": _uniform(kb, shape[1:], bound)}
    return params


def param_axes(cfg: Config) -> ParamAxes:
    """Tensor parallel over ``D`` inside every gate (column split of ``W_i`` and ``W_h``)."""
    cell = {"w_i_igd": P("embed", None, "hidden"), "w_h_dgd": P("embed", None, "hidden"),
            "b_i_gd": P(None, "hidden"), "b_h_gd": P(None, "hidden")}
    axes = {f"layer_{l}": {name: dict(cell) for name in _DIRECTIONS[:cfg.directions]}
            for l in range(cfg.num_layers)}
    if cfg.out_dim is not None:
        axes["head"] = {"w": P("embed", None), "b": P(None)}
    return axes


@auto_inside
def apply(params: Params, x: Float[Array, "B T I"], lengths: Int[Array, "B"] | None,
          cfg: Config, *, mask=None, initial_state: State | None = None,
          return_state: bool = False, key=None, train: bool = False):
    """Runs the stack over ``x`` and returns the top layer's output (through the head if any).

    Args:
        params: from :func:`init`.
        x: inputs ``[B, T, I]``, padded after each sequence's length.
        lengths: valid steps per sequence ``[B]`` (ints in ``[0, T]``), or ``None`` for all.
        cfg: the model's config.
        mask: alternatively to ``lengths``, a ``[B, T]`` prefix mask (True on valid steps).
        initial_state: a :class:`State` of ``[B, L*K, D]`` arrays (zeros if ``None``).
        return_state: also return the final :class:`State`.
        key, train: unused (no dropout); accepted for the contract.

    Returns:
        ``[B, K*D]`` (``output="final"``) or ``[B, T, K*D]`` (``"sequence"``, zeros on
        padding), or ``O`` logits in place of ``K*D`` with a head; with ``return_state``,
        ``(outputs, State)``.

    Raises:
        ValueError: wrong ranks or shapes, an empty sequence, lengths outside ``[0, T]``,
            a mask that is not a prefix mask, both ``lengths`` and ``mask``, an initial state
            of the wrong shape.
        TypeError: ``x`` not a number array, ``lengths`` not integers, ``mask`` not bools.

    >>> cfg = PRESETS["tiny"]
    >>> params = init(jax.random.key(0), cfg)
    >>> x = jnp.ones((2, 5, 6))
    >>> apply(params, x, jnp.array([5, 3]), cfg).shape
    (2, 3)
    """
    lengths = _check_inputs(x, lengths, mask, initial_state, cfg)
    y, state = _apply(params, x, lengths, initial_state, cfg)
    return (y, state) if return_state else y


@jax.jit(static_argnums=4)
def _apply(params, x, lengths, initial_state, cfg):
    # Compiled once per config and shapes, so eager callers (numerical gradient checks, step
    # loops) do not re-trace the scans on every call.
    params = gather_params(params, param_axes(cfg))
    y, state = encode(params, x, lengths, cfg, initial_state=initial_state)
    y = y if cfg.output == "sequence" else final_output(state, cfg)
    if cfg.out_dim is not None:
        y = y @ params["head"]["w"].astype(y.dtype) + params["head"]["b"].astype(y.dtype)
    return y, state


def encode(params: Params, x: Float[Array, "B T I"], lengths: Int[Array, "B"] | None,
           cfg: Config, *, initial_state: State | None = None):
    """The stack without input checks or head: ``(outputs [B, T, K*D], State)``.

    For callers that have checked their inputs (seq2seq); ``apply`` is the public door.
    """
    if _use_cudnn(cfg):
        return _encode_cudnn(params, x, lengths, cfg, initial_state)
    xs = x.astype(cfg.dtype)
    b, t = x.shape[0], x.shape[1]
    mask = None if lengths is None else _valid_steps(lengths, t)                  # [B, T]
    state = initial_state or zero_state(b, cfg)
    hs, cs = [], []
    for l in range(cfg.num_layers):
        outs = []
        for k, name in enumerate(_DIRECTIONS[:cfg.directions]):
            i = l * cfg.directions + k
            carry = State(state.h[:, i], None if state.c is None else state.c[:, i])
            carry, y = run_layer(params[f"layer_{l}"][name], xs, mask, lengths, carry, cfg,
                                 reverse=(k == 1))
            outs.append(y)
            hs.append(carry.h)
            cs.append(carry.c)
        xs = constrain(jnp.concatenate(outs, -1), ("batch", "seq", None))
    c = None if cfg.cell != "lstm" else jnp.stack(cs, 1)
    return xs, State(jnp.stack(hs, 1), c)


def final_output(state: State, cfg: Config) -> Float[Array, "B KD"]:
    """The top layer's final hidden states, directions concatenated: ``[B, K*D]``."""
    return state.h[:, -cfg.directions:].reshape(state.h.shape[0], -1)


def zero_state(batch_size: int, cfg: Config) -> State:
    """All-zero :class:`State` for a stack: ``[B, L*K, D]`` arrays in ``cfg.dtype``.

    >>> zero_state(3, PRESETS["tiny"]).h.shape
    (3, 2, 8)
    """
    shape = (batch_size, cfg.num_layers * cfg.directions, cfg.hidden_dim)
    zeros = jnp.zeros(shape, cfg.dtype)
    return State(zeros, zeros if cfg.cell == "lstm" else None)


#: A layer computes its input projection a chunk of ``C`` steps at a time, inside its scan:
#: a ``[C·B, I] @ [I, G·D]`` product whose output stays in cache. ``C`` is at least this
#: many steps, and more while the product's output stays within :data:`CHUNK_BYTES`
#: (:meth:`Config.chunk_length`). For the LSTM at B 32, D 256, T 256 on a 2-core CPU, chunks
#: of 8-64 steps ran the forward pass in 50-71 ms against 74-82 ms for one product over all
#: steps before the scan; 16 and 32 steps ran alike.
CHUNK = 16
#: Size of one chunk's projection output below which chunks grow past :data:`CHUNK` steps.
#: On a 2-core CPU, min of 9 runs, B 16, D 128, T 128 (64-step chunks against 16): LSTM
#: forward 4.77 against 5.12 ms, forward+backward 12.7 against 13.2; GRU forward 3.66
#: against 4.18 ms, forward+backward 17.8 against 17.4. Twice this size (32-step chunks at
#: B 32, D 256) ran the GRU's forward+backward 7% slower.
CHUNK_BYTES = 2 << 20


def run_layer(p: Params, xs: Float[Array, "B T I"], mask, lengths, carry: State, cfg: Config,
              *, reverse: bool = False):
    """One direction of one layer: ``(final State, ys [B, T, D])``.

    The input projection is hoisted out of the step loop (one product per chunk of
    :meth:`Config.chunk_length` steps); the step loop does ``h W_h`` only. Each chunk is
    read from the batch-major ``xs`` and written to the batch-major ``ys`` as it is needed
    (:func:`_chunk`, :func:`_put_chunk`), so no whole sequence is transposed.
    ``mask`` ``[B, T]`` (or ``None``) freezes the carry and zeroes the output past each
    length; ``reverse`` runs each sequence from its own last element back to its first.
    """
    if reverse:
        xs = _reverse_padded(xs, lengths)
    xs, carry = vary_together(xs, carry)
    b, t = xs.shape[:2]
    g, d = cfg.gates, cfg.hidden_dim
    steps = cfg.chunk_length(t, b, xs.dtype.itemsize)
    b_in, b_h = _split_bias(p["b_i_gd"].astype(xs.dtype), p["b_h_gd"].astype(xs.dtype), cfg)
    w_h = p["w_h_dgd"].astype(xs.dtype)
    if cfg.cell == "lstm":
        ys, h, c = _lstm_layer(xs, p["w_i_igd"].astype(xs.dtype), b_in, w_h, carry.h, carry.c,
                               mask, cfg.steps_per_iteration, steps)
        return State(h, c), (_reverse_padded(ys, lengths) if reverse else ys)
    core = _CORES[cfg.cell]
    w_i = p["w_i_igd"].astype(xs.dtype).reshape(-1, g * d)

    def step(carry, inputs):
        xp_t, m_t = inputs
        new = core(w_h, b_h, carry, xp_t, cfg)
        if m_t is None:
            return new, new.h
        keep = m_t[:, None]
        new = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, carry)
        return new, jnp.where(keep, new.h, 0)

    def chunk(state, k):
        carry, ys = state
        # one [C, B, D] array per gate: XLA's CPU code for a step that slices the gate
        # axis out of its dynamically indexed input ran the GRU step ~2x slower
        xp = (_chunk(xs, k, steps) @ w_i + b_in.reshape(-1)).reshape(steps, b, g, d)
        xp = tuple(xp[:, :, j] for j in range(g))
        carry, y = jax.lax.scan(step, carry, (xp, _chunk(mask, k, steps)),
                                unroll=cfg.steps_per_iteration)
        return (carry, _put_chunk(ys, y, k, steps)), None

    xs, mask = _pad_to_chunks(xs, mask, steps)
    (carry, ys), _ = jax.lax.scan(chunk, (carry, _sequence_buffer(xs, d)),
                                  jnp.arange(xs.shape[1] // steps))
    ys = ys[:, :t]
    if reverse:
        ys = _reverse_padded(ys, lengths)
    return carry, ys


def _pad_to_chunks(xs, mask, steps):
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


def _chunk(a, k, steps):
    """Chunk ``k`` of batch-major ``a [B, T, ..]``, time-major: ``[steps, B, ..]`` (``None``
    stays ``None``). The transpose of one chunk stays in cache; at B 32, D 256, T 64 on a
    2-core CPU the LSTM's forward pass ran 1-2% faster (medians) than with the whole input
    transposed before the loop and the whole output after it."""
    if a is None:
        return None
    return jnp.swapaxes(jax.lax.dynamic_slice_in_dim(a, k * steps, steps, axis=1), 0, 1)


def _put_chunk(buffer, y, k, steps):
    """``buffer [B, T, ..]`` with chunk ``k`` set to the time-major ``y [steps, B, ..]``."""
    return jax.lax.dynamic_update_slice_in_dim(buffer, jnp.swapaxes(y, 0, 1).astype(
        buffer.dtype), k * steps, axis=1)


def _sequence_buffer(xs, width):
    """Zeros ``[B, T, width]`` like ``xs [B, T, ..]``, typed for a loop's carry (split over
    the batch as ``xs`` is, varying over the same manual axes)."""
    buffer = jnp.zeros(xs.shape[:2] + (width,), xs.dtype)
    return vary_together(constrain(buffer, ("batch", "seq", None)), xs)[0]


# --- cells ------------------------------------------------------------------------------------

def elman_cell(p: Params, carry: State, x: Float[Array, "B I"], *,
               activation: str = "tanh") -> State:
    """``h_t = σ(x_t W_i + b_i + h_{t-1} W_h + b_h)`` on one step (``p`` as in a layer).

    >>> cfg = PRESETS["elman-tiny"]
    >>> p = init(jax.random.key(0), cfg)["layer_0"]["fwd"]
    >>> elman_cell(p, State(jnp.zeros((2, 8))), jnp.ones((2, 6))).h.shape
    (2, 8)
    """
    cfg = _CellCfg("rnn", activation=activation)
    return _core_rnn(p["w_h_dgd"], p["b_h_gd"], carry, _project(p, x), cfg)


def gru_cell(p: Params, carry: State, x: Float[Array, "B I"], *,
             reset_after: bool = True) -> State:
    """One GRU step (equations in the module docstring).

    >>> p = init(jax.random.key(0), PRESETS["gru-tiny"])["layer_0"]["fwd"]
    >>> gru_cell(p, State(jnp.zeros((2, 12))), jnp.ones((2, 4))).h.shape
    (2, 12)
    """
    cfg = _CellCfg("gru", reset_after=reset_after)
    return _core_gru(p["w_h_dgd"], p["b_h_gd"], carry, _project(p, x), cfg)


def lstm_cell(p: Params, carry: State, x: Float[Array, "B I"]) -> State:
    """One LSTM step; ``carry`` is ``State(h, c)``.

    >>> p = init(jax.random.key(0), PRESETS["tiny"])["layer_0"]["fwd"]
    >>> z = jnp.zeros((2, 8))
    >>> lstm_cell(p, State(z, z), jnp.ones((2, 6))).c.shape
    (2, 8)
    """
    return _core_lstm(p["w_h_dgd"], p["b_h_gd"], carry, _project(p, x), None)


CELLS = {"rnn": elman_cell, "gru": gru_cell, "lstm": lstm_cell}


# --- vanishing gradients ----------------------------------------------------------------------

def gradient_norms(params: Params, x: Float[Array, "B T I"],
                   cfg: Config) -> Float[Array, "B T"]:
    """``‖∂h_T/∂x_t‖_F`` for every step ``t``: how much the last state still feels step ``t``.

    ``h_T`` is the top layer's final forward hidden state of each sequence (Bengio et al.
    1994; Pascanu et al. 2013). Plotted against the distance ``T − t`` it decays
    geometrically for an Elman RNN and far more slowly for gated cells.

    >>> cfg = PRESETS["elman-tiny"]
    >>> g = gradient_norms(init(jax.random.key(0), cfg), jnp.ones((2, 5, 6)), cfg)
    >>> g.shape
    (2, 5)
    """
    _check_inputs(x, None, None, None, cfg)
    fwd = cfg.num_layers * cfg.directions - cfg.directions

    def last_h(x1):
        return encode(params, x1[None], None, cfg)[1].h[0, fwd]          # [D]

    def norms(x1):
        jac = jax.jacrev(last_h)(x1)                                      # [D, T, I]
        return jnp.sqrt(jnp.sum(jnp.square(jac), axis=(0, 2)))
    return jax.vmap(norms)(x.astype(cfg.dtype))


# --- contract extras --------------------------------------------------------------------------

def example_batch(key: jax.Array, cfg: Config, batch_size: int, seq_len: int = 9):
    """Random ``(x, lengths)`` with lengths in ``[1, T]``, and random class labels
    (``[B]`` for ``output="final"``, ``[B, T]`` for ``"sequence"``)."""
    kx, kl, ky = jax.random.split(key, 3)
    x = jax.random.normal(kx, (batch_size, seq_len, cfg.in_dim), jnp.float32)
    lengths = jax.random.randint(kl, (batch_size,), 1, seq_len + 1)
    shape = (batch_size,) if cfg.output == "final" else (batch_size, seq_len)
    labels = jax.random.randint(ky, shape, 0, cfg.out_dim or 2)
    return (x, lengths), labels


def loss(params: Params, inputs, targets, cfg: Config, *, key=None) -> jax.Array:
    """Cross-entropy of the head's logits; per-step outputs count only within each length.

    Raises:
        ValueError: if the config has no head (``out_dim`` is ``None``).
    """
    from zoo.train import cross_entropy
    if cfg.out_dim is None:
        raise ValueError("loss needs a head: set out_dim")
    x, lengths = inputs
    logits = apply(params, x, lengths, cfg, key=key, train=key is not None)
    mask = None
    if cfg.output == "sequence" and lengths is not None:
        mask = _valid_steps(lengths, x.shape[1])
    return cross_entropy(logits, targets, mask)


# --- private pieces ---------------------------------------------------------------------------

_DIRECTIONS = ("fwd", "bwd")


def _valid_steps(lengths, t):
    """``[B, T]``: True on the first ``lengths[b]`` steps of each sequence."""
    return jnp.arange(t)[None, :] < lengths[:, None]


class _CellCfg(NamedTuple):
    cell: str
    activation: str = "tanh"
    reset_after: bool = True


def _project(p, x):
    """``x W_i + b_i`` gate-major: ``[G, B, D]``."""
    g, d = p["b_i_gd"].shape
    w = p["w_i_igd"].astype(x.dtype).reshape(-1, g * d)
    xp = (x @ w + p["b_i_gd"].astype(x.dtype).reshape(-1)).reshape(x.shape[0], g, d)
    return jnp.moveaxis(xp, 1, 0)


def _split_bias(b_i, b_h, cfg):
    """Folds the recurrent bias into the input bias wherever it is added straight to the
    input's: everywhere but the GRU's ``b_hn``, which the reset gate multiplies (reset_after)
    or which follows the product with ``r ⊙ h`` (reset_before)."""
    if cfg.cell == "gru":
        return b_i.at[:2].add(b_h[:2]), b_h.at[:2].set(0)
    return b_i + b_h, jnp.zeros_like(b_h[:0])


def _recurrent(w_h, b_h, h):
    d, g, _ = w_h.shape
    y = (h @ w_h.reshape(d, g * d)).reshape(h.shape[0], g, d)
    return y if b_h.shape[0] == 0 else y + b_h


def _core_rnn(w_h, b_h, carry, xp, cfg):
    z = xp[0] + _recurrent(w_h, b_h, carry.h)[:, 0]
    return State(jnp.tanh(z) if cfg.activation == "tanh" else jax.nn.relu(z))


def _core_gru(w_h, b_h, carry, xp, cfg):
    h = carry.h
    if cfg.reset_after:
        hp = _recurrent(w_h, b_h, h)
        r = jax.nn.sigmoid(xp[0] + hp[:, 0])
        z = jax.nn.sigmoid(xp[1] + hp[:, 1])
        n = jnp.tanh(xp[2] + r * hp[:, 2])
    else:
        hp = _recurrent(w_h[:, :2], b_h[:2], h)
        r = jax.nn.sigmoid(xp[0] + hp[:, 0])
        z = jax.nn.sigmoid(xp[1] + hp[:, 1])
        n = jnp.tanh(xp[2] + (r * h) @ w_h[:, 2] + b_h[2])
    return State((1 - z) * n + z * h)


def _core_lstm(w_h, b_h, carry, xp, cfg):
    hp = _recurrent(w_h, b_h, carry.h)
    i, f, o = (jax.nn.sigmoid(xp[k] + hp[:, k]) for k in (0, 1, 3))
    c = f * carry.c + i * jnp.tanh(xp[2] + hp[:, 2])
    return State(o * jnp.tanh(c), c)


_CORES = {"rnn": _core_rnn, "gru": _core_gru}        # the LSTM layer runs _lstm_scan


# --- the LSTM layer with a hand-written backward pass -------------------------------------------

def _lstm_layer(xs, w_i, b, w_h, h0, c0, mask, unroll, steps):
    """``(ys [B, T, D], h_T, c_T)`` of one LSTM direction over ``xs [B, T, I]``;
    ``w_i [I, 4, D]``, ``b [4, D]`` (both biases), ``w_h [D, 4, D]``, ``mask [B, T]`` or
    None. ``T`` is padded to a multiple of ``steps`` (the chunk length) with masked steps."""
    t = xs.shape[1]
    xs, w_i, b, w_h, h0, c0 = vary_together(xs, w_i, b, w_h, h0, c0)
    xs, mask = _pad_to_chunks(xs, mask, steps)
    ys, h, c = _lstm_scan(xs, w_i, b, w_h, h0, c0, mask, unroll, steps)
    return ys[:, :t], h, c


#: Per-gate scale of the LSTM pre-activations (gates ``i, f, g, o``): the step evaluates one
#: ``tanh`` over all four gates of the scaled pre-activation, because
#: ``sigmoid(a) = (1 + tanh(a / 2)) / 2``; halving is exact in floating point, and done in
#: the step's fused elementwise work rather than on copies of the weights.
_LSTM_GATE_SCALE = (0.5, 0.5, 1.0, 0.5)


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8))
def _lstm_scan(xs, w_i, b, w_h, h0, c0, mask, unroll, steps):
    """The LSTM recurrence over ``xs [B, T, I]`` in chunks of ``steps`` (which divides
    ``T``; ``mask [B, T]``, a prefix mask, or None); returns ``(ys [B, T, D], h_T, c_T)``.

    Same numbers as scanning :func:`lstm_cell`. Its backward pass (below) runs chunk by chunk
    in reverse: ``dh_{t−1} = da_t W_hᵀ`` inside the step scan, then per chunk
    ``dW_h += H_{prev}ᵀ dA``, ``dW_i += Xᵀ dA`` and ``dX = dA W_iᵀ`` as ``[C·B, ·]``
    matrix products, so gate gradients never fill a whole-sequence buffer.
    """
    return _lstm_forward(xs, w_i, b, w_h, h0, c0, mask, unroll, steps, save=False)[0]


#: On a CPU, the LSTM's step loop runs its batch as this many independent groups of rows
#: (rows ``b`` with ``b % n == k``), each with its own recurrent product and gate arithmetic,
#: where every group keeps at least :data:`LSTM_MIN_GROUP_ROWS` rows (else one group); XLA's
#: CPU runtime runs the groups' chains on different cores at once, whereas a GPU runs one
#: stream in order, where smaller products would only add kernel launches. Equal to
#: one group up to float32 rounding (smaller products may sum in another order); read when a
#: program is traced. On a 2-core CPU (D 256), 2 groups against 1, min of 9 runs: B 32
#: forward 5% and forward+backward 9% faster at T 64 and 256; B 8-64 at T 128 forward 2-5%,
#: forward+backward 7-15%; 4 groups at B 32-64 were slower than 2.
LSTM_BATCH_GROUPS = 2
LSTM_MIN_GROUP_ROWS = 4


def _batch_groups(bsz: int) -> int:
    """How many row groups the LSTM step loop runs for a batch of ``bsz`` (one off the CPU)."""
    n = LSTM_BATCH_GROUPS if jax.default_backend() == "cpu" else 1
    return n if bsz % n == 0 and bsz // n >= LSTM_MIN_GROUP_ROWS else 1


def _split_rows(a, n):
    """``n`` groups of the rows of ``a [B, ..]``, group ``k`` the rows ``b % n == k``
    (``None`` gives ``n`` Nones). Interleaved rather than contiguous, so that a batch split
    over devices leaves each group split the same way (and it ran forward+backward faster)."""
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


#: Steps per iteration of the LSTM's backward step loop (``Config.unroll`` sets the forward
#: loop's). XLA:CPU compiled the backward step's elementwise work to scalar code (no vector
#: instructions in its LLVM IR) when the loop was unrolled, or when one fusion read several
#: gate slices of one per-step input; one step per iteration, with one residual array per
#: gate, is vectorized: forward+backward 6-10% faster at B 32, D 256, T 64-256.
_LSTM_BACKWARD_UNROLL = 1


def _lstm_forward(xs, w_i, b, w_h, h0, c0, mask, unroll, steps, save=True):
    bsz = xs.shape[0]
    d = w_h.shape[0]
    n = _batch_groups(bsz)
    scale = jnp.asarray(_LSTM_GATE_SCALE, xs.dtype)[:, None]             # [4, 1]
    w = w_h.reshape(d, -1)
    wi = w_i.reshape(w_i.shape[0], -1)

    def cell(h, c, xp_t, m_t):
        # the bias joins the step's fused elementwise work: added to each chunk's product
        # instead, it cost a pass over the [C·B, 4D] block (2-3% of the forward pass)
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
        xp = (_chunk(xs, k, steps) @ wi).reshape(steps, bsz, 4, d)
        carry, out = jax.lax.scan(step, carry, (xp, _chunk(mask, k, steps)), unroll=unroll)
        y, res = (out[0], out[1:]) if save else (out, None)
        return (carry, _put_chunk(ys, y, k, steps)), res

    carry = tuple(zip(_split_rows(h0, n), _split_rows(c0, n)))
    (carry, ys), res = jax.lax.scan(chunk, (carry, _sequence_buffer(xs, d)),
                                    jnp.arange(xs.shape[1] // steps))
    h, c = (_merge_rows(a) for a in zip(*carry))
    if not save:
        return (ys, h, c), None
    z, c_prev = res                                          # [T/C, C, B, 4, D], [T/C, C, B, D]
    return (ys, h, c), (xs, w_i, w_h, h0, ys, z, c_prev, mask)


def _lstm_backward(_unroll, steps, res, cotangents):
    """Reverse scan over ``(dh, dc)``, chunk by chunk; a masked step passes both through
    and has no gate gradient. With ``u = dh + dy_t`` and ``c_t = f c_{t−1} + i g``:

        dc_t = dc + u·o·(1 − tanh² c_t);  da = [dc_t·g·i(1−i), dc_t·c_{t−1}·f(1−f),
        dc_t·i·(1−g²), u·tanh c_t·o(1−o)];  dh_{t−1} = da W_hᵀ;  dc_{t−1} = dc_t·f

    ``h_{t−1}`` for ``dW_h`` is read off the outputs (``y_{t−1}``, or ``h_0`` at ``t = 0``):
    under a prefix mask every step with a gate gradient follows a valid step.
    """
    xs, w_i, w_h, h0, ys, z, c_prev, mask = res
    dys, dh_t, dc_t = cotangents
    d, n_in = w_h.shape[0], w_i.shape[0]
    n = _batch_groups(xs.shape[0])
    w_t = w_h.reshape(d, -1).T
    wi_t = w_i.reshape(n_in, -1).T
    ends = jnp.swapaxes(ys[:, steps - 1:-1:steps], 0, 1)     # h at each chunk's last step
    starts = jnp.concatenate([h0[None], ends])               # h before each chunk [T/C, B, D]

    def cell(dh, dc, dy, zi, zf, zg, zo, c_p, m_t):
        i, f, g, o = _gate_activations(zi, zf, zg, zo)
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

    def step(carry, inputs):
        new, da = zip(*(cell(dh, dc, *row) for (dh, dc), row
                        in zip(carry, zip(*(_split_rows(a, n) for a in inputs)))))
        return new, _merge_rows(da)

    def chunk(carry, inputs):
        dhc, dw_h, dw_i, db, dxs = carry
        k, start, z_c, cp_c = inputs
        x_c = _chunk(xs, k, steps)                                         # [C, B, I]
        gates = tuple(z_c[:, :, j] for j in range(4))                      # 4 x [C, B, D]
        dhc, da = jax.lax.scan(step, dhc, (_chunk(dys, k, steps), *gates, cp_c,
                                           _chunk(mask, k, steps)),
                               reverse=True, unroll=_LSTM_BACKWARD_UNROLL)
        da = da.reshape(-1, da.shape[-1])                                  # [C·B, 4D]
        h_prev = jnp.concatenate([start[None], _chunk(ys, k, steps)[:-1]]).reshape(-1, d)
        dw_h = dw_h + h_prev.T @ da                                        # h_prev [C·B, D]
        dw_i = dw_i + x_c.reshape(-1, n_in).T @ da
        dxs = _put_chunk(dxs, (da @ wi_t).reshape(x_c.shape), k, steps)
        return (dhc, dw_h, dw_i, db + da.sum(0), dxs), None

    sums, _ = vary_together((jnp.zeros((d, 4 * d), w_h.dtype),
                             jnp.zeros((n_in, 4 * d), w_i.dtype), jnp.zeros(4 * d, w_h.dtype)), xs)
    acc = (tuple(zip(_split_rows(dh_t, n), _split_rows(dc_t, n))), *sums,
           _sequence_buffer(xs, n_in))
    (dhc, dw_h, dw_i, db, dxs), _ = jax.lax.scan(
        chunk, acc, (jnp.arange(xs.shape[1] // steps), starts, z, c_prev), reverse=True)
    dh0, dc0 = (_merge_rows(a) for a in zip(*dhc))
    return (dxs, dw_i.reshape(w_i.shape),
            db.reshape(4, d), dw_h.reshape(w_h.shape), dh0, dc0, None)


_lstm_scan.defvjp(_lstm_forward, _lstm_backward)


def _reverse_padded(xs, lengths):
    """Reverses each sequence of batch-major ``xs [B, T, ..]`` within its own length (padding
    stays)."""
    if lengths is None:
        return xs[:, ::-1]
    t = jnp.arange(xs.shape[1])[None, :]                                   # [1, T]
    src = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)     # [B, T]
    return jnp.take_along_axis(xs, src.reshape(src.shape + (1,) * (xs.ndim - 2)), axis=1)


def _cell_init(key, d_in, cfg):
    g, d = cfg.gates, cfg.hidden_dim
    bound = 1.0 / np.sqrt(d)
    k = jax.random.split(key, 4)
    return {"w_i_igd": _uniform(k[0], (d_in, g, d), bound),
            "w_h_dgd": _uniform(k[1], (d, g, d), bound),
            "b_i_gd": _uniform(k[2], (g, d), bound),
            "b_h_gd": _uniform(k[3], (g, d), bound)}


def _uniform(key, shape, bound):
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_inputs(x, lengths, mask, initial_state, cfg):
    """Validates the inputs of :func:`apply`; returns the lengths (from ``mask`` if given)."""
    _checks.check_array(x, "x", shape=(None, None, cfg.in_dim), letters="B T I", kind="number")
    b, t = x.shape[:2]
    if t == 0:
        raise ValueError(f"x is an empty sequence: shape {_checks.shape_str(x.shape)} has T = 0")
    if lengths is not None and mask is not None:
        raise ValueError("pass lengths or mask, not both")
    if mask is not None:
        _checks.check_array(mask, "mask", shape=(b, t), letters="B T")
        if mask.dtype != jnp.bool_:
            raise TypeError(f"mask must have a bool dtype, got {mask.dtype}")
        lengths = mask.sum(-1).astype(jnp.int32)
        if _is_concrete(mask) and not np.array_equal(
                np.asarray(mask), np.arange(t)[None] < np.asarray(lengths)[:, None]):
            raise ValueError("mask must be a prefix mask (True on each sequence's first steps)")
    elif lengths is not None:
        _checks.check_array(lengths, "lengths", shape=(b,), letters="B", kind="int")
        if _is_concrete(lengths):
            values = np.asarray(lengths)
            if values.min(initial=0) < 0 or values.max(initial=0) > t:
                raise ValueError(f"lengths must lie in [0, T={t}], got min {values.min()} "
                                 f"and max {values.max()}")
    if initial_state is not None:
        _check_state(initial_state, b, cfg)
    return lengths


def _check_state(state, b, cfg):
    if not isinstance(state, State):
        raise TypeError(f"initial_state must be a zoo.rnn.State, got {type(state).__name__}")
    shape = (b, cfg.num_layers * cfg.directions, cfg.hidden_dim)
    _checks.check_array(state.h, "initial_state.h", shape=shape, letters="B L*K D",
                        kind="float")
    if cfg.cell == "lstm":
        if state.c is None:
            raise ValueError("initial_state.c is required for an LSTM")
        _checks.check_array(state.c, "initial_state.c", shape=shape, letters="B L*K D",
                            kind="float")
    elif state.c is not None:
        raise ValueError(f"initial_state.c must be None for cell {cfg.cell!r}")


# --- cuDNN ------------------------------------------------------------------------------------

def _use_cudnn(cfg: Config) -> bool:
    """Whether the stack runs through cuDNN; ``"cudnn"`` where it cannot apply is an error."""
    if cfg.implementation == "xla":
        return False
    reasons = []
    if cfg.cell != "lstm":
        reasons.append(f"cell is {cfg.cell!r}, cuDNN path covers 'lstm' only")
    if jnp.dtype(cfg.dtype) != jnp.float32:
        reasons.append(f"dtype is {cfg.dtype}, jax.experimental.rnn is float32 only")
    if jax.default_backend() != "gpu":
        reasons.append(f"backend is {jax.default_backend()!r}, cuDNN needs 'gpu'")
    if not jax.sharding.get_abstract_mesh().empty:
        reasons.append("a mesh is active and the cuDNN call does not partition")
    if reasons and cfg.implementation == "cudnn":
        raise ValueError("implementation='cudnn' does not apply: " + "; ".join(reasons))
    return not reasons


def cudnn_weights(params: Params, cfg: Config) -> Float[Array, "N"]:
    """The stack's LSTM weights flattened in cuDNN's layout (``jax.experimental.rnn``).

    All ``W_ih, W_hh`` (each ``[4D, in]``, gates i, f, g, o) per layer and direction, then all
    ``b_ih, b_hh``: the layout ``jax.experimental.rnn.unpack_lstm_weights`` reads.
    """
    mats, biases = [], []
    for l in range(cfg.num_layers):
        for name in _DIRECTIONS[:cfg.directions]:
            p = params[f"layer_{l}"][name]
            for w in (p["w_i_igd"], p["w_h_dgd"]):
                mats.append(jnp.transpose(w, (1, 2, 0)).reshape(-1))
            biases += [p["b_i_gd"].reshape(-1), p["b_h_gd"].reshape(-1)]
    return jnp.concatenate(mats + biases)


def _encode_cudnn(params, x, lengths, cfg, initial_state):
    """:func:`encode` through ``jax.experimental.rnn.lstm`` (cuDNN), with the XLA path's
    contract kept: zeros on padding, and a sequence of length 0 returns its initial state
    (cuDNN runs it as one step, and its output is dropped)."""
    from jax.experimental import rnn as jrnn
    b, t = x.shape[:2]
    state = initial_state or zero_state(b, cfg)
    lengths = jnp.full((b,), t, jnp.int32) if lengths is None else lengths.astype(jnp.int32)
    y, h, c = jrnn.lstm(
        x.astype(jnp.float32), jnp.swapaxes(state.h, 0, 1), jnp.swapaxes(state.c, 0, 1),
        cudnn_weights(params, cfg), jnp.maximum(lengths, 1), input_size=cfg.in_dim,
        hidden_size=cfg.hidden_dim, num_layers=cfg.num_layers, dropout=0.0,
        bidirectional=cfg.bidirectional)
    y = jnp.where(_valid_steps(lengths, t)[..., None], y, 0)
    empty = (lengths == 0)[:, None, None]
    return y, State(jnp.where(empty, state.h, jnp.swapaxes(h, 0, 1)),
                    jnp.where(empty, state.c, jnp.swapaxes(c, 0, 1)))
