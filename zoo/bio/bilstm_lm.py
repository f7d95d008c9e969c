"""A two-sided BiLSTM protein language model (Hie et al. 2021) and its viral-escape run.

Residue ``x_t`` is predicted from both sides and never from itself: a forward LSTM stack reads
``x_1 … x_{t−1}``, a backward stack reads ``x_N … x_{t+1}``, and a dense softmax head reads
their two states, concatenated::

    f_t = LSTM_fwd(e(x_1) … e(x_{t−1})),      b_t = LSTM_bwd(e(x_N) … e(x_{t+1}))
    h_t = [f_t ; b_t],                         p(x_t | x_{≠t}) = softmax(h_t W + b)

(``f_1 = b_N = 0``.) Both stacks are :mod:`zoo.rnn` unidirectional LSTM stacks: the backward
one runs on each sequence reversed within its own length, and the two outputs are shifted by
one position, so padding never changes a result. The sequence's semantic embedding is the
mean hidden state over its residues, ``z(x) = (1/N) Σ_t h_t`` (:func:`embed`), the embedding
whose ℓ1 change CSCS ranks (:mod:`zoo.bio.escape`).

The reference model is 2 layers of 512 units per direction over a 20-wide embedding
(``PRESETS["paper"]``); ``"small"`` (32-wide embedding, one layer of 128) is the size trained
on CPU here. The escape run (:func:`run`, ``python -m zoo.bio.bilstm_lm``) trains on any
protein FASTA files (``--corpus a.fasta b.fasta``; gaps and lower case of aligned FASTA are
removed), then scores every single mutant of the H1, H3, HIV Env and Spike wild types with
:func:`zoo.bio.escape.score_mutants` and reports the escape AUCs beside the paper's and
EVEscape's. Without ``--corpus`` it trains on the general protein corpus at hand (the Pfam
family alignments, gaps removed, and the DeepLoc test and setHARD proteins): no viral corpus
is openly available (``viral_escape/SOURCE.md``).

Shape letters: ``B`` batch, ``T`` positions, ``V`` vocabulary, ``I`` embedding width, ``D``
hidden width of one direction (``h_t`` is ``2D`` wide).

>>> cfg = PRESETS["tiny"]
>>> params = init(jax.random.key(0), cfg)
>>> log_probs, hidden = apply(params, jnp.array([[5, 9, 7, 0]]), jnp.array([3]), cfg)
>>> log_probs.shape, hidden.shape
((1, 4, 30), (1, 4, 16))

References:
    B. Hie, E. D. Zhong, B. Berger, B. Bryson, "Learning the language of viral evolution and
    escape", Science 371(6526):284-288, 2021. https://doi.org/10.1126/science.abd7331
    (reference code: https://github.com/brianhie/viral-mutation, ``bin/language_model.py``)
"""

import argparse
import dataclasses
import functools
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from zoo import _checks, rnn
from zoo.bio import tokenizers
from zoo.types import Params


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """BiLSTM language-model sizes.

    Attributes:
        vocab_size: ``V`` (30 for :class:`zoo.bio.tokenizers.ProteinTokenizer`, 20 for the
            :class:`~zoo.bio.tokenizers.NucleotideTokenizer`).
        embed_dim: ``I``, the residue embedding width.
        hidden_dim: ``D``, the LSTM width of each direction.
        num_layers: LSTM layers of each direction.
        dtype: computation dtype (params stay float32).
    """
    vocab_size: int = 30
    embed_dim: int = 32
    hidden_dim: int = 128
    num_layers: int = 1
    dtype: str = "float32"

    def __post_init__(self):
        _checks.positive_int(self.vocab_size, "vocab_size", minimum=2)
        _checks.positive_int(self.embed_dim, "embed_dim")
        _checks.positive_int(self.hidden_dim, "hidden_dim")
        _checks.positive_int(self.num_layers, "num_layers")
        _checks.dtype_name(self.dtype)

    @property
    def stack(self) -> rnn.Config:
        """The :mod:`zoo.rnn` config of one direction's stack."""
        return rnn.Config(cell="lstm", in_dim=self.embed_dim, hidden_dim=self.hidden_dim,
                          num_layers=self.num_layers, output="sequence", dtype=self.dtype)


PRESETS: dict[str, Config] = {
    "tiny": Config(embed_dim=6, hidden_dim=8, num_layers=2),
    # The CPU-sized model of the committed escape run.
    "small": Config(embed_dim=32, hidden_dim=64, num_layers=1),
    # Hie et al. 2021: 2 layers of 512 per direction over a 20-wide embedding.
    "paper": Config(embed_dim=20, hidden_dim=512, num_layers=2),
}


def init(key: jax.Array, cfg: Config) -> Params:
    """Embedding ``N(0, 1)``, each direction's stack as :func:`zoo.rnn.init`, head uniform.

    >>> p = init(jax.random.key(0), PRESETS["tiny"])
    >>> p["embed_vi"].shape, p["head"]["w"].shape
    ((30, 6), (16, 30))
    """
    k_e, k_f, k_b, k_w = jax.random.split(key, 4)
    bound = 1.0 / np.sqrt(2 * cfg.hidden_dim)
    w = jax.random.uniform(k_w, (2 * cfg.hidden_dim, cfg.vocab_size), jnp.float32,
                           -bound, bound)
    return {"embed_vi": jax.random.normal(k_e, (cfg.vocab_size, cfg.embed_dim), jnp.float32),
            "fwd": rnn.init(k_f, cfg.stack), "bwd": rnn.init(k_b, cfg.stack),
            "head": {"w": w, "b": jnp.zeros((cfg.vocab_size,), jnp.float32)}}


def apply(params: Params, tokens: Int[Array, "B T"], lengths: Int[Array, "B"] | None,
          cfg: Config) -> tuple[Float[Array, "B T V"], Float[Array, "B T 2D"]]:
    """Log-probabilities of every residue from both sides, and the hidden states ``h_t``.

    Args:
        params: from :func:`init`.
        tokens: ``[B, T]`` token ids, padded after each length.
        lengths: ``[B]`` residues per sequence (``None``: all ``T``).
        cfg: the model's config.

    Returns:
        ``(log_probs [B, T, V], hidden [B, T, 2D])``; ``log_probs[b, t]`` does not depend on
        ``tokens[b, t]``; ``hidden`` is zero on padding.

    Raises:
        ValueError: ``tokens`` not ``[B, T]`` or ids outside ``[0, V)``, ``lengths`` not
            ``[B]`` (or outside ``[0, T]``), params of another config.
    """
    _checks.check_params(params, init, cfg)
    _checks.check_array(tokens, "tokens", rank=2, letters="B T", kind="int", nonempty=True)
    _checks.in_range(tokens, "tokens", 0, cfg.vocab_size - 1, what="token ids")
    if lengths is None:
        lengths = jnp.full(tokens.shape[:1], tokens.shape[1], jnp.int32)
    _checks.check_array(lengths, "lengths", shape=tokens.shape[:1], letters="B", kind="int")
    return _apply(params, tokens, lengths, cfg)


@functools.partial(jax.jit, static_argnums=3)
def _apply(params, tokens, lengths, cfg):
    hidden = _hidden(params, tokens, lengths, cfg)
    head = params["head"]
    logits = hidden @ head["w"].astype(hidden.dtype) + head["b"].astype(hidden.dtype)
    return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), hidden


def _hidden(params, tokens, lengths, cfg):
    """``h_t = [f_t ; b_t]`` ``[B, T, 2D]``, zero on padding."""
    x = params["embed_vi"].astype(cfg.dtype)[tokens]                       # [B, T, I]
    f = rnn.apply(params["fwd"], x, lengths, cfg.stack)                     # state after x_≤t
    b = reverse_padded(rnn.apply(params["bwd"], reverse_padded(x, lengths), lengths,
                                 cfg.stack), lengths)                       # state after x_≥t
    zero = jnp.zeros_like(f[:, :1])
    f = jnp.concatenate([zero, f[:, :-1]], axis=1)                          # after x_<t
    b = jnp.concatenate([b[:, 1:], zero], axis=1)                           # after x_>t
    mask = (jnp.arange(tokens.shape[1])[None] < lengths[:, None])[..., None]
    return jnp.where(mask, jnp.concatenate([f, b], axis=-1), 0)


def embed(params: Params, tokens: Int[Array, "B T"], lengths: Int[Array, "B"] | None,
          cfg: Config) -> Float[Array, "B 2D"]:
    """The semantic embedding ``z = (1/N) Σ_{t ≤ N} h_t`` of each sequence ``[B, 2D]``.

    >>> cfg = PRESETS["tiny"]
    >>> embed(init(jax.random.key(0), cfg), jnp.array([[5, 6, 0]]), jnp.array([2]), cfg).shape
    (1, 16)
    """
    if lengths is None:
        lengths = jnp.full(jnp.shape(tokens)[:1], jnp.shape(tokens)[1], jnp.int32)
    _, hidden = apply(params, tokens, lengths, cfg)
    return hidden.sum(1) / jnp.maximum(lengths, 1)[:, None].astype(hidden.dtype)


def loss(params: Params, tokens: Int[Array, "B T"], lengths: Int[Array, "B"],
         cfg: Config) -> jax.Array:
    """Mean negative log-likelihood of the residues (padding excluded), in nats."""
    log_probs, _ = _apply(params, tokens, lengths, cfg)
    mask = jnp.arange(tokens.shape[1])[None] < lengths[:, None]
    nll = -jnp.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
    return jnp.sum(nll * mask) / jnp.maximum(mask.sum(), 1)


def reverse_padded(x: Float[Array, "B T ..."], lengths: Int[Array, "B"]) -> Array:
    """Each sequence of ``x`` reversed within its own length; padding stays in place.

    >>> reverse_padded(jnp.array([[1, 2, 3, 0]]), jnp.array([3])).tolist()
    [[3, 2, 1, 0]]
    """
    t = jnp.arange(x.shape[1])[None, :]                                    # [1, T]
    src = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)     # [B, T]
    return jnp.take_along_axis(x, src.reshape(src.shape + (1,) * (x.ndim - 2)), axis=1)


# --- corpus and training -----------------------------------------------------------------------

def read_corpus(paths: Sequence[str | Path], *, min_length: int = 8) -> list[str]:
    """The protein sequences of FASTA or aligned-FASTA files: gaps (``-``, ``.``) removed,
    upper case, duplicates dropped (first kept), shorter than ``min_length`` dropped.

    Raises:
        ValueError: if ``paths`` is empty or the files hold no sequence long enough.
        FileNotFoundError: for a missing file.
    """
    from zoo.data import read_fasta
    if isinstance(paths, str | Path) or not paths:
        raise ValueError(f"paths must be a non-empty list of FASTA files, got {paths!r}")
    seen, out = set(), []
    for path in paths:
        for r in read_fasta(path):
            s = r["sequence"].replace("-", "").replace(".", "").upper()
            if len(s) >= min_length and s not in seen:
                seen.add(s)
                out.append(s)
    if not out:
        raise ValueError(f"paths hold no sequence of at least {min_length} residues: {paths}")
    return out


def default_corpus(data_dir=None) -> list[Path]:
    """The general protein corpus at hand: the 40 Pfam family alignments and the DeepLoc
    test and setHARD proteins (the 1,678 DeepLoc training proteins are kept out, for the
    embedding probe of :mod:`zoo.bio.embeddings`)."""
    from zoo.data import data_dir as find
    pfam = sorted((find("pfam_domains_structures", root=data_dir) / "alignments").glob("*"))
    loc = find("deeploc", root=data_dir)
    return pfam + [loc / "deeploc_test_set.fasta", loc / "setHARD.fasta"]


def encode_corpus(seqs: Sequence[str], tokenizer=None) -> list[np.ndarray]:
    """Token ids of each sequence (letters outside the alphabet become ``<unk>``)."""
    tok = tokenizer or tokenizers.ProteinTokenizer(unknown="map")
    return [tok.encode(s) for s in seqs]


def sample_batch(rng: np.random.Generator, corpus: Sequence[np.ndarray], batch_size: int,
                 max_length: int, bucket: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A random batch: random sequences, each cropped to a random window of at most
    ``max_length``, right-padded to the batch's longest rounded up to ``bucket``.

    Returns:
        ``(tokens [B, T] int32, lengths [B] int32)``.
    """
    rows = rng.integers(0, len(corpus), batch_size)
    crops = []
    for r in rows:
        s = corpus[r]
        start = rng.integers(0, len(s) - max_length + 1) if len(s) > max_length else 0
        crops.append(s[start:start + max_length])
    lengths = np.array([len(c) for c in crops], np.int32)
    width = min(max_length, -(-int(lengths.max()) // bucket) * bucket)
    tokens = np.zeros((batch_size, width), np.int32)
    for i, c in enumerate(crops):
        tokens[i, :len(c)] = c
    return tokens, lengths


def make_step(cfg: Config, optimizer):
    """A jitted ``step(params, opt_state, tokens, lengths) -> (params, opt_state, loss)``."""
    @jax.jit
    def step(params, opt_state, tokens, lengths):
        value, grads = jax.value_and_grad(loss)(params, tokens, lengths, cfg)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value
    return step


def train(corpus: Sequence[np.ndarray], cfg: Config, *, steps: int, batch_size: int = 32,
          max_length: int = 256, lr: float = 2e-3, seed: int = 0,
          max_seconds: float | None = None) -> tuple[Params, dict]:
    """Trains on random crops of ``corpus`` (Adam, gradient clipping at 1, cosine decay).

    Stops after ``steps`` steps or ``max_seconds`` of wall time, whichever is first. The
    progress bar shows on a terminal only.

    Returns:
        ``(params, log)`` with ``log = {"steps", "seconds", "losses" (per step)}``.
    """
    from tqdm.auto import tqdm
    _checks.positive_int(steps, "steps")
    optimizer = optax.chain(optax.clip_by_global_norm(1.0),
                            optax.adam(optax.cosine_decay_schedule(lr, steps, 0.1)))
    params = init(jax.random.key(seed), cfg)
    opt_state, step = optimizer.init(params), make_step(cfg, optimizer)
    rng, losses, start = np.random.default_rng(seed), [], time.perf_counter()
    bar = tqdm(range(steps), desc="bilstm lm", disable=None, mininterval=5)
    for _ in bar:
        tokens, lengths = sample_batch(rng, corpus, batch_size, max_length)
        params, opt_state, value = step(params, opt_state, tokens, lengths)
        losses.append(float(value))
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", refresh=False)
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    bar.close()
    return params, {"steps": len(losses), "seconds": time.perf_counter() - start,
                    "losses": losses}


def evaluate(params: Params, corpus: Sequence[np.ndarray], cfg: Config, *,
             batch_size: int = 32, max_length: int = 256) -> float:
    """Mean per-residue negative log-likelihood (nats) over the first ``max_length``
    residues of every sequence of ``corpus``."""
    total, count = 0.0, 0
    for i in range(0, len(corpus), batch_size):
        chunk = [s[:max_length] for s in corpus[i:i + batch_size]]
        lengths = np.array([len(s) for s in chunk], np.int32)
        tokens = np.zeros((len(chunk), -(-int(lengths.max()) // 64) * 64), np.int32)
        for j, s in enumerate(chunk):
            tokens[j, :len(s)] = s
        total += float(loss(params, tokens, lengths, cfg)) * int(lengths.sum())
        count += int(lengths.sum())
    return total / count


def save_params(params: Params, path: str | Path, cfg: Config) -> Path:
    """Writes ``params`` and ``cfg`` to one ``.npz`` file (keys joined by ``/``)."""
    flat = {"/".join(str(k.key) for k in kp): np.asarray(v)
            for kp, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    flat["__config__"] = np.array(repr(dataclasses.asdict(cfg)))
    np.savez(path, **flat)
    return Path(path)


def load_params(path: str | Path) -> tuple[Params, Config]:
    """Reads a file of :func:`save_params`: ``(params, cfg)``."""
    import ast
    with np.load(path) as f:
        cfg = Config(**ast.literal_eval(str(f["__config__"])))
        params: dict = {}
        for key in f.files:
            if key == "__config__":
                continue
            node, *parts = key.split("/")
            target = params.setdefault(node, {})
            for p in parts[:-1]:
                target = target.setdefault(p, {})
            if parts:
                target[parts[-1]] = jnp.asarray(f[key])
            else:
                params[node] = jnp.asarray(f[key])
    _checks.check_params(params, init, cfg)
    return params, cfg


# --- the viral-escape run ----------------------------------------------------------------------

#: Wild-type FASTA files of ``viral_escape/wildtype_sequences`` by virus; H3 has none and is
#: rebuilt from its table's ``wt`` column. The RBD is scored inside the full Spike.
WILDTYPES = {"flu_h1": "A0A2Z5U3Z0_9INFA.fasta", "hiv": "Q2N0S6_9HIV1.fasta",
             "cov": "SPIKE_SARS2.fasta"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Settings of the escape run (:func:`run`).

    Attributes:
        model: a key of :data:`PRESETS`.
        corpus: protein FASTA files to train on (empty: :func:`default_corpus`).
        max_sequences: train on a random subset of this many sequences (``None``: all).
        steps, batch_size, max_length, lr, max_seconds: training (see :func:`train`).
        viruses: keys of :data:`zoo.bio.escape.VIRUSES` to score (``"cov"`` also gives the
            RBD, ``"cov2rbd"``, from the same Spike scores).
        score_batch: mutant sequences per scoring pass.
        seed: the training seed.
    """
    model: str = "small"
    corpus: tuple[str, ...] = ()
    max_sequences: int | None = None
    steps: int = 6000
    batch_size: int = 32
    max_length: int = 128
    lr: float = 2e-3
    max_seconds: float | None = 600.0
    viruses: tuple[str, ...] = ("flu_h1", "flu_h3", "hiv", "cov")
    score_batch: int = 64
    seed: int = 0

    def __post_init__(self):
        _checks.one_of(self.model, "model", PRESETS)
        from zoo.bio import escape
        for v in self.viruses:
            _checks.one_of(v, "viruses", [k for k in escape.VIRUSES if k != "cov2rbd"])


QUICK = Settings(max_sequences=4000, steps=400, max_seconds=60.0, viruses=("flu_h1",))


def wildtype(virus: str, table, *, data_dir=None) -> tuple[str, int]:
    """``(sequence, first)``: the wild type of ``virus`` and the first position its
    published table covers.

    The sequence is the FASTA of :data:`WILDTYPES` with the table's ``wt`` letters over the
    positions the table covers (the HIV table has N at 0-based 329, HXB2 332, where the
    UniProt BG505 entry has T: the T332N of BG505 constructs), or for H3 the table's ``wt``
    column alone.
    """
    from zoo.data import data_dir as find, read_fasta
    letters = dict(zip(table.pos.tolist(), table.wt.tolist()))
    if virus in WILDTYPES:
        path = find("viral_escape", "wildtype_sequences", root=data_dir) / WILDTYPES[virus]
        seq = list(read_fasta(path)[0]["sequence"].upper())
        if max(letters) >= len(seq):
            raise ValueError(f"the {virus} table covers position {max(letters)}, beyond the "
                             f"{len(seq)} residues of {path.name}")
    else:
        if sorted(letters) != list(range(len(letters))):
            raise ValueError(f"the {virus} table must cover positions 0 ... N-1 to rebuild "
                             f"its wild type, got {min(letters)} ... {max(letters)}")
        seq = [""] * len(letters)
    for p, w in letters.items():
        seq[p] = w
    return "".join(seq), min(letters)


def score_virus(params: Params, cfg: Config, virus: str, *, data_dir=None,
                batch_size: int = 64) -> dict:
    """Scores the mutants the paper's protocol keeps for ``virus`` and returns
    ``{virus: (Mutants with our prob and change, AUCs)}`` (and ``"cov2rbd"`` for ``"cov"``)."""
    from zoo.bio import escape
    table = escape.load_published(virus, data_dir=data_dir)
    seq, _ = wildtype(virus, table, data_dir=data_dir)
    keep = escape.protocol_mask(table, virus) & (table.mut != table.wt)
    t = escape.Mutants(*(a[keep] for a in table))
    tok = tokenizers.ProteinTokenizer()
    vocab = {a: tok.token_to_id(a) for a in escape.AMINO_ACIDS}
    lm = jax.jit(lambda tokens: _apply(params, tokens, jnp.full(
        tokens.shape[:1], tokens.shape[1], jnp.int32), cfg))
    s = score_mutants_progress(lm, seq, vocab, list(zip(t.pos.tolist(), t.wt, t.mut)),
                               batch_size, desc=virus)
    ours = t._replace(prob=s.prob, change=s.change)
    out = {virus: (ours, escape.protocol_aucs(ours.prob, ours.change, ours.is_escape))}
    if virus == "cov":
        rbd = escape.load_published("cov2rbd", data_dir=data_dir)
        r = escape.Mutants(*(a[escape.protocol_mask(rbd, "cov2rbd") & (rbd.mut != rbd.wt)]
                             for a in rbd))
        index = {(p, m): k for k, (p, m) in enumerate(zip(ours.pos, ours.mut))}
        rows = np.array([index[(p, m)] for p, m in zip(r.pos, r.mut)])
        r = r._replace(prob=ours.prob[rows], change=ours.change[rows])
        out["cov2rbd"] = (r, escape.protocol_aucs(r.prob, r.change, r.is_escape))
    return out


def score_mutants_progress(lm, seq, vocab, mutants, batch_size, *, desc=""):
    """:func:`zoo.bio.escape.score_mutants` in chunks of whole batches, with a progress bar."""
    from tqdm.auto import tqdm
    from zoo.bio import escape
    chunk = batch_size * 16
    parts = [escape.score_mutants(lm, seq, vocab, mutants=mutants[i:i + chunk],
                                  batch_size=batch_size)
             for i in tqdm(range(0, len(mutants), chunk), desc=f"scoring {desc}",
                           mininterval=10)]
    return escape.Scores(mutants, np.concatenate([p.prob for p in parts]),
                         np.concatenate([p.change for p in parts]))


def run(settings: Settings = Settings(), *, data_dir=None, out=None) -> dict:
    """Trains the LM on the corpus, scores the viruses, writes the report (if ``out``).

    Returns:
        ``{"aucs": {virus: {score: auc}}, "published", "evescape", "train", "valid_nll",
        "unigram_nll", "corpus", "network", "seconds"}`` (``network``: the config's repr);
        the report is :func:`zoo.bio.escape_report.write_report`'s.
    """
    start = time.perf_counter()
    paths = [Path(p) for p in settings.corpus] or default_corpus(data_dir)
    seqs = read_corpus(paths)
    rng = np.random.default_rng(settings.seed)
    seqs = [seqs[i] for i in rng.permutation(len(seqs))]
    if settings.max_sequences is not None:
        seqs = seqs[:settings.max_sequences + settings.max_sequences // 50]
    n_valid = max(1, len(seqs) // 50)
    valid, corpus = encode_corpus(seqs[:n_valid]), encode_corpus(seqs[n_valid:])
    cfg = PRESETS[settings.model]
    params, log = train(corpus, cfg, steps=settings.steps, batch_size=settings.batch_size,
                        max_length=settings.max_length, lr=settings.lr, seed=settings.seed,
                        max_seconds=settings.max_seconds)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        save_params(params, Path(out) / "lm.npz", cfg)
    result = {"network": repr(cfg),
              "corpus": {"files": [str(p) for p in paths], "sequences": len(corpus),
                         "residues": int(sum(map(len, corpus))), "valid": len(valid)},
              "train": {k: v for k, v in log.items() if k != "losses"},
              "valid_nll": evaluate(params, valid, cfg, max_length=settings.max_length),
              "unigram_nll": unigram_nll(corpus, valid, cfg.vocab_size)}
    scored = {}
    for virus in settings.viruses:
        scored.update(score_virus(params, cfg, virus, data_dir=data_dir,
                                  batch_size=settings.score_batch))
    result.update(_comparisons(scored, data_dir))
    result["seconds"] = time.perf_counter() - start
    if out is not None:
        from zoo.bio import escape_report   # with zoo.bio.escape: scipy, at report time
        escape_report.write_report(Path(out), settings, result, scored, log)
    return result


def evescape_comparison(scored: dict, *, data_dir=None) -> dict:
    """AUCs on EVEscape's own mutants and labels (flu H1, HIV, RBD): EVEscape's score, ours
    and the paper's published scores, over the mutants all three share (ranks among them,
    the curve over all of them, as :func:`zoo.bio.escape.cscs_on_evescape_labels`).

    Returns:
        ``{virus: {"n", "n_escape", "evescape", "ours_cscs", "ours_grammaticality",
        "ours_semantic_change", "paper_cscs"}}``.
    """
    from zoo.bio import escape
    out = {}
    for virus in (v for v in escape.EVESCAPE if v in scored):
        ours, _ = scored[virus]
        paper = escape.load_published(virus, data_dir=data_dir)
        ev = escape.load_evescape(virus, data_dir=data_dir)
        a = {(p, m): k for k, (p, m) in enumerate(zip(ours.pos, ours.mut))}
        b = {(p, m): k for k, (p, m) in enumerate(zip(paper.pos, paper.mut))}
        keep = [k for k, key in enumerate(zip(ev.pos, ev.mut)) if key in a and key in b]
        ia = np.array([a[(ev.pos[k], ev.mut[k])] for k in keep])
        ib = np.array([b[(ev.pos[k], ev.mut[k])] for k in keep])
        esc = ev.is_escape[keep]
        auc = lambda s: escape.escape_auc(s, esc)
        out[virus] = {"n": len(keep), "n_escape": int(esc.sum()),
                      "evescape": auc(ev.evescape[keep]),
                      "ours_cscs": auc(escape.cscs(ours.prob[ia], ours.change[ia])),
                      "ours_grammaticality": auc(ours.prob[ia]),
                      "ours_semantic_change": auc(ours.change[ia]),
                      "paper_cscs": auc(escape.cscs(paper.prob[ib], paper.change[ib]))}
    return out


def unigram_nll(corpus, valid, vocab_size: int) -> float:
    """Per-residue NLL (nats) of ``valid`` under the residue frequencies of ``corpus``
    (add-one smoothed): the chance level a language model must beat."""
    counts = np.bincount(np.concatenate(corpus), minlength=vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[np.concatenate(valid)].mean())


def _comparisons(scored, data_dir):
    from zoo.bio import escape
    published = escape.published_aucs(data_dir=data_dir)
    pub = {v: {k: published[name][v] for k, name in escape.SCORES.items()} for v in scored}
    eve = {v: escape.evescape_auc(v, data_dir=data_dir) for v in scored if v in escape.EVESCAPE}
    rep = {v: escape.reproduce_published(v, data_dir=data_dir) for v in scored}
    return {"aucs": {v: a for v, (_, a) in scored.items()}, "published": pub, "evescape": eve,
            "reproduced": rep,
            "on_evescape_labels": evescape_comparison(scored, data_dir=data_dir)}


def main(argv: Sequence[str] | None = None) -> int:
    """``zoo bio bilstm_lm [--quick] [--corpus FASTA ...] [--data-dir D] [--out O]``."""
    p = argparse.ArgumentParser(prog="zoo bio escape", description=(
        "Train the BiLSTM protein LM on FASTA files and score viral escape (CSCS)."))
    p.add_argument("--quick", action="store_true", help="a short run: subset, H1 only")
    p.add_argument("--corpus", nargs="+", default=None,
                   help="protein FASTA files to train on (default: Pfam + DeepLoc at hand)")
    p.add_argument("--model", choices=sorted(PRESETS), default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--viruses", nargs="+", default=None)
    p.add_argument("--data-dir", default=os.environ.get("ZOO_DATA"))
    p.add_argument("--out", default="benchmarks/results/bio/escape")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    base = QUICK if args.quick else Settings()
    changes = {"seed": args.seed, "corpus": tuple(args.corpus or ()), "model": args.model,
               "steps": args.steps, "max_seconds": args.max_seconds,
               "viruses": tuple(args.viruses) if args.viruses else None}
    settings = dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})
    result = run(settings, data_dir=args.data_dir, out=args.out)
    for virus, aucs in result["aucs"].items():
        print(virus, {k: round(v, 3) for k, v in aucs.items()})
    print(f"report: {args.out}/report.md")
    return 0


__all__ = ["Config", "PRESETS", "init", "apply", "embed", "loss", "reverse_padded",
           "read_corpus", "default_corpus", "encode_corpus", "sample_batch", "make_step",
           "train", "evaluate", "save_params", "load_params", "WILDTYPES", "Settings",
           "QUICK", "wildtype", "score_virus", "score_mutants_progress", "run",
           "evescape_comparison", "unigram_nll", "main"]

if __name__ == "__main__":
    sys.exit(main())
