"""Shape glossary and type aliases shared by every zoo module.

One alphabet names every axis in the project: in docstrings, jaxtyping annotations, einsum
strings and parameter names.

====  ===============================================================================
``A``  alignments in a batch (each ``[B, T]``: its rows are ``B``, its columns ``T``)
``B``  batch (also the rows of one tile of a blocked kernel, the rows of an alignment)
``T``  target / query / output positions (sequence length)
``S``  source / key / input positions (``*S``: a convolution input's spatial axes)
``D``  model or hidden width
``F``  MLP (feed-forward) width
``N``  attention (query) heads
``K``  key/value heads (grouped-query attention; ``K`` divides ``N``)
``Q``  query heads per key/value head, ``N / K``
``H``  head dimension
``V``  vocabulary size
``L``  layers (a stacked, scanned axis)
``E``  directions of a recurrent layer (1, or 2 when bidirectional)
``G``  gates of a recurrent cell (Elman 1, GRU 3, LSTM 4)
``C``  channels
``W``  kernel taps along one spatial axis (kernel width)
``Y``  image rows
``X``  image columns
``R``  attention window (a position sees ``|t − s| <= R``)
``J``  blocks of a blocked or tiled sequence
``I``  input features of a dense model
``O``  output features of a dense model
``P``  parameters, flattened (one vector of every weight)
``M``  all the rows of an alignment, before a draw of ``B`` of them
====  ===============================================================================

Each letter has this one meaning in every module; a module's docstring repeats the letters it
uses. Compound sizes are written as products (``E·D``, ``L·E``).
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
