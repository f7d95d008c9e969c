"""The trainer: losses against NumPy loops, the schedule by hand, exact resume, sharded ==
single-device, accumulation, mixed precision, checkpoints that survive a crash, bad input."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import zoo
from zoo import data, losses, sharding, train
from tests.tolerances import SHARDED, assert_close

MODEL = "mlp-tiny"
N, B, STEPS = 48, 8, 8         # 6 batches per epoch: 8 steps cross an epoch boundary
CONFIG = train.TrainConfig(learning_rate=3e-2, warmup_steps=2, clip_norm=1.0)


def _loader(seed=5, batch_size=B, name=MODEL):
    spec = zoo.get(name)
    (x,), y = spec.example_batch(jax.random.key(11), N)
    return data.Loader.from_arrays((np.asarray(x),), np.asarray(y), batch_size=batch_size,
                                   seed=seed)


def _single():
    return sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1])


def _fit(mesh=None, steps=STEPS, config=CONFIG, eval_data=None, **kw):
    mesh = _single() if mesh is None else mesh
    run = train.RunConfig(steps=steps, progress=False, **kw)
    return train.fit(zoo.get(MODEL), _loader(), run, config=config, mesh=mesh,
                     eval_data=eval_data)


def _losses(history):
    return [h["loss"] for h in history if "loss" in h]


def _params_close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert_close(x, y, **kw)


@pytest.fixture(scope="module")
def reference():
    """One uninterrupted single-device run, shared by the resume and sharding tests."""
    return _fit()


# --- losses and schedule ----------------------------------------------------------------------

def test_masked_sequence_cross_entropy_matches_numpy_loop():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 7, 5)).astype(np.float32)
    labels = rng.integers(0, 5, size=(2, 7))
    mask = (np.arange(7)[None] < np.array([[7], [3]])).astype(np.int32)
    total = count = 0.0
    for b in range(2):
        for t in range(7):
            if mask[b, t]:
                z = logits[b, t].astype(np.float64)
                total += np.log(np.exp(z - z.max()).sum()) + z.max() - z[labels[b, t]]
                count += 1
    for task in ("sequence_labelling", "lm", "masked_lm", "seq2seq"):
        got = losses.LOSSES[task](jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask))
        assert_close(got, total / count)


def test_masked_regression_loss_broadcasts_the_mask_over_features():
    out, tgt = np.ones((3, 2)), np.zeros((3, 2))
    out[2] = 10.0                      # masked out
    got = losses.mean_squared_error(jnp.asarray(out), jnp.asarray(tgt), jnp.array([1, 1, 0]))
    assert_close(got, 1.0)


def test_loss_fn_reads_labels_and_mask_from_a_targets_dict():
    spec = zoo.get(MODEL)
    params = spec.init(jax.random.key(0))
    (x,), y = spec.example_batch(jax.random.key(1), 6)
    mask = jnp.array([1, 1, 1, 0, 0, 0])
    loss = jax.jit(train.loss_fn(spec))
    masked = loss(params, (x,), {"labels": y, "mask": mask})
    assert_close(masked, loss(params, (x[:3],), y[:3]))


def test_schedule_warms_up_linearly_then_follows_a_half_cosine():
    tc = train.TrainConfig(learning_rate=0.2, warmup_steps=4, end_learning_rate=0.02)
    sched = train.schedule(tc, 24)
    for s in (0, 2, 4):
        assert_close(sched(s), 0.2 * s / 4)
    for s in (4, 9, 14, 24):
        cos = 0.5 * (1 + np.cos(np.pi * (s - 4) / 20))
        assert_close(sched(s), 0.02 + (0.2 - 0.02) * cos)


def test_gradient_clipping_bounds_the_update_norm():
    tc = train.TrainConfig(learning_rate=1.0, clip_norm=0.5, b1=0.0, b2=0.0)
    clip = train.make_optimizer(tc, 10)
    grads = {"w": jnp.array([30.0, 40.0])}          # norm 50 -> clipped to 0.5
    state = clip.init(grads)
    clipped, _ = optax.clip_by_global_norm(0.5).update(grads, optax.EmptyState())
    assert_close(optax.tree.norm(clipped), 0.5)
    updates, _ = clip.update(grads, state, grads)
    assert np.isfinite(np.asarray(updates["w"])).all()


# --- the step ---------------------------------------------------------------------------------

def test_train_step_donates_the_state_and_keeps_float32_state():
    spec = zoo.get(MODEL)
    opt = train.make_optimizer(CONFIG, 10)
    state = train.init_state(spec, opt, jax.random.key(0))
    step = train.make_train_step(spec, opt)
    inputs, targets = spec.example_batch(jax.random.key(1), B)
    old = state
    state, _ = step(state, inputs, targets)
    assert old.params["out"]["w"].is_deleted()
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves((state.params,
                                                                state.opt_state))
               if jnp.issubdtype(x.dtype, jnp.floating))


def test_accumulation_equals_one_full_batch(reference):
    accumulated = _fit(config=train.TrainConfig(
        learning_rate=3e-2, warmup_steps=2, clip_norm=1.0, accumulate=4))
    assert_close(_losses(accumulated.history), _losses(reference.history))
    _params_close(accumulated.state.params, reference.state.params)


def test_mixed_precision_computes_in_bfloat16_and_keeps_float32_params(reference):
    tc = train.TrainConfig(learning_rate=3e-2, warmup_steps=2, clip_norm=1.0, dtype="bfloat16")
    result = _fit(config=tc)
    for leaf in jax.tree.leaves((result.state.params, result.state.opt_state)):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == jnp.float32
    # the bfloat16 run follows the float32 curve to bfloat16 rounding
    assert_close(_losses(result.history), _losses(reference.history), dtype="bfloat16")
    spec = zoo.get(MODEL).replace(dtype="bfloat16")
    out = spec.apply(result.state.params, *spec.example_inputs(jax.random.key(0), 2))
    assert out.dtype == jnp.bfloat16


# --- sharding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mesh_shape", [(8, 1, 1), (2, 2, 2), (1, 2, 4)],
                         ids=["data", "data+fsdp+tensor", "fsdp+tensor"])
def test_sharded_training_equals_single_device(reference, mesh_shape):
    mesh = sharding.make_mesh(mesh_shape)
    result = _fit(mesh=mesh)
    np.testing.assert_allclose(_losses(result.history), _losses(reference.history), **SHARDED)
    for x, y in zip(jax.tree.leaves(result.state.params),
                    jax.tree.leaves(reference.state.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **SHARDED)
    # params and their Adam moments are split the same way
    w = result.state.params["blocks"]["w1_ldf"]
    mu = result.state.opt_state[1][0].mu["blocks"]["w1_ldf"]
    assert w.sharding.spec == mu.sharding.spec
    if mesh_shape != (8, 1, 1):
        assert w.addressable_shards[0].data.shape != w.shape


@pytest.mark.parametrize("accumulate", [1, 2])
def test_train_step_on_a_users_explicit_mesh_equals_unsharded(accumulate):
    """``jax.make_mesh``'s default (``Explicit`` axes, the user's own axis name) with the
    batch placed split eight ways: the step's loss and new parameters equal the unsharded
    step's, with and without micro-batches."""
    spec, opt = zoo.get("rnn-tiny"), optax.adam(1e-2)
    step = train.make_train_step(spec, opt, accumulate=accumulate)
    batch = spec.example_batch(jax.random.key(1), 16)
    expected, expected_loss = step(train.init_state(spec, opt, jax.random.key(0)), *batch)
    mesh = jax.make_mesh((8,), ("shards",), axis_types=(jax.sharding.AxisType.Explicit,))
    with jax.set_mesh(mesh):
        state = train.init_state(spec, opt, jax.random.key(0))
        state, loss = step(state, *jax.device_put(batch, jax.sharding.PartitionSpec("shards")))
    np.testing.assert_allclose(float(loss), float(expected_loss), **SHARDED)
    _params_close(state.params, expected.params)


# --- checkpoints and resume -------------------------------------------------------------------

def test_resume_continues_exactly(reference, tmp_path):
    k = 3
    first = _fit(checkpoint_dir=tmp_path, checkpoint_every=2, until=k)
    assert train.Checkpoints(tmp_path).all_steps() == [2, 3]
    second = _fit(checkpoint_dir=tmp_path, resume=True, metrics_path=tmp_path / "m.jsonl")
    assert int(second.state.step) == STEPS
    assert_close(_losses(first.history) + _losses(second.history), _losses(reference.history))
    _params_close(second.state.params, reference.state.params)
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(k + 1, STEPS + 1))
    assert "examples_per_s" not in records[0]          # its time is mostly compilation
    assert all(r["examples_per_s"] > 0 for r in records[1:])


def test_keeps_the_last_k_checkpoints_and_logs_eval(tmp_path):
    eval_data = data.Loader.from_arrays(*zoo.get(MODEL).example_batch(jax.random.key(2), 16),
                                        batch_size=8, shuffle=False, repeat=False)
    result = _fit(until=6, checkpoint_dir=tmp_path, checkpoint_every=1, keep=2,
                  eval_data=eval_data, eval_every=3)
    assert train.Checkpoints(tmp_path).all_steps() == [5, 6]
    assert [h["step"] for h in result.history if "eval_loss" in h] == [3, 6]
    with pytest.raises(FileExistsError, match="resume"):    # a fresh run would overwrite
        _fit(until=1, checkpoint_dir=tmp_path)


def test_resume_without_a_checkpoint_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(train.CheckpointError, match="no complete checkpoint"):
        _fit(checkpoint_dir=tmp_path / "empty", resume=True)
    with pytest.raises(FileNotFoundError, match="missing"):
        _fit(checkpoint_dir=tmp_path / "missing", resume=True)
    assert not (tmp_path / "missing").exists()


def test_resume_from_a_corrupted_checkpoint_raises(tmp_path):
    _fit(until=2, checkpoint_dir=tmp_path)
    for f in (tmp_path / "2" / "state").rglob("*"):
        if f.is_file():         # same sizes: the step looks complete but cannot be read
            f.write_bytes(b"\x00" * f.stat().st_size)
    with pytest.raises(train.CheckpointError, match="step 2 .*corrupted"):
        _fit(checkpoint_dir=tmp_path, resume=True)


def test_a_crash_during_save_leaves_the_previous_checkpoint_usable(tmp_path, monkeypatch):
    import orbax.checkpoint as ocp
    _fit(checkpoint_dir=tmp_path, until=2)

    def crash(self, *a, **kw):
        raise KeyboardInterrupt("killed while writing the checkpoint")
    monkeypatch.setattr(ocp.handlers.JsonCheckpointHandler, "async_save", crash)
    monkeypatch.setattr(ocp.handlers.JsonCheckpointHandler, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        _fit(checkpoint_dir=tmp_path, resume=True, until=3)
    monkeypatch.undo()
    assert train.Checkpoints(tmp_path).latest_step() == 2
    resumed = _fit(checkpoint_dir=tmp_path, resume=True, until=4)
    assert int(resumed.state.step) == 4 and [h["step"] for h in resumed.history] == [3, 4]


# --- bad input --------------------------------------------------------------------------------

def test_batch_not_divisible_by_the_data_axes_raises():
    loader = data.Loader.from_arrays(*zoo.get(MODEL).example_batch(jax.random.key(0), 24),
                                     batch_size=12)
    with pytest.raises(ValueError, match=r"batch size 12 .*data \* fsdp = 8"):
        train.fit(zoo.get(MODEL), loader, train.RunConfig(steps=1, progress=False),
                  mesh=sharding.make_mesh((8, 1, 1)))


def test_mesh_that_does_not_match_the_devices_raises():
    with pytest.raises(ValueError, match="needs 16 devices, but 8"):
        sharding.make_mesh((2, 2, 4))


def test_accumulate_must_divide_the_batch():
    with pytest.raises(ValueError, match="accumulate=3"):
        _fit(until=1, config=train.TrainConfig(accumulate=3))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="accumulate"):
        train.TrainConfig(accumulate=0)
    with pytest.raises(ValueError, match="dtype"):
        train.TrainConfig(dtype="int8")
    for field, value in (("b1", 1.5), ("b2", 1.0), ("b1", -0.1)):
        with pytest.raises(ValueError, match=rf"{field} must be a number in \[0, 1\), "
                                             rf"got {value}"):
            train.TrainConfig(**{field: value})


@pytest.mark.parametrize("field, value, expected", [
    ("until", 0, "until must be an integer >= 1, got 0"),
    ("checkpoint_every", -1, "checkpoint_every must be an integer >= 0, got -1"),
    ("log_every", 0, "log_every must be an integer >= 1, got 0"),
    ("eval_every", 1.5, "eval_every must be an integer >= 0, got 1.5"),
    ("keep", 0, "keep must be an integer >= 1, got 0"),
    ("steps", 0, "steps must be an integer >= 1, got 0"),
    ("resume", True, "resume=True needs checkpoint_dir"),
])
def test_run_config_refuses_bad_values_naming_the_field(field, value, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        train.RunConfig(**{"steps": 5, field: value})


def test_fit_checks_every_host_batch_before_it_reaches_the_device():
    spec = zoo.get(MODEL)
    (x,), y = spec.example_batch(jax.random.key(11), N)
    y = np.asarray(y).copy()
    y[-1] = 3                                  # one label past the 3 classes
    loader = data.Loader.from_arrays((np.asarray(x),), y, batch_size=B, shuffle=False)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\] .* from 0 to 3"):
        train.fit(spec, loader, train.RunConfig(steps=STEPS, progress=False), mesh=_single())


def test_fit_refuses_data_that_is_not_batches():
    spec = zoo.get(MODEL)
    batch = spec.example_batch(jax.random.key(0), 8)
    with pytest.raises(TypeError, match="train_data must be a zoo.data.Batches"):
        train.fit(spec, [batch], train.RunConfig(steps=1, progress=False))
    with pytest.raises(TypeError, match="eval_data must be a zoo.data.Batches"):
        train.fit(spec, _loader(), train.RunConfig(steps=1, progress=False), eval_data=[batch])


# --- the batch check at the step's entry ------------------------------------------------------

@pytest.fixture(scope="module")
def classifier_step():
    spec = zoo.get(MODEL)                      # 3 classes
    opt = train.make_optimizer(CONFIG, 10)
    step = train.make_train_step(spec, opt)
    return spec, step, lambda: train.init_state(spec, opt, jax.random.key(0))


@pytest.mark.parametrize("labels, error, expected", [
    (np.array([0, 1, 2, 3, 0, 1, 2, 0]), ValueError, "labels must lie in [0, 2] for mlp-tiny "
     "(classes), got values from 0 to 3"),
    (np.array([0, 1, -1, 2, 0, 1, 2, 0]), ValueError, "got values from -1 to 2"),
    (np.array([0.0, 1, 2, 0, 0, 1, 2, 0], np.float32), TypeError,
     "labels must be integer class ids for task 'classification', got dtype float32"),
    (np.array([0, 1, 2, 0]), ValueError, "labels must have shape (8,) for mlp-tiny's outputs "
     "(8, 3), got (4,)"),
], ids=["too-large", "negative", "float", "short"])
def test_bad_labels_are_refused_at_the_step_naming_labels(classifier_step, labels, error,
                                                          expected):
    spec, step, fresh = classifier_step
    (x,), _ = spec.example_batch(jax.random.key(1), 8)
    with pytest.raises(error, match=re.escape(expected)):
        step(fresh(), (x,), labels)             # host labels, as the loaders give them


def test_a_label_under_the_mask_is_not_checked_and_a_bare_array_is_refused(classifier_step):
    spec, step, fresh = classifier_step
    (x,), _ = spec.example_batch(jax.random.key(1), 8)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 7])
    _, loss = step(fresh(), (x,), {"labels": labels, "mask": np.arange(8) < 7})
    assert np.isfinite(float(loss))
    with pytest.raises(TypeError, match=re.escape("inputs must be a tuple of the model's "
                                                  "input arrays, e.g. (x,), got a bare")):
        step(fresh(), x, labels % 3)
    with pytest.raises(ValueError, match="labels must lie in"):
        train.make_eval_step(spec)(fresh().params, (x,), labels)


# --- the console script -----------------------------------------------------------------------

def test_cli_trains_checkpoints_resumes_and_refuses_a_missing_checkpoint(tmp_path, capsys):
    from zoo import cli
    common = ["train", MODEL, "--steps", "6", "--batch-size", "8", "--mesh", "2,2,2",
              "--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "2",
              "--metrics", str(tmp_path / "m.jsonl"), "--no-progress", "--log-every", "1",
              "--examples", "32"]
    assert cli.main(common + ["--until", "3"]) == 0        # a pre-empted first leg
    assert cli.main(common + ["--resume"]) == 0
    assert "step 6" in capsys.readouterr().out
    steps = [json.loads(l)["step"] for l in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    common[common.index("--checkpoint-dir") + 1] = str(tmp_path / "none")
    assert cli.main(common + ["--resume"]) == 2
    assert "no checkpoint directory at" in capsys.readouterr().err
    (tmp_path / "none").mkdir()
    assert cli.main(common + ["--resume"]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err
