"""From a user's file to a model's training job, and back from a saved model to predictions.

The console's ``zoo train``, ``zoo predict`` and ``zoo eval`` read FASTA or CSV files here.
Rows are sequences (a FASTA record or a table column), optionally with a class label (a table
column, or word ``N`` of a FASTA header such as DeepLoc's ``>Q9Y4C2 Cell.membrane-M``), or rows
of numeric features. The model decides the encoding (:class:`zoo.data.SequenceEncoding`):
token ids for a Transformer or a CNN with a vocabulary, one-hot channels for a CNN or RNN on
floats; the model's input, vocabulary, length and class sizes are set from the data. The
record of these choices is saved with the model, so predicting re-encodes a file the same way.

Language-model targets: causal, ``x = ids[:, :-1]``, ``y = ids[:, 1:]`` (``PAD`` ignored);
masked, 15% of the residues (at least one per sequence) replaced by ``MASK`` in ``x`` and
``y`` the original ids there, ``PAD`` elsewhere.

>>> rows = {"id": ["a", "b"], "sequence": ["ACGT", "GG"], "label": ["x", "y"]}
>>> (x,), y = encode_rows(rows, {"task": "classification", "classes": ["x", "y"],
...     "encoding": {"kind": "ids", "alphabet": "ACGT", "length": 4}})
>>> x.tolist(), y.tolist()
([[1, 2, 3, 4], [3, 3, 0, 0]], [0, 1])
"""

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from zoo import data
from zoo.registry import ModelSpec

MASK_RATE = 0.15
_PAD, _MASK, _FIRST_RESIDUE = 0, 2, 3     # zoo.transformer's PAD and MASK; 3 = unknown


class Job(NamedTuple):
    """A training job: the sized spec, ``(inputs, targets)`` to train on and to hold out
    (or ``None``), the record saved with the model, and a line about the data."""
    spec: ModelSpec
    train: tuple
    held: tuple | None
    record: dict
    about: str


# --- reading files ----------------------------------------------------------------------------

def read_rows(source, record: dict, *, need_labels: bool = False) -> dict:
    """Columns ``id``, and ``sequence``, ``label``, ``features`` as the record asks, from a
    FASTA or table file (labels where the file has them; ``need_labels``: a missing label
    column is an error)."""
    if Path(str(source)).suffix.lower() in data.FASTA_SUFFIXES:
        return _fasta_rows(source, record.get("label_from_header"))
    table = data.load(source)
    columns = {name: table[name] for name in table.column_names}
    rows = {"id": [str(v) for v in columns.get("id", range(len(table)))]}
    if record.get("inputs"):
        data.require_columns(columns, record["inputs"])
        rows["features"] = np.stack([np.asarray(columns[c], np.float32)
                                     for c in record["inputs"]], -1)
    else:
        data.require_columns(columns, [record["sequence_column"]])
        rows["sequence"] = [str(s).strip() for s in columns[record["sequence_column"]]]
    label = record.get("label_column")
    if label is not None and (need_labels or label in columns):
        data.require_columns(columns, [label])
        rows["label"] = [str(v).strip() for v in columns[label]]
    return rows


def _fasta_rows(path, field: int | None) -> dict:
    records = data.read_fasta(path)
    if not records:
        raise ValueError(f"data: {path} holds no FASTA records")
    rows = {"id": [r["id"] for r in records], "sequence": [r["sequence"] for r in records]}
    if field is not None:
        labels = []
        for r in records:
            words = [r["id"]] + r["description"].split()
            if len(words) < field:
                raise ValueError(f"--label-from-header {field}: the header of {r['id']} has "
                                 f"{len(words)} words: {' '.join(words)!r}")
            labels.append(words[field - 1])
        rows["label"] = labels
    return rows


# --- encoding ---------------------------------------------------------------------------------

def encode_rows(rows: dict, record: dict, seed: int = 0) -> tuple:
    """``(inputs, targets)`` of ``rows`` as the record's model takes them (targets ``None``
    for a classifier's rows without labels)."""
    task = record["task"]
    if record.get("inputs"):
        return (rows["features"],), _class_ids(rows, record)
    enc = data.SequenceEncoding(**record["encoding"])
    if task == "lm":
        (ids,) = dataclasses.replace(enc, length=enc.length + 1).encode(rows["sequence"])
        return (ids[:, :-1],), ids[:, 1:]
    if task == "masked_lm":
        (ids,) = enc.encode(rows["sequence"])
        return _mask(ids, np.random.default_rng(seed))
    return enc.encode(rows["sequence"]), _class_ids(rows, record)


def _class_ids(rows, record):
    if "label" not in rows:
        return None
    index = {c: i for i, c in enumerate(record["classes"])}
    unknown = sorted(set(rows["label"]) - set(index))
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not among the model's classes "
                         f"{record['classes']}")
    return np.array([index[v] for v in rows["label"]], np.int32)


def _mask(ids, rng):
    residue = ids >= _FIRST_RESIDUE
    chosen = residue & (rng.random(ids.shape) < MASK_RATE)
    for r in np.flatnonzero(residue.any(1) & ~chosen.any(1)):   # at least one per sequence
        chosen[r, rng.choice(np.flatnonzero(residue[r]))] = True
    return (np.where(chosen, _MASK, ids).astype(np.int32),), np.where(
        chosen, ids, _PAD).astype(np.int32)


def _encoding(spec: ModelSpec, alphabet: str, length: int) -> data.SequenceEncoding:
    if spec.task in ("lm", "masked_lm"):
        return data.SequenceEncoding(kind="lm", alphabet=alphabet, length=length)
    inputs = spec.example_inputs(jax.random.key(0), 1)
    x = inputs[0]
    if x.ndim == 2 and jnp.issubdtype(x.dtype, jnp.integer):
        return data.SequenceEncoding(kind="ids", alphabet=alphabet, length=length)
    if x.ndim == 3 and jnp.issubdtype(x.dtype, jnp.floating):
        return data.SequenceEncoding(kind="onehot", alphabet=alphabet, length=length,
                                     lengths=len(inputs) == 2)
    raise ValueError(f"{spec.name} takes inputs of shape {tuple(x.shape)}, not sequences: "
                     "pick a sequence model (cnn-splice, cnn-protein_tiny, rnn-tiny, "
                     "transformer-lm_tiny), or give an MLP numeric columns with --inputs")


def _sized(spec: ModelSpec, enc, classes: int, length: int) -> ModelSpec:
    """The spec with its input, vocabulary, length and class sizes set from the data."""
    cfg = spec.config
    if spec.family == "transformer":
        return spec.replace(vocab_size=enc.vocab_size, max_len=max(cfg.max_len, length))
    if spec.family == "cnn":
        if len(cfg.input_size) != 1:
            raise ValueError(f"{spec.name} is a 2D (image) CNN; for sequences pick a 1D one "
                             "such as cnn-splice, cnn-dna_tiny or cnn-protein_tiny")
        sizes = ({"vocab_size": enc.vocab_size} if enc.kind == "ids"
                 else {"in_channels": len(enc.alphabet)})
        return spec.replace(input_size=(length,), num_classes=classes, **sizes)
    if spec.family == "rnn":
        return spec.replace(in_dim=len(enc.alphabet), out_dim=classes)
    raise ValueError(f"zoo train cannot fit {spec.name} ({spec.family}) to sequence data")


# --- a job from the console's arguments -------------------------------------------------------

def job(args, spec: ModelSpec) -> Job:
    """The training job of ``zoo train``'s arguments for ``spec``."""
    if args.data is None:
        return _example_job(args, spec)
    if spec.task not in ("lm", "masked_lm", "classification"):
        raise ValueError(f"zoo train on a file trains language models (lm, masked_lm) and "
                         f"classifiers; {spec.name}'s task is {spec.task!r}")
    record = _record(args, spec)
    rows = read_rows(args.data, record, need_labels=spec.task == "classification")
    if record["task"] == "classification":
        if "label" not in rows:
            raise ValueError(f"{spec.name} is a classifier: give its labels with "
                             "--label-column (tables) or --label-from-header N (FASTA)")
        record["classes"] = sorted(set(rows["label"]))
        if len(record["classes"]) < 2:
            raise ValueError(f"labels: {args.data} has one class only "
                             f"({record['classes']}); a classifier needs at least 2")
    spec, record = _size(spec, record, rows, args)
    inputs, targets = encode_rows(rows, record, args.seed)
    train, held = _split(inputs, targets, args.holdout, args.seed, args.batch_size)
    about = (f"{len(rows['id'])} rows of {args.data}, task {record['task']}"
             + (f", {len(record['classes'])} classes" if record.get("classes") else "")
             + (f", {len(held[1])} held out" if held is not None else ""))
    return Job(spec, train, held, record, about)


def _record(args, spec) -> dict:
    inputs = [c.strip() for c in args.inputs.split(",") if c.strip()]
    return {"task": spec.task, "sequence_column": args.sequence_column,
            "label_column": args.label_column, "label_from_header": args.label_from_header,
            "inputs": inputs, "alphabet": args.alphabet.upper()}


def _size(spec, record, rows, args):
    classes = len(record.get("classes") or [0])
    if record["inputs"]:
        if spec.family != "mlp":
            raise ValueError(f"--inputs gives feature columns to an MLP; {spec.name} is a "
                             f"{spec.family} model (give it sequences)")
        return spec.replace(in_dim=len(record["inputs"]), out_dim=classes), record
    longest = max(len(s) for s in rows["sequence"]) + (1 if spec.task != "classification"
                                                       else 0)
    length = min(longest, args.max_len)
    enc = _encoding(spec, record["alphabet"], length)
    record["encoding"] = dataclasses.asdict(enc)
    return _sized(spec, enc, classes, length), record


def _split(inputs, targets, fraction: float, seed: int, batch_size: int):
    if not 0 <= fraction < 1:
        raise ValueError(f"--holdout must be in [0, 1), got {fraction}")
    n = len(targets)
    order = np.random.default_rng(seed).permutation(n)
    cut = n - int(round(fraction * n))
    if cut < batch_size:
        raise ValueError(f"--batch-size {batch_size} exceeds the {cut} training rows "
                         f"({n} in the file, {n - cut} held out)")
    take = lambda idx: (tuple(x[idx] for x in inputs), targets[idx])
    return take(order[:cut]), (take(order[cut:]) if cut < n else None)


def _example_job(args, spec) -> Job:
    inputs, targets = spec.example_batch(jax.random.key(args.seed + 1), args.examples)
    held = spec.example_batch(jax.random.key(args.seed + 2), args.batch_size)
    to_np = lambda t: jax.tree.map(np.asarray, t)
    about = (f"no --data given: {args.examples} random examples from the model's "
             "example_batch (random data: the loss shows the program runs, not that the "
             "model learns; pass --data FILE to learn from a file)")
    return Job(spec, to_np((inputs, targets)), to_np(held) if args.eval_every else None,
               {"task": spec.task, "example": True}, about)


# --- using a trained model --------------------------------------------------------------------

def load_model(path) -> tuple[ModelSpec, Any, dict]:
    """``(spec, params, record)`` of a folder written by ``zoo train --out`` or ``zoo.save``."""
    from zoo import checkpoints
    path = Path(path)
    if (path / "model" / checkpoints.META).is_file():
        path = path / "model"
    spec, params = checkpoints.load(path)
    record = checkpoints.record(path).get("extra") or {}
    if not record.get("task") or record.get("example"):
        raise ValueError(f"{path} was not trained on a file by zoo train, so it records no "
                         "encoding for zoo predict/eval; use zoo.load in Python")
    return spec, params, record


def outputs(spec, params, inputs, batch_size: int) -> np.ndarray:
    """The model's outputs on ``inputs`` in batches (the last one padded, then cut)."""
    apply = jax.jit(spec.apply)
    n, parts = len(inputs[0]), []
    for i in range(0, n, batch_size):
        chunk = [x[i:i + batch_size] for x in inputs]
        short = batch_size - len(chunk[0])
        chunk = [np.concatenate([x, np.repeat(x[-1:], short, 0)]) for x in chunk]
        parts.append(np.asarray(apply(params, *map(jnp.asarray, chunk)))[:batch_size - short])
    return np.concatenate(parts)


def accuracy(spec, params, inputs, labels, batch_size: int = 256) -> float:
    """Fraction of ``inputs`` whose argmax output is the label."""
    return float(np.mean(outputs(spec, params, inputs, batch_size).argmax(-1) == labels))


def _token_nll(spec, params, inputs, targets, batch_size):
    logits = outputs(spec, params, inputs, batch_size).astype(np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    return nll, targets != _PAD


def predict(spec, params, record: dict, rows: dict, batch_size: int) -> list[tuple]:
    """A header and one row per input: the class and its probability, or the sequence's
    loss and perplexity per predicted token (language models)."""
    inputs, targets = encode_rows(rows, record)
    if record["task"] in ("lm", "masked_lm"):
        nll, mask = _token_nll(spec, params, inputs, targets, batch_size)
        per = (nll * mask).sum(1) / np.maximum(mask.sum(1), 1)
        return [("id", "tokens", "loss", "perplexity")] + [
            (i, int(m), round(float(v), 4), round(math.exp(v), 4))
            for i, m, v in zip(rows["id"], mask.sum(1), per)]
    logits = outputs(spec, params, inputs, batch_size)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return [("id", "predicted", "probability")] + [
        (i, record["classes"][int(p.argmax())], round(float(p.max()), 4))
        for i, p in zip(rows["id"], probs)]


def evaluate(spec, params, record: dict, rows: dict, batch_size: int) -> dict:
    """Loss (and accuracy) of a saved model on a labelled file."""
    inputs, targets = encode_rows(rows, record)
    if record["task"] in ("lm", "masked_lm"):
        nll, mask = _token_nll(spec, params, inputs, targets, batch_size)
        loss = float((nll * mask).sum() / max(mask.sum(), 1))
        return {"sequences": len(rows["id"]), "tokens": int(mask.sum()),
                "loss": round(loss, 4), "perplexity": round(math.exp(loss), 4)}
    if targets is None:
        raise ValueError("zoo eval needs labels: the file has no "
                         f"{record.get('label_column') or 'header label'}")
    logits = outputs(spec, params, inputs, batch_size).astype(np.float64)
    logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    loss = float(np.mean(logz - logits[np.arange(len(targets)), targets]))
    return {"examples": len(targets), "loss": round(loss, 4),
            "accuracy": round(float(np.mean(logits.argmax(-1) == targets)), 4)}


# --- the loss curve ---------------------------------------------------------------------------

def plot_losses(metrics_path) -> Path:
    """Draws the training (and held-out) loss of a JSON-lines metrics file into a PNG beside
    it (``metrics.jsonl`` -> ``metrics.loss.png``); returns its path."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    path = Path(metrics_path)
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("loss", "train"), ("eval_loss", "held out")):
        points = [(r["step"], r[key]) for r in records if key in r]
        if points:
            ax.plot(*zip(*points), marker="." if key == "eval_loss" else None, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    out = path.with_name(path.stem + ".loss.png")
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
