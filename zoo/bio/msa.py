"""Multiple sequence alignments: reading, the column ↔ residue maps, integer encoding and
sequence weights.

An alignment has ``B`` sequences over ``T`` columns. It is read from aligned FASTA, the format
of Pfam's family alignments (``*.align.80`` here) and of A2M/A3M files, where upper-case
letters and ``-`` are *match/delete states* (one per alignment column) and lower-case letters
and ``.`` are *insert states*: residues of the sequence that the family model does not align,
or padding for them. As Pfam does, insert states are not columns: they are dropped from the
aligned rows (so every row has the same width ``T``) but kept in the sequence (upper-cased),
where their column is ``-1``. For sequence ``b`` with residues ``r = 0 .. n_b − 1``::

    column_of_residue[r] = the column of residue r,   or −1 for an insert-state residue
    residue_of_column[t] = the residue in column t,   or −1 where the row has a gap

The encoding maps each aligned row to integers over a 21-letter alphabet, the 20 amino acids
in one-letter order ``ACDEFGHIKLMNPQRSTVWY`` (``0 .. 19``) and the gap ``-`` (``20``, also
:data:`GAP`). Other letters (``X`` unknown, ``B``/``Z``/``J`` ambiguous, ``U`` selenocysteine,
``O`` pyrrolysine) are mapped to the gap, as plmDCA and most DCA codes do: the residue is
there but its identity is not one of the 20 states the statistics count.

Sequence weights down-weight redundant sequences (Morcos et al. 2011; Ekeberg et al. 2013)::

    id(a, b) = (1/T) Σ_t [x_at = x_bt]              (gaps count: a gap matches a gap)
    w_a      = 1 / |{b : id(a, b) ≥ θ}|             (b = a included, so w_a ≤ 1)
    M_eff    = Σ_a w_a

with θ = 0.8 by default. (plmDCA counts ``id > θ`` instead of ``≥``; the two differ only for
pairs exactly at the threshold.)

Shape letters: ``B`` sequences of the alignment (the batch), ``T`` alignment columns,
``V`` alphabet size (21), ``K`` rows chosen from an alignment.

>>> aln = parse_alignment(">s1\\nAC-d\\n>s2\\nA.CGe\\n")
>>> aln.rows, aln.sequences
(('AC-', 'ACG'), ('ACD', 'ACGE'))
>>> aln.column_of_residue(0).tolist(), aln.residue_of_column(0).tolist()
([0, 1, -1], [0, 1, -1])
>>> encode(aln.rows).tolist()
[[0, 1, 20], [0, 1, 5]]

References:
    F. Morcos et al., "Direct-coupling analysis of residue coevolution captures native
    contacts across many protein families", PNAS 108(49), 2011.
    https://doi.org/10.1073/pnas.1111471108
    M. Ekeberg et al., "Improved contact prediction in proteins: using pseudolikelihoods to
    infer Potts models", Physical Review E 87, 2013. https://doi.org/10.1103/PhysRevE.87.012707
    R. D. Finn et al., "The Pfam protein families database", Nucleic Acids Research 44, 2016
    (the A2M/Pfam convention of match and insert states). https://doi.org/10.1093/nar/gkv1344
    R. Rao et al., "MSA Transformer", ICML 2021 (diversity-maximising row selection,
    :func:`diverse_rows`). https://doi.org/10.1101/2021.02.12.430858
"""

import dataclasses
from pathlib import Path

import numpy as np
from jaxtyping import Float, Int

#: The 20 amino acids in one-letter order, then the gap: index = integer code.
ALPHABET = "ACDEFGHIKLMNPQRSTVWY-"
#: The code of the gap (and of every letter outside the 20 amino acids).
GAP = 20
#: Alphabet size ``V``.
NUM_STATES = len(ALPHABET)

_LOOKUP = np.full(256, GAP, np.int8)
for _code, _letter in enumerate(ALPHABET[:GAP]):
    _LOOKUP[ord(_letter)] = _code
    _LOOKUP[ord(_letter.lower())] = _code


@dataclasses.dataclass(frozen=True)
class Alignment:
    """A read alignment.

    Attributes:
        ids: each record's name (the header up to the first space), e.g. ``Q9XYZ1/12-88``.
        raw: each record's aligned text as read (match states, inserts, gaps).
        rows: the aligned rows, match columns only: upper case and ``-``, all of width ``T``.
        sequences: the gap-free sequences, insert states included, upper case.
    """
    ids: tuple[str, ...]
    raw: tuple[str, ...]
    rows: tuple[str, ...]
    sequences: tuple[str, ...]

    @property
    def num_columns(self) -> int:
        """``T``, the width of every row."""
        return len(self.rows[0]) if self.rows else 0

    def __len__(self) -> int:
        return len(self.rows)

    def column_of_residue(self, b: int) -> Int[np.ndarray, "n"]:
        """For each residue of sequence ``b``: its alignment column, or −1 (insert state)."""
        text = np.frombuffer(self.raw[b].encode(), np.uint8)
        insert = _is_lower(text) | (text == ord("."))
        column = np.cumsum(~insert) - 1              # match states and '-' are the columns
        residue = (text != ord("-")) & (text != ord("."))
        return np.where(insert[residue], -1, column[residue]).astype(np.int64)

    def residue_of_column(self, b: int) -> Int[np.ndarray, "T"]:
        """For each alignment column: the index of sequence ``b``'s residue there, or −1."""
        col = self.column_of_residue(b)
        out = np.full(self.num_columns, -1, np.int64)
        matched = np.flatnonzero(col >= 0)
        out[col[matched]] = matched
        return out

    def encoded(self) -> Int[np.ndarray, "B T"]:
        """The rows as integer codes (see :func:`encode`)."""
        return encode(self.rows)


def _is_lower(codes: np.ndarray) -> np.ndarray:
    return (codes >= ord("a")) & (codes <= ord("z"))


def parse_alignment(text: str, *, source: str = "<text>") -> Alignment:
    """An :class:`Alignment` from aligned-FASTA text (see the module docstring for states).

    Raises:
        ValueError: if ``text`` does not start with a ``>`` header, has no records, or two
            records have a different number of match columns (naming both).
    """
    ids, raw = [], []
    chunks: list[str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            if chunks is not None:
                raw.append("".join(chunks))
            ids.append(line[1:].split(None, 1)[0] if len(line) > 1 else "")
            chunks = []
        elif chunks is None:
            raise ValueError(f"{source}:{number}: an alignment must start with a '>' header, "
                             f"got {line[:40]!r}")
        else:
            chunks.append(line)
    if chunks is None:
        raise ValueError(f"{source}: no alignment records found")
    raw.append("".join(chunks))
    rows = tuple("".join(c for c in r if not (c.islower() or c == ".")).upper() for r in raw)
    for b, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise ValueError(f"{source}: record {ids[b]!r} has {len(row)} match columns, but "
                             f"record {ids[0]!r} has {len(rows[0])}; every row of an "
                             "alignment must have the same number of match columns")
    sequences = tuple(r.replace("-", "").replace(".", "").upper() for r in raw)
    return Alignment(tuple(ids), tuple(raw), rows, sequences)


def read_alignment(path: str | Path) -> Alignment:
    """Reads an aligned FASTA / Pfam / A2M file into an :class:`Alignment`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: as :func:`parse_alignment`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no alignment file at {path}")
    return parse_alignment(path.read_text(), source=str(path))


def encode(rows) -> Int[np.ndarray, "B T"]:
    """Aligned rows (strings of equal length) as an int8 array over :data:`ALPHABET`.

    Amino acids (either case) map to ``0 .. 19``; ``-``, ``.`` and any other letter to
    :data:`GAP`.

    >>> encode(["AY-", "XwC"]).tolist()
    [[0, 19, 20], [20, 18, 1]]

    Raises:
        ValueError: if the rows differ in length (naming the first that differs).
    """
    rows = [rows] if isinstance(rows, str) else list(rows)
    if not rows:
        return np.zeros((0, 0), np.int8)
    for b, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise ValueError(f"rows must all have length {len(rows[0])} (row 0), but row {b} "
                             f"has length {len(row)}")
    data = np.frombuffer("".join(rows).encode("ascii", "replace"), np.uint8)
    return _LOOKUP[data].reshape(len(rows), len(rows[0]))


def sequence_weights(msa: Int[np.ndarray, "B T"], threshold: float = 0.8, *,
                     chunk_size: int = 1024) -> Float[np.ndarray, "B"]:
    """Sequence weights ``w_a = 1 / |{b : id(a, b) ≥ threshold}|`` (module docstring).

    The identities are one matrix product of one-hot codes, ``T · id(a, b) = Σ_tv [x_at = v]
    [x_bt = v]``, in float32 (exact for counts below 2²⁴), ``chunk_size`` rows of ``a`` at a
    time: memory is the one-hot ``4·B·T·V`` bytes plus ``4·chunk_size·B``, so a 10k-sequence
    family of 200 columns needs about 210 MB.

    >>> sequence_weights(encode(["AAAAA", "AAAAC", "CCCCC"])).tolist()   # id(0, 1) = 0.8
    [0.5, 0.5, 1.0]

    Args:
        msa: the encoded alignment ``[B, T]`` (see :func:`encode`).
        threshold: the identity θ in (0, 1].
        chunk_size: rows per block.

    Raises:
        ValueError: for a ``msa`` that is not a rank-2 integer array, or a ``threshold``
            outside (0, 1].
    """
    msa = _check_msa(msa)
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
    num_seqs, num_cols = msa.shape
    # Smallest identity count that reaches the threshold (float32-safe integer comparison).
    need = int(np.ceil(threshold * num_cols - 1e-9))
    onehot = np.zeros((num_seqs, num_cols * NUM_STATES), np.float32)
    onehot[np.arange(num_seqs)[:, None], np.arange(num_cols) * NUM_STATES + msa] = 1.0
    counts = np.zeros(num_seqs, np.int64)
    for lo in range(0, num_seqs, chunk_size):
        same = onehot[lo:lo + chunk_size] @ onehot.T
        counts[lo:lo + chunk_size] = (same >= need - 0.5).sum(axis=1)
    return 1.0 / counts


def effective_count(weights: Float[np.ndarray, "B"]) -> float:
    """``M_eff = Σ_a w_a``, the effective number of sequences."""
    return float(np.sum(weights))


def diverse_rows(msa: Int[np.ndarray, "B T"], count: int, *,
                 start: Int[np.ndarray, "T"] | None = None) -> Int[np.ndarray, "K"]:
    """Indices of ``K = min(count, B)`` rows of ``msa`` chosen greedily for diversity, as
    the MSA Transformer subsamples (Rao et al. 2021): with ``S`` the rows chosen so far (and
    ``start``, when given, counted as chosen), the next row is

        argmax_{a ∉ S}  Σ_{s ∈ S} h(a, s),      h(a, s) = Σ_t [x_at ≠ x_st]  (Hamming)

    ties going to the lowest index; without ``start`` the first pick is row 0. The result
    is sorted. An MSA language model read on these rows sees the family's spread rather
    than its most populated clade.

    >>> diverse_rows(encode(["AAAA", "AAAC", "CCCC", "GGGG"]), 3).tolist()  # not the near-copy
    [0, 2, 3]

    Raises:
        ValueError: for a ``msa`` that is not a rank-2 integer array of codes, a negative
            ``count``, or a ``start`` that is not ``[T]``.
    """
    msa = _check_msa(msa)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count!r}")
    total = np.zeros(len(msa), np.int64)
    if start is not None:
        start = np.asarray(start)
        if start.shape != msa.shape[1:]:
            raise ValueError(f"start must be one row [{msa.shape[1]}], got shape "
                             f"{start.shape}")
        total += (msa != start).sum(1)
    chosen = np.zeros(len(msa), bool)
    for _ in range(min(count, len(msa))):
        pick = 0 if start is None and not chosen.any() else int(
            np.argmax(np.where(chosen, -1, total)))
        chosen[pick] = True
        total += (msa != msa[pick]).sum(1)
    return np.flatnonzero(chosen)


def _check_msa(msa) -> np.ndarray:
    msa = np.asarray(msa)
    if msa.ndim != 2 or not np.issubdtype(msa.dtype, np.integer):
        raise ValueError(f"msa must be an integer array [B, T] of codes 0..{GAP}, got "
                         f"{msa.dtype} array of shape {msa.shape}")
    if msa.size and (msa.min() < 0 or msa.max() >= NUM_STATES):
        raise ValueError(f"msa codes must lie in 0..{GAP}, got {msa.min()}..{msa.max()}")
    return msa


__all__ = ["ALPHABET", "GAP", "NUM_STATES", "Alignment", "parse_alignment", "read_alignment",
           "encode", "sequence_weights", "effective_count", "diverse_rows"]
