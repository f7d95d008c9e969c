"""zoo.bio.dna: the UCI readers on subsets and full files, and the landmark positions
checked against the sequences by a consensus scan written out here."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from zoo.bio import dna

DATA = Path(__file__).parent / "data" / "bio"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "dna_uci"


@pytest.fixture
def subset_root(tmp_path):
    folder = tmp_path / "dna_uci"
    folder.mkdir()
    shutil.copy(DATA / "promoters_subset.data", folder / "promoters.data")
    shutil.copy(DATA / "splice_subset.csv", folder / "splice.csv")
    return tmp_path


def test_promoter_subset_rows(subset_root):
    got = dna.promoters(subset_root)
    assert got.classes == ("-", "+")
    assert len(got.ids) == len(got.sequences) == 40 and got.labels.dtype == np.int32
    assert got.labels.tolist() == [1] * 20 + [0] * 20
    assert got.ids[0] == "S10"
    # the first line of the file, by eye: tactagcaatacgcttgcgttcggtggttaagtatgtataatgcgcgggcttgtcgt
    assert got.sequences[0] == "TACTAGCAATACGCTTGCGTTCGGTGGTTAAGTATGTATAATGCGCGGGCTTGTCGT"
    assert all(len(s) == 57 for s in got.sequences)


def test_splice_subset_rows(subset_root):
    got = dna.splice(subset_root)
    assert got.classes == ("EI", "IE", "N")
    assert np.bincount(got.labels).tolist() == [20, 20, 20]
    assert got.ids[0] == "HUMALPI1-DONOR-42"            # spaces around the field stripped
    assert all(len(s) == 60 for s in got.sequences)
    letters = set("".join(got.sequences))
    assert {"D", "N", "S", "R"} <= letters <= set("ACGTDNSR")


def test_promoter_positions_by_hand():
    assert [dna.promoter_position(i) for i in (0, 14, 19, 36, 41, 49, 50, 56)] == \
        [-50, -36, -31, -14, -9, -1, 1, 7]
    with pytest.raises(ValueError, match=r"index must be in \[0, 57\), got 57"):
        dna.promoter_position(57)


def _best_offset(seqs, motif):
    """The window offset where the sequences match ``motif`` best on average (a scan)."""
    scores = []
    for start in range(len(seqs[0]) - len(motif) + 1):
        matches = [sum(a == b for a, b in zip(s[start:start + len(motif)], motif))
                   for s in seqs]
        scores.append(np.mean(matches))
    return int(np.argmax(scores)), max(scores)


def _promoter_sets():
    sets = [dna.read_promoters(DATA / "promoters_subset.data")]
    if (SHARED / "promoters.data").exists():
        sets.append(dna.read_promoters(SHARED / "promoters.data"))
    return sets


def test_promoter_boxes_are_where_the_promoters_match_the_consensus():
    for data in _promoter_sets():
        promoters = [s for s, y in zip(data.sequences, data.labels) if y == 1]
        others = [s for s, y in zip(data.sequences, data.labels) if y == 0]
        for box, motif in [(dna.MINUS_35, dna.MINUS_35_CONSENSUS),
                           (dna.MINUS_10, dna.MINUS_10_CONSENSUS)]:
            assert box.stop - box.start == len(motif) == 6
            offset, score = _best_offset(promoters, motif)
            assert offset == box.start, (motif, offset)
            # non-promoters show no such peak there
            at_box = np.mean([sum(a == b for a, b in zip(s[box], motif)) for s in others])
            assert at_box < score - 1, (motif, at_box, score)


def _splice_sets():
    sets = [dna.read_splice(DATA / "splice_subset.csv")]
    if (SHARED / "splice.csv").exists():
        sets.append(dna.read_splice(SHARED / "splice.csv"))
    return sets


def test_splice_junction_sits_between_positions_30_and_31():
    j = dna.SPLICE_JUNCTION
    for data in _splice_sets():
        seqs, y = np.array(data.sequences), data.labels
        donor = np.mean([s[j:j + 2] == "GT" for s in seqs[y == 0]])
        acceptor = np.mean([s[j - 2:j] == "AG" for s in seqs[y == 1]])
        neither = np.mean([s[j:j + 2] == "GT" or s[j - 2:j] == "AG" for s in seqs[y == 2]])
        assert donor > 0.9 and acceptor > 0.9 and neither < 0.5, (donor, acceptor, neither)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the UCI DNA files are not here")
def test_full_files():
    p = dna.promoters(SHARED.parent)
    assert len(p.sequences) == 106 and np.bincount(p.labels).tolist() == [53, 53]
    s = dna.splice(SHARED.parent)
    assert len(s.sequences) == 3190 and len(s.classes) == 3
    assert np.bincount(s.labels).tolist() == [767, 768, 1655]
    assert set("".join(s.sequences)) == set("ACGTDNSR")


def test_bad_rows_are_named(tmp_path):
    bad = tmp_path / "p.data"
    bad.write_text("+,X1,\t\tacgt\n")
    with pytest.raises(ValueError, match=r"p.data:1: sequence must have 57 nucleotides, got 4"):
        dna.read_promoters(bad)
    bad.write_text("?,X1,\t\t" + "a" * 57 + "\n")
    with pytest.raises(ValueError, match="p.data:1: expected 'class,name,sequence'"):
        dna.read_promoters(bad)
    csv = tmp_path / "s.csv"
    csv.write_text("Class, Donor, Sequence\nEI, D1, " + "A" * 59 + "U\n")
    with pytest.raises(ValueError, match=r"s.csv:2: letter 'U' at position 59"):
        dna.read_splice(csv)
    csv.write_text("Kind, Donor, Sequence\n")
    with pytest.raises(ValueError, match="expected columns Class, Donor, Sequence"):
        dna.read_splice(csv)


def test_missing_data_says_where_it_goes(tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="ZOO_DATA"):
        dna.splice()
    (tmp_path / "dna_uci").mkdir()
    with pytest.raises(FileNotFoundError, match="promoters.data and splice.csv"):
        dna.promoters(tmp_path)
