"""Protein structures: a PDB reader, Cβ distance and contact maps, and a Pfam family's
structure mapped onto its alignment columns.

The reader takes the fixed columns of PDB ``ATOM`` records (wwPDB format v3.3, §9):
record 1–6, atom name 13–16, alternate location 17, residue name 18–20, chain 22, residue
number 23–26, insertion code 27, x/y/z 31–38/39–46/47–54. It keeps the first model only (it
stops at the first ``ENDMDL``), atoms with a blank or ``A`` alternate location only, and
``ATOM`` records only (``HETATM`` ligands, waters and modified residues such as MSE are
skipped). A residue is one ``(chain, number, insertion code)``, in file order; the insertion
code is kept, so ``52`` and ``52A`` are two residues. Each residue gets its Cα and its Cβ,
with Cα standing in for Cβ in glycine or where Cβ is missing; a residue with neither atom is
dropped, and a missing Cα is NaN.

Contacts follow the CASP / Rao et al. convention: residues ``i`` and ``j`` are in contact when
the distance of their Cβ atoms (Cα for glycine) is below 8 Å::

    d_ij = ‖x_i − x_j‖₂,     c_ij = [d_ij < 8 Å]

A Pfam family here (``pfam_domains_structures``, Ollikainen & Kortemme 2013) has one structure
and an ``indices`` file whose rows read ``column, letter, rosetta_index, "number chain",
value``: residue ``number`` of ``chain`` sits in alignment column ``column`` and is amino acid
``letter``. :func:`load_family` reads the alignment, the domain's own aligned sequence, the
structure and these rows, and checks that the letter of every row is the structure's residue
there and the domain sequence's letter in that column (it raises otherwise).

Shape letters: ``T`` residues (or alignment columns, for a family's maps).

>>> pdb = '''\\
... ATOM      1  CA  GLY A   1       0.000   0.000   0.000  1.00  0.00           C
... ATOM      2  CA  ALA A   2       3.800   0.000   0.000  1.00  0.00           C
... ATOM      3  CB  ALA A   2       3.800   9.000   0.000  1.00  0.00           C
... '''
>>> s = parse_pdb(pdb)
>>> s.sequence, s.labels, distance_matrix(s.cb)[0, 1].round(3)
('GA', ('1', '2'), np.float64(9.769))
>>> contact_map(s).tolist()
[[1, 0], [0, 1]]

References:
    wwPDB, "Protein Data Bank Contents Guide: Atomic Coordinate Entry Format Description",
    version 3.3, 2012. https://www.wwpdb.org/documentation/file-format
    N. Ollikainen, T. Kortemme, "Computational protein design quantifies structural
    constraints on amino acid covariation", PLoS Comput Biol 9(11), 2013.
    https://doi.org/10.1371/journal.pcbi.1003313
"""

import dataclasses
from pathlib import Path

import numpy as np
from jaxtyping import Float, Int

from zoo.bio import msa as _msa

#: Three-letter residue names of the 20 amino acids, to one-letter codes.
THREE_TO_ONE = {
    "ALA": "A", "CYS": "C", "ASP": "D", "GLU": "E", "PHE": "F", "GLY": "G", "HIS": "H",
    "ILE": "I", "LYS": "K", "LEU": "L", "MET": "M", "ASN": "N", "PRO": "P", "GLN": "Q",
    "ARG": "R", "SER": "S", "THR": "T", "VAL": "V", "TRP": "W", "TYR": "Y",
}
#: Cβ–Cβ contact threshold in Å.
CONTACT_THRESHOLD = 8.0
#: The data set's folder name under the data root (``zoo.data.data_dir``).
DATASET = "pfam_domains_structures"


@dataclasses.dataclass(frozen=True)
class Structure:
    """Per-residue arrays of one structure, in file order.

    Attributes:
        chain: each residue's chain identifier.
        number: each residue's PDB residue number.
        insertion: each residue's insertion code (``""`` when blank).
        name: each residue's three-letter name.
        ca: Cα coordinates ``[T, 3]`` in Å (NaN where missing).
        cb: Cβ coordinates ``[T, 3]``, Cα for glycine or where Cβ is missing.
        cb_is_ca: ``[T]`` True where ``cb`` holds the Cα.
    """
    chain: tuple[str, ...]
    number: Int[np.ndarray, "T"]
    insertion: tuple[str, ...]
    name: tuple[str, ...]
    ca: Float[np.ndarray, "T 3"]
    cb: Float[np.ndarray, "T 3"]
    cb_is_ca: np.ndarray

    def __len__(self) -> int:
        return len(self.name)

    @property
    def sequence(self) -> str:
        """One-letter sequence (``X`` for a residue outside the 20 amino acids)."""
        return "".join(THREE_TO_ONE.get(n, "X") for n in self.name)

    @property
    def labels(self) -> tuple[str, ...]:
        """Residue number with insertion code, as PDB writes them: ``"52"``, ``"52A"``."""
        return tuple(f"{n}{i}" for n, i in zip(self.number.tolist(), self.insertion))

    def index(self, label: str | int, chain: str | None = None) -> int:
        """The position of residue ``label`` (``52`` or ``"52A"``) of ``chain`` (any if None).

        Raises:
            KeyError: if no residue has that label (naming the chain's first and last).
        """
        label = str(label).strip()
        for k, (lab, ch) in enumerate(zip(self.labels, self.chain)):
            if lab == label and (chain is None or ch == chain):
                return k
        span = f"{self.labels[0]}..{self.labels[-1]}" if len(self) else "none"
        raise KeyError(f"no residue {label!r} in chain {chain!r}; residues are {span}")


def parse_pdb(text: str, *, chain: str | None = None) -> Structure:
    """A :class:`Structure` from PDB text (module docstring: what is kept).

    Args:
        text: the file's contents.
        chain: keep only this chain (default: every chain).

    Raises:
        ValueError: if a kept ``ATOM`` line has unreadable coordinates (naming the line), or
            no residue is found.
    """
    residues: dict[tuple, dict] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("ENDMDL"):
            break
        if not line.startswith("ATOM  ") or line[16:17] not in (" ", "A", ""):
            continue
        if chain is not None and line[21:22] != chain:
            continue
        key = (line[21:22], line[22:26].strip(), line[26:27].strip())
        res = residues.setdefault(key, {"name": line[17:20].strip()})
        atom = line[12:16].strip()
        if atom in ("CA", "CB") and atom not in res:
            try:
                res[atom] = [float(line[c:c + 8]) for c in (30, 38, 46)]
            except ValueError:
                raise ValueError(f"line {number}: unreadable coordinates in "
                                 f"{line.rstrip()!r}") from None
    kept = [(k, r) for k, r in residues.items() if "CA" in r or "CB" in r]
    if not kept:
        raise ValueError("no residue with a CA or CB atom in the ATOM records"
                         + (f" of chain {chain!r}" if chain is not None else ""))
    nan3 = [np.nan] * 3
    ca = np.array([r.get("CA", nan3) for _, r in kept], np.float64)
    has_cb = np.array([("CB" in r) and r["name"] != "GLY" for _, r in kept])
    cb = np.where(has_cb[:, None], np.array([r.get("CB", nan3) for _, r in kept]), ca)
    return Structure(
        chain=tuple(k[0] for k, _ in kept),
        number=np.array([int(k[1]) for k, _ in kept], np.int64),
        insertion=tuple(k[2] for k, _ in kept),
        name=tuple(r["name"] for _, r in kept),
        ca=ca, cb=cb, cb_is_ca=~has_cb)


def read_pdb(path: str | Path, *, chain: str | None = None) -> Structure:
    """Reads a PDB file (see :func:`parse_pdb`).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no PDB file at {path}")
    return parse_pdb(path.read_text(), chain=chain)


def distance_matrix(coords: Float[np.ndarray, "T 3"]) -> Float[np.ndarray, "T T"]:
    """Pairwise Euclidean distances ``d_ij = ‖x_i − x_j‖₂`` (NaN where a point is NaN).

    >>> distance_matrix(np.array([[0., 0, 0], [3, 4, 0]])).tolist()
    [[0.0, 5.0], [5.0, 0.0]]

    Raises:
        ValueError: if ``coords`` is not ``[T, 3]``.
    """
    coords = np.asarray(coords, np.float64)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"coords must have shape [T, 3], got {coords.shape}")
    diff = coords[:, None, :] - coords[None, :, :]
    return np.sqrt(np.einsum("ijc,ijc->ij", diff, diff))


def contact_map(structure: Structure, threshold: float = CONTACT_THRESHOLD
                ) -> Int[np.ndarray, "T T"]:
    """``c_ij = [d_ij < threshold]`` on Cβ (Cα for glycine) as int8: 1 contact, 0 none,
    −1 where a distance is unknown (a missing atom). The diagonal is 1 (``d_ii = 0``)."""
    dist = distance_matrix(structure.cb)
    out = (dist < threshold).astype(np.int8)
    out[np.isnan(dist)] = -1
    return out


# --- a Pfam family: alignment, domain sequence, structure and the column map -----------------

@dataclasses.dataclass(frozen=True)
class Family:
    """One family of ``pfam_domains_structures``.

    Attributes:
        pfam_id: e.g. ``"PF00018"``.
        pdb_chain: e.g. ``"2O9S_A"``.
        alignment: the family alignment (``T`` columns).
        domain: the structure's own sequence aligned to the family (width ``T``).
        structure: the domain's structure.
        column_residue: ``[T]`` for each column, the index into ``structure`` of the residue
            in it, or −1 (a gap of the domain, or no structured residue).
    """
    pfam_id: str
    pdb_chain: str
    alignment: _msa.Alignment
    domain: str
    structure: Structure
    column_residue: Int[np.ndarray, "T"]

    def contacts(self, threshold: float = CONTACT_THRESHOLD) -> Int[np.ndarray, "T T"]:
        """The contact map over alignment columns: 1/0, −1 where either column has no
        structured residue."""
        return _take_pairs(contact_map(self.structure, threshold), self.column_residue)


def _take_pairs(full: np.ndarray, index: np.ndarray) -> np.ndarray:
    out = full[np.ix_(np.maximum(index, 0), np.maximum(index, 0))].copy()
    missing = index < 0
    out[missing, :] = -1
    out[:, missing] = -1
    return out


def read_indices(path: str | Path) -> list[tuple[int, str, str, str]]:
    """The rows ``(column, letter, residue label, chain)`` of an ``indices`` file.

    Raises:
        ValueError: for a row without the five tab-separated fields (naming the line).
    """
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        where = fields[3].split() if len(fields) >= 5 else []
        if len(where) != 2:
            raise ValueError(f"{path}:{number}: expected 'column<TAB>letter<TAB>index<TAB>"
                             f"number chain<TAB>value', got {line!r}")
        rows.append((int(fields[0]), fields[1].strip(), where[0], where[1]))
    return rows


def domain_sequences(root: str | Path | None = None) -> dict[str, tuple[str, str]]:
    """``{pfam_id: (pdb_chain, aligned domain sequence)}`` for the families with a structure
    (``domain_sequences.txt`` lists ten more without one)."""
    folder = _folder(root)
    have = {p.name.split("_", 1)[0] for p in (folder / "structures").glob("PF*_*.pdb")}
    out = {}
    for line in (folder / "domain_sequences.txt").read_text().splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] in have:
            out[fields[0]] = (fields[1], fields[2])
    return out


def list_families(root: str | Path | None = None) -> list[str]:
    """The Pfam ids of the families with a structure, sorted."""
    return sorted(domain_sequences(root))


def load_family(pfam_id: str, root: str | Path | None = None) -> Family:
    """Reads family ``pfam_id`` from ``data_dir("pfam_domains_structures", root=root)``.

    Raises:
        FileNotFoundError: if the data folder is missing (the message says where it goes).
        KeyError: if ``pfam_id`` has no structure there (listing those that do).
        ValueError: if the domain sequence's width differs from the alignment's, or an
            ``indices`` row's letter differs from the structure's residue or the domain
            sequence's letter in that column (naming the row).
    """
    folder = _folder(root)
    domains = domain_sequences(root)
    if pfam_id not in domains:
        raise KeyError(f"pfam_id {pfam_id!r} has no structure in {folder}; families with "
                       f"one: {sorted(domains)}")
    pdb_chain, domain = domains[pfam_id]
    alignment = _msa.read_alignment(folder / "alignments" / f"{pfam_id}.align.80")
    if len(domain) != alignment.num_columns:
        raise ValueError(f"{pfam_id}: the domain sequence has width {len(domain)}, the "
                         f"alignment {alignment.num_columns}")
    structure = read_pdb(folder / "structures" / f"{pfam_id}_{pdb_chain}.pdb")
    column_residue = np.full(alignment.num_columns, -1, np.int64)
    sequence = structure.sequence
    for column, letter, label, chain in read_indices(folder / "indices"
                                                     / f"{pdb_chain}.indices"):
        k = structure.index(label, chain)
        if not letter == sequence[k] == domain[column]:
            raise ValueError(f"{pdb_chain}.indices: column {column} residue {chain}{label} "
                             f"is {letter!r} there, {sequence[k]!r} in the structure and "
                             f"{domain[column]!r} in the domain sequence")
        column_residue[column] = k
    return Family(pfam_id, pdb_chain, alignment, domain, structure, column_residue)


def _folder(root) -> Path:
    from zoo.data import data_dir
    return data_dir(DATASET, root=root)


__all__ = ["THREE_TO_ONE", "CONTACT_THRESHOLD", "Structure", "parse_pdb", "read_pdb",
           "distance_matrix", "contact_map", "Family", "read_indices", "domain_sequences",
           "list_families", "load_family"]
