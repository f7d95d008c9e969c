"""Checkpoints that never lose data: keep, dtype and shape checks, the recorded model and
config, complete steps only, missing paths, NaN stops, and a kill during save then resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zoo
from zoo import checkpoints, data, sharding, train

MODEL = "mlp-tiny"
N, B = 40, 8                   # 5 batches per epoch
ROOT = Path(__file__).resolve().parents[1]


def _loader(x=None, shuffle=True):
    spec = zoo.get(MODEL)
    (x0,), y = spec.example_batch(jax.random.key(3), N)
    x = np.asarray(x0) if x is None else x
    return data.Loader.from_arrays((x,), np.asarray(y), batch_size=B, seed=1, shuffle=shuffle)


def _fit(tmp_path, spec=None, loader=None, **kw):
    run = train.RunConfig(steps=kw.pop("steps", 6), checkpoint_dir=tmp_path, progress=False,
                          **kw)
    return train.fit(spec or zoo.get(MODEL), loader or _loader(), run,
                     config=train.TrainConfig(learning_rate=1e-2),
                     mesh=sharding.make_mesh((1, 1, 1), devices=jax.devices()[:1]))


# --- keep -------------------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [0, -2, 1.5, True, "3"])
def test_keep_below_one_or_not_an_int_is_refused_everywhere(keep, tmp_path):
    with pytest.raises(ValueError, match=f"keep must be an integer >= 1, got {keep!r}"):
        train.Checkpoints(tmp_path, keep=keep)
    with pytest.raises(ValueError, match="keep must be"):
        train.RunConfig(steps=3, checkpoint_dir=tmp_path, keep=keep)
    assert not any(tmp_path.iterdir()), "nothing is written"


def test_keep_one_leaves_the_newest_step_and_none_keeps_all(tmp_path):
    _fit(tmp_path / "one", checkpoint_every=1, keep=1, steps=4)
    assert train.Checkpoints(tmp_path / "one").all_steps() == [4]
    _fit(tmp_path / "all", checkpoint_every=1, keep=None, steps=4)
    assert train.Checkpoints(tmp_path / "all").all_steps() == [1, 2, 3, 4]


# --- what a restore accepts -------------------------------------------------------------------

def _state(spec, dtype=jnp.float32):
    opt = train.make_optimizer(train.TrainConfig(), 10)
    state = train.init_state(spec, opt, jax.random.key(0))
    params = jax.tree.map(lambda x: x.astype(dtype), state.params)
    return state._replace(params=params)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.int32])
def test_restore_into_another_dtype_is_refused_naming_the_parameter(tmp_path, dtype):
    spec = zoo.get(MODEL)
    ckpt = train.Checkpoints(tmp_path, spec=spec)
    ckpt.save(1, _state(spec), {"epoch": 0, "batch": 1, "seed": 0})
    like = _state(spec, dtype)
    first = jax.tree_util.keystr(jax.tree_util.tree_flatten_with_path(like.params)[0][0][0])
    with pytest.raises(train.CheckpointError,
                       match=rf"state\.params{_escape(first)} is float32 .* but "
                             rf"{np.dtype(dtype).name} .*refusing to cast"):
        ckpt.restore(like)


def _escape(text):
    import re
    return re.escape(text)


def test_restore_into_another_config_names_the_differing_fields(tmp_path):
    _fit(tmp_path, steps=2)
    wider = zoo.get(MODEL).replace(hidden_dims=(13,), block_mlp_dim=21)
    with pytest.raises(train.CheckpointError,
                       match=r"mlp-tiny with another config.*block_mlp_dim: checkpoint 20, "
                             r"model 21; hidden_dims: checkpoint \[12\], model \[13\]"):
        _fit(tmp_path, spec=wider, resume=True, steps=3)


def test_restore_of_another_family_is_refused(tmp_path):
    _fit(tmp_path, steps=2)
    ckpt = train.Checkpoints(tmp_path, spec=zoo.get("rnn-tiny"))
    with pytest.raises(train.CheckpointError, match="holds a mlp model .*not a rnn model"):
        ckpt.restore(_state(zoo.get(MODEL)))


def test_missing_path_raises_file_not_found_and_creates_nothing(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        train.Checkpoints(missing).restore(_state(zoo.get(MODEL)))
    with pytest.raises(FileNotFoundError, match=str(missing)):
        zoo.load(missing)
    assert not (tmp_path / "no").exists()


# --- complete steps only ----------------------------------------------------------------------

def test_empty_and_partly_copied_steps_are_skipped_and_resume_uses_the_newest_complete(
        tmp_path):
    _fit(tmp_path, checkpoint_every=2, steps=4, keep=None)          # steps 2 and 4
    (tmp_path / "9").mkdir()                                         # an empty folder
    shutil.copytree(tmp_path / "4", tmp_path / "7")                  # a copy cut short
    biggest = max((f for f in (tmp_path / "7").rglob("*") if f.is_file()),
                  key=lambda f: f.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])
    assert train.Checkpoints(tmp_path).all_steps() == [2, 4]
    resumed = _fit(tmp_path, resume=True, checkpoint_every=1, steps=7, keep=None)
    assert [h["step"] for h in resumed.history] == [5, 6, 7]
    assert train.Checkpoints(tmp_path).all_steps() == [2, 4, 5, 6, 7]
    aside = [p.name for p in tmp_path.iterdir() if p.name.startswith("7.incomplete")]
    assert len(aside) == 1, "the partial copy is moved aside, not deleted"


# --- divergence -------------------------------------------------------------------------------

def test_a_nan_loss_stops_training_naming_the_step_and_keeps_the_last_good_checkpoint(
        tmp_path):
    x = np.asarray(zoo.get(MODEL).example_batch(jax.random.key(3), N)[0][0]).copy()
    x[2 * B + 3, 0] = np.nan                       # in the third batch (no shuffling)
    with pytest.raises(FloatingPointError, match="diverged at step 3"):
        _fit(tmp_path, loader=_loader(x, shuffle=False), checkpoint_every=1, steps=5)
    assert train.Checkpoints(tmp_path).all_steps() == [1, 2]


# --- params only ------------------------------------------------------------------------------

def test_save_load_rebuilds_a_config_that_is_not_in_the_registry(tmp_path):
    spec = zoo.get("cnn-splice").replace(num_classes=4, input_size=(31,))
    params = spec.init(jax.random.key(5))
    zoo.save(tmp_path / "m", spec, params)
    loaded, restored = zoo.load(tmp_path / "m")
    assert loaded.config == spec.config and loaded.family == "cnn"
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(FileExistsError, match="overwrite"):
        zoo.save(tmp_path / "m", spec, params)
    with pytest.raises(checkpoints.CheckpointError, match="params"):
        zoo.save(tmp_path / "other", zoo.get("cnn-splice"), params)
    meta = json.loads((tmp_path / "m" / "zoo.json").read_text())
    assert meta["model"]["config"]["input_size"] == [31]


# --- a kill during save, then resume ----------------------------------------------------------

_KILLED = """
import sys, time, pathlib
import orbax.checkpoint as ocp
from zoo import cli
ready = pathlib.Path(sys.argv[1])
def stalled(original):
    def save(self, directory, *a, **kw):
        if "/3.orbax-checkpoint-tmp" in str(directory):   # step 3, mid-write
            ready.write_text("saving")
            time.sleep(600)
        return original(self, directory, *a, **kw)
    return save
handler = ocp.handlers.JsonCheckpointHandler
handler.save, handler.async_save = stalled(handler.save), stalled(handler.async_save)
sys.exit(cli.main(sys.argv[2:]))
"""


def test_a_process_killed_during_save_resumes_from_the_newest_complete_step(tmp_path):
    ckpt, metrics, ready = tmp_path / "ckpt", tmp_path / "m.jsonl", tmp_path / "ready"
    common = ["train", MODEL, "--steps", "5", "--batch-size", "8", "--examples", "32",
              "--checkpoint-dir", str(ckpt), "--checkpoint-every", "1", "--log-every", "1",
              "--metrics", str(metrics), "--no-progress", "--mesh", "1,1,1", "--cpu-devices",
              "1"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(ready), *common], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    output = proc.communicate()[0].decode()
    assert ready.exists(), output
    assert train.Checkpoints(ckpt).all_steps() == [1, 2]
    assert any(".orbax-checkpoint-tmp" in p.name for p in ckpt.iterdir()), "killed mid-save"
    done = subprocess.run([sys.executable, "-m", "zoo", *common, "--resume"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "step 5" in done.stdout
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == [1, 2, 3, 3, 4, 5], "step 3 is trained again after the kill"
    assert train.Checkpoints(ckpt).all_steps() == [3, 4, 5]
