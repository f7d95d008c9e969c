"""zoo.bio.tokenizers: fixed ids written out by hand, round trips, padding, errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.bio import tokenizers as tk

# The documented vocabularies, spelled out here rather than read from the module.
PROTEIN_VOCAB = ["<pad>", "<mask>", "<cls>", "<eos>", "<unk>", *"ACDEFGHIKLMNPQRSTVWY",
                 *"XBZUO"]
NUCLEOTIDE_VOCAB = ["<pad>", "<mask>", "<cls>", "<eos>", "<unk>", *"ACGT", "N",
                    *"RYSWKMBDHV"]


def test_special_ids_are_fixed_and_shared():
    assert (tk.PAD, tk.MASK, tk.CLS, tk.EOS, tk.UNK) == (0, 1, 2, 3, 4)
    for tok in (tk.ProteinTokenizer(), tk.NucleotideTokenizer(), tk.KmerTokenizer(2)):
        assert [tok.token_to_id(s) for s in ("<pad>", "<mask>", "<cls>", "<eos>", "<unk>")] \
            == [0, 1, 2, 3, 4]


def test_protein_ids_match_the_documented_table():
    tok = tk.ProteinTokenizer()
    assert tok.vocab_size == 30
    assert list(tok.tokens) == PROTEIN_VOCAB
    for i, letter in enumerate(PROTEIN_VOCAB[5:], start=5):
        assert tok.encode(letter).tolist() == [i]
        assert tok.encode(letter.lower()).tolist() == [i]


def test_nucleotide_ids_match_the_documented_table():
    tok = tk.NucleotideTokenizer()
    assert tok.vocab_size == 20
    assert list(tok.tokens) == NUCLEOTIDE_VOCAB
    assert tok.encode("ACGTNRYSWKMBDHV").tolist() == list(range(5, 20))
    assert tok.encode("acgtnryswkmbdhv").tolist() == list(range(5, 20))


def test_kmer_ids_are_base_four_numbers_by_hand():
    tok = tk.KmerTokenizer(3)
    assert tok.vocab_size == 5 + 64
    # AAA = 0, AAC = 1, ACG = 0*16 + 1*4 + 2 = 6, TTT = 63, GCA = 2*16 + 1*4 + 0 = 36.
    for word, code in [("AAA", 0), ("AAC", 1), ("ACG", 6), ("TTT", 63), ("GCA", 36)]:
        assert tok.encode(word).tolist() == [5 + code]
    assert tok.encode("gcaT").tolist() == [5 + 36, 5 + 1 * 16 + 0 * 4 + 3]   # GCA, CAT


def test_kmer_windows_and_stride_by_hand():
    seq = "ACGTACG"   # 7 letters
    assert tk.KmerTokenizer(3).decode(tk.KmerTokenizer(3).encode(seq)) == seq
    assert len(tk.KmerTokenizer(3).encode(seq)) == 5
    two = tk.KmerTokenizer(3, stride=2)
    # windows at 0, 2, 4: ACG, GTA, ACG
    assert [two.tokens[i] for i in two.encode(seq)] == ["ACG", "GTA", "ACG"]
    assert two.decode(two.encode(seq)) == seq
    # a length the stride does not fit: the last letter is dropped (documented)
    assert two.decode(two.encode(seq[:6])) == seq[:5]
    assert tk.KmerTokenizer(4).encode("ACG").tolist() == []


def test_kmer_ambiguity_needs_the_explicit_option():
    with pytest.raises(ValueError, match=r"'N' at position 3.*ambiguous=\"map\""):
        tk.KmerTokenizer(2).encode("ACGNTT")
    tok = tk.KmerTokenizer(2, ambiguous="map")
    # windows: AC CG GN NT TT -> the two holding N are <unk>
    assert tok.encode("ACGNTT").tolist() == [5 + 1, 5 + 6, 4, 4, 5 + 15]
    # each window adds its last letter; an <unk> window adds "?", so the T after N is lost
    assert tok.decode(tok.encode("ACGNTT")) == "ACG??T"
    with pytest.raises(ValueError, match="'J' at position 1"):
        tk.KmerTokenizer(2, ambiguous="map").encode("AJC")
    assert tk.KmerTokenizer(2, unknown="map").encode("AJCG").tolist() == [4, 4, 5 + 6]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ACDEFGHIKLMNPQRSTVWYXBZUOacdefghiklmnpqrstvwyxbzuo", max_size=40))
def test_protein_round_trip(seq):
    for tok in (tk.ProteinTokenizer(), tk.ProteinTokenizer(add_cls=True, add_eos=True)):
        ids = tok.encode(seq)
        assert ids.dtype == np.int32
        assert tok.decode(ids) == seq.upper()
        assert len(ids) == len(seq) + 2 * tok.add_cls


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ACGTNRYSWKMBDHVacgtn", max_size=40))
def test_nucleotide_round_trip(seq):
    tok = tk.NucleotideTokenizer(add_eos=True)
    assert tok.decode(tok.encode(seq)) == seq.upper()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.data())
def test_kmer_round_trip(k, data):
    stride = data.draw(st.integers(1, k))
    windows = data.draw(st.integers(1, 8))
    seq = data.draw(st.text(alphabet="ACGTacgt", min_size=k + (windows - 1) * stride,
                            max_size=k + (windows - 1) * stride))
    tok = tk.KmerTokenizer(k, stride=stride, add_cls=True)
    ids = tok.encode(seq)
    assert len(ids) == 1 + windows
    assert tok.decode(ids) == seq.upper()


def test_error_names_letter_position_and_id():
    tok = tk.ProteinTokenizer()
    with pytest.raises(ValueError, match=r"sequence 'P12345': letter 'J' at position 3"):
        tok.encode("MKVJL", seq_id="P12345")
    with pytest.raises(ValueError, match=r"^letter '\*' at position 4 "):
        tok.encode("MKVL*")
    with pytest.raises(ValueError, match="letter 'é' at position 1"):
        tok.encode("Aé")
    with pytest.raises(ValueError, match=r"sequence 's2': letter 'U' at position 2"):
        tk.NucleotideTokenizer().encode_batch(["ACG", "ACU"], ids=["s1", "s2"])


def test_unknown_map_gives_the_unk_id():
    tok = tk.ProteinTokenizer(unknown="map")
    assert tok.encode("MJ*").tolist() == [15, 4, 4]
    assert tok.decode(tok.encode("MJ*")) == "M??"
    with pytest.raises(ValueError, match="unknown must be 'error' or 'map'"):
        tk.ProteinTokenizer(unknown="skip")


def test_batch_padding_and_mask():
    tok = tk.NucleotideTokenizer(add_cls=True, add_eos=True)
    ids, mask = tok.encode_batch(["AC", "GTTA", ""], length=7)
    assert ids.shape == (3, 7) and ids.dtype == np.int32 and mask.dtype == bool
    assert ids.tolist() == [[2, 5, 6, 3, 0, 0, 0],
                            [2, 7, 8, 8, 5, 3, 0],
                            [2, 3, 0, 0, 0, 0, 0]]
    np.testing.assert_array_equal(mask, ids != tk.PAD)
    assert [tok.decode(r) for r in ids] == ["AC", "GTTA", ""]
    auto, _ = tok.encode_batch(["AC", "GTTA"])
    assert auto.shape == (2, 6)


def test_batch_too_long_raises_or_truncates():
    tok = tk.ProteinTokenizer(add_eos=True)
    with pytest.raises(ValueError, match=r"sequence 'b' has 6 tokens, more than length 4"):
        tok.encode_batch(["MK", "MKVLA"], 4, ids=["a", "b"])
    ids, _ = tok.encode_batch(["MK", "MKVLA"], 4, truncate=True)
    assert ids.tolist() == [[15, 13, 3, 0], [15, 13, 22, 3]]


def test_mask_token_decodes_as_hash_and_bad_ids_raise():
    tok = tk.ProteinTokenizer()
    assert tok.decode([15, tk.MASK, 13, tk.PAD]) == "M#K"
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 30\), got 30 at position 1"):
        tok.decode([5, 30])
    with pytest.raises(ValueError, match="ids must be a 1-D integer array"):
        tok.decode(np.zeros((2, 2), np.int32))


def test_bad_constructor_arguments_are_named():
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 12\], got 0"):
        tk.KmerTokenizer(0)
    with pytest.raises(ValueError, match=r"stride must be an integer in \[1, k=3\], got 4"):
        tk.KmerTokenizer(3, stride=4)
    with pytest.raises(ValueError, match="ambiguous must be 'error' or 'map'"):
        tk.KmerTokenizer(3, ambiguous="drop")
    with pytest.raises(KeyError, match="token 'J' is not in the protein vocabulary"):
        tk.ProteinTokenizer().token_to_id("J")


def test_kmer_vocab_order_by_hand():
    assert tk.kmer_vocab(1) == ("A", "C", "G", "T")
    vocab = tk.kmer_vocab(3)
    assert len(vocab) == 64 and len(set(vocab)) == 64
    assert vocab[6] == "ACG" and vocab[-1] == "TTT"
    assert list(vocab) == sorted(vocab)   # ACGT is alphabetical, so lexicographic = sorted


def test_import_zoo_bio_needs_no_datasets():
    code = ("import sys; sys.modules['datasets'] = None\n"
            "import zoo, zoo.bio\n"
            "from zoo.bio import tokenizers, fasta, dna, features, metrics\n"
            "assert 'zoo.bio.msa' not in sys.modules\n"
            "print(' '.join(sorted(zoo.bio.__all__)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.split())
    assert {"contacts", "dna", "escape", "fasta", "features", "metrics", "msa"} <= listed


def test_custom_alphabet_follows_the_same_layout():
    tok = tk.AlphabetTokenizer("ACGU", name="RNA", add_eos=True)
    assert tok.encode("acgu").tolist() == [5, 6, 7, 8, 3] and tok.vocab_size == 9
    with pytest.raises(ValueError, match="not in the RNA alphabet ACGU"):
        tok.encode("ACGT")
    with pytest.raises(ValueError, match="distinct upper-case ASCII letters, got 'AaC'"):
        tk.AlphabetTokenizer("AaC")
    with pytest.raises(ValueError, match="distinct upper-case ASCII letters, got 'ACA'"):
        tk.AlphabetTokenizer("ACA")
