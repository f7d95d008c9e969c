"""Fixed-size sequence embeddings of proteins and DNA, scored by a cross-validated linear probe.

Three embeddings of a sequence ``x_1 … x_N``, each a vector whatever ``N``:

* k-mer composition (the baseline): the frequencies of every k-mer, ``k = 1, 2`` for
  proteins and ``k = 1 … 3`` for DNA (:func:`zoo.bio.features.kmer_composition`).
* a BiLSTM language model's mean hidden state, ``z = (1/N) Σ_t h_t``
  (:func:`zoo.bio.bilstm_lm.embed`): the protein LM of the escape run
  (``benchmarks/results/bio/escape/lm.npz``, trained on Pfam and the DeepLoc test and setHARD
  proteins, never on the probed proteins) and a nucleotide LM built with the same code.
* a sequence autoencoder's code (Dai & Le 2015): a :mod:`zoo.seq2seq` LSTM encoder-decoder
  trained to reconstruct its input, the code being the encoder's final state
  (:func:`zoo.seq2seq.embed`, ``[L·E·D]``).

Each is scored by a multinomial logistic regression fitted on ``k − 1`` of ``k`` stratified
folds and tested on the last (:func:`probe`): DeepLoc's 10-class localization of its 1,655
single-location training proteins (the 23 dual-location ones of the 1,678 dropped), and the
3-class splice-junction class of the UCI splice set. A 2-D principal-component projection of
each embedding, coloured by class, is drawn with :func:`pca_2d`, an SVD in NumPy.

Shape letters: ``B`` sequences, ``T`` positions, ``D`` embedding width.

>>> import numpy as np
>>> x = np.array([[0.0, 0.0], [2.0, 2.0], [4.0, 4.0]])
>>> np.round(np.abs(pca_2d(x)[:, 0]), 4).tolist()
[2.8284, 0.0, 2.8284]

References:
    A. M. Dai, Q. V. Le, "Semi-supervised Sequence Learning", NeurIPS 2015.
    https://arxiv.org/abs/1511.01432
    B. Hie et al., "Learning the language of viral evolution and escape", Science 2021.
    https://doi.org/10.1126/science.abd7331
    J. J. Almagro Armenteros et al., "DeepLoc: prediction of protein subcellular localization
    using deep learning", Bioinformatics 33(21):3387-3395, 2017.
    https://doi.org/10.1093/bioinformatics/btx431
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

from zoo import _checks, seq2seq
from zoo.bio import bilstm_lm, tokenizers
from zoo.types import Params


# --- the embeddings ----------------------------------------------------------------------------

def kmer_features(seqs: Sequence[str], alphabet: str, ks: Sequence[int]) -> np.ndarray:
    """The k-mer compositions for each ``k`` of ``ks``, concatenated ``[B, Σ a^k]``."""
    from zoo.bio import features
    return np.concatenate([features.kmer_composition(seqs, k, alphabet=alphabet)
                           for k in ks], axis=1)


def pad_tokens(tokens: Sequence[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pads token arrays to ``width`` (cutting longer ones): ``(ids [B, T], lengths [B])``.

    >>> pad_tokens([np.array([5, 6, 7]), np.array([8])], 2)[0].tolist()
    [[5, 6], [8, 0]]
    """
    _checks.positive_int(width, "width")
    out = np.zeros((len(tokens), width), np.int32)
    lengths = np.zeros(len(tokens), np.int32)
    for i, t in enumerate(tokens):
        t = np.asarray(t)[:width]
        out[i, :len(t)], lengths[i] = t, len(t)
    return out, lengths


def lm_embeddings(params: Params, cfg: bilstm_lm.Config, tokens: Sequence[np.ndarray], *,
                  batch_size: int = 32, widths: Sequence[int] = (64, 256, 512, 1000)
                  ) -> np.ndarray:
    """Mean hidden states ``[B, 2D]`` of the BiLSTM LM (:func:`zoo.bio.bilstm_lm.embed`).

    Sequences run in batches of ``batch_size`` of similar length, each padded to the
    smallest of ``widths`` that holds it (a few compiled shapes); longer ones are cut to the
    largest width. Padding does not change a result (tested).
    """
    lengths = np.array([len(t) for t in tokens])
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(tokens), 2 * cfg.hidden_dim), np.float32)
    for i in range(0, len(order), batch_size):
        rows = order[i:i + batch_size]
        width = next((w for w in widths if w >= lengths[rows].max()), max(widths))
        ids, n = pad_tokens([tokens[r] for r in rows], width)
        ids, n = _fill(ids, batch_size), _fill(n, batch_size, value=1)
        out[rows] = np.asarray(bilstm_lm.embed(params, ids, n, cfg))[:len(rows)]
    return out


def _fill(x, rows, value=0):
    """Pads the leading axis of ``x`` to ``rows`` (so every batch has one compiled shape)."""
    pad = np.full((rows - len(x),) + x.shape[1:], value, x.dtype)
    return np.concatenate([x, pad])


# --- the sequence autoencoder ------------------------------------------------------------------

def autoencoder_config(vocab_size: int, *, embed_dim: int = 32, hidden_dim: int = 64
                       ) -> seq2seq.Config:
    """A bidirectional LSTM autoencoder over the zoo's tokenizers: ``pad`` 0, ``<cls>`` (2)
    as the decoder's start token and ``<eos>`` (3) as its end."""
    return seq2seq.Config(cell="lstm", vocab_size=vocab_size, embed_dim=embed_dim,
                          hidden_dim=hidden_dim, bidirectional=True, objective="autoencode",
                          pad_id=tokenizers.PAD, bos_id=tokenizers.CLS,
                          eos_id=tokenizers.EOS)


def autoencoder_batch(tokens: Sequence[np.ndarray], width: int, cfg: seq2seq.Config):
    """Teacher-forcing arrays for reconstructing each sequence (cut to ``width``):
    ``((src [B, S], lengths [B], tgt_in [B, S+1]), tgt_out [B, S+1])``, ``tgt_out`` the
    source followed by ``<eos>``."""
    src, n = pad_tokens(tokens, width)
    tgt_out = np.concatenate([src, np.zeros((len(src), 1), np.int32)], axis=1)
    tgt_out[np.arange(len(src)), n] = cfg.eos_id
    return (src, n, np.asarray(seq2seq.shift_right(tgt_out, cfg))), tgt_out


def reconstruction_accuracy(params: Params, cfg: seq2seq.Config, batch) -> float:
    """Teacher-forced token accuracy of the reconstruction over the non-pad targets."""
    (src, n, tgt_in), tgt_out = batch
    pred = np.argmax(np.asarray(seq2seq.apply(params, src, n, tgt_in, cfg)), axis=-1)
    mask = tgt_out != cfg.pad_id
    return float(((pred == tgt_out) & mask).sum() / mask.sum())


def train_autoencoder(tokens: Sequence[np.ndarray], cfg: seq2seq.Config, *, steps: int,
                      width: int, batch_size: int = 32, lr: float = 3e-3, seed: int = 0,
                      progress: bool = True) -> tuple[Params, list[float]]:
    """Trains the autoencoder on random batches of ``tokens`` (Adam, clipping at 1).

    Returns:
        ``(params, losses)`` with one loss per step.
    """
    from tqdm.auto import tqdm
    _checks.positive_int(steps, "steps")
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr))
    params = seq2seq.init(jax.random.key(seed), cfg)
    opt_state, rng, losses = optimizer.init(params), np.random.default_rng(seed), []

    @jax.jit
    def step(params, opt_state, inputs, targets):
        value, grads = jax.value_and_grad(seq2seq.loss)(params, inputs, targets, cfg)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    for _ in tqdm(range(steps), desc="autoencoder", disable=not progress, mininterval=5):
        rows = rng.integers(0, len(tokens), batch_size)
        inputs, targets = autoencoder_batch([tokens[r] for r in rows], width, cfg)
        params, opt_state, value = step(params, opt_state, inputs, targets)
        losses.append(float(value))
    return params, losses


def autoencoder_embeddings(params: Params, cfg: seq2seq.Config, tokens: Sequence[np.ndarray],
                           width: int, *, batch_size: int = 64) -> np.ndarray:
    """The encoder's final states ``[B, L·E·D]`` (:func:`zoo.seq2seq.embed`)."""
    parts = []
    for i in range(0, len(tokens), batch_size):
        src, n = pad_tokens(tokens[i:i + batch_size], width)
        k = len(src)
        parts.append(np.asarray(_embed(params, _fill(src, batch_size),
                                       _fill(n, batch_size, value=1), cfg))[:k])
    return np.concatenate(parts)


@functools.partial(jax.jit, static_argnums=3)
def _embed(params, src, n, cfg):
    return seq2seq.embed(params, src, n, cfg)


# --- the probe and the projection --------------------------------------------------------------

def probe(x: np.ndarray, y: np.ndarray, *, k: int = 5, seed: int = 0, l2: float = 1e-2
          ) -> dict:
    """A logistic-regression probe cross-validated over ``k`` stratified folds.

    Returns:
        ``{"accuracy", "mcc" (Gorodkin), "fold_accuracy" (list of k)}``, of the out-of-fold
        predictions.
    """
    from zoo.bio import features, metrics
    x, y = np.asarray(x, np.float32), np.asarray(y)
    num_classes = int(y.max()) + 1
    pred = np.empty(len(y), np.int32)
    folds = []
    for train, test in features.stratified_kfold(y, k, seed=seed):
        model = features.LogisticRegression(l2=l2).fit(x[train], y[train], num_classes)
        pred[test] = model.predict(x[test])
        folds.append(metrics.accuracy(y[test], pred[test]))
    return {"accuracy": metrics.accuracy(y, pred),
            "mcc": metrics.gorodkin_mcc(y, pred, num_classes), "fold_accuracy": folds}


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The projection ``[B, 2]`` of ``x [B, D]`` on its first two principal axes (centred,
    SVD ``X − x̄ = U S Vᵀ``, coordinates ``U S``; each axis's sign fixed so its largest
    loading is positive)."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be [B, D] with B >= 2, got shape {x.shape}")
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    v = vt[:2]
    v = v * np.sign(v[np.arange(len(v)), np.abs(v).argmax(1)])[:, None]
    out = xc @ v.T
    return out if out.shape[1] == 2 else np.pad(out, ((0, 0), (0, 2 - out.shape[1])))


def plot_projections(panels: dict, path) -> Path:
    """A grid of 2-D projections, one row per data set and one column per embedding:
    ``panels[(row, col)] = (xy [B, 2], labels [B], classes)``, columns in insertion order
    within each row."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = list(dict.fromkeys(r for r, _ in panels))
    by_row = {r: [c for q, c in panels if q == r] for r in rows}
    width = max(len(c) for c in by_row.values())
    fig, axes = plt.subplots(len(rows), width, figsize=(3.8 * width, 3.6 * len(rows)),
                             squeeze=False)
    cmap = plt.get_cmap("tab10")
    for i, r in enumerate(rows):
        for j, c in enumerate(by_row[r]):
            xy, y, classes = panels[(r, c)]
            ax = axes[i][j]
            for k, name in enumerate(classes):
                sel = y == k
                ax.scatter(xy[sel, 0], xy[sel, 1], s=3, color=cmap(k % 10), label=name,
                           alpha=0.6)
            ax.set_title(f"{r}\n{c}", fontsize=8)
            ax.set(xticks=[], yticks=[], xlabel="PC 1", ylabel="PC 2")
        axes[i][len(by_row[r]) - 1].legend(fontsize=6, markerscale=3, loc="center left",
                                           bbox_to_anchor=(1, 0.5))
        for j in range(len(by_row[r]), width):
            axes[i][j].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


# --- the run -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Settings of the embedding run (:func:`run`).

    Attributes:
        protein_lm: a :func:`zoo.bio.bilstm_lm.save_params` file of the protein LM (the escape
            run's); if it does not exist a ``"small"`` LM is trained on
            :func:`zoo.bio.bilstm_lm.default_corpus` for ``lm_steps``.
        lm_steps: steps of the nucleotide LM (and of a protein LM trained here).
        ae_steps: steps of each autoencoder.
        protein_width: residues the protein autoencoder reads (DeepLoc's cropping of the
            termini, :func:`zoo.bio.fasta.crop_termini`).
        max_proteins, max_dna: probe a random subset of this many (``None``: all).
        folds: cross-validation folds.
        seed: the seed of training, subsets and folds.
    """
    protein_lm: str | None = "benchmarks/results/bio/escape/lm.npz"
    lm_steps: int = 1000
    ae_steps: int = 400
    protein_width: int = 64
    max_proteins: int | None = None
    max_dna: int | None = None
    folds: int = 5
    seed: int = 0


QUICK = Settings(lm_steps=100, ae_steps=100, max_proteins=600, max_dna=900)

#: The DNA language model (same code as the protein LM, over the nucleotide tokenizer).
DNA_LM = bilstm_lm.Config(vocab_size=20, embed_dim=16, hidden_dim=64, num_layers=1)


def _subset(n, limit, rng):
    return np.arange(n) if limit is None or limit >= n else np.sort(rng.choice(n, limit, False))


def protein_embeddings(settings: Settings, seqs: list[str], *, data_dir=None) -> tuple:
    """``({name: [B, D]}, losses)`` of the DeepLoc proteins ``seqs``: k-mers, LM, autoencoder."""
    from zoo.bio import fasta
    tok = tokenizers.ProteinTokenizer(unknown="map")
    path = Path(settings.protein_lm) if settings.protein_lm else None
    corpus = bilstm_lm.encode_corpus(
        bilstm_lm.read_corpus(bilstm_lm.default_corpus(data_dir)), tok)
    if path is not None and path.is_file():
        params, cfg = bilstm_lm.load_params(path)
        lm_losses = []
    else:
        cfg = bilstm_lm.PRESETS["small"]
        params, log = bilstm_lm.train(corpus, cfg, steps=settings.lm_steps, seed=settings.seed)
        lm_losses = log["losses"]
    tokens = [tok.encode(fasta.crop_termini(s)) for s in seqs]
    ae_cfg = autoencoder_config(tok.vocab_size)
    w = settings.protein_width
    ae_corpus = [np.concatenate([c[:(w + 1) // 2], c[-(w // 2):]]) if len(c) > w else c
                 for c in corpus]
    ae, ae_losses = train_autoencoder(ae_corpus, ae_cfg, steps=settings.ae_steps, width=w,
                                      seed=settings.seed)
    short = [tok.encode(fasta.crop_termini(s, w)) for s in seqs]
    out = {"k-mer composition (k=1,2)": kmer_features(seqs, tokenizers.AMINO_ACIDS, (1, 2)),
           "BiLSTM LM (mean hidden state)": lm_embeddings(params, cfg, tokens),
           "seq2seq autoencoder (encoder state)": autoencoder_embeddings(ae, ae_cfg, short, w)}
    return out, {"protein LM": lm_losses, "protein autoencoder": ae_losses}


def dna_embeddings(settings: Settings, seqs: list[str], *, data_dir=None) -> tuple:
    """``({name: [B, D]}, losses)`` of the splice sequences: k-mers, a nucleotide LM and an
    autoencoder, both trained on the splice and promoter sequences without their labels."""
    from zoo.bio import dna
    tok = tokenizers.NucleotideTokenizer(unknown="map")
    corpus = [tok.encode(s) for s in seqs + list(dna.promoters(data_dir).sequences)]
    params, log = bilstm_lm.train(corpus, DNA_LM, steps=settings.lm_steps, batch_size=32,
                                  max_length=64, seed=settings.seed)
    ae_cfg = autoencoder_config(tok.vocab_size)
    ae, ae_losses = train_autoencoder(corpus, ae_cfg, steps=settings.ae_steps, width=64,
                                      seed=settings.seed)
    tokens = [tok.encode(s) for s in seqs]
    out = {"k-mer composition (k=1,2,3)": kmer_features(seqs, tokenizers.DNA, (1, 2, 3)),
           "BiLSTM LM (mean hidden state)": lm_embeddings(params, DNA_LM, tokens,
                                                   widths=(64,)),
           "seq2seq autoencoder (encoder state)": autoencoder_embeddings(ae, ae_cfg, tokens,
                                                                         64)}
    return out, {"DNA LM": log["losses"], "DNA autoencoder": ae_losses}


def run(settings: Settings = Settings(), *, data_dir=None, out=None) -> dict:
    """Embeds DeepLoc proteins and splice sequences three ways and probes each.

    Returns:
        ``{"probe": {(dataset, embedding): {"accuracy", "mcc", "fold_accuracy", "dim"}},
        "counts", "losses", "seconds"}``.
    """
    from zoo.bio import dna, fasta
    start, rng = time.perf_counter(), np.random.default_rng(settings.seed)
    loc = fasta.deeploc("train", data_dir)
    loc = [loc[i] for i in _subset(len(loc), settings.max_proteins, rng)]
    splice = dna.splice(data_dir)
    keep = _subset(len(splice.sequences), settings.max_dna, rng)
    sets = {"DeepLoc localization": ([r["sequence"] for r in loc],
                                     np.array([r["label"] for r in loc]),
                                     fasta.DEEPLOC_LOCATIONS, protein_embeddings),
            "splice junctions": ([splice.sequences[i] for i in keep], splice.labels[keep],
                                 splice.classes, dna_embeddings)}
    result = {"probe": {}, "counts": {}, "losses": {}}
    panels = {}
    for name, (seqs, y, classes, embedder) in sets.items():
        embs, losses = embedder(settings, seqs, data_dir=data_dir)
        result["counts"][name] = (len(seqs), len(classes))
        result["losses"].update(losses)
        for emb, x in embs.items():
            scores = probe(x, y, k=settings.folds, seed=settings.seed)
            result["probe"][(name, emb)] = {**scores, "dim": x.shape[1]}
            panels[(name, emb)] = (pca_2d(x), y, classes)
    result["seconds"] = time.perf_counter() - start
    if out is not None:
        write_report(Path(out), settings, result, panels)
    return result


def write_report(out: Path, settings: Settings, result: dict, panels: dict) -> None:
    """Writes ``report.md``, ``probe.csv``, ``training.csv`` and ``embeddings_pca.png``."""
    out.mkdir(parents=True, exist_ok=True)
    plot_projections(panels, out / "embeddings_pca.png")
    lines = ["| data | embedding | dim | accuracy | Gorodkin MCC | fold accuracies |",
             "|---|---|---:|---:|---:|---|"]
    with open(out / "probe.csv", "w") as f:
        f.write("data,embedding,dim,accuracy,mcc," + ",".join(
            f"fold_{i}" for i in range(settings.folds)) + "\n")
        for (data, emb), s in result["probe"].items():
            folds = [f"{a:.3f}" for a in s["fold_accuracy"]]
            f.write(f"{data},{emb},{s['dim']},{s['accuracy']:.4f},{s['mcc']:.4f},"
                    + ",".join(folds) + "\n")
            lines.append(f"| {data} | {emb} | {s['dim']} | {s['accuracy']:.3f} | "
                         f"{s['mcc']:.3f} | {' '.join(folds)} |")
    with open(out / "training.csv", "w") as f:
        f.write("model,step,mean_loss_last_50\n")
        for model, losses in result["losses"].items():
            x = np.asarray(losses)
            f.writelines(f"{model},{i + 1},{x[i - 49:i + 1].mean():.4f}\n"
                         for i in range(49, len(x), 50))
    (out / "report.md").write_text(_report_text(settings, result, lines))


def _report_text(settings, result, lines):
    counts = "; ".join(f"{k}: {n} sequences, {c} classes"
                       for k, (n, c) in result["counts"].items())
    return "\n".join([
        "# Sequence embeddings: a cross-validated linear probe", "",
        f"Command: `python -m zoo.bio.embeddings {' '.join(sys.argv[1:])}`", "",
        f"Settings: `{settings}`; one run, seed {settings.seed}; wall time "
        f"{result['seconds']:.0f} s on a shared 2-core CPU.", "",
        f"Data: {counts}. DeepLoc: the single-location proteins of its training file "
        "(`deeploc_our_val_set.fasta`), cropped to 1000 residues (termini kept) for the LM and "
        f"to {settings.protein_width} for the autoencoder. Splice: the UCI splice-junction "
        "set (EI, IE, N).", "",
        "Embeddings: k-mer composition (the baseline); the BiLSTM LM's mean hidden state "
        "(proteins: the escape run's LM, trained on the 40 Pfam family alignments and the "
        "DeepLoc test and setHARD proteins, none of the probed proteins; DNA: a nucleotide LM "
        f"of the same code, {DNA_LM}, trained on the splice and promoter sequences without "
        "labels); the seq2seq LSTM autoencoder's encoder state (trained to reconstruct the "
        "same unlabelled corpora). Probe: multinomial logistic regression (L2 0.01, "
        f"standardised features), {settings.folds}-fold stratified cross-validation, "
        "out-of-fold accuracy and Gorodkin's MCC.", "",
        *lines, "",
        "`embeddings_pca.png`: the first two principal components of each embedding, "
        "coloured by class. `probe.csv`: this table. `training.csv`: the loss curves.", ""])


def main(argv: Sequence[str] | None = None) -> int:
    """``zoo bio embeddings [--quick] [--protein-lm LM.npz] [--data-dir D] [--out O]``."""
    p = argparse.ArgumentParser(prog="zoo bio embed", description=(
        "Protein and DNA embeddings (k-mers, BiLSTM LM, seq2seq autoencoder) and a "
        "cross-validated linear probe."))
    p.add_argument("--quick", action="store_true", help="subsets and short training")
    p.add_argument("--protein-lm", default=None,
                   help="a bilstm_lm.save_params file (default: the escape run's lm.npz)")
    p.add_argument("--data-dir", default=os.environ.get("ZOO_DATA"))
    p.add_argument("--out", default="benchmarks/results/bio/embeddings")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    settings = dataclasses.replace(QUICK if args.quick else Settings(), seed=args.seed)
    if args.protein_lm:
        settings = dataclasses.replace(settings, protein_lm=args.protein_lm)
    result = run(settings, data_dir=args.data_dir, out=args.out)
    for (data, emb), s in result["probe"].items():
        print(f"{data:22s} {emb:38s} accuracy {s['accuracy']:.3f}  MCC {s['mcc']:.3f}")
    print(f"report: {args.out}/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
