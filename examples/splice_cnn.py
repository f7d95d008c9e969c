"""Train the 1D sequence CNN (``cnn-splice``) on the UCI primate splice-junction set.

3,190 DNA windows of 60 nt, each labelled EI (exon→intron boundary, a donor site), IE
(intron→exon, an acceptor site) or N (neither; 52%, the majority baseline). The sequences are
one-hot encoded (the few IUPAC ambiguity codes D, N, S, R spread their unit mass over the bases
they stand for), split 80/20 with a fixed seed, and the CNN is trained with Adam on
cross-entropy. Held-out accuracy is printed; neural networks on this set are published at
93-96%.

Run from the repository root::

    python examples/splice_cnn.py            # default: 20 epochs, seed 0

The file is read from the data sets' ``dna_uci`` folder when one is set (``--data-dir`` or
``$ZOO_DATA``, through ``zoo.data.data_dir``), else from the copy in ``tests/data``. The same
run from the console::

    zoo train cnn-splice --data tests/data/splice.csv --sequence-column Sequence \
        --label-column Class --alphabet ACGT --holdout 0.2 --batch-size 64 --lr 3e-3 \
        --steps 780 --out runs/splice

Data: "Molecular Biology (Splice-junction Gene Sequences)", UCI Machine Learning Repository,
doi:10.24432/C5M888 (CC BY 4.0); Noordewier, Towell, Shavlik, NIPS 1991.
"""

import argparse
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import zoo
from zoo import data
from zoo.train import init_state, make_train_step

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "splice.csv"
CLASSES = ("EI", "IE", "N")

# IUPAC codes -> the bases (order A, C, G, T) they stand for.
_IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "N": "ACGT", "D": "AGT", "S": "CG",
          "R": "AG", "Y": "CT", "K": "GT", "M": "AC", "W": "AT", "B": "CGT", "H": "ACT",
          "V": "ACG"}


def encode_dna(seqs: list[str]) -> np.ndarray:
    """One-hot ``[B, T, 4]`` float32 (A, C, G, T); ambiguity codes share the unit mass."""
    table = np.zeros((128, 4), np.float32)
    for code, bases in _IUPAC.items():
        for base in bases:
            table[ord(code), "ACGT".index(base)] = 1.0 / len(bases)
    codes = np.array([[ord(c) for c in s] for s in seqs])
    if np.any(table[codes].sum(-1) == 0):
        raise ValueError("sequences contain symbols that are not IUPAC nucleotide codes")
    return table[codes]


def data_path(data_dir=None) -> Path:
    """``dna_uci/splice.csv`` of the data sets when a data folder is set, else the copy in
    ``tests/data``.

    Raises:
        FileNotFoundError: if a data folder is set but lacks the file (the message says
            where it goes).
    """
    if data_dir is None and not os.environ.get(data.DATA_ENV):
        return DATA
    return data.data_dir("dna_uci", "splice.csv", root=data_dir)


def load_splice(path=DATA) -> tuple[np.ndarray, np.ndarray]:
    """``(x [N, 60, 4] float32, y [N] int32)`` with labels indexing :data:`CLASSES`."""
    lines = Path(path).read_text().splitlines()[1:]
    rows = [[field.strip() for field in line.split(",")] for line in lines if line.strip()]
    y = np.array([CLASSES.index(r[0]) for r in rows], np.int32)
    return encode_dna([r[2] for r in rows]), y


def split(n: int, seed: int = 0, train_fraction: float = 0.8):
    """Indices ``(train, test)`` of a fixed, seeded random split."""
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(train_fraction * n))
    return order[:cut], order[cut:]


def train(x, y, *, epochs=20, batch_size=64, learning_rate=3e-3, seed=0,
          model="cnn-splice"):
    """AdamW with cosine decay over ``epochs`` shuffled passes; returns the params.

    ``model`` is a registry name or a :class:`zoo.ModelSpec`."""
    spec = zoo.get(model) if isinstance(model, str) else model
    steps_per_epoch = len(x) // batch_size
    schedule = optax.cosine_decay_schedule(learning_rate, epochs * steps_per_epoch)
    optimizer = optax.adamw(schedule, weight_decay=1e-4)
    state = init_state(spec, optimizer, jax.random.key(seed))
    step = make_train_step(spec, optimizer)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))[: steps_per_epoch * batch_size]
        for idx in order.reshape(steps_per_epoch, batch_size):
            state, _ = step(state, (jnp.asarray(x[idx]),), jnp.asarray(y[idx]))
    return state.params


def accuracy(params, x, y, model="cnn-splice") -> float:
    """Fraction of ``x`` classified as ``y``."""
    spec = zoo.get(model) if isinstance(model, str) else model
    logits = jax.jit(spec.apply)(params, jnp.asarray(x))
    return float(np.mean(np.asarray(logits.argmax(-1)) == y))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="split, init and shuffling seed")
    parser.add_argument("--data-dir", help="folder of the data sets (default: $ZOO_DATA, "
                        "else the copy in tests/data)")
    args = parser.parse_args(argv)
    try:
        x, y = load_splice(data_path(args.data_dir))
    except FileNotFoundError as err:
        raise SystemExit(f"splice_cnn: {err}") from None
    tr, te = split(len(x), args.seed)
    start = time.perf_counter()
    params = train(x[tr], y[tr], epochs=args.epochs, seed=args.seed)
    seconds = time.perf_counter() - start
    print(f"train {len(tr)}, held out {len(te)} (majority baseline "
          f"{np.mean(y[te] == 2):.3f})")
    print(f"train accuracy {accuracy(params, x[tr], y[tr]):.4f}")
    print(f"held-out accuracy {accuracy(params, x[te], y[te]):.4f} "
          f"after {args.epochs} epochs, {seconds:.1f} s of training")


if __name__ == "__main__":
    main()
