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
per step: it is one product over the whole sequence before the scan, so the step does only
``h W_h`` and the gate arithmetic. Sequences of different lengths share a padded batch: past
its length a sequence's carry is frozen and its outputs are zero, and a backward direction
reads each sequence from its own last element, so padding never changes a result. Layers stack
(each reads the previous layer's outputs, both directions concatenated); the final state of
every layer and direction is returned as a :class:`State`.

``Config.implementation`` picks how the layers run, all giving the same numbers (tested):
``"scan"``, the plain path of this file; ``"loops"``, the CPU loops of
:mod:`zoo.kernels.rnn_loops`; ``"cudnn"``, :mod:`zoo.kernels.lstm_cudnn`; ``"auto"`` (the
default), the loops where the program is lowered for a CPU and the plain scan elsewhere
(:func:`zoo.kernels.by_platform`), so one jitted function is right on every device.

Parameters per layer and direction, gate axis ``G`` (1, 3 or 4) kept apart from ``D`` so that
tensor parallelism splits ``D`` inside every gate and the cell update stays local:
``w_i_igd [I, G, D]``, ``w_h_dgd [D, G, D]``, ``b_i_gd [G, D]``, ``b_h_gd [G, D]``.

Shape letters: ``B`` batch, ``T`` time steps, ``I`` input features, ``D`` hidden width,
``G`` gates, ``L`` layers, ``E`` directions (1 or 2), ``O`` outputs.

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
from zoo.kernels import by_platform, lstm_cudnn, rnn_loops
from zoo.losses import cross_entropy
from zoo.sharding import auto_inside, constrain, gather_params, vary_together
from zoo.types import ParamAxes, Params

TASK = "classification"

#: Cell name -> number of gates ``G``.
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
#: ``Config.implementation`` values (module docstring).
IMPLEMENTATIONS = ("auto", "scan", "loops", "cudnn")


class State(NamedTuple):
    """A recurrent carry, returned and never mutated.

    For one cell ``h`` (and ``c``) are ``[B, D]``; for a stack they are ``[B, L·E, D]`` in
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
        bidirectional: add a backward direction to every layer (``E = 2``).
        output: ``"final"`` (the top layer's last hidden state, ``[B, E·D]``) or
            ``"sequence"`` (the top layer's outputs, ``[B, T, E·D]``).
        out_dim: if set, a dense head maps the output to ``O`` logits.
        activation: the Elman cell's nonlinearity, ``"tanh"`` or ``"relu"``.
        reset_after: GRU convention; ``True`` is PyTorch's (see the module docstring).
        unroll: time steps per iteration of the step loop (speed only); ``None`` leaves it
            to the implementation.
        implementation: ``"auto"``, ``"scan"``, ``"loops"`` or ``"cudnn"`` (module doc).
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
    implementation: str = "auto"
    dtype: str = "float32"

    def __post_init__(self):
        _checks.one_of(self.cell, "cell", GATES)
        _checks.positive_int(self.in_dim, "in_dim")
        _checks.positive_int(self.hidden_dim, "hidden_dim")
        _checks.positive_int(self.num_layers, "num_layers")
        _checks.boolean(self.bidirectional, "bidirectional")
        _checks.one_of(self.output, "output", ("final", "sequence"))
        if self.out_dim is not None:
            _checks.positive_int(self.out_dim, "out_dim")
        _checks.one_of(self.activation, "activation", ("tanh", "relu"))
        _checks.boolean(self.reset_after, "reset_after")
        if self.unroll is not None:
            _checks.positive_int(self.unroll, "unroll")
        _checks.one_of(self.implementation, "implementation", IMPLEMENTATIONS)
        _checks.dtype_name(self.dtype)

    @property
    def directions(self) -> int:
        """``E``: 2 if bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def gates(self) -> int:
        """``G``: gates of the cell."""
        return GATES[self.cell]

    def layer_in_dim(self, layer: int) -> int:
        """Input width of ``layer``: ``I`` for the first, ``E·D`` after."""
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
          cfg: Config, *, initial_state: State | None = None,
          return_state: bool = False, key=None, train: bool = False):
    """Runs the stack over ``x`` and returns the top layer's output (through the head if any).

    Args:
        params: from :func:`init`.
        x: inputs ``[B, T, I]``, padded after each sequence's length.
        lengths: valid steps per sequence ``[B]`` (ints in ``[0, T]``), or a ``[B, T]`` prefix
            mask (True on each sequence's valid steps), or ``None`` for all.
        cfg: the model's config.
        initial_state: a :class:`State` of ``[B, L·E, D]`` arrays (zeros if ``None``).
        return_state: also return the final :class:`State`.
        key, train: unused (no dropout); accepted for the contract.

    Returns:
        ``[B, E·D]`` (``output="final"``) or ``[B, T, E·D]`` (``"sequence"``, zeros on
        padding), or ``O`` logits in place of ``E·D`` with a head; with ``return_state``,
        ``(outputs, State)``.

    Raises:
        ValueError: wrong ranks or shapes, an empty sequence or batch, lengths outside
            ``[0, T]`` (checked under ``jit`` too), a mask that is not a prefix mask, an
            initial state of the wrong shape, params of another config,
            ``implementation="cudnn"`` where it cannot run.
        TypeError: ``x`` not a number array, ``lengths`` neither integers nor bools.

    >>> cfg = PRESETS["tiny"]
    >>> params = init(jax.random.key(0), cfg)
    >>> x = jnp.ones((2, 5, 6))
    >>> apply(params, x, jnp.array([5, 3]), cfg).shape
    (2, 3)
    """
    _checks.check_params(params, init, cfg)
    lengths = _check_inputs(x, lengths, initial_state, cfg)
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
    """The stack without input checks or head: ``(outputs [B, T, E·D], State)``.

    For callers that have checked their inputs (seq2seq); ``apply`` is the public door. Runs
    the implementation ``cfg.implementation`` names, by the platform the program is lowered
    for (module docstring).
    """
    state = initial_state or zero_state(x.shape[0], cfg)
    args = (params, x, lengths, state)
    plain = functools.partial(_stack, cfg=cfg, layer=_scan_layer)
    loops = lambda groups: functools.partial(
        _stack, cfg=cfg, layer=functools.partial(_loops_layer, groups=groups))
    if cfg.implementation == "scan":
        return plain(*args)
    if cfg.implementation == "loops":
        return by_platform(*args, default=loops(1), cpu=loops(rnn_loops.CPU_GROUPS))
    if cfg.implementation == "cudnn":
        lstm_cudnn.require(cfg.cell, cfg.dtype)
        return by_platform(*args, default=plain, cuda=functools.partial(_cudnn_stack, cfg=cfg))
    return by_platform(*args, default=plain, cpu=loops(rnn_loops.CPU_GROUPS))


def final_output(state: State, cfg: Config) -> Float[Array, "B ED"]:
    """The top layer's final hidden states, directions concatenated: ``[B, E·D]``."""
    return state.h[:, -cfg.directions:].reshape(state.h.shape[0], -1)


def zero_state(batch_size: int, cfg: Config) -> State:
    """All-zero :class:`State` for a stack: ``[B, L·E, D]`` arrays in ``cfg.dtype``.

    >>> zero_state(3, PRESETS["tiny"]).h.shape
    (3, 2, 8)
    """
    shape = (batch_size, cfg.num_layers * cfg.directions, cfg.hidden_dim)
    zeros = jnp.zeros(shape, cfg.dtype)
    return State(zeros, zeros if cfg.cell == "lstm" else None)


def run_layer(p: Params, xs: Float[Array, "B T I"], mask, lengths, carry: State, cfg: Config,
              *, reverse: bool = False, layer=None):
    """One direction of one layer: ``(final State, ys [B, T, D])``.

    ``mask`` ``[B, T]`` (or ``None``) freezes the carry and zeroes the output past each
    length; ``reverse`` runs each sequence from its own last element back to its first.
    ``layer`` is the loop that runs the cell (default: the plain scan, :func:`_scan_layer`).
    """
    if reverse:
        xs = _reverse_padded(xs, lengths)
    xs, carry = vary_together(xs, carry)
    b_in, b_h = _split_bias(p["b_i_gd"].astype(xs.dtype), p["b_h_gd"].astype(xs.dtype), cfg)
    w = {"w_i": p["w_i_igd"].astype(xs.dtype), "b_in": b_in,
         "w_h": p["w_h_dgd"].astype(xs.dtype), "b_h": b_h}
    carry, ys = (layer or _scan_layer)(w, xs, mask, carry, cfg)
    return carry, (_reverse_padded(ys, lengths) if reverse else ys)


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
    if cfg.out_dim is None:
        raise ValueError("loss needs a head: set out_dim")
    x, lengths = inputs
    logits = apply(params, x, lengths, cfg, key=key, train=key is not None)
    mask = None
    if cfg.output == "sequence" and lengths is not None:
        mask = _valid_steps(lengths, x.shape[1])
    return cross_entropy(logits, targets, mask)


_DIRECTIONS = ("fwd", "bwd")


def _stack(params, x, lengths, state, *, cfg, layer):
    """Every layer and direction over ``x`` with ``layer`` as each direction's loop."""
    xs = x.astype(cfg.dtype)
    mask = None if lengths is None else _valid_steps(lengths, x.shape[1])      # [B, T]
    hs, cs = [], []
    for l in range(cfg.num_layers):
        outs = []
        for k, name in enumerate(_DIRECTIONS[:cfg.directions]):
            i = l * cfg.directions + k
            carry = State(state.h[:, i], None if state.c is None else state.c[:, i])
            carry, y = run_layer(params[f"layer_{l}"][name], xs, mask, lengths, carry, cfg,
                                 reverse=(k == 1), layer=layer)
            outs.append(y)
            hs.append(carry.h)
            cs.append(carry.c)
        xs = constrain(jnp.concatenate(outs, -1), ("batch", "seq", None))
    c = None if cfg.cell != "lstm" else jnp.stack(cs, 1)
    return xs, State(jnp.stack(hs, 1), c)


def _scan_layer(w, xs, mask, carry, cfg):
    """The plain loop: ``x W_i + b`` for every step in one product, then the cell's step
    (``h W_h`` and the gates) under ``lax.scan``, time-major."""
    core = _CORES[cfg.cell]
    xp = jnp.einsum("BTI,IGD->GTBD", xs, w["w_i"]) + w["b_in"][:, None, None]
    xp = tuple(xp[g] for g in range(cfg.gates))                   # G x [T, B, D]

    def step(carry, inputs):
        xp_t, m_t = inputs
        new = core(w["w_h"], w["b_h"], carry, xp_t, cfg)
        if m_t is None:
            return new, new.h
        keep = m_t[:, None]
        new = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, carry)
        return new, jnp.where(keep, new.h, 0)

    mask_t = None if mask is None else mask.T
    carry, ys = jax.lax.scan(step, carry, (xp, mask_t), unroll=cfg.unroll or 1)
    return carry, jnp.swapaxes(ys, 0, 1)


def _loops_layer(w, xs, mask, carry, cfg, *, groups):
    """The loop of :mod:`zoo.kernels.rnn_loops` for the cell of ``cfg``."""
    if cfg.cell == "lstm":
        unroll = cfg.unroll or rnn_loops.LSTM_UNROLL
        ys, h, c = rnn_loops.lstm_layer(xs, (w["w_i"], w["b_in"], w["w_h"]), carry, mask,
                                        unroll=unroll, groups=groups)
        return State(h, c), ys
    core = functools.partial(_core_with_cfg, cfg=cfg)
    return rnn_loops.gated_layer(core, (w["w_i"], w["b_in"], w["w_h"], w["b_h"]), xs, mask,
                                 carry, unroll=cfg.unroll or 1)


def _core_with_cfg(w_h, b_h, carry, xp, *, cfg):
    return _CORES[cfg.cell](w_h, b_h, carry, xp, cfg)


def _cudnn_stack(params, x, lengths, state, *, cfg):
    y, h, c = lstm_cudnn.encode(params, x, lengths, state.h, state.c,
                                num_layers=cfg.num_layers, bidirectional=cfg.bidirectional)
    return y.astype(cfg.dtype), State(h, c)


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


_CORES = {"rnn": _core_rnn, "gru": _core_gru, "lstm": _core_lstm}


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


def _check_inputs(x, lengths, initial_state, cfg):
    """Validates the inputs of :func:`apply`; returns the lengths (from a mask if given)."""
    _checks.check_array(x, "x", shape=(None, None, cfg.in_dim), letters="B T I", kind="number")
    b, t = x.shape[:2]
    if t == 0 or b == 0:
        what = "an empty sequence" if t == 0 else "an empty batch"
        raise ValueError(f"x is {what}: shape {_checks.shape_str(x.shape)} has "
                         f"{'T' if t == 0 else 'B'} = 0")
    lengths = _checks.sequence_lengths(lengths, b, t)
    if initial_state is not None:
        _check_state(initial_state, b, cfg)
    return lengths


def _check_state(state, b, cfg):
    if not isinstance(state, State):
        raise TypeError(f"initial_state must be a zoo.rnn.State, got {type(state).__name__}")
    shape = (b, cfg.num_layers * cfg.directions, cfg.hidden_dim)
    _checks.check_array(state.h, "initial_state.h", shape=shape, letters="B L·E D",
                        kind="float")
    if cfg.cell == "lstm":
        if state.c is None:
            raise ValueError("initial_state.c is required for an LSTM")
        _checks.check_array(state.c, "initial_state.c", shape=shape, letters="B L·E D",
                            kind="float")
    elif state.c is not None:
        raise ValueError(f"initial_state.c must be None for cell {cfg.cell!r}")
