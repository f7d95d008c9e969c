"""Subcellular localization (DeepLoc): a bidirectional LSTM with attention pooling, and a
Transformer-encoder and a CNN variant trained by the same code, against composition baselines.

The DeepLoc architecture (Almagro Armenteros et al. 2017) on the zoo's layers: amino-acid
embedding ``x_t = E[s_t]``, a bidirectional LSTM (:mod:`zoo.rnn`) giving ``h_t [E·D]``, the
attention pooling of DeepLoc over positions, masked on padding::

    e_t = v · tanh(W h_t + b),    a_t = exp(e_t) / Σ_{s valid} exp(e_s),    c = Σ_t a_t h_t

then a dense ReLU layer and two heads: the 10 locations (:data:`DEEPLOC_LOCATIONS`) and
membrane/soluble (``M``/``S``; ``U`` unknown is masked out of that loss)::

    L = CE(loc) + membrane_weight · Σ_{i: m_i ≠ U} CE(mem_i) / #{i: m_i ≠ U}

Proteins longer than ``max_length`` keep their termini (:func:`zoo.bio.fasta.crop_termini`);
padding never changes a protein's outputs (the LSTM freezes past each length, the pooling
and the Transformer's keys are masked, the CNN's single convolution sees zeros as its own
"same" padding and its global max runs over valid positions only).

Variants, one :class:`Config` (``kind``): ``"blstm"`` (above), ``"transformer"``
(:func:`zoo.transformer.encode` of an ``encoder`` Transformer, then attention or mean
pooling) and ``"cnn"`` (:func:`zoo.cnn.features`, one 1-D convolution over the embedded
sequence, then a global max over valid positions).

Shape letters: ``B`` batch (proteins), ``T`` positions, ``D`` features per position,
``I`` attention hidden width, ``V`` vocabulary (the 30 ids of
:class:`zoo.bio.tokenizers.ProteinTokenizer`), ``O`` classes.

>>> cfg = Config(kind="blstm", embed_dim=4, hidden_dim=3, attention_dim=5, dense_dim=6)
>>> params = init(jax.random.key(0), cfg)
>>> tokens, lengths = encode_sequences(["MKV", "MKVLA"], 7)
>>> loc, mem, weights = apply(params, tokens, lengths, cfg)
>>> loc.shape, mem.shape, weights.sum(axis=1).round(4).tolist()
((2, 10), (2, 2), [1.0, 1.0])

References:
    Almagro Armenteros J.J., Sønderby C.K., Sønderby S.K., Nielsen H., Winther O. "DeepLoc:
    prediction of protein subcellular localization using deep learning." Bioinformatics
    33(21):3387-3395, 2017. https://doi.org/10.1093/bioinformatics/btx431

    Stärk H., Dallago C., Heinzinger M., Rost B. "Light attention predicts protein location
    from the language of life." Bioinformatics Advances 1(1):vbab035, 2021.
    https://doi.org/10.1093/bioadv/vbab035
"""

import argparse
import dataclasses
import functools
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from zoo import _checks, cnn, layers, rnn, transformer
from zoo.bio import features as _features
from zoo.bio import metrics
from zoo.bio.fasta import DEEPLOC_LOCATIONS, crop_termini, deeploc
from zoo.bio.tokenizers import PAD, ProteinTokenizer
from zoo.types import Params

KINDS = ("blstm", "transformer", "cnn")
POOLINGS = ("attention", "mean", "max")
#: Membrane label -> membrane-head class (``U`` unknown is -1, masked out of the loss).
MEMBRANE_CLASS = {"M": 0, "S": 1, "U": -1}
#: Published figures (10-class accuracy, Gorodkin MCC) printed beside ours; see the report.
PUBLISHED = (
    ("DeepLoc (BLSTM-attention, profiles), DeepLoc test", "test", 0.7797, None,
     "Almagro Armenteros et al. 2017, Table 2 (as quoted in HannesStark/protein-localization "
     "README)"),
)
_TOKENIZER = ProteinTokenizer(unknown="map")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """A localization model.

    Attributes:
        kind: ``"blstm"``, ``"transformer"`` or ``"cnn"``.
        embed_dim: amino-acid embedding width (``blstm``, ``cnn``).
        hidden_dim: LSTM width per direction; the Transformer's ``d_model``; CNN filters.
        attention_dim: width ``I`` of the attention pooling's ``W``.
        dense_dim: the hidden dense layer before the two heads.
        num_layers: Transformer layers.
        num_heads: Transformer heads (divides ``hidden_dim``).
        kernel_size: CNN kernel width.
        pooling: ``"attention"`` (blstm; transformer), ``"mean"`` (transformer) or ``"max"``
            (cnn; the only pooling it takes).
        max_length: longest input after cropping (the Transformer's position table).
        dropout: on the pooled vector (and inside the Transformer) while training.
    """
    kind: str = "blstm"
    embed_dim: int = 32
    hidden_dim: int = 64
    attention_dim: int = 64
    dense_dim: int = 64
    num_layers: int = 2
    num_heads: int = 4
    kernel_size: int = 9
    pooling: str | None = None
    max_length: int = 400
    dropout: float = 0.25

    def __post_init__(self):
        _checks.one_of(self.kind, "kind", KINDS)
        for name in ("embed_dim", "hidden_dim", "attention_dim", "dense_dim", "num_layers",
                     "num_heads", "kernel_size"):
            _checks.positive_int(getattr(self, name), name)
        _checks.positive_int(self.max_length, "max_length", minimum=2)
        allowed = {"blstm": ("attention",), "transformer": ("attention", "mean"),
                   "cnn": ("max",)}[self.kind]
        if self.pooling is not None and self.pooling not in allowed:
            raise ValueError(f"pooling for kind {self.kind!r} must be one of {allowed}, got "
                             f"{self.pooling!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.kind == "transformer" and self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} must be divisible by num_heads "
                             f"{self.num_heads}")

    @property
    def pool(self) -> str:
        """The pooling used: ``pooling`` or the kind's default."""
        return self.pooling or {"blstm": "attention", "transformer": "attention",
                                "cnn": "max"}[self.kind]

    @property
    def features(self) -> int:
        """Width of the per-position features that are pooled."""
        return 2 * self.hidden_dim if self.kind == "blstm" else self.hidden_dim

    def rnn_config(self) -> rnn.Config:
        return rnn.Config(cell="lstm", in_dim=self.embed_dim, hidden_dim=self.hidden_dim,
                          bidirectional=True, output="sequence")

    def transformer_config(self) -> transformer.Config:
        return transformer.Config(kind="encoder", vocab_size=_TOKENIZER.vocab_size,
                                  d_model=self.hidden_dim, num_heads=self.num_heads,
                                  d_ff=2 * self.hidden_dim, num_layers=self.num_layers,
                                  max_len=self.max_length, norm="pre",
                                  dropout=min(self.dropout, 0.1))

    def cnn_config(self) -> cnn.Config:
        return cnn.Config(input_size=(self.max_length,), in_channels=self.embed_dim,
                          num_classes=len(DEEPLOC_LOCATIONS), channels=(self.hidden_dim,),
                          kernel_size=self.kernel_size, padding="same")


# --- the pieces ---------------------------------------------------------------------------

def attention_pool_init(key: jax.Array, d: int, i: int) -> Params:
    """Params of :func:`attention_pool`: ``w_di [D, I]``, ``b_i [I]``, ``v_i [I]``."""
    k_w, k_v = jax.random.split(key)
    return {"w_di": layers.dense_init(k_w, (d, i)), "b_i": jnp.zeros((i,), jnp.float32),
            "v_i": layers.dense_init(k_v, (i, 1))[:, 0]}


def attention_pool(p: Params, h: Float[Array, "B T D"], mask: Array
                   ) -> tuple[Float[Array, "B D"], Float[Array, "B T"]]:
    """DeepLoc's attention pooling: ``(c [B, D], a [B, T])``.

    ``e_t = v · tanh(W h_t + b)``, ``a = softmax_t(e)`` over the positions where ``mask``
    ``[B, T]`` is true (zero elsewhere), ``c = Σ_t a_t h_t``.

    >>> p = {"w_di": jnp.eye(2), "b_i": jnp.zeros(2), "v_i": jnp.array([1.0, 0.0])}
    >>> h = jnp.array([[[0.0, 1.0], [1.0, 0.0], [5.0, 5.0]]])
    >>> c, a = attention_pool(p, h, jnp.array([[True, True, False]]))
    >>> [round(float(x), 4) for x in a[0]]     # softmax(0, tanh 1) over the two valid ones
    [0.3183, 0.6817, 0.0]
    """
    e = jnp.tanh(h @ p["w_di"].astype(h.dtype) + p["b_i"].astype(h.dtype)) \
        @ p["v_i"].astype(h.dtype)
    a = layers.masked_softmax(e.astype(jnp.float32), mask)
    return jnp.einsum("BT,BTD->BD", a, h.astype(jnp.float32)), a


def encode_sequences(seqs: Sequence[str], length: int, *, max_length: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Tokens ``[B, length]`` (int32, :class:`ProteinTokenizer` ids, unknown letters mapped to
    ``<unk>``, right-padded with 0) and lengths ``[B]``, after cropping each sequence to
    ``max_length`` (default ``length``) with :func:`crop_termini`.

    >>> tokens, lengths = encode_sequences(["MKVLAG"], 6, max_length=4)   # MK + AG
    >>> tokens.tolist(), lengths.tolist()
    ([[15, 13, 5, 10, 0, 0]], [4])

    Raises:
        ValueError: if ``max_length`` exceeds ``length``.
    """
    max_length = length if max_length is None else max_length
    if max_length > length:
        raise ValueError(f"max_length {max_length} must be <= length {length}")
    cropped = [crop_termini(s, max_length) for s in seqs]
    tokens, mask = _TOKENIZER.encode_batch(cropped, length)
    return tokens, mask.sum(axis=1).astype(np.int32)


# --- the model ----------------------------------------------------------------------------

def init(key: jax.Array, cfg: Config) -> Params:
    """Params: the encoder (``embed`` and ``rnn``, ``transformer``, or ``embed`` and
    ``cnn``), ``pool`` (attention pooling), ``dense``, ``loc`` and ``mem`` heads."""
    k_embed, k_body, k_pool, k_dense, k_loc, k_mem = jax.random.split(key, 6)
    params = {}
    if cfg.kind in ("blstm", "cnn"):
        table = jax.random.normal(k_embed, (_TOKENIZER.vocab_size, cfg.embed_dim)) * 0.3
        params["embed"] = {"table_vd": table}
    if cfg.kind == "blstm":
        params["rnn"] = rnn.init(k_body, cfg.rnn_config())
    elif cfg.kind == "transformer":
        params["transformer"] = transformer.init(k_body, cfg.transformer_config())
    else:
        params["cnn"] = cnn.init(k_body, cfg.cnn_config())
    if cfg.pool == "attention":
        params["pool"] = attention_pool_init(k_pool, cfg.features, cfg.attention_dim)
    dense = lambda k, i, o: {"w": layers.dense_init(k, (i, o)), "b": jnp.zeros((o,))}
    params["dense"] = dense(k_dense, cfg.features, cfg.dense_dim)
    params["loc"] = dense(k_loc, cfg.dense_dim, len(DEEPLOC_LOCATIONS))
    params["mem"] = dense(k_mem, cfg.dense_dim, 2)
    return params


def apply(params: Params, tokens: Int[Array, "B T"], lengths: Int[Array, "B"], cfg: Config,
          *, key: jax.Array | None = None, train: bool = False):
    """``(location logits [B, 10], membrane logits [B, 2], pooling weights [B, T])``.

    The pooling weights are the attention ``a_t`` (attention pooling), ``1/length`` (mean),
    or the fraction of CNN filters whose maximum sits at ``t`` (max); zero on padding.

    Raises:
        ValueError: if ``tokens`` is not ``[B, T]`` or ``lengths`` not ``[B]``.
    """
    if tokens.ndim != 2 or lengths.shape != tokens.shape[:1]:
        raise ValueError(f"tokens must be [B, T] and lengths [B], got shapes {tokens.shape} "
                         f"and {lengths.shape}")
    mask = jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]
    k_body, k_drop = (None, None) if key is None or not train else jax.random.split(key)
    h = _per_position(params, tokens, lengths, mask, cfg, k_body)
    pooled, weights = _pool(params, h, mask, cfg)
    if k_drop is not None and cfg.dropout:
        keep = jax.random.bernoulli(k_drop, 1.0 - cfg.dropout, pooled.shape)
        pooled = jnp.where(keep, pooled / (1.0 - cfg.dropout), 0.0)
    z = jax.nn.relu(layers.dense(params["dense"], pooled))
    return layers.dense(params["loc"], z), layers.dense(params["mem"], z), weights


def _per_position(params, tokens, lengths, mask, cfg, key):
    if cfg.kind == "transformer":
        h, _ = transformer.encode(params["transformer"], tokens, cfg.transformer_config(),
                                  key=key)
        return h
    x = jnp.take(params["embed"]["table_vd"], tokens, axis=0) * mask[..., None]
    if cfg.kind == "blstm":
        return rnn.apply(params["rnn"], x, lengths, cfg.rnn_config())
    return jax.nn.relu(cnn.features(params["cnn"], x, cfg.cnn_config()))


def _pool(params, h, mask, cfg):
    if cfg.pool == "attention":
        return attention_pool(params["pool"], h, mask)
    if cfg.pool == "mean":
        w = mask / jnp.maximum(mask.sum(axis=1, keepdims=True), 1)
        return jnp.einsum("BT,BTD->BD", w, h), w
    masked = jnp.where(mask[..., None], h, -jnp.inf)
    top = masked.max(axis=1)
    at_max = (masked == top[:, None, :]) & mask[..., None]
    share = at_max / jnp.maximum(at_max.sum(axis=1, keepdims=True), 1)   # ties split
    return top, share.mean(axis=-1)


def loss(params: Params, batch: dict, cfg: Config, *, key=None,
         membrane_weight: float = 0.5) -> jax.Array:
    """Mean location cross-entropy plus ``membrane_weight`` times the membrane one over the
    proteins whose label is known (``batch["membrane"] >= 0``), both weighted by
    ``batch["weight"]`` (0 for filler rows).

    ``batch``: ``tokens [B, T]``, ``lengths [B]``, ``label [B]``, ``membrane [B]``,
    ``weight [B]``.
    """
    loc, mem, _ = apply(params, batch["tokens"], batch["lengths"], cfg, key=key,
                        train=key is not None)
    w = batch["weight"]
    ce_loc = optax.softmax_cross_entropy_with_integer_labels(loc, batch["label"])
    known = w * (batch["membrane"] >= 0)
    ce_mem = optax.softmax_cross_entropy_with_integer_labels(
        mem, jnp.maximum(batch["membrane"], 0))
    return (ce_loc * w).sum() / jnp.maximum(w.sum(), 1) + membrane_weight * (
        (ce_mem * known).sum() / jnp.maximum(known.sum(), 1))


# --- data and batches ---------------------------------------------------------------------

def load_splits(data_dir=None, *, limit: int | None = None, holdout: float = 0.1,
                seed: int = 0) -> dict[str, list[dict]]:
    """``{"train", "holdout", "test", "hard"}`` records: the DeepLoc validation file of
    Stärk et al. (dual ``Cytoplasm-Nucleus`` records dropped) split by a stratified, fixed
    (``seed``) ``holdout`` fraction, the DeepLoc test set and setHARD. ``limit`` keeps the
    first ``limit`` records of each file (a quick run)."""
    files = {name: deeploc(name, data_dir) for name in ("train", "test", "hard")}
    if limit is not None:
        files = {k: _stratified_subset(v, limit) for k, v in files.items()}
    labels = np.array([r["label"] for r in files["train"]])
    k = min(max(2, round(1 / holdout)), len(labels))
    _, held = _features.stratified_kfold(labels, k, seed=seed)[0]
    held = set(held.tolist())
    train = [r for i, r in enumerate(files["train"]) if i not in held]
    kept = [r for i, r in enumerate(files["train"]) if i in held]
    return {"train": train, "holdout": kept, "test": files["test"], "hard": files["hard"]}


def _stratified_subset(records, n):
    if len(records) <= n:
        return records
    labels = np.array([r["label"] for r in records])
    folds = _features.stratified_kfold(labels, max(2, len(records) // n), seed=0)
    return [records[i] for i in folds[0][1][:n]]


def make_batches(records: Sequence[dict], cfg: Config, batch_size: int, *,
                 rng: np.random.Generator | None = None) -> list[dict]:
    """Padded batches of ``batch_size`` rows in two length buckets (``max_length // 2`` and
    ``max_length``, so two compiled shapes), shuffled by ``rng`` (kept in order if ``None``).
    A short last batch is filled with one-residue rows of ``weight`` 0; ``index`` gives each
    row's record (-1 for fillers)."""
    n = len(records)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    half = cfg.max_length // 2
    lengths = np.array([min(len(r["sequence"]), cfg.max_length) for r in records])
    batches = []
    for bucket, size in ((lengths <= half, half), (lengths > half, cfg.max_length)):
        idx = order[bucket[order]]
        for s in range(0, len(idx), batch_size):
            batches.append(_batch(records, idx[s:s + batch_size], size, batch_size, cfg))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _batch(records, idx, size, batch_size, cfg):
    seqs = [records[i]["sequence"] for i in idx] + ["A"] * (batch_size - len(idx))
    tokens, lengths = encode_sequences(seqs, size, max_length=min(size, cfg.max_length))
    fill = batch_size - len(idx)
    pick = lambda key, default: np.array([records[i][key] for i in idx] + [default] * fill)
    membrane = np.array([MEMBRANE_CLASS[records[i]["membrane"]] for i in idx] + [-1] * fill)
    return {"tokens": tokens, "lengths": lengths, "label": pick("label", 0).astype(np.int32),
            "membrane": membrane.astype(np.int32),
            "weight": np.array([1.0] * len(idx) + [0.0] * fill, np.float32),
            "index": np.concatenate([idx, -np.ones(fill, int)]).astype(np.int64)}


# --- training and prediction --------------------------------------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """A localization run (``zoo bio localization``).

    Attributes:
        models: which of :data:`KINDS` to train.
        embed_dim, hidden_dim, max_length, dropout: the :class:`Config` of every model.
        batch_size, epochs, learning_rate: Adam on mini-batches; the epoch with the best
            hold-out accuracy is kept (early stopping).
        membrane_weight: weight of the membrane/soluble loss.
        seeds: one run of every model per seed.
        holdout: fraction of the training file held out (stratified, seed 0) for model choice.
        limit: records kept of each file (``None``: all; ``--quick`` keeps a few hundred).
        kmer_l2: L2 penalties tried for the k-mer logistic regression (best on the hold-out).
    """
    models: tuple[str, ...] = KINDS
    embed_dim: int = 32
    hidden_dim: int = 64
    max_length: int = 400
    dropout: float = 0.25
    batch_size: int = 32
    epochs: int = 15
    learning_rate: float = 3e-3
    membrane_weight: float = 0.5
    seeds: tuple[int, ...] = (0,)
    holdout: float = 0.1
    limit: int | None = None
    kmer_l2: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)

    def __post_init__(self):
        for m in self.models:
            _checks.one_of(m, "models", KINDS)
        for name in ("batch_size", "epochs"):
            _checks.positive_int(getattr(self, name), name)
        if not self.seeds:
            raise ValueError("seeds must name at least one seed, got ()")
        if not 0 < self.holdout < 0.5:
            raise ValueError(f"holdout must be in (0, 0.5), got {self.holdout!r}")

    def config(self, kind: str) -> Config:
        return Config(kind=kind, embed_dim=self.embed_dim, hidden_dim=self.hidden_dim,
                      attention_dim=self.hidden_dim, dense_dim=self.hidden_dim,
                      max_length=self.max_length, dropout=self.dropout)


QUICK = Settings(hidden_dim=16, embed_dim=16, max_length=200, epochs=3, limit=300,
                 batch_size=32, learning_rate=5e-3)


def train(cfg: Config, splits: dict, settings: Settings, seed: int, *,
          progress: bool = True) -> tuple[Params, list[dict]]:
    """Trains ``cfg`` on ``splits["train"]``; returns the params of the epoch with the best
    ``splits["holdout"]`` accuracy and the per-epoch history (loss, hold-out accuracy)."""
    from tqdm.auto import tqdm
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(settings.learning_rate))
    params = init(jax.random.key(seed), cfg)
    state = opt.init(params)
    step = _train_step(cfg, opt, settings.membrane_weight)
    rng, key = np.random.default_rng(seed), jax.random.key(seed + 1000)
    best, history = (params, -1.0), []
    for epoch in range(settings.epochs):
        batches = make_batches(splits["train"], cfg, settings.batch_size, rng=rng)
        losses = []
        for b in tqdm(batches, desc=f"{cfg.kind} seed {seed} epoch {epoch + 1}",
                      disable=not progress, mininterval=5, leave=False):
            key, sub = jax.random.split(key)
            params, state, value = step(params, state, _device(b), sub)
            losses.append(float(value))
        acc = metrics.accuracy(*_labels_preds(params, cfg, splits["holdout"], settings))
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                        "holdout_accuracy": acc})
        if acc > best[1]:
            best = (params, acc)
    return best[0], history


def _train_step(cfg, opt, membrane_weight):
    @jax.jit
    def step(params, state, batch, key):
        value, grads = jax.value_and_grad(loss)(params, batch, cfg, key=key,
                                                membrane_weight=membrane_weight)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value
    return step


def _device(batch):
    return {k: jnp.asarray(v) for k, v in batch.items() if k != "index"}


@functools.lru_cache(maxsize=None)
def _forward(cfg):
    return jax.jit(lambda p, t, l: apply(p, t, l, cfg))


def predict(params: Params, cfg: Config, records: Sequence[dict], batch_size: int = 64
            ) -> dict[str, np.ndarray | list]:
    """``{"loc_prob" [B, 10], "mem_prob" [B, 2], "weights": [one array per protein]}`` in the
    order of ``records``; each weights array covers the protein's cropped residues."""
    loc = np.zeros((len(records), len(DEEPLOC_LOCATIONS)), np.float32)
    mem = np.zeros((len(records), 2), np.float32)
    weights = [None] * len(records)
    for b in make_batches(records, cfg, batch_size):
        lo, me, w = _forward(cfg)(params, jnp.asarray(b["tokens"]), jnp.asarray(b["lengths"]))
        lo, me, w = np.asarray(jax.nn.softmax(lo)), np.asarray(jax.nn.softmax(me)), np.asarray(w)
        for row, i in enumerate(b["index"]):
            if i >= 0:
                loc[i], mem[i], weights[i] = lo[row], me[row], w[row, :b["lengths"][row]]
    return {"loc_prob": loc, "mem_prob": mem, "weights": weights}


def _labels_preds(params, cfg, records, settings):
    out = predict(params, cfg, records, settings.batch_size)
    return np.array([r["label"] for r in records]), out["loc_prob"].argmax(axis=1)


# --- baselines ----------------------------------------------------------------------------

def composition(seqs: Sequence[str]) -> np.ndarray:
    """Amino-acid and dipeptide composition ``[B, 20 + 400]`` (:func:`zoo.bio.features.
    kmer_composition`, k = 1 and 2, over the 20 standard amino acids)."""
    return np.concatenate([_features.kmer_composition(seqs, k, alphabet=_features.PROTEIN)
                           for k in (1, 2)], axis=1)


def kmer_baseline(splits: dict, l2s: Sequence[float]) -> tuple[dict, float]:
    """Fits the composition logistic regression (location, and membrane on the known
    labels) with the ``l2`` of best hold-out accuracy; returns ``(predictions per split,
    l2)``, predictions as in :func:`predict` (no weights)."""
    x = {k: composition([r["sequence"] for r in v]) for k, v in splits.items()}
    y = {k: np.array([r["label"] for r in v]) for k, v in splits.items()}
    fit = lambda l2: _features.LogisticRegression(l2=l2).fit(
        x["train"], y["train"], len(DEEPLOC_LOCATIONS))
    scores = {l2: metrics.accuracy(y["holdout"], fit(l2).predict(x["holdout"])) for l2 in l2s}
    l2 = max(l2s, key=lambda v: (scores[v], v))
    loc_model = fit(l2)
    m = np.array([MEMBRANE_CLASS[r["membrane"]] for r in splits["train"]])
    mem_model = _features.LogisticRegression(l2=l2).fit(x["train"][m >= 0], m[m >= 0], 2)
    return {k: {"loc_prob": loc_model.predict_proba(x[k]),
                "mem_prob": mem_model.predict_proba(x[k])} for k in splits}, l2


def majority_baseline(splits: dict) -> dict:
    """Predicts the most frequent training location (and membrane class) for every protein."""
    counts = np.bincount([r["label"] for r in splits["train"]], minlength=10)
    m = np.array([MEMBRANE_CLASS[r["membrane"]] for r in splits["train"]])
    mem = np.bincount(m[m >= 0], minlength=2)
    onehot = lambda n, c, k: np.tile(np.eye(k, dtype=np.float32)[c], (n, 1))
    return {k: {"loc_prob": onehot(len(v), int(counts.argmax()), 10),
                "mem_prob": onehot(len(v), int(mem.argmax()), 2)} for k, v in splits.items()}


def scores(records: Sequence[dict], pred: dict) -> dict[str, float]:
    """10-class accuracy, Gorodkin's MCC, and the membrane/soluble accuracy over the
    proteins labelled ``M`` or ``S``."""
    y = np.array([r["label"] for r in records])
    p = pred["loc_prob"].argmax(axis=1)
    m = np.array([MEMBRANE_CLASS[r["membrane"]] for r in records])
    known = m >= 0
    mem_acc = (metrics.accuracy(m[known], pred["mem_prob"][known].argmax(axis=1))
               if known.any() else float("nan"))
    return {"accuracy": metrics.accuracy(y, p),
            "mcc": metrics.gorodkin_mcc(y, p, len(DEEPLOC_LOCATIONS)),
            "membrane_accuracy": mem_acc, "membrane_known": int(known.sum())}


def attention_head_mass(weights: Sequence[np.ndarray], n: int = 30) -> np.ndarray:
    """Per protein, the pooling weight on its first ``n`` (cropped) residues."""
    return np.array([float(w[:n].sum()) for w in weights])


# --- results, report and figures ------------------------------------------------------------

def summarize(splits: dict, preds: dict, histories: dict) -> dict:
    """Score rows per (model, seed, split), their mean over seeds, per-class rows (the first
    seed of each model) and the attention mass on the first 30 residues (first attention
    model, DeepLoc test set)."""
    rows = []
    for (model, seed), pred in preds.items():
        for split in ("holdout", "test", "hard"):
            rows.append({"model": model, "seed": seed, "split": split,
                         **scores(splits[split], pred[split])})
    per_class = []
    firsts = {}
    for model, seed in preds:
        firsts.setdefault(model, seed)
    for model, seed in firsts.items():
        for split in ("test", "hard"):
            y = np.array([r["label"] for r in splits[split]])
            p = preds[(model, seed)][split]["loc_prob"].argmax(axis=1)
            prf = metrics.precision_recall_f1(y, p, len(DEEPLOC_LOCATIONS))
            for c, name in enumerate(DEEPLOC_LOCATIONS):
                per_class.append({"model": model, "seed": seed, "split": split,
                                  "location": name, **{k: float(prf[k][c]) for k in
                                                       ("precision", "recall", "f1")},
                                  "support": int(prf["support"][c])})
    return {"scores": rows, "mean": _mean_rows(rows), "per_class": per_class,
            "attention": _attention_summary(splits, preds, firsts),
            "history": {f"{m}/{s}": h for (m, s), h in histories.items()}}


def _mean_rows(rows):
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for split in ("holdout", "test", "hard"):
            sel = [r for r in rows if r["model"] == model and r["split"] == split]
            entry = {"model": model, "split": split, "runs": len(sel)}
            for key in ("accuracy", "mcc", "membrane_accuracy"):
                values = np.array([r[key] for r in sel])
                entry[key], entry[key + "_std"] = float(values.mean()), float(values.std())
            out.append(entry)
    return out


def _attention_summary(splits, preds, firsts):
    model = next((m for m in ("blstm", "transformer") if m in firsts), None)
    if model is None:
        return {}
    records, pred = splits["test"], preds[(model, firsts[model])]["test"]
    mass = attention_head_mass(pred["weights"])
    uniform = np.array([min(30, len(w)) / len(w) for w in pred["weights"]])
    ext = np.array([r["location"] == "Extracellular" for r in records])
    return {"model": model, "seed": firsts[model], "mass": mass,
            "extracellular": float(mass[ext].mean()), "others": float(mass[~ext].mean()),
            "uniform_extracellular": float(uniform[ext].mean()),
            "uniform_others": float(uniform[~ext].mean()), "n_extracellular": int(ext.sum()),
            "n_others": int((~ext).sum())}


def scores_table(rows: Sequence[dict]) -> str:
    """A markdown table of the mean scores (``summarize(...)["mean"]`` rows)."""
    lines = ["| model | runs | test acc | test MCC | setHARD acc | setHARD MCC | "
             "test M/S acc | setHARD M/S acc |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    by = {(r["model"], r["split"]): r for r in rows if "runs" in r}
    for model in dict.fromkeys(r["model"] for r in rows if "runs" in r):
        t, h = by[(model, "test")], by[(model, "hard")]
        cell = lambda r, k: "—" if np.isnan(r[k]) else (
            f"{r[k]:.4f}" + (f" ± {r[k + '_std']:.4f}" if r["runs"] > 1 else ""))
        lines.append(f"| {model} | {t['runs']} | {cell(t, 'accuracy')} | {cell(t, 'mcc')} | "
                     f"{cell(h, 'accuracy')} | {cell(h, 'mcc')} | "
                     f"{cell(t, 'membrane_accuracy')} | {cell(h, 'membrane_accuracy')} |")
    return "\n".join(lines)


def write_outputs(out: Path, settings: Settings, splits: dict, preds: dict, result: dict,
                  command: str | None) -> None:
    """``report.md``, ``scores.csv``, ``per_class.csv``, ``predictions.csv``,
    ``confusion.png`` and ``attention.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _csv(out / "scores.csv", result["scores"])
    _csv(out / "per_class.csv", result["per_class"])
    _csv(out / "predictions.csv", _prediction_rows(splits, preds, result))
    _confusion_png(out / "confusion.png", splits, preds)
    example = _attention_png(out / "attention.png", splits, preds, result["attention"])
    (out / "report.md").write_text(_report_md(settings, splits, result, command, example))


def _csv(path, rows):
    import csv
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v
                             for k, v in r.items()})


def _prediction_rows(splits, preds, result):
    att = result["attention"]
    rows = []
    for split in ("test", "hard"):
        for i, r in enumerate(splits[split]):
            row = {"split": split, "id": r["id"], "length": len(r["sequence"]),
                   "location": r["location"], "membrane": r["membrane"]}
            for (model, seed), pred in preds.items():
                row[f"{model}/{seed}"] = DEEPLOC_LOCATIONS[
                    int(pred[split]["loc_prob"][i].argmax())]
            if att and split == "test":
                row["first30_mass"] = float(att["mass"][i])
            elif att:
                row["first30_mass"] = float(attention_head_mass(
                    [preds[(att["model"], att["seed"])]["hard"]["weights"][i]])[0])
            rows.append(row)
    return rows


def _model_of_figures(preds):
    models = [m for m, _ in preds]
    model = next((m for m in KINDS if m in models), "kmer-LR")
    return model, min(s for m, s in preds if m == model)


def _confusion_png(path, splits, preds):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    model, seed = _model_of_figures(preds)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.8))
    names = [n.replace("Endoplasmic.reticulum", "ER").replace(".", " ") for n in
             DEEPLOC_LOCATIONS]
    for ax, split, title in zip(axes, ("test", "hard"), ("DeepLoc test", "setHARD")):
        y = np.array([r["label"] for r in splits[split]])
        p = preds[(model, seed)][split]["loc_prob"].argmax(axis=1)
        cm = metrics.confusion_matrix(y, p, len(DEEPLOC_LOCATIONS))
        frac = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                if cm[i, j]:
                    ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=7,
                            color="white" if frac[i, j] > 0.5 else "black")
        ax.set_xticks(range(10), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(10), names, fontsize=8)
        ax.set(xlabel="predicted", ylabel="true", title=f"{model} (seed {seed}), {title}: "
               f"acc {metrics.accuracy(y, p):.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _attention_png(path, splits, preds, att):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not att:
        return None
    records, pred = splits["test"], preds[(att["model"], att["seed"])]["test"]
    right = [i for i, r in enumerate(records) if r["location"] == "Extracellular"
             and pred["loc_prob"][i].argmax() == r["label"]]
    pool = right or [i for i, r in enumerate(records) if r["location"] == "Extracellular"]
    if not pool:
        return None
    i = max(pool, key=lambda j: att["mass"][j])
    w, seq = pred["weights"][i], crop_termini(records[i]["sequence"], len(pred["weights"][i]))
    fig, ax = plt.subplots(figsize=(11, 3.4))
    ax.bar(np.arange(1, len(w) + 1), w, width=1.0, color="tab:blue")
    ax.axvspan(0.5, 30.5, color="tab:orange", alpha=0.15, label="first 30 residues")
    ax.set(xlabel="position in the (cropped) sequence", ylabel="attention weight a_t",
           xlim=(0.5, len(w) + 0.5),
           title=f"{records[i]['id']} ({records[i]['location']}, predicted "
                 f"{DEEPLOC_LOCATIONS[int(pred['loc_prob'][i].argmax())]}): {att['model']} "
                 f"attention pooling; N-terminus {seq[:30]}")
    ax.title.set_fontsize(8)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"id": records[i]["id"], "mass": float(att["mass"][i]), "head": seq[:30]}


def _report_md(settings, splits, result, command, example):
    sizes = {k: len(v) for k, v in splits.items()}
    att = result["attention"]
    lines = [
        "# Subcellular localization (DeepLoc 10 classes): BiLSTM-attention, Transformer, CNN",
        "", f"Command: `{command or 'run(...)'}`", "",
        f"Settings: `{settings}`", "",
        f"Wall time: {result['seconds']:.0f} s on this machine's CPU (shared).", "",
        f"Data: trained on `deeploc_our_val_set.fasta` without its dual Cytoplasm-Nucleus "
        f"records, split (stratified, seed 0) into {sizes['train']} training and "
        f"{sizes['holdout']} hold-out proteins (the hold-out picks the epoch: early "
        f"stopping); tested on the DeepLoc test set ({sizes['test']}) and setHARD "
        f"({sizes['hard']}). Sequences longer than {settings.max_length} keep their first "
        f"{settings.max_length - settings.max_length // 2} and last "
        f"{settings.max_length // 2} residues." +
        (f" **Reduced run:** each file limited to {settings.limit} proteins." if settings.limit
         else ""), "",
        f"Runs: every neural row averages {len(settings.seeds)} run(s) (seeds "
        f"{list(settings.seeds)}; ± is the standard deviation over seeds); the baselines are "
        f"deterministic (1 run). k-mer baseline: amino-acid + dipeptide composition (420 "
        f"features), multinomial logistic regression, L2 {result['kmer_l2']:g} chosen on the "
        f"hold-out from {list(settings.kmer_l2)}.", "",
        "## 10-class accuracy and Gorodkin's MCC (M/S: membrane/soluble accuracy over the "
        "proteins labelled M or S; setHARD's headers label every protein U, so it has none)",
        "", scores_table(result["mean"]), "",
        *_published_md(), "", *_goal_md(result["mean"]), "",
        *_per_class_md(result["per_class"]), "",
        "![confusion matrices](confusion.png)", "",
        *_attention_md(att, example), "",
        "Files: `scores.csv` (every model, seed and split), `per_class.csv`, "
        "`predictions.csv` (each test and setHARD protein's prediction by every run, and the "
        "attention mass on its first 30 residues), `confusion.png`, `attention.png`.", ""]
    return "\n".join(lines)


def _published_md():
    return [
        "## Published figures beside ours", "",
        "| method | training data | DeepLoc test acc | DeepLoc test MCC | setHARD acc |",
        "|---|---|---:|---:|---:|",
        "| DeepLoc 1.0, BLSTM + attention on PSSM profiles (Almagro Armenteros et al. 2017) "
        "| DeepLoc train, 11,000+ proteins | 0.7797 | ≈0.74 (not verified here) | — |",
        "| ours, BLSTM + attention on learned amino-acid embeddings (above) | 1,678-protein "
        "file (about a sixth) | see above | see above | see above |", "",
        "The 0.7797 is DeepLoc's test accuracy as the light-attention repository "
        "(HannesStark/protein-localization, README, \"Numbers taken from the DeepLoc paper\") "
        "quotes it; the MCC ≈ 0.74 could not be checked against the paper here. Stärk et al. "
        "2021 (light attention, Bioinformatics Advances 1:vbab035) introduced setHARD and "
        "report DeepLoc's and their models' setHARD accuracy in their results table; those "
        "numbers could not be read from the material available here, so none is quoted "
        "rather than one from memory.", "",
        "**Ours trains on about a sixth of DeepLoc's training set** (the 1,678 proteins of "
        "Stärk et al.'s validation file, against DeepLoc's 11,000+ training proteins), with "
        "sequence input only (DeepLoc used PSSM profiles from PSI-BLAST) and a much smaller "
        "network, so the published figures are an upper reference, not a like-for-like "
        "comparison."]


def _goal_md(mean):
    by = {(r["model"], r["split"]): r["accuracy"] for r in mean}
    if ("blstm", "test") not in by:
        return []
    verdict = []
    for split, name in (("test", "DeepLoc test"), ("hard", "setHARD")):
        b, k = by[("blstm", split)], by[("kmer-LR", split)]
        verdict.append(f"{name}: BiLSTM {b:.4f} vs k-mer {k:.4f} "
                       f"({'beats' if b > k else 'does not beat'} it)")
    return ["**Goal (the BiLSTM beats the k-mer baseline on both test sets):** "
            + "; ".join(verdict) + "."]


def _per_class_md(per_class):
    model = next((m for m in KINDS if any(r["model"] == m for r in per_class)), "kmer-LR")
    lines = [f"## Per-class precision / recall / F1 ({model}, first seed)", "",
             "| location | test P | test R | test F1 | test n | setHARD P | setHARD R | "
             "setHARD F1 | setHARD n |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = {(r["split"], r["location"]): r for r in per_class if r["model"] == model}
    for name in DEEPLOC_LOCATIONS:
        t, h = rows[("test", name)], rows[("hard", name)]
        cells = lambda r: f"{r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | " \
                          f"{r['support']}"
        lines.append(f"| {name} | {cells(t)} | {cells(h)} |")
    return lines


def _attention_md(att, example):
    if not att:
        return []
    lines = [f"## What the model used: attention pooling weights ({att['model']}, seed "
             f"{att['seed']}, DeepLoc test set)", "",
             f"Mean attention mass on the first 30 residues: Extracellular proteins "
             f"{att['extracellular']:.3f} (n = {att['n_extracellular']}), all other proteins "
             f"{att['others']:.3f} (n = {att['n_others']}); uniform attention would give "
             f"{att['uniform_extracellular']:.3f} and {att['uniform_others']:.3f}.", ""]
    if example:
        lines += [f"![attention along the sequence](attention.png)", "",
                  f"The protein plotted is {example['id']}, the correctly predicted "
                  f"Extracellular test protein with the most attention on its first 30 "
                  f"residues ({example['mass']:.3f}); its N-terminus is "
                  f"`{example['head']}`."]
    return lines


def run(settings: Settings, *, data_dir=None, out=None, command: str | None = None,
        progress: bool = True) -> dict:
    """Trains every model of ``settings`` for every seed, evaluates them and the baselines
    on the DeepLoc test set and setHARD, and (with ``out``) writes the report, CSVs and
    figures there. Returns ``{"scores": rows, "per_class": rows, "attention": {...},
    "kmer_l2": float, "seconds": float}``."""
    start = time.perf_counter()
    splits = load_splits(data_dir, limit=settings.limit, holdout=settings.holdout)
    preds = {("majority", 0): majority_baseline(splits)}
    kmer, l2 = kmer_baseline(splits, settings.kmer_l2)
    preds[("kmer-LR", 0)] = kmer
    histories = {}
    for kind in settings.models:
        cfg = settings.config(kind)
        for seed in settings.seeds:
            params, histories[(kind, seed)] = train(cfg, splits, settings, seed,
                                                    progress=progress)
            preds[(kind, seed)] = {k: predict(params, cfg, splits[k], settings.batch_size)
                                   for k in ("holdout", "test", "hard")}
    result = summarize(splits, preds, histories)
    result.update(kmer_l2=l2, seconds=time.perf_counter() - start)
    if out is not None:
        write_outputs(Path(out), settings, splits, preds, result, command)
    return result


def main(argv=None) -> int:
    """``zoo bio localization [--quick] [--data-dir D] [--out O] [--seed S]``."""
    parser = argparse.ArgumentParser(prog="zoo bio localize", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few hundred proteins, tiny models, 3 epochs (minutes on a CPU)")
    parser.add_argument("--data-dir", default=None, help="the data root (default $ZOO_DATA)")
    parser.add_argument("--out", default="benchmarks/results/bio/localization")
    parser.add_argument("--seed", type=int, default=None, help="one seed (default 0)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0 .. N-1")
    parser.add_argument("--models", nargs="*", choices=KINDS, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--hidden-dim", type=int, default=None)
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    changes = {"seeds": (args.seed,) if args.seed is not None else None,
               "models": tuple(args.models) if args.models else None,
               "epochs": args.epochs, "max_length": args.max_length,
               "hidden_dim": args.hidden_dim}
    if args.seeds is not None:
        changes["seeds"] = tuple(range(args.seeds))
    settings = dataclasses.replace(settings, **{k: v for k, v in changes.items()
                                                if v is not None})
    command = "python -m zoo.bio.localization " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    result = run(settings, data_dir=args.data_dir, out=args.out, command=command)
    print(scores_table(result["mean"]))
    print(f"wrote {args.out}/report.md ({result['seconds']:.0f} s)")
    return 0


__all__ = ["KINDS", "MEMBRANE_CLASS", "Config", "Settings", "QUICK", "attention_pool_init",
           "attention_pool", "encode_sequences", "init", "apply", "loss", "load_splits",
           "make_batches", "train", "predict", "composition", "kmer_baseline",
           "majority_baseline", "scores", "attention_head_mass", "run", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
