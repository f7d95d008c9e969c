"""Viral escape scoring: constrained semantic change search (CSCS, Hie et al. 2021).

A protein language model scores every single-residue mutant ``x̃`` of a wild type ``x`` two
ways. Grammaticality is the model's probability of the mutant residue at position ``i`` in
the wild-type context, and semantic change is the ℓ1 distance between the sequence
embeddings (the mean hidden state over the residues)::

    p(x̃_i | x),     Δz(x̃) = ‖ (1/N) Σ_t z_t(x) − (1/N) Σ_t z_t(x̃) ‖₁

CSCS ranks mutants by both at once, as a sum of ranks (ties share their average rank)::

    a(x̃) = rank(Δz(x̃)) + β · rank(p(x̃_i | x))

Escape prediction is scored by the curve of escape mutations found among the top ``k``
mutants acquired by the score, ``k = 1 … M``, and the area under it (trapezoids from
``k = 1``) divided by ``M`` times the escape mutations found at ``k = M``: 0.5 is random
ranking, and all ``n`` escape mutants first give ``1 − n / 2M − 1 / 2nM``. The published
AUCs of the paper are reproduced from its published per-mutant scores by
:func:`reproduce_published`, and EVEscape's score (Thadani et al. 2023) is scored by the same
curve in :func:`evescape_auc`.

The paper's protocol (``bin/cached_semantics.py`` of the reference code, read and rewritten
here): keep the mutants to the 20 standard residues that the DMS measured (all of Spike for
Baum et al.; the RBD sites 331-531); rank all of them (ties averaged, ``scipy.stats.rankdata``);
run the curve to ``M`` = the mutants with ``change > 0`` (the tables carry one row that is the
wild type itself, change 0, which is ranked but falls off the curve's end); normalise all three
areas by ``M`` times the escape mutants CSCS finds by ``M``. From the published ``prob`` and
``change`` columns this gives H1, HIV Env and Spike to within 0.0005 of the published AUCs.
H3 (0.731, 0.635, 0.688 against 0.766, 0.678, 0.714) and the RBD (0.654, 0.597, 0.596 against
0.567, 0.492, 0.591) do not reproduce from these tables: their ``is_escape`` columns were
written in 2020, and the 2021 AUCs were computed with labels re-derived from the raw DMS files
(``bin/escape.py``), which are not here. For the RBD the label rule changed (escape fraction
>= 0.3 in any row of any antibody, no significant-site or > -0.4 binding/expression filter):
applied to the library-averaged escape fractions that the Greaney et al. repository publishes
for the same 2366 mutants (``results/supp_data/MAP_paper_antibodies_raw_data.csv`` of
jbloomlab/SARS-CoV-2-RBD_MAP_Crowe_antibodies) it gives 0.552, 0.492, 0.561; the reference
also counts each library's own row, which that file does not hold. The H3 rule did not
change, so the H3 gap is in the raw file itself. The published H1 value is the
AUC at the default cutoff, not the mean over the cutoff sweep of the reference (0.801). The
2020 protocol (all 25 tokens, no DMS filter) reproduces the 2020 version of the table (H1 0.834,
H3 0.771, HIV 0.692), which confirms that the tables here are the ones the paper scored.

The reference code computes the semantic change of its published ``change`` column as the
ℓ1 distance summed over the per-position embeddings, not between their means
(``pool="positions"`` of :func:`score_mutants`; the mean is the paper's equation and the
default).

The scoring takes any language model as a callable ``lm(tokens) -> (log_probs, hidden)``
(``[B, T] -> ([B, T, V], [B, T, D])``): the wild type is run once for the grammaticality of
all mutants, the mutants in batches of a fixed size for the semantic change.

Shape letters: ``B`` batch, ``T`` token positions, ``V`` vocabulary, ``D`` hidden width;
``M`` (mutants) is a count, not an array axis of a model.

>>> import numpy as np
>>> len(single_mutants("MKV")), single_mutants("MK")[:2]
(57, [(0, 'M', 'A'), (0, 'M', 'C')])
>>> cscs(np.array([0.1, 0.5, 0.2]), np.array([3.0, 1.0, 2.0])).tolist()
[4.0, 4.0, 4.0]
>>> round(escape_auc(np.array([3.0, 2.0, 1.0]), np.array([True, False, False])), 4)
0.6667

References:
    B. Hie, E. D. Zhong, B. Berger, B. Bryson, "Learning the language of viral evolution and
    escape", Science 371(6526):284-288, 2021. https://doi.org/10.1126/science.abd7331
    (evaluation code: https://github.com/brianhie/viral-mutation, ``bin/cached_semantics.py``)
    N. N. Thadani et al., "Learning from prepandemic data to forecast viral escape",
    Nature 622:818-825, 2023. https://doi.org/10.1038/s41586-023-06617-0
"""

import csv
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from zoo import _checks

#: The 20 standard amino acids, the residues a single mutant may take.
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"

#: The published tables of Hie et al. 2021 (``analyze_semantics_<key>_bilstm_512.txt``): key ->
#: column label of ``escape_results.txt``. ``cov`` is the full Spike (Baum et al. 2020),
#: ``cov2rbd`` the RBD DMS (Greaney et al. 2021).
VIRUSES = {
    "flu_h1": "Influenza A H1",
    "flu_h3": "Influenza A H3",
    "hiv": "HIV-1 Env BG505",
    "cov": "SARS-CoV-2",
    "cov2rbd": "SARS-CoV-2 RBD",
}

#: EVEscape's tables: virus key -> (file name, label column).
EVESCAPE = {
    "flu_h1": ("flu_h1_evescape.csv", "is_escape_experiment"),
    "hiv": ("hiv_env_evescape.csv", "is_escape_experiment"),
    "cov2rbd": ("spike_rbd_evescape.csv", "is_escape_experiment_all"),
}

#: The score names of the published results table, by our key.
SCORES = {"cscs": "CSCS", "grammaticality": "Grammaticality",
          "semantic_change": "Semantic change"}

# The reference evaluation drops the ambiguity codes and keeps the RBD sites 331-531.
_RBD_WINDOW = (330, 530)


class Mutants(NamedTuple):
    """Per-mutant scores and labels; every field has one entry per mutant ``[M]``."""

    pos: np.ndarray      # int, 0-based position in the wild type
    wt: np.ndarray       # str, wild-type residue
    mut: np.ndarray      # str, mutant residue
    prob: np.ndarray     # float, grammaticality p(x̃_i | x)
    change: np.ndarray   # float, semantic change Δz
    in_dms: np.ndarray   # bool, measured in the deep mutational scan
    is_escape: np.ndarray  # bool, experimental escape label


# --- mutants and the CSCS rank sum -------------------------------------------------------------

def single_mutants(wildtype: str, alphabet: str = AMINO_ACIDS) -> list[tuple[int, str, str]]:
    """All single-residue substitutions of ``wildtype``: ``(position, wt, mutant)``.

    Position-major, mutants in ``alphabet`` order, the wild-type residue skipped: 19 per
    position over the standard amino acids.

    >>> single_mutants("W")[-2:]
    [(0, 'W', 'V'), (0, 'W', 'Y')]
    """
    if not isinstance(wildtype, str) or not wildtype:
        raise ValueError(f"wildtype must be a non-empty string, got {wildtype!r}")
    return [(i, w, a) for i, w in enumerate(wildtype) for a in alphabet if a != w]


def mutate(wildtype: str, mutants: Sequence[tuple[int, str, str]]) -> list[str]:
    """The mutant sequences of ``mutants`` (each checked against the wild-type residue).

    >>> mutate("MKV", [(1, "K", "R")])
    ['MRV']
    """
    out = []
    for pos, wt, mut in mutants:
        if not 0 <= pos < len(wildtype) or wildtype[pos] != wt:
            got = wildtype[pos] if 0 <= pos < len(wildtype) else "out of range"
            raise ValueError(f"mutant {(pos, wt, mut)} does not match the wild type: "
                             f"expected {wt!r} at position {pos}, got {got!r}")
        out.append(wildtype[:pos] + mut + wildtype[pos + 1:])
    return out


def cscs(prob, change, beta: float = 1.0) -> np.ndarray:
    """The CSCS acquisition ``rank(change) + β · rank(prob)`` (ranks from 1; ties averaged).

    Args:
        prob: ``[M]`` grammaticality of each mutant (probabilities or log-probabilities: only
            the order matters).
        change: ``[M]`` semantic change of each mutant.
        beta: weight of the grammaticality rank.

    Returns:
        ``[M]`` float64 scores; larger means acquired earlier.

    >>> cscs([0.1, 0.3], [5.0, 5.0], beta=2.0).tolist()
    [3.5, 5.5]
    """
    prob, change = _vector(prob, "prob"), _vector(change, "change")
    if prob.shape != change.shape:
        raise ValueError(f"prob and change must have the same shape [M], got {prob.shape} "
                         f"and {change.shape}")
    return stats.rankdata(change) + beta * stats.rankdata(prob)


# --- the escape curve and its AUC --------------------------------------------------------------

def escape_curve(scores, is_escape, *, top: int | None = None):
    """Escape mutations found among the ``k`` top-scored mutants, ``k = 1 … top``.

    Mutants are ranked by decreasing score with tied scores sharing their average rank; an
    escape mutant of rank ``r`` counts as found from ``k = ⌈r⌉`` on (the paper's protocol).

    Args:
        scores: ``[M]`` any score, larger is more likely to escape.
        is_escape: ``[M]`` bool labels.
        top: the curve's length (default ``M``).

    Returns:
        ``(acquired, found)``: two ``[top]`` int arrays, ``acquired = 1 … top``.

    >>> escape_curve([0.9, 0.1, 0.5], [False, True, True])[1].tolist()
    [0, 1, 2]
    """
    scores, is_escape = _scores_labels(scores, is_escape)
    top = len(scores) if top is None else top
    _checks.positive_int(top, "top")
    if top > len(scores):
        raise ValueError(f"top must be <= the number of mutants {len(scores)}, got {top}")
    ranks = np.sort(stats.rankdata(-scores)[is_escape])
    acquired = np.arange(1, top + 1)
    return acquired, np.searchsorted(ranks, acquired, side="right")


def escape_auc(scores, is_escape, *, top: int | None = None,
               n_escape: int | None = None) -> float:
    """Normalised area under the escape curve (:func:`escape_curve`).

    ``AUC = Σ_{k=1}^{top−1} (found_k + found_{k+1}) / 2 / (top · n_escape)``, 0.5 for random
    ranking and 1 when every escape mutant comes first (for large ``M``).

    Args:
        scores: ``[M]`` scores, larger is more likely to escape.
        is_escape: ``[M]`` bool labels.
        top: the curve's length (default ``M``).
        n_escape: the normaliser (default ``found`` at ``top``: all escape mutants when
            ``top = M``).

    Here ``found = 0, 1, 1, 1``, so the area is ``0.5 + 1 + 1`` over ``4 · 1``:

    >>> escape_auc([4.0, 3.0, 2.0, 1.0], [False, True, False, False])
    0.625
    """
    acquired, found = escape_curve(scores, is_escape, top=top)
    n_escape = int(found[-1]) if n_escape is None else n_escape
    if n_escape < 1:
        raise ValueError(f"is_escape must mark at least one escape mutant among the top "
                         f"{len(acquired)}, got {n_escape}")
    return float(np.trapezoid(found, acquired) / (acquired[-1] * n_escape))


def protocol_aucs(prob, change, is_escape, *, beta: float = 1.0) -> dict[str, float]:
    """CSCS, grammaticality and semantic-change AUCs as the paper's evaluation computes them.

    The ranks run over all mutants given, the curve over those with ``change > 0`` (``top``
    = their count; the reference drops the wild type itself, whose change is 0, from the
    curve length) and all three areas share one normaliser, the escape mutants the CSCS
    curve finds by then.

    Returns:
        ``{"cscs": ..., "grammaticality": ..., "semantic_change": ...}``.

    >>> aucs = protocol_aucs([0.3, 0.1, 0.2, 0.4], [2.0, 0.0, 1.0, 3.0],
    ...                      np.array([False, True, False, True]))
    >>> {k: round(v, 4) for k, v in aucs.items()}
    {'cscs': 0.6667, 'grammaticality': 0.6667, 'semantic_change': 0.6667}
    """
    prob, change = _vector(prob, "prob"), _vector(change, "change")
    acq = cscs(prob, change, beta)
    top = int(np.sum(change > 0))
    n_escape = int(escape_curve(acq, is_escape, top=top)[1][-1])
    return {name: escape_auc(s, is_escape, top=top, n_escape=n_escape)
            for name, s in (("cscs", acq), ("grammaticality", prob),
                            ("semantic_change", change))}


# --- scoring with a language model -------------------------------------------------------------

class Scores(NamedTuple):
    """A language model's scores of single mutants, one entry per mutant ``[M]``."""

    mutants: list          # (position, wt, mutant) tuples
    prob: np.ndarray       # grammaticality p(x̃_i | x)
    change: np.ndarray     # semantic change Δz


def score_mutants(lm, wildtype: str, vocab: Mapping[str, int], *, tokens=None,
                  offset: int = 0, mutants=None, batch_size: int = 64,
                  pool: str = "mean") -> Scores:
    """Grammaticality and semantic change of single mutants under a language model.

    ``p(x̃_i | x) = exp(log_probs[offset + i, x̃_i])`` from one pass over the wild type, and
    over the residue tokens ``t = offset … offset + N − 1``::

        pool="mean":       Δz = ‖ mean_t h_t(x) − mean_t h_t(x̃) ‖₁     (the paper's equation)
        pool="positions":  Δz = Σ_t ‖ h_t(x) − h_t(x̃) ‖₁             (the reference code's)

    The mutants run ``batch_size`` at a time, the last batch padded with the wild type so a
    jitted model compiles once; the reduction runs where the model's outputs are (only
    ``[B]`` distances leave the device).

    Args:
        lm: ``lm(tokens [B, T]) -> (log_probs [B, T, V], hidden [B, T, D])``, or a pair
            ``(log_probs_fn, hidden_fn)`` of callables of ``tokens`` (the mutant passes then
            call only ``hidden_fn``). The log-probability at a residue's token must not see
            that residue (a masked or two-sided model).
        wildtype: the wild-type sequence (``N`` residues).
        vocab: residue -> token id, e.g. ``{a: tok.token_to_id(a) for a in AMINO_ACIDS}`` for
            a ``zoo.bio.tokenizers.ProteinTokenizer`` ``tok``.
        tokens: ``[T]`` the wild type's tokens, specials included (default: ``vocab`` of each
            residue, no specials).
        offset: the token index of residue 0 (1 after a start token).
        mutants: ``(position, wt, mutant)`` tuples (default: :func:`single_mutants`).
        batch_size: mutants per pass.
        pool: ``"mean"`` or ``"positions"``, as above.

    Returns:
        :class:`Scores` in the order of ``mutants``.

    A model with uniform probabilities and one-hot hidden states: each mutant moves a third
    of the mean from its wild-type letter to its own, so ``Δz = 2/3``:

    >>> import jax
    >>> vocab = {a: i for i, a in enumerate(AMINO_ACIDS)}
    >>> def lm(tokens):
    ...     return jnp.full(tokens.shape + (20,), -jnp.log(20.0)), jax.nn.one_hot(tokens, 20)
    >>> s = score_mutants(lm, "MKV", vocab, batch_size=16)
    >>> len(s.mutants), round(float(s.prob[0]), 6), round(float(s.change[0]), 6)
    (57, 0.05, 0.666667)
    """
    _checks.positive_int(batch_size, "batch_size")
    _checks.one_of(pool, "pool", ("mean", "positions"))
    mutants = single_mutants(wildtype) if mutants is None else list(mutants)
    mutate(wildtype, mutants)
    tokens = _wildtype_tokens(wildtype, vocab, tokens, offset)
    span = slice(offset, offset + len(wildtype))
    log_probs, hidden, hidden_fn = _wildtype_pass(lm, tokens)
    ids = np.array([_token(vocab, m) for _, _, m in mutants], np.int64)
    sites = np.array([offset + p for p, _, _ in mutants], np.int64)
    prob = np.exp(np.asarray(log_probs, np.float64)[0, sites, ids])
    ref = jnp.asarray(hidden)[0, span]
    ref = ref.mean(0) if pool == "mean" else ref
    change = [_batch_change(hidden_fn, tokens, sites[i:i + batch_size], ids[i:i + batch_size],
                            batch_size, span, ref)
              for i in range(0, len(mutants), batch_size)]
    return Scores(mutants, prob, np.concatenate(change) if change else np.zeros(0))


def _wildtype_pass(lm, tokens):
    """``(log_probs, hidden, hidden_fn)`` of the wild type's tokens under ``lm`` (one callable
    or a ``(log_probs_fn, hidden_fn)`` pair)."""
    if isinstance(lm, tuple):
        log_prob_fn, hidden_fn = lm
        return log_prob_fn(tokens[None]), hidden_fn(tokens[None]), hidden_fn
    log_probs, hidden = lm(tokens[None])
    return log_probs, hidden, lambda t: lm(t)[1]


def _batch_change(hidden_fn, tokens, sites, ids, batch_size, span, ref):
    batch = np.repeat(tokens[None], batch_size, axis=0)
    batch[np.arange(len(sites)), sites] = ids
    d = _distances(jnp.asarray(hidden_fn(batch)), ref, start=span.start, stop=span.stop)
    return np.asarray(d, np.float64)[: len(sites)]


@functools.partial(jax.jit, static_argnames=("start", "stop"))
def _distances(h, ref, *, start, stop):
    h = h[:, start:stop]                                           # [B, N, D]
    if ref.ndim == 1:
        return jnp.abs(h.mean(1) - ref).sum(-1)
    return jnp.abs(h - ref).sum((1, 2))


def _wildtype_tokens(wildtype, vocab, tokens, offset):
    if tokens is None:
        tokens = [_token(vocab, c) for c in wildtype]
    tokens = np.asarray(tokens)
    _checks.check_array(tokens, "tokens", rank=1, letters="T", kind="int")
    if offset < 0 or offset + len(wildtype) > len(tokens):
        raise ValueError(f"offset must place the {len(wildtype)} residues inside the "
                         f"{len(tokens)} tokens, got offset {offset}")
    want = [_token(vocab, c) for c in wildtype]
    if tokens[offset:offset + len(wildtype)].tolist() != want:
        raise ValueError(f"tokens[{offset}:{offset + len(wildtype)}] must encode the wild type "
                         f"with vocab, got {tokens[offset:offset + 8].tolist()}...")
    return tokens.astype(np.int32)


def _token(vocab, residue):
    if residue not in vocab:
        raise ValueError(f"vocab has no token for residue {residue!r}")
    return vocab[residue]


# --- the published tables ----------------------------------------------------------------------

def _root(data_dir):
    from zoo.data import data_dir as find
    return find("viral_escape", root=data_dir)


def load_published(virus: str, *, data_dir=None) -> Mutants:
    """The paper's per-mutant BiLSTM scores and escape labels for ``virus`` (a key of
    :data:`VIRUSES`), all rows of ``analyze_semantics_<virus>_bilstm_512.txt``."""
    _checks.one_of(virus, "virus", VIRUSES)
    name = f"analyze_semantics_{virus}_bilstm_512.txt"
    return read_semantics(_root(data_dir) / "hie2021_results" / name)


def read_semantics(path) -> Mutants:
    """Reads a table in the format of ``analyze_semantics_*.txt`` (TSV: ``pos wt mut prob
    change is_viable is_escape``; ``is_viable`` is the DMS coverage, stored as ``in_dms``)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return Mutants(_column(rows, "pos", int), _column(rows, "wt", str),
                   _column(rows, "mut", str), _column(rows, "prob", float),
                   _column(rows, "change", float), _column(rows, "is_viable", _truth),
                   _column(rows, "is_escape", _truth))


def protocol_mask(table: Mutants, virus: str) -> np.ndarray:
    """The rows the paper's evaluation keeps: the 20 standard residues, mutants measured in the
    DMS (all of Spike for Baum et al., whose table marks only the escape mutants as measured),
    and for the RBD the sites 331-531."""
    keep = np.isin(table.mut, list(AMINO_ACIDS))
    if virus != "cov":
        keep &= table.in_dms
    if virus == "cov2rbd":
        keep &= (table.pos >= _RBD_WINDOW[0]) & (table.pos <= _RBD_WINDOW[1])
    return keep


def reproduce_published(virus: str, *, data_dir=None, beta: float = 1.0) -> dict[str, float]:
    """The escape AUCs of CSCS, grammaticality and semantic change from the published scores,
    by the paper's protocol (:func:`protocol_mask`, :func:`protocol_aucs`)."""
    table = load_published(virus, data_dir=data_dir)
    t = Mutants(*(a[protocol_mask(table, virus)] for a in table))
    return protocol_aucs(t.prob, t.change, t.is_escape, beta=beta)


def published_aucs(*, data_dir=None) -> dict[str, dict[str, float]]:
    """The AUCs of ``escape_results.txt``: ``{model: {virus key: auc}}``."""
    path = _root(data_dir) / "hie2021_results" / "escape_results.txt"
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    by_label = {label: key for key, label in VIRUSES.items()}
    keys = [by_label[h.removeprefix("Escape AUC (").removesuffix(")")] for h in rows[0][1:]]
    return {r[0]: dict(zip(keys, map(float, r[1:]))) for r in rows[1:]}


def reproduction_table(*, data_dir=None) -> str:
    """A markdown table of the published AUCs beside those :func:`reproduce_published` gets.

    From a shell: ``python -c "from zoo.bio import escape; print(escape.reproduction_table())"``
    with ``$ZOO_DATA`` set (or pass ``data_dir``).
    """
    published = published_aucs(data_dir=data_dir)
    lines = ["| virus | score | published | reproduced | difference |", "|---|---|---:|---:|---:|"]
    for virus, label in VIRUSES.items():
        got = reproduce_published(virus, data_dir=data_dir)
        for key, name in SCORES.items():
            want = published[name][virus]
            lines.append(f"| {label} | {name} | {want:.3f} | {got[key]:.4f} | "
                         f"{got[key] - want:+.4f} |")
    return "\n".join(lines)


# --- EVEscape ----------------------------------------------------------------------------------

class EVEscape(NamedTuple):
    """EVEscape's per-mutant table, one entry per mutant ``[M]``."""

    pos: np.ndarray        # int, 0-based
    wt: np.ndarray
    mut: np.ndarray
    evescape: np.ndarray   # float, the EVEscape score (larger escapes more)
    is_escape: np.ndarray  # bool


def read_evescape(path, label: str = "is_escape_experiment") -> EVEscape:
    """Reads an EVEscape ``summaries_with_scores`` CSV (1-based ``i`` made 0-based)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and label not in rows[0]:
        raise ValueError(f"label must be a column of {path}, one of "
                         f"{[k for k in rows[0] if k.startswith('is_')]}, got {label!r}")
    return EVEscape(_column(rows, "i", int) - 1, _column(rows, "wt", str),
                    _column(rows, "mut", str), _column(rows, "evescape", float),
                    _column(rows, label, _truth))


def load_evescape(virus: str, *, data_dir=None, label: str | None = None) -> EVEscape:
    """EVEscape's table for ``virus`` (a key of :data:`EVESCAPE`)."""
    _checks.one_of(virus, "virus", EVESCAPE)
    name, default = EVESCAPE[virus]
    return read_evescape(_root(data_dir) / "evescape_2023" / name, label or default)


def evescape_auc(virus: str, *, data_dir=None, label: str | None = None) -> float:
    """The escape AUC (:func:`escape_auc`, over all mutants) of EVEscape's score."""
    t = load_evescape(virus, data_dir=data_dir, label=label)
    return escape_auc(t.evescape, t.is_escape)


def cscs_on_evescape_labels(virus: str, *, data_dir=None, label: str | None = None,
                            beta: float = 1.0) -> dict[str, float]:
    """Escape AUCs of EVEscape and of the paper's CSCS scores on EVEscape's mutants and labels.

    The paper's rows are matched to EVEscape's by ``(position, wt, mutant)``; ranks run over the
    matched mutants and the curve over all of them.

    Returns:
        ``{"evescape", "cscs", "grammaticality", "semantic_change", "n", "n_escape"}``.
    """
    ev = load_evescape(virus, data_dir=data_dir, label=label)
    table = load_published(virus, data_dir=data_dir)
    index = {(p, m): k for k, (p, m) in enumerate(zip(table.pos, table.mut))}
    rows = np.array([index.get((p, m), -1) for p, m in zip(ev.pos, ev.mut)])
    keep = rows >= 0
    prob, change, esc = table.prob[rows[keep]], table.change[rows[keep]], ev.is_escape[keep]
    out = {"evescape": escape_auc(ev.evescape[keep], esc),
           "cscs": escape_auc(cscs(prob, change, beta), esc),
           "grammaticality": escape_auc(prob, esc),
           "semantic_change": escape_auc(change, esc)}
    return {**out, "n": int(keep.sum()), "n_escape": int(esc.sum())}


# --- plotting ----------------------------------------------------------------------------------

def plot_escape_curves(scores: Mapping[str, np.ndarray], is_escape, path, *,
                       title: str = "", top: int | None = None) -> Path:
    """Writes a PNG of the escape curves of ``scores`` (name -> ``[M]``) with random ranking.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not scores:
        raise ValueError("scores must name at least one score, got an empty mapping")
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, s in scores.items():
        acquired, found = escape_curve(s, is_escape, top=top)
        auc = escape_auc(s, is_escape, top=top)
        ax.plot(acquired, found, label=f"{name}, AUC = {auc:.3f}")
    total = int(np.sum(np.asarray(is_escape)))
    ax.plot(acquired, acquired * total / len(np.asarray(is_escape)), "--", c="gray",
            label="random, AUC = 0.500")
    ax.set(xlabel="mutations acquired (top k)", ylabel="escape mutations found", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return Path(path)


def plot_published(virus: str, path, *, data_dir=None) -> Path:
    """The escape-curve PNG of CSCS, grammaticality and semantic change for ``virus`` from the
    paper's published scores, on the mutants its protocol keeps."""
    table = load_published(virus, data_dir=data_dir)
    t = Mutants(*(a[protocol_mask(table, virus)] for a in table))
    scores = {"CSCS": cscs(t.prob, t.change), "grammaticality": t.prob,
              "semantic change": t.change}
    return plot_escape_curves(scores, t.is_escape, path, title=VIRUSES[virus],
                              top=int(np.sum(t.change > 0)))


# --- private helpers ----------------------------------------------------------------------------

def _column(rows, key, cast):
    return np.array([cast(r[key]) for r in rows])


def _truth(text):
    return text == "True"


def _vector(x, name):
    x = np.asarray(x, np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty vector [M], got shape {x.shape}")
    return x


def _scores_labels(scores, is_escape):
    scores = _vector(scores, "scores")
    is_escape = np.asarray(is_escape)
    if is_escape.dtype != np.bool_ or is_escape.shape != scores.shape:
        raise ValueError(f"is_escape must be a bool vector of shape {scores.shape} like scores, "
                         f"got {is_escape.dtype} of shape {is_escape.shape}")
    return scores, is_escape
