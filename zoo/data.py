"""Data for the trainer: Hugging Face ``datasets`` loading, tokenising, padded fixed-shape
batches with masks, seeded shuffling, and each process reading only its rows.

A :class:`Loader` draws batches of a fixed global size ``B``. Epoch ``e`` visits the examples
in the order ``permutation(seed, e)``; with length buckets ``T_1 < T_2 < ...`` each example
goes to the smallest bucket that holds it, batches are cut within a bucket and padded to its
length, so a run compiles one program per bucket. Process ``p`` of a multi-process run reads
only the rows ``[lo_p, hi_p)`` of each batch that its devices hold (:func:`process_rows`); the
trainer joins them with ``jax.make_array_from_process_local_data``. The loader's position
``(epoch, batch)`` is saved in checkpoints, so a resumed run sees the same batches.

``datasets`` is imported inside the functions that read files: ``import zoo`` never needs it.

>>> import numpy as np
>>> x, y = np.arange(10, dtype=np.float32)[:, None], np.arange(10)
>>> loader = Loader.from_arrays((x,), y, batch_size=4, seed=0)
>>> (xb,), yb = next(iter(loader))
>>> xb.shape, yb.shape, loader.state_dict()
((4, 1), (4,), {'epoch': 0, 'batch': 1, 'seed': 0})
"""

import abc
import dataclasses
import hashlib
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from zoo import _checks

FASTA_SUFFIXES = (".fasta", ".fa", ".faa", ".fna")
_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".txt": "text"}


# --- loading ----------------------------------------------------------------------------------

#: The environment variable that names the folder of real data sets (``deeploc/``,
#: ``dna_uci/``, ``pfam_domains_structures/``, ``viral_escape/``).
DATA_ENV = "ZOO_DATA"


def data_dir(*parts: str, root: str | Path | None = None) -> Path:
    """The path of a real data set: ``root`` (an argument) or ``$ZOO_DATA``, then ``parts``.

    The one data setting of the library, the examples and the console (``--data-dir``).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     (Path(d) / "deeploc").mkdir()
    ...     data_dir("deeploc", root=d).name
    'deeploc'

    Raises:
        FileNotFoundError: if neither ``root`` nor ``$ZOO_DATA`` is set, or the path does not
            exist; the message says where the files go.
    """
    base = root if root is not None else os.environ.get(DATA_ENV)
    where = ("put the data sets (folders deeploc/, dna_uci/, pfam_domains_structures/, "
             f"viral_escape/) in one folder and pass its path as data_dir= (--data-dir on the "
             f"console) or set {DATA_ENV}=/path/to/that/folder")
    if not base:
        raise FileNotFoundError(f"no data folder given: {where}")
    path = Path(base).expanduser().joinpath(*parts)
    if not path.exists():
        source = "data_dir" if root is not None else f"${DATA_ENV}"
        raise FileNotFoundError(f"{path} does not exist ({source} = {base}): {where}")
    return path



def load(source: str | Path, *, split: str = "train", cache_dir: str | None = None, **kw):
    """A ``datasets.Dataset`` from a local CSV/TSV/JSON(L)/text/FASTA file or a Hub name.

    Args:
        source: a file path (the suffix picks the reader) or a Hugging Face Hub dataset name.
        split: the split to return.
        cache_dir: the ``datasets`` cache folder (default: its own).
        **kw: passed to ``datasets.load_dataset``.

    Raises:
        FileNotFoundError: if ``source`` names a data file that does not exist.
        ConnectionError: if ``source`` is a Hub name and the Hub cannot be reached.
    """
    import datasets
    path = Path(source)
    suffix = path.suffix.lower()
    if path.exists():
        if suffix in FASTA_SUFFIXES:
            return load_fasta(path, cache_dir=cache_dir)
        if suffix not in _BUILDERS:
            raise ValueError(f"cannot read {path}: unknown suffix {suffix!r}; expected one of "
                             f"{sorted(_BUILDERS) + list(FASTA_SUFFIXES)}")
        if suffix == ".tsv":
            kw.setdefault("delimiter", "\t")
        table = datasets.load_dataset(_BUILDERS[suffix], data_files=str(path), split=split,
                                      cache_dir=cache_dir, **kw)
        return _strip_column_names(table)
    if _looks_like_path(source):
        raise FileNotFoundError(f"data file {path} does not exist")
    message = (f"cannot load {str(source)!r} from the Hugging Face Hub: huggingface.co is not "
               "reachable (no network?), and there is no local file of that name. Pass a "
               "local CSV, JSON, text or FASTA file instead.")
    if not _hub_reachable():
        raise ConnectionError(message)
    try:
        return datasets.load_dataset(str(source), split=split, cache_dir=cache_dir, **kw)
    except ConnectionError as err:
        raise ConnectionError(f"{message} ({err})") from err


def _looks_like_path(source) -> bool:
    """A suffix, a leading ``~``/``.``/``/``, two slashes, or a slash after an existing
    folder: a mistyped local file, not a Hub name (``glue``, ``user/name``)."""
    text, path = str(source), Path(source)
    if path.suffix or text.startswith(("~", ".", "/")) or "\\" in text:
        return True
    return text.count("/") > 1 or text.count("/") == 1 and path.parent.is_dir()


def _strip_column_names(table):
    """CSV headers such as ``"Class, Donor, Sequence"`` name columns with their spaces."""
    renames = {c: c.strip() for c in table.column_names if c != c.strip()}
    return table.rename_columns(renames) if renames else table


def load_fasta(path: str | Path, *, cache_dir: str | None = None):
    """A ``datasets.Dataset`` of FASTA records with columns ``id``, ``description``,
    ``sequence``.

    ``Dataset.from_generator`` caches by its arguments, so the file's SHA-256 is one of them:
    an edited file is read again, an unchanged one comes from the cache.

    Raises:
        ValueError: if the file does not start with a ``>`` header line.
    """
    import datasets
    path = Path(path)
    raw = path.read_bytes()
    first = next((line for line in raw.splitlines() if line.strip()), b">")
    if not first.startswith(b">"):
        raise ValueError(f"{path}: FASTA must start with a '>' header line, got {first[:40]!r}")
    digest = hashlib.sha256(raw).hexdigest()
    return datasets.Dataset.from_generator(
        _fasta_records, gen_kwargs={"path": str(path.absolute()), "sha256": digest},
        cache_dir=cache_dir)


def read_fasta(path: str | Path) -> list[dict]:
    """FASTA records as plain dicts (``id``, ``description``, ``sequence``), no ``datasets``.

    For small files read straight into NumPy; :func:`load_fasta` is the cached, streaming door.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file does not start with a ``>`` header line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no FASTA file at {path}")
    return list(_fasta_records(str(path), sha256=""))


def require_columns(dataset, names: Sequence[str]) -> None:
    """Raises ``KeyError`` naming the first of ``names`` missing from ``dataset``'s columns."""
    have = list(dataset) if isinstance(dataset, dict) else list(dataset.column_names)
    for name in names:
        if name not in have:
            raise KeyError(f"dataset has no column {name!r}; its columns are {have}")


def _fasta_records(path: str, sha256: str):
    del sha256   # part of the cache key only
    header, chunks = None, []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if header is not None:
                    yield _record(header, chunks)
                header, chunks = line[1:], []
            elif header is None:
                raise ValueError(f"{path}:{number}: FASTA must start with a '>' header line")
            else:
                chunks.append(line)
    if header is not None:
        yield _record(header, chunks)


def _record(header: str, chunks: list[str]) -> dict:
    name, _, description = header.partition(" ")
    return {"id": name, "description": description, "sequence": "".join(chunks)}


def _hub_reachable(timeout: float = 3.0) -> bool:
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HF_ENDPOINT")):
        return True   # let `datasets` go through the proxy / mirror and report
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


# --- tokenising and padding -------------------------------------------------------------------

class CharTokenizer:
    """One id per character of ``alphabet``, after the specials ``pad=0, unk=1, bos=2, eos=3``.

    >>> tok = CharTokenizer("ACGT")
    >>> tok.encode("GAX").tolist(), tok.vocab_size
    ([2, 6, 4, 1, 3], 8)
    """
    PAD, UNK, BOS, EOS = 0, 1, 2, 3

    def __init__(self, alphabet: str):
        if len(set(alphabet)) != len(alphabet) or not alphabet:
            raise ValueError(f"alphabet must be non-empty with distinct characters, "
                             f"got {alphabet!r}")
        self.alphabet = alphabet
        self._ids = {c: i + 4 for i, c in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 4

    def encode(self, text: str) -> np.ndarray:
        """``[bos, ids..., eos]`` as int32 (unknown characters map to ``unk``)."""
        ids = [self._ids.get(c, self.UNK) for c in text]
        return np.array([self.BOS, *ids, self.EOS], np.int32)


def pad(seqs: Sequence[np.ndarray], length: int, value: int = 0) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """Right-pads (or truncates) each sequence to ``length``; returns ``(array, mask)``.

    >>> a, m = pad([np.array([5, 6, 7]), np.array([8])], 2)
    >>> a.tolist(), m.tolist()
    ([[5, 6], [8, 0]], [[1, 1], [1, 0]])
    """
    out = np.full((len(seqs), length), value, np.int32)
    mask = np.zeros((len(seqs), length), np.int32)
    for i, s in enumerate(seqs):
        n = min(len(s), length)
        out[i, :n], mask[i, :n] = s[:n], 1
    return out, mask


# --- sequences as a model takes them ----------------------------------------------------------

#: IUPAC nucleotide codes -> the bases (order A, C, G, T) they stand for: an ambiguity code's
#: one-hot row spreads its unit mass over them.
IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "U": "T", "N": "ACGT", "D": "AGT",
         "S": "CG", "R": "AG", "Y": "CT", "K": "GT", "M": "AC", "W": "AT", "B": "CGT",
         "H": "ACT", "V": "ACG"}
ENCODINGS = ("onehot", "ids", "lm")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SequenceEncoding:
    """How strings become a model's inputs, fixed length ``T`` (longer ones are cropped).

    * ``"onehot"``: ``[B, T, C]`` float32, one channel per character of ``alphabet`` (with the
      DNA alphabet ``"ACGT"``, IUPAC ambiguity codes share the unit mass over their bases);
      padding rows are zero. With ``lengths`` the true lengths ``[B]`` follow as an input.
    * ``"ids"``: ``[B, T]`` int32, ``0`` padding, characters ``1 .. C``, unknown ``C + 1``.
    * ``"lm"``: ``[B, T]`` int32 as a Transformer reads them: ``PAD 0, BOS 1, MASK 2``,
      unknown ``3``, characters ``4 ..``; each sequence starts with ``BOS``.

    >>> enc = SequenceEncoding(kind="onehot", alphabet="ACGT", length=3)
    >>> enc.encode(["AN"])[0][0].tolist()
    [[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 0.0]]
    >>> SequenceEncoding(kind="ids", alphabet="AC", length=4).encode(["CAX"])[0].tolist()
    [[2, 1, 3, 0]]
    """
    kind: str
    alphabet: str
    length: int
    lengths: bool = False

    def __post_init__(self):
        _checks.one_of(self.kind, "kind", ENCODINGS)
        if not self.alphabet or len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError(f"alphabet must be non-empty with distinct characters, got "
                             f"{self.alphabet!r}")
        _checks.positive_int(self.length, "length")

    @property
    def vocab_size(self) -> int:
        """Token ids the ``"ids"``/``"lm"`` encodings use (padding and specials included)."""
        return len(self.alphabet) + (2 if self.kind == "ids" else 4)

    def encode(self, seqs: Sequence[str]) -> tuple:
        """The model's inputs for ``seqs`` (a tuple: ``(x,)`` or ``(x, lengths)``)."""
        seqs = [s.strip().upper() for s in seqs]
        if self.kind == "onehot":
            x = self._one_hot(seqs)
        else:
            first = 1 if self.kind == "ids" else 4
            ids = {c: i + first for i, c in enumerate(self.alphabet)}
            unknown = len(self.alphabet) + 1 if self.kind == "ids" else 3
            head = [] if self.kind == "ids" else [1]
            x, _ = pad([np.array(head + [ids.get(c, unknown) for c in s], np.int32)
                        for s in seqs], self.length)
        if not self.lengths:
            return (x,)
        return x, np.array([max(1, min(len(s), self.length)) for s in seqs], np.int32)

    def _one_hot(self, seqs):
        dna = self.alphabet == "ACGT"
        table = np.zeros((128, len(self.alphabet)), np.float32)
        for i, c in enumerate(self.alphabet):
            table[ord(c), i] = 1.0
        if dna:
            for code, bases in IUPAC.items():
                table[ord(code)] = 0.0
                for base in bases:
                    table[ord(code), "ACGT".index(base)] = 1.0 / len(bases)
        x = np.zeros((len(seqs), self.length, len(self.alphabet)), np.float32)
        for r, s in enumerate(seqs):
            codes = np.array([min(ord(c), 127) for c in s[:self.length]], np.int64)
            x[r, :len(codes)] = table[codes]
        return x

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- which rows this process reads ------------------------------------------------------------

def process_rows(mesh, batch_size: int) -> slice:
    """The rows of a global batch that this process's devices hold on ``mesh``.

    Raises:
        ValueError: if ``batch_size`` does not divide the mesh's data axes, or this process's
            rows are not one contiguous block.
    """
    from zoo import sharding as shd
    sharding = shd.sharding_for(mesh, ("batch",), (batch_size,), name="batch")
    spans = sorted({(ix[0].start or 0, batch_size if ix[0].stop is None else ix[0].stop)
                    for ix in sharding.addressable_devices_indices_map((batch_size,)).values()})
    rows = set().union(*(range(a, b) for a, b in spans))
    lo, hi = spans[0][0], spans[-1][1]
    if rows != set(range(lo, hi)):
        raise ValueError(f"this process's devices hold batch rows {spans}, not one block; "
                         "order the mesh's devices by process")
    return slice(lo, hi)


# --- the loader -------------------------------------------------------------------------------

class Batches(abc.ABC):
    """What the trainer reads batches from: a fixed global batch size, iteration over this
    process's rows of each batch as ``(inputs, targets)``, and a resumable position.

    :class:`Loader` is one; a user's own source subclasses this and defines every method.
    """
    batch_size: int

    @abc.abstractmethod
    def __iter__(self) -> Iterator:
        """Batches ``(inputs tuple, targets)`` of this process's rows."""

    @abc.abstractmethod
    def state_dict(self) -> dict:
        """The position (JSON-able), saved with each checkpoint."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Continues from a position returned by :meth:`state_dict`."""

    @abc.abstractmethod
    def for_mesh(self, mesh) -> "Batches":
        """Reads only the rows of each batch that this process's devices hold on ``mesh``."""


class Buckets(NamedTuple):
    """Length buckets of a :class:`Loader`: each example's length and the increasing padded
    lengths ``T_1 < T_2 < ...``."""
    lengths: Sequence[int]
    sizes: Sequence[int]


class Loader(Batches):
    """Seeded, resumable batches of a fixed global size from a table of columns.

    Args:
        source: columns by name: a ``dict`` of equal-length arrays/lists, or a
            ``datasets.Dataset`` (only the rows of each batch are read).
        collate: ``collate(columns, length) -> (inputs, targets)`` turns one batch's columns
            (numpy arrays or lists) into model inputs; ``length`` is the bucket length (or
            ``None`` without buckets).
        batch_size: the global batch size ``B`` (all processes together).
        seed: seeds the order of every epoch.
        shuffle: visit examples in a seeded random order (else in order).
        repeat: run over epochs forever, continuing from the saved position (training);
            else every iteration is one pass from the start (evaluation).
        buckets: per-example lengths and increasing bucket lengths (:class:`Buckets`);
            examples longer than the last bucket go to it (and are truncated by ``collate``).

    Every batch holds exactly ``B`` examples (a short remainder is dropped), so shapes stay
    fixed.
    """

    def __init__(self, source, collate: Callable, *, batch_size: int, seed: int = 0,
                 shuffle: bool = True, repeat: bool = True, buckets: "Buckets | None" = None):
        _checks.positive_int(batch_size, "batch_size")
        self.source, self.collate = source, collate
        self.batch_size, self.seed = batch_size, seed
        self.shuffle, self.repeat = shuffle, repeat
        self.size = _table_len(source) if isinstance(source, dict) else len(source)
        if buckets is not None and not isinstance(buckets, Buckets):
            raise TypeError(f"buckets must be a zoo.data.Buckets(lengths, sizes), got "
                            f"{type(buckets).__name__}")
        self.lengths = None if buckets is None else np.asarray(buckets.lengths)
        self.buckets = None if buckets is None else tuple(int(b) for b in buckets.sizes)
        if self.buckets is not None and list(self.buckets) != sorted(set(self.buckets)):
            raise ValueError(f"buckets must be increasing, got {self.buckets}")
        if self.size < batch_size:
            raise ValueError(f"batch_size {batch_size} exceeds the {self.size} examples")
        self.rows = slice(0, batch_size)
        self._epoch, self._batch = 0, 0
        self._plans: dict[int, list] = {}

    @classmethod
    def from_arrays(cls, inputs: tuple, targets, **kw) -> "Loader":
        """A loader over in-memory arrays: ``inputs`` a tuple of arrays, ``targets`` an array
        or a dict of arrays, all with the same leading length."""
        columns = {f"input_{i}": np.asarray(x) for i, x in enumerate(inputs)}
        tkeys = sorted(targets) if isinstance(targets, dict) else None
        if tkeys is None:
            columns["target"] = np.asarray(targets)
        else:
            columns.update({f"target_{k}": np.asarray(targets[k]) for k in tkeys})

        def collate(cols, length):
            xs = tuple(cols[f"input_{i}"] for i in range(len(inputs)))
            ys = cols["target"] if tkeys is None else {k: cols[f"target_{k}"] for k in tkeys}
            return xs, ys
        return cls(columns, collate, **kw)

    def for_mesh(self, mesh) -> "Loader":
        """Reads only the rows of each batch that this process's devices hold on ``mesh``."""
        self.rows = process_rows(mesh, self.batch_size)
        return self

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self._plan(0))

    def state_dict(self) -> dict:
        """The position: the next batch to read."""
        return {"epoch": self._epoch, "batch": self._batch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        """Continues from a position saved by :meth:`state_dict`.

        Raises:
            ValueError: if the position was saved with another seed.
        """
        if state.get("seed") != self.seed:
            raise ValueError(f"data position was saved with seed {state.get('seed')}, "
                             f"but this loader has seed {self.seed}")
        self._epoch, self._batch = int(state["epoch"]), int(state["batch"])

    def __iter__(self):
        if not self.repeat:
            for indices, length in self._plan(0):
                yield self._read(indices, length)
            return
        while True:
            plan = self._plan(self._epoch)
            if self._batch >= len(plan):
                self._epoch, self._batch = self._epoch + 1, 0
                continue
            indices, length = plan[self._batch]
            self._batch += 1
            yield self._read(indices, length)

    def _read(self, indices, length):
        rows = indices[self.rows]
        if isinstance(self.source, dict):
            columns = {k: _take(v, rows) for k, v in self.source.items()}
        else:
            columns = self.source[rows]       # a Dataset reads just these rows
        return self.collate(columns, length)

    def _plan(self, epoch: int) -> list:
        if epoch not in self._plans:
            self._plans = {epoch: self._make_plan(epoch)}   # keep one epoch in memory
        return self._plans[epoch]

    def _make_plan(self, epoch: int) -> list:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.size) if self.shuffle else np.arange(self.size)
        b = self.batch_size
        if self.buckets is None:
            return [(order[i:i + b], None) for i in range(0, self.size - b + 1, b)]
        which = np.minimum(np.searchsorted(self.buckets, self.lengths[order]),
                           len(self.buckets) - 1)
        plan = []
        for k, length in enumerate(self.buckets):
            members = order[which == k]
            plan += [(members[i:i + b], length) for i in range(0, len(members) - b + 1, b)]
        if not plan:
            raise ValueError(f"no bucket of {self.buckets} holds {b} examples")
        if self.shuffle:
            plan = [plan[i] for i in rng.permutation(len(plan))]
        return plan


def _table_len(columns: dict) -> int:
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"columns have different lengths: {lengths}")
    return next(iter(lengths.values()))


def _take(column, rows):
    if isinstance(column, np.ndarray):
        return column[rows]
    return [column[i] for i in rows]


# --- loaders for common tables ----------------------------------------------------------------

def columns_loader(dataset, inputs: Sequence[str], target: str, *, batch_size: int,
                   input_dtype=np.float32, **kw) -> Loader:
    """Batches of ``inputs`` columns (stacked per row into ``[B, I]`` when several scalar
    columns are named) and a ``target`` column, from a table or ``datasets.Dataset``.

    Raises:
        KeyError: naming a column the dataset lacks.
    """
    inputs = list(inputs)
    require_columns(dataset, inputs + [target])
    dataset = _numpy_format(dataset)

    def collate(cols, length):
        xs = [np.asarray(cols[c], input_dtype) for c in inputs]
        x = np.stack(xs, axis=-1) if all(v.ndim == 1 for v in xs) and len(xs) > 1 else xs[0]
        if x.ndim == 1:
            x = x[:, None]
        return (x,), np.asarray(cols[target])
    return Loader(dataset, collate, batch_size=batch_size, **kw)


def sequence_loader(dataset, column: str, tokenizer: CharTokenizer, *, batch_size: int,
                    buckets: Sequence[int], task: str = "lm",
                    label_column: str | None = None, **kw) -> Loader:
    """Token batches ``[B, T]`` padded to their bucket length with masks.

    * ``task="lm"``: inputs ``tokens[:-1]``, labels ``tokens[1:]`` (the next
      token), mask 1 on real positions.
    * ``task="sequence_labelling"``: inputs the characters' ids (no bos/eos), labels the
      integer list in ``label_column``, one per character.
    * ``task="classification"``: inputs the ids, targets the integer ``label_column``.

    Raises:
        KeyError: naming a column the dataset lacks.
        ValueError: for an unknown ``task``.
    """
    _checks.one_of(task, "task", ("lm", "sequence_labelling",
                                  "classification"))
    needed = [column] + ([label_column] if task != "lm" else [])
    if None in needed:
        raise ValueError(f"task {task!r} needs label_column")
    require_columns(dataset, needed)
    texts = dataset[column]
    extra = 1 if task == "lm" else -1   # +2 bos/eos, -1 shift | -2 bos/eos
    lengths = [len(t) + extra for t in texts]

    def collate(cols, length):
        ids = [tokenizer.encode(t) for t in cols[column]]
        if task == "lm":
            x, _ = pad([s[:-1] for s in ids], length)
            y, mask = pad([s[1:] for s in ids], length)
            return (x,), {"labels": y, "mask": mask}
        x, mask = pad([s[1:-1] for s in ids], length)
        if task == "classification":
            return (x,), np.asarray(cols[label_column], np.int32)
        y, _ = pad([np.asarray(l, np.int32) for l in cols[label_column]], length)
        return (x,), {"labels": y, "mask": mask}
    return Loader(dataset, collate, batch_size=batch_size, buckets=Buckets(lengths, buckets),
                  **kw)


def _numpy_format(dataset):
    # numpy, never "jax": formatting as jax would touch a device from the data pipeline.
    return dataset if isinstance(dataset, dict) else dataset.with_format("numpy")


__all__ = ["load", "load_fasta", "read_fasta", "require_columns", "CharTokenizer", "pad",
           "process_rows", "Batches", "Buckets", "Loader", "SequenceEncoding", "columns_loader",
           "sequence_loader"]
