"""Transformer layers against PyTorch with copied weights; positional encoding against its
formula; cached decoding against the full pass (also sharded); causality from gradients;
attention maps; dropout; bad input; learning on copy and protein data."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zoo import attention as A
from zoo import kv_cache, sharding
from zoo import transformer as tf
from tests._examples import load_example
from tests.tolerances import SHARDED, assert_close

B, S, T, D, N, F = 2, 11, 7, 12, 4, 20
H = D // N
DATA = Path(__file__).parent / "data" / "deeploc_val_subset.fasta"
SLOW_LM_STEPS = 800


# --- PyTorch layers with copied weights -------------------------------------------------------

def _mha(m):
    w, b = m.in_proj_weight.detach().numpy(), m.in_proj_bias.detach().numpy()
    part = lambda a, i: a[i * D:(i + 1) * D]
    proj = lambda i: jnp.asarray(part(w, i).T.reshape(D, N, H), jnp.float32)
    bias = lambda i: jnp.asarray(part(b, i).reshape(N, H), jnp.float32)
    return {"w_q_dnh": proj(0), "b_q_nh": bias(0), "w_k_dkh": proj(1), "b_k_kh": bias(1),
            "w_v_dkh": proj(2), "b_v_kh": bias(2),
            "w_o_nhd": jnp.asarray(m.out_proj.weight.detach().numpy().T.reshape(N, H, D)),
            "b_o_d": jnp.asarray(m.out_proj.bias.detach().numpy())}


def _norm(m):
    return {"scale_ld": jnp.asarray(m.weight.detach().numpy()),
            "bias_ld": jnp.asarray(m.bias.detach().numpy())}


def _ffn(layer):
    return {"w1_ldf": jnp.asarray(layer.linear1.weight.detach().numpy().T),
            "b1_lf": jnp.asarray(layer.linear1.bias.detach().numpy()),
            "w2_lfd": jnp.asarray(layer.linear2.weight.detach().numpy().T),
            "b2_ld": jnp.asarray(layer.linear2.bias.detach().numpy())}


def _randomize(torch, module):
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.3)


def _cfg(norm, kind="encoder_decoder"):
    return tf.Config(kind=kind, vocab_size=8, d_model=D, num_heads=N, d_ff=F, num_layers=1,
                     norm=norm)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_encoder_layer_equals_torch(norm):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(D, N, F, dropout=0.0, batch_first=True,
                                             norm_first=norm == "pre").eval()
    _randomize(torch, layer)
    p = {"self_attn": _mha(layer.self_attn), "ffn": _ffn(layer),
         "norm1": _norm(layer.norm1), "norm3": _norm(layer.norm2)}
    x = np.random.default_rng(0).normal(size=(B, S, D)).astype(np.float32)
    pad = np.ones((B, S), bool)
    pad[0, 6:] = False
    ref = layer(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(~pad))
    got, _ = tf.encoder_layer(p, jnp.asarray(x), _cfg(norm),
                              mask=jnp.asarray(pad)[:, None, None, :])
    # torch's fast path zeroes padded positions' outputs; compare the real ones.
    assert_close(np.asarray(got)[pad], ref.detach().numpy()[pad])


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_decoder_layer_equals_torch(norm):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    layer = torch.nn.TransformerDecoderLayer(D, N, F, dropout=0.0, batch_first=True,
                                             norm_first=norm == "pre").eval()
    _randomize(torch, layer)
    p = {"self_attn": _mha(layer.self_attn), "cross_attn": _mha(layer.multihead_attn),
         "ffn": _ffn(layer), "norm1": _norm(layer.norm1), "norm2": _norm(layer.norm2),
         "norm3": _norm(layer.norm3)}
    rng = np.random.default_rng(1)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    memory = rng.normal(size=(B, S, D)).astype(np.float32)
    pad = np.ones((B, S), bool)
    pad[1, 4:] = False
    causal = torch.nn.Transformer.generate_square_subsequent_mask(T)
    ref = layer(torch.from_numpy(x), torch.from_numpy(memory), tgt_mask=causal,
                memory_key_padding_mask=torch.from_numpy(~pad))
    got, _ = tf.decoder_layer(p, jnp.asarray(x), _cfg(norm), memory=jnp.asarray(memory),
                              src_mask=jnp.asarray(pad))
    assert_close(got, ref.detach().numpy())


def test_sinusoidal_table_equals_formula():
    length, d = 13, 10
    table = tf.positional_encoding(length, d)
    for pos in range(length):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert_close(table[pos, 2 * i], math.sin(angle))
            assert_close(table[pos, 2 * i + 1], math.cos(angle))


# --- whole models ----------------------------------------------------------------------------

def test_base_preset_parameter_count_matches_the_paper():
    cfg = tf.PRESETS["base"]
    d, f, v, l = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.num_layers
    attn = 4 * d * d + 4 * d
    ffn = 2 * d * f + f + d
    expected = v * d + v + l * (attn + ffn + 4 * d) + l * (2 * attn + ffn + 6 * d)
    shapes = jax.eval_shape(lambda k: tf.init(k, cfg), jax.random.key(0))
    count = sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))
    assert count == expected == 63_119_496
    assert abs(count - 65e6) / 65e6 < 0.04      # the paper's Table 3 reports 65M


@pytest.mark.parametrize("name,window", [("tiny", None), ("lm_tiny", None),
                                          ("lm_tiny", 2)])
def test_cached_decoding_equals_full_pass(name, window):
    cfg = tf.PRESETS[name]
    cfg = tf.Config(**{**cfg.__dict__, "window": window})
    params = tf.init(jax.random.key(0), cfg)
    inputs, _ = tf.example_batch(jax.random.key(1), cfg, B)
    if cfg.kind == "encoder_decoder":
        inputs = (inputs[0].at[1, 6:].set(tf.PAD), inputs[1])
    full = tf.apply(params, *inputs, cfg=cfg)
    tokens = inputs[-1]
    src = inputs[0] if cfg.kind == "encoder_decoder" else None
    cache = kv_cache.init_cache(params, cfg, B, tokens.shape[1] + 2, src=src)
    step = jax.jit(lambda p, c, t: kv_cache.decode_step(p, c, t, cfg))
    for t in range(tokens.shape[1]):
        logits, cache = step(params, cache, tokens[:, t])
        assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)   # decode sums in another order
    assert int(cache.index) == tokens.shape[1]


@pytest.mark.parametrize("mesh_shape", [(2, 2, 2), (1, 2, 4)])
def test_sharded_cached_decoding_equals_unsharded(mesh_shape):
    cfg = tf.PRESETS["tiny"]
    params = tf.init(jax.random.key(0), cfg)
    (src, tgt_in), _ = tf.example_batch(jax.random.key(1), cfg, 8)
    step = jax.jit(lambda p, c, t: kv_cache.decode_step(p, c, t, cfg))

    def run(params, src, tgt_in):
        cache = kv_cache.init_cache(params, cfg, 8, tgt_in.shape[1], src=src)
        return [step(params, cache := step(params, cache, tgt_in[:, t])[1], tgt_in[:, t])[0]
                for t in range(3)]

    expected = run(params, src, tgt_in)
    mesh = sharding.make_mesh(mesh_shape)
    placed = sharding.shard_params(params, tf.param_axes(cfg), mesh)
    src_s, tgt_s = sharding.shard_batch((src, tgt_in), mesh)
    with sharding.use_mesh(mesh):
        got = run(placed, src_s, tgt_s)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), **SHARDED)


@pytest.mark.parametrize("name", ["tiny", "lm_tiny"])
def test_greedy_decoding_inside_a_users_shard_map_equals_unsplit(name):
    cfg = tf.PRESETS[name]
    params = tf.init(jax.random.key(0), cfg)
    src = jax.random.randint(jax.random.key(1), (8, 4), 3, cfg.vocab_size)
    decode = lambda p, s: kv_cache.greedy_decode(p, s, cfg, 3)
    mesh = jax.make_mesh((8,), ("shards",), axis_types=(jax.sharding.AxisType.Auto,))
    P = jax.sharding.PartitionSpec
    run = jax.jit(jax.shard_map(decode, mesh=mesh, in_specs=(P(), P("shards")),
                                out_specs=P("shards")))
    np.testing.assert_array_equal(run(params, src), decode(params, src))


@pytest.mark.parametrize("name", ["tiny", "lm_tiny"])
def test_decoding_encoding_and_maps_on_a_users_explicit_mesh(name):
    """Under ``jax.make_mesh``'s default ``Explicit`` axes, with the batch placed split eight
    ways, cached greedy decoding, the encoder (with its weights) and the attention maps
    equal the whole-batch results, split over the batch (the maps on their batch axis)."""
    cfg = tf.PRESETS[name]
    params = tf.init(jax.random.key(0), cfg)
    src = jax.random.randint(jax.random.key(1), (8, 4), 3, cfg.vocab_size)
    calls = {"greedy": lambda p, s: kv_cache.greedy_decode(p, s, cfg, 3)}
    if cfg.kind == "encoder_decoder":
        calls["encode"] = lambda p, s: tf.encode(p, s, cfg, return_weights=True)
        calls.update({stack: lambda p, s, stack=stack: tf.attention_maps(p, s, s, cfg=cfg,
                                                                         stack=stack)
                      for stack in tf.STACKS})
    else:
        calls["maps"] = lambda p, s: tf.attention_maps(p, s, cfg=cfg)
    mesh = jax.make_mesh((8,), ("shards",), axis_types=(jax.sharding.AxisType.Explicit,))
    for what, call in calls.items():
        with jax.set_mesh(mesh):
            got = jax.jit(call)(params, jax.device_put(src, jax.sharding.PartitionSpec("shards")))
        for g, expected in zip(jax.tree.leaves(got), jax.tree.leaves(call(params, src)),
                               strict=True):
            batch_axis = 1 if g.ndim == 5 else 0                 # weights: [L, B, N, T, S]
            assert g.sharding.spec[batch_axis] == "shards", (what, g.sharding)
            np.testing.assert_allclose(np.asarray(g), np.asarray(expected), rtol=1e-5,
                                       atol=1e-6, err_msg=what)


def test_causal_receptive_field_from_gradients():
    cfg = tf.PRESETS["lm_tiny"]
    params = tf.init(jax.random.key(0), cfg)
    tokens = jax.random.randint(jax.random.key(1), (1, T), 3, cfg.vocab_size)

    def logits_per_position(pos):
        p = {**params, "embed": {**params["embed"], "pos_pd": pos}}
        return tf.apply(p, tokens, cfg=cfg)[0].sum(-1)                           # [T]
    jac = jax.jit(jax.jacrev(logits_per_position))(params["embed"]["pos_pd"])   # [T, P, D]
    moved = np.abs(np.asarray(jac)).sum(-1)[:, :T] > 0
    np.testing.assert_array_equal(moved, np.tril(np.ones((T, T), bool)))


def test_attention_maps_shapes_and_rows():
    cfg = tf.PRESETS["tiny"]
    params = tf.init(jax.random.key(0), cfg)
    (src, tgt_in), _ = tf.example_batch(jax.random.key(1), cfg, B, length=T)
    src = jnp.concatenate([src, jnp.zeros((B, S - T), src.dtype)], axis=1)   # padded source
    maps = {s: tf.attention_maps(params, src, tgt_in, cfg=cfg, stack=s) for s in tf.STACKS}
    assert maps["encoder"].shape == (1, B, N, S, S)
    assert maps["decoder"].shape == (1, B, 4, T, T)
    assert maps["cross"].shape == (1, B, 4, T, S)
    assert_close(maps["cross"].sum(-1), np.ones((1, B, 4, T)))
    assert_close(maps["cross"][..., T:], np.zeros((1, B, 4, T, S - T)))
    assert_close(jnp.triu(maps["decoder"], 1), np.zeros((1, B, 4, T, T)))
    # The explicit path's weights give the same logits as the fast path.
    explicit = tf.Config(**{**cfg.__dict__, "implementation": "xla"})
    assert_close(tf.apply(params, src, tgt_in, cfg=explicit),
                 tf.apply(params, src, tgt_in, cfg=cfg))


def test_attention_maps_of_single_stack_models_and_bad_stacks():
    lm = tf.PRESETS["lm_tiny"]
    (tokens,), _ = tf.example_batch(jax.random.key(1), lm, B, length=T + 1)
    maps = tf.attention_maps(tf.init(jax.random.key(0), lm), tokens, cfg=lm)
    assert maps.shape == (lm.num_layers, B, lm.num_heads, T, T)
    assert_close(maps.sum(-1), np.ones(maps.shape[:-1]))
    with pytest.raises(ValueError, match="stack must be one of"):
        tf.attention_maps(tf.init(jax.random.key(0), lm), tokens, cfg=lm, stack="cross")
    cfg = tf.PRESETS["tiny"]
    (src, tgt_in), _ = tf.example_batch(jax.random.key(1), cfg, B, length=T)
    with pytest.raises(ValueError, match="pass stack="):
        tf.attention_maps(tf.init(jax.random.key(0), cfg), src, tgt_in, cfg=cfg)


def test_padding_the_source_changes_nothing():
    cfg = tf.PRESETS["tiny"]
    params = tf.init(jax.random.key(0), cfg)
    (src, tgt_in), _ = tf.example_batch(jax.random.key(1), cfg, B, length=T)
    padded = jnp.concatenate([src, jnp.zeros((B, 4), src.dtype)], axis=1)
    assert_close(tf.apply(params, padded, tgt_in, cfg=cfg),
                 tf.apply(params, src, tgt_in, cfg=cfg),
                 rtol=1e-5, atol=1e-5)    # softmax sums over more (zero) terms


def test_dropout_follows_the_key():
    cfg = tf.PRESETS["tiny"]
    params = tf.init(jax.random.key(0), cfg)
    inputs, _ = tf.example_batch(jax.random.key(1), cfg, B)
    run = jax.jit(lambda seed, train: tf.apply(params, *inputs, cfg=cfg,
                                               key=jax.random.key(seed),
                                               train=train), static_argnums=1)
    eval_out = tf.apply(params, *inputs, cfg=cfg)
    a, b, c = run(5, True), run(5, True), run(6, True)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, eval_out)
    assert_close(run(5, False), eval_out)      # a key without train= changes nothing


def test_bad_input_names_the_argument():
    cfg = tf.PRESETS["lm_tiny"]
    params = tf.init(jax.random.key(0), cfg)
    with pytest.raises(ValueError, match="max_len"):
        tf.apply(params, jnp.ones((B, cfg.max_len + 1), int), cfg=cfg)
    with pytest.raises(ValueError, match="max_len"):
        kv_cache.init_cache(params, cfg, B, cfg.max_len + 1)
    with pytest.raises(TypeError, match="tokens.*dtype"):
        tf.apply(params, jnp.ones((B, T)), cfg=cfg)
    with pytest.raises(ValueError, match="token array"):
        tf.apply(params, jnp.ones((B, T), int), jnp.ones((B, T), int), cfg=cfg)
    with pytest.raises(ValueError, match="d_model must be divisible by num_heads"):
        tf.Config(vocab_size=8, d_model=10, num_heads=4, d_ff=8, num_layers=1)
    with pytest.raises(ValueError, match="window"):
        tf.Config(vocab_size=8, d_model=8, num_heads=4, d_ff=8, num_layers=1, window=0)
    with pytest.raises(ValueError, match="dropout"):
        tf.Config(vocab_size=8, d_model=8, num_heads=4, d_ff=8, num_layers=1, dropout=1.0)
    with pytest.raises(ValueError, match="src"):
        kv_cache.init_cache(params, tf.PRESETS["tiny"], B, 4)


# --- learning --------------------------------------------------------------------------------

def _copy_accuracy(steps, length, d_model, layers, batch_size=32, lr=3e-3):
    import importlib.util
    path = Path(__file__).parents[1] / "examples" / "transformer_copy.py"
    spec = importlib.util.spec_from_file_location("transformer_copy", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    cfg = example.config(d_model=d_model, layers=layers)
    params = example.train(cfg, steps=steps, length=length, batch_size=batch_size, lr=lr)
    return example.exact_accuracy(params, cfg, length=length, n=500)


def test_copy_task_learns():
    # 10 symbols, length 4: chance exact accuracy is 1e-4; 150 steps reach about 0.07.
    assert _copy_accuracy(steps=150, length=4, d_model=16, layers=1) > 0.02


@pytest.mark.slow
def test_copy_task_reaches_99_percent():
    # The example's defaults: examples/transformer_copy.py --task copy --steps 1500.
    assert _copy_accuracy(steps=1500, length=10, d_model=64, layers=2, batch_size=64,
                          lr=1e-3) >= 0.99


def test_protein_lm_learns_below_uniform():
    example = load_example("protein_lm")
    tokens = example.tokenize(example.read_fasta(DATA), 65)
    train, held = tokens[:-32], tokens[-32:]
    cfg = tf.Config(kind="decoder", vocab_size=28, d_model=32, num_heads=4, d_ff=64,
                    num_layers=1, max_len=64, norm="pre")
    params = tf.init(jax.random.key(0), cfg)
    opt = optax.adam(3e-3)
    state = opt.init(params)

    @jax.jit
    def step(params, state, batch):
        value, grads = jax.value_and_grad(tf.loss)(params, (batch[:, :-1],), batch[:, 1:], cfg)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    rng = np.random.default_rng(0)
    for _ in range(120):
        params, state, _ = step(params, state, train[rng.integers(0, len(train), 32)])
    held_loss = float(tf.loss(params, (held[:, :-1],), held[:, 1:], cfg))
    # Uniform over the 20 standard amino acids is log(20) = 3.00 nats per residue.
    assert held_loss < math.log(20) - 0.05


@pytest.mark.slow
def test_protein_lm_beats_the_amino_acid_unigram_on_held_out_proteins():
    # The example end to end on the DeepLoc splits (train: validation split; held out: test
    # split), shortened: the unigram baseline is the training split's residue frequencies.
    example = load_example("protein_lm")
    if not example.DATA.is_dir():
        pytest.skip(f"needs the DeepLoc data at {example.DATA}")
    train, held = example.load(length=64)
    cfg = example.config(length=64)
    params = example.train_lm(train, cfg, steps=SLOW_LM_STEPS, log_every=0)
    model = example.model_perplexity(params, cfg, held)
    unigram = example.unigram_perplexity(train, held)
    assert model < 0.95 * unigram, (model, unigram)
