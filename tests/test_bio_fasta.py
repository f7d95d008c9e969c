"""zoo.bio.fasta: DeepLoc headers of all three files, the generic parser, the split loader
and the cropping, on subsets in tests/data/bio and on the full files when present."""

import collections
from pathlib import Path

import pytest

from zoo.bio import fasta

DATA = Path(__file__).parent / "data" / "bio"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SUBSETS = {"train": "deeploc_train_subset.fasta", "test": "deeploc_test_subset.fasta",
           "hard": "deeploc_hard_subset.fasta"}


@pytest.fixture
def subset_root(tmp_path):
    """A data folder laid out like the real one, holding the subsets under the real names."""
    folder = tmp_path / "deeploc"
    folder.mkdir()
    for split, name in SUBSETS.items():
        (folder / fasta.DEEPLOC_FILES[split]).write_bytes((DATA / name).read_bytes())
    return tmp_path


def test_locations_are_deeplocs_ten_in_its_order():
    assert fasta.DEEPLOC_LOCATIONS == (
        "Nucleus", "Cytoplasm", "Extracellular", "Mitochondrion", "Cell.membrane",
        "Endoplasmic.reticulum", "Plastid", "Golgi.apparatus", "Lysosome/Vacuole",
        "Peroxisome")


@pytest.mark.parametrize("header,expect", [
    (">Q9Y4C2 Cell.membrane-M", ("Q9Y4C2", "Cell.membrane", "M", False, "")),
    (">Q9H400 Cell.membrane-M test", ("Q9H400", "Cell.membrane", "M", True, "test")),
    ("Q12981 Endoplasmic.reticulum-U new_test_set ",
     ("Q12981", "Endoplasmic.reticulum", "U", True, "new_test_set")),
    ("P35123 Cytoplasm-Nucleus-U", ("P35123", "Cytoplasm-Nucleus", "U", False, "")),
    ("P00001 Lysosome/Vacuole-S", ("P00001", "Lysosome/Vacuole", "S", False, "")),
])
def test_deeploc_headers_of_each_file_variant(header, expect):
    got = fasta.parse_deeploc_header(header)
    assert (got["id"], got["location"], got["membrane"], got["test"], got["flag"]) == expect


@pytest.mark.parametrize("header,match", [
    ("Q1 Cell.membrane", "must be 'ID Location-M|S|U"),
    ("Q1 Cell.membrane-X", "membrane label must be one of"),
    ("Q1 Vacuole-M", "location 'Vacuole'"),
    ("Q1 Nucleus-M train", "flag must be 'test' or 'new_test_set', got 'train'"),
    ("Q1", "must be 'ID Location-M|S|U"),
])
def test_bad_deeploc_headers_are_named(header, match):
    with pytest.raises(ValueError, match=match):
        fasta.parse_deeploc_header(header)


def test_read_deeploc_subsets_record_by_record():
    train = fasta.read_deeploc(DATA / SUBSETS["train"], dual="keep")
    assert [r["id"] for r in train] == ["P35123", "Q923V8", "Q9VWE0", "P39976", "P18031",
                                        "O14213"]
    assert [r["label"] for r in train] == [-1, 5, 4, 1, 5, 5]
    assert [r["membrane"] for r in train] == ["U", "S", "M", "S", "M", "U"]
    assert len(train[2]["sequence"]) == 1282 and train[2]["sequence"].startswith("M")
    assert "U" in train[1]["sequence"]       # a selenoprotein: U is kept as written
    assert [r["id"] for r in fasta.read_deeploc(DATA / SUBSETS["train"])] == \
        ["Q923V8", "Q9VWE0", "P39976", "P18031", "O14213"]
    test = fasta.read_deeploc(DATA / SUBSETS["test"])
    assert all(r["test"] and r["flag"] == "test" for r in test)
    assert test[0]["location"] == "Plastid" and test[0]["label"] == 6
    assert {"B", "Z"} <= set(test[0]["sequence"])
    hard = fasta.read_deeploc(DATA / SUBSETS["hard"])
    assert all(r["flag"] == "new_test_set" and r["membrane"] == "U" for r in hard)
    assert [r["location"] for r in hard][:3] == ["Endoplasmic.reticulum", "Nucleus",
                                                 "Extracellular"]


def test_read_with_a_parser_names_the_file_and_record(tmp_path):
    path = tmp_path / "bad.fasta"
    path.write_text(">A1 Nucleus-S\nMKV\n>A2 Nowhere-S\nMK\n")
    with pytest.raises(ValueError, match=r"bad.fasta: record 'A2': DeepLoc location "
                                         r"'Nowhere'"):
        fasta.read(path, parse=fasta.parse_deeploc_header)
    plain = fasta.read(path)
    assert plain[1] == {"id": "A2", "description": "Nowhere-S", "sequence": "MK"}


def test_deeploc_loader_through_data_dir(subset_root, monkeypatch):
    assert [r["id"] for r in fasta.deeploc("hard", subset_root)][:2] == ["Q9JLJ1", "Q8IZL8"]
    monkeypatch.setenv("ZOO_DATA", str(subset_root))
    assert len(fasta.deeploc("train")) == 5
    assert len(fasta.deeploc("train", dual="keep")) == 6
    assert len(fasta.deeploc("test")) == 6
    with pytest.raises(ValueError, match=r"split must be one of \['hard', 'test', "
                                         r"'train'\], got 'val'"):
        fasta.deeploc("val")
    with pytest.raises(ValueError, match="dual must be 'drop' or 'keep'"):
        fasta.deeploc("train", dual="merge")


def test_deeploc_loader_says_where_the_files_go(tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="data_dir="):
        fasta.deeploc("test")
    (tmp_path / "deeploc").mkdir()
    with pytest.raises(FileNotFoundError, match="deeploc_test_set.fasta"):
        fasta.deeploc("test", tmp_path)


def test_load_gives_the_same_records_through_datasets(tmp_path):
    pytest.importorskip("datasets")
    ds = fasta.load(DATA / SUBSETS["hard"], cache_dir=str(tmp_path))
    plain = fasta.read(DATA / SUBSETS["hard"])
    assert ds.num_rows == len(plain)
    assert ds[1] == plain[1]


def test_deeploc_dataset_matches_the_plain_records(subset_root, tmp_path):
    pytest.importorskip("datasets")
    ds = fasta.deeploc_dataset("train", subset_root, cache_dir=str(tmp_path / "cache"))
    plain = fasta.deeploc("train", subset_root)
    assert ds.num_rows == len(plain) == 5
    assert [ds[i] for i in range(ds.num_rows)] == plain


def test_parse_fields_uniprot_and_pipes():
    got = fasta.parse_fields(">sp|P69905|HBA_HUMAN Hemoglobin subunit alpha OS=Homo sapiens "
                             "OX=9606 GN=HBA1 PE=1 SV=2")
    assert got["fields"] == ["sp", "P69905", "HBA_HUMAN Hemoglobin subunit alpha"]
    assert got["values"] == {"OS": "Homo sapiens", "OX": "9606", "GN": "HBA1", "PE": "1",
                             "SV": "2"}
    assert fasta.parse_fields("x1 | label=3 | fold = 2|note=a=b") == \
        {"fields": ["x1", "fold = 2"], "values": {"label": "3", "note": "a=b"}}
    assert fasta.parse_fields("seq1 len=5 gc=0.4", sep=";") == \
        {"fields": ["seq1"], "values": {"len": "5", "gc": "0.4"}}
    assert fasta.parse_fields(">Q9H400 Cell.membrane-M test") == \
        {"fields": ["Q9H400 Cell.membrane-M test"], "values": {}}


@pytest.mark.parametrize("n,limit,head,tail", [(1000, 1000, 1000, 0), (1282, 1000, 500, 500),
                                               (13, 7, 4, 3), (5, 2, 1, 1)])
def test_crop_termini_keeps_both_ends(n, limit, head, tail):
    seq = "".join(chr(65 + i % 26) for i in range(n))
    got = fasta.crop_termini(seq, limit)
    assert len(got) == min(n, limit)
    assert got[:head] == seq[:head]
    if n > limit:
        assert got[head:] == seq[n - tail:]
    else:
        assert got == seq


def test_crop_termini_default_is_deeplocs_1000():
    seq = "M" + "A" * 1500 + "KDEL"
    got = fasta.crop_termini(seq)
    assert len(got) == 1000 and got[0] == "M" and got.endswith("KDEL")
    with pytest.raises(ValueError, match="max_length must be an integer >= 2, got 1"):
        fasta.crop_termini(seq, 1)


FULL_COUNTS = {"train": 1678, "test": 2768, "hard": 490}


@pytest.mark.skipif(not (SHARED / "deeploc").is_dir(), reason="the DeepLoc files are not here")
@pytest.mark.parametrize("split", ["train", "test", "hard"])
def test_full_deeploc_files(split):
    records = fasta.deeploc(split, SHARED, dual="keep")
    assert len(records) == FULL_COUNTS[split]
    counts = collections.Counter(r["location"] for r in records)
    if split == "train":
        assert counts["Cytoplasm-Nucleus"] == 23
        assert len(fasta.deeploc(split, SHARED)) == 1678 - 23
    if split == "test":   # SOURCE.md's class table
        assert [counts[c] for c in fasta.DEEPLOC_LOCATIONS] == \
            [806, 505, 393, 302, 273, 173, 152, 70, 64, 30]
    assert all(r["test"] == (split != "train") for r in records)
