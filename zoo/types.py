"""Shape glossary and type aliases shared by every zoo module.

One alphabet names every axis in the project: in docstrings, jaxtyping annotations, einsum
strings and parameter names.

====  ==========================================
``B``  batch
``T``  target / query positions (sequence length)
``S``  source / key positions
``D``  model or hidden width
``F``  MLP (feed-forward) width
``N``  attention heads
``H``  head dimension
``V``  vocabulary size
``L``  layers (a stacked, scanned axis)
``C``  channels
``W``  kernel width
``R``  attention window
``I``  input features of a dense model
``O``  output features of a dense model
====  ==========================================
"""

from typing import Any

import jax
from jax.sharding import PartitionSpec

Array = jax.Array
PyTree = Any
#: A nested dict of float32 arrays, as returned by every ``init``.
Params = dict[str, Any]
#: The same tree as ``Params`` with a ``PartitionSpec`` of logical axis names at each leaf.
ParamAxes = dict[str, Any]

LOGICAL_AXES = (
    "batch", "seq", "embed", "mlp", "heads", "head_dim", "vocab", "layers", "channels",
    "hidden", "gates",
)

__all__ = ["Array", "PyTree", "Params", "ParamAxes", "PartitionSpec", "LOGICAL_AXES"]
