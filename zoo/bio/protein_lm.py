"""A protein masked language model on Pfam domains, and residue contacts from its attention.

**Split.** The fixed split of :mod:`zoo.bio.contact_eval`: the LM trains on the 30
:data:`~zoo.bio.contact_eval.TRAIN_FAMILIES`, and every contact number of the report is on the
10 :data:`~zoo.bio.contact_eval.HELDOUT_FAMILIES`.

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
and give the predictors of :func:`zoo.bio.contact_eval.fit_predictors` (best head, mean of
heads, and an L1 logistic regression over the heads fitted on the training families, as in Rao
et al.), beside the MI+APC baseline of the alignment (:func:`zoo.bio.contacts.mi_apc`).

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

>>> Settings().model_config().kind, QUICK.steps
('encoder', 150)

References:
    J. Devlin, M.-W. Chang, K. Lee, K. Toutanova, "BERT: Pre-training of Deep Bidirectional
    Transformers for Language Understanding", NAACL 2019. https://arxiv.org/abs/1810.04805
    R. Rao, J. Meier, T. Sercu, S. Ovchinnikov, A. Rives, "Transformer protein language models
    are unsupervised structure learners", ICLR 2021. https://doi.org/10.1101/2020.12.15.422761
    J. Vig, A. Madani, L. R. Varshney, C. Xiong, R. Socher, N. F. Rajani, "BERTology Meets
    Biology: Interpreting Attention in Protein Language Models", ICLR 2021.
    https://arxiv.org/abs/2006.15222
"""

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
from zoo.bio import contact_eval as _eval
from zoo.bio import contacts as _contacts
from zoo.bio import msa as _msa
from zoo.bio import structure as _structure
from zoo.bio import tokenizers as _tok

#: Token ids of the 20 standard amino acids (the random replacements of the masking).
AMINO_IDS = (5, 25)
APP = "contacts/protein_lm"




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
    bar = _eval.progress_bar(range(settings.steps), progress, "masked LM")
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












# --- the run -----------------------------------------------------------------------------------



def attention_predictors(params, cfg: transformer.Config, families: dict, *,
                         l1: float = 1e-3, homologs: int = 0, seed: int = 0,
                         progress: bool = True) -> dict:
    """The attention predictors, chosen and fitted on the training families
    (:func:`zoo.bio.contact_eval.fit_predictors`).

    ``homologs`` 0 reads the maps of each domain sequence (:func:`family_head_maps`);
    ``homologs ≥ 1`` their averages over the domain and up to ``homologs − 1`` alignment
    rows drawn with ``seed`` (:func:`homolog_head_maps`), for the training families (the
    head choice and the regression) as for the held-out ones, and the method names end in
    ``" (<homologs> homologs)"``.

    Returns a dict: ``maps`` ``{pfam: [I, T, T]}`` head maps, ``head_train`` ``[I]`` each
    head's mean long-range P@L/5 on the training families, ``best_head`` its argmax, the
    fitted ``logistic`` (:class:`zoo.bio.contact_eval.L1Logistic`) and ``scores``
    ``{method: {pfam: [T, T]}}`` for ``"best head"``, ``"mean of heads"`` and
    ``"supervised attention"``.

    Raises:
        ValueError: if ``homologs < 0``.
    """
    if homologs < 0:
        raise ValueError(f"homologs must be >= 0 (0: the domain sequence alone), got "
                         f"{homologs!r}")
    bar = _eval.progress_bar(families.items(), progress, "attention maps")
    maps = {p: (homolog_head_maps(params, cfg, f, homologs, seed=seed) if homologs
                else family_head_maps(params, cfg, f)) for p, f in bar}
    return _eval.fit_predictors(maps, families, l1=l1,
                                tag=f" ({homologs} homologs)" if homologs else "")










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
    saved = (None if params is None                          # its error, early
             else _eval.saved_params(params, cfg, load_params))
    families = _eval.load_families(_eval.TRAIN_FAMILIES + _eval.HELDOUT_FAMILIES, data_dir)
    rng = np.random.default_rng(settings.seed)
    train_seqs = family_sequences([families[p] for p in _eval.TRAIN_FAMILIES],
                                  settings.per_family, rng)
    test_seqs = family_sequences([families[p] for p in _eval.HELDOUT_FAMILIES],
                                 settings.heldout_per_family, rng)
    if saved is None:
        weights, history = train(settings, train_seqs, progress=progress)
    else:
        weights, history = saved, []
    preds = [attention_predictors(weights, cfg, families, l1=settings.l1, homologs=k,
                                  seed=settings.seed, progress=progress)
             for k in dict.fromkeys((0, settings.homologs))]
    scores = {"MI+APC": {p: _eval.mi_apc_cached(f, settings.cache_dir, seed=settings.seed,
                                                max_sequences=settings.max_sequences)
                         for p, f in families.items()}}
    for pred in preds:
        scores.update(pred["scores"])
    rows = _eval.evaluate(scores, families, _eval.HELDOUT_FAMILIES)
    result = {"settings": dataclasses.asdict(settings), "history": history,
              "perplexity": masked_perplexity(weights, cfg, test_seqs, crop=settings.crop,
                                              rate=settings.mask_rate),
              "unigram_perplexity": unigram_perplexity(train_seqs, test_seqs),
              "num_train_sequences": len(train_seqs), "num_test_sequences": len(test_seqs),
              "best_head": preds[0]["best_head"], "head_train": preds[0]["head_train"].tolist(),
              "rows": rows, "summary": _eval.summarize(rows), "params": weights,
              "params_from": None if params is None else str(params),
              "seconds": time.time() - start}
    if out is not None:
        write_report(result, preds, scores, families, Path(out))
    return result




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












def write_report(result: dict, preds: list[dict], scores: dict, families: dict,
                 out: Path) -> None:
    """``report.md``, ``per_family.csv``, ``heads.png``, ``contact_maps.png`` and (for a
    trained model) the parameters ``protein_lm_params.npz`` in ``out``; ``preds`` the
    :func:`attention_predictors` of the run, the domain sequences' first."""
    out.mkdir(parents=True, exist_ok=True)
    s = Settings(**result["settings"])
    cfg = s.model_config()
    _eval.write_csv(result["rows"], out / "per_family.csv")
    _eval.plot_heads(preds[0]["head_train"], cfg.num_layers, out / "heads.png")
    shown = _eval.HELDOUT_FAMILIES[:3]
    tag = f" ({s.homologs} homologs)" if s.homologs else ""
    _eval.plot_contact_maps(scores, families, shown, out / "contact_maps.png",
                            methods=("MI+APC", "best head", "supervised attention")
                            + (("supervised attention" + tag,) if tag else ()))
    if result["params_from"] is None:
        save_params(result["params"], out / "protein_lm_params.npz", cfg)
    lines = [
        "# Protein masked LM and contacts from attention", "",
        f"Command: `{_command()}`", "",
        f"Settings: `{json.dumps(result['settings'])}`; model: {cfg.num_layers} layers, "
        f"d_model {cfg.d_model}, {cfg.num_heads} heads, d_ff {cfg.d_ff}, pre-norm, "
        f"{_eval.count_params(result['params']):,} parameters.", "",
        f"Split (fixed, `zoo.bio.contact_eval`): training families "
        f"{', '.join(_eval.TRAIN_FAMILIES)}; held-out families "
        f"{', '.join(_eval.HELDOUT_FAMILIES)}.", "",
        f"Wall time {result['seconds'] / 60:.1f} min on a shared 2-core CPU; one run, "
        f"seed {s.seed}.", "",
        *_lm_lines(result, s),
        "## Contacts on the held-out families", "",
        "Mean over the 10 held-out families (contacts: Cβ < 8 Å, Cα for glycine; long "
        "range |i − j| ≥ 24, medium 12–23):", "",
        *_eval.markdown_tables(result["rows"]), "",
        *(_predictor_line(pred, cfg, s.l1, k) for k, pred in zip((0, s.homologs), preds)),
        "`heads.png` shows every head of the domain sequences' maps. `contact_maps.png`: true "
        "contacts (grey, lower triangle) and each method's top-L predictions (upper "
        f"triangle) for {', '.join(shown)}.", "",
        *(_eval.goal_line(result["summary"], "supervised attention" + t, ("MI+APC",)) + "\n"
          for t in dict.fromkeys(("", tag)))]
    (out / "report.md").write_text("\n".join(lines))


def _lm_lines(result: dict, s: Settings) -> list[str]:
    """The report's masked-LM section: how the model was trained (or where it was read
    from) and its held-out perplexity."""
    how = _eval.provenance_lines(result, f"{result['num_train_sequences']} training "
                                 f"sequences (≤ {s.per_family} per training family, random "
                                 f"windows of ≤ {s.crop} residues), {s.steps} steps of "
                                 f"{s.batch_size}; BERT masking 15% (80/10/10).")
    return ["## Masked LM", "", *how,
            f"Held-out masked-token perplexity ({result['num_test_sequences']} sequences, "
            f"≤ {s.heldout_per_family} per held-out family): **{result['perplexity']:.2f}** "
            f"(amino-acid frequencies alone: {result['unigram_perplexity']:.2f}; uniform "
            "over 20: 20).", ""]




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






def _command() -> str:
    return "python -m zoo.bio.protein_lm " + " ".join(sys.argv[1:])






def main(argv=None) -> int:
    """``zoo bio contacts [--quick] [--data-dir D] [--out O] [--seed S] [--steps N]
    [--cache-dir C] [--homologs K] [--params P]``; ``--params`` scores a saved model (e.g.
    the committed ``protein_lm_params.npz``) without training it."""
    parser = _eval.app_parser("zoo bio contacts", __doc__, APP)
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
    _eval.print_summary(result["summary"])
    print(f"held-out perplexity {result['perplexity']:.2f}; report in {args.out}")
    return 0


__all__ = ["Settings", "QUICK", "AMINO_IDS", "mask_tokens", "crop_batch", "family_sequences",
           "train", "masked_perplexity", "unigram_perplexity", "head_maps", "family_head_maps",
           "homolog_rows", "homolog_sequences", "place_on_columns", "HOMOLOG_BATCH",
           "homolog_head_maps", "attention_predictors", "run", "save_params", "load_params",
           "write_report", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
