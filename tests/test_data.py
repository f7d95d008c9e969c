"""Data loading: files through `datasets`, FASTA with its hash in the cache key, padding and
buckets, seeded shuffling, resumable positions, per-process rows, clear errors."""

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from zoo import data, sharding

DATA = Path(__file__).parent / "data"
FASTA = DATA / "deeploc_sethard_head.fasta"


def _table(n=23):
    return {"x": np.arange(n, dtype=np.float32), "y": np.arange(n) % 3}


def _collate(cols, length):
    return (cols["x"][:, None],), cols["y"]


def _rows(loader, k):
    it = iter(loader)
    return [next(it)[0][0][:, 0].astype(int).tolist() for _ in range(k)]


def test_import_zoo_does_not_import_datasets():
    code = ("import sys, zoo, zoo.train, zoo.data, zoo.cli; zoo.get('mlp-tiny'); "
            "assert 'datasets' not in sys.modules, 'datasets imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_shuffle_is_seeded_and_each_epoch_is_a_permutation():
    def make(seed):
        return data.Loader(_table(), _collate, batch_size=5, seed=seed)
    a, b, c = _rows(make(1), 8), _rows(make(1), 8), _rows(make(2), 8)
    assert a == b and a != c
    assert len(make(1)) == 4                         # 23 // 5, remainder dropped
    for epoch in (a[:4], a[4:]):
        seen = sum(epoch, [])
        assert len(seen) == len(set(seen)) == 20
    assert a[:4] != a[4:]                             # a new order each epoch


def test_position_round_trips_and_resumes_the_same_batches():
    loader = data.Loader(_table(), _collate, batch_size=5, seed=7)
    whole = _rows(loader, 7)
    first = data.Loader(_table(), _collate, batch_size=5, seed=7)
    _rows(first, 3)
    state = first.state_dict()
    assert state == {"epoch": 0, "batch": 3, "seed": 7}
    resumed = data.Loader(_table(), _collate, batch_size=5, seed=7)
    resumed.load_state_dict(state)
    assert _rows(resumed, 4) == whole[3:]
    with pytest.raises(ValueError, match="seed 7"):
        data.Loader(_table(), _collate, batch_size=5, seed=8).load_state_dict(state)


def test_evaluation_loader_restarts_every_pass_in_order():
    loader = data.Loader(_table(), _collate, batch_size=5, shuffle=False, repeat=False)
    passes = [[b[0][0][:, 0].astype(int).tolist() for b in loader] for _ in range(2)]
    assert passes[0] == passes[1] == [list(range(i, i + 5)) for i in range(0, 20, 5)]


def test_pad_and_mask_by_hand():
    arr, mask = data.pad([np.array([4, 5, 6]), np.array([7])], 4, value=0)
    assert arr.tolist() == [[4, 5, 6, 0], [7, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]


def test_language_model_batches_are_shifted_padded_and_bucketed():
    texts = ["AC", "ACGTA", "G", "TTTTTTTTT", "CGCG", "A", "GGG", "ACGTACG"]
    tok = data.CharTokenizer("ACGT")
    loader = data.sequence_loader({"seq": texts}, "seq", tok, batch_size=2, buckets=(4, 8),
                                  seed=0)
    shapes = set()
    for _ in range(2 * len(loader)):
        (x,), t = next(iter(loader))
        shapes.add(x.shape)
        for row, lab, m in zip(x, t["labels"], t["mask"]):
            n = int(m.sum())
            assert row[0] == tok.BOS and lab[n - 1] == tok.EOS or n == x.shape[1]
            np.testing.assert_array_equal(row[1:n], lab[:n - 1])   # labels = next tokens
            assert (lab[n:] == 0).all() and (row[n:] == 0).all()
    assert shapes <= {(2, 4), (2, 8)} and len(shapes) == 2


def test_csv_json_and_text_files_load_through_datasets(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    (tmp_path / "t.jsonl").write_text("".join(f'{{"a": {i}, "label": {i % 2}}}\n'
                                              for i in range(4)))
    (tmp_path / "t.txt").write_text("ACGT\nGGA\n")
    csv = data.load(tmp_path / "t.csv", cache_dir=str(tmp_path / "cache"))
    assert csv.column_names == ["a", "b", "label"] and len(csv) == 4
    assert len(data.load(tmp_path / "t.jsonl", cache_dir=str(tmp_path / "cache"))) == 4
    assert data.load(tmp_path / "t.txt", cache_dir=str(tmp_path / "cache"))["text"] == \
        ["ACGT", "GGA"]
    loader = data.columns_loader(csv, ["a", "b"], "label", batch_size=2, shuffle=False)
    (x,), y = next(iter(loader))
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(y, [0, 1])


def test_missing_column_is_named(tmp_path):
    (tmp_path / "t.csv").write_text("a,label\n1,0\n2,1\n")
    csv = data.load(tmp_path / "t.csv", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(KeyError, match="no column 'b'.*\\['a', 'label'\\]"):
        data.columns_loader(csv, ["a", "b"], "label", batch_size=2)
    with pytest.raises(KeyError, match="no column 'Sequence'"):
        data.sequence_loader(csv, "Sequence", data.CharTokenizer("ACGT"), batch_size=2,
                             buckets=(8,))


def test_fasta_cache_key_follows_the_file_contents(tmp_path):
    path = tmp_path / "p.fasta"
    path.write_bytes(FASTA.read_bytes())
    cache = str(tmp_path / "cache")
    ds = data.load(path, cache_dir=cache)
    assert ds.column_names == ["id", "description", "sequence"] and len(ds) == 5
    assert ds[0]["id"] == "Q12981" and ds[0]["sequence"].startswith("MAAPQDVHVRICNQ")
    assert ds[0]["description"].startswith("Endoplasmic.reticulum")
    path.write_text(">X1 edited\nMKV\nLL\n")
    edited = data.load(path, cache_dir=cache)
    assert len(edited) == 1 and edited[0]["sequence"] == "MKVLL"


def test_bad_fasta_and_missing_files_raise(tmp_path):
    bad = tmp_path / "bad.fasta"
    bad.write_text("MKV\n>x\nAA\n")
    with pytest.raises(Exception, match="must start with a '>'"):
        data.load(bad, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load(tmp_path / "absent.csv")


def test_hub_name_without_network_fails_clearly():
    if data._hub_reachable(timeout=2):
        pytest.skip("the Hub is reachable here")
    with pytest.raises(ConnectionError, match="huggingface.co is not reachable"):
        data.load("stanfordnlp/imdb")


def test_splice_csv_trains_through_the_sequence_loader(tmp_path):
    ds = data.load(DATA / "splice.csv", cache_dir=str(tmp_path / "cache"),
                   skipinitialspace=True)
    classes = sorted(set(ds["Class"]))
    ds = ds.map(lambda r: {"label": classes.index(r["Class"])})
    loader = data.sequence_loader(ds, "Sequence", data.CharTokenizer("ACGT"), batch_size=4,
                                  buckets=(60,), task="classification", label_column="label")
    (x,), y = next(iter(loader))
    assert x.shape == (4, 60) and x.dtype == np.int32 and set(np.unique(x)) <= set(range(8))
    assert y.shape == (4,) and set(y.tolist()) <= {0, 1, 2}


def test_process_rows_on_one_process_are_the_whole_batch():
    assert data.process_rows(sharding.make_mesh((2, 2, 2)), 8) == slice(0, 8)
    with pytest.raises(ValueError, match="does not divide"):
        data.process_rows(sharding.make_mesh((8, 1, 1)), 12)


def test_a_mistyped_local_path_is_a_missing_file_not_a_hub_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for typo in ("splise.csv", "runs/splice", "a/b/c", "./splice", "~/splice"):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            data.load(typo)
    assert not data._looks_like_path("stanfordnlp/imdb") and not data._looks_like_path("glue")


def test_csv_column_names_lose_their_surrounding_spaces(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("Class, Donor,   Sequence\nEI, D1,  ACGT\n")
    table = data.load(path, cache_dir=str(tmp_path / "cache"))
    assert table.column_names == ["Class", "Donor", "Sequence"]


def test_sequence_encodings_match_hand_written_arrays():
    onehot = data.SequenceEncoding(kind="onehot", alphabet="ACGT", length=4, lengths=True)
    x, lengths = onehot.encode(["GR", "TTTTT"])
    expected = np.zeros((2, 4, 4), np.float32)
    expected[0, 0, 2] = 1                        # G
    expected[0, 1, [0, 2]] = 0.5                 # R = A or G
    expected[1, :, 3] = 1                        # T, cropped to 4
    np.testing.assert_array_equal(x, expected)
    assert lengths.tolist() == [2, 4]
    lm = data.SequenceEncoding(kind="lm", alphabet="MK", length=5)
    assert lm.encode(["KMZ"])[0].tolist() == [[1, 5, 4, 3, 0]]     # BOS K M unknown PAD
    assert lm.vocab_size == 6
    with pytest.raises(ValueError, match="kind must be one of"):
        data.SequenceEncoding(kind="bytes", alphabet="A", length=2)
