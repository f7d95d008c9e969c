"""Misuses of every entry point of the model families (configs, apply, decoding, sharding),
each refused with an exception whose message names the culprit: the argument, what was
expected and what arrived.

The value checks (token ids, lengths, labels, a full cache) are also run under ``jax.jit``,
where they execute with the compiled program: the call then fails with a
``jax.errors.JaxRuntimeError`` that carries the same message.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType

import zoo
from zoo import _checks, cnn, kv_cache, mlp, perceptron, seq2seq, sharding
from zoo import transformer as tf

JIT_ERROR = jax.errors.JaxRuntimeError


def _raises_under_jit(fn, *args, match):
    """``jax.jit(fn)(*args)`` fails when run, with ``match`` in the message."""
    with pytest.raises(JIT_ERROR, match=match):
        jax.block_until_ready(jax.jit(fn)(*args))


def _setup(name):
    spec = zoo.get(name)
    return spec.config, spec.init(jax.random.key(0))


# --- transformer --------------------------------------------------------------------------------

TF = tf.PRESETS["tiny"]            # encoder-decoder, vocab_size 12, max_len 16
LM = tf.PRESETS["lm_tiny"]          # decoder, vocab_size 12, max_len 16


@pytest.mark.parametrize("changes, match", [
    ({"kind": "encdec"}, r"kind must be one of .*got 'encdec'"),
    ({"vocab_size": 3}, r"vocab_size must be an integer >= 4, got 3"),
    ({"dropout": True}, r"dropout must be in \[0, 1\), got True"),
    ({"norm": "Pre"}, r"norm must be one of \['post', 'pre'\], got 'Pre'"),
    ({"d_model": 10}, r"d_model must be divisible by num_heads, got d_model=10, num_heads=4"),
    ({"num_layers": 0}, r"num_layers must be an integer >= 1, got 0"),
    ({"positions": "rope"}, r"positions must be one of .*got 'rope'"),
    ({"max_len": 2.5}, r"max_len must be an integer >= 1, got 2.5"),
])
def test_transformer_config_misuse(changes, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(TF, **changes)


def test_transformer_apply_misuse():
    params = tf.init(jax.random.key(0), LM)
    ok = jnp.full((2, 5), 4)
    with pytest.raises(ValueError, match=r"tokens must hold token ids in \[0, 11\], got values "
                                         r"from 4 to 12\. The vocabulary has vocab_size=12"):
        tf.apply(params, ok.at[1, 2].set(12), cfg=LM)
    with pytest.raises(ValueError, match=r"tokens must hold token ids in \[0, 11\], got values "
                                         r"from -1 to 4"):
        tf.apply(params, ok.at[0, 0].set(-1), cfg=LM)
    with pytest.raises(ValueError, match=r"tokens is empty: axis 1 \(T\) of shape \(2, 0\)"):
        tf.apply(params, ok[:, :0], cfg=LM)
    with pytest.raises(ValueError, match=r"tokens is empty: axis 0 \(B\) of shape \(0, 5\)"):
        tf.apply(params, ok[:0], cfg=LM)
    with pytest.raises(TypeError, match=r"tokens must have a int dtype, got float32"):
        tf.apply(params, ok.astype(jnp.float32), cfg=LM)
    with pytest.raises(TypeError, match=r"cfg is keyword-only: call apply\(params, tokens, "
                                        r"cfg=cfg\)"):
        tf.apply(params, ok, LM)
    with pytest.raises(ValueError, match=r"a decoder takes one token array.*got tgt_in too"):
        tf.apply(params, ok, ok, cfg=LM)
    with pytest.raises(ValueError, match=r"tokens has 17 positions, more than the positional "
                                         r"table holds \(max_len=16\)"):
        tf.apply(params, jnp.full((2, 17), 4), cfg=LM)


def test_transformer_ids_out_of_range_fail_under_jit():
    params = tf.init(jax.random.key(0), LM)
    run = lambda p, x: tf.apply(p, x, cfg=LM)
    _raises_under_jit(run, params, jnp.full((2, 5), 4).at[1, 3].set(12),
                      match=r"tokens must hold token ids in \[0, 11\], got values from 4 to 12")
    _raises_under_jit(run, params, jnp.full((2, 5), 4).at[0, 0].set(-3),
                      match=r"tokens must hold token ids in \[0, 11\], got values from -3 to 4")
    enc = tf.init(jax.random.key(0), TF)
    src, tgt = jnp.full((2, 5), 4), jnp.full((2, 3), 1)
    _raises_under_jit(lambda p, s, t: tf.apply(p, s, t, cfg=TF), enc, src, tgt.at[1, 2].set(40),
                      match=r"tgt_in must hold token ids in \[0, 11\], got values from 1 to 40")


def test_transformer_encoder_decoder_misuse():
    params = tf.init(jax.random.key(0), TF)
    src, tgt = jnp.full((2, 5), 4), jnp.full((3, 4), 1)
    with pytest.raises(ValueError, match=r"src and tgt_in must have the same batch size "
                                         r"\(axis 0\): src has shape \(2, 5\), tgt_in has "
                                         r"shape \(3, 4\)"):
        tf.apply(params, src, tgt, cfg=TF)
    with pytest.raises(ValueError, match=r"encoder_decoder takes two token arrays.*tgt_in is "
                                         r"missing"):
        tf.apply(params, src, cfg=TF)
    with pytest.raises(ValueError, match=r"src and tgt_in must have the same batch size"):
        tf.attention_maps(params, src, tgt, cfg=TF, stack="cross")
    with pytest.raises(ValueError, match=r"pass stack= one of"):
        tf.attention_maps(params, src, tgt[:2], cfg=TF)
    with pytest.raises(ValueError, match=r"src must have batch_size=3 rows, got shape \(2, 5\)"):
        kv_cache.init_cache(params, TF, 3, 4, src=src)
    with pytest.raises(TypeError, match=r"inputs must be a tuple \(src, tgt_in\) of 2 arrays, "
                                        r"got a bare ArrayImpl of shape \(2, 5\)"):
        tf.loss(params, src, src, TF)


def test_transformer_params_of_another_config_name_the_parameter_and_shapes():
    params = tf.init(jax.random.key(0), dataclasses.replace(LM, d_ff=32))
    with pytest.raises(ValueError, match=r"params\['decoder'\]\['ffn'\]\['b1_lf'\] has shape "
                                         r"\(1, 32\), but the config expects \(1, 16\)"):
        tf.apply(params, jnp.full((2, 5), 4), cfg=LM)
    with pytest.raises(ValueError, match=r"lacks params\['decoder'\]"):
        tf.apply(tf.init(jax.random.key(0), tf.PRESETS["mlm_tiny"]), jnp.full((2, 5), 4),
                 cfg=LM)


def test_transformer_decoding_misuse():
    params = tf.init(jax.random.key(0), LM)
    cache = kv_cache.init_cache(params, LM, 2, 2)
    token = jnp.array([3, 4])
    for _ in range(2):
        _, cache = kv_cache.decode_step(params, cache, token, LM)
    with pytest.raises(ValueError, match=r"cache.index must be < 2, got 2\. The cache holds "
                                         r"max_len=2 positions"):
        kv_cache.decode_step(params, cache, token, LM)
    with pytest.raises(ValueError, match=r"token has shape \(3\) but the cache was made for "
                                         r"batch_size=2"):
        kv_cache.decode_step(params, kv_cache.init_cache(params, LM, 2, 2), jnp.array([3, 4, 5]), LM)
    with pytest.raises(TypeError, match=r"cache must be a KVCache from init_cache, got tuple"):
        kv_cache.decode_step(params, tuple(cache), token, LM)
    with pytest.raises(ValueError, match=r"length must be an integer >= 1, got 0"):
        kv_cache.greedy_decode(params, jnp.full((2, 3), 4), LM, 0)
    with pytest.raises(ValueError, match=r"length=15 after a prompt of 3 token\(s\) needs 17 "
                                         r"positions.*cfg.max_len=16"):
        kv_cache.greedy_decode(params, jnp.full((2, 3), 4), LM, 15)
    with pytest.raises(ValueError, match=r"encoder-only model has no incremental decoding"):
        kv_cache.init_cache(tf.init(jax.random.key(0), tf.PRESETS["mlm_tiny"]),
                      tf.PRESETS["mlm_tiny"], 2, 4)
    with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1, got 0"):
        kv_cache.init_cache(params, LM, 0, 4)


def test_transformer_decoding_checks_run_under_jit():
    params = tf.init(jax.random.key(0), LM)
    step = lambda p, c, t: kv_cache.decode_step(p, c, t, LM)
    full = kv_cache.init_cache(params, LM, 2, 1)._replace(index=jnp.int32(1))
    _raises_under_jit(step, params, full, jnp.array([3, 4]),
                      match=r"cache.index must be < 1, got 1")
    _raises_under_jit(step, params, kv_cache.init_cache(params, LM, 2, 3), jnp.array([3, 99]),
                      match=r"token must hold token ids in \[0, 11\], got values from 3 to 99")
    _raises_under_jit(lambda p, s: kv_cache.greedy_decode(p, s, LM, 2), params,
                      jnp.full((2, 3), 4).at[0, 1].set(-1),
                      match=r"src must hold token ids in \[0, 11\], got values from -1 to 4")


def test_value_checks_hold_under_vmap_grad_and_shard_map():
    params = tf.init(jax.random.key(0), LM)
    bad = jnp.full((8, 5), 4).at[5, 1].set(12)
    match = r"tokens must hold token ids in \[0, 11\], got values from 4 to 12"
    one = lambda p, x: tf.apply(p, x[None], cfg=LM)[0]
    _raises_under_jit(jax.vmap(one, in_axes=(None, 0)), params, bad, match=match)
    with pytest.raises(ValueError, match=match):                    # vmap, not jitted
        jax.vmap(one, in_axes=(None, 0))(params, bad)
    loss = lambda p, x: tf.loss(p, (x[:, :-1],), x[:, 1:], LM)
    # the bad id is both an input token and a target: either check may report first
    both = r"(tokens must hold token ids|labels must hold class ids) in \[0, 11\]"
    _raises_under_jit(jax.grad(loss), params, bad, match=both)
    P = jax.sharding.PartitionSpec
    mesh = jax.make_mesh((8,), ("shards",), axis_types=(AxisType.Auto,))
    split = jax.shard_map(lambda p, x: tf.apply(p, x, cfg=LM), mesh=mesh,
                          in_specs=(P(), P("shards")), out_specs=P("shards"))
    _raises_under_jit(split, params, bad, match=match)


def test_traced_checks_can_be_switched_off(monkeypatch):
    """``ZOO_TRACED_CHECKS=0`` (here: the flag it sets) compiles no value checks; the eager
    ones stay."""
    monkeypatch.setattr(_checks, "TRACED_CHECKS", False)
    params = tf.init(jax.random.key(0), LM)
    bad = jnp.full((2, 5), 4).at[1, 3].set(12)
    out = jax.jit(lambda p, x: tf.apply(p, x, cfg=LM))(params, bad)
    assert out.shape == (2, 5, 12)
    with pytest.raises(ValueError, match=r"tokens must hold token ids in \[0, 11\]"):
        tf.apply(params, bad, cfg=LM)


# --- seq2seq ------------------------------------------------------------------------------------

S2S = seq2seq.Config(cell="gru", vocab_size=9, embed_dim=5, hidden_dim=6, max_decode_len=7)


def _s2s():
    params = seq2seq.init(jax.random.key(0), S2S)
    src = jnp.full((2, 5), 4)
    return params, src, jnp.array([5, 3]), jnp.full((2, 4), 1)


@pytest.mark.parametrize("changes, match", [
    ({"cell": "rnn"}, r"cell must be one of \['gru', 'lstm'\], got 'rnn'"),
    ({"bidirectional": "no"}, r"bidirectional must be a bool \(True or False\), got 'no' "
                              r"\(str\)"),
    ({"bidirectional": 1}, r"bidirectional must be a bool .*got 1 \(int\)"),
    ({"eos_id": 0}, r"pad_id, bos_id, eos_id must differ, got \(0, 1, 0\)"),
    ({"eos_id": 9}, r"eos_id must lie in \[0, vocab_size=9\), got 9"),
    ({"max_decode_len": 0}, r"max_decode_len must be an integer >= 1, got 0"),
    ({"objective": "copy"}, r"objective must be one of .*got 'copy'"),
])
def test_seq2seq_config_misuse(changes, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(S2S, **changes)


def test_seq2seq_apply_misuse():
    params, src, n, tgt_in = _s2s()
    with pytest.raises(ValueError, match=r"src and tgt_in must have the same batch size "
                                         r"\(axis 0\): src has shape \(2, 5\), tgt_in has "
                                         r"shape \(3, 4\)"):
        seq2seq.apply(params, src, n, jnp.full((3, 4), 1), cfg=S2S)
    with pytest.raises(ValueError, match=r"src_lengths must hold lengths in \[1, 5\], got "
                                         r"values from 3 to 6"):
        seq2seq.apply(params, src, n.at[0].set(6), tgt_in, cfg=S2S)
    with pytest.raises(ValueError, match=r"src_lengths must hold lengths in \[1, 5\], got "
                                         r"values from -2 to 5"):
        seq2seq.apply(params, src, n.at[1].set(-2), tgt_in, cfg=S2S)
    with pytest.raises(ValueError, match=r"src is empty: axis 0 \(B\)"):
        seq2seq.apply(params, src[:0], n[:0], tgt_in[:0], cfg=S2S)
    with pytest.raises(ValueError, match=r"tgt_in is empty: axis 1 \(T\)"):
        seq2seq.apply(params, src, n, tgt_in[:, :0], cfg=S2S)
    with pytest.raises(TypeError, match=r"src_lengths must have a int dtype, got float32"):
        seq2seq.apply(params, src, n.astype(jnp.float32), tgt_in, cfg=S2S)
    with pytest.raises(ValueError, match=r"params\['out'\]\['b'\] has shape \(10\), but the "
                                         r"config expects \(9\)"):
        seq2seq.apply(seq2seq.init(jax.random.key(0), dataclasses.replace(S2S, vocab_size=10)),
                      src, n, tgt_in, cfg=S2S)
    with pytest.raises(ValueError, match=r"lacks params\['encoder'\]\['layer_0'\]\['bwd'\]"):
        seq2seq.apply(seq2seq.init(jax.random.key(0), dataclasses.replace(
            S2S, bidirectional=False)), src, n, tgt_in, cfg=S2S)
    with pytest.raises(TypeError, match=r"inputs must be a tuple \(src, src_lengths, tgt_in\)"):
        seq2seq.loss(params, src, tgt_in, S2S)


def test_seq2seq_values_are_checked_under_jit():
    params, src, n, tgt_in = _s2s()
    run = lambda p, s, n, t: seq2seq.apply(p, s, n, t, cfg=S2S)
    _raises_under_jit(run, params, src, n.at[0].set(9), tgt_in,
                      match=r"src_lengths must hold lengths in \[1, 5\], got values from 3 to 9")
    _raises_under_jit(run, params, src, n.at[1].set(-1), tgt_in,
                      match=r"src_lengths must hold lengths in \[1, 5\], got values from -1")
    _raises_under_jit(run, params, src.at[0, 0].set(9), n, tgt_in,
                      match=r"src must hold token ids in \[0, 8\], got values from 4 to 9")
    _raises_under_jit(lambda p, s, n: seq2seq.greedy_decode(p, s, n, S2S, max_len=3), params,
                      src, n.at[0].set(0),
                      match=r"src_lengths must hold lengths in \[1, 5\], got values from 0")


def test_seq2seq_decoding_misuse():
    params, src, n, _ = _s2s()
    with pytest.raises(ValueError, match=r"beam_size must be <= 7, the distinct hypotheses of "
                                         r"max_len=1 token\(s\) over the vocab_size - 2 = 7 "
                                         r"tokens.*got 8"):
        seq2seq.beam_search(params, src, n, S2S, beam_size=8, max_len=1)
    with pytest.raises(ValueError, match=r"beam_size must be an integer >= 1, got 0"):
        seq2seq.beam_search(params, src, n, S2S, beam_size=0)
    with pytest.raises(ValueError, match=r"max_len must be an integer >= 1, got 0"):
        seq2seq.greedy_decode(params, src, n, S2S, max_len=0)
    state = seq2seq.init_decoder(params, src, n, S2S)
    with pytest.raises(TypeError, match=r"state must be a zoo.rnn.State from init_decoder, "
                                        r"got tuple"):
        seq2seq.decode_step(params, tuple(state), jnp.array([1, 1]), S2S)
    with pytest.raises(ValueError, match=r"token must have shape \(2\) \[B\], got \(3\)"):
        seq2seq.decode_step(params, state, jnp.array([1, 1, 1]), S2S)
    with pytest.raises(ValueError, match=r"token must hold token ids in \[0, 8\], got values "
                                         r"from 1 to 12"):
        seq2seq.decode_step(params, state, jnp.array([1, 12]), S2S)
    with pytest.raises(ValueError, match=r"tgt_out must hold token ids in \[0, 8\]"):
        seq2seq.sequence_log_prob(params, src, n, jnp.full((2, 3), 10), S2S)


def test_seq2seq_decode_step_ids_checked_under_jit():
    params, src, n, _ = _s2s()
    state = seq2seq.init_decoder(params, src, n, S2S)
    _raises_under_jit(lambda p, s, t: seq2seq.decode_step(p, s, t, S2S), params, state,
                      jnp.array([1, -4]),
                      match=r"token must hold token ids in \[0, 8\], got values from -4 to 1")


def test_beam_search_at_the_limit_returns_only_possible_beams():
    # max_len 1: exactly vocab_size - 2 = 7 one-token hypotheses, all with finite scores.
    params, src, n, _ = _s2s()
    tokens, scores = seq2seq.beam_search(params, src, n, S2S, beam_size=7, max_len=1)
    assert bool(jnp.all(scores > -1e8))
    assert sorted(np.asarray(tokens[0, :, 0]).tolist()) == list(range(2, 9))


# --- cnn ----------------------------------------------------------------------------------------

PROTEIN = cnn.PRESETS["protein_tiny"]        # tokens [B, 19], vocab_size 25
DNA = cnn.PRESETS["dna_tiny"]                # one-hot [B, 23, 4]


@pytest.mark.parametrize("changes, match", [
    ({"input_size": [23]}, r"input_size must be a tuple \(S,\) or \(Y, X\), got \[23\]"),
    ({"input_size": (9, 9), "padding": "causal"}, r"padding='causal' needs 1D inputs"),
    ({"pool": "min"}, r"pool must be one of \['avg', 'max', 'none'\], got 'min'"),
    ({"kernel_size": 0}, r"kernel_size must be an integer >= 1, got 0"),
    ({"channels": ()}, r"channels must be a non-empty tuple of ints, got \(\)"),
    ({"input_size": (4,), "padding": "valid", "kernel_size": 5},
     r"input_size: spatial size is too small"),
    ({"activation": "swish"}, r"activation must be one of .*got 'swish'"),
])
def test_cnn_config_misuse(changes, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(DNA, **changes)


def test_cnn_apply_misuse():
    params = cnn.init(jax.random.key(0), PROTEIN)
    tokens = jnp.full((2, 19), 3)
    with pytest.raises(ValueError, match=r"x must hold token ids in \[0, 24\], got values from "
                                         r"3 to 25\. The vocabulary has vocab_size=25"):
        cnn.apply(params, tokens.at[0, 4].set(25), cfg=PROTEIN)
    with pytest.raises(ValueError, match=r"x must hold token ids in \[0, 24\], got values from "
                                         r"-1 to 3"):
        cnn.apply(params, tokens.at[0, 4].set(-1), cfg=PROTEIN)
    with pytest.raises(ValueError, match=r"x is empty: axis 0 \(B\) of shape \(0, 19\)"):
        cnn.apply(params, tokens[:0], cfg=PROTEIN)
    dna = cnn.init(jax.random.key(0), DNA)
    with pytest.raises(ValueError, match=r"x is empty: axis 1 \(S\) of shape \(2, 0, 4\)"):
        cnn.apply(dna, jnp.ones((2, 0, 4)), cfg=DNA)
    with pytest.raises(ValueError, match=r"x must have shape \(\?, \?, 4\) \[B S C\], got "
                                         r"\(2, 23, 5\)"):
        cnn.apply(dna, jnp.ones((2, 23, 5)), cfg=DNA)
    with pytest.raises(ValueError, match=r"params\['conv_0'\]\['b'\] has shape \(8\), but the "
                                         r"config expects \(6\)"):
        cnn.apply(dna, jnp.ones((2, 23, 4)), cfg=dataclasses.replace(DNA, channels=(6,)))
    with pytest.raises(TypeError, match=r"x must be an array, got a tuple of 1 array\(s\): pass "
                                        r"a model's inputs unpacked"):
        zoo.get("cnn-dna_tiny").apply(dna, (jnp.ones((2, 23, 4)),))


def test_cnn_token_ids_checked_under_jit():
    params = cnn.init(jax.random.key(0), PROTEIN)
    _raises_under_jit(lambda p, x: cnn.apply(p, x, cfg=PROTEIN), params,
                      jnp.full((2, 19), 3).at[1, 0].set(30),
                      match=r"x must hold token ids in \[0, 24\], got values from 3 to 30")


def test_cnn_operations_misuse():
    x = jnp.ones((2, 9, 3))
    with pytest.raises(ValueError, match=r"w must have rank 3 \[W C O\] or 4 \[W_y W_x C O\], "
                                         r"got shape \(3, 3\)"):
        cnn.conv(x, jnp.ones((3, 3)))
    with pytest.raises(ValueError, match=r"channel mismatch: x has 3 channels .* expects C=4"):
        cnn.conv(x, jnp.ones((3, 4, 2)))
    with pytest.raises(ValueError, match=r"stride must be an integer >= 1 .*got 0"):
        cnn.conv(x, jnp.ones((3, 3, 2)), stride=0)
    with pytest.raises(ValueError, match=r"x is empty: axis 1"):
        cnn.conv(jnp.ones((2, 0, 3)), jnp.ones((3, 3, 2)), padding="same")
    with pytest.raises(ValueError, match=r"window \(size 10, dilation 1: spans 10\) is larger "
                                         r"than the unpadded input \(size 9\)"):
        cnn.max_pool(x, 10)
    with pytest.raises(ValueError, match=r"image must have rank 2 \[Y X\] or rank 3 \[B Y X\]"):
        cnn.sobel(jnp.ones((1, 2, 5, 5)))


# --- perceptron and mlp -------------------------------------------------------------------------

PER = perceptron.PRESETS["tiny"]
XOR = mlp.PRESETS["xor"]
GATES = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


@pytest.mark.parametrize("make, match", [
    (lambda: perceptron.Config(in_dim=0), r"in_dim must be an integer >= 1, got 0"),
    (lambda: perceptron.Config(in_dim=True), r"in_dim must be an integer >= 1, got True"),
    (lambda: perceptron.Config(in_dim=2, learning_rate=0.0),
     r"learning_rate must be a finite number > 0, got 0.0"),
    (lambda: perceptron.Config(in_dim=2, max_epochs=0), r"max_epochs must be an integer >= 1"),
    (lambda: perceptron.Config(in_dim=2, dtype="int8"), r"dtype must name a floating dtype"),
    (lambda: mlp.Config(in_dim=2, out_dim=2, hidden_dims=[4]),
     r"hidden_dims must be a tuple of ints, got \[4\]"),
    (lambda: mlp.Config(in_dim=2, out_dim=2, activation="swish"),
     r"activation must be one of .*got 'swish'"),
    (lambda: mlp.Config(in_dim=2, out_dim=2, num_blocks=-1),
     r"num_blocks must be an integer >= 0, got -1"),
])
def test_perceptron_and_mlp_config_misuse(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_perceptron_misuse():
    params = perceptron.init(jax.random.key(0), PER)
    with pytest.raises(ValueError, match=r"y must hold values in \{0, 1\}, got -1.0 \(and 2 "
                                         r"value\(s\) outside in all\)\. .*pass \(y \+ 1\) / 2"):
        perceptron.fit(params, GATES, jnp.array([-1.0, 1.0, 1.0, -1.0]), PER)
    with pytest.raises(ValueError, match=r"y must have shape \(4\) \[B\], got \(3\)"):
        perceptron.fit(params, GATES, jnp.array([0.0, 1.0, 1.0]), PER)
    with pytest.raises(ValueError, match=r"x must have shape \(\?, 2\) \[B I\], got \(4, 3\)"):
        perceptron.apply(params, jnp.ones((4, 3)), cfg=PER)
    with pytest.raises(ValueError, match=r"x is empty: axis 0 \(B\)"):
        perceptron.apply(params, jnp.ones((0, 2)), cfg=PER)
    with pytest.raises(ValueError, match=r"params\['w'\] has shape \(3\), but the config "
                                         r"expects \(2\)"):
        perceptron.apply(perceptron.init(jax.random.key(0), perceptron.Config(in_dim=3)),
                         GATES, cfg=PER)
    with pytest.raises(TypeError, match=r"inputs must be a tuple \(x,\) of 1 array\(s\), got a "
                                        r"bare ArrayImpl of shape \(4, 2\): wrap it as \(x,\)"):
        perceptron.loss(params, GATES, jnp.array([0.0, 1.0, 1.0, 1.0]), PER)


def test_perceptron_labels_checked_under_jit():
    params = perceptron.init(jax.random.key(0), PER)
    _raises_under_jit(lambda p, x, y: perceptron.loss(p, (x,), y, PER), params, GATES,
                      jnp.array([0.0, 1.0, -1.0, 1.0]),
                      match=r"y must hold values in \{0, 1\}, got -1.0")


def test_mlp_misuse():
    params = mlp.init(jax.random.key(0), XOR)
    with pytest.raises(ValueError, match=r"x is empty: axis 0 \(B\) of shape \(0, 2\)"):
        mlp.apply(params, jnp.ones((0, 2)), cfg=XOR)
    with pytest.raises(ValueError, match=r"x must have rank 2 \[B I\], got shape \(4\)"):
        mlp.apply(params, jnp.ones(4), cfg=XOR)
    with pytest.raises(TypeError, match=r"x must have a number dtype, got complex64"):
        mlp.apply(params, jnp.ones((4, 2), jnp.complex64), cfg=XOR)
    with pytest.raises(ValueError, match=r"params\['dense_0'\]\['b'\] has shape \(8\), but the "
                                         r"config expects \(9\)"):
        mlp.apply(params, GATES, cfg=dataclasses.replace(XOR, hidden_dims=(9,)))
    with pytest.raises(ValueError, match=r"lacks params\['blocks'\]"):
        mlp.apply(params, GATES, cfg=dataclasses.replace(XOR, num_blocks=1))
    with pytest.raises(ValueError, match=r"cfg.num_blocks must be 0, got 2"):
        mlp.backprop(mlp.init(jax.random.key(0), mlp.PRESETS["tiny"]), jnp.ones((2, 6)),
                     jnp.ones((2, 3)), mlp.PRESETS["tiny"])
    with pytest.raises(ValueError, match=r"y must have shape \(4, 2\) \[B O\], got \(4, 3\)"):
        mlp.backprop(params, GATES, jnp.ones((4, 3)), XOR)


# --- sharding and the registry ------------------------------------------------------------------

def test_sharding_misuse():
    spec = zoo.get("mlp-tiny")
    params, axes = spec.init(jax.random.key(0)), spec.param_axes()
    mesh = sharding.make_mesh((2, 2, 2))
    typo = {**axes, "out": {**axes["out"], "w": jax.sharding.PartitionSpec("embd", None)}}
    with pytest.raises(ValueError, match=r"params\['out'\]\['w'\]: 'embd' is not a logical axis "
                                         r"name: .*did you mean 'embed'\?"):
        sharding.shard_params(params, typo, mesh)
    theirs = jax.make_mesh((8,), ("shards",), axis_types=(AxisType.Auto,))
    with pytest.raises(ValueError, match=r"params\['blocks'\]\['b1_lf'\]: .* but the mesh "
                                         r"has axes \('shards',\), without \('tensor',\).*"
                                         r"need a mesh with axes \('data', 'fsdp', 'tensor'\)"):
        sharding.shard_params(params, axes, theirs)
    with pytest.raises(ValueError, match=r"batch\[0\]: .*the mesh has axes \('shards',\), "
                                         r"without \('data', 'fsdp'\)"):
        sharding.shard_batch((jnp.ones((8, 6)),), theirs)
    with pytest.raises(ValueError, match=r"does not match the params tree"):
        sharding.shard_params(params, {"out": axes["out"]}, mesh)
    with pytest.raises(ValueError, match=r"w: logical axes \('embed',\) have rank 1, but the "
                                         r"array has shape \(4, 4\)"):
        sharding.sharding_for(mesh, ("embed",), (4, 4), name="w")
    with pytest.raises(ValueError, match=r"batch\[0\]: dimension 0 \(logical 'batch'\) has "
                                         r"size 6, which does not divide"):
        sharding.shard_batch((jnp.ones((6, 6)),), mesh)
    with pytest.raises(ValueError, match=r"mesh shape must be three positive ints"):
        sharding.make_mesh((2, 4))
    with pytest.raises(TypeError, match=r"auto_inside: fn must be callable, got a int"):
        sharding.auto_inside(3)


def test_registry_misuse():
    with pytest.raises(TypeError, match=r"name must be a model name .*got None"):
        zoo.get(None)
    with pytest.raises(KeyError, match=r"no model named 'mlp-tiyn'; did you mean"):
        zoo.get("mlp-tiyn")
