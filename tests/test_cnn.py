"""Tests for zoo.cnn: the convolution against a NumPy loop and torch, pooling, Sobel edges,
translation equivariance, receptive fields read off jax.grad, the models, and splice data."""

import dataclasses
import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo
from zoo import cnn, sharding
from tests.tolerances import assert_close

ROOT = Path(__file__).resolve().parent.parent


# --- independent references -------------------------------------------------------------------

def np_conv(x, w, b=None, stride=1, padding="valid", dilation=1):
    """Cross-correlation by explicit loops over output positions (1D or 2D, channels-last).

    ``same`` padding is XLA's own definition (``jax.lax.padtype_to_pads``, the rule behind
    ``conv_general_dilated(padding="SAME")``), not the formula of the code under test.
    """
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    nd = w.ndim - 2
    s = (stride,) * nd if np.isscalar(stride) else tuple(stride)
    d = (dilation,) * nd if np.isscalar(dilation) else tuple(dilation)
    spans = [(k - 1) * di + 1 for k, di in zip(w.shape[:nd], d)]
    if padding == "same":
        pads = [tuple(p) for p in jax.lax.padtype_to_pads(x.shape[1:-1], spans, s, "SAME")]
    else:
        pads = [(span - 1, 0) if padding == "causal" else (0, 0) for span in spans]
    x = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    out_size = [(n - (k - 1) * di - 1) // si + 1
                for n, k, si, di in zip(x.shape[1:-1], w.shape[:nd], s, d)]
    y = np.zeros((x.shape[0], *out_size, w.shape[-1]))
    for pos in np.ndindex(*out_size):
        for taps in np.ndindex(*w.shape[:nd]):
            idx = tuple(p * si + t * di for p, t, si, di in zip(pos, taps, s, d))
            y[(slice(None), *pos)] += x[(slice(None), *idx)] @ w[taps]
    return y if b is None else y + np.asarray(b, np.float64)


def np_pool(x, window, kind):
    x = np.asarray(x, np.float64)
    nd = x.ndim - 2
    out_size = [n // window for n in x.shape[1:-1]]
    y = np.zeros((x.shape[0], *out_size, x.shape[-1]))
    for pos in np.ndindex(*out_size):
        block = x[(slice(None), *(slice(p * window, (p + 1) * window) for p in pos))]
        flat = block.reshape(x.shape[0], -1, x.shape[-1])
        y[(slice(None), *pos)] = flat.max(1) if kind == "max" else flat.mean(1)
    return y


def _rand(seed, shape):
    # NumPy draws: eager jax.random compiles a kernel per new shape, which dominates here.
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


# --- the operation ----------------------------------------------------------------------------

def test_course_worked_example_exactly():
    image = jnp.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2],
                       [2, 0, 0, 0, 1]], jnp.float32)
    kernel = jnp.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]], jnp.float32)
    out = cnn.conv(image[None, :, :, None], kernel[:, :, None, None])[0, :, :, 0]
    np.testing.assert_array_equal(out, [[12, 12, 17], [10, 17, 19], [9, 6, 14]])


CASES_1D = [  # (S, W, C, O, stride, padding, dilation)
    (13, 3, 2, 5, 1, "valid", 1), (13, 4, 3, 2, 2, "valid", 1), (17, 3, 2, 5, 1, "same", 2),
    (11, 4, 3, 6, 3, "same", 1), (14, 2, 3, 5, 1, "causal", 4), (19, 3, 1, 2, 2, "valid", 3),
]
CASES_2D = [  # ((Y, X), (W_y, W_x), C, O, stride, padding, dilation)
    ((9, 11), (3, 3), 2, 5, 1, "valid", 1), ((10, 7), (3, 2), 3, 4, (2, 1), "same", 1),
    ((13, 12), (3, 3), 2, 3, 1, "same", (2, 3)), ((11, 10), (2, 4), 3, 2, 3, "valid", 2),
]


@pytest.mark.parametrize("case", CASES_1D + CASES_2D, ids=str)
def test_conv_matches_numpy_loop(case):
    size, k, c_in, c_out, stride, padding, dilation = case
    size = (size,) if np.isscalar(size) else size
    k = (k,) * len(size) if np.isscalar(k) else k
    x, w, b = _rand(0, (2, *size, c_in)), _rand(1, (*k, c_in, c_out)), _rand(2, (c_out,))
    y = cnn.conv(x, w, b, stride=stride, padding=padding, dilation=dilation)
    assert_close(y, np_conv(x, w, b, stride, padding, dilation))


def test_same_padding_by_hand():
    # n = 10, taps 3, stride 2: ⌈10/2⌉ = 5 windows starting at 0, 2, 4, 6, 8; the last one
    # covers positions 8, 9 and one zero past the end (TensorFlow/XLA put the extra on the
    # right). Summing kernel, x = 1 … 10: 1+2+3, 3+4+5, 5+6+7, 7+8+9, 9+10.
    x = jnp.arange(1.0, 11.0).reshape(1, 10, 1)
    y = cnn.conv(x, jnp.ones((3, 1, 1)), stride=2, padding="same")[0, :, 0]
    np.testing.assert_array_equal(y, [6, 12, 18, 24, 19])
    # An even kernel (taps 2, stride 1): one zero on the right, y[t] = x[t] + 10 x[t+1].
    y = cnn.conv(x[:, :5], jnp.array([1.0, 10.0]).reshape(2, 1, 1), padding="same")[0, :, 0]
    np.testing.assert_array_equal(y, [21, 32, 43, 54, 5])
    # Stride 3 over 11 with taps 4: ⌈11/3⌉ = 4 windows, 3·3 + 4 − 11 = 2 zeros, one a side:
    # windows [-1..2], [2..5], [5..8], [8..11] of x = 1 … 11 (zeros at -1 and 11).
    y = cnn.conv(jnp.arange(1.0, 12.0).reshape(1, 11, 1), jnp.ones((4, 1, 1)), stride=3,
                 padding="same")[0, :, 0]
    np.testing.assert_array_equal(y, [1 + 2 + 3, 3 + 4 + 5 + 6, 6 + 7 + 8 + 9, 9 + 10 + 11])


def _torch_conv(x, w, b, stride, padding, dilation):
    torch = pytest.importorskip("torch")
    nd = w.ndim - 2
    layer_cls = torch.nn.Conv1d if nd == 1 else torch.nn.Conv2d
    layer = layer_cls(w.shape[-2], w.shape[-1], w.shape[:nd], stride=stride, padding=padding,
                      dilation=dilation).double()
    with torch.no_grad():   # [*W, C, O] -> [O, C, *W]
        layer.weight.copy_(torch.from_numpy(np.moveaxis(np.asarray(w, np.float64),
                                                        (-1, -2), (0, 1))))
        layer.bias.copy_(torch.from_numpy(np.asarray(b, np.float64)))
        out = layer(torch.from_numpy(np.moveaxis(np.asarray(x, np.float64), -1, 1)))
    return np.moveaxis(out.numpy(), 1, -1)


TORCH_CASES = [  # (spatial, kernel, C, O, stride, padding, dilation)
    ((23,), (5,), 3, 7, 1, "valid", 1), ((23,), (3,), 4, 6, 1, "same", 2),
    ((29,), (4,), 2, 5, 3, "valid", 2),
    ((9, 11), (3, 3), 3, 5, 1, "valid", 1), ((12, 10), (3, 5), 2, 6, 1, "same", (2, 1)),
    ((13, 14), (3, 3), 4, 3, (2, 3), "valid", 2),
]
MAX_DIFF = {}


@pytest.mark.parametrize("case", TORCH_CASES, ids=str)
def test_conv_matches_torch_with_copied_weights(case):
    size, k, c_in, c_out, stride, padding, dilation = case
    x, w, b = _rand(3, (2, *size, c_in)), _rand(4, (*k, c_in, c_out)), _rand(5, (c_out,))
    y = cnn.conv(x, w, b, stride=stride, padding=padding, dilation=dilation)
    ref = _torch_conv(x, w, b, stride, padding, dilation)
    assert y.shape == ref.shape
    MAX_DIFF[str(case)] = float(np.abs(np.asarray(y, np.float64) - ref).max())
    assert_close(y, ref)


def test_causal_padding_sees_only_the_past():
    x, w = _rand(6, (2, 15, 3)), _rand(7, (3, 3, 4))
    y = cnn.conv(x, w, padding="causal", dilation=2)
    x_future = x.at[:, 9:].set(100.0)
    assert y.shape == (2, 15, 4)
    assert_close(cnn.conv(x_future, w, padding="causal", dilation=2)[:, :9], y[:, :9])


@pytest.mark.parametrize("shift", [1, 4])
def test_translation_equivariance(shift):
    x1, w1 = _rand(8, (2, 21, 3)), _rand(9, (4, 3, 5))
    y1 = cnn.conv(x1, w1, dilation=2)
    y1_shifted = cnn.conv(jnp.roll(x1, shift, axis=1), w1, dilation=2)
    assert_close(y1_shifted[:, shift:], y1[:, :-shift])
    x2, w2 = _rand(10, (2, 13, 11, 2)), _rand(11, (3, 3, 2, 4))
    y2 = cnn.conv(x2, w2)
    y2_shifted = cnn.conv(jnp.roll(x2, (shift, 2 * shift), axis=(1, 2)), w2)
    assert_close(y2_shifted[:, shift:, 2 * shift:], y2[:, :-shift, :-2 * shift])


def test_conv_bad_inputs_name_the_argument():
    x1, w1 = jnp.ones((2, 5, 3)), jnp.ones((3, 3, 4))
    with pytest.raises(ValueError, match="kernel .* larger than the unpadded input"):
        cnn.conv(x1, jnp.ones((7, 3, 4)))
    with pytest.raises(ValueError, match="kernel .*dilation 3"):
        cnn.conv(x1, w1, dilation=3)          # spans 7 > 5
    cnn.conv(x1, jnp.ones((7, 3, 4)), padding="same")   # padded: fine
    with pytest.raises(ValueError, match="channel mismatch.*3 channels.*C=2"):
        cnn.conv(x1, jnp.ones((3, 2, 4)))
    for bad in (0, -1, 1.5, True, (1, 1)):
        with pytest.raises(ValueError, match="stride"):
            cnn.conv(x1, w1, stride=bad)
        with pytest.raises(ValueError, match="dilation"):
            cnn.conv(x1, w1, dilation=bad)
    with pytest.raises(ValueError, match="padding"):
        cnn.conv(x1, w1, padding="full")
    with pytest.raises(ValueError, match="causal"):
        cnn.conv(jnp.ones((2, 5, 5, 3)), jnp.ones((3, 3, 3, 4)), padding="causal")
    with pytest.raises(ValueError, match="rank"):
        cnn.conv(jnp.ones((5, 3)), w1)
    with pytest.raises(ValueError, match="w must have rank"):
        cnn.conv(x1, jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="b must have shape"):
        cnn.conv(x1, w1, jnp.ones(3))
    with pytest.raises(TypeError, match="dtype"):
        cnn.conv(x1.astype(jnp.complex64), w1)


# --- pooling and Sobel ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("shape", [(2, 11, 3), (2, 9, 7, 3)], ids=str)
def test_pooling_matches_numpy_loop_and_torch(kind, shape):
    torch = pytest.importorskip("torch")
    x = _rand(12, shape)
    pool = cnn.max_pool if kind == "max" else cnn.avg_pool
    y = pool(x, 2)
    assert_close(y, np_pool(x, 2, kind))
    nd = len(shape) - 2
    layer = getattr(torch.nn, f"{kind.capitalize()}Pool{nd}d")(2)
    ref = layer(torch.from_numpy(np.moveaxis(np.asarray(x, np.float64), -1, 1))).numpy()
    assert_close(y, np.moveaxis(ref, 1, -1))


def test_pooling_stride_and_same_padding():
    x = jnp.arange(7.0).reshape(1, 7, 1)
    np.testing.assert_array_equal(cnn.max_pool(x, 3, stride=2)[0, :, 0], [2, 4, 6])
    # same padding: windows [0,1], [1..3], [3..5], [5,6]; averages count real elements only.
    np.testing.assert_array_equal(cnn.avg_pool(x, 3, stride=2, padding="same")[0, :, 0],
                                  [0.5, 2, 4, 5.5])
    np.testing.assert_array_equal(cnn.max_pool(x, 3, stride=2, padding="same")[0, :, 0],
                                  [1, 3, 5, 6])
    with pytest.raises(ValueError, match="window .* larger than the unpadded input"):
        cnn.max_pool(x, 8)
    with pytest.raises(ValueError, match="window"):
        cnn.avg_pool(x, 0)
    with pytest.raises(ValueError, match="stride"):
        cnn.avg_pool(x, 2, stride=2.0)


def _step_image(h, w, edge, dark=1.0, bright=5.0):
    """Dark columns left of ``edge``, bright columns from ``edge`` on."""
    img = np.full((h, w), dark, np.float32)
    img[:, edge:] = bright
    return jnp.asarray(img)


def test_sobel_finds_vertical_edges_with_their_sign():
    img = _step_image(8, 12, edge=6)
    g = np.asarray(cnn.sobel(img))
    assert g.shape == (6, 10)
    # Output column j covers input columns j..j+2: the edge lies in columns 4 and 5.
    np.testing.assert_array_equal(g[:, [4, 5]], -16.0)      # 4·(1 − 5): bright to the right
    np.testing.assert_array_equal(np.delete(g, [4, 5], axis=1), 0.0)   # flat regions
    flipped = np.asarray(cnn.sobel(img[:, ::-1]))            # bright on the left: sign flips
    np.testing.assert_array_equal(flipped[:, ::-1], -g)
    horizontal = np.asarray(cnn.sobel(img.T))                # a horizontal edge: no response
    np.testing.assert_array_equal(horizontal, 0.0)


def test_sobel_batched_same_padding_and_errors():
    imgs = jnp.stack([_step_image(7, 9, 3), _step_image(7, 9, 5)])
    g = cnn.sobel(imgs, padding="same")
    assert g.shape == (2, 7, 9)
    assert_close(g[:, 1:-1, 1:-1], cnn.sobel(imgs))
    assert_close(g[0, 3], np_conv(imgs[0][None, :, :, None],
                                  cnn.SOBEL_X[:, :, None, None], padding="same")[0, 3, :, 0])
    with pytest.raises(ValueError, match="image must have rank"):
        cnn.sobel(jnp.ones((1, 7, 9, 1)))
    with pytest.raises(ValueError, match="larger than the unpadded input"):
        cnn.sobel(jnp.ones((2, 9)))


# --- the models -------------------------------------------------------------------------------

def _key(seed):
    # The RBG generator compiles in a fraction of threefry's time on CPU; any key will do.
    return jax.random.key(seed, impl="rbg")


def _model(name, **changes):
    spec = zoo.get(name).replace(**changes) if changes else zoo.get(name)
    return spec, spec.init(_key(0))


def _inputs(spec, batch):
    return spec.example_inputs(_key(1), batch)


def _torch_model_2d(params, cfg):
    torch = pytest.importorskip("torch")
    mods = []
    for l in range(len(cfg.channels)):
        w, b = np.asarray(params[f"conv_{l}"]["w"]), np.asarray(params[f"conv_{l}"]["b"])
        conv = torch.nn.Conv2d(w.shape[2], w.shape[3], w.shape[:2], padding="same").double()
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.moveaxis(w, (-1, -2), (0, 1)).astype(float)))
            conv.bias.copy_(torch.from_numpy(b.astype(float)))
        mods += [conv, torch.nn.ReLU(), torch.nn.MaxPool2d(cfg.pool_size)]
    model = torch.nn.Sequential(*mods)

    def forward(x):
        with torch.no_grad():
            h = model(torch.from_numpy(np.moveaxis(np.asarray(x, np.float64), -1, 1)))
            return h.mean((2, 3)).numpy()
    return forward


def test_image_classifier_matches_torch_model():
    spec, params = _model("cnn-tiny")
    x, = _inputs(spec, 2)
    pooled = _torch_model_2d(params, spec.config)(x)
    ref = pooled @ np.asarray(params["out"]["w"], np.float64) + np.asarray(params["out"]["b"])
    assert_close(spec.apply(params, x), ref)


def test_sequence_classifier_matches_numpy():
    spec, params = _model("cnn-dna_tiny")
    x, = _inputs(spec, 2)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    h = np.maximum(np_conv(x, p["conv_0"]["w"], p["conv_0"]["b"], padding="same"), 0).max(1)
    h = np.maximum(h @ p["head"]["w"] + p["head"]["b"], 0)
    assert_close(spec.apply(params, x), h @ p["out"]["w"] + p["out"]["b"])


def test_token_input_equals_embedding_then_one_hot_path():
    spec, params = _model("cnn-protein_tiny")
    tokens, = _inputs(spec, 2)
    embedded = params["embed"]["table"][tokens]
    dense_cfg = dataclasses.replace(spec.config, vocab_size=None)
    dense_params = {k: v for k, v in params.items() if k != "embed"}
    assert_close(spec.apply(params, tokens), cnn.apply(dense_params, embedded, dense_cfg))


def test_flatten_head_keeps_position_and_checks_size():
    spec, params = _model("cnn-splice")
    x, = _inputs(spec, 2)
    assert spec.apply(params, x).shape == (2, 3)
    with pytest.raises(ValueError, match=r"spatial size \(60,\)"):
        spec.apply(params, x[:, :50])


def test_residual_scan_equals_python_loop():
    spec, params = _model("cnn-resnet_tiny")
    cfg = spec.config
    x, = _inputs(spec, 2)
    p0 = params["conv_0"]
    h = cnn.max_pool(jax.nn.relu(cnn.conv(x, p0["w"], p0["b"], padding="same")), 2)
    for l in range(cfg.num_blocks):
        b = jax.tree.map(lambda a: a[l], params["blocks"])
        u = jax.nn.relu(zoo.layers.layer_norm(h, b["norm_scale"], b["norm_bias"]))
        u = jax.nn.relu(cnn.conv(u, b["w1"], b["b1"], padding="same"))
        h = h + cnn.conv(u, b["w2"], b["b2"], padding="same")
    assert_close(cnn.features(params, x, cfg), h)


@pytest.mark.parametrize("changes, expected", [
    ({}, 16),                                                   # K = 2, d = 1, 2, 4, 8: 2⁴
    ({"kernel_size": 3, "dilation_base": 3, "channels": (8, 8, 8)}, 27),   # 3³
    ({"kernel_size": 3, "dilation_base": 1}, 9),                # contiguous: 1 + 4·2
])
def test_dilated_receptive_field_read_off_grad(changes, expected):
    spec, params = _model("cnn-dilated_tiny", input_size=(41,), **changes)
    cfg = spec.config
    assert cnn.receptive_field(cfg) == expected
    x, = _inputs(spec, 1)
    t = 35
    grad = jax.grad(lambda x: cnn.features(params, x, cfg)[0, t].sum())(x)
    seen = np.flatnonzero(np.abs(np.asarray(grad[0])).sum(-1))
    np.testing.assert_array_equal(seen, np.arange(t - expected + 1, t + 1))   # causal window


def test_receptive_field_with_pooling_and_blocks_read_off_grad():
    spec, params = _model("cnn-dna_tiny", input_size=(61,), channels=(8, 12), kernel_size=3,
                          pool="avg", num_blocks=1, activation="tanh")
    cfg = spec.config
    # 1 + 2 (conv) + 1 (pool), then ×2: + 4 (conv) + 2 (pool), then ×4: + 2·2·4 (block) = 26
    assert cnn.receptive_field(cfg) == 26
    x, = _inputs(spec, 1)
    grad = jax.grad(lambda x: cnn.features(params, x, cfg)[0, 7].sum())(x)
    seen = np.flatnonzero(np.abs(np.asarray(grad[0])).sum(-1))
    assert seen[-1] - seen[0] + 1 == 26 and len(seen) == 26


def test_dilated_features_are_translation_equivariant():
    spec, params = _model("cnn-dilated_tiny")
    x, = _inputs(spec, 2)
    shift, field = 3, cnn.receptive_field(spec.config)
    y = cnn.features(params, x, spec.config)
    y_shifted = cnn.features(params, jnp.roll(x, shift, axis=1), spec.config)
    assert_close(y_shifted[:, field + shift:], y[:, field:-shift])


def test_channel_parallel_weights_are_split_over_tensor():
    spec, params = _model("cnn-tiny")
    mesh = sharding.make_mesh((1, 2, 4))
    placed = sharding.shard_params(params, spec.param_axes(), mesh)
    assert placed["conv_0"]["w"].addressable_shards[0].data.shape == (3, 3, 3, 8 // 4)
    assert placed["conv_1"]["w"].addressable_shards[0].data.shape == (3, 3, 8 // 4, 12 // 2)


def test_config_errors_name_the_field():
    base = zoo.get("cnn-tiny").config
    for field, bad in [("kernel_size", 2.5), ("kernel_size", 0), ("dilation_base", 0),
                       ("channels", ()), ("channels", (8, 0)), ("padding", "full"),
                       ("pool", "min"), ("global_pool", "sum"), ("input_size", (9.0, 9)),
                       ("input_size", (1, 2, 3)), ("vocab_size", 10)]:
        with pytest.raises(ValueError, match=field.split("_")[0]):
            dataclasses.replace(base, **{field: bad})
    with pytest.raises(ValueError, match="causal"):
        dataclasses.replace(base, padding="causal")
    with pytest.raises(ValueError, match="input_size: spatial size is too small"):
        dataclasses.replace(base, input_size=(3, 3))
    spec, params = _model("cnn-tiny")
    with pytest.raises(ValueError, match=r"x must have shape \(\?, \?, \?, 3\)"):
        spec.apply(params, jnp.ones((2, 10, 9, 4)))
    with pytest.raises(ValueError, match="x: spatial size is too small"):
        spec.apply(params, jnp.ones((2, 3, 9, 3)))


# --- real data: UCI splice junctions ----------------------------------------------------------

def _splice_example():
    path = ROOT / "examples" / "splice_cnn.py"
    module_spec = importlib.util.spec_from_file_location("splice_cnn", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_splice_data_and_encoding():
    ex = _splice_example()
    x, y = ex.load_splice()
    assert x.shape == (3190, 60, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(np.bincount(y), [767, 768, 1655])
    assert_close(x.sum(-1), np.ones((3190, 60)))
    np.testing.assert_array_equal(ex.encode_dna(["ACGTN"])[0],
                                  [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1],
                                   [0.25] * 4])
    tr, te = ex.split(len(y), 0)
    assert len(tr) == 2552 and len(te) == 638 and not set(tr) & set(te)
    with pytest.raises(ValueError, match="IUPAC"):
        ex.encode_dna(["ACGX"])


def _splice_accuracy(epochs):
    ex = _splice_example()
    x, y = ex.load_splice()
    tr, te = ex.split(len(y), 0)
    params = ex.train(x[tr], y[tr], epochs=epochs)
    return ex.accuracy(params, x[te], y[te]), np.mean(y[te] == 2)


def test_splice_cnn_learns_quickly():
    acc, baseline = _splice_accuracy(epochs=2)
    assert baseline < 0.53
    assert acc > 0.80, f"held-out accuracy {acc:.3f} after 2 epochs"


@pytest.mark.slow
def test_splice_cnn_reaches_published_accuracy():
    acc, _ = _splice_accuracy(epochs=20)
    assert acc >= 0.93, f"held-out accuracy {acc:.3f}"
