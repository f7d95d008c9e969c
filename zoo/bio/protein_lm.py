"""A protein masked language model on Pfam domains, and residue contacts from its attention.

**Split.** The 40 Pfam families with a structure (``pfam_domains_structures``) are split once,
by a rule anyone can re-run: the Pfam ids sorted, ``numpy.random.default_rng(0)
.permutation(40)``, the first 10 positions held out (:data:`HELDOUT_FAMILIES`), the other 30
for training (:data:`TRAIN_FAMILIES`). The language model, the head choice, the logistic
regression over heads and the pair CNN (:mod:`zoo.bio.pair_cnn`) see training families only;
every contact number of the report is on the 10 held-out families.

**Masked LM** (Devlin et al. 2019). A :mod:`zoo.transformer` encoder reads the Pfam domain
sequences of the training families (gaps removed, insert states kept; :mod:`zoo.bio.msa`),
tokenized by :class:`zoo.bio.tokenizers.ProteinTokenizer` (pad 0, mask 1, amino acids 5-24),
cropped to a random window of at most ``crop`` residues. Each real token is selected with
probability 15%; a selected token becomes ``<mask>`` with probability 0.8, a uniformly random
standard amino acid with 0.1, and stays itself with 0.1; the loss is the cross-entropy at the
selected positions only::

    ℓ = −(1/|M|) Σ_{t ∈ M} log p(x_t | x̃),      perplexity = exp(ℓ) on held-out sequences

**Contacts from attention** (Rao et al. 2021; Vig et al. 2021). For a family's domain
sequence (the residues of its structure, :func:`zoo.bio.structure.load_family`) the model's
``L·N`` attention maps ``A^{(l,n)}`` (:func:`zoo.transformer.attention_maps`) are each made
symmetric and APC-corrected, ``F^{(l,n)} = apc(sym(A^{(l,n)}))`` (:mod:`zoo.bio.contacts`),
and give four predictors:

* *best head*: the one ``F^{(l,n)}`` with the highest mean long-range P@L/5 on the training
  families;
* *mean of heads*: ``(1/LN) Σ F^{(l,n)}``;
* *supervised*: ``σ(Σ_{l,n} w_{ln} F^{(l,n)}_{ij} + b)``, an L1-regularised logistic regression
  fitted on the pairs ``|i − j| ≥ 6`` of the training families (Rao et al.), by proximal
  gradient descent (FISTA) on standardised features::

      min_{w,b}  (1/P) Σ_p BCE(x_p·w + b, y_p) + λ ‖w‖₁

* and the MI+APC baseline of the alignment (:func:`zoo.bio.contacts.mi_apc`).

**Homolog-averaged attention** (``Settings.homologs = K``). Like MI+APC, this reads the
family's alignment at inference only (the LM never trains on a held-out family): the domain
and up to ``K − 1`` alignment rows drawn with the run's seed (rows with residues in fewer
than half of the domain's structured columns skipped; :func:`homolog_rows`) each go through
the LM gap-free, their ``F_k^{(l,n)}`` are placed on the alignment columns by each row's
residue ↔ column map ``r_k``, and each column pair averages the rows with residues at both
columns (0 where none)::

    F̄^{(l,n)}_cd = Σ_k a_k(c, d) F_k^{(l,n)}[r_k(c), r_k(d)] / Σ_k a_k(c, d),
    a_k(c, d) = [r_k(c) ≥ 0 ∧ r_k(d) ≥ 0]

The three attention predictors are then chosen and fitted again on the training families'
``F̄`` (:func:`homolog_head_maps`, :func:`attention_predictors`).

Shape letters: ``B`` sequences, ``T`` residues (or alignment columns), ``L`` layers, ``N``
heads, ``I`` features (``L·N`` heads), ``V`` vocabulary.

>>> len(TRAIN_FAMILIES), len(HELDOUT_FAMILIES), set(TRAIN_FAMILIES) & set(HELDOUT_FAMILIES)
(30, 10, set())

References:
    J. Devlin, M.-W. Chang, K. Lee, K. Toutanova, "BERT: Pre-training of Deep Bidirectional
    Transformers for Language Understanding", NAACL 2019. https://arxiv.org/abs/1810.04805
    R. Rao, J. Meier, T. Sercu, S. Ovchinnikov, A. Rives, "Transformer protein language models
    are unsupervised structure learners", ICLR 2021. https://doi.org/10.1101/2020.12.15.422761
    J. Vig, A. Madani, L. R. Varshney, C. Xiong, R. Socher, N. F. Rajani, "BERTology Meets
    Biology: Interpreting Attention in Protein Language Models", ICLR 2021.
    https://arxiv.org/abs/2006.15222
    A. Beck, M. Teboulle, "A Fast Iterative Shrinkage-Thresholding Algorithm for Linear
    Inverse Problems", SIAM J. Imaging Sci. 2(1), 2009. https://doi.org/10.1137/080716542
"""

import argparse
import csv
import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from zoo import transformer
from zoo.bio import contacts as _contacts
from zoo.bio import msa as _msa
from zoo.bio import structure as _structure
from zoo.bio import tokenizers as _tok

#: The 10 held-out families (module docstring: the sorted ids, ``default_rng(0)``'s
#: permutation, its first 10 positions).
HELDOUT_FAMILIES = ("PF00018", "PF00041", "PF00072", "PF00076", "PF00240", "PF00381",
                    "PF00550", "PF00581", "PF00691", "PF02823")
#: The 30 training families (the other 30 positions of the permutation), sorted.
TRAIN_FAMILIES = ("PF00013", "PF00085", "PF00111", "PF00168", "PF00169", "PF00179",
                  "PF00226", "PF00249", "PF00254", "PF00313", "PF00327", "PF00355",
                  "PF00364", "PF00439", "PF00486", "PF00498", "PF00542", "PF00582",
                  "PF00595", "PF00708", "PF01029", "PF01035", "PF01451", "PF01627",
                  "PF01833", "PF04002", "PF07679", "PF07686", "PF08666", "PF12844")
#: Token ids of the 20 standard amino acids (the random replacements of the masking).
AMINO_IDS = (5, 25)
#: Minimum sequence separation of the pairs the supervised head is fitted on.
MIN_SEP = 6
APP = "contacts/protein_lm"


def split_families(pfam_ids, *, seed: int = 0, num_heldout: int = 10
                   ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(train, heldout)``: ``sorted(pfam_ids)`` permuted by ``default_rng(seed)``, the
    first ``num_heldout`` held out; each part sorted. :data:`TRAIN_FAMILIES` and
    :data:`HELDOUT_FAMILIES` are this split of the 40 families.

    >>> split_families(["c", "a", "b", "d"], num_heldout=1)
    (('a', 'b', 'd'), ('c',))

    Raises:
        ValueError: if ``num_heldout`` is not in ``[1, len(pfam_ids))`` or ids repeat.
    """
    ids = sorted(pfam_ids)
    if len(set(ids)) != len(ids):
        raise ValueError(f"pfam_ids must be distinct, got {len(ids)} ids with repeats")
    if not 1 <= num_heldout < len(ids):
        raise ValueError(f"num_heldout must be in [1, {len(ids)}), got {num_heldout!r}")
    perm = np.random.default_rng(seed).permutation(len(ids))
    held = tuple(sorted(ids[i] for i in perm[:num_heldout]))
    return tuple(sorted(ids[i] for i in perm[num_heldout:])), held


@dataclasses.dataclass(frozen=True)
class Settings:
    """The protein LM run.

    Attributes:
        d_model, num_heads, d_ff, num_layers: the encoder (pre-norm, sinusoidal positions).
        crop: longest training window (residues).
        per_family: training sequences drawn per family (all if fewer).
        heldout_per_family: held-out sequences per family for the perplexity.
        batch_size: sequences per step.
        steps: optimizer steps (AdamW, linear warm-up then cosine decay).
        learning_rate: peak learning rate.
        mask_rate: the fraction of tokens selected for the loss.
        l1: λ of the supervised head's L1 penalty.
        seed: data, masking and initialisation seed.
        max_sequences: alignment rows used for the MI+APC baseline (a random subset drawn
            with ``seed``; ``None``: all).
        cache_dir: where MI+APC maps are cached between runs (``None``: no cache).
        homologs: also score attention averaged over the domain and up to ``homologs − 1``
            alignment rows drawn with ``seed`` (:func:`homolog_head_maps`); 0: the domain
            sequence's maps only.
    """
    d_model: int = 64
    num_heads: int = 8
    d_ff: int = 256
    num_layers: int = 4
    crop: int = 128
    per_family: int = 1500
    heldout_per_family: int = 100
    batch_size: int = 32
    steps: int = 700
    learning_rate: float = 2e-3
    mask_rate: float = 0.15
    l1: float = 1e-3
    seed: int = 0
    max_sequences: int | None = None
    cache_dir: str | None = None
    homologs: int = 0

    def __post_init__(self):
        if self.homologs < 0:
            raise ValueError(f"homologs must be >= 0 (0: the domain sequence alone), got "
                             f"{self.homologs!r}")

    def model_config(self) -> transformer.Config:
        """The :class:`zoo.transformer.Config` (kind ``"encoder"``); ``max_len`` 192 covers
        the longest domain sequence (164 residues)."""
        return transformer.Config(kind="encoder", vocab_size=_tok.ProteinTokenizer().vocab_size,
                                  d_model=self.d_model, num_heads=self.num_heads,
                                  d_ff=self.d_ff, num_layers=self.num_layers, max_len=192,
                                  norm="pre")


QUICK = Settings(per_family=300, heldout_per_family=30, steps=150, batch_size=16,
                 max_sequences=800)


# --- masked-LM data ----------------------------------------------------------------------------

def mask_tokens(ids: Int[np.ndarray, "B T"], rng: np.random.Generator, *,
                rate: float = 0.15) -> tuple[Int[np.ndarray, "B T"], Int[np.ndarray, "B T"]]:
    """BERT's masking: ``(inputs, targets)``.

    Each non-pad token is selected with probability ``rate``; a selected one becomes
    ``<mask>`` (p 0.8), a uniformly drawn standard amino acid (p 0.1, ids
    :data:`AMINO_IDS`) or stays (p 0.1). ``targets`` holds the original id at selected
    positions and ``PAD`` (0) elsewhere, so :func:`zoo.transformer.loss` scores them only.

    >>> x, y = mask_tokens(np.array([[5, 6, 7, 0]]), np.random.default_rng(0), rate=1.0)
    >>> y.tolist(), int(x[0, 3])
    ([[5, 6, 7, 0]], 0)

    Raises:
        ValueError: if ``rate`` is not in (0, 1].
    """
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1], got {rate!r}")
    ids = np.asarray(ids)
    selected = (rng.random(ids.shape) < rate) & (ids != _tok.PAD)
    u = rng.random(ids.shape)
    random_ids = rng.integers(*AMINO_IDS, size=ids.shape)
    inputs = np.where(selected & (u < 0.8), _tok.MASK, ids)
    inputs = np.where(selected & (u >= 0.8) & (u < 0.9), random_ids, inputs)
    return inputs.astype(np.int32), np.where(selected, ids, _tok.PAD).astype(np.int32)


def crop_batch(seqs, rng: np.random.Generator, crop: int, *, width: int | None = None
               ) -> Int[np.ndarray, "B T"]:
    """Token ids of ``seqs``, each cut to a random window of at most ``crop`` residues,
    padded to ``width`` (default ``crop``: one compiled shape).

    >>> crop_batch(["ACD", "AC"], np.random.default_rng(0), 3).tolist()
    [[5, 6, 7], [5, 6, 0]]
    """
    tok = _tok.ProteinTokenizer(unknown="map")
    windows = []
    for s in seqs:
        start = int(rng.integers(0, len(s) - crop + 1)) if len(s) > crop else 0
        windows.append(s[start:start + crop])
    width = crop if width is None else width
    out = np.zeros((len(windows), width), np.int32)
    for b, w in enumerate(windows):
        out[b, :len(w)] = tok.encode(w)
    return out


def family_sequences(families, count: int, rng: np.random.Generator) -> list[str]:
    """Up to ``count`` gap-free domain sequences of each family (drawn without
    replacement), concatenated."""
    out = []
    for fam in families:
        seqs = [s for s in fam.alignment.sequences if s]
        pick = rng.permutation(len(seqs))[:count]
        out.extend(seqs[i] for i in sorted(pick))
    return out


# --- training ------------------------------------------------------------------------------------

def train(settings: Settings, seqs, *, log_every: int = 50, progress: bool = True):
    """Trains the masked LM on ``seqs``; returns ``(params, history)``, ``history`` a list
    of ``(step, mean loss since the last entry)``."""
    cfg = settings.model_config()
    rng = np.random.default_rng(settings.seed)
    params = transformer.init(jax.random.key(settings.seed), cfg)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, settings.learning_rate, max(settings.steps // 20, 1), settings.steps,
        settings.learning_rate / 20)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))
    state = opt.init(params)

    @jax.jit
    def step(params, state, inputs, targets):
        value, grads = jax.value_and_grad(transformer.loss)(params, (inputs,), targets, cfg)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    history, running = [], []
    bar = _progress(range(settings.steps), progress, "masked LM")
    for i in bar:
        pick = rng.integers(0, len(seqs), settings.batch_size)
        ids = crop_batch([seqs[k] for k in pick], rng, settings.crop)
        inputs, targets = mask_tokens(ids, rng, rate=settings.mask_rate)
        params, state, value = step(params, state, inputs, targets)
        running.append(float(value))
        if (i + 1) % log_every == 0 or i + 1 == settings.steps:
            history.append((i + 1, float(np.mean(running))))
            running = []
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{history[-1][1]:.3f}")
    return params, history


def masked_perplexity(params, cfg: transformer.Config, seqs, *, crop: int = 128,
                      rate: float = 0.15, seed: int = 1, batch_size: int = 32) -> float:
    """``exp`` of the mean cross-entropy over the masked tokens of ``seqs`` (each cropped
    to its first ``crop`` residues; the masking drawn with ``seed``), every masked token
    weighted equally."""
    rng = np.random.default_rng(seed)
    total, count = 0.0, 0

    @jax.jit
    def nll(inputs, targets):
        logits = transformer.apply(params, inputs, cfg=cfg).astype(jnp.float32)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        weight = targets != _tok.PAD
        return jnp.sum(jnp.where(weight, ce, 0.0)), jnp.sum(weight)

    for lo in range(0, len(seqs), batch_size):
        ids = crop_batch([s[:crop] for s in seqs[lo:lo + batch_size]], rng, crop)
        inputs, targets = mask_tokens(ids, rng, rate=rate)
        s, n = nll(inputs, targets)
        total, count = total + float(s), count + int(n)
    return float(np.exp(total / max(count, 1)))


def unigram_perplexity(train_seqs, test_seqs) -> float:
    """The perplexity of the training amino-acid frequencies on ``test_seqs`` (add-one
    smoothed): what a model that ignores context scores."""
    tok = _tok.ProteinTokenizer(unknown="map")
    counts = np.ones(tok.vocab_size)
    for s in train_seqs:
        counts += np.bincount(tok.encode(s), minlength=tok.vocab_size)
    logp = np.log(counts / counts.sum())
    test = np.concatenate([tok.encode(s) for s in test_seqs])
    return float(np.exp(-logp[test].mean()))


# --- contacts from attention ---------------------------------------------------------------------

def head_maps(params, cfg: transformer.Config, sequence: str) -> Float[np.ndarray, "I T T"]:
    """``apc(sym(A^{(l,n)}))`` of every head of ``sequence``, layer-major (``I = L·N``).

    The tokens are padded to ``cfg.max_len`` (one compiled shape for every length; the
    encoder masks pad keys, so the residues' maps are those of the sequence alone)."""
    n = len(sequence)
    if not 0 < n <= cfg.max_len:
        raise ValueError(f"sequence must have 1..{cfg.max_len} residues (max_len), got {n}")
    ids = np.zeros((1, cfg.max_len), np.int32)
    ids[0, :n] = _tok.ProteinTokenizer(unknown="map").encode(sequence)
    maps = np.asarray(_maps_jit(params, jnp.asarray(ids), cfg), np.float64)[:, 0]
    maps = maps[:, :, :n, :n].reshape(-1, n, n)
    return _contacts.apc(_contacts.symmetrize(maps))


@functools.partial(jax.jit, static_argnums=(2,))
def _maps_jit(params, ids, cfg):
    return transformer.attention_maps(params, ids, cfg=cfg)


def family_head_maps(params, cfg: transformer.Config, family) -> Float[np.ndarray, "I T T"]:
    """:func:`head_maps` of a family's domain sequence, placed on the alignment's columns
    (``[I, T, T]``, ``T`` columns; 0 where the domain has a gap), ready for
    :func:`zoo.bio.contacts.family_precisions`."""
    columns = np.flatnonzero(np.array([c != "-" for c in family.domain]))
    sequence = "".join(family.domain[c] for c in columns).upper()
    maps = head_maps(params, cfg, sequence)
    out = np.zeros((len(maps), len(family.domain), len(family.domain)))
    out[:, columns[:, None], columns[None, :]] = maps
    return out


# --- contacts from attention averaged over a family's homologs --------------------------------

def homolog_rows(family, homologs: int, *, seed: int = 0, min_fraction: float = 0.5,
                 max_len: int | None = None) -> Int[np.ndarray, "K"]:
    """The alignment rows averaged with the domain: up to ``homologs − 1`` of them, drawn
    without replacement by ``default_rng(seed)`` among the eligible rows, in row order.

    A row is eligible when it has residues in at least ``min_fraction`` of the domain's
    structured columns (``column_residue ≥ 0``), is not the domain itself (the domain enters
    the average once, through :func:`homolog_sequences`) and, if ``max_len`` is given, has
    at most ``max_len`` residues.

    Raises:
        ValueError: if ``homologs < 1`` or ``min_fraction`` is not in [0, 1].
    """
    if homologs < 1:
        raise ValueError(f"homologs must be >= 1 (the domain alone), got {homologs!r}")
    if not 0 <= min_fraction <= 1:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction!r}")
    aln = family.alignment
    structured = family.column_residue >= 0
    covered = (aln.encoded()[:, structured] != _msa.GAP).sum(1)
    domain_row = family.domain.upper()
    ok = [b for b in range(len(aln)) if covered[b] >= min_fraction * structured.sum()
          and aln.rows[b] != domain_row
          and (max_len is None or len(aln.sequences[b]) <= max_len)]
    pick = np.random.default_rng(seed).permutation(len(ok))[:homologs - 1]
    return np.array(ok, np.int64)[np.sort(pick)]


def homolog_sequences(family, homologs: int, *, seed: int = 0, min_fraction: float = 0.5,
                      max_len: int | None = None) -> tuple[list[str], Int[np.ndarray, "K T"]]:
    """``(sequences, residue_of_column)``: the domain's gap-free sequence first, then those
    of :func:`homolog_rows` (``K ≤ homologs``); ``residue_of_column[k, c]`` is the index of
    sequence ``k``'s residue in alignment column ``c``, or −1 (a gap)."""
    rows = homolog_rows(family, homologs, seed=seed, min_fraction=min_fraction,
                        max_len=max_len)
    present = np.array([c != "-" for c in family.domain])
    domain_index = np.where(present, np.cumsum(present) - 1, -1)
    seqs = ["".join(c for c in family.domain if c != "-").upper()]
    seqs += [family.alignment.sequences[b] for b in rows]
    index = [domain_index] + [family.alignment.residue_of_column(b) for b in rows]
    return seqs, np.stack(index).astype(np.int64)


def place_on_columns(maps: Float[Array, "B I S S"], residue_of_column: Int[Array, "B T"]
                     ) -> tuple[Float[Array, "I T T"], Int[Array, "T T"]]:
    """Per-row maps over residues moved onto alignment columns and summed over rows:
    ``(Σ_b [r_b(c) ≥ 0 ∧ r_b(d) ≥ 0] M_b[r_b(c), r_b(d)],  Σ_b [r_b(c) ≥ 0 ∧ r_b(d) ≥ 0])``,
    ``r_b = residue_of_column[b]`` (−1: row ``b`` has a gap in that column). NumPy or JAX
    arrays in, JAX arrays out.

    >>> m = jnp.arange(4.0).reshape(1, 1, 2, 2)
    >>> total, count = place_on_columns(m, jnp.array([[1, -1, 0]]))
    >>> total[0].tolist(), count.tolist()
    ([[3.0, 0.0, 2.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], [[1, 0, 1], [0, 0, 0], [1, 0, 1]])
    """
    index = jnp.asarray(residue_of_column)
    safe = jnp.maximum(index, 0)
    moved = jax.vmap(lambda m, r: m[:, r[:, None], r[None, :]])(jnp.asarray(maps), safe)
    both = (index >= 0)[:, :, None] & (index >= 0)[:, None, :]          # [B, T, T]
    total = jnp.sum(jnp.where(both[:, None], moved, 0.0), axis=0)
    return total, jnp.sum(both, axis=0, dtype=jnp.int32)


#: Sequences per compiled call of the homolog maps: the ``[L, B, N, S, S]`` attention of
#: 16 rows at ``max_len`` 192 is 75 MB in float32, small beside a 2-core CPU's memory.
HOMOLOG_BATCH = 16


def homolog_head_maps(params, cfg: transformer.Config, family, homologs: int, *,
                      seed: int = 0, min_fraction: float = 0.5
                      ) -> Float[np.ndarray, "I T T"]:
    """Every head's ``apc(sym(A))`` averaged over the domain and its homologs, on the
    alignment's columns (``[I, T, T]`` like :func:`family_head_maps`)::

        F̄_cd = Σ_k [k has residues at c and d] F_k[r_k(c), r_k(d)] / Σ_k [same],  0 if none

    ``F_k`` the :func:`head_maps` of sequence ``k`` of :func:`homolog_sequences` (gaps
    removed); the rows run :data:`HOMOLOG_BATCH` at a time, padded to ``cfg.max_len`` (one
    compiled shape). The alignment is read at inference only, as MI+APC reads it.

    Raises:
        ValueError: if ``homologs < 1``, or the alignment is wider than ``cfg.max_len``.
    """
    seqs, index = homolog_sequences(family, homologs, seed=seed, min_fraction=min_fraction,
                                    max_len=cfg.max_len)
    t, width = index.shape[1], cfg.max_len
    if t > width:
        raise ValueError(f"{family.pfam_id}: the alignment has {t} columns, more than "
                         f"max_len {width}")
    tok = _tok.ProteinTokenizer(unknown="map")
    total, count = 0.0, 0
    for lo in range(0, len(seqs), HOMOLOG_BATCH):
        ids = np.zeros((HOMOLOG_BATCH, width), np.int32)
        where = np.full((HOMOLOG_BATCH, width), -1, np.int64)   # padding rows: no residue
        for b, s in enumerate(seqs[lo:lo + HOMOLOG_BATCH]):
            ids[b, :len(s)] = tok.encode(s)
            where[b, :t] = index[lo + b]
        part, n = _homolog_sums(params, jnp.asarray(ids), jnp.asarray(where), cfg)
        total, count = total + np.asarray(part, np.float64), count + np.asarray(n)
    mean = total / np.maximum(count, 1)
    return mean[:, :t, :t]


@functools.partial(jax.jit, static_argnums=(3,))
def _homolog_sums(params, ids, residue_of_column, cfg):
    a = transformer.attention_maps(params, ids, cfg=cfg).astype(jnp.float32)  # [L, B, N, S, S]
    a = jnp.moveaxis(a, 1, 0).reshape(ids.shape[0], -1, *ids.shape[1:], ids.shape[1])
    real = (ids != _tok.PAD).astype(jnp.float32)
    a = a * real[:, None, :, None] * real[:, None, None, :]     # the residues' block only
    s = _contacts.symmetrize(a)
    total = s.sum((-1, -2), keepdims=True)
    s = jnp.where(total > 0, s, 1.0)             # all-pad rows: no 0/0; they are masked out
    return place_on_columns(_contacts.apc(s), residue_of_column)


def head_scores(maps: Float[np.ndarray, "I T T"], family, key: str = "long_P@L/5"
                ) -> Float[np.ndarray, "I"]:
    """Each head's ``key`` precision on ``family``."""
    return np.array([_contacts.family_precisions(family, m)[key] for m in maps])


def pair_features(maps: Float[np.ndarray, "I T T"], family, *, min_sep: int = MIN_SEP
                  ) -> tuple[Float[np.ndarray, "P I"], Int[np.ndarray, "P"]]:
    """The supervised head's examples: for every resolved pair ``i < j`` of structured
    columns with residue separation ``≥ min_sep``, the ``I`` head scores and the contact
    label."""
    cols = np.flatnonzero(family.column_residue >= 0)
    pos = family.column_residue[cols]
    target = family.contacts()[np.ix_(cols, cols)]
    i, j = np.triu_indices(len(cols), 1)
    keep = (np.abs(pos[j] - pos[i]) >= min_sep) & (target[i, j] >= 0)
    i, j = i[keep], j[keep]
    return maps[:, cols[i], cols[j]].T, target[i, j].astype(np.int32)


@dataclasses.dataclass(frozen=True)
class L1Logistic:
    """A fitted binary logistic regression on standardised features (:func:`fit_l1_logistic`).

    Attributes: ``w_i [I]`` and ``b`` in the standardised space, ``mean_i``, ``scale_i``.
    """
    w_i: np.ndarray
    b: float
    mean_i: np.ndarray
    scale_i: np.ndarray

    def decision_function(self, x: Float[np.ndarray, "... I"]) -> np.ndarray:
        """The logits ``((x − mean)/scale)·w + b`` over the last axis."""
        return ((np.asarray(x) - self.mean_i) / self.scale_i) @ self.w_i + self.b

    def score_maps(self, maps: Float[np.ndarray, "I T T"]) -> Float[np.ndarray, "T T"]:
        """The logit of every pair of a stack of head maps."""
        return self.decision_function(np.moveaxis(maps, 0, -1))


def fit_l1_logistic(x: Float[np.ndarray, "P I"], y: Int[np.ndarray, "P"], *,
                    l1: float = 1e-3, steps: int = 500) -> L1Logistic:
    """``min (1/P) Σ BCE(x̂·w + b, y) + l1·‖w‖₁`` by FISTA (module docstring), ``x̂`` the
    standardised features, step ``1/Lip`` with ``Lip = λ_max(x̂ᵀx̂/P)/4 + ¼`` (the bias).

    >>> x = np.array([[0.], [1.], [2.], [3.]]); y = np.array([0, 0, 1, 1])
    >>> m = fit_l1_logistic(x, y, l1=1e-4)
    >>> (m.decision_function(x) > 0).astype(int).tolist()
    [0, 0, 1, 1]

    Raises:
        ValueError: for mismatched shapes, labels other than 0/1, or ``l1 < 0``.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"x must be [P, I] and y [P], got {x.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must hold 0/1 labels")
    if l1 < 0:
        raise ValueError(f"l1 must be >= 0, got {l1!r}")
    mean, std = x.mean(0), x.std(0)
    scale = np.where(std > 0, std, 1.0)
    xs = (x - mean) / scale
    lip = np.linalg.eigvalsh(xs.T @ xs / len(xs)).max() / 4 + 0.25
    w, b = _fista(jnp.asarray(xs, jnp.float32), jnp.asarray(y, jnp.float32),
                  float(l1), float(1.0 / lip), int(steps))
    return L1Logistic(np.asarray(w, np.float64), float(b), mean, scale)


@functools.partial(jax.jit, static_argnums=(4,))
def _fista(x, y, l1, lr, steps):
    def loss(wb):
        z = x @ wb[0] + wb[1]
        return jnp.mean(optax.sigmoid_binary_cross_entropy(z, y))

    def body(_, carry):
        wb, prev, t = carry
        g = jax.grad(loss)(wb)
        w = wb[0] - lr * g[0]
        w = jnp.sign(w) * jnp.maximum(jnp.abs(w) - lr * l1, 0.0)
        new = (w, wb[1] - lr * g[1])
        t_next = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
        momentum = (t - 1) / t_next
        look = jax.tree.map(lambda a, p: a + momentum * (a - p), new, prev)
        return look, new, t_next

    start = (jnp.zeros(x.shape[1]), jnp.zeros(()))
    _, wb, _ = jax.lax.fori_loop(0, steps, body, (start, start, jnp.ones(())))
    return wb


# --- the run -----------------------------------------------------------------------------------

def mi_apc_cached(family, cache_dir: str | None = None, *, max_sequences: int | None = None,
                  seed: int = 0) -> Float[np.ndarray, "T T"]:
    """:func:`zoo.bio.contacts.mi_apc` of the family's alignment (sequence weights θ 0.8;
    at most ``max_sequences`` rows drawn with ``seed``), kept as
    ``<cache_dir>/mi_apc_<pfam>[_<max_sequences>_<seed>].npy`` when ``cache_dir`` is given."""
    tag = f"_{max_sequences}_{seed}" if max_sequences is not None else ""
    path = Path(cache_dir) / f"mi_apc_{family.pfam_id}{tag}.npy" if cache_dir else None
    if path is not None and path.is_file():
        return np.load(path)
    x = family.alignment.encoded()
    if max_sequences is not None and len(x) > max_sequences:
        x = x[np.sort(np.random.default_rng(seed).permutation(len(x))[:max_sequences])]
    scores = _contacts.mi_apc(x, _msa.sequence_weights(x))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, scores)
    return scores


def attention_predictors(params, cfg: transformer.Config, families: dict, *,
                         l1: float = 1e-3, homologs: int = 0, seed: int = 0,
                         progress: bool = True) -> dict:
    """The attention predictors, chosen and fitted on :data:`TRAIN_FAMILIES`.

    ``homologs`` 0 reads the maps of each domain sequence (:func:`family_head_maps`);
    ``homologs ≥ 1`` their averages over the domain and up to ``homologs − 1`` alignment
    rows drawn with ``seed`` (:func:`homolog_head_maps`), for the training families (the
    head choice and the regression) as for the held-out ones, and the method names end in
    ``" (<homologs> homologs)"``.

    Returns a dict: ``maps`` ``{pfam: [I, T, T]}`` head maps, ``head_train`` ``[I]`` each
    head's mean long-range P@L/5 on the training families, ``best_head`` its argmax, the
    fitted ``logistic`` (:class:`L1Logistic`) and ``scores`` ``{method: {pfam: [T, T]}}``
    for ``"best head"``, ``"mean of heads"`` and ``"supervised attention"``.

    Raises:
        ValueError: if ``homologs < 0``.
    """
    if homologs < 0:
        raise ValueError(f"homologs must be >= 0 (0: the domain sequence alone), got "
                         f"{homologs!r}")
    bar = _progress(families.items(), progress, "attention maps")
    maps = {p: (homolog_head_maps(params, cfg, f, homologs, seed=seed) if homologs
                else family_head_maps(params, cfg, f)) for p, f in bar}
    return fit_predictors(maps, families, l1=l1,
                          tag=f" ({homologs} homologs)" if homologs else "")


def fit_predictors(maps: dict, families: dict, *, l1: float = 1e-3, tag: str = "") -> dict:
    """The three attention predictors of head maps ``{pfam: [I, T, T]}`` (on alignment
    columns): the best head and the L1 logistic regression chosen and fitted on the
    :data:`TRAIN_FAMILIES` among ``maps``; method names end in ``tag``. Returns the dict
    :func:`attention_predictors` describes.

    Raises:
        ValueError: if ``maps`` holds no training family.
    """
    train = [p for p in TRAIN_FAMILIES if p in maps]
    if not train:
        raise ValueError(f"maps must hold at least one of TRAIN_FAMILIES, got {sorted(maps)}")
    head_train = np.mean([head_scores(maps[p], families[p]) for p in train], axis=0)
    best = int(np.argmax(head_train))
    xs, ys = zip(*(pair_features(maps[p], families[p]) for p in train))
    model = fit_l1_logistic(np.concatenate(xs), np.concatenate(ys), l1=l1)
    scores = {"best head" + tag: {p: m[best] for p, m in maps.items()},
              "mean of heads" + tag: {p: m.mean(0) for p, m in maps.items()},
              "supervised attention" + tag: {p: model.score_maps(m) for p, m in maps.items()}}
    return {"maps": maps, "head_train": head_train, "best_head": best, "logistic": model,
            "scores": scores}


def evaluate(scores: dict, families: dict, pfam_ids) -> list[dict]:
    """One row per (method, family) of ``scores`` ``{method: {pfam: [T, T]}}``: P@L/5 and
    P@L in the medium and long ranges, and the long-range contact density."""
    keys = ("long_P@L/5", "long_P@L", "medium_P@L/5", "medium_P@L")
    rows = []
    for method, by_family in scores.items():
        for p in pfam_ids:
            res = _contacts.family_precisions(families[p], by_family[p])
            rows.append({"method": method, "family": p,
                         "L": int((families[p].column_residue >= 0).sum()),
                         **{k: res[k] for k in keys}, "long_density": res["long_density"]})
    return rows


def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
    """``{method: {metric: mean over the rows' families}}``."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        sub = [r for r in rows if r["method"] == method]
        out[method] = {k: float(np.mean([r[k] for r in sub])) for k in sub[0]
                       if k not in ("method", "family", "L")}
    return out


def load_families(pfam_ids, root=None) -> dict:
    """``{pfam: Family}`` through :func:`zoo.bio.structure.load_family`."""
    return {p: _structure.load_family(p, root) for p in pfam_ids}


def run(settings: Settings = Settings(), *, data_dir=None, out=None, progress: bool = True,
        params: str | Path | None = None) -> dict:
    """Trains the LM on the training families (or, with ``params``, reads a
    :func:`save_params` file and trains nothing), measures its held-out perplexity, scores
    contacts from attention (the domain sequences', and their homolog averages when
    ``settings.homologs``) and MI+APC on every family, and writes the report to ``out`` (if
    given). Returns the numbers (see the keys of the dict).

    Raises:
        ValueError: if the model in ``params`` is not ``settings.model_config()``.
    """
    start = time.time()
    cfg = settings.model_config()
    saved = None if params is None else _saved_params(params, cfg)     # its error, early
    families = load_families(TRAIN_FAMILIES + HELDOUT_FAMILIES, data_dir)
    rng = np.random.default_rng(settings.seed)
    train_seqs = family_sequences([families[p] for p in TRAIN_FAMILIES],
                                  settings.per_family, rng)
    test_seqs = family_sequences([families[p] for p in HELDOUT_FAMILIES],
                                 settings.heldout_per_family, rng)
    if saved is None:
        weights, history = train(settings, train_seqs, progress=progress)
    else:
        weights, history = saved, []
    preds = [attention_predictors(weights, cfg, families, l1=settings.l1, homologs=k,
                                  seed=settings.seed, progress=progress)
             for k in dict.fromkeys((0, settings.homologs))]
    scores = {"MI+APC": {p: mi_apc_cached(f, settings.cache_dir, seed=settings.seed,
                                          max_sequences=settings.max_sequences)
                         for p, f in families.items()}}
    for pred in preds:
        scores.update(pred["scores"])
    rows = evaluate(scores, families, HELDOUT_FAMILIES)
    result = {"settings": dataclasses.asdict(settings), "history": history,
              "perplexity": masked_perplexity(weights, cfg, test_seqs, crop=settings.crop,
                                              rate=settings.mask_rate),
              "unigram_perplexity": unigram_perplexity(train_seqs, test_seqs),
              "num_train_sequences": len(train_seqs), "num_test_sequences": len(test_seqs),
              "best_head": preds[0]["best_head"], "head_train": preds[0]["head_train"].tolist(),
              "rows": rows, "summary": summarize(rows), "params": weights,
              "params_from": None if params is None else str(params),
              "seconds": time.time() - start}
    if out is not None:
        write_report(result, preds, scores, families, Path(out))
    return result


def _saved_params(path, cfg, load=None) -> dict:
    """``load(path)`` (default :func:`load_params`), checked to be a model of ``cfg``."""
    params, saved = (load or load_params)(path)
    if saved != cfg:
        raise ValueError(f"params: {path} holds a model of {saved}, the settings ask for {cfg}")
    return params


def save_params(params, path: Path, cfg: transformer.Config) -> None:
    """The parameters as float16 ``.npz`` (keys ``a/b/c`` paths) with the config in
    ``__config__``."""
    flat = {"/".join(str(k.key) for k in kp): np.asarray(v, np.float16)
            for kp, v in jax.tree_util.tree_leaves_with_path(params)}
    np.savez_compressed(path, __config__=json.dumps(dataclasses.asdict(cfg)), **flat)


def load_params(path) -> tuple[dict, transformer.Config]:
    """Reads :func:`save_params`' file: ``(params as float32, config)``."""
    with np.load(path) as data:
        cfg = transformer.Config(**json.loads(str(data["__config__"])))
        params = {}
        for name in data.files:
            if name == "__config__":
                continue
            node, *keys, leaf = [params] + name.split("/")
            for k in keys:
                node = node.setdefault(k, {})
            node[leaf] = jnp.asarray(data[name], jnp.float32)
    return params, cfg


METRICS = ("long_P@L/5", "long_P@L", "medium_P@L/5", "medium_P@L")


def markdown_tables(rows: list[dict]) -> list[str]:
    """The mean table (one row per method) and the per-family table of ``rows``."""
    summary = summarize(rows)
    lines = ["| method | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for method, res in summary.items():
        lines.append(f"| {method} | " + " | ".join(f"{res[k]:.3f}" for k in METRICS) + " |")
    methods = list(summary)
    lines += ["", "Long-range P@L/5 per held-out family (L structured residues; density = "
              "the fraction of long-range pairs in contact, a random predictor's precision):",
              "", "| family | L | density | " + " | ".join(methods) + " |",
              "|---|---|---|" + "---|" * len(methods)]
    for p in dict.fromkeys(r["family"] for r in rows):
        sub = {r["method"]: r for r in rows if r["family"] == p}
        first = next(iter(sub.values()))
        lines.append(f"| {p} | {first['L']} | {first['long_density']:.3f} | "
                     + " | ".join(f"{sub[m]['long_P@L/5']:.3f}" for m in methods) + " |")
    return lines


def write_csv(rows: list[dict], path: Path) -> None:
    """``rows`` as CSV (the keys of the first row as header)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_contact_maps(scores: dict, families: dict, pfam_ids, path: Path,
                      methods=("MI+APC", "supervised attention")) -> None:
    """For each family a row of panels, one per method: the true contacts (grey, lower
    triangle) and each method's top-L predictions with ``|i − j| ≥ 6`` (upper triangle;
    green a contact, red not)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(pfam_ids), len(methods),
                             figsize=(3.2 * len(methods), 3.2 * len(pfam_ids)), squeeze=False)
    for r, p in enumerate(pfam_ids):
        fam = families[p]
        cols = np.flatnonzero(fam.column_residue >= 0)
        true = fam.contacts()[np.ix_(cols, cols)]
        pos = fam.column_residue[cols]
        for c, method in enumerate(methods):
            ax = axes[r, c]
            n = len(cols)
            lower = np.tril(true > 0, -1)
            ax.imshow(np.where(lower, 0.75, 1.0), cmap="gray", vmin=0, vmax=1)
            s = np.asarray(scores[method][p])[np.ix_(cols, cols)]
            i, j = np.triu_indices(n, 1)
            keep = np.abs(pos[j] - pos[i]) >= MIN_SEP
            i, j = i[keep], j[keep]
            top = np.argsort(-s[i, j])[:n]
            hit = true[i[top], j[top]] > 0
            ax.scatter(j[top][hit], i[top][hit], s=4, c="tab:green")
            ax.scatter(j[top][~hit], i[top][~hit], s=4, c="tab:red")
            res = _contacts.family_precisions(fam, scores[method][p])
            ax.set_title(f"{p} {method}\nlong P@L/5 {res['long_P@L/5']:.2f}", fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_heads(head_train: np.ndarray, num_layers: int, path: Path) -> None:
    """A layers × heads grid of each head's mean long-range P@L/5 on the training
    families (the course's figure of the head that tracks contacts)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    grid = np.asarray(head_train).reshape(num_layers, -1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * grid.shape[1], 1.0 + 0.5 * num_layers))
    im = ax.imshow(grid, cmap="viridis")
    for (l, n), v in np.ndenumerate(grid):
        ax.text(n, l, f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="white" if v < grid.max() * 0.7 else "black")
    ax.set_xlabel("head"), ax.set_ylabel("layer")
    ax.set_xticks(range(grid.shape[1])), ax.set_yticks(range(num_layers))
    ax.set_title("long-range P@L/5 per head\n(APC maps, training families)", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: dict, preds: list[dict], scores: dict, families: dict,
                 out: Path) -> None:
    """``report.md``, ``per_family.csv``, ``heads.png``, ``contact_maps.png`` and (for a
    trained model) the parameters ``protein_lm_params.npz`` in ``out``; ``preds`` the
    :func:`attention_predictors` of the run, the domain sequences' first."""
    out.mkdir(parents=True, exist_ok=True)
    s = Settings(**result["settings"])
    cfg = s.model_config()
    write_csv(result["rows"], out / "per_family.csv")
    plot_heads(preds[0]["head_train"], cfg.num_layers, out / "heads.png")
    shown = HELDOUT_FAMILIES[:3]
    tag = f" ({s.homologs} homologs)" if s.homologs else ""
    plot_contact_maps(scores, families, shown, out / "contact_maps.png",
                      methods=("MI+APC", "best head", "supervised attention")
                      + (("supervised attention" + tag,) if tag else ()))
    if result["params_from"] is None:
        save_params(result["params"], out / "protein_lm_params.npz", cfg)
    lines = [
        "# Protein masked LM and contacts from attention", "",
        f"Command: `{_command()}`", "",
        f"Settings: `{json.dumps(result['settings'])}`; model: {cfg.num_layers} layers, "
        f"d_model {cfg.d_model}, {cfg.num_heads} heads, d_ff {cfg.d_ff}, pre-norm, "
        f"{_count(result['params']):,} parameters.", "",
        f"Split (fixed, `zoo.bio.protein_lm`): training families {', '.join(TRAIN_FAMILIES)}; "
        f"held-out families {', '.join(HELDOUT_FAMILIES)}.", "",
        f"Wall time {result['seconds'] / 60:.1f} min on a shared 2-core CPU; one run, "
        f"seed {s.seed}.", "",
        *_lm_lines(result, s),
        "## Contacts on the held-out families", "",
        "Mean over the 10 held-out families (contacts: Cβ < 8 Å, Cα for glycine; long "
        "range |i − j| ≥ 24, medium 12–23):", "",
        *markdown_tables(result["rows"]), "",
        *(_predictor_line(pred, cfg, s.l1, k) for k, pred in zip((0, s.homologs), preds)),
        "`heads.png` shows every head of the domain sequences' maps. `contact_maps.png`: true "
        "contacts (grey, lower triangle) and each method's top-L predictions (upper "
        f"triangle) for {', '.join(shown)}.", "",
        *(_goal(result["summary"], "supervised attention" + t, ("MI+APC",)) + "\n"
          for t in dict.fromkeys(("", tag)))]
    (out / "report.md").write_text("\n".join(lines))


def _lm_lines(result: dict, s: Settings) -> list[str]:
    """The report's masked-LM section: how the model was trained (or where it was read
    from) and its held-out perplexity."""
    how = provenance_lines(result, f"{result['num_train_sequences']} training sequences "
                           f"(≤ {s.per_family} per training family, random windows of ≤ "
                           f"{s.crop} residues), {s.steps} steps of {s.batch_size}; BERT "
                           "masking 15% (80/10/10).")
    return ["## Masked LM", "", *how,
            f"Held-out masked-token perplexity ({result['num_test_sequences']} sequences, "
            f"≤ {s.heldout_per_family} per held-out family): **{result['perplexity']:.2f}** "
            f"(amino-acid frequencies alone: {result['unigram_perplexity']:.2f}; uniform "
            "over 20: 20).", ""]


def provenance_lines(result: dict, how: str) -> list[str]:
    """Report lines on where a run's parameters came from: ``how`` it trained them and
    every tenth entry of ``result["history"]``, or the :func:`save_params`-style file
    ``result["params_from"]`` they were read from."""
    if result["params_from"] is not None:
        return [f"Parameters read from `{result['params_from']}` (float16 as saved); not "
                "retrained.", ""]
    history = result["history"][::max(len(result["history"]) // 10, 1)]
    return [how, "", "Training loss (step: mean masked cross-entropy, nats): "
            + ", ".join(f"{st}: {v:.3f}" for st, v in history) + ".", ""]


def _predictor_line(pred: dict, cfg: transformer.Config, l1: float, homologs: int) -> str:
    """One paragraph on the head choice and the regression of ``pred``."""
    best, model = pred["best_head"], pred["logistic"]
    layer, head = divmod(best, cfg.num_heads)
    maps = (f"averaged over the domain and up to {homologs - 1} alignment rows "
            f"(\"{homologs} homologs\")" if homologs else "of the domain sequence")
    return (f"Maps {maps}: best head (chosen on the training families) layer {layer}, head "
            f"{head} (mean long-range P@L/5 {pred['head_train'][best]:.3f} on training "
            f"families); the supervised head is an L1 logistic regression (λ {l1}) over the "
            f"{len(model.w_i)} APC maps, fitted on the pairs |i − j| ≥ 6 of the 30 training "
            f"families; {int((np.abs(model.w_i) > 0).sum())} weights are non-zero.\n")


def _goal(summary: dict, method: str, others) -> str:
    """One line: does ``method`` beat each of ``others`` in held-out long-range P@L/5."""
    key = "long_P@L/5"
    mine = summary[method][key]
    parts = [f"{o} {summary[o][key]:.3f}" for o in others if o in summary]
    met = all(mine > summary[o][key] for o in others if o in summary)
    return (f"Goal ({method} beats {', '.join(o for o in others if o in summary)} on held-out "
            f"long-range P@L/5): **{'met' if met else 'not met'}** ({method} {mine:.3f}; "
            + "; ".join(parts) + ").")


def _count(params) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(params)))


def _command() -> str:
    return "python -m zoo.bio.protein_lm " + " ".join(sys.argv[1:])


def _progress(it, enabled: bool, desc: str):
    if not enabled:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, mininterval=5, leave=False)


def app_parser(prog: str, doc: str, app: str) -> argparse.ArgumentParser:
    """The options the contact applications share: ``--quick``, ``--data-dir``, ``--out``
    (default ``benchmarks/results/bio/<app>``), ``--seed`` and ``--steps``."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (minutes)")
    parser.add_argument("--data-dir", default=None, help="the data root (default $ZOO_DATA)")
    parser.add_argument("--out", default=f"benchmarks/results/bio/{app}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="override the step count")
    return parser


def main(argv=None) -> int:
    """``zoo bio contacts [--quick] [--data-dir D] [--out O] [--seed S] [--steps N]
    [--cache-dir C] [--homologs K] [--params P]``; ``--params`` scores a saved model (e.g.
    the committed ``protein_lm_params.npz``) without training it."""
    parser = app_parser("zoo bio contacts", __doc__, APP)
    parser.add_argument("--cache-dir", default=None, help="keep MI+APC maps here")
    parser.add_argument("--homologs", type=int, default=0, metavar="K", help="also score "
                        "attention averaged over the domain and up to K-1 alignment rows "
                        "(0: off)")
    parser.add_argument("--params", default=None, metavar="NPZ", help="score this "
                        "save_params file (e.g. "
                        f"benchmarks/results/bio/{APP}/protein_lm_params.npz) instead of "
                        "training; --steps is then unused")
    args = parser.parse_args(argv)
    if args.homologs < 0:
        parser.error(f"--homologs must be >= 0 (0: the domain sequence alone), got "
                     f"{args.homologs}")
    settings = QUICK if args.quick else Settings()
    changes = {"seed": args.seed, "cache_dir": args.cache_dir, "homologs": args.homologs}
    if args.steps is not None:
        changes["steps"] = args.steps
    settings = dataclasses.replace(settings, **changes)
    from zoo.data import data_dir
    data_dir(_structure.DATASET, root=args.data_dir)      # the clear error, early
    result = run(settings, data_dir=args.data_dir, out=args.out, params=args.params)
    for method, res in result["summary"].items():
        print(f"{method:36} " + " ".join(f"{k} {res[k]:.3f}" for k in METRICS))
    print(f"held-out perplexity {result['perplexity']:.2f}; report in {args.out}")
    return 0


__all__ = ["HELDOUT_FAMILIES", "TRAIN_FAMILIES", "Settings", "QUICK", "split_families",
           "mask_tokens", "crop_batch", "family_sequences", "train", "masked_perplexity",
           "unigram_perplexity", "head_maps", "family_head_maps", "homolog_rows",
           "homolog_sequences", "place_on_columns", "HOMOLOG_BATCH", "homolog_head_maps",
           "head_scores",
           "pair_features", "L1Logistic", "fit_l1_logistic", "mi_apc_cached",
           "attention_predictors", "fit_predictors", "evaluate", "summarize", "load_families", "run",
           "provenance_lines",
           "save_params", "load_params", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
