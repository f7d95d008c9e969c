"""Shared baselines and linear probes: k-mer composition, multinomial logistic regression,
stratified k-fold splits.

k-mer composition of a sequence ``x`` over an alphabet ``A`` (``|A| = a``): the fraction of
its windows ``x[s : s+k]`` (stride 1) equal to each of the ``a^k`` k-mers, in lexicographic
order of ``A`` (as :func:`zoo.bio.tokenizers.kmer_vocab`)::

    f_w(x) = #{s : x[s:s+k] = w} / #{s : x[s:s+k] in A^k}

Windows holding a letter outside ``A`` (an ambiguity code, a gap) are not counted.

The logistic regression minimises, over ``W [I, O]`` and ``b [O]``, the mean cross-entropy
plus an L2 penalty on ``W`` (not on ``b``)::

    L(W, b) = -1/B sum_i log softmax(x_i W + b)_{y_i} + (l2 / 2) ||W||_F^2

with L-BFGS (optax) from zeros: the problem is strictly convex for ``l2 > 0``, so the fit is
deterministic and its optimum unique. Features are standardised (training mean and standard
deviation) first unless ``standardize=False``.

Shape letters: ``B`` batch (sequences, examples), ``I`` input features, ``O`` classes.

>>> kmer_composition(["ACGT", "AANA"], 1).tolist()
[[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]]
>>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
>>> LogisticRegression(l2=1e-3).fit(x, y).predict(x).tolist()
[0, 0, 1, 1]
"""

from collections.abc import Callable, Sequence

import numpy as np

from zoo.bio.tokenizers import AMINO_ACIDS, DNA

#: The 20 standard amino acids, the protein composition alphabet.
PROTEIN = AMINO_ACIDS


def kmer_counts(seqs: Sequence[str], k: int = 1, *, alphabet: str = DNA) -> np.ndarray:
    """Counts ``[B, a^k]`` (int32) of each k-mer over ``alphabet`` in each sequence
    (case-insensitive; windows with other letters skipped).

    Raises:
        ValueError: for ``k < 1``, a feature count over 2^24, or a bad ``alphabet``.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    alphabet = alphabet.upper()
    if not alphabet or len(set(alphabet)) != len(alphabet) or not alphabet.isascii():
        raise ValueError(f"alphabet must hold distinct ASCII letters, got {alphabet!r}")
    size = len(alphabet) ** k
    if size > 2 ** 24:
        raise ValueError(f"{len(alphabet)}^{k} = {size} k-mers is too many features")
    table = np.full(128, -1, np.int64)
    for i, c in enumerate(alphabet):
        table[ord(c)] = table[ord(c.lower())] = i
    weights = len(alphabet) ** np.arange(k - 1, -1, -1)
    out = np.zeros((len(seqs), size), np.int32)
    for row, seq in enumerate(seqs):
        digits = table[np.frombuffer(seq.encode("ascii", errors="replace"), np.uint8)]
        if len(digits) < k:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(digits, k)
        keep = (windows >= 0).all(axis=1)
        out[row] = np.bincount(windows[keep] @ weights, minlength=size)
    return out


def kmer_composition(seqs: Sequence[str], k: int = 1, *, alphabet: str = DNA) -> np.ndarray:
    """k-mer frequencies ``[B, a^k]`` (float32, rows sum to 1; a row with no whole window
    over ``alphabet`` is all zeros). ``alphabet``: :data:`DNA` or :data:`PROTEIN`.

    >>> kmer_composition(["MKMK"], 2, alphabet=PROTEIN).reshape(20, 20)[10, 8]  # MK: 2 of 3
    np.float32(0.6666667)
    """
    counts = kmer_counts(seqs, k, alphabet=alphabet).astype(np.float64)
    total = counts.sum(axis=1, keepdims=True)
    return (counts / np.maximum(total, 1)).astype(np.float32)


class LogisticRegression:
    """Multinomial logistic regression with an L2 penalty, fitted by L-BFGS (see module).

    Args:
        l2: penalty weight on ``W`` (> 0).
        max_iter: L-BFGS iterations at most.
        tol: stop once the gradient's L2 norm is below this.
        standardize: fit on features centred and scaled by the training mean and standard
            deviation (features constant in training are only centred).

    Attributes (after :meth:`fit`): ``w_io [I, O]``, ``b_o [O]`` (in the standardised
    space), ``mean_i``, ``scale_i``, ``num_classes``, ``n_iter``, ``grad_norm``.
    """

    def __init__(self, *, l2: float = 1e-2, max_iter: int = 500, tol: float = 1e-5,
                 standardize: bool = True):
        from zoo import _checks
        _checks.positive_float(l2, "l2")
        _checks.positive_int(max_iter, "max_iter")
        _checks.positive_float(tol, "tol")
        self.l2, self.max_iter, self.tol, self.standardize = l2, max_iter, tol, standardize

    def fit(self, x, y, num_classes: int | None = None) -> "LogisticRegression":
        """Fits to features ``x [B, I]`` and integer labels ``y [B]`` in
        ``[0, num_classes)`` (default ``max(y) + 1``). Returns ``self``.

        Raises:
            ValueError: for mismatched shapes, or labels outside ``[0, num_classes)``.
        """
        x, y = _features(x, "x"), np.asarray(y)
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y must be integer labels of shape ({x.shape[0]},) [B], got "
                             f"shape {y.shape} dtype {y.dtype}")
        num_classes = int(y.max()) + 1 if num_classes is None else num_classes
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"y must lie in [0, num_classes={num_classes}), got labels "
                             f"{int(y.min())} ... {int(y.max())}")
        self.num_classes = num_classes
        self.mean_i = x.mean(axis=0) if self.standardize else np.zeros(x.shape[1], np.float32)
        std = x.std(axis=0) if self.standardize else np.ones(x.shape[1], np.float32)
        self.scale_i = np.where(std > 0, std, 1).astype(np.float32)
        w, b, n_iter, grad_norm = _lbfgs(self._standardized(x), y, num_classes, self.l2,
                                         self.max_iter, self.tol)
        self.w_io, self.b_o = np.asarray(w), np.asarray(b)
        self.n_iter, self.grad_norm = int(n_iter), float(grad_norm)
        return self

    def decision_function(self, x) -> np.ndarray:
        """Logits ``[B, O]``."""
        if not hasattr(self, "w_io"):
            raise RuntimeError("call fit before predicting")
        x = _features(x, "x", self.w_io.shape[0])
        return self._standardized(x) @ self.w_io + self.b_o

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities ``[B, O]`` (rows sum to 1)."""
        z = self.decision_function(x).astype(np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict(self, x) -> np.ndarray:
        """The most probable class ``[B]`` (int32; ties go to the lower class)."""
        return np.argmax(self.decision_function(x), axis=1).astype(np.int32)

    def _standardized(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean_i) / self.scale_i).astype(np.float32)


def stratified_kfold(labels, k: int = 5, *, seed: int = 0
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, test) index pairs; the test folds partition ``range(B)``.

    Each class's indices are shuffled with ``numpy.random.default_rng(seed)`` and dealt to
    the folds in turn, continuing the turn from class to class (classes in sorted order), so
    every class's count in a fold is ``floor`` or ``ceil`` of its total over ``k``, and the
    fold sizes differ by at most one. Indices come back sorted.

    >>> y = np.array([0, 0, 0, 1, 1, 1, 1])
    >>> [np.bincount(y[test]).tolist() for _, test in stratified_kfold(y, 3)]
    [[1, 2], [1, 1], [1, 1]]

    Raises:
        ValueError: if ``labels`` is not 1-D or ``k`` is not in ``[2, B]``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D [B], got shape {labels.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) \
            or not 2 <= k <= len(labels):
        raise ValueError(f"k must be an integer in [2, {len(labels)}] (the number of "
                         f"examples), got {k!r}")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), np.int64)
    start = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold[members] = (start + np.arange(len(members))) % k
        start += len(members)
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]


def cross_val_predict(make_model: Callable, x, y, *, k: int = 5, seed: int = 0
                      ) -> np.ndarray:
    """Out-of-fold predictions ``[B]``: each fold predicted by ``make_model()`` fitted on the
    other folds of :func:`stratified_kfold` (``fit(x, y, num_classes)``, ``predict(x)``).

    >>> x = np.repeat(np.arange(4.0), 3)[:, None]; y = (x[:, 0] > 1.5).astype(int)
    >>> (cross_val_predict(LogisticRegression, x, y, k=3) == y).all()
    np.True_
    """
    x, y = np.asarray(x), np.asarray(y)
    num_classes = int(y.max()) + 1
    out = np.empty(len(y), np.int32)
    for train, test in stratified_kfold(y, k, seed=seed):
        out[test] = make_model().fit(x[train], y[train], num_classes).predict(x[test])
    return out


def _features(x, name: str, width: int | None = None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) \
            or (width is not None and x.shape[1] != width):
        want = f"(?, {width})" if width is not None else "(?, ?)"
        raise ValueError(f"{name} must be a numeric array of shape {want} [B, I], got shape "
                         f"{x.shape} dtype {x.dtype}")
    return x.astype(np.float32)


def _lbfgs(x: np.ndarray, y: np.ndarray, num_classes: int, l2: float, max_iter: int,
           tol: float):
    import jax.numpy as jnp
    # Rows and features are zero-padded to powers of two, so folds of slightly different
    # sizes share one compiled solver: padded rows weigh 0, padded features stay at w = 0
    # (their gradient is the penalty's alone).
    b, i = _bucket(x.shape[0]), _bucket(x.shape[1])
    x_bi = np.zeros((b, i), np.float32)
    x_bi[:x.shape[0], :x.shape[1]] = x
    y_bo = np.zeros((b, num_classes), np.float32)
    y_bo[np.arange(len(y)), y] = 1
    weight_b = (np.arange(b) < len(y)).astype(np.float32) / max(len(y), 1)
    params = {"w": jnp.zeros((i, num_classes)), "b": jnp.zeros(num_classes)}
    params, n_iter, grad_norm = _solver()(params, x_bi, y_bo, weight_b, jnp.float32(l2),
                                          jnp.int32(max_iter), jnp.float32(tol))
    return params["w"][:x.shape[1]], params["b"], n_iter, grad_norm


def _bucket(n: int) -> int:
    return max(8, 1 << max(n - 1, 0).bit_length())


_SOLVER = []


def _solver():
    # Built once, on first use: importing this module stays free of JAX and optax.
    if _SOLVER:
        return _SOLVER[0]
    import jax
    import jax.numpy as jnp
    import optax

    @jax.jit
    def solve(params, x_bi, y_bo, weight_b, l2, max_iter, tol):
        def loss(p):
            logp = jax.nn.log_softmax(x_bi @ p["w"] + p["b"])
            return -jnp.sum(weight_b * jnp.sum(y_bo * logp, axis=1)) \
                + 0.5 * l2 * jnp.sum(p["w"] ** 2)
        opt = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(loss)

        def step(carry):
            p, state = carry
            value, grad = value_and_grad(p, state=state)
            updates, state = opt.update(grad, state, p, value=value, grad=grad,
                                        value_fn=loss)
            return optax.apply_updates(p, updates), state

        def keep_going(carry):
            count = optax.tree_utils.tree_get(carry[1], "count")
            grad = optax.tree_utils.tree_get(carry[1], "grad")
            err = optax.tree_utils.tree_norm(grad)
            return (count == 0) | ((count < max_iter) & (err >= tol))

        p, state = jax.lax.while_loop(keep_going, step, (params, opt.init(params)))
        grad_norm = optax.tree_utils.tree_norm(jax.grad(loss)(p))
        return p, optax.tree_utils.tree_get(state, "count"), grad_norm

    _SOLVER.append(solve)
    return solve


__all__ = ["PROTEIN", "kmer_counts", "kmer_composition", "LogisticRegression",
           "stratified_kfold", "cross_val_predict"]
