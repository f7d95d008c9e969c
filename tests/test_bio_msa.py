"""Alignments: aligned-FASTA reading with Pfam's match and insert states, the column ↔ residue
maps, the 21-letter encoding and identity-threshold sequence weights (against a direct loop)."""

from pathlib import Path

import numpy as np
import pytest

from zoo.bio import msa

SUBSET = Path(__file__).parent / "data" / "bio" / "pfam" / "pfam_domains_structures"
FULL = Path(__file__).parents[2] / "shared" / "data" / "pfam_domains_structures"

# Two records, wrapped over lines; record 2 has insert states (lower case, '.').
TEXT = """>first/1-5 some description
AC-
DE
>second
-a.C-yDk
E
"""


def test_rows_drop_insert_states_and_sequences_keep_them():
    aln = msa.parse_alignment(TEXT)
    assert aln.ids == ("first/1-5", "second")
    assert aln.rows == ("AC-DE", "-C-DE")     # 'a', 'y', 'k' and '.' are no columns
    assert aln.num_columns == 5 and len(aln) == 2
    assert aln.sequences == ("ACDE", "ACYDKE")


def test_column_residue_maps_by_hand():
    aln = msa.parse_alignment(TEXT)
    # second: residues A(insert) C(col 1) Y(insert) D(col 3) K(insert) E(col 4)
    assert aln.column_of_residue(1).tolist() == [-1, 1, -1, 3, -1, 4]
    assert aln.residue_of_column(1).tolist() == [-1, 1, -1, 3, 5]
    assert aln.column_of_residue(0).tolist() == [0, 1, 3, 4]
    assert aln.residue_of_column(0).tolist() == [0, 1, -1, 2, 3]


def test_maps_agree_with_rows_and_sequences_on_real_alignment():
    aln = msa.read_alignment(SUBSET / "alignments" / "PF00327.align.80")
    for b in range(0, len(aln), 37):
        col = aln.column_of_residue(b)
        for r, c in enumerate(col):
            assert c >= 0 and aln.rows[b][c] == aln.sequences[b][r]
        res = aln.residue_of_column(b)
        assert [aln.rows[b][c] == "-" for c in range(aln.num_columns)] == (res < 0).tolist()


def test_encode_letters_case_gap_and_unknown():
    codes = msa.encode(["ACDEFGHIKLMNPQRSTVWY", "acdefghiklmnpqrstvwy", "-.XBZJUO*ACDEFGHIKL"
                        "M"])
    assert codes.dtype == np.int8 and codes.shape == (3, 20)
    assert codes[0].tolist() == list(range(20)) == codes[1].tolist()
    assert codes[2, :8].tolist() == [msa.GAP] * 8 == [20] * 8
    assert msa.ALPHABET[msa.GAP] == "-" and msa.NUM_STATES == 21


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="record 'b' has 2 match columns"):
        msa.parse_alignment(">a\nACD\n>b\nAC\n")
    with pytest.raises(ValueError, match="must start with a '>' header"):
        msa.parse_alignment("ACD\n>a\nACD\n")
    with pytest.raises(ValueError, match="row 1 has length 2"):
        msa.encode(["ACD", "AC"])
    with pytest.raises(FileNotFoundError, match="path"):
        msa.read_alignment(SUBSET / "missing.align")
    with pytest.raises(ValueError, match="threshold"):
        msa.sequence_weights(msa.encode(["AC"]), threshold=0.0)
    with pytest.raises(ValueError, match=r"msa must be an integer array \[B, T\]"):
        msa.sequence_weights(np.zeros(3, np.int8))


def _loop_weights(x, threshold):
    num_seqs, num_cols = x.shape
    w = []
    for a in range(num_seqs):
        near = 0
        for b in range(num_seqs):
            same = sum(int(x[a, t] == x[b, t]) for t in range(num_cols))
            near += same / num_cols >= threshold
        w.append(1.0 / near)
    return np.array(w)


def _clustered_alignment(rng, num_seqs=37, num_cols=13):
    # A few parents and mutated copies, so that many pairs sit near the threshold.
    parents = rng.integers(0, msa.NUM_STATES, (4, num_cols))
    x = parents[rng.integers(0, 4, num_seqs)]
    flip = rng.random(x.shape) < 0.15
    return np.where(flip, rng.integers(0, msa.NUM_STATES, x.shape), x).astype(np.int8)


@pytest.mark.parametrize("threshold", [0.8, 0.6, 1.0])
def test_weights_equal_direct_loop(threshold):
    x = _clustered_alignment(np.random.default_rng(3))
    expected = _loop_weights(x, threshold)
    assert len(set(expected.tolist())) > 1 + (threshold < 1)   # several cluster sizes
    np.testing.assert_array_equal(msa.sequence_weights(x, threshold, chunk_size=5), expected)
    np.testing.assert_array_equal(msa.sequence_weights(x, threshold), expected)
    assert msa.effective_count(expected) == pytest.approx(expected.sum())


def test_weights_of_exact_copies_and_threshold_boundary():
    # identity of rows 0 and 1 is 4/5 = 0.8 exactly: within the threshold (>=).
    x = msa.encode(["AAAAA", "AAAAC", "AAAAA", "CCCCC"])
    assert msa.sequence_weights(x).tolist() == [1 / 3, 1 / 3, 1 / 3, 1.0]
    assert msa.sequence_weights(x, 0.81).tolist() == [0.5, 1.0, 0.5, 1.0]


def test_real_alignment_subset():
    aln = msa.read_alignment(SUBSET / "alignments" / "PF00327.align.80")
    text = (SUBSET / "alignments" / "PF00327.align.80").read_text()
    assert len(aln) == text.count(">") == 538 and aln.num_columns == 52
    w = msa.sequence_weights(aln.encoded())
    assert ((w > 0) & (w <= 1)).all()
    # the file is redundancy-filtered at about 80% identity: most sequences stand alone.
    assert msa.effective_count(w) > 0.9 * len(aln)


@pytest.mark.skipif(not FULL.is_dir(), reason="full data set not present (shared/data)")
def test_full_alignments_match_the_published_counts():
    total, widths = 0, {}
    for path in sorted((FULL / "alignments").glob("*.align.80")):
        aln = msa.read_alignment(path)
        total += len(aln)
        widths[path.name[:7]] = (len(aln), aln.num_columns)
    # SOURCE.md: 68,933 sequences; 338 (164) for PF00179 up to 15,260 (119) for PF00072.
    assert len(widths) == 40 and total == 68933
    assert widths["PF00179"] == (338, 164) and widths["PF00072"] == (15260, 119)


@pytest.mark.slow
@pytest.mark.skipif(not FULL.is_dir(), reason="full data set not present (shared/data)")
def test_weights_of_a_15k_family_fit_in_a_few_hundred_mb():
    import tracemalloc
    x = msa.read_alignment(FULL / "alignments" / "PF00072.align.80").encoded()
    tracemalloc.start()
    w = msa.sequence_weights(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 400e6 and len(w) == 15260


def _diverse_by_loop(x, count, start=None):
    """The greedy rule recomputed from scratch at every step, letter by letter."""
    def hamming(a, b):
        return sum(int(u != v) for u, v in zip(a, b))
    chosen = []
    for _ in range(min(count, len(x))):
        if start is None and not chosen:
            chosen.append(0)
            continue
        best, best_total = None, -1
        for a in range(len(x)):
            if a in chosen:
                continue
            total = sum(hamming(x[a], x[s]) for s in chosen)
            total += 0 if start is None else hamming(x[a], start)
            if total > best_total:
                best, best_total = a, total
        chosen.append(best)
    return sorted(chosen)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diverse_rows_equal_a_direct_loop(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, (14, 6)).astype(np.int8)       # 4 letters: ties happen
    x[5] = x[2]                                            # an exact copy
    start = rng.integers(0, 4, 6)
    for count in (1, 5, 14, 20):
        assert msa.diverse_rows(x, count).tolist() == _diverse_by_loop(x.tolist(), count)
        assert (msa.diverse_rows(x, count, start=start).tolist()
                == _diverse_by_loop(x.tolist(), count, start.tolist()))


def test_diverse_rows_by_hand_and_errors():
    x = msa.encode(["AAAA", "AAAC", "CCCC", "GGGG"])
    assert msa.diverse_rows(x, 3).tolist() == [0, 2, 3]       # the near-copy of row 0 left
    # From the start CCCC: AAAA and GGGG (4 apart) tie, row 0 wins; then GGGG (4 + 4).
    assert msa.diverse_rows(x, 2, start=x[2]).tolist() == [0, 3]
    assert msa.diverse_rows(x, 0).tolist() == []
    with pytest.raises(ValueError, match="count must be >= 0, got -1"):
        msa.diverse_rows(x, -1)
    with pytest.raises(ValueError, match=r"start must be one row \[4\], got shape \(3,\)"):
        msa.diverse_rows(x, 2, start=x[0, :3])
    with pytest.raises(ValueError, match="integer array"):
        msa.diverse_rows(x.astype(float), 2)
