"""Sequence-to-sequence encoder-decoders over GRU or LSTM stacks, and a sequence autoencoder.

The encoder (a :mod:`zoo.rnn` stack, optionally bidirectional) reads the embedded source
``x_1 … x_S`` and its final state initialises the decoder, which predicts the target one token
at a time from the previous one (Sutskever et al. 2014; Cho et al. 2014)::

    s_0 = [h^fwd_S ; h^bwd_1]  per layer (and c likewise for an LSTM)
    s_t = cell(s_{t-1}, E_tgt[y_{t-1}]),   p(y_t | y_<t, x) = softmax(s_t W_o + b_o)

Training uses teacher forcing: the decoder reads ``[BOS, y_1, …, y_{T-1}]`` and is scored
against ``[y_1, …, y_{T-1}, EOS]`` (padding ignored). Inference decodes greedily or with beam
search, both stopping at ``EOS`` or a maximum length. With the source itself as the target the
model is a sequence autoencoder, and the encoder's final hidden states (:func:`embed`) are a
fixed-size embedding of a variable-length sequence (Dai & Le 2015).

Token ids ``pad_id`` (0), ``bos_id`` (1) and ``eos_id`` (2) are reserved; the decoders never
emit ``pad`` or ``bos``.

Every entry point checks its inputs and names the culprit (token ids outside
``[0, vocab_size)``, lengths outside ``[1, S]``, a source and target of different batch sizes,
empty inputs, params of another config); under ``jit`` the value checks run with the program
(:func:`zoo._checks.in_range`) and fail the call with the same message.

Shape letters: ``B`` batch, ``S`` source positions, ``T`` target positions, ``V`` vocabulary,
``I`` embedding width (the recurrent stacks' input features), ``D`` encoder hidden width,
``E`` encoder directions, ``L`` layers. Beams have no letter: ``beam_size``.

References:
    I. Sutskever, O. Vinyals, Q. V. Le, "Sequence to Sequence Learning with Neural Networks",
    NeurIPS 2014. https://arxiv.org/abs/1409.3215
    K. Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder for Statistical
    Machine Translation", EMNLP 2014. https://arxiv.org/abs/1406.1078
    A. M. Dai, Q. V. Le, "Semi-supervised Sequence Learning", NeurIPS 2015.
    https://arxiv.org/abs/1511.01432
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float, Int

from zoo import _checks, rnn
from zoo.losses import cross_entropy
from zoo.sharding import auto_inside, constrain, gather_params, vary_together
from zoo.types import ParamAxes, Params

TASK = "seq2seq"
_NEG = -1e9                      # log-probability of a forbidden token


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Encoder-decoder hyper-parameters.

    Attributes:
        cell: ``"gru"`` or ``"lstm"``.
        vocab_size: ``V``, shared by source and target, including the three reserved ids.
        embed_dim: ``I``.
        hidden_dim: ``D`` of the encoder; the decoder's width is ``E·D``.
        num_layers: ``L`` for encoder and decoder.
        bidirectional: bidirectional encoder (``E = 2``).
        max_decode_len: default maximum output length of the decoders (``EOS`` included).
        objective: what :func:`example_batch` asks for: ``"reverse"`` the source, or
            ``"autoencode"`` (copy it back).
        unroll: scan unroll of the recurrent layers (``None``: the cell's default, see
            :class:`zoo.rnn.Config`).
        pad_id, bos_id, eos_id: reserved token ids.
        dtype: computation dtype (params stay float32).
    """
    cell: str = "lstm"
    vocab_size: int
    embed_dim: int
    hidden_dim: int
    num_layers: int = 1
    bidirectional: bool = True
    max_decode_len: int = 24
    objective: str = "reverse"
    unroll: int | None = None
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    dtype: str = "float32"

    def __post_init__(self):
        _checks.one_of(self.cell, "cell", ("gru", "lstm"))
        _checks.positive_int(self.vocab_size, "vocab_size", minimum=4)
        _checks.positive_int(self.embed_dim, "embed_dim")
        _checks.positive_int(self.hidden_dim, "hidden_dim")
        _checks.positive_int(self.num_layers, "num_layers")
        _checks.boolean(self.bidirectional, "bidirectional")
        _checks.positive_int(self.max_decode_len, "max_decode_len")
        _checks.one_of(self.objective, "objective", ("reverse", "autoencode"))
        if self.unroll is not None:
            _checks.positive_int(self.unroll, "unroll")
        ids = (self.pad_id, self.bos_id, self.eos_id)
        for name, v in zip(("pad_id", "bos_id", "eos_id"), ids):
            if not 0 <= v < self.vocab_size:
                raise ValueError(f"{name} must lie in [0, vocab_size={self.vocab_size}), got {v}")
        if len(set(ids)) != 3:
            raise ValueError(f"pad_id, bos_id, eos_id must differ, got {ids}")
        _checks.dtype_name(self.dtype)

    @property
    def encoder(self) -> rnn.Config:
        return rnn.Config(cell=self.cell, in_dim=self.embed_dim, hidden_dim=self.hidden_dim,
                          num_layers=self.num_layers, bidirectional=self.bidirectional,
                          output="sequence", unroll=self.unroll, dtype=self.dtype)

    @property
    def decoder(self) -> rnn.Config:
        k = 2 if self.bidirectional else 1
        return rnn.Config(cell=self.cell, in_dim=self.embed_dim, hidden_dim=k * self.hidden_dim,
                          num_layers=self.num_layers, output="sequence", unroll=self.unroll,
                          dtype=self.dtype)


PRESETS: dict[str, Config] = {
    "tiny": Config(cell="gru", vocab_size=12, embed_dim=6, hidden_dim=4, max_decode_len=10),
    "lstm-tiny": Config(cell="lstm", vocab_size=8, embed_dim=4, hidden_dim=8,
                        bidirectional=False, max_decode_len=10, objective="autoencode"),
    # Sutskever et al. 2014 scale: 4 layers of 1000 units (here 1024), 160k/80k vocabularies
    # shared as 32k.
    "large": Config(cell="lstm", vocab_size=32768, embed_dim=1024, hidden_dim=1024,
                    num_layers=4, bidirectional=False, max_decode_len=100),
}


#: The reverse task of examples/reverse_seq2seq.py (13 symbols + 3 reserved ids, lengths
#: 5-20). Not a registered preset: at ~470k parameters it would add the contract battery's
#: full run to every default test session.
REVERSE = Config(cell="lstm", vocab_size=16, embed_dim=32, hidden_dim=128, max_decode_len=21,
                 unroll=4)


def init(key: jax.Array, cfg: Config) -> Params:
    """Embeddings N(0, 1), recurrent stacks as :func:`zoo.rnn.init`, LeCun-normal head.

    >>> p = init(jax.random.key(0), PRESETS["tiny"])
    >>> p["src_embed_vi"].shape, p["out"]["w"].shape
    ((12, 6), (8, 12))
    """
    ks, kt, ke, kd, ko = jax.random.split(key, 5)
    v, i, kd_ = cfg.vocab_size, cfg.embed_dim, cfg.decoder.hidden_dim
    return {
        "src_embed_vi": jax.random.normal(ks, (v, i), jnp.float32),
        "tgt_embed_vi": jax.random.normal(kt, (v, i), jnp.float32),
        "encoder": rnn.init(ke, cfg.encoder),
        "decoder": rnn.init(kd, cfg.decoder),
        "out": {"w": jax.random.normal(ko, (kd_, v), jnp.float32) / np.sqrt(kd_),
                "b": jnp.zeros((v,), jnp.float32)},
    }


def param_axes(cfg: Config) -> ParamAxes:
    """Recurrent stacks as :func:`zoo.rnn.param_axes`; the head splits the vocabulary."""
    return {"src_embed_vi": P(None, "embed"), "tgt_embed_vi": P(None, "embed"),
            "encoder": rnn.param_axes(cfg.encoder), "decoder": rnn.param_axes(cfg.decoder),
            "out": {"w": P("embed", "vocab"), "b": P("vocab")}}


@auto_inside
def apply(params: Params, src: Int[Array, "B S"], src_lengths: Int[Array, "B"],
          tgt_in: Int[Array, "B T"], cfg: Config, *, key=None,
          train: bool = False) -> Float[Array, "B T V"]:
    """Teacher-forced logits: the decoder reads ``tgt_in`` (``BOS`` first) after the encoder.

    Args:
        params: from :func:`init`.
        src: source tokens ``[B, S]``, padded after each length.
        src_lengths: source lengths ``[B]`` in ``[1, S]``.
        tgt_in: decoder inputs ``[B, T]``: ``BOS`` then the target shifted right.
        cfg: the model's config.
        key, train: unused (no dropout); accepted for the contract.

    Returns:
        logits ``[B, T, V]`` for the next token at every target position.

    Raises:
        ValueError: bad shapes, an empty batch or sequence, token ids outside
            ``[0, vocab_size)`` or lengths outside ``[1, S]`` (under ``jit``: when the
            program runs), ``src`` and ``tgt_in`` of different batch sizes, params of
            another config.
        TypeError: non-integer tokens or lengths.

    >>> cfg = PRESETS["tiny"]
    >>> (src, n, tgt_in), tgt_out = example_batch(jax.random.key(1), cfg, 2)
    >>> apply(init(jax.random.key(0), cfg), src, n, tgt_in, cfg).shape == tgt_out.shape + (12,)
    True
    """
    _check_source(params, src, src_lengths, cfg)
    _check_tokens(tgt_in, "tgt_in", cfg)
    _checks.same_batch(src=src, tgt_in=tgt_in)
    return _apply(params, src, src_lengths, tgt_in, cfg)


@jax.jit(static_argnums=4)
def _apply(params, src, src_lengths, tgt_in, cfg):
    # Compiled once per config and shapes: eager callers do not re-trace the scans.
    params = gather_params(params, param_axes(cfg))
    state = _encode(params, src, src_lengths, cfg)
    y, _ = rnn.encode(params["decoder"], _embed(params["tgt_embed_vi"], tgt_in, cfg), None,
                      cfg.decoder, initial_state=state)
    return _logits(params, y)


@auto_inside
def embed(params: Params, src: Int[Array, "B S"], src_lengths: Int[Array, "B"],
          cfg: Config) -> Float[Array, "B L*E*D"]:
    """The fixed-size embedding of each source: the decoder's initial hidden states,
    ``[B, L·E·D]`` (the autoencoder's code).

    >>> cfg = PRESETS["lstm-tiny"]
    >>> (src, n, _), _ = example_batch(jax.random.key(1), cfg, 3)
    >>> embed(init(jax.random.key(0), cfg), src, n, cfg).shape
    (3, 8)
    """
    _check_source(params, src, src_lengths, cfg)
    params = gather_params(params, param_axes(cfg))
    h = _encode(params, src, src_lengths, cfg).h
    return h.reshape(h.shape[0], -1)


@auto_inside
def init_decoder(params: Params, src: Int[Array, "B S"], src_lengths: Int[Array, "B"],
                 cfg: Config) -> rnn.State:
    """The decoder's initial :class:`zoo.rnn.State` ``[B, L, E·D]`` from the encoder."""
    _check_source(params, src, src_lengths, cfg)
    return _init_decoder(params, src, src_lengths, cfg)


def _init_decoder(params, src, src_lengths, cfg):
    return _encode(gather_params(params, param_axes(cfg)), src, src_lengths, cfg)


@auto_inside
def decode_step(params: Params, state: rnn.State, token: Int[Array, "B"],
                cfg: Config) -> tuple[Float[Array, "B V"], rnn.State]:
    """One decoder step: the previous token in, next-token logits and the new state out.

    Raises:
        ValueError: ``token`` not ``[B]`` for the state's batch, ids outside
            ``[0, vocab_size)`` (under ``jit``: when the program runs), a state of the wrong
            shape, params of another config.
        TypeError: ``state`` not a :class:`zoo.rnn.State`, ``token`` not integers.
    """
    _check_state(state, cfg)
    _checks.check_array(token, "token", shape=(state.h.shape[0],), letters="B", kind="int",
                        nonempty=True)
    _checks.in_range(token, "token", 0, cfg.vocab_size - 1, what="token ids",
                     hint=f"The vocabulary has vocab_size={cfg.vocab_size} ids.")
    _checks.check_params(params, init, cfg)
    return _decode_step(params, state, token, cfg)


def _decode_step(params, state, token, cfg):
    x = _embed(params["tgt_embed_vi"], token, cfg)
    dcfg = cfg.decoder
    hs, cs = [], []
    for l in range(cfg.num_layers):
        p = params["decoder"][f"layer_{l}"]["fwd"]
        carry = rnn.State(state.h[:, l], None if state.c is None else state.c[:, l])
        if cfg.cell == "gru":
            carry = rnn.gru_cell(p, carry, x, reset_after=dcfg.reset_after)
        else:
            carry = rnn.lstm_cell(p, carry, x)
        x = carry.h
        hs.append(carry.h)
        cs.append(carry.c)
    new = rnn.State(jnp.stack(hs, 1), None if state.c is None else jnp.stack(cs, 1))
    return _logits(params, x), new


@auto_inside
def greedy_decode(params: Params, src: Int[Array, "B S"], src_lengths: Int[Array, "B"],
                  cfg: Config, *, max_len: int | None = None) -> Int[Array, "B T"]:
    """Most likely token at every step, until ``EOS`` (kept) or ``max_len`` tokens.

    Returns:
        ``[B, max_len]`` tokens, ``pad_id`` after each ``EOS``.

    >>> cfg = PRESETS["tiny"]
    >>> (src, n, _), _ = example_batch(jax.random.key(1), cfg, 2)
    >>> greedy_decode(init(jax.random.key(0), cfg), src, n, cfg, max_len=4).shape
    (2, 4)
    """
    max_len = _max_len(max_len, cfg)
    _check_source(params, src, src_lengths, cfg)
    state = _init_decoder(params, src, src_lengths, cfg)
    b = src.shape[0]

    def step(carry, _):
        state, token, done = carry
        logits, state = _decode_step(params, state, token, cfg)
        token = jnp.argmax(_allowed(logits, cfg), -1).astype(jnp.int32)
        token = jnp.where(done, cfg.pad_id, token)
        return (state, token, done | (token == cfg.eos_id)), token

    start = (state, jnp.full((b,), cfg.bos_id, jnp.int32), jnp.zeros((b,), bool))
    start, _ = vary_together(start, src)
    return jnp.swapaxes(jax.lax.scan(step, start, None, length=max_len)[1], 0, 1)


@auto_inside
def beam_search(params: Params, src: Int[Array, "B S"], src_lengths: Int[Array, "B"],
                cfg: Config, *, beam_size: int = 4, max_len: int | None = None):
    """Beam search over whole sequences by their total log-probability.

    A beam that emits ``EOS`` is finished: it extends with ``pad`` at no cost, so finished and
    open hypotheses compete on the same score. With ``beam_size = 1`` this is greedy decoding.

    Returns:
        ``(tokens [B, beam_size, max_len], scores [B, beam_size])``, best first; ``pad_id``
        after ``EOS``.

    Raises:
        ValueError: ``beam_size`` not an int >= 1, or more than the distinct hypotheses of
            ``max_len`` tokens (``w = vocab_size − 2`` tokens may be emitted, ``pad`` and
            ``bos`` never: ``w`` for one token, ``1 + (w − 1) w`` for two, ...; more beams
            than that would be impossible ones), ``max_len`` not an int >= 1; bad inputs as
            in :func:`apply`.

    >>> cfg = PRESETS["tiny"]
    >>> (src, n, _), _ = example_batch(jax.random.key(1), cfg, 2)
    >>> tokens, scores = beam_search(init(jax.random.key(0), cfg), src, n, cfg, beam_size=3)
    >>> tokens.shape, scores.shape
    ((2, 3, 10), (2, 3))
    """
    _checks.positive_int(beam_size, "beam_size")
    max_len = _max_len(max_len, cfg)
    _check_beams(beam_size, max_len, cfg)
    _check_source(params, src, src_lengths, cfg)
    b, n, v = src.shape[0], beam_size, cfg.vocab_size
    state = jax.tree.map(lambda a: jnp.repeat(a, n, 0),
                         _init_decoder(params, src, src_lengths, cfg))
    only_pad = jnp.full((v,), _NEG).at[cfg.pad_id].set(0.0)

    def step(carry, t):
        state, token, scores, done, tokens = carry
        logits, state = _decode_step(params, state, token.reshape(-1), cfg)
        logp = jax.nn.log_softmax(_allowed(logits, cfg).astype(jnp.float32)).reshape(b, n, v)
        logp = jnp.where(done[..., None], only_pad, logp)
        scores, idx = jax.lax.top_k((scores[..., None] + logp).reshape(b, n * v), n)
        beam, token = idx // v, (idx % v).astype(jnp.int32)
        pick = lambda a: jnp.take_along_axis(a, beam.reshape(beam.shape + (1,) * (a.ndim - 2)), 1)
        state = jax.tree.map(lambda a: pick(a.reshape((b, n) + a.shape[1:])).reshape(a.shape),
                             state)
        tokens = pick(tokens).at[:, :, t].set(token)
        done = pick(done) | (token == cfg.eos_id)
        return (state, token, scores, done, tokens), None

    scores = jnp.full((b, n), _NEG).at[:, 0].set(0.0)
    start = (state, jnp.full((b, n), cfg.bos_id, jnp.int32), scores, jnp.zeros((b, n), bool),
             jnp.full((b, n, max_len), cfg.pad_id, jnp.int32))
    start, _ = vary_together(start, src)
    (_, _, scores, _, tokens), _ = jax.lax.scan(step, start, jnp.arange(max_len))
    return tokens, scores


def sequence_log_prob(params: Params, src, src_lengths, tgt_out: Int[Array, "B T"],
                      cfg: Config) -> Float[Array, "B"]:
    """``log p(tgt_out | src)`` summed over the non-pad target tokens (teacher forcing), under
    the decoders' distribution (``pad`` and ``bos`` excluded, as in :func:`beam_search`)."""
    _check_tokens(tgt_out, "tgt_out", cfg)
    tgt_in = shift_right(tgt_out, cfg)
    logits = _allowed(apply(params, src, src_lengths, tgt_in, cfg=cfg), cfg)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    picked = jnp.take_along_axis(logp, tgt_out[..., None], -1)[..., 0]
    return jnp.sum(jnp.where(tgt_out != cfg.pad_id, picked, 0.0), -1)


def shift_right(tgt_out: Int[Array, "B T"], cfg: Config) -> Int[Array, "B T"]:
    """Decoder inputs for teacher forcing: ``BOS`` followed by ``tgt_out[:, :-1]``."""
    bos = jnp.full(tgt_out.shape[:1] + (1,), cfg.bos_id, tgt_out.dtype)
    return jnp.concatenate([bos, tgt_out[:, :-1]], 1)


# --- training ---------------------------------------------------------------------------------

def loss(params: Params, inputs, targets: Int[Array, "B T"], cfg: Config, *,
         key=None) -> jax.Array:
    """Mean cross-entropy over the non-pad target tokens (teacher forcing).

    ``inputs`` is the tuple :func:`apply` takes, ``(src, src_lengths, tgt_in)``.
    """
    inputs = _checks.inputs_tuple(inputs, "inputs", 3, "(src, src_lengths, tgt_in)")
    logits = apply(params, *inputs, cfg=cfg, key=key, train=key is not None)
    return cross_entropy(logits, targets, targets != cfg.pad_id)


def task_batch(rng: np.random.Generator, cfg: Config, batch_size: int, *, min_len: int = 5,
               max_len: int = 20):
    """The synthetic task as NumPy arrays: random tokens of random lengths, reversed (or
    copied, ``objective="autoencode"``), ``EOS`` appended.

    Returns:
        ``((src [B, max_len], src_lengths [B], tgt_in [B, max_len+1]), tgt_out [B, max_len+1])``.
    """
    first = 3 if max(cfg.pad_id, cfg.bos_id, cfg.eos_id) == 2 else 0
    symbols = np.setdiff1d(np.arange(first, cfg.vocab_size), [cfg.pad_id, cfg.bos_id, cfg.eos_id])
    lengths = rng.integers(min_len, max_len + 1, batch_size)
    src = np.full((batch_size, max_len), cfg.pad_id, np.int32)
    tgt = np.full((batch_size, max_len + 1), cfg.pad_id, np.int32)
    for i, n in enumerate(lengths):
        seq = rng.choice(symbols, n)
        src[i, :n] = seq
        tgt[i, :n] = seq[::-1] if cfg.objective == "reverse" else seq
        tgt[i, n] = cfg.eos_id
    tgt_in = np.concatenate([np.full((batch_size, 1), cfg.bos_id, np.int32), tgt[:, :-1]], 1)
    return (src, lengths.astype(np.int32), tgt_in), tgt


def exact_match(pred: Int[Array, "B T"], tgt_out: Int[Array, "B T"], cfg: Config) -> Array:
    """Per sequence: every token up to and including ``EOS`` right, nothing after it."""
    t = max(pred.shape[1], tgt_out.shape[1])
    pad = lambda a: jnp.pad(a, ((0, 0), (0, t - a.shape[1])), constant_values=cfg.pad_id)
    return jnp.all(pad(pred) == pad(tgt_out), -1)


def example_batch(key: jax.Array, cfg: Config, batch_size: int):
    """A batch of the synthetic task in JAX (lengths 1 … min(8, ``max_decode_len`` − 1)).

    Returns:
        ``((src [B, S], src_lengths [B], tgt_in [B, S+1]), tgt_out [B, S+1])``.
    """
    k_len, k_tok = jax.random.split(key)
    s = max(1, min(8, cfg.max_decode_len - 1))
    lengths = jax.random.randint(k_len, (batch_size,), 1, s + 1)
    src = jax.random.randint(k_tok, (batch_size, s), 3, cfg.vocab_size)
    t = jnp.arange(s + 1)[None, :]
    n = lengths[:, None]
    src = jnp.where(t[:, :s] < n, src, cfg.pad_id)
    order = n - 1 - t if cfg.objective == "reverse" else t
    body = jnp.take_along_axis(src, jnp.clip(order, 0, s - 1), 1)
    tgt = jnp.where(t < n, body, jnp.where(t == n, cfg.eos_id, cfg.pad_id)).astype(jnp.int32)
    return (src.astype(jnp.int32), lengths.astype(jnp.int32), shift_right(tgt, cfg)), tgt


# --- private pieces ---------------------------------------------------------------------------

@jax.jit(static_argnums=3)
def _encode(params, src, src_lengths, cfg):
    """Encoder final state, directions of each layer concatenated: ``[B, L, E·D]``."""
    x = _embed(params["src_embed_vi"], src, cfg)
    _, state = rnn.encode(params["encoder"], x, src_lengths, cfg.encoder)
    merge = lambda a: None if a is None else a.reshape(a.shape[0], cfg.num_layers, -1)
    return rnn.State(merge(state.h), merge(state.c))


def _embed(table, tokens, cfg):
    return constrain(jnp.take(table, tokens, axis=0).astype(cfg.dtype),
                     ("batch",) + (None,) * tokens.ndim)


def _logits(params, y):
    return y @ params["out"]["w"].astype(y.dtype) + params["out"]["b"].astype(y.dtype)


def _allowed(logits, cfg):
    forbid = jnp.zeros(logits.shape[-1], bool).at[jnp.array([cfg.pad_id, cfg.bos_id])].set(True)
    return jnp.where(forbid, jnp.asarray(_NEG, logits.dtype), logits)


def _check_beams(beam_size, max_len, cfg):
    """Refuses more beams than distinct hypotheses of ``max_len`` tokens: with ``w`` tokens
    allowed, ``(w − 1)^(k − 1)`` end with their first ``EOS`` at ``k``, ``(w − 1)^max_len``
    have none."""
    open_ = cfg.vocab_size - 3                         # allowed tokens other than EOS
    count, prefixes = 0, 1
    for _ in range(max_len):
        count, prefixes = count + prefixes, prefixes * open_
        if count + prefixes >= beam_size:
            return
    raise ValueError(f"beam_size must be <= {count + prefixes}, the distinct hypotheses of "
                     f"max_len={max_len} token(s) over the vocab_size - 2 = "
                     f"{cfg.vocab_size - 2} tokens the decoder may emit (never pad or bos); "
                     f"got {beam_size}: the extra beams would be impossible ones")


def _max_len(max_len, cfg):
    max_len = cfg.max_decode_len if max_len is None else max_len
    _checks.positive_int(max_len, "max_len")
    return max_len


def _check_tokens(tokens, name, cfg):
    _checks.check_array(tokens, name, rank=2, letters="B T", kind="int", nonempty=True)
    _checks.in_range(tokens, name, 0, cfg.vocab_size - 1, what="token ids",
                     hint=f"The vocabulary has vocab_size={cfg.vocab_size} ids.")


def _check_source(params, src, src_lengths, cfg):
    _check_tokens(src, "src", cfg)
    b, s = src.shape
    _checks.check_array(src_lengths, "src_lengths", shape=(b,), letters="B", kind="int")
    _checks.in_range(src_lengths, "src_lengths", 1, s, what="lengths",
                     hint=f"Each source has 1 to S={s} tokens (src has shape "
                          f"{_checks.shape_str(src.shape)}).")
    _checks.check_params(params, init, cfg)


def _check_state(state, cfg):
    if not isinstance(state, rnn.State):
        raise TypeError(f"state must be a zoo.rnn.State from init_decoder, got "
                        f"{type(state).__name__}")
    width = cfg.decoder.hidden_dim
    _checks.check_array(state.h, "state.h", shape=(None, cfg.num_layers, width),
                        letters="B L E*D", kind="float", nonempty=True)
    if (state.c is None) != (cfg.cell == "gru"):
        raise ValueError(f"state.c must be {'None' if cfg.cell == 'gru' else 'an array'} for "
                         f"a {cfg.cell} decoder, got {type(state.c).__name__}")
    if state.c is not None:
        _checks.check_array(state.c, "state.c", shape=state.h.shape, letters="B L E*D",
                            kind="float")
