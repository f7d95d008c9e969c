"""A decoder-only Transformer language model on DeepLoc protein sequences.

    python examples/protein_lm.py --steps 1500

Trains on the DeepLoc validation split (1,678 proteins) and reports the held-out perplexity
per residue on the DeepLoc test split (2,768 proteins, homology-reduced against DeepLoc's
training data), next to the amino-acid unigram baseline (residue frequencies of the training
split). Sequences are cropped to their first ``--length - 1`` residues after a BOS token.
Data: the ``deeploc`` folder of the data sets (DeepLoc 1.0, CC BY 4.0; see its SOURCE.md),
found through ``zoo.data.data_dir``: pass ``--data-dir /path/to/data`` or set ``$ZOO_DATA``.
"""

import argparse
import math
import time
import jax
import jax.numpy as jnp
import numpy as np
import optax

from zoo import data
from zoo import transformer as tf

AMINO = "ACDEFGHIKLMNPQRSTVWYXUZB"          # ids 3 .. 26
VOCAB = 28


def read_fasta(path):
    return [r["sequence"] for r in data.read_fasta(path)]


def tokenize(seqs, length):
    """``[n, length]`` int32: BOS, then residues (unknown letters as X), then PAD."""
    ids = {a: i + 3 for i, a in enumerate(AMINO)}
    out = np.zeros((len(seqs), length), np.int32)
    for r, s in enumerate(seqs):
        toks = [tf.BOS] + [ids.get(a, ids["X"]) for a in s[:length - 1]]
        out[r, :len(toks)] = toks
    return out


def unigram_perplexity(train, held):
    """exp of the held-out cross-entropy of the training split's residue frequencies."""
    counts = np.bincount(train[:, 1:][train[:, 1:] != tf.PAD], minlength=VOCAB) + 1.0
    logp = np.log(counts / counts.sum())
    targets = held[:, 1:][held[:, 1:] != tf.PAD]
    return float(np.exp(-logp[targets].mean()))


def model_perplexity(params, cfg, held, batch=64):
    total, count = 0.0, 0.0
    nll = jax.jit(lambda p, x: tf.loss(p, (x[:, :-1],), x[:, 1:], cfg))
    for i in range(0, len(held), batch):
        x = held[i:i + batch]
        n = float((x[:, 1:] != tf.PAD).sum())
        total += float(nll(params, jnp.asarray(x))) * n
        count += n
    return math.exp(total / count)


def config(length: int = 96, layers: int = 2, d_model: int = 64) -> tf.Config:
    """The decoder-only model: pre-norm, 4 heads, d_ff = 4·d_model, dropout 0.1."""
    return tf.Config(kind="decoder", vocab_size=VOCAB, d_model=d_model, num_heads=4,
                     d_ff=4 * d_model, num_layers=layers, max_len=length, norm="pre",
                     dropout=0.1)


def load(length: int = 96, data_dir=None):
    """``(train, held)`` token arrays: DeepLoc's validation split and its test split.

    Raises:
        FileNotFoundError: if the data folder is not set or lacks the files (the message
            says where they go).
    """
    folder = data.data_dir("deeploc", root=data_dir)
    return (tokenize(read_fasta(folder / "deeploc_our_val_set.fasta"), length),
            tokenize(read_fasta(folder / "deeploc_test_set.fasta"), length))


def train_lm(train, cfg: tf.Config, steps: int = 1500, batch: int = 16, log_every: int = 250):
    """AdamW (warmup + cosine to 1e-4, peak 1e-3) on random crops of ``train``; returns params."""
    params = tf.init(jax.random.key(0), cfg)
    opt = optax.adamw(optax.warmup_cosine_decay_schedule(0, 1e-3, min(100, steps // 10), steps,
                                                         1e-4), weight_decay=0.01)
    state = opt.init(params)

    @jax.jit
    def step(params, state, x, key):
        value, grads = jax.value_and_grad(tf.loss)(params, (x[:, :-1],), x[:, 1:], cfg,
                                                   key=key)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    rng = np.random.default_rng(0)
    for i in range(steps):
        x = jnp.asarray(train[rng.integers(0, len(train), batch)])
        params, state, value = step(params, state, x, jax.random.key(i))
        if log_every and i % log_every == 0:
            print(f"step {i:5d}  train loss {float(value):.4f}", flush=True)
    return params


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--length", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--data-dir", help="folder of the data sets (default: $ZOO_DATA)")
    args = parser.parse_args()
    try:
        train, held = load(args.length, args.data_dir)
    except FileNotFoundError as err:
        raise SystemExit(f"protein_lm: {err}") from None
    cfg = config(args.length, args.layers, args.d_model)
    start = time.perf_counter()
    params = train_lm(train, cfg, args.steps, args.batch)
    ppl = model_perplexity(params, cfg, held)
    base = unigram_perplexity(train, held)
    print(f"held-out perplexity per residue: model {ppl:.2f}, amino-acid unigram {base:.2f} "
          f"(DeepLoc test split, {len(held)} proteins, first {args.length - 1} residues; "
          f"{args.steps} steps, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
