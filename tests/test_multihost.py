"""Multi-host for real: two processes on this machine, joined by ``jax.distributed`` over
loopback with gloo CPU collectives (4 devices each), train a model with each process reading
only its rows, checkpoint and resume, and reach the same params as one process with 8 devices.

Run as a script, this file is one worker: ``python tests/test_multihost.py PORT ID OUT MESH``.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MODEL, N, B, STEPS, UNTIL = "mlp-tiny", 48, 8, 6, 3
WAIT_S = 150          # bound on each worker, start-up and compilation included


def _train(mesh_shape, checkpoint_dir):
    """Trains ``STEPS`` steps, stopping at ``UNTIL`` and resuming from the checkpoint."""
    import jax
    import zoo
    from zoo import data, sharding, train
    spec = zoo.get(MODEL)
    (x,), y = spec.example_batch(jax.random.key(11), N)
    x, y = np.asarray(x), np.asarray(y)
    mesh = sharding.make_mesh(mesh_shape)
    config = train.TrainConfig(learning_rate=3e-2, warmup_steps=2)
    losses = []
    for until, resume in ((UNTIL, False), (STEPS, True)):
        loader = data.Loader.from_arrays((x,), y, batch_size=B, seed=5)
        run = train.RunConfig(steps=STEPS, checkpoint_dir=checkpoint_dir, resume=resume,
                              until=until, progress=False)
        result = train.fit(spec, loader, run, config=config, mesh=mesh)
        losses += [h["loss"] for h in result.history]
    rows = loader.rows
    params = jax.tree.map(np.asarray, _gather(result.state.params))
    return params, losses, (rows.start, rows.stop)


def _gather(tree):
    import jax
    from jax.experimental import multihost_utils
    if jax.process_count() == 1:
        return tree
    return multihost_utils.process_allgather(tree, tiled=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(port: int, pid: int, out: str, mesh: str) -> None:
    import jax
    jax.config.update("jax_num_cpu_devices", 4)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_default_matmul_precision", "highest")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid,
                               initialization_timeout=60)
    try:
        assert jax.device_count() == 8 and jax.local_device_count() == 4
        shape = tuple(int(s) for s in mesh.split(","))
        params, losses, rows = _train(shape, Path(out) / "ckpt")
        leaves = {jax.tree_util.keystr(p): v
                  for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}
        np.savez(Path(out) / f"params_{pid}.npz", **leaves)
        (Path(out) / f"result_{pid}.json").write_text(json.dumps({"losses": losses,
                                                                  "rows": rows}))
    finally:
        jax.distributed.shutdown()


def _run_two_processes(mesh: str, out: Path) -> list[dict]:
    env = {**os.environ, "no_proxy": "localhost,127.0.0.1", "NO_PROXY": "localhost,127.0.0.1",
           "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, __file__, str(port), str(pid), str(out), mesh],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for pid in (0, 1)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=WAIT_S)[0])
    finally:
        for p in procs:             # never leave a process behind
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=10)
    for p, log in zip(procs, logs):
        assert p.returncode == 0, f"worker exited with {p.returncode}:\n{log[-3000:]}"
    return [json.loads((out / f"result_{pid}.json").read_text()) for pid in (0, 1)]


def test_two_processes_match_one_process_with_eight_devices(tmp_path):
    from tests.tolerances import SHARDED
    mesh = "4,2,1"        # data across processes, fsdp inside each
    results = _run_two_processes(mesh, tmp_path)
    assert results[0]["rows"] == [0, 4] and results[1]["rows"] == [4, 8]
    with tempfile.TemporaryDirectory() as single_dir:
        params, losses, _ = _train((4, 2, 1), Path(single_dir) / "ckpt")
    import jax
    expected = {jax.tree_util.keystr(p): v
                for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    for pid in (0, 1):
        np.testing.assert_allclose(results[pid]["losses"], losses, **SHARDED)
        got = np.load(tmp_path / f"params_{pid}.npz")
        assert sorted(got.files) == sorted(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(got[name], value, **SHARDED, err_msg=name)


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
