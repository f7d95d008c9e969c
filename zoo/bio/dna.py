"""The UCI DNA sets: E. coli promoters and primate splice junctions, with their landmarks.

* Promoters (``promoters.data``): 106 sequences (53 promoters ``+``, 53 non-promoters ``-``)
  of 57 nucleotides, positions p-50 ... p-1, p+1 ... p+7 around the transcription start
  (there is no p0). Lines are ``class,name,<tabs>sequence`` in lower case.
* Splice junctions (``splice.csv``): 3,190 sequences of 60 nucleotides centred on a
  junction, classes ``EI`` (exon|intron, donor, 767), ``IE`` (intron|exon, acceptor, 768)
  and ``N`` (neither, 1,655). The header ``Class, Donor, Sequence`` and the fields are padded
  with spaces; a few sequences hold the ambiguity codes ``N D S R``.

Landmarks, as 0-based slices of the window:

* the promoter -35 box (consensus ``TTGACA``) at p-36 ... p-31 = ``[14, 20)`` and the -10 box
  (Pribnow, ``TATAAT``) at p-14 ... p-9 = ``[36, 42)``: the positions of the first rule of
  each box in the domain theory of UCI's ``promoters.names`` (Towell et al. 1990); a
  consensus scan agrees, the mean number of matches of the 53 promoters to each box peaking
  at exactly these offsets (3.9 / 6 for ``TTGACA`` at 14, 2.8 / 6 for ``TATAAT`` at 36).
* the splice junction between 1-based positions 30 and 31 (UCI ``splice.names``: the window
  is -30 ... +30), so ``SPLICE_JUNCTION = 30`` is the 0-based index of the first nucleotide
  after it: donors (``EI``) start the intron with ``GT`` at ``[30, 32)``, acceptors (``IE``)
  end it with ``AG`` at ``[28, 30)``.

>>> promoter_position(MINUS_35.start), promoter_position(56)
(-36, 7)

References:
    Harley C., Reynolds R. "Analysis of E. coli promoter sequences." Nucleic Acids Research
    15:2343-2361, 1987. UCI "Molecular Biology (Promoter Gene Sequences)",
    https://doi.org/10.24432/C5S01D

    Towell G., Shavlik J., Noordewier M. "Refinement of approximate domain theories by
    knowledge-based neural networks." AAAI 1990.

    Noordewier M., Towell G., Shavlik J. "Training knowledge-based neural networks to
    recognize genes in DNA sequences." NIPS 1991. UCI "Molecular Biology (Splice-junction Gene
    Sequences)", https://doi.org/10.24432/C5M888
"""

import csv
from pathlib import Path
from typing import NamedTuple

import numpy as np

from zoo import data as zdata

PROMOTER_LENGTH = 57
#: The position (p-50) of window index 0; indices 50 ... 56 are p+1 ... p+7.
PROMOTER_FIRST = -50
#: -35 box, consensus TTGACA, at p-36 ... p-31.
MINUS_35 = slice(14, 20)
MINUS_35_CONSENSUS = "TTGACA"
#: -10 (Pribnow) box, consensus TATAAT, at p-14 ... p-9.
MINUS_10 = slice(36, 42)
MINUS_10_CONSENSUS = "TATAAT"
#: Label 0 non-promoter (``-``), 1 promoter (``+``).
PROMOTER_CLASSES = ("-", "+")

SPLICE_LENGTH = 60
#: 0-based index of the first nucleotide after the junction (between 1-based 30 and 31).
SPLICE_JUNCTION = 30
#: Label order: exon|intron (donor), intron|exon (acceptor), neither.
SPLICE_CLASSES = ("EI", "IE", "N")
_IUPAC = set("ACGTNRYSWKMBDHV")


class LabelledSequences(NamedTuple):
    """Sequences (upper case) with integer ``labels`` ``[B]`` indexing ``classes``."""
    ids: list[str]
    sequences: list[str]
    labels: np.ndarray
    classes: tuple[str, ...]


def promoter_position(index: int) -> int:
    """The promoter position (p-50 ... p-1, p+1 ... p+7) of a 0-based window index.

    Raises:
        ValueError: if ``index`` is outside ``[0, 57)``.
    """
    if not 0 <= index < PROMOTER_LENGTH:
        raise ValueError(f"index must be in [0, {PROMOTER_LENGTH}), got {index}")
    p = index + PROMOTER_FIRST
    return p if p < 0 else p + 1


def read_promoters(path: str | Path) -> LabelledSequences:
    """The promoter file's rows: ids (instance names), sequences, labels (1 = ``+``).

    Raises:
        ValueError: naming the line, for a bad class, letter or length.
    """
    ids, seqs, labels = [], [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3 or parts[0] not in PROMOTER_CLASSES:
            raise ValueError(f"{path}:{number}: expected 'class,name,sequence' with class + "
                             f"or -, got {line[:40]!r}")
        ids.append(parts[1])
        seqs.append(_checked(parts[2].upper(), PROMOTER_LENGTH, f"{path}:{number}"))
        labels.append(PROMOTER_CLASSES.index(parts[0]))
    return LabelledSequences(ids, seqs, np.array(labels, np.int32), PROMOTER_CLASSES)


def read_splice(path: str | Path) -> LabelledSequences:
    """The splice-junction CSV: ids (the ``Donor`` column), sequences, labels
    (:data:`SPLICE_CLASSES`). Spaces around column names and fields are stripped.

    Raises:
        ValueError: naming the line, for missing columns, a bad class, letter or length.
    """
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]] if rows else []
    if not {"Class", "Donor", "Sequence"} <= set(header):
        raise ValueError(f"{path}: expected columns Class, Donor, Sequence, got {header}")
    at = {name: header.index(name) for name in ("Class", "Donor", "Sequence")}
    ids, seqs, labels = [], [], []
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        cls = row[at["Class"]].strip()
        if cls not in SPLICE_CLASSES:
            raise ValueError(f"{path}:{number}: class must be one of {SPLICE_CLASSES}, got "
                             f"{cls!r}")
        ids.append(row[at["Donor"]].strip())
        seqs.append(_checked(row[at["Sequence"]].strip().upper(), SPLICE_LENGTH,
                             f"{path}:{number}"))
        labels.append(SPLICE_CLASSES.index(cls))
    return LabelledSequences(ids, seqs, np.array(labels, np.int32), SPLICE_CLASSES)


def promoters(data_dir: str | Path | None = None) -> LabelledSequences:
    """``promoters.data`` from ``zoo.data.data_dir("dna_uci", root=data_dir)``.

    Raises:
        FileNotFoundError: if the data folder or file is missing (says where they go).
    """
    return read_promoters(_file("promoters.data", data_dir))


def splice(data_dir: str | Path | None = None) -> LabelledSequences:
    """``splice.csv`` from ``zoo.data.data_dir("dna_uci", root=data_dir)``.

    Raises:
        FileNotFoundError: if the data folder or file is missing (says where they go).
    """
    return read_splice(_file("splice.csv", data_dir))


def _file(name: str, data_dir) -> Path:
    path = zdata.data_dir("dna_uci", root=data_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the dna_uci folder must hold "
                                "promoters.data and splice.csv")
    return path


def _checked(seq: str, length: int, where: str) -> str:
    if len(seq) != length:
        raise ValueError(f"{where}: sequence must have {length} nucleotides, got {len(seq)}")
    bad = [c for c in seq if c not in _IUPAC]
    if bad:
        raise ValueError(f"{where}: letter {bad[0]!r} at position {seq.index(bad[0])} is "
                         "not an IUPAC nucleotide code")
    return seq


__all__ = ["PROMOTER_LENGTH", "PROMOTER_FIRST", "MINUS_35", "MINUS_35_CONSENSUS", "MINUS_10",
           "MINUS_10_CONSENSUS", "PROMOTER_CLASSES", "SPLICE_LENGTH", "SPLICE_JUNCTION",
           "SPLICE_CLASSES", "LabelledSequences", "promoter_position", "read_promoters",
           "read_splice", "promoters", "splice"]
