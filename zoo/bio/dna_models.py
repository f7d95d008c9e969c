"""DNA applications: promoter and splice-junction classification with a CNN, an LSTM and a
Transformer side by side, what they attend to, and a small DNA masked language model.

Tasks (readers and landmarks in :mod:`zoo.bio.dna`):

* promoters: 106 E. coli windows of 57 nt, promoter or not (53 / 53);
* splice: 3,190 primate windows of 60 nt, ``EI`` (donor) / ``IE`` (acceptor) / ``N``.

Models, all trained with AdamW on the mean cross-entropy ``-1/B Σ_b log softmax(z_b)_{y_b}``:

* CNN (:mod:`zoo.cnn`): one-hot ``[B, S, 4]`` (ambiguity codes spread their unit mass over
  the bases they stand for) → conv → ReLU → max-pool → flatten (positions kept) → logits;
* LSTM (:mod:`zoo.rnn`): the same one-hot input, bidirectional, the two final states
  concatenated, a dense head;
* Transformer (:mod:`zoo.transformer`, kind ``"encoder"``) over nucleotide tokens
  (:class:`zoo.bio.tokenizers.NucleotideTokenizer`) with a head built here on the mean of the
  encoder's outputs over real positions::

      z = (1/|M|) Σ_{t∈M} h_t W + b,     h = encode(tokens),  M = {t : tokens_t ≠ PAD}

Evaluation is stratified k-fold cross-validation (:func:`zoo.bio.features.stratified_kfold`,
seeded), beside a k-mer composition logistic regression (:mod:`zoo.bio.features`) on the same
folds and the published error rates of the UCI documentation
(:data:`zoo.bio.dna_report.PUBLISHED`; the scores, report and figures are in
:mod:`zoo.bio.dna_report`).

What the models look at, per held-out sequence, normalised to sum 1 over positions and
averaged over the test sequences of each class:

* attention mass received by key ``s``: ``a_s = 1/(L N T) Σ_{l,n,t} A[l, n, t, s]`` (all
  layers; ``last`` uses only the last layer) from :func:`zoo.transformer.attention_maps`;
* gradient saliency: ``g_s = Σ_c |∂ z_y / ∂ x_{s,c}|`` over the four nucleotide channels
  ``c`` of the one-hot input (for the Transformer, of the one-hot over its vocabulary, whose
  product with the token table is the embedding), ``z_y`` the true class's logit.

The masked LM is the same encoder trained to recover 15% of nucleotides replaced by
``<mask>`` (:data:`zoo.bio.tokenizers.MASK`), on each fold's splice training sequences and
the 106 promoter sequences, then fine-tuned on the fold's labels against the same model
trained from scratch with the same classification budget.

Shape letters: ``B`` batch (sequences), ``S`` positions, ``C`` one-hot channels, ``V``
vocabulary, ``D`` model width, ``O`` classes, ``L`` layers, ``N`` heads, ``T`` query
positions.

>>> one_hot(["ACGN"])[0].tolist()
[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25]]

References:
    G. Towell, J. Shavlik, M. Noordewier, "Refinement of approximate domain theories by
    knowledge-based neural networks", AAAI 1990 (promoters).
    M. Noordewier, G. Towell, J. Shavlik, "Training knowledge-based neural networks to
    recognize genes in DNA sequences", NIPS 1991 (splice junctions).
    K. Simonyan, A. Vedaldi, A. Zisserman, "Deep Inside Convolutional Networks: Visualising
    Image Classification Models and Saliency Maps", 2013. https://arxiv.org/abs/1312.6034
    J. Devlin et al., "BERT", 2019. https://arxiv.org/abs/1810.04805
"""

import argparse
import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from zoo import cnn, layers, rnn, transformer
from zoo.bio import dna, features, tokenizers
from zoo.bio.dna_report import (JUNCTION_WINDOW, PUBLISHED, class_profiles,
                                plot_profiles, report, summarize, window_mass,
                                write_outputs)

MODELS = ("cnn", "lstm", "transformer")
TASKS = ("promoters", "splice")
#: IUPAC codes -> the bases (order A C G T) they stand for.
IUPAC_BASES = {"A": "A", "C": "C", "G": "G", "T": "T", "N": "ACGT", "R": "AG", "Y": "CT",
               "S": "CG", "W": "AT", "K": "GT", "M": "AC", "B": "CGT", "D": "AGT",
               "H": "ACT", "V": "ACG"}
_NUCLEOTIDE_IDS = slice(5, 9)   # A C G T in NucleotideTokenizer


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Settings of :func:`run`.

    Attributes:
        tasks: a subset of :data:`TASKS`.
        promoter_folds, splice_folds: cross-validation folds (>= 2).
        promoter_epochs, splice_epochs: classification epochs per fold.
        pretrain_epochs: masked-LM epochs per splice fold (0: no pretraining comparison).
        batch_size, learning_rate, weight_decay: AdamW with cosine decay.
        d_model, num_layers, num_heads: the Transformer (``d_ff = 2·d_model``).
        hidden: LSTM hidden width per direction and CNN filters.
        kmer: k of the composition baseline.
        mask_rate: fraction of nucleotides masked for the LM.
        seed: folds, initialisation, shuffling and masking.
    """
    tasks: tuple[str, ...] = TASKS
    promoter_folds: int = 10
    splice_folds: int = 5
    promoter_epochs: int = 40
    splice_epochs: int = 6
    pretrain_epochs: int = 6
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    d_model: int = 32
    num_layers: int = 2
    num_heads: int = 4
    hidden: int = 32
    kmer: int = 3
    mask_rate: float = 0.15
    seed: int = 0

    def __post_init__(self):
        bad = [t for t in self.tasks if t not in TASKS]
        if not self.tasks or bad:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks}")
        for name in ("promoter_folds", "splice_folds"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be >= 2, got {getattr(self, name)}")
        for name in ("promoter_epochs", "splice_epochs", "batch_size", "d_model",
                     "num_layers", "num_heads", "hidden", "kmer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.pretrain_epochs < 0:
            raise ValueError(f"pretrain_epochs must be >= 0, got {self.pretrain_epochs}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads "
                             f"({self.num_heads})")
        if not 0 < self.mask_rate < 1:
            raise ValueError(f"mask_rate must be in (0, 1), got {self.mask_rate}")


#: ``--quick``: 3 and 2 folds, few epochs (most of its time is compilation).
QUICK = Settings(promoter_folds=3, splice_folds=2, promoter_epochs=20, splice_epochs=2,
                 pretrain_epochs=1)


class Model(NamedTuple):
    """One classifier: ``init(key) -> params``; ``logits(params, x) -> [B, O]`` on its input
    (``inputs``: ``"onehot"`` ``[B, S, 4]`` or ``"tokens"`` ``[B, S]``);
    ``onehot_logits(params, x_bsc)`` the same function of a float one-hot (over ``A C G T``,
    or the vocabulary for tokens), for saliency."""
    name: str
    inputs: str
    init: Callable
    logits: Callable
    onehot_logits: Callable


# --- encodings --------------------------------------------------------------------------------

def one_hot(seqs) -> np.ndarray:
    """One-hot ``[B, S, 4]`` float32 over ``A C G T``; an ambiguity code spreads its unit
    mass evenly over the bases it stands for (:data:`IUPAC_BASES`).

    Raises:
        ValueError: naming the sequence and position of a letter that is no IUPAC code.
    """
    table = np.zeros((128, 4), np.float32)
    for code, bases in IUPAC_BASES.items():
        for base in bases:
            table[ord(code), "ACGT".index(base)] = 1.0 / len(bases)
    out = np.zeros((len(seqs), max(map(len, seqs), default=0), 4), np.float32)
    for i, s in enumerate(seqs):
        codes = np.frombuffer(s.upper().encode(), np.uint8)
        rows = table[np.minimum(codes, 127)]
        bad = np.flatnonzero((rows.sum(-1) == 0) | (codes > 127))
        if bad.size:
            raise ValueError(f"sequence {i}: letter {s[bad[0]]!r} at position {bad[0]} is not "
                             "an IUPAC nucleotide code")
        out[i, :len(s)] = rows
    return out


def tokens(seqs) -> np.ndarray:
    """Nucleotide token ids ``[B, S]`` (:class:`zoo.bio.tokenizers.NucleotideTokenizer`)."""
    return tokenizers.NucleotideTokenizer().encode_batch(list(seqs))[0]


# --- models -----------------------------------------------------------------------------------

def cnn_model(length: int, num_classes: int, s: Settings) -> Model:
    """The 1-D CNN on one-hot nucleotides (flattened positions: the landmarks sit at fixed
    offsets, which global pooling would discard; see ``zoo.cnn.PRESETS["splice"]``)."""
    cfg = cnn.Config(input_size=(length,), in_channels=4, num_classes=num_classes,
                     channels=(s.hidden,), kernel_size=5, pool="max", global_pool="flatten")
    logits = lambda p, x: cnn.apply(p, x, cfg)
    return Model("cnn", "onehot", lambda key: cnn.init(key, cfg), logits, logits)


def lstm_model(num_classes: int, s: Settings) -> Model:
    """The bidirectional LSTM on one-hot nucleotides; logits from both final states."""
    cfg = rnn.Config(cell="lstm", in_dim=4, hidden_dim=s.hidden, bidirectional=True,
                     output="final", out_dim=num_classes)
    logits = lambda p, x: rnn.apply(p, x, None, cfg)
    return Model("lstm", "onehot", lambda key: rnn.init(key, cfg), logits, logits)


def encoder_config(length: int, s: Settings) -> transformer.Config:
    """The encoder over nucleotide tokens (pre-norm, sinusoidal positions)."""
    return transformer.Config(kind="encoder", vocab_size=tokenizers.NucleotideTokenizer()
                              .vocab_size, d_model=s.d_model, num_heads=s.num_heads,
                              d_ff=2 * s.d_model, num_layers=s.num_layers, max_len=length,
                              norm="pre")


def transformer_model(length: int, num_classes: int, s: Settings) -> Model:
    """The Transformer encoder with the mean-pooled classification head (module docstring).
    Params ``{"encoder": transformer params, "head": {"w_do", "b_o"}}``."""
    cfg = encoder_config(length, s)

    def init(key):
        k_enc, k_head = jax.random.split(key)
        w = jax.random.normal(k_head, (cfg.d_model, num_classes)) / math.sqrt(cfg.d_model)
        return {"encoder": transformer.init(k_enc, cfg),
                "head": {"w_do": w, "b_o": jnp.zeros(num_classes)}}

    def logits(p, tok):
        h, _ = transformer.encode(p["encoder"], tok, cfg)
        return pooled_head(p["head"], h, tok != tokenizers.PAD)

    def onehot_logits(p, x_bsv):
        mask = x_bsv.sum(-1) > 0
        return pooled_head(p["head"], encode_onehot(p["encoder"], x_bsv, mask, cfg), mask)

    return Model("transformer", "tokens", init, logits, onehot_logits)


def pooled_head(head, h_bsd, mask_bs):
    """``mean_{t: mask} h_t · W + b``: logits ``[B, O]``."""
    m = mask_bs.astype(h_bsd.dtype)[..., None]
    pooled = (h_bsd * m).sum(1) / jnp.maximum(m.sum(1), 1.0)
    return pooled @ head["w_do"] + head["b_o"]


def encode_onehot(params, x_bsv, mask_bs, cfg: transformer.Config):
    """:func:`zoo.transformer.encode` of a float one-hot ``[B, S, V]`` over the vocabulary:
    the embedding ``x E·√D + PE`` (``= E[tokens]·√D + PE`` for exact one-hots), then the
    public :func:`zoo.transformer.encoder_layer` scanned over the stacked layers. Written
    here because the family takes only integer tokens and saliency needs ∂/∂x."""
    if cfg.positions != "sinusoidal" or cfg.kind != "encoder" or cfg.dropout:
        raise ValueError("encode_onehot supports encoders with sinusoidal positions and no "
                         f"dropout, got kind={cfg.kind!r} positions={cfg.positions!r}")
    table = params["embed"]["tokens_vd"]
    pe = jnp.asarray(transformer.positional_encoding(cfg.max_len, cfg.d_model))
    h = x_bsv @ table * math.sqrt(cfg.d_model) + pe[:x_bsv.shape[1]]
    mask = mask_bs[:, None, None, :]
    h, _ = jax.lax.scan(lambda h, p: (transformer.encoder_layer(p, h, cfg, mask=mask)[0],
                                      None), h, params["encoder"])
    if cfg.norm == "pre":
        norm = params["final_norm"]
        h = layers.layer_norm(h, norm["scale_d"], norm["bias_d"], cfg.norm_eps)
    return h


# --- training ---------------------------------------------------------------------------------

_OPTIMIZER = optax.inject_hyperparams(optax.adamw)


@functools.lru_cache(maxsize=None)
def _step_fn(loss_fn, weight_decay: float):
    """One jitted AdamW step per loss function, shared by every fold (the learning rate is
    an input, so a new schedule does not recompile)."""
    opt = _OPTIMIZER(learning_rate=0.0, weight_decay=weight_decay)

    @jax.jit
    def step(params, state, lr, key, *batch):
        state = state._replace(hyperparams={**state.hyperparams, "learning_rate": lr})
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch, key)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss
    return step


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    size = min(batch_size, n)
    return [order[i:i + size] for i in range(0, n - size + 1, size)]


def _fit(loss_fn, params, data, epochs: int, s: Settings, seed: int):
    """AdamW (cosine-decayed learning rate) over ``epochs`` shuffled passes of ``data``
    (arrays sharing their first axis; the last partial batch of each pass is dropped);
    ``loss_fn(params, *batch, key)``. Returns ``(params, last-epoch mean loss)``."""
    n = len(data[0])
    schedule = optax.cosine_decay_schedule(s.learning_rate,
                                           max(epochs * (n // min(s.batch_size, n)), 1))
    state = _OPTIMIZER(learning_rate=s.learning_rate, weight_decay=s.weight_decay).init(params)
    step_fn = _step_fn(loss_fn, s.weight_decay)
    rng, key, losses, t = np.random.default_rng(seed), jax.random.key(seed), [], 0
    for _ in range(epochs):
        losses = []
        for idx in _batches(n, s.batch_size, rng):
            key, k = jax.random.split(key)
            params, state, loss = step_fn(params, state, jnp.float32(schedule(t)), k,
                                          *(jnp.asarray(d[idx]) for d in data))
            losses.append(loss)
            t += 1
    return params, float(np.mean(jax.device_get(losses))) if losses else float("nan")


def train_classifier(model: Model, x, y, epochs: int, s: Settings, *, seed: int = 0,
                     params=None):
    """Trains ``model`` on inputs ``x`` and labels ``y`` ``[B]`` (from ``params`` if given,
    else a fresh ``model.init``). Returns the params."""
    params = model.init(jax.random.key(seed)) if params is None else params
    return _fit(_classifier_loss(model.logits), params,
                (np.asarray(x), np.asarray(y, np.int32)), epochs, s, seed)[0]


@functools.lru_cache(maxsize=None)
def _classifier_loss(logits_fn):
    def loss_fn(p, xb, yb, _key):
        z = logits_fn(p, xb).astype(jnp.float32)
        return optax.softmax_cross_entropy_with_integer_labels(z, yb).mean()
    return loss_fn


def mask_tokens(tok, rate: float, key):
    """BERT-style corruption of ``tok [B, S]``: each real position is chosen with
    probability ``rate`` (at least one per sequence) and replaced by ``<mask>``. Returns
    ``(inputs, targets)`` with targets ``PAD`` where nothing is to be predicted."""
    real = tok != tokenizers.PAD
    chosen = jax.random.bernoulli(key, rate, tok.shape) & real
    first = jnp.argmax(real, axis=1)
    none = ~chosen.any(axis=1)
    chosen = chosen.at[jnp.arange(tok.shape[0]), first].set(chosen[jnp.arange(tok.shape[0]),
                                                                   first] | none)
    return (jnp.where(chosen, tokenizers.MASK, tok),
            jnp.where(chosen, tok, tokenizers.PAD))


def pretrain_mlm(tok, length: int, s: Settings, *, seed: int = 0):
    """Masked-LM pretraining of the encoder on token rows ``tok [B, S]`` for
    ``s.pretrain_epochs``. Returns ``(encoder params, last-epoch masked-token loss)``."""
    cfg = encoder_config(length, s)
    params = transformer.init(jax.random.key(seed + 7919), cfg)
    return _fit(_mlm_loss(cfg, s.mask_rate), params, (np.asarray(tok),), s.pretrain_epochs,
                s, seed)


@functools.lru_cache(maxsize=None)
def _mlm_loss(cfg: transformer.Config, rate: float):
    def loss_fn(p, tb, key):
        inputs, targets = mask_tokens(tb, rate, key)
        return transformer.loss(p, (inputs,), targets, cfg)
    return loss_fn


# --- what the models look at ------------------------------------------------------------------

_CHUNK = 128


def _chunked(f, arrays, chunk: int = _CHUNK) -> np.ndarray:
    """``f(*rows)`` over row chunks of ``arrays`` padded to ``chunk`` rows (one compiled shape
    for every fold), concatenated and cut back to the rows given."""
    n, outs = len(arrays[0]), []
    for i in range(0, n, chunk):
        part = [a[i:i + chunk] for a in arrays]
        m = len(part[0])
        part = [np.concatenate([p, np.repeat(p[:1], chunk - m, axis=0)]) for p in part]
        outs.append(np.asarray(f(*(jnp.asarray(p) for p in part)))[:m])
    return np.concatenate(outs)


def predict(model: Model, params, x) -> np.ndarray:
    """Logits ``[B, O]`` (float32 NumPy), in batches."""
    f = _jitted_logits(model.logits)
    return _chunked(lambda xb: f(params, xb), [np.asarray(x)])


@functools.lru_cache(maxsize=None)
def _jitted_logits(logits_fn):
    return jax.jit(logits_fn)


def saliency(model: Model, params, x_bsc, y) -> np.ndarray:
    """``Σ_c |∂ z_y / ∂ x_{s,c}|`` per position ``[B, S]`` over the nucleotide channels, each
    row normalised to sum 1 (module docstring). ``x_bsc`` is the float one-hot the model's
    ``onehot_logits`` takes."""
    f = _input_grad(model.onehot_logits)
    g = np.abs(_chunked(lambda xb, yb: f(params, xb, yb),
                        [np.asarray(x_bsc, np.float32), np.asarray(y, np.int32)]))
    if g.shape[-1] != 4:
        g = g[..., _NUCLEOTIDE_IDS]
    g = g.sum(-1)
    return g / np.maximum(g.sum(1, keepdims=True), 1e-30)


@functools.lru_cache(maxsize=None)
def _input_grad(onehot_logits):
    def total(x, params, y):
        z = onehot_logits(params, x)
        return jnp.take_along_axis(z, y[:, None], axis=1).sum()
    return jax.jit(lambda params, x, y: jax.grad(total)(x, params, y))


def attention_mass(params, tok, cfg: transformer.Config, *, last: bool = False):
    """Attention mass each key position receives ``[B, S]``: the maps of
    :func:`zoo.transformer.attention_maps` averaged over heads, query positions and layers
    (only the last layer if ``last``). Rows sum to 1."""
    f = _jitted_maps(cfg)
    maps = _chunked(lambda tb: jnp.swapaxes(f(params, tb), 0, 1), [np.asarray(tok)])
    maps = maps[:, -1:] if last else maps   # [B, L, N, T, S]
    return maps.mean(axis=(1, 2, 3))


@functools.lru_cache(maxsize=None)
def _jitted_maps(cfg):
    return jax.jit(lambda params, tok: transformer.attention_maps(params, tok, cfg=cfg))


# --- cross-validation -------------------------------------------------------------------------

class TaskData(NamedTuple):
    """One task's sequences, labels, one-hot ``[B, S, 4]`` and tokens ``[B, S]``."""
    name: str
    data: dna.LabelledSequences
    x_onehot: np.ndarray
    x_tokens: np.ndarray


def task_data(name: str, data: dna.LabelledSequences) -> TaskData:
    """Encodes a task's sequences both ways."""
    return TaskData(name, data, one_hot(data.sequences), tokens(data.sequences))


def cross_validate(task: TaskData, s: Settings, *, unlabeled=None, progress=None) -> dict:
    """k-fold cross-validation of the three models (and, with ``unlabeled`` token rows and
    ``s.pretrain_epochs``, the masked-LM fine-tuned Transformer) on ``task``.

    Returns a dict: ``folds`` (list of (train, test) indices), ``pred`` (model -> out-of-fold
    predictions ``[B]``), ``saliency`` (model -> ``[B, S]``), ``attention`` /
    ``attention_last`` (model -> ``[B, S]``, Transformers only), ``mlm`` (per-fold masked-LM
    losses), ``seconds`` (model -> training seconds).
    """
    y, length = task.data.labels, task.x_tokens.shape[1]
    n_classes = len(task.data.classes)
    k = s.promoter_folds if task.name == "promoters" else s.splice_folds
    models = [cnn_model(length, n_classes, s), lstm_model(n_classes, s),
              transformer_model(length, n_classes, s)]
    folds = features.stratified_kfold(y, k, seed=s.seed)
    out = {"folds": folds, "pred": {}, "saliency": {}, "attention": {}, "attention_last": {},
           "mlm": [], "seconds": {}}
    for f, (train, test) in enumerate(folds):
        seed = s.seed * 1000 + f
        for model in models:
            _run_model(out, model, task, (train, test), s, seed)
        if unlabeled is not None and s.pretrain_epochs:
            _run_pretrained(out, models[2], task, (train, test), unlabeled, s, seed)
        if progress is not None:
            progress.update(1)
    return out


def _epochs(task: str, s: Settings) -> int:
    return s.promoter_epochs if task == "promoters" else s.splice_epochs


def _run_model(out, model, task, split, s, seed, *, name=None, params=None):
    train, test = split
    epochs = _epochs(task.name, s)
    name = name or model.name
    x = task.x_onehot if model.inputs == "onehot" else task.x_tokens
    y = task.data.labels
    start = time.perf_counter()
    params = train_classifier(model, x[train], y[train], epochs, s, seed=seed, params=params)
    out["seconds"][name] = out["seconds"].get(name, 0.0) + time.perf_counter() - start
    _store(out, "pred", name, len(y), None, test, predict(model, params, x[test]).argmax(1))
    if model.inputs == "onehot":
        x_sal = task.x_onehot[test]
    else:
        x_sal = np.asarray(jax.nn.one_hot(task.x_tokens[test], tokenizers.NucleotideTokenizer()
                                          .vocab_size))
    _store(out, "saliency", name, len(y), x.shape[1], test,
           saliency(model, params, x_sal, y[test]))
    if model.inputs == "tokens":
        cfg = encoder_config(x.shape[1], s)
        for key, last in (("attention", False), ("attention_last", True)):
            _store(out, key, name, len(y), x.shape[1], test,
                   attention_mass(params["encoder"], task.x_tokens[test], cfg, last=last))
    return params


def _store(out, key, name, n, width, rows, values):
    if name not in out[key]:
        shape = (n,) if width is None else (n, width)
        out[key][name] = np.full(shape, -1 if width is None else np.nan,
                                 np.int32 if width is None else np.float32)
    out[key][name][rows] = values


def _run_pretrained(out, model, task, split, unlabeled, s, seed):
    """Pretrains on the fold's training tokens plus ``unlabeled``, fine-tunes, and records the
    masked-LM loss on the fold's (never seen) test sequences."""
    train, test = split
    length = task.x_tokens.shape[1]
    corpus = np.concatenate([task.x_tokens[train], unlabeled])
    start = time.perf_counter()
    encoder, train_loss = pretrain_mlm(corpus, length, s, seed=seed)
    pre_seconds = time.perf_counter() - start
    cfg = encoder_config(length, s)
    inputs, targets = mask_tokens(jnp.asarray(task.x_tokens[test]), s.mask_rate,
                                  jax.random.key(seed + 1))
    test_loss = float(transformer.loss(encoder, (inputs,), targets, cfg))
    out["mlm"].append({"fold": len(out["mlm"]), "sequences": len(corpus),
                       "train_loss": train_loss, "test_loss": test_loss,
                       "seconds": pre_seconds})
    params = dict(model.init(jax.random.key(seed)), encoder=encoder)
    _run_model(out, model, task, split, s, seed, name="transformer+mlm",
               params=params)


def kmer_baseline(task: TaskData, s: Settings) -> np.ndarray:
    """Out-of-fold predictions ``[B]`` of the k-mer composition logistic regression on the
    same folds as :func:`cross_validate`."""
    k = s.promoter_folds if task.name == "promoters" else s.splice_folds
    x = features.kmer_composition(task.data.sequences, s.kmer)
    return features.cross_val_predict(features.LogisticRegression, x, task.data.labels, k=k,
                                      seed=s.seed)


# --- run, report, console ---------------------------------------------------------------------

def run(settings: Settings = Settings(), *, data_dir=None, out=None,
        command: str | None = None) -> dict:
    """Cross-validates every model on ``settings.tasks``; writes the report, CSVs and
    figures to ``out`` when given. Returns ``{task: summary}`` (see :func:`summarize`).

    Raises:
        FileNotFoundError: if the ``dna_uci`` data folder is missing (says where it goes).
    """
    from tqdm import tqdm
    start = time.perf_counter()
    loaded = {"promoters": task_data("promoters", dna.promoters(data_dir))}
    if "splice" in settings.tasks:
        loaded["splice"] = task_data("splice", dna.splice(data_dir))
    total = sum(settings.promoter_folds if t == "promoters" else settings.splice_folds
                for t in settings.tasks)
    results, summaries = {}, {}
    with tqdm(total=total, desc="dna folds", file=sys.stderr) as bar:
        for name in settings.tasks:
            task = loaded[name]
            unlabeled = None
            if name == "splice":   # the promoters, padded to 60, join the LM corpus
                p = loaded["promoters"].x_tokens
                unlabeled = np.pad(p, ((0, 0), (0, task.x_tokens.shape[1] - p.shape[1])))
            res = cross_validate(task, settings, unlabeled=unlabeled, progress=bar)
            res["pred"]["kmer_lr"] = kmer_baseline(task, settings)
            results[name] = res
            summaries[name] = summarize(task, res)
    seconds = time.perf_counter() - start
    if out is not None:
        write_outputs(Path(out), settings, loaded, results, summaries, seconds, command)
    return {**summaries, "seconds": seconds}


def main(argv=None) -> int:
    """``zoo bio dna [--quick] [--data-dir D] [--out O] [--seed N] [--tasks ...]``."""
    parser = argparse.ArgumentParser(prog="zoo bio dna", description=__doc__
                                     .splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer folds and epochs "
                        "(a few minutes on 2 CPU cores)")
    parser.add_argument("--data-dir", default=None, help="folder of the data sets (default "
                        "$ZOO_DATA); the files go in <data-dir>/dna_uci/")
    parser.add_argument("--out", default="benchmarks/results/bio/dna", help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    args = parser.parse_args(argv)
    base = QUICK if args.quick else Settings()
    settings = dataclasses.replace(base, seed=args.seed, tasks=tuple(args.tasks))
    try:
        command = None if argv is None else " ".join(["zoo bio dna", *argv])
        summary = run(settings, data_dir=args.data_dir, out=args.out, command=command)
    except FileNotFoundError as err:
        print(f"zoo bio dna: {err}", file=sys.stderr)
        return 1
    for task in settings.tasks:
        for name, a in summary[task]["accuracy"].items():
            print(f"{task:9s} {name:16s} accuracy {a['accuracy']:.4f}")
    print(f"report: {Path(args.out) / 'report.md'} ({summary['seconds']:.0f} s)")
    return 0


__all__ = ["MODELS", "TASKS", "JUNCTION_WINDOW", "IUPAC_BASES", "PUBLISHED", "Settings",
           "QUICK", "Model", "one_hot", "tokens", "window_mass", "cnn_model", "lstm_model",
           "encoder_config", "transformer_model", "pooled_head", "encode_onehot",
           "train_classifier", "mask_tokens", "pretrain_mlm", "predict", "saliency",
           "attention_mass", "class_profiles", "TaskData", "task_data", "cross_validate",
           "kmer_baseline", "run", "summarize", "write_outputs", "plot_profiles", "report",
           "main"]


if __name__ == "__main__":
    raise SystemExit(main())
