"""Checkpoints that never lose data: training states by step, and a params-only model file.

A training checkpoint is one folder per step under a directory, written by orbax (which
writes into a temporary folder and renames it when complete), holding the state, the data
loader's position and ``zoo.json``: the model's registry name, family and config fields and
the dtype and shape of every saved array. A step counts only once complete: after the save a
marker ``COMPLETE.json`` lists every file of the step with its size, so an empty folder, an
interrupted save or a partly copied folder is skipped and the newest complete step is used::

    latest = max{s : every file listed in s/COMPLETE.json exists with its size}

A restore refuses, before reading any array, a checkpoint of another model or config (the
differing fields are named) and an array whose dtype or shape differs from the template (the
first such parameter is named); nothing is cast.

:func:`save` and :func:`load` keep a trained model's params alone, with the same record, so
that ``load`` rebuilds the spec without the caller naming it:

>>> import tempfile, jax, zoo
>>> spec = zoo.get("mlp-xor")
>>> with tempfile.TemporaryDirectory() as d:
...     _ = save(f"{d}/xor", spec, spec.init(jax.random.key(0)))
...     spec2, params = load(f"{d}/xor")
>>> spec2 == spec, params["out"]["w"].shape
(True, (8, 2))
"""

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import jax
import numpy as np

from zoo._checks import positive_int
from zoo.registry import ModelSpec, get, list_models, spec_for

META = "zoo.json"
COMPLETE = "COMPLETE.json"
_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that should be there is missing, incomplete or does not fit the model."""


# --- what a checkpoint records ----------------------------------------------------------------

def spec_record(spec: ModelSpec) -> dict:
    """The model's registry name, family and config fields, as JSON-able values."""
    return {"name": spec.name, "family": spec.family,
            "config": _jsonable(dataclasses.asdict(spec.config))}


def spec_from_record(record: dict) -> ModelSpec:
    """The spec a :func:`spec_record` describes: the registered one when the name and config
    match, else one built from the family and the config fields."""
    fields = {k: _tupled(v) for k, v in record["config"].items()}
    if record["name"] in list_models():
        registered = get(record["name"])
        if dataclasses.asdict(registered.config) == fields:
            return registered
    module = __import__(f"zoo.{record['family']}", fromlist=["Config"])
    return spec_for(record["family"], module.Config(**fields), record["name"])


def array_record(tree) -> dict:
    """``{path: [dtype, shape]}`` of every array leaf of ``tree`` (abstract ones too)."""
    return {jax.tree_util.keystr(path): [str(np.dtype(leaf.dtype)), list(leaf.shape)]
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def check_spec(recorded: dict, spec: ModelSpec, where) -> None:
    """Raises :class:`CheckpointError` spelling out how ``spec`` differs from ``recorded``."""
    mine = spec_record(spec)
    if recorded["family"] != mine["family"]:
        raise CheckpointError(f"{where} holds a {recorded['family']} model "
                              f"({recorded['name']}), not a {mine['family']} model ({spec.name})")
    fields = sorted(set(recorded["config"]) | set(mine["config"]))
    diff = [f"{k}: checkpoint {recorded['config'].get(k, '(absent)')!r}, "
            f"model {mine['config'].get(k, '(absent)')!r}"
            for k in fields if recorded["config"].get(k) != mine["config"].get(k)]
    if diff:
        raise CheckpointError(f"{where} was written by {recorded['name']} with another config "
                              f"than {spec.name}'s; differing fields: " + "; ".join(diff))


def check_arrays(recorded: dict, like, where, prefix: str = "") -> None:
    """Raises :class:`CheckpointError` naming the first array of ``like`` whose dtype or
    shape differs from ``recorded`` (or that one of them lacks)."""
    mine = array_record(like)
    for path in list(mine) + [p for p in recorded if p not in mine]:
        got, want = recorded.get(path), mine.get(path)
        if got != want:
            show = lambda r: "absent" if r is None else f"{r[0]} {tuple(r[1])}"
            raise CheckpointError(
                f"{where}: parameter {prefix}{path} is {show(got)} in the checkpoint but "
                f"{show(want)} in the model; refusing to cast or reshape")


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _tupled(value):
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _write_json(path: Path, record: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def _file_sizes(folder: Path) -> dict:
    return {str(f.relative_to(folder)): f.stat().st_size
            for f in sorted(folder.rglob("*")) if f.is_file() and f.name != COMPLETE}


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a finished save: its marker lists files that all exist with
    their recorded sizes."""
    marker = Path(folder) / COMPLETE
    try:
        files = _read_json(marker)["files"]
    except (OSError, ValueError, KeyError):
        return False
    return all((Path(folder) / name).is_file() and (Path(folder) / name).stat().st_size == size
               for name, size in files.items())


def _check_keep(keep) -> None:
    if keep is not None:
        positive_int(keep, "keep")


# --- training checkpoints ---------------------------------------------------------------------

class Checkpoints:
    """Orbax checkpoints of a training state and the data position, one folder per step.

    Args:
        directory: where the step folders live (created on the first save).
        keep: how many of the newest complete checkpoints to keep (an int >= 1), or ``None``
            for all of them.
        spec: the model being trained; recorded with each save and checked on restore.

    Raises:
        ValueError: if ``keep`` is not ``None`` or an int >= 1.
    """

    def __init__(self, directory: str | Path, *, keep: int | None = 3,
                 spec: ModelSpec | None = None):
        import orbax.checkpoint as ocp   # deferred: heavy, and only needed with checkpoints
        _check_keep(keep)
        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self.keep, self.spec = keep, spec
        self._manager = None

    def _open(self):
        if self._manager is None:
            options = self._ocp.CheckpointManagerOptions(
                max_to_keep=None, create=True, enable_async_checkpointing=False)
            self._manager = self._ocp.CheckpointManager(
                self.directory, options=options, item_names=("state", "data", "meta"))
        return self._manager

    def all_steps(self) -> list[int]:
        """The complete checkpoints' steps, oldest first (incomplete folders are skipped)."""
        if not self.directory.is_dir():
            return []
        steps = [int(p.name) for p in self.directory.iterdir() if p.name.isdigit()]
        return sorted(s for s in steps if is_complete(self.directory / str(s)))

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or ``None``."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def save(self, step: int, state, data_state: dict) -> None:
        """Saves ``state`` and the loader position ``data_state`` (a JSON-able dict), marks
        the step complete, then deletes the complete steps beyond ``keep``."""
        folder = self.directory / str(step)
        main = jax.process_index() == 0
        if main and folder.exists() and not is_complete(folder):
            folder.rename(folder.with_name(f"{step}.incomplete-{time.time_ns()}"))
        _sync("zoo-checkpoint-aside")
        meta = {"format": _FORMAT, "arrays": array_record(state)}
        if self.spec is not None:
            meta["model"] = spec_record(self.spec)
        args = self._ocp.args
        manager = self._open()
        manager.reload()          # the folders may have changed since it last looked
        manager.save(step, args=args.Composite(
            state=args.StandardSave(state), data=args.JsonSave(data_state),
            meta=args.JsonSave(meta)), force=True)
        manager.wait_until_finished()
        if main:
            _write_json(folder / COMPLETE, {"files": _file_sizes(folder)})
            self._prune()
        _sync("zoo-checkpoint-complete")

    def _prune(self) -> None:
        steps = self.all_steps()
        if self.keep is not None:
            for old in steps[:-self.keep]:
                shutil.rmtree(self.directory / str(old))

    def restore(self, like, step: int | None = None) -> tuple:
        """The state (placed like ``like``, which may be abstract) and the data position.

        Raises:
            FileNotFoundError: if the directory does not exist (nothing is created).
            CheckpointError: if there is no complete checkpoint, it was written for another
                model or config, an array's dtype or shape differs from ``like``, or it
                cannot be read.
        """
        if not self.directory.is_dir():
            raise FileNotFoundError(f"cannot resume (resume=True): no checkpoint directory at "
                                    f"{self.directory}")
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(
                f"cannot resume: no complete checkpoint in {self.directory} "
                "(refusing to start a fresh run in its place)")
        where = f"checkpoint step {step} in {self.directory}"
        if not is_complete(self.directory / str(step)):
            raise CheckpointError(f"cannot resume: {where} is missing or incomplete")
        meta = _read_json(self.directory / str(step) / "meta" / "metadata")
        if self.spec is not None and "model" in meta:
            check_spec(meta["model"], self.spec, where)
        check_arrays(meta["arrays"], like, where, prefix="state")
        return self._read(step, like, where)

    def _read(self, step, like, where):
        placed = lambda x: x.sharding if isinstance(x, (jax.Array, jax.ShapeDtypeStruct)) \
            else None
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
            x.shape, x.dtype, sharding=placed(x)), like)
        args = self._ocp.args
        try:
            restored = self._open().restore(step, args=args.Composite(
                state=args.StandardRestore(abstract), data=args.JsonRestore()))
        except Exception as err:   # orbax raises many types for unreadable files
            raise CheckpointError(
                f"cannot resume: {where} is missing or corrupted "
                f"({type(err).__name__}: {err})") from err
        return type(like)(*restored["state"]), dict(restored["data"])

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


# --- a trained model, params only -------------------------------------------------------------

def save(path: str | Path, spec: ModelSpec, params, *, overwrite: bool = False,
         extra: dict | None = None) -> Path:
    """Writes ``params`` (orbax) and what rebuilds ``spec`` (``zoo.json``) into ``path``.

    ``extra`` (JSON-able) is kept beside the record, e.g. how the console encoded the data;
    :func:`record` reads it back.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is false.
        CheckpointError: if ``params`` does not have the dtypes and shapes of ``spec.init``.
    """
    import orbax.checkpoint as ocp
    path = Path(path).absolute()
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    expected = jax.eval_shape(spec.init, jax.random.key(0))
    check_arrays(array_record(params), expected, f"params for {spec.name}", prefix="params")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(path / "params", params)
        ckpt.wait_until_finished()
    _write_json(path / META, {"format": _FORMAT, "model": spec_record(spec),
                              "arrays": array_record(params), "extra": extra or {}})
    return path


def record(path: str | Path) -> dict:
    """The ``zoo.json`` record of a model written by :func:`save` (``"model"``, ``"arrays"``,
    ``"extra"``).

    Raises:
        FileNotFoundError: if ``path`` holds no saved model.
    """
    meta = Path(path).absolute() / META
    if not meta.is_file():
        raise FileNotFoundError(f"no saved model at {Path(path).absolute()} (no {META})")
    return _read_json(meta)


def load(path: str | Path) -> tuple[ModelSpec, dict]:
    """``(spec, params)`` from a folder written by :func:`save` (or a training checkpoint's
    directory: its newest complete step's params).

    Raises:
        FileNotFoundError: if ``path`` holds no saved model (nothing is created).
        CheckpointError: if the params on disk do not match the recorded model.
    """
    import orbax.checkpoint as ocp
    path = Path(path).absolute()
    if not path.is_dir():
        raise FileNotFoundError(f"no saved model at {path}")
    if not (path / META).is_file():
        return _load_training(path)
    meta = _read_json(path / META)
    spec = spec_from_record(meta["model"])
    like = jax.eval_shape(spec.init, jax.random.key(0))
    check_arrays(meta["arrays"], like, str(path), prefix="params")
    with ocp.StandardCheckpointer() as ckpt:
        params = ckpt.restore(path / "params", like)
    return spec, params


def _load_training(path: Path) -> tuple[ModelSpec, dict]:
    import orbax.checkpoint as ocp
    step = Checkpoints(path).latest_step()
    if step is None:
        raise FileNotFoundError(f"no saved model at {path}: it has neither {META} (zoo.save) "
                                "nor a complete training checkpoint")
    meta = _read_json(path / str(step) / "meta" / "metadata")
    if "model" not in meta:
        raise CheckpointError(f"checkpoint step {step} in {path} does not record its model")
    spec = spec_from_record(meta["model"])
    like = jax.eval_shape(spec.init, jax.random.key(0))
    head = ".params"
    check_arrays({p[len(head):]: v for p, v in meta["arrays"].items() if p.startswith(head)},
                 like, f"checkpoint step {step} in {path}", prefix="params")
    with ocp.StandardCheckpointer() as ckpt:
        state = ckpt.restore(path / str(step) / "state")
    return spec, jax.tree.map(jax.numpy.asarray, state["params"])
