"""The table of named models: every test, benchmark, trainer and CLI command goes through it.

Each family module contributes one model per preset, named ``"<family>-<preset>"``. A
:class:`ModelSpec` binds a family's pure functions to one config so that callers need not
carry the config around.

>>> import zoo
>>> spec = zoo.get("perceptron-tiny")
>>> spec.family, spec.task, spec.config.in_dim
('perceptron', 'binary', 2)
"""

import dataclasses
import difflib
import importlib
import math
from types import ModuleType
from typing import Any

import jax

from zoo.losses import TASKS

#: Family modules, in the order of the course.
FAMILIES = (
    "perceptron",
    "mlp",
    "cnn",
    # convolutional families
    "rnn",
    "seq2seq",
    # recurrent families
    "attention",
    "transformer",
    # attention families
)

_REQUIRED = ("Config", "PRESETS", "init", "apply", "param_axes", "example_batch")

#: Families whose module defines its own ``loss(params, inputs, targets, cfg, *, key=None)``;
#: the others train on their task's default loss (``zoo.losses.LOSSES``). Declared here, not
#: detected, so that a family that loses its loss fails at build time.
OWN_LOSS = frozenset({"perceptron", "rnn", "seq2seq", "transformer"})
#: Families whose task depends on the config (``task_of(cfg)``); the others declare ``TASK``.
TASK_BY_CONFIG = frozenset({"transformer"})


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A named model: a family's pure functions bound to one config.

    Attributes:
        name: registry name, ``"<family>-<preset>"``.
        family: the family module's short name (``"mlp"``).
        config: the family's frozen ``Config``.
        task: what the outputs mean, one of ``zoo.losses.TASKS`` (``"binary"``,
            ``"classification"``, ``"lm"``, ...), which picks the default loss.
        module: the family module.
        own_loss: whether the family defines its own ``loss`` (:data:`OWN_LOSS`).
    """
    name: str
    family: str
    config: Any
    task: str
    module: ModuleType = dataclasses.field(repr=False, compare=False)
    own_loss: bool = dataclasses.field(default=False, repr=False, compare=False)

    def init(self, key: jax.Array):
        """``module.init(key, config)``: a fresh params tree."""
        return self.module.init(key, self.config)

    def apply(self, params, *inputs, **kw):
        """``module.apply(params, *inputs, cfg=config, **kw)``."""
        return self.module.apply(params, *inputs, cfg=self.config, **kw)

    def param_axes(self):
        """The logical sharding of :meth:`init`'s tree."""
        return self.module.param_axes(self.config)

    def example_batch(self, key: jax.Array, batch_size: int):
        """``(inputs, targets)``: random inputs of the right shapes and matching targets."""
        return self.module.example_batch(key, self.config, batch_size)

    def example_inputs(self, key: jax.Array, batch_size: int) -> tuple:
        """A tuple of random inputs for :meth:`apply`, leading axis ``batch_size``."""
        return self.example_batch(key, batch_size)[0]

    def num_params(self) -> int:
        """Number of scalar parameters (computed from shapes, nothing allocated)."""
        shapes = jax.eval_shape(self.init, jax.random.key(0))
        return sum(math.prod(x.shape) for x in jax.tree.leaves(shapes))

    def replace(self, **changes) -> "ModelSpec":
        """The same model with some config fields changed (validated by the config).

        >>> import zoo
        >>> zoo.get("mlp-tiny").replace(out_dim=5).config.out_dim
        5
        """
        return dataclasses.replace(self, config=dataclasses.replace(self.config, **changes))


def _family(name: str) -> ModuleType:
    """The family module ``zoo.<name>``, checked against the contract and the declarations."""
    if name not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {name!r}")
    module = importlib.import_module(f"zoo.{name}")
    declared = (("loss",) if name in OWN_LOSS else ()) + (
        ("task_of",) if name in TASK_BY_CONFIG else ("TASK",))
    missing = [attr for attr in _REQUIRED + declared if attr not in vars(module)]
    if missing:
        raise TypeError(f"family module zoo.{name} lacks {missing}")
    return module


def _task(family: str, module, cfg) -> str:
    task = module.task_of(cfg) if family in TASK_BY_CONFIG else module.TASK
    if task not in TASKS:
        raise TypeError(f"family zoo.{family} declares task {task!r}; tasks are {list(TASKS)}")
    return task


def spec_for(family: str | ModuleType, cfg, name: str | None = None) -> ModelSpec:
    """A :class:`ModelSpec` for any config of a family (one not in the registry too).

    Args:
        family: the family's short name (``"seq2seq"``) or its module.
        cfg: an instance of the family's ``Config``.
        name: the spec's name (default ``"<family>-custom"``).

    >>> from zoo import mlp
    >>> spec_for("mlp", mlp.Config(in_dim=3, hidden_dims=(4,), out_dim=2)).name
    'mlp-custom'

    Raises:
        ValueError: for an unknown family.
        TypeError: if ``cfg`` is not the family's ``Config``.
    """
    short = family if isinstance(family, str) else family.__name__.rpartition(".")[2]
    module = _family(short)
    if not isinstance(cfg, module.Config):
        raise TypeError(f"cfg must be a zoo.{short}.Config, got {type(cfg).__name__}")
    return ModelSpec(name or f"{short}-custom", short, cfg, _task(short, module, cfg), module,
                     own_loss=short in OWN_LOSS)


def _build() -> dict[str, ModelSpec]:
    table = {}
    for family in FAMILIES:
        module = _family(family)
        for preset, cfg in module.PRESETS.items():
            name = f"{family}-{preset}"
            table[name] = spec_for(family, cfg, name)
    return table


_TABLE: dict[str, ModelSpec] | None = None


def _table() -> dict[str, ModelSpec]:
    global _TABLE
    if _TABLE is None:
        _TABLE = _build()
    return _TABLE


def list_models(family: str | None = None) -> list[str]:
    """Names of the registered models, optionally of one family.

    >>> import zoo
    >>> zoo.list_models("perceptron")
    ['perceptron-tiny', 'perceptron-small']
    """
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")
    return [n for n, s in _table().items() if family is None or s.family == family]


def get(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name``.

    Raises:
        TypeError: if ``name`` is not a string.
        KeyError: if no model has that name (the message suggests close names).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name (a str such as 'mlp-tiny'; see "
                        f"zoo.list_models()), got {name!r}")
    table = _table()
    if name not in table:
        close = difflib.get_close_matches(name, table, n=3)
        hint = f"; did you mean {close}?" if close else f"; known: {sorted(table)}"
        raise KeyError(f"no model named {name!r}{hint}")
    return table[name]
