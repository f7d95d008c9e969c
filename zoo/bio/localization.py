"""Subcellular localization (DeepLoc), ``zoo bio localization``: the models of
:mod:`zoo.bio.localization_model` (a bidirectional LSTM with DeepLoc's attention pooling, and a
Transformer-encoder and a CNN variant) trained by one loop against composition baselines, and
scored and reported by :mod:`zoo.bio.localization_report`.

Training minimises the two-head loss of :func:`zoo.bio.localization_model.loss` with Adam on
mini-batches of proteins cropped to their termini; the epoch of best hold-out accuracy is kept
(early stopping). The baselines are the most frequent training location and a logistic
regression on amino-acid and dipeptide composition (:func:`composition`, 420 features)::

    c_a = #{t: s_t = a} / T,    c_ab = #{t: s_t s_{t+1} = ab} / (T − 1)

Shape letters: ``B`` batch (proteins), ``T`` positions.

>>> composition(["MKV"]).shape, float(composition(["MKV"])[0, :20].sum())
((1, 420), 1.0)

References: those of :mod:`zoo.bio.localization_model` (DeepLoc; setHARD).
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

from zoo import _checks
from zoo.bio import features as _features
from zoo.bio import metrics
from zoo.bio.fasta import DEEPLOC_LOCATIONS, deeploc
from zoo.bio.localization_model import (KINDS, MEMBRANE_CLASS, Config, apply,
                                        attention_pool, attention_pool_init,
                                        encode_sequences, init, loss)
from zoo.bio.localization_report import (attention_head_mass, scores, scores_table,
                                         summarize, write_outputs)
from zoo.types import Params


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
