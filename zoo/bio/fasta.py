"""FASTA records, header parsers, the DeepLoc splits and DeepLoc's cropping.

Records are plain dicts ``{"id", "description", "sequence"}`` (the header's first word, the
rest of it, the joined sequence lines), read by :func:`zoo.data.read_fasta`; the cached
``datasets`` door is :func:`zoo.data.load_fasta` (:func:`load`).

DeepLoc 1.0 headers (Almagro Armenteros et al. 2017, in the files of Stärk et al. 2021) are
``>ACCESSION Location-M|S|U [flag]``: ``M`` membrane, ``S`` soluble, ``U`` unknown; the
flag is ``test`` in the test split, ``new_test_set`` in setHARD and absent in the validation
file, which also holds 23 dual ``Cytoplasm-Nucleus-U`` proteins (setHARD's headers end in a
space)::

    >Q9Y4C2 Cell.membrane-M
    >Q9H400 Cell.membrane-M test
    >Q12981 Endoplasmic.reticulum-U new_test_set

>>> parse_deeploc_header(">Q9H400 Cell.membrane-M test")
{'id': 'Q9H400', 'location': 'Cell.membrane', 'membrane': 'M', 'test': True, 'flag': 'test'}
>>> crop_termini("ABCDEFGHIJ", 6)
'ABCHIJ'

References:
    Almagro Armenteros J.J., Sønderby C.K., Sønderby S.K., Nielsen H., Winther O. "DeepLoc:
    prediction of protein subcellular localization using deep learning." Bioinformatics
    33(21):3387-3395, 2017. https://doi.org/10.1093/bioinformatics/btx431

    Stärk H., Dallago C., Heinzinger M., Rost B. "Light attention predicts protein location
    from the language of life." Bioinformatics Advances 1(1):vbab035, 2021.
    https://doi.org/10.1093/bioadv/vbab035
"""

import re
from collections.abc import Callable
from pathlib import Path

from zoo import data as zdata

#: DeepLoc's 10 location classes, in DeepLoc's own order (its output columns and figures:
#: Nucleus, Cytoplasm, Extracellular, Mitochondrion, Cell membrane, ER, Plastid, Golgi,
#: Lysosome/Vacuole, Peroxisome), spelled as in the FASTA headers. A label is an index here.
DEEPLOC_LOCATIONS = ("Nucleus", "Cytoplasm", "Extracellular", "Mitochondrion",
                     "Cell.membrane", "Endoplasmic.reticulum", "Plastid", "Golgi.apparatus",
                     "Lysosome/Vacuole", "Peroxisome")
#: Membrane-bound, soluble, unknown.
DEEPLOC_MEMBRANE = ("M", "S", "U")
#: Split name -> file in ``data_dir("deeploc")``. ``train`` is the validation file of Stärk
#: et al. (the DeepLoc training file is not in the data folder), ``hard`` their setHARD.
DEEPLOC_FILES = {"train": "deeploc_our_val_set.fasta", "test": "deeploc_test_set.fasta",
                 "hard": "setHARD.fasta"}
#: DeepLoc 1.0's longest input: longer proteins keep their first and last 500 residues.
DEEPLOC_MAX_LENGTH = 1000

_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z_][\w.\-]*)=")


def read(path: str | Path, *, parse: Callable[[str], dict] | None = None) -> list[dict]:
    """Records of a FASTA file; with ``parse``, each also gets ``parse(header)``'s fields.

    ``parse`` receives the header without ``>`` (``id + " " + description``); its keys
    update the record (``id`` included).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file does not start with a ``>`` header, or ``parse`` refuses a
            header (the message then names the file and the record's id).
    """
    records = zdata.read_fasta(path)
    if parse is None:
        return records
    out = []
    for r in records:
        header = f"{r['id']} {r['description']}".strip()
        try:
            fields = parse(header)
        except ValueError as err:
            raise ValueError(f"{path}: record {r['id']!r}: {err}") from err
        out.append({**r, **fields})
    return out


def load(path: str | Path, *, cache_dir: str | None = None):
    """A cached ``datasets.Dataset`` of the records (:func:`zoo.data.load_fasta`)."""
    return zdata.load_fasta(path, cache_dir=cache_dir)


def parse_deeploc_header(header: str) -> dict:
    """``{"id", "location", "membrane", "test", "flag"}`` of a DeepLoc header.

    ``location`` is one of :data:`DEEPLOC_LOCATIONS` or a dual label joined by ``-``
    (``Cytoplasm-Nucleus``); ``test`` is true for the flags ``test`` and ``new_test_set``,
    which ``flag`` keeps as written (``""`` when absent).

    Raises:
        ValueError: naming the header, if it is not ``ID Location-M|S|U [flag]`` with known
            locations.
    """
    words = header.lstrip(">").split()
    if len(words) not in (2, 3) or "-" not in words[1]:
        raise ValueError(f"DeepLoc header must be 'ID Location-M|S|U [flag]', got "
                         f"{header!r}")
    location, membrane = words[1].rsplit("-", 1)
    if membrane not in DEEPLOC_MEMBRANE:
        raise ValueError(f"DeepLoc membrane label must be one of {DEEPLOC_MEMBRANE}, got "
                         f"{membrane!r} in {header!r}")
    unknown = [p for p in location.split("-") if p not in DEEPLOC_LOCATIONS]
    if unknown:
        raise ValueError(f"DeepLoc location {unknown[0]!r} in {header!r} is not one of "
                         f"{DEEPLOC_LOCATIONS}")
    flag = words[2] if len(words) == 3 else ""
    if flag not in ("", "test", "new_test_set"):
        raise ValueError(f"DeepLoc flag must be 'test' or 'new_test_set', got {flag!r} in "
                         f"{header!r}")
    return {"id": words[0], "location": location, "membrane": membrane,
            "test": bool(flag), "flag": flag}


def parse_fields(header: str, *, sep: str = "|") -> dict:
    """A header's ``sep``-separated fields and its ``key=value`` pairs.

    The header (``>`` optional) is split at ``sep``; in each piece, every ``key=`` starts a
    value that runs to the next ``key=`` or the piece's end (so values may hold spaces, as
    UniProt's ``OS=Homo sapiens``). The text of a piece before its first key is a field.

    Returns:
        ``{"fields": [str, ...], "values": {key: str, ...}}``, stripped; empty fields are
        dropped, a repeated key keeps its last value.

    >>> h = ">sp|P69905|HBA_HUMAN Hemoglobin subunit alpha OS=Homo sapiens OX=9606 GN=HBA1"
    >>> parse_fields(h)
    {'fields': ['sp', 'P69905', 'HBA_HUMAN Hemoglobin subunit alpha'], \
'values': {'OS': 'Homo sapiens', 'OX': '9606', 'GN': 'HBA1'}}
    >>> parse_fields("seq7|label=2|split=train")
    {'fields': ['seq7'], 'values': {'label': '2', 'split': 'train'}}
    """
    if not sep:
        raise ValueError("sep must be a non-empty string, got ''")
    fields, values = [], {}
    for piece in header.strip().removeprefix(">").split(sep):
        keys = list(_KEY.finditer(piece))
        head = piece[:keys[0].start()] if keys else piece
        if head.strip():
            fields.append(head.strip())
        for key, after in zip(keys, keys[1:] + [None]):
            end = after.start() if after is not None else len(piece)
            values[key.group(1)] = piece[key.end():end].strip()
    return {"fields": fields, "values": values}


def read_deeploc(path: str | Path, *, dual: str = "drop") -> list[dict]:
    """DeepLoc records: ``id, description, sequence, location, membrane, test, flag, label``.

    ``label`` indexes :data:`DEEPLOC_LOCATIONS`.

    Args:
        path: a DeepLoc FASTA file.
        dual: dual-location records (``Cytoplasm-Nucleus``): ``"drop"`` them, or ``"keep"``
            them with ``label = -1``.

    Raises:
        ValueError: for a header that is not DeepLoc's, or an unknown ``dual``.
    """
    if dual not in ("drop", "keep"):
        raise ValueError(f"dual must be 'drop' or 'keep', got {dual!r}")
    out = []
    for r in read(path, parse=parse_deeploc_header):
        single = r["location"] in DEEPLOC_LOCATIONS
        if single or dual == "keep":
            r["label"] = DEEPLOC_LOCATIONS.index(r["location"]) if single else -1
            out.append(r)
    return out


def deeploc(split: str, data_dir: str | Path | None = None, *, dual: str = "drop"
            ) -> list[dict]:
    """A DeepLoc split, ``"train"``, ``"test"`` or ``"hard"`` (see :data:`DEEPLOC_FILES`),
    from ``zoo.data.data_dir("deeploc", root=data_dir)``, read by :func:`read_deeploc`.

    The full files hold 1,678 (``train``; 1,655 without the dual labels), 2,768 (``test``)
    and 490 (``hard``) records.

    Raises:
        ValueError: for an unknown split.
        FileNotFoundError: if the data folder or the file is missing (says where they go).
    """
    if split not in DEEPLOC_FILES:
        raise ValueError(f"split must be one of {sorted(DEEPLOC_FILES)}, got {split!r}")
    folder = zdata.data_dir("deeploc", root=data_dir)
    path = folder / DEEPLOC_FILES[split]
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the deeploc folder must hold "
                                f"{sorted(DEEPLOC_FILES.values())}")
    return read_deeploc(path, dual=dual)


def deeploc_dataset(split: str, data_dir: str | Path | None = None, *, dual: str = "drop",
                    cache_dir: str | None = None):
    """The split as a cached ``datasets.Dataset`` (through :func:`zoo.data.load_fasta`),
    with the columns of :func:`read_deeploc`: the input of ``zoo.data.sequence_loader``.

    Raises:
        ValueError, FileNotFoundError: as :func:`deeploc`.
    """
    records = deeploc(split, data_dir, dual=dual)   # checks the split, the file and headers
    keep = {r["id"] for r in records}
    path = zdata.data_dir("deeploc", root=data_dir) / DEEPLOC_FILES[split]
    table = load(path, cache_dir=cache_dir)
    table = table.filter(lambda r: r["id"] in keep)
    return table.map(_deeploc_columns)


def _deeploc_columns(r: dict) -> dict:
    fields = parse_deeploc_header(f"{r['id']} {r['description']}")
    single = fields["location"] in DEEPLOC_LOCATIONS
    return {**fields, "label": DEEPLOC_LOCATIONS.index(fields["location"]) if single else -1}


def crop_termini(sequence: str, max_length: int = DEEPLOC_MAX_LENGTH) -> str:
    """DeepLoc's cropping: a sequence longer than ``max_length`` keeps its first
    ``ceil(max_length / 2)`` and last ``floor(max_length / 2)`` residues (the middle goes).

    DeepLoc 1.0 kept the first and last 500 residues of proteins longer than 1000, because
    sorting signals sit at the termini (N-terminal signal and transit peptides, C-terminal
    retention and peroxisomal signals); DeepLoc 2.0/2.1 do the same at their language
    models' limits (2 x 2000 residues in the slow mode).

    >>> crop_termini("MKV" * 3, 5)   # MKVMKVMKV -> MKV + KV
    'MKVKV'

    Raises:
        ValueError: if ``max_length`` is not an integer >= 2.
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}")
    if len(sequence) <= max_length:
        return sequence
    tail = max_length // 2
    return sequence[:max_length - tail] + sequence[len(sequence) - tail:]


__all__ = ["DEEPLOC_LOCATIONS", "DEEPLOC_MEMBRANE", "DEEPLOC_FILES", "DEEPLOC_MAX_LENGTH",
           "read", "load", "parse_deeploc_header", "parse_fields", "read_deeploc",
           "deeploc", "deeploc_dataset", "crop_termini"]
