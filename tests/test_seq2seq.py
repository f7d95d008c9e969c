"""Tests for zoo.seq2seq: teacher forcing equals step-by-step decoding, greedy and beam search
against exhaustive search, the autoencoder's embedding, bad inputs, and learning the reverse
task."""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import zoo
from zoo import rnn, seq2seq
from zoo.train import init_state, make_train_step
from tests.tolerances import assert_close

CFGS = {
    "gru-bidir-2layer": seq2seq.Config(cell="gru", vocab_size=7, embed_dim=5, hidden_dim=6,
                                       num_layers=2, max_decode_len=9),
    "lstm": seq2seq.Config(cell="lstm", vocab_size=7, embed_dim=5, hidden_dim=6,
                           bidirectional=False, max_decode_len=9),
}


_step = jax.jit(seq2seq.decode_step, static_argnums=3)


def _setup(name, seed=0, batch=3):
    cfg = CFGS[name]
    params = seq2seq.init(jax.random.key(seed), cfg)
    (src, n, tgt_in), tgt = seq2seq.example_batch(jax.random.key(seed + 1), cfg, batch)
    return cfg, params, src, n, tgt_in, tgt


@pytest.mark.parametrize("name", CFGS)
def test_teacher_forcing_equals_step_by_step_decoding(name):
    cfg, params, src, n, tgt_in, _ = _setup(name)
    logits = seq2seq.apply(params, src, n, tgt_in, cfg)
    state = seq2seq.init_decoder(params, src, n, cfg)
    steps = []
    for t in range(tgt_in.shape[1]):
        step_logits, state = _step(params, state, tgt_in[:, t], cfg)
        steps.append(step_logits)
    assert_close(logits, jnp.stack(steps, 1))


@pytest.mark.parametrize("name", CFGS)
def test_encoder_state_is_the_rnn_final_state_and_ignores_padding(name):
    cfg, params, src, n, _, _ = _setup(name)
    state = seq2seq.init_decoder(params, src, n, cfg)
    x = params["src_embed_vi"][src]
    _, ref = rnn.apply(params["encoder"], x, n, cfg.encoder, return_state=True)
    assert_close(state.h.reshape(ref.h.shape), ref.h)
    # Changing tokens past a sequence's length changes nothing.
    garbage = jnp.where(jnp.arange(src.shape[1])[None] >= n[:, None], 5, src)
    assert_close(seq2seq.embed(params, garbage, n, cfg), seq2seq.embed(params, src, n, cfg))


@pytest.mark.parametrize("name", CFGS)
def test_greedy_equals_python_argmax_loop_and_beam_of_one(name):
    cfg, params, src, n, _, _ = _setup(name, seed=3)
    greedy = seq2seq.greedy_decode(params, src, n, cfg, max_len=6)
    state = seq2seq.init_decoder(params, src, n, cfg)
    token = np.full(src.shape[0], cfg.bos_id)
    done = np.zeros(src.shape[0], bool)
    expected = []
    for _ in range(6):
        logits, state = _step(params, state, jnp.asarray(token), cfg)
        logits = np.asarray(logits).copy()
        logits[:, [cfg.pad_id, cfg.bos_id]] = -np.inf
        token = np.where(done, cfg.pad_id, logits.argmax(-1))
        done |= token == cfg.eos_id
        expected.append(token)
    np.testing.assert_array_equal(greedy, np.stack(expected, 1))
    beam, _ = seq2seq.beam_search(params, src, n, cfg, beam_size=1, max_len=6)
    np.testing.assert_array_equal(beam[:, 0], greedy)


def test_decoders_run_inside_a_users_shard_map():
    """Greedy and beam decoding with the batch split over a user's ``shard_map`` (its own
    axis name) equal decoding the whole batch at once."""
    cfg, params, src, n, _, _ = _setup("lstm", seed=3, batch=8)
    mesh = jax.make_mesh((8,), ("shards",), axis_types=(jax.sharding.AxisType.Auto,))
    split = jax.sharding.PartitionSpec("shards")
    for decode in (lambda p, s, n: seq2seq.greedy_decode(p, s, n, cfg, max_len=6),
                   lambda p, s, n: seq2seq.beam_search(p, s, n, cfg, beam_size=3, max_len=6)):
        run = jax.jit(jax.shard_map(decode, mesh=mesh, out_specs=split,
                                    in_specs=(jax.sharding.PartitionSpec(), split, split)))
        for got, expected in zip(jax.tree.leaves(run(params, src, n)),
                                 jax.tree.leaves(decode(params, src, n)), strict=True):
            assert_close(got, expected)


def test_decoders_and_embeddings_on_a_users_explicit_mesh():
    """Under ``jax.make_mesh``'s default ``Explicit`` axes, with the batch placed split
    eight ways, greedy and beam decoding, the autoencoder embedding and a decoder step equal
    the whole-batch results and come back split over the batch."""
    cfg, params, src, n, _, _ = _setup("lstm", seed=3, batch=8)
    calls = (lambda p, s, n: seq2seq.greedy_decode(p, s, n, cfg, max_len=6),
             lambda p, s, n: seq2seq.beam_search(p, s, n, cfg, beam_size=3, max_len=6),
             lambda p, s, n: seq2seq.embed(p, s, n, cfg),
             lambda p, s, n: seq2seq.decode_step(p, seq2seq.init_decoder(p, s, n, cfg), s[:, 0],
                                                 cfg))
    mesh = jax.make_mesh((8,), ("shards",), axis_types=(jax.sharding.AxisType.Explicit,))
    for call in calls:
        with jax.set_mesh(mesh):
            split = jax.device_put((src, n), jax.sharding.PartitionSpec("shards"))
            got = jax.jit(call)(params, *split)
        for g, expected in zip(jax.tree.leaves(got), jax.tree.leaves(call(params, src, n)),
                               strict=True):
            assert g.sharding.spec[0] == "shards"
            assert_close(g, expected)


def test_beam_search_finds_the_exhaustive_optimum_and_scores_are_log_probs():
    cfg, params, src, n, _, _ = _setup("lstm", seed=5, batch=2)
    max_len, words = 3, [t for t in range(cfg.vocab_size) if t not in (0, 1)]
    tokens, scores = seq2seq.beam_search(params, src, n, cfg, beam_size=len(words) ** 2,
                                         max_len=max_len)
    assert bool(jnp.all(scores[:, :-1] >= scores[:, 1:]))
    # Every candidate: words until EOS, pad after it.
    candidates = {tuple(c[:c.index(2) + 1] + (0,) * (max_len - c.index(2) - 1)) if 2 in c else c
                  for c in itertools.product(words, repeat=max_len)}
    candidates = jnp.asarray(sorted(candidates))
    for b in range(2):
        rep = lambda a: jnp.repeat(a[b:b + 1], len(candidates), 0)
        logp = seq2seq.sequence_log_prob(params, rep(src), rep(n), candidates, cfg)
        best = int(jnp.argmax(logp))
        np.testing.assert_array_equal(tokens[b, 0], candidates[best])
        assert_close(scores[b, 0], logp[best], rtol=1e-5, atol=1e-5)   # sums of log-softmaxes
    # The returned scores are the sequences' log-probabilities.
    assert_close(scores[:, 1], seq2seq.sequence_log_prob(params, src, n, tokens[:, 1], cfg),
                 rtol=1e-5, atol=1e-5)


def test_decoders_stop_at_eos_and_pad_after_it():
    cfg, params, src, n, _, _ = _setup("gru-bidir-2layer", seed=7, batch=4)
    # Make EOS overwhelmingly likely after the first step: the head's EOS bias.
    params = jax.tree.map(lambda a: a, params)
    params["out"]["b"] = params["out"]["b"].at[cfg.eos_id].set(50.0)
    greedy = seq2seq.greedy_decode(params, src, n, cfg, max_len=5)
    np.testing.assert_array_equal(greedy[:, 0], cfg.eos_id)
    np.testing.assert_array_equal(greedy[:, 1:], cfg.pad_id)
    tokens, _ = seq2seq.beam_search(params, src, n, cfg, beam_size=3, max_len=5)
    np.testing.assert_array_equal(tokens[:, 0, 0], cfg.eos_id)


def test_autoencoder_embedding_is_fixed_size_for_any_length():
    cfg = zoo.get("seq2seq-lstm-tiny").config
    assert cfg.objective == "autoencode"
    params = seq2seq.init(jax.random.key(9), cfg)
    short = seq2seq.embed(params, jnp.full((2, 3), 4), jnp.array([3, 2]), cfg)
    long = seq2seq.embed(params, jnp.full((2, 13), 4), jnp.array([13, 11]), cfg)
    assert short.shape == long.shape == (2, cfg.num_layers * cfg.hidden_dim)
    (src, n, tgt_in), tgt = seq2seq.example_batch(jax.random.key(10), cfg, 3)
    for b in range(3):                      # the copy task: target = source, then EOS
        np.testing.assert_array_equal(tgt[b, :n[b]], src[b, :n[b]])
        assert int(tgt[b, n[b]]) == cfg.eos_id


def test_reverse_task_batches_are_reversals():
    cfg = seq2seq.REVERSE
    (src, n, tgt_in), tgt = seq2seq.task_batch(np.random.default_rng(0), cfg, 50)
    assert n.min() >= 5 and n.max() <= 20
    for b in range(50):
        np.testing.assert_array_equal(tgt[b, :n[b]], src[b, :n[b]][::-1])
        assert tgt[b, n[b]] == cfg.eos_id and (tgt[b, n[b] + 1:] == 0).all()
        assert (src[b, n[b]:] == 0).all() and (src[b, :n[b]] >= 3).all()
    np.testing.assert_array_equal(tgt_in[:, 1:], tgt[:, :-1])


def test_bad_inputs_raise_clear_errors():
    cfg, params, src, n, tgt_in, _ = _setup("lstm")
    with pytest.raises(ValueError, match=r"src_lengths must hold lengths in \[1, 8\]"):
        seq2seq.apply(params, src, n.at[0].set(src.shape[1] + 1), tgt_in, cfg)
    with pytest.raises(ValueError, match=r"src_lengths must hold lengths in \[1, 8\]"):
        seq2seq.apply(params, src, n.at[0].set(-1), tgt_in, cfg)
    with pytest.raises(ValueError, match="src_lengths must have shape"):
        seq2seq.apply(params, src, n[:2], tgt_in, cfg)
    with pytest.raises(ValueError, match=r"src is empty: axis 1 \(T\)"):
        seq2seq.apply(params, src[:, :0], jnp.zeros_like(n), tgt_in, cfg)
    with pytest.raises(ValueError, match="src and tgt_in must have the same batch size"):
        seq2seq.apply(params, src, n, tgt_in[:2], cfg)
    with pytest.raises(ValueError, match=r"src must hold token ids in \[0, 6\]"):
        seq2seq.apply(params, src.at[0, 0].set(cfg.vocab_size), n, tgt_in, cfg)
    with pytest.raises(TypeError, match="dtype"):
        seq2seq.apply(params, src.astype(jnp.float32), n, tgt_in, cfg)
    with pytest.raises(ValueError, match="beam_size"):
        seq2seq.beam_search(params, src, n, cfg, beam_size=0)
    with pytest.raises(ValueError, match="eos_id"):
        dataclasses.replace(cfg, eos_id=9)


# --- learning the reverse task ----------------------------------------------------------------

def _train(model, steps, batch, lr, min_len, max_len):
    spec = zoo.get(model)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr))
    state = init_state(spec, optimizer, jax.random.key(0))
    step = make_train_step(spec, optimizer)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        inputs, targets = seq2seq.task_batch(rng, spec.config, batch, min_len=min_len,
                                             max_len=max_len)
        state, loss = step(state, inputs, targets)
    return spec, state.params


def test_learns_to_reverse_short_sequences():
    """Short run on short sequences: token accuracy far above chance (1/13)."""
    spec, params = _train("seq2seq-tiny", steps=300, batch=64, lr=1e-2, min_len=2, max_len=4)
    cfg = spec.config
    (src, n, tgt_in), tgt = seq2seq.task_batch(np.random.default_rng(1), cfg, 256,
                                               min_len=2, max_len=4)
    logits = seq2seq.apply(params, jnp.asarray(src), jnp.asarray(n), jnp.asarray(tgt_in), cfg)
    mask = tgt != cfg.pad_id
    accuracy = float(((np.asarray(logits).argmax(-1) == tgt) & mask).sum() / mask.sum())
    assert accuracy > 0.6, accuracy


@pytest.mark.slow
def test_reverse_task_reaches_99_percent_exact_sequences():
    from tests._examples import load_example
    example = load_example("reverse_seq2seq")
    params, _ = example.train(log_every=0)
    assert example.evaluate(params) >= 0.99
