"""The convolution operation, pooling and Sobel edges, on channels-last arrays (1D and 2D).

A convolution slides a kernel over the input and reduces each window to one number. Like every
deep-learning library, zoo computes the cross-correlation (the kernel is not flipped). For a
channels-last input ``x`` of shape ``[B, *S, C]`` and a kernel ``w`` of shape ``[*W, C, O]``
(``W`` taps per spatial axis, ``C`` input and ``O`` output channels), with stride ``s`` and
dilation ``d`` (1D shown; 2D sums over both kernel axes)::

    y[b, t, o] = bias[o] + Σ_j Σ_c x[b, t·s + j·d, c] · w[j, c, o]        j = 0 … W−1

after padding ``x``: ``valid`` (none: output length ⌊(n − (W−1)d − 1)/s⌋ + 1), ``same``
(output length ⌈n/s⌉, the padding split with the extra element on the right, as in
``torch`` and XLA) or ``causal`` (1D, all ``(W−1)d`` padding on the left, so ``y[t]`` sees
only ``x[≤ t]``; WaveNet's convolution). :mod:`zoo.cnn` builds its networks from these.

Shape letters as in :mod:`zoo.cnn`: ``B`` batch, ``S`` input positions (``*S``: a sequence's
``S`` or an image's ``Y X``), ``T`` output positions (``*T``), ``W`` kernel taps per spatial
axis, ``C`` input and ``O`` output channels.

References:
    I. Sobel, G. Feldman, "A 3×3 isotropic gradient operator for image processing", 1968.
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from zoo import _checks

PADDINGS = ("valid", "same", "causal")

#: The horizontal Sobel kernel: responds to vertical edges (intensity changing along X).
SOBEL_X = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], np.float32)


def conv(x: Float[Array, "B *S C"], w: Float[Array, "*W C O"], b=None, *,
         stride: int | Sequence[int] = 1, padding: str = "valid",
         dilation: int | Sequence[int] = 1) -> Float[Array, "B *T O"]:
    """Cross-correlation of a batched, channels-last input with a kernel (1D or 2D).

    ``y[b, t, o] = bias[o] + Σ_j Σ_c x[b, t·s + j·d, c] · w[j, c, o]`` (2D: also over the
    second kernel axis), after the padding named by ``padding``.

    Args:
        x: input ``[B, S, C]`` (1D) or ``[B, Y, X, C]`` (2D), a number dtype.
        w: kernel ``[W, C, O]`` or ``[W_y, W_x, C, O]``; its rank picks 1D/2D.
        b: optional bias ``[O]``.
        stride: step between windows, an int or one per spatial axis, each >= 1.
        padding: ``"valid"``, ``"same"`` or ``"causal"`` (1D only).
        dilation: spacing of the kernel taps, an int or one per spatial axis, each >= 1.

    Returns:
        ``[B, *T, O]`` in ``x``'s dtype (``w``'s if ``x`` is an int array).

    Raises:
        ValueError: if ranks disagree, the channels of ``x`` and ``w`` differ, ``stride`` or
            ``dilation`` is not an int >= 1, ``padding`` is unknown, or (``valid``) the
            dilated kernel is larger than the input.
        TypeError: if ``x`` or ``w`` is not a number array.

    The course's worked example (5×5 input, 3×3 kernel, valid padding):

    >>> image = jnp.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3],
    ...                    [2, 0, 0, 2, 2], [2, 0, 0, 0, 1]], jnp.float32)
    >>> kernel = jnp.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]], jnp.float32)
    >>> conv(image[None, :, :, None], kernel[:, :, None, None])[0, :, :, 0]
    Array([[12., 12., 17.],
           [10., 17., 19.],
           [ 9.,  6., 14.]], dtype=float32)
    """
    _checks.check_array(w, "w", kind="number")
    if w.ndim not in (3, 4):
        raise ValueError(f"w must have rank 3 [W C O] or 4 [W_y W_x C O], "
                         f"got shape {_checks.shape_str(w.shape)}")
    nd = w.ndim - 2
    _checks.check_array(x, "x", rank=nd + 2, letters="B S C" if nd == 1 else "B Y X C",
                        kind="number", nonempty=True)
    if x.shape[-1] != w.shape[-2]:
        raise ValueError(f"channel mismatch: x has {x.shape[-1]} channels (last axis) but w "
                         f"expects C={w.shape[-2]} (axis -2 of w, shape "
                         f"{_checks.shape_str(w.shape)})")
    if b is not None:
        _checks.check_array(b, "b", shape=(w.shape[-1],), letters="O", kind="number")
    strides = _per_axis(stride, nd, "stride")
    dilations = _per_axis(dilation, nd, "dilation")
    pads = _padding(x.shape[1:-1], w.shape[:-2], strides, dilations, padding)
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.promote_types(
        w.dtype, jnp.float32)
    spec = ("NWC", "WIO", "NWC") if nd == 1 else ("NHWC", "HWIO", "NHWC")
    y = jax.lax.conv_general_dilated(x.astype(dtype), w.astype(dtype), strides, pads,
                                     rhs_dilation=dilations, dimension_numbers=spec)
    return y if b is None else y + b.astype(dtype)


def max_pool(x: Float[Array, "B *S C"], window: int | Sequence[int], *,
             stride: int | Sequence[int] | None = None,
             padding: str = "valid") -> Float[Array, "B *T C"]:
    """Max pooling over the spatial axes of a channels-last ``[B, *spatial, C]`` input.

    ``y[b, t, c] = max_j x[b, t·s + j, c]`` for ``j < window`` (``same`` pads with −∞).

    Args:
        x: input ``[B, S, C]`` or ``[B, Y, X, C]``.
        window: window size, an int or one per spatial axis.
        stride: step between windows (default: ``window``, non-overlapping).
        padding: ``"valid"`` or ``"same"``.

    Raises:
        ValueError: for a bad rank, window, stride or padding, or a window larger than an
            unpadded input.

    >>> max_pool(jnp.arange(6.0).reshape(1, 6, 1), 2)[0, :, 0]
    Array([1., 3., 5.], dtype=float32)
    """
    return _pool(x, window, stride, padding, "max")


def avg_pool(x: Float[Array, "B *S C"], window: int | Sequence[int], *,
             stride: int | Sequence[int] | None = None,
             padding: str = "valid") -> Float[Array, "B *T C"]:
    """Average pooling; with ``same`` padding each window averages its real elements only.

    ``y[b, t, c] = mean_j x[b, t·s + j, c]`` for ``j < window``. Arguments and errors as in
    :func:`max_pool`.

    >>> avg_pool(jnp.arange(6.0).reshape(1, 6, 1), 3)[0, :, 0]
    Array([1., 4.], dtype=float32)
    """
    return _pool(x, window, stride, padding, "avg")


def sobel(image: Float[Array, "*B Y X"], *, padding: str = "valid") -> Float[Array, "*B _ _"]:
    """Vertical-edge detection: cross-correlation with the horizontal Sobel kernel.

    ``G_x = image ⋆ [[+1, 0, −1], [+2, 0, −2], [+1, 0, −1]]``: large where intensity changes
    from left to right, zero on flat regions; positive where the image gets darker towards
    the right, negative where it gets brighter.

    Args:
        image: one grey-scale image ``[Y, X]`` or a batch ``[B, Y, X]``.
        padding: ``"valid"`` (output ``[Y−2, X−2]``) or ``"same"`` (zero padding, ``[Y, X]``).

    Returns:
        The response, with ``image``'s leading axes.

    Raises:
        ValueError: if ``image`` is not rank 2 or 3, or smaller than 3×3 with valid padding.

    >>> step = jnp.array([[0, 0, 9, 9]] * 3, jnp.float32)   # dark left, bright right
    >>> sobel(step)
    Array([[-36., -36.]], dtype=float32)
    """
    _checks.check_array(image, "image", kind="number")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have rank 2 [Y X] or rank 3 [B Y X], got shape "
                         f"{_checks.shape_str(image.shape)}")
    batched = image if image.ndim == 3 else image[None]
    y = conv(batched[..., None], jnp.asarray(SOBEL_X)[:, :, None, None], padding=padding)
    return y[..., 0] if image.ndim == 3 else y[0, ..., 0]


def _per_axis(value, nd, name):
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * nd
    if len(values) != nd:
        raise ValueError(f"{name} must be an int or {nd} ints (one per spatial axis), got "
                         f"{value!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1 (or one per spatial axis), "
                             f"got {value!r}")
    return tuple(int(v) for v in values)


def _padding(size, kernel, strides, dilations, padding, what="kernel"):
    """``(low, high)`` padding per spatial axis (``same``: TensorFlow's and XLA's rule)."""
    _checks.one_of(padding, "padding", PADDINGS)
    if padding == "causal" and len(size) != 1:
        raise ValueError(f"padding='causal' is for 1D inputs, got {len(size)} spatial axes")
    pads = []
    for n, taps, s, d in zip(size, kernel, strides, dilations):
        span = (taps - 1) * d + 1
        if padding == "valid":
            if span > n:
                raise ValueError(
                    f"{what} (size {taps}, dilation {d}: spans {span}) is larger than the "
                    f"unpadded input (size {n}); use padding='same' or a smaller {what}")
            pads.append((0, 0))
        elif padding == "causal":
            pads.append((span - 1, 0))
        else:
            total = max((math.ceil(n / s) - 1) * s + span - n, 0)
            pads.append((total // 2, total - total // 2))
    return pads


def _pool(x, window, stride, padding, kind):
    _checks.check_array(x, "x", kind="number", nonempty=True)
    if x.ndim not in (3, 4):
        raise ValueError(f"x must have rank 3 [B S C] or 4 [B Y X C], got shape "
                         f"{_checks.shape_str(x.shape)}")
    nd = x.ndim - 2
    windows = _per_axis(window, nd, "window")
    strides = windows if stride is None else _per_axis(stride, nd, "stride")
    _checks.one_of(padding, "padding", ("valid", "same"))
    pads = [(0, 0)] + _padding(x.shape[1:-1], windows, strides, (1,) * nd, padding,
                                     "window") + [(0, 0)]
    dims, steps = (1,) + windows + (1,), (1,) + strides + (1,)
    if kind == "max":
        # A concrete NumPy init value lets JAX recognise reduce_window_max (differentiable).
        init = -np.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min
        return jax.lax.reduce_window(x, np.array(init, x.dtype), jax.lax.max, dims, steps,
                                     pads)
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    zero = np.array(0, x.dtype)
    total = jax.lax.reduce_window(x, zero, jax.lax.add, dims, steps, pads)
    count = jax.lax.reduce_window(jnp.ones_like(x[:1, ..., :1]), zero, jax.lax.add, dims,
                                  steps, pads)
    return total / count


__all__ = ["PADDINGS", "SOBEL_X", "conv", "max_pool", "avg_pool", "sobel"]
