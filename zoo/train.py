"""Training for every registered model: losses, a sharded train step, and the ``fit`` loop.

The families of ``zoo.registry.OWN_LOSS`` define ``loss(params, inputs, targets, cfg, *,
key=None)`` (the perceptron's criterion makes gradient descent the perceptron rule); the others
train on their task's default loss from ``zoo.losses.LOSSES`` applied to the model's outputs.
Targets are an array, or a dict ``{"labels": ..., "mask": ...}`` whose mask (1 for real
positions, 0 for padding) weights the per-position losses::

    L = Σ_i m_i ℓ_i / max(Σ_i m_i, 1)

One optimiser step (:func:`make_train_step`) with ``A`` accumulation micro-batches, clipping
threshold ``c`` and learning rate ``η_t``::

    g = (1/A) Σ_a ∇L(θ; batch_a),    g ← g · min(1, c / ||g||),    θ ← θ − η_t · Adam(g)

with ``η_t`` rising linearly for ``warmup_steps`` and then following a half cosine to
``end_learning_rate`` (:func:`make_optimizer`).

Parallelism comes from a mesh (``zoo.sharding``): params and the optimiser state are placed by
``param_axes``, batches split over the ``data`` and ``fsdp`` axes, and the same step runs on one
device, eight, or many processes (``jax.distributed``; each process feeds its own rows through
``jax.make_array_from_process_local_data``).

>>> import jax, optax, zoo
>>> spec = zoo.get("mlp-xor")
>>> state = init_state(spec, optax.adam(1e-2), jax.random.key(0))
>>> step = make_train_step(spec, optax.adam(1e-2))
>>> inputs, targets = spec.example_batch(jax.random.key(1), 8)
>>> state, loss = step(state, inputs, targets)
>>> int(state.step), loss.shape
(1, ())
"""

import contextlib
import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec
from jaxtyping import Array, Float, Int

from zoo import _checks
from zoo import sharding as shd
from zoo.checkpoints import CheckpointError, Checkpoints
from zoo.data import Batches
from zoo.losses import LOSSES
from zoo.registry import ModelSpec


# --- losses -----------------------------------------------------------------------------------

def loss_fn(spec: ModelSpec) -> Callable[..., jax.Array]:
    """``loss(params, inputs, targets, key=None) -> scalar`` for ``spec``.

    A ``key`` turns on training mode (dropout) in the model.

    Raises:
        ValueError: if the family defines no loss and the task has no default one.
    """
    if spec.own_loss:
        own = spec.module.loss
        return lambda params, inputs, targets, key=None: own(
            params, inputs, targets, spec.config, key=key)
    if spec.task not in LOSSES:
        raise ValueError(f"no default loss for task {spec.task!r} of model {spec.name!r}; "
                         f"known tasks: {sorted(LOSSES)}")
    task_loss = LOSSES[spec.task]

    def loss(params, inputs, targets, key=None):
        labels, mask = split_targets(targets)
        outputs = spec.apply(params, *inputs, key=key, train=key is not None)
        return task_loss(outputs, labels, mask)
    return loss


def split_targets(targets) -> tuple[Any, Any]:
    """``(labels, mask)`` from an array (mask ``None``) or a ``{"labels", "mask"}`` dict."""
    if isinstance(targets, dict):
        return targets["labels"], targets.get("mask")
    return targets, None


# --- optimiser --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimiser, schedule and precision settings of a training run.

    Attributes:
        learning_rate: peak learning rate (reached after warm-up).
        warmup_steps: steps of linear warm-up from 0.
        decay_steps: length of the whole schedule (warm-up included); the cosine reaches
            ``end_learning_rate`` there. Default: the run's number of steps.
        end_learning_rate: final learning rate of the cosine.
        weight_decay: decoupled weight decay (AdamW); 0 gives Adam.
        b1, b2: Adam's moment decay rates.
        clip_norm: global gradient-norm threshold (``None``: no clipping).
        accumulate: micro-batches per step; the batch is split ``accumulate`` ways and the
            gradients averaged before one update.
        dtype: compute dtype of the model (``"bfloat16"`` for mixed precision: params and the
            optimiser state stay float32, losses are computed in float32).
    """
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    decay_steps: int | None = None
    end_learning_rate: float = 0.0
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    clip_norm: float | None = 1.0
    accumulate: int = 1
    dtype: str = "float32"

    def __post_init__(self):
        _checks.positive_float(self.learning_rate, "learning_rate")
        _checks.positive_int(self.warmup_steps, "warmup_steps", minimum=0)
        if self.decay_steps is not None:
            _checks.positive_int(self.decay_steps, "decay_steps")
        if self.end_learning_rate < 0 or self.weight_decay < 0:
            raise ValueError("end_learning_rate and weight_decay must be >= 0, got "
                             f"{self.end_learning_rate!r}, {self.weight_decay!r}")
        if self.clip_norm is not None:
            _checks.positive_float(self.clip_norm, "clip_norm")
        _checks.positive_int(self.accumulate, "accumulate")
        _checks.dtype_name(self.dtype)
        for name, value in (("b1", self.b1), ("b2", self.b2)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 <= value < 1:
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def make_optimizer(tc: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """Clipping then AdamW on a warm-up + cosine schedule over ``tc.decay_steps or
    total_steps`` steps.

    >>> opt = make_optimizer(TrainConfig(learning_rate=0.1, warmup_steps=10), 100)
    >>> sched = schedule(TrainConfig(learning_rate=0.1, warmup_steps=10), 100)
    >>> [round(float(sched(s)), 4) for s in (0, 5, 10, 55, 100)]
    [0.0, 0.05, 0.1, 0.05, 0.0]
    """
    parts = [] if tc.clip_norm is None else [optax.clip_by_global_norm(tc.clip_norm)]
    parts.append(optax.adamw(schedule(tc, total_steps), b1=tc.b1, b2=tc.b2,
                             weight_decay=tc.weight_decay))
    return optax.chain(*parts)


def schedule(tc: TrainConfig, total_steps: int) -> optax.Schedule:
    """The learning rate as a function of the step (warm-up, then a half cosine)."""
    decay = max(tc.decay_steps or total_steps, tc.warmup_steps + 1)
    return optax.warmup_cosine_decay_schedule(
        0.0, tc.learning_rate, tc.warmup_steps, decay, tc.end_learning_rate)


# --- state and step ---------------------------------------------------------------------------

class TrainState(NamedTuple):
    """Everything a training step carries.

    Attributes:
        params: the model's params (float32).
        opt_state: the optimiser's state (float32, placed like the params).
        step: optimiser steps taken, int32 scalar.
        key: raw ``uint32`` key data for dropout; step ``s`` uses ``fold_in(key, s)``, so a
            resumed run draws the same randomness. ``None``: the model runs in eval mode.
    """
    params: dict
    opt_state: optax.OptState
    step: jax.Array
    key: jax.Array | None = None


def init_state(spec: ModelSpec, optimizer: optax.GradientTransformation,
               key: jax.Array, *, mesh=None) -> TrainState:
    """Fresh params from ``key``, the optimiser's initial state and a training key.

    With ``mesh`` the state is created already placed (:func:`state_shardings`); the values do
    not depend on the mesh.
    """
    def fresh(key):
        params = spec.init(key)
        train_key = jax.random.key_data(jax.random.fold_in(key, 1))
        return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), train_key)
    if mesh is None:
        return fresh(key)
    return jax.jit(fresh, out_shardings=state_shardings(spec, optimizer, mesh))(key)


def state_shardings(spec: ModelSpec, optimizer: optax.GradientTransformation,
                    mesh) -> TrainState:
    """Shardings of a :class:`TrainState` on ``mesh``: params from ``param_axes``, every
    optimiser moment placed like its parameter, counters replicated.

    Raises:
        ValueError: if a parameter's dimension does not divide its mesh axes.
    """
    params = jax.eval_shape(spec.init, jax.random.key(0))
    is_spec = lambda a: isinstance(a, PartitionSpec)
    leaves, treedef = jax.tree.flatten_with_path(params)
    axes = jax.tree.leaves(spec.param_axes(), is_leaf=is_spec)
    param_sh = treedef.unflatten([
        shd.sharding_for(mesh, ax, leaf.shape, name="params" + jax.tree_util.keystr(path))
        for (path, leaf), ax in zip(leaves, axes, strict=True)])
    replicated = NamedSharding(mesh, PartitionSpec())
    opt_shapes = jax.eval_shape(optimizer.init, params)
    opt_sh = optax.tree_map_params(
        optimizer, lambda _, s: s, opt_shapes, param_sh,
        transform_non_params=lambda _: replicated,
        is_leaf=lambda x: isinstance(x, NamedSharding))
    return TrainState(param_sh, opt_sh, replicated, replicated)


def make_train_step(spec: ModelSpec, optimizer: optax.GradientTransformation, *,
                    mesh=None, accumulate: int = 1):
    """A jit-compiled ``step(state, inputs, targets, key=None) -> (state, loss)``.

    The step is pure: the new state depends only on the state and the batch (dropout keys
    come from ``state.key`` and ``state.step`` unless ``key`` is given). With ``mesh``, the
    step runs under it and returns the state with the shardings of :func:`state_shardings`.
    The batch's leading axis is split into ``accumulate`` micro-batches (rows ``a, a + A,
    a + 2A, ...``: each device keeps its own rows) whose gradients are averaged.

    The incoming state's buffers are donated: do not reuse a state after passing it in.

    Raises:
        ValueError: (when called) if the batch size does not divide ``accumulate``.
    """
    _checks.positive_int(accumulate, "accumulate")
    loss = loss_fn(spec)
    grad = jax.value_and_grad(loss)

    def grads_of(params, inputs, targets, key):
        if accumulate == 1:
            return grad(params, inputs, targets, key)
        micro = jax.tree.map(lambda x: _micro_batches(x, accumulate), (inputs, targets))
        keys = None if key is None else jax.random.split(key, accumulate)

        def body(total, xs):
            (mi, mt), k = xs
            value, g = grad(params, mi, mt, k)
            return jax.tree.map(jnp.add, total, (value, g)), None
        zero = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
        (value, g), _ = jax.lax.scan(body, zero, (micro, keys))
        return value / accumulate, jax.tree.map(lambda x: x / accumulate, g)

    def step(state: TrainState, inputs: tuple, targets, key=None):
        if key is None and state.key is not None:
            key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
        value, grads = grads_of(state.params, inputs, targets, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1, state.key), value

    check = BatchCheck(spec)
    if mesh is None:
        compiled = jax.jit(step, donate_argnums=0)

        def checked_step(state, inputs, targets, key=None):
            check(inputs, targets)
            return compiled(state, inputs, targets, key)
        return checked_step
    out = (state_shardings(spec, optimizer, mesh), NamedSharding(mesh, PartitionSpec()))
    compiled = jax.jit(step, donate_argnums=0, out_shardings=out)

    def sharded_step(state, inputs, targets, key=None):
        check(inputs, targets)
        with shd.use_mesh(mesh):
            return compiled(state, inputs, targets, key)
    return sharded_step


def make_eval_step(spec: ModelSpec, *, mesh=None):
    """A jit-compiled ``loss(params, inputs, targets)`` in eval mode (no dropout), with the
    batch checked as :func:`make_train_step` does."""
    compiled, check = jax.jit(loss_fn(spec)), BatchCheck(spec)

    def checked(params, inputs, targets):
        check(inputs, targets)
        with shd.use_mesh(mesh) if mesh is not None else contextlib.nullcontext():
            return compiled(params, inputs, targets)
    return checked


#: Tasks whose labels are integer ids below the size of the model's last output axis.
CLASS_TASKS = frozenset({"classification", "sequence_labelling", "lm", "masked_lm",
                         "seq2seq"})


class BatchCheck:
    """The check every batch passes at the train and eval steps' entry.

    ``inputs`` must be a tuple (or list) of the model's positional inputs; for the tasks of
    :data:`CLASS_TASKS` the labels must be integers of the shape of the outputs without their
    last axis, in ``[0, C)`` where ``C`` is that axis's size (read off ``jax.eval_shape``);
    binary labels lie in ``[0, 1]``. Shapes and dtypes are checked for every batch; values
    where they are still on the host (NumPy arrays, as :func:`fit` checks each batch before
    placing it), so that the check never waits on the device; positions a mask zeroes are
    not checked.

    Raises (when called):
        TypeError: if ``inputs`` is a bare array or the labels are not integers.
        ValueError: if the labels' shape or values do not fit the model's outputs.
    """

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self._outputs: dict = {}

    def __call__(self, inputs, targets) -> None:
        if not isinstance(inputs, (tuple, list)):
            shape = f" of shape {tuple(inputs.shape)}" if isinstance(
                inputs, (jax.Array, np.ndarray)) else ""
            raise TypeError(f"inputs must be a tuple of the model's input arrays, e.g. (x,), "
                            f"got a bare {type(inputs).__name__}{shape}")
        task = self.spec.task
        if task not in CLASS_TASKS and task != "binary":
            return
        labels, mask = split_targets(targets)
        out = self._output_shape(inputs)
        want = out.shape[:-1] if task in CLASS_TASKS else out.shape
        if tuple(labels.shape) != tuple(want):
            raise ValueError(f"labels must have shape {tuple(want)} for {self.spec.name}'s "
                             f"outputs {tuple(out.shape)}, got {tuple(labels.shape)}")
        if task in CLASS_TASKS and not jnp.issubdtype(labels.dtype, jnp.integer):
            raise TypeError(f"labels must be integer class ids for task {task!r}, got dtype "
                            f"{labels.dtype}")
        if not isinstance(labels, np.ndarray) or not isinstance(mask, (np.ndarray, type(None))):
            return
        high = out.shape[-1] - 1 if task in CLASS_TASKS else 1
        lo, hi = _label_range(labels, mask)
        if lo < 0 or hi > high or not np.isfinite(lo + hi):
            raise ValueError(f"labels must lie in [0, {high}] for {self.spec.name} "
                             f"({'classes' if task in CLASS_TASKS else 'binary'}), got values "
                             f"from {lo:g} to {hi:g}")

    def _output_shape(self, inputs):
        key = tuple((tuple(x.shape), str(x.dtype)) for x in inputs)
        if key not in self._outputs:
            params = jax.eval_shape(self.spec.init, jax.random.key(0))
            self._outputs[key] = jax.eval_shape(
                lambda p, xs: self.spec.apply(p, *xs), params, tuple(inputs))
        return self._outputs[key]


def _label_range(labels: np.ndarray, mask: np.ndarray | None) -> tuple[float, float]:
    values = labels.astype(np.float64)
    if mask is not None:
        keep = np.broadcast_to(mask.reshape(mask.shape + (1,) * (labels.ndim - mask.ndim)) != 0,
                               labels.shape)
        values = values[keep]
    return (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)


def global_batch(batch, mesh, global_size: int):
    """Assembles each process's rows of a batch into global arrays split over the data axes.

    ``batch`` holds this process's rows (all of them on one process); ``global_size`` is the
    batch size across all processes.

    Raises:
        ValueError: if ``global_size`` does not divide the mesh's ``data * fsdp`` devices, or
            a leaf does not hold this process's share of rows.
    """
    def place(path, x):
        x = np.asarray(x)
        shape = (global_size,) + x.shape[1:]
        logical = ("batch",) + (None,) * (x.ndim - 1)
        sharding = shd.sharding_for(mesh, logical, shape,
                                    name="batch" + jax.tree_util.keystr(path))
        return jax.make_array_from_process_local_data(sharding, x, shape)
    return jax.tree_util.tree_map_with_path(place, batch)


def _micro_batches(x, parts: int):
    if x.shape[0] % parts:
        raise ValueError(f"batch size {x.shape[0]} is not divisible by accumulate={parts}")
    x = x.reshape((x.shape[0] // parts, parts) + x.shape[1:])
    return jnp.swapaxes(x, 0, 1)


# --- the training loop ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    """How long a run goes, what it logs, when it evaluates and checkpoints.

    Attributes:
        steps: total optimiser steps of the run (a resumed run continues up to it).
        until: stop (and checkpoint) after this step, as a pre-empted job would; the
            schedule still spans ``steps``, so a resumed run continues the same curve.
        seed: seeds the params and the dropout key.
        log_every: steps between training-loss records.
        progress: show a tqdm bar with the loss and throughput (process 0).
        metrics_path: JSON-lines file of the history (written by process 0).
        eval_every: steps between evaluations (0: only at the end), when ``fit`` has
            ``eval_data``.
        checkpoint_dir: where checkpoints go (``None``: no checkpoints).
        checkpoint_every: steps between checkpoints (0: only at the end).
        keep: how many of the newest checkpoints to keep (>= 1), ``None`` for all.
        resume: continue from the newest complete checkpoint in ``checkpoint_dir``.

    >>> RunConfig(steps=10, log_every=0)
    Traceback (most recent call last):
    ...
    ValueError: log_every must be an integer >= 1, got 0
    """
    steps: int
    until: int | None = None
    seed: int = 0
    log_every: int = 1
    progress: bool = True
    metrics_path: str | Path | None = None
    eval_every: int = 0
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int = 0
    keep: int | None = 3
    resume: bool = False

    def __post_init__(self):
        _checks.positive_int(self.steps, "steps")
        if self.until is not None:
            _checks.positive_int(self.until, "until")
        _checks.positive_int(self.seed, "seed", minimum=0)
        _checks.positive_int(self.log_every, "log_every")
        _checks.positive_int(self.eval_every, "eval_every", minimum=0)
        _checks.positive_int(self.checkpoint_every, "checkpoint_every", minimum=0)
        if self.keep is not None:
            _checks.positive_int(self.keep, "keep")
        for name, value in (("progress", self.progress), ("resume", self.resume)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        if self.checkpoint_dir is None and (self.resume or self.checkpoint_every):
            which = "resume=True" if self.resume else "checkpoint_every"
            raise ValueError(f"{which} needs checkpoint_dir")


class FitResult(NamedTuple):
    """What :func:`fit` returns: the final state and one dict per logged event."""
    state: TrainState
    history: list[dict]


def fit(spec: ModelSpec, train_data: Batches, run: RunConfig, *,
        config: TrainConfig = TrainConfig(), mesh=None,
        eval_data: Batches | None = None) -> FitResult:
    """Trains ``spec`` for ``run.steps`` optimiser steps on batches from ``train_data``.

    Args:
        spec: any registered model (``zoo.get(name)``).
        train_data: a :class:`zoo.data.Batches` (e.g. :class:`zoo.data.Loader`): iterating
            yields this process's rows of each batch as ``(inputs, targets)``; its position is
            saved in checkpoints.
        run: steps, logging, evaluation and checkpointing (:class:`RunConfig`).
        config: optimiser, schedule, accumulation and precision (:class:`TrainConfig`).
        mesh: a ``zoo.sharding.make_mesh`` mesh (default: all devices on ``data``).
        eval_data: finite batches (a loader with ``repeat=False``); its mean loss is logged
            every ``run.eval_every`` steps and at the end.

    Returns:
        :class:`FitResult` with the final state and the history (``{"step", "loss",
        "examples_per_s", ...}`` and ``{"step", "eval_loss"}`` records).

    Raises:
        CheckpointError: if ``resume`` finds no usable checkpoint, or one of another model.
        FileExistsError: if ``checkpoint_dir`` holds checkpoints and ``resume`` is false.
        FloatingPointError: if the loss or a parameter becomes NaN or infinite; the step is
            named and no checkpoint of it is written.
        TypeError: if ``train_data`` or ``eval_data`` is not a :class:`zoo.data.Batches`.
        ValueError: if the batch size does not divide the mesh's data axes or ``accumulate``.
    """
    _check_fit_args(spec, train_data, run, config, eval_data)
    mesh = shd.make_mesh() if mesh is None else mesh
    trained = spec.replace(dtype=config.dtype) if config.dtype != spec.config.dtype else spec
    _check_batch(train_data.batch_size, mesh, config.accumulate)
    for loader in (train_data, eval_data):
        if loader is not None:
            loader.for_mesh(mesh)
    init_fn, step_fn, eval_fn = _programs(trained, config, run.steps, mesh)
    state = init_fn(jax.random.key(run.seed))
    ckpt = None if run.checkpoint_dir is None else Checkpoints(
        run.checkpoint_dir, keep=run.keep, spec=spec)
    state = _start(ckpt, run, state, train_data)
    logger = _Logger(run.metrics_path, run.progress, total=run.steps, initial=int(state.step))
    try:
        after = _After(run, eval_fn, eval_data, mesh, logger, ckpt, train_data)
        state = _loop(trained, state, step_fn, train_data, run, mesh, logger, after)
    finally:
        logger.close()
        if ckpt is not None:
            ckpt.close()
    return FitResult(state, logger.history)


def _check_fit_args(spec, train_data, run, config, eval_data) -> None:
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a zoo.ModelSpec (zoo.get(name)), got "
                        f"{type(spec).__name__}")
    if not isinstance(run, RunConfig):
        raise TypeError(f"run must be a zoo.train.RunConfig, got {type(run).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a zoo.train.TrainConfig, got {type(config).__name__}")
    for name, loader in (("train_data", train_data), ("eval_data", eval_data)):
        if not isinstance(loader, Batches) and (loader is not None or name == "train_data"):
            raise TypeError(
                f"{name} must be a zoo.data.Batches such as zoo.data.Loader (arrays: "
                f"Loader.from_arrays(inputs, targets, batch_size=...)), got "
                f"{type(loader).__name__}")


def _start(ckpt, run: RunConfig, state, train_data):
    """The state to start from: restored when resuming, else fresh (refusing to overwrite)."""
    if run.resume:
        state, data_state = ckpt.restore(state)
        train_data.load_state_dict(data_state)
    elif ckpt is not None and ckpt.latest_step() is not None:
        raise FileExistsError(
            f"{ckpt.directory} already holds checkpoints (latest step {ckpt.latest_step()}); "
            "pass resume=True to continue, or choose an empty directory")
    return state


def _loop(spec, state, step_fn, train_data, run: RunConfig, mesh, logger, after):
    batches, batch_size = iter(train_data), train_data.batch_size
    start = int(state.step)
    stop = run.steps if run.until is None else min(run.until, run.steps)
    tick, seen_tokens, last = time.perf_counter(), 0, start
    check = BatchCheck(spec)
    for done in range(start + 1, stop + 1):
        host = next(batches)
        check(*host)
        inputs, targets = global_batch(host, mesh, batch_size)
        state, loss = step_fn(state, inputs, targets)
        seen_tokens += _tokens(inputs)
        if not bool(_finite(loss, state.params)):
            raise FloatingPointError(
                f"training diverged at step {done}: the loss is {float(loss)} or a parameter "
                "is NaN/inf; no checkpoint of this step was written (lower the learning "
                "rate, or check the data for NaN)")
        if done % run.log_every == 0 or done == stop or done == start + 1:
            record = {"step": done, "loss": float(loss)}
            now = time.perf_counter()
            if done > start + 1:     # the first step's time is mostly compilation
                elapsed = max(now - tick, 1e-9)
                record["examples_per_s"] = batch_size * (done - last) / elapsed
                if seen_tokens:
                    record["tokens_per_s"] = seen_tokens / elapsed
            tick, last, seen_tokens = now, done, 0
            if done % run.log_every == 0 or done == stop:
                logger.log(record)
        after(state, done, done == stop)
        logger.advance()
    return state


class _After(NamedTuple):
    """What runs after each step: evaluation and checkpoints, on their schedules."""
    run: RunConfig
    eval_fn: Callable
    eval_data: Any
    mesh: Any
    logger: Any
    ckpt: Checkpoints | None
    train_data: Any

    def __call__(self, state, done: int, last: bool) -> None:
        run = self.run
        if self.eval_data is not None and (run.eval_every and done % run.eval_every == 0
                                           or last):
            self.logger.log({"step": done, "eval_loss": evaluate(
                self.eval_fn, state.params, self.eval_data, self.mesh)})
        if self.ckpt is not None and (run.checkpoint_every and done % run.checkpoint_every == 0
                                      or last):
            self.ckpt.save(done, state, self.train_data.state_dict())


@jax.jit
def _finite(loss, params) -> jax.Array:
    leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(params)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.isfinite(loss)] + leaves))


@functools.lru_cache(maxsize=16)
def _programs(spec: ModelSpec, config: TrainConfig, steps: int, mesh):
    """Init, train and eval functions of a run, cached so that repeated runs with the same
    settings reuse their compiled programs."""
    optimizer = make_optimizer(config, steps)
    init = jax.jit(lambda key: init_state(spec, optimizer, key),
                   out_shardings=state_shardings(spec, optimizer, mesh))
    step = make_train_step(spec, optimizer, mesh=mesh, accumulate=config.accumulate)
    return init, step, make_eval_step(spec, mesh=mesh)


def evaluate(eval_fn, params, eval_data: Iterable, mesh) -> float:
    """Mean loss over the batches of ``eval_data`` (each weighted by its batch size)."""
    total, count = 0.0, 0
    size = eval_data.batch_size
    for batch in eval_data:
        inputs, targets = global_batch(batch, mesh, size)
        total += float(eval_fn(params, inputs, targets)) * size
        count += size
    if not count:
        raise ValueError("eval_data yielded no batches")
    return total / count


def _check_batch(batch_size: int, mesh, accumulate: int) -> None:
    data = mesh.shape["data"] * mesh.shape["fsdp"]
    if batch_size % (data * accumulate):
        raise ValueError(
            f"batch size {batch_size} is not divisible by the data axes of the mesh "
            f"(data * fsdp = {data}) times accumulate={accumulate}")


def _tokens(inputs) -> int:
    """Positions in a batch of sequences (an integer ``[B, T]`` first input), else 0."""
    x = inputs[0]
    if x.ndim == 2 and jnp.issubdtype(x.dtype, jnp.integer):
        return int(math.prod(x.shape))
    return 0


class _Logger:
    """History in memory, JSON lines on disk and a tqdm bar, all on process 0 only."""

    def __init__(self, path, progress: bool, *, total: int, initial: int):
        self.history: list[dict] = []
        self._shown: dict = {}
        main = jax.process_index() == 0
        self._file = None
        if path is not None and main:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a")
        self._bar = None
        if progress and main:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=total, initial=initial, desc="train", unit="step")

    def log(self, record: dict) -> None:
        self.history.append(record)
        self._shown.update(record)
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        if self._bar is not None:
            shown = {k: (f"{v:.4g}" if isinstance(v, float) else v)
                     for k, v in self._shown.items() if k != "step"}
            self._bar.set_postfix(shown, refresh=False)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._bar is not None:
            self._bar.close()
