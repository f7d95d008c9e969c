"""PDB reading (fixed columns, first model, altloc A/blank, insertion codes), Cβ distances and
contacts on a hand-built fragment, and a family's structure mapped onto its alignment columns
(checked letter by letter on the test subset and, when present, on all 40 families)."""

import csv
from pathlib import Path

import numpy as np
import pytest

from zoo.bio import msa, structure

SUBSET_ROOT = Path(__file__).parent / "data" / "bio" / "pfam"
FULL_ROOT = Path(__file__).parents[2] / "shared" / "data"
FULL = FULL_ROOT / "pfam_domains_structures"


def _atom(serial, name, res, num, x, y, z, altloc=" ", icode=" ", record="ATOM  ", chain="A"):
    # Fixed PDB columns: name 13-16, altloc 17, resName 18-20, chain 22, resSeq 23-26,
    # iCode 27, x/y/z 31-54.
    return (f"{record}{serial:5d} {name:<4}{altloc}{res:>3} {chain}{num:4d}{icode}   "
            f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C")


# Cβ (Cα for Gly 1 and for Ser 2A, which has no CB) at hand-picked points:
#   Gly 1 (0,0,0)   Ala 2 (3,4,0)   Ser 2A (0,0,12)   Lys 3, altloc A (6,0,12)
# d(1,2) = 5, d(1,2A) = 12, d(1,3) = √180, d(2,2A) = 13, d(2,3) = 13, d(2A,3) = 6.
FRAGMENT = "\n".join([
    "# a comment line, as the data set's files may start with",
    "MODEL        1",
    _atom(1, "N", "GLY", 1, -1.0, 0.0, 0.0),
    _atom(2, "CA", "GLY", 1, 0.0, 0.0, 0.0),
    _atom(3, "CA", "ALA", 2, 3.0, 0.0, 0.0),
    _atom(4, "CB", "ALA", 2, 3.0, 4.0, 0.0),
    _atom(5, "CA", "SER", 2, 0.0, 0.0, 12.0, icode="A"),
    _atom(6, "OG", "SER", 2, 0.0, 1.0, 12.0, icode="A"),
    _atom(7, "CA", "LYS", 3, 10.0, 0.0, 12.0),
    _atom(8, "CB", "LYS", 3, 0.0, 0.0, 0.5, altloc="B"),     # not A: skipped
    _atom(9, "CB", "LYS", 3, 6.0, 0.0, 12.0, altloc="A"),
    _atom(10, "O", "HOH", 101, 0.0, 0.0, 1.0, record="HETATM"),
    _atom(11, "CA", "ALA", 1, 0.0, 0.0, 0.0, chain="B"),
    "ENDMDL",
    "MODEL        2",
    _atom(12, "CA", "GLY", 1, 50.0, 50.0, 50.0),
    _atom(13, "CA", "TRP", 9, 0.0, 0.0, 1.0),
    "ENDMDL",
])


def test_fragment_residues_numbering_and_insertion_code():
    s = structure.parse_pdb(FRAGMENT, chain="A")
    assert len(s) == 4 and s.sequence == "GASK"
    assert s.name == ("GLY", "ALA", "SER", "LYS") and s.chain == ("A",) * 4
    assert s.number.tolist() == [1, 2, 2, 3] and s.insertion == ("", "", "A", "")
    assert s.labels == ("1", "2", "2A", "3")
    assert s.index("2A") == 2 and s.index(2) == 1 and s.index("3", "A") == 3
    assert s.cb_is_ca.tolist() == [True, False, True, False]
    np.testing.assert_array_equal(s.cb, [[0, 0, 0], [3, 4, 0], [0, 0, 12], [6, 0, 12]])
    np.testing.assert_array_equal(s.ca[3], [10, 0, 12])
    with pytest.raises(KeyError, match="no residue '4'"):
        s.index(4)


def test_all_chains_of_the_first_model():
    s = structure.parse_pdb(FRAGMENT)
    assert s.chain == ("A",) * 4 + ("B",) and s.labels[-1] == "1"


def test_fragment_distances_and_contacts_by_hand():
    s = structure.parse_pdb(FRAGMENT, chain="A")
    r180 = np.sqrt(180.0)
    expected = [[0, 5, 12, r180], [5, 0, 13, 13], [12, 13, 0, 6], [r180, 13, 6, 0]]
    np.testing.assert_allclose(structure.distance_matrix(s.cb), expected, rtol=1e-12)
    assert structure.contact_map(s).tolist() == [[1, 1, 0, 0], [1, 1, 0, 0],
                                                 [0, 0, 1, 1], [0, 0, 1, 1]]
    # strict "<": a distance equal to the threshold is no contact.
    assert structure.contact_map(s, threshold=6.0)[2, 3] == 0
    assert structure.contact_map(s, threshold=12.5)[0].tolist() == [1, 1, 1, 0]


def test_missing_atoms_are_unknown_contacts():
    text = "\n".join([_atom(1, "CA", "GLY", 1, 0, 0, 0), _atom(2, "CB", "ALA", 2, 0, 0, 4),
                      _atom(3, "N", "ALA", 3, 0, 0, 9)])
    s = structure.parse_pdb(text)
    assert len(s) == 2 and np.isnan(s.ca[1]).all()             # CB only: kept, CA NaN
    s = structure.parse_pdb("\n".join([_atom(1, "CA", "ALA", 1, 0, 0, 0),
                                       _atom(2, "CA", "PRO", 2, 0, 0, 8)]))
    assert s.cb_is_ca.tolist() == [True, True]                # no CB: Cα stands in
    assert structure.contact_map(s).tolist() == [[1, 0], [0, 1]]


def test_nan_coordinates_give_minus_one():
    s = structure.parse_pdb(FRAGMENT, chain="A")
    s = structure.Structure(s.chain, s.number, s.insertion, s.name, s.ca,
                            np.where(np.arange(4)[:, None] == 1, np.nan, s.cb), s.cb_is_ca)
    c = structure.contact_map(s)
    assert (c[1] == -1).all() and (c[:, 1] == -1).all() and c[0, 0] == 1


def test_parse_errors():
    with pytest.raises(ValueError, match="no residue with a CA or CB"):
        structure.parse_pdb("REMARK nothing\n")
    bad = _atom(1, "CA", "GLY", 1, 0, 0, 0)[:30] + "   x.xxx" + "0" * 16
    with pytest.raises(ValueError, match="line 1: unreadable coordinates"):
        structure.parse_pdb(bad)
    with pytest.raises(FileNotFoundError, match="path"):
        structure.read_pdb(SUBSET_ROOT / "missing.pdb")


def _split_parse_cb(path):
    """An independent reader: whitespace fields of ATOM lines (fine for this file)."""
    coords = {}
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if f[0] != "ATOM" or f[2] not in ("CA", "CB") or line[16] not in " A":
            continue
        key = int(line[22:26])
        if f[2] == "CB" or key not in coords:
            coords[key] = [float(line[30:38]), float(line[38:46]), float(line[46:54])]
    return [coords[k] for k in sorted(coords)]


def test_subset_family_maps_columns_to_matching_residues():
    fam = structure.load_family("PF00327", SUBSET_ROOT)
    assert fam.pdb_chain == "1BXY_A" and len(fam.domain) == fam.alignment.num_columns == 52
    mapped = np.flatnonzero(fam.column_residue >= 0)
    assert len(mapped) == sum(c != "-" for c in fam.domain) == 52     # domains.csv: 52
    for c in mapped:
        name = fam.structure.name[fam.column_residue[c]]
        assert structure.THREE_TO_ONE[name] == fam.domain[c]
    assert structure.list_families(SUBSET_ROOT) == ["PF00327"]


def test_subset_family_contacts_against_a_direct_loop():
    fam = structure.load_family("PF00327", SUBSET_ROOT)
    cb = _split_parse_cb(SUBSET_ROOT / "pfam_domains_structures" / "structures"
                         / "PF00327_1BXY_A.pdb")
    assert len(cb) == len(fam.structure)
    got = fam.contacts()
    for a in range(0, 52, 3):
        for b in range(52):
            ra, rb = fam.column_residue[a], fam.column_residue[b]
            d = np.sqrt(sum((cb[ra][k] - cb[rb][k]) ** 2 for k in range(3)))
            assert got[a, b] == int(d < 8.0)


def test_unmapped_columns_are_masked():
    fam = structure.load_family("PF00327", SUBSET_ROOT)
    fam = structure.Family(fam.pfam_id, fam.pdb_chain, fam.alignment, fam.domain,
                           fam.structure, np.where(np.arange(52) == 7, -1, fam.column_residue))
    c = fam.contacts()
    assert (c[7] == -1).all() and (c[:, 7] == -1).all() and (np.delete(c, 7, 0) >= 0).any()


def test_load_family_errors():
    with pytest.raises(KeyError, match="PF99999"):
        structure.load_family("PF99999", SUBSET_ROOT)
    with pytest.raises(FileNotFoundError, match="pfam_domains_structures"):
        structure.load_family("PF00327", SUBSET_ROOT / "nowhere")


def _domain_lengths():
    lines = [l for l in (FULL / "domains.csv").read_text().splitlines()
             if l and not l.startswith("#")]
    return {row[0]: int(row[4]) for row in csv.reader(lines)}


@pytest.mark.skipif(not FULL.is_dir(), reason="full data set not present (shared/data)")
def test_every_family_maps_its_structure_onto_the_domain_sequence():
    lengths = _domain_lengths()
    families = structure.list_families(FULL_ROOT)
    assert len(families) == 40 and set(families) <= set(lengths)
    for pfam in families:
        fam = structure.load_family(pfam, FULL_ROOT)
        mapped = np.flatnonzero(fam.column_residue >= 0)
        assert len(mapped) == lengths[pfam], pfam                     # domains.csv length
        letters = "".join(fam.structure.sequence[fam.column_residue[c]] for c in mapped)
        assert letters == fam.domain.replace("-", ""), pfam
        # the domain is a contiguous stretch of the structure file
        assert (np.diff(fam.column_residue[mapped]) == 1).all(), pfam
        # column 2 of the indices is the residue's 1-based position in the structure file
        rows = (FULL / "indices" / f"{fam.pdb_chain}.indices").read_text().splitlines()
        for row in rows:
            fields = row.split("\t")
            assert int(fields[2]) == fam.column_residue[int(fields[0])] + 1, (pfam, row)
