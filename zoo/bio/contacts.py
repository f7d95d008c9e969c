"""Contact maps from coupling scores: symmetrisation, the average product correction, mutual
information from an alignment, and the precision metrics of contact prediction.

**Symmetrisation and APC.** A score map ``A`` (attention, couplings, MI) is made symmetric and
then corrected for the background that every pair shares through its rows (Dunn et al. 2008)::

    sym(A)_ij = (A_ij + A_ji) / 2
    apc(A)_ij = A_ij − A_i· A_·j / A_··,   A_i· = Σ_j A_ij,  A_·j = Σ_i A_ij,  A_·· = Σ_ij A_ij

The sums run over every entry, the diagonal included, as in Rao et al. 2021 and the ESM
contact head (``esm.modules``, which symmetrises with ``A + Aᵀ``: APC is invariant to the
factor 2 up to scale, so rankings are the same). ESM first drops the rows and columns of
the BOS/EOS tokens and keeps the diagonal: pass maps over residues only. Both work on any
leading batch axes ``[..., T, T]``, for NumPy and JAX arrays alike.

**Mutual information.** From the encoded alignment ``x`` (``B`` sequences, ``T`` columns, ``V``
= 21 states with the gap) and sequence weights ``w`` (``M_eff = Σ_b w_b``), the frequencies with
a pseudocount weight λ, the convention of mean-field and pseudo-likelihood DCA (Morcos et al.
2011)::

    f_i(a)    = (1 − λ) · Σ_b w_b [x_bi = a] / M_eff + λ / V
    f_ij(a,b) = (1 − λ) · Σ_b w_b [x_bi = a][x_bj = b] / M_eff + λ / V²
    MI_ij     = Σ_ab f_ij(a,b) · log( f_ij(a,b) / (f_i(a) f_j(b)) ),   MI_ii = 0

(natural log; λ's uniform mass keeps the marginals of ``f_ij`` equal to ``f_i``). The DCA
default λ = 0.5 flattens MI too much for it to rank well. Mean long-range P@L/5 and P@L of
MI+APC over the 40 families here, by λ: 0.5: 0.407/0.249, 0.2: 0.431/0.268, 0.05: 0.517/0.296,
0.01: 0.517/0.298, 0.001: 0.523/0.285; :data:`MI_PSEUDOCOUNT` is 0.05, in the flat optimum
(chosen on these same families, so the baseline is slightly favoured). The diagonal is 0, not
the entropy ``H_i``: it is no coupling, and left in it would dominate the APC sums.
MI+APC, ``apc(MI)``, is the baseline predictor. :func:`plm_dca` fits a pseudo-likelihood
Potts model instead (Ekeberg et al. 2013) and scores pairs by ``apc`` of its couplings'
Frobenius norms.

**Precision.** Rao et al.'s protocol (``esm``'s contact evaluation): pairs ``i < j`` with
separation ``s = |p_j − p_i| ≥ 6`` split into short ``6 ≤ s < 12``, medium ``12 ≤ s < 24`` and
long ``s ≥ 24`` range; within a range, the ``k`` highest-scoring pairs are predicted and
``P@k = (true contacts among them) / k`` for ``k = ⌊L/5⌋, ⌊L/2⌋, L``, ``L`` the sequence length.
Unresolved pairs (contact value −1: a residue without coordinates) are left out of the
ranking; if fewer than ``k`` pairs remain, the missing picks count as wrong (the denominator
stays ``k``, as ``esm`` pads with zeros). Ties at the ``k``-th score are resolved by the expected
value under a uniformly random order: the tied group contributes its contact fraction times
the slots left, so the result does not depend on the order of the pairs (``esm``'s ``argsort``
picks one arbitrary order).

Shape letters: ``B`` sequences, ``T`` alignment columns or residues, ``V`` alphabet size.

>>> a = np.array([[0., 1, 2], [1, 0, 3], [2, 3, 0]])
>>> apc(symmetrize(a)).round(2).tolist()
[[-0.75, 0.0, 0.75], [0.0, -1.33, 1.33], [0.75, 1.33, -2.08]]

References:
    S. D. Dunn, L. M. Wahl, G. B. Gloor, "Mutual information without the influence of
    phylogeny or entropy dramatically improves residue contact prediction", Bioinformatics
    24(3), 2008. https://doi.org/10.1093/bioinformatics/btm604
    R. Rao, J. Meier, T. Sercu, S. Ovchinnikov, A. Rives, "Transformer protein language models
    are unsupervised structure learners", ICLR 2021. https://doi.org/10.1101/2020.12.15.422761
    F. Morcos et al., "Direct-coupling analysis of residue coevolution captures native
    contacts across many protein families", PNAS 108(49), 2011.
    https://doi.org/10.1073/pnas.1111471108
"""

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Float, Int

from zoo.bio import msa as _msa

#: The default pseudocount weight λ of :func:`mutual_information` (module docstring).
MI_PSEUDOCOUNT = 0.05
#: Separation ranges ``[min, max)`` (``None``: no upper bound), Rao et al.'s.
RANGES = {"short": (6, 12), "medium": (12, 24), "long": (24, None)}
#: The numbers of predictions, as fractions of the length ``L``.
TOP = {"L/5": 5, "L/2": 2, "L": 1}


def symmetrize(a):
    """``(A + Aᵀ) / 2`` over the last two axes (NumPy or JAX)."""
    return (a + a.swapaxes(-1, -2)) / 2


def apc(a):
    """Average product correction ``A_ij − A_i· A_·j / A_··`` over the last two axes, the sums
    over every entry (diagonal included), as ESM does (NumPy or JAX)."""
    row = a.sum(-1, keepdims=True)
    col = a.sum(-2, keepdims=True)
    total = a.sum((-1, -2), keepdims=True)
    return a - row * col / total


def frequencies(msa: Int[np.ndarray, "B T"], weights: Float[np.ndarray, "B"] | None = None, *,
                pseudocount: float = MI_PSEUDOCOUNT, chunk_size: int = 2048
                ) -> tuple[Float[np.ndarray, "T V"], Float[np.ndarray, "T T V V"]]:
    """The single and pair frequencies ``f_i(a)``, ``f_ij(a, b)`` with pseudocount weight λ
    (module docstring), in float64. The pair counts are one one-hot matrix product per
    ``chunk_size`` sequences; ``f_ii`` is ``diag(f_i)``.

    Raises:
        ValueError: for a bad ``msa``, ``weights`` of another length or not positive, or a
            ``pseudocount`` outside [0, 1].
    """
    msa = _msa._check_msa(msa)
    num_seqs, num_cols = msa.shape
    w = np.ones(num_seqs) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (num_seqs,) or not (w > 0).all():
        raise ValueError(f"weights must be {num_seqs} positive numbers (one per sequence of "
                         f"msa), got shape {w.shape}")
    if not 0 <= pseudocount <= 1:
        raise ValueError(f"pseudocount must be in [0, 1], got {pseudocount!r}")
    v = _msa.NUM_STATES
    pair = np.zeros((num_cols * v, num_cols * v))
    for lo in range(0, num_seqs, chunk_size):
        onehot = _one_hot(msa[lo:lo + chunk_size])
        pair += (onehot * w[lo:lo + chunk_size, None]).T @ onehot
    pair = pair.reshape(num_cols, v, num_cols, v).transpose(0, 2, 1, 3) / w.sum()
    single = np.einsum("iiab->ia", pair)
    f_i = (1 - pseudocount) * single + pseudocount / v
    f_ij = (1 - pseudocount) * pair + pseudocount / v**2
    diag = np.arange(num_cols)
    f_ij[diag, diag] = f_i[:, :, None] * np.eye(v)
    return f_i, f_ij


def _one_hot(msa: np.ndarray) -> np.ndarray:
    num_seqs, num_cols = msa.shape
    out = np.zeros((num_seqs, num_cols * _msa.NUM_STATES))
    out[np.arange(num_seqs)[:, None], np.arange(num_cols) * _msa.NUM_STATES + msa] = 1.0
    return out


def mutual_information(msa: Int[np.ndarray, "B T"],
                       weights: Float[np.ndarray, "B"] | None = None, *,
                       pseudocount: float = MI_PSEUDOCOUNT) -> Float[np.ndarray, "T T"]:
    """``MI_ij`` between the columns of ``msa`` (module docstring), diagonal 0.

    >>> mi = mutual_information(_msa.encode(["AC", "CA"]), pseudocount=0.0)
    >>> round(float(mi[0, 1]), 4)            # two columns that determine each other: log 2
    0.6931
    """
    f_i, f_ij = frequencies(msa, weights, pseudocount=pseudocount)
    indep = f_i[:, None, :, None] * f_i[None, :, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(f_ij > 0, f_ij * np.log(f_ij / indep), 0.0)
    mi = terms.sum((-1, -2))
    np.fill_diagonal(mi, 0.0)
    return mi


def mi_apc(msa: Int[np.ndarray, "B T"], weights: Float[np.ndarray, "B"] | None = None, *,
           pseudocount: float = MI_PSEUDOCOUNT) -> Float[np.ndarray, "T T"]:
    """The MI+APC contact scores ``apc(MI)`` (Dunn et al. 2008), the baseline predictor."""
    return apc(mutual_information(msa, weights, pseudocount=pseudocount))


# --- pseudo-likelihood Potts model (plmDCA) -------------------------------------------------

def plm_dca(msa: Int[np.ndarray, "B T"], weights: Float[np.ndarray, "B"] | None = None, *,
            lambda_h: float = 0.01, lambda_j: float = 0.01, max_steps: int = 200,
            tol: float = 1e-4) -> Float[np.ndarray, "T T"]:
    """Contact scores from a pseudo-likelihood Potts model (plmDCA, Ekeberg et al. 2013).

    The Potts model ``P(x) ∝ exp(Σ_i h_i(x_i) + Σ_{i<j} J_ij(x_i, x_j))`` is fitted by
    maximising the weighted, L2-regularised symmetric pseudo-likelihood with L-BFGS (optax,
    zoom line search)::

        ℓ(h, J) = −(1/M_eff) Σ_b w_b Σ_i log softmax_a(h_i(a) + Σ_{j≠i} J_ij(a, x_bj))[x_bi]
                  + λ_h Σ_i ‖h_i‖² + λ_J Σ_{i<j} ‖J_ij‖²

    (λ_h = λ_J = 0.01 as Ekeberg et al.'s symmetric plmDCA). Each ``J_ij`` is then moved to
    the zero-sum gauge (its row and column means removed), scored by its Frobenius norm over
    the 20 amino acids (the gap state left out, as plmDCA does), and the scores are
    APC-corrected: ``apc(F)``, ``F_ii = 0``.

    The logits of every sequence are one product of its one-hot codes with the ``[T·V, T·V]``
    coupling matrix, so a step costs about ``6·B·(T·V)²`` FLOPs: seconds for a few hundred
    sequences of 50 columns on a CPU, much more for the large families (use an accelerator).

    Args:
        msa: the encoded alignment ``[B, T]``.
        weights: sequence weights (default 1 each).
        lambda_h, lambda_j: the regularisation strengths.
        max_steps: the L-BFGS iteration budget.
        tol: stop when the gradient's norm falls below ``tol``.

    References:
        M. Ekeberg, C. Lövkvist, Y. Lan, M. Weigt, E. Aurell, "Improved contact prediction in
        proteins: using pseudolikelihoods to infer Potts models", Phys. Rev. E 87, 2013.
        https://doi.org/10.1103/PhysRevE.87.012707
    """
    msa = _msa._check_msa(msa)
    w = np.ones(len(msa)) if weights is None else np.asarray(weights, np.float64)
    params, _, _ = _fit_plm(jnp.asarray(_one_hot(msa), jnp.float32),
                            jnp.asarray(w / w.sum(), jnp.float32), msa.shape[1],
                            float(lambda_h), float(lambda_j), int(max_steps), float(tol))
    return apc(_frobenius(np.asarray(_couplings(params["w"], msa.shape[1]), np.float64)))


def _couplings(w_flat, num_cols):
    """The symmetric couplings ``J [T, V, T, V]`` with zero diagonal blocks."""
    v = _msa.NUM_STATES
    j = w_flat.reshape(num_cols, v, num_cols, v)
    j = (j + j.transpose(2, 3, 0, 1)) / 2
    off = 1.0 - jnp.eye(num_cols, dtype=j.dtype)
    return j * off[:, None, :, None]


def _plm_loss(params, onehot, w, num_cols, lambda_h, lambda_j):
    """The objective ℓ of :func:`plm_dca` (``w`` already divided by ``M_eff``)."""
    v = _msa.NUM_STATES
    j = _couplings(params["w"], num_cols)
    logits = (onehot @ j.reshape(num_cols * v, num_cols * v)).reshape(-1, num_cols, v)
    logits = logits + params["h"]
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.sum(w[:, None] * jnp.sum(logp * onehot.reshape(-1, num_cols, v), -1))
    # Σ_{i<j} ‖J_ij‖² is half the sum over the full symmetric matrix.
    return nll + lambda_h * jnp.sum(params["h"] ** 2) + lambda_j / 2 * jnp.sum(j ** 2)


def _fit_plm(onehot, w, num_cols, lambda_h, lambda_j, max_steps, tol):
    """L-BFGS on :func:`_plm_loss` from zero; returns ``(params, steps, final loss)``."""
    v = _msa.NUM_STATES
    loss = functools.partial(_plm_loss, onehot=onehot, w=w, num_cols=num_cols,
                             lambda_h=lambda_h, lambda_j=lambda_j)
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def cond(carry):
        _, state, step = carry
        grad = optax.tree.get(state, "grad")
        return (step < max_steps) & (optax.tree.norm(grad) >= tol) | (step == 0)

    def body(carry):
        params, state, step = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                    value_fn=loss)
        return optax.apply_updates(params, updates), state, step + 1

    params = {"h": jnp.zeros((num_cols, v), jnp.float32),
              "w": jnp.zeros((num_cols * v, num_cols * v), jnp.float32)}
    params, state, steps = jax.jit(
        lambda p: jax.lax.while_loop(cond, body, (p, opt.init(p), 0)))(params)
    return params, int(steps), float(optax.tree.get(state, "value"))


def _frobenius(j: np.ndarray) -> np.ndarray:
    """Zero-sum gauge, then ``‖J_ij‖_F`` over the 20 amino acids; ``F_ii = 0``."""
    j = (j - j.mean(1, keepdims=True) - j.mean(3, keepdims=True)
         + j.mean((1, 3), keepdims=True))
    aa = slice(0, _msa.GAP)
    f = np.sqrt(np.sum(j[:, aa, :, aa] ** 2, axis=(1, 3)))
    np.fill_diagonal(f, 0.0)
    return f


# --- precision -------------------------------------------------------------------------------

def precision_at(scores: Float[np.ndarray, "T T"], contacts: Int[np.ndarray, "T T"], k: int,
                 *, min_sep: int = 6, max_sep: int | None = None,
                 positions: Int[np.ndarray, "T"] | None = None) -> float:
    """Precision of the ``k`` top-scoring pairs ``i < j`` with ``min_sep ≤ s < max_sep``.

    Ties and unresolved pairs as in the module docstring.

    >>> contacts = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    >>> scores = np.array([[0., 5, 3], [5, 0, 1], [3, 1, 0]])
    >>> precision_at(scores, contacts, 2, min_sep=1)    # picks (0,1) no, (0,2) yes
    0.5

    Args:
        scores: predicted scores; only the upper triangle ``i < j`` is read.
        contacts: 1 contact, 0 none, negative unknown (left out).
        k: the number of predictions.
        min_sep, max_sep: the separation range ``[min_sep, max_sep)``.
        positions: residue positions along the chain (default ``0 .. T−1``); separations are
            their differences, so residues missing from the map keep their true spacing.

    Raises:
        ValueError: if the shapes differ, ``scores`` has NaNs, or ``k < 1``.
    """
    score, target = _candidates(scores, contacts, min_sep, max_sep, positions)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    if len(score) <= k:
        return float(target.sum()) / k
    kth = np.partition(score, len(score) - k)[len(score) - k]
    above, tied = score > kth, score == kth
    slots = k - above.sum()
    hits = target[above].sum() + slots * target[tied].sum() / tied.sum()
    return float(hits) / k


def _candidates(scores, contacts, min_sep, max_sep, positions):
    scores, contacts = np.asarray(scores, np.float64), np.asarray(contacts)
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1] or contacts.shape != scores.shape:
        raise ValueError(f"scores and contacts must both be [T, T], got {scores.shape} and "
                         f"{contacts.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores has NaN entries")
    num = scores.shape[0]
    pos = np.arange(num) if positions is None else np.asarray(positions)
    if pos.shape != (num,):
        raise ValueError(f"positions must have shape ({num},), got {pos.shape}")
    i, j = np.triu_indices(num, 1)
    sep = np.abs(pos[j] - pos[i])
    keep = (sep >= min_sep) & (contacts[i, j] >= 0)
    if max_sep is not None:
        keep &= sep < max_sep
    return scores[i[keep], j[keep]], (contacts[i[keep], j[keep]] > 0).astype(np.float64)


def precisions(scores: Float[np.ndarray, "T T"], contacts: Int[np.ndarray, "T T"], *,
               positions: Int[np.ndarray, "T"] | None = None, length: int | None = None
               ) -> dict[str, float]:
    """``P@L/5``, ``P@L/2``, ``P@L`` in each range: keys ``"long_P@L/5"`` and so on.

    Args:
        scores, contacts, positions: as :func:`precision_at`.
        length: ``L`` (default ``T``, the map's size).
    """
    length = len(scores) if length is None else length
    out = {}
    for name, (lo, hi) in RANGES.items():
        for top, div in TOP.items():
            out[f"{name}_P@{top}"] = precision_at(scores, contacts, max(length // div, 1),
                                                  min_sep=lo, max_sep=hi, positions=positions)
    return out


def contact_density(contacts: Int[np.ndarray, "T T"], *, min_sep: int = 24,
                    max_sep: int | None = None,
                    positions: Int[np.ndarray, "T"] | None = None) -> float:
    """The fraction of resolved pairs in a range that are contacts: a random predictor's
    expected precision."""
    _, target = _candidates(np.zeros(np.shape(contacts)), contacts, min_sep, max_sep,
                            positions)
    return float(target.mean()) if len(target) else 0.0


def family_precisions(family, scores: Float[np.ndarray, "T T"]) -> dict[str, float]:
    """:func:`precisions` of column scores ``[T, T]`` on a family's structure.

    The maps are restricted to the columns that hold a structured residue of the domain
    (``L`` of them, the domain length), and separations are the residues' positions in the
    structure file.
    """
    columns = np.flatnonzero(family.column_residue >= 0)
    sub = np.ix_(columns, columns)
    contacts = family.contacts()[sub]
    positions = family.column_residue[columns]
    out = precisions(np.asarray(scores)[sub], contacts, positions=positions)
    out["long_density"] = contact_density(contacts, positions=positions)
    return out


def main(argv=None) -> dict[str, dict[str, float]]:
    """Prints contact precisions on every family: ``python -m zoo.bio.contacts --data-dir D``
    (MI+APC; ``--method plm`` for plmDCA)."""
    from zoo.bio import structure
    parser = argparse.ArgumentParser(prog="zoo bio mi", description=main.__doc__)
    parser.add_argument("--data-dir", default=None, help="the data root (or $ZOO_DATA)")
    parser.add_argument("--pseudocount", type=float, default=MI_PSEUDOCOUNT)
    parser.add_argument("--families", nargs="*", default=None)
    parser.add_argument("--method", choices=("mi", "plm"), default="mi")
    args = parser.parse_args(argv)
    results = {}
    print(f"{'family':8} {'pdb':7} {'L':>4} {'B':>6} {'Meff':>7} {'P@L/5':>6} {'P@L':>6} "
          f"{'dens':>6} {'s':>5}")
    for pfam in args.families or structure.list_families(args.data_dir):
        start = time.perf_counter()
        fam = structure.load_family(pfam, args.data_dir)
        x = fam.alignment.encoded()
        w = _msa.sequence_weights(x)
        scores = (plm_dca(x, w) if args.method == "plm"
                  else mi_apc(x, w, pseudocount=args.pseudocount))
        res = family_precisions(fam, scores)
        seconds = time.perf_counter() - start
        results[pfam] = res
        print(f"{pfam:8} {fam.pdb_chain:7} {(fam.column_residue >= 0).sum():4d} {len(x):6d} "
              f"{w.sum():7.1f} {res['long_P@L/5']:6.3f} {res['long_P@L']:6.3f} "
              f"{res['long_density']:6.3f} {seconds:5.1f}")
    for key in ("long_P@L/5", "long_P@L", "long_density"):
        print(f"mean {key}: {np.mean([r[key] for r in results.values()]):.3f}")
    return results


__all__ = ["MI_PSEUDOCOUNT", "RANGES", "TOP", "symmetrize", "apc", "frequencies",
           "mutual_information", "mi_apc", "plm_dca", "precision_at", "precisions",
           "contact_density", "family_precisions", "main"]

if __name__ == "__main__":
    main()
