"""The console as a new user runs it (``python -m zoo ...`` subprocesses on tiny models and
tiny files): train a classifier from CSV and from FASTA header labels, a causal and a masked
language model from FASTA, predict and eval from the saved model, and one clean error (no
traceback, the flag named) per misuse."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
SPLICE = DATA / "splice.csv"
FASTA = DATA / "deeploc_3class.fasta"          # 30 each of 3 DeepLoc classes
ONE_CLASS = DATA / "deeploc_val_subset.fasta"  # every record Cell.membrane-M


def zoo(*args, cwd=None, timeout=120):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], cwd=cwd or ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _fasta(path):
    """``[(id, header words, sequence)]`` read with a plain loop."""
    records = []
    for line in Path(path).read_text().splitlines():
        if line.startswith(">"):
            words = line[1:].split()
            records.append([words[0], words, ""])
        elif line.strip():
            records[-1][2] += line.strip()
    return records


QUICK = ["--no-progress", "--mesh", "1,1,1", "--cpu-devices", "1", "--log-every", "5"]


# --- training from files, then using the model ------------------------------------------------

def test_splice_csv_trains_a_cnn_that_predicts_and_evaluates(tmp_path):
    out = ok(zoo("train", "cnn-splice", "--data", SPLICE, "--sequence-column", "Sequence",
                 "--label-column", "Class", "--alphabet", "ACGT", "--steps", "40",
                 "--batch-size", "64", "--lr", "3e-3", "--out", tmp_path / "run", *QUICK))
    assert "3 classes" in out and "held-out accuracy" in out
    assert (tmp_path / "run" / "metrics.loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ok(zoo("predict", tmp_path / "run", "--data", SPLICE, "--output", tmp_path / "p.csv"))
    with open(SPLICE) as f:       # the labels, read by hand: the header has spaces
        truth = [row[0].strip() for row in list(csv.reader(f))[1:]]
    with open(tmp_path / "p.csv") as f:
        predicted = [row["predicted"] for row in csv.DictReader(f)]
    assert len(predicted) == len(truth) == 3190
    accuracy = sum(p == t for p, t in zip(predicted, truth)) / len(truth)
    report = json.loads(ok(zoo("eval", tmp_path / "run", "--data", SPLICE)))
    assert report["examples"] == 3190
    assert abs(report["accuracy"] - accuracy) < 1e-4
    assert accuracy > 0.60, "above the majority class (52%) after 40 steps"


def test_fasta_trains_a_causal_lm_whose_eval_is_its_predictions(tmp_path):
    metrics = tmp_path / "logs" / "m.jsonl"
    ok(zoo("train", "transformer-lm_tiny", "--data", FASTA, "--steps", "20", "--lr", "3e-2",
           "--batch-size", "8", "--max-len", "48", "--metrics", metrics,
           "--out", tmp_path / "lm", *QUICK))
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [5, 10, 15, 20]
    assert (tmp_path / "logs" / "m.loss.png").stat().st_size > 1000
    rows = list(csv.DictReader(ok(zoo("predict", tmp_path / "lm", "--data", FASTA))
                               .splitlines()))
    records = _fasta(FASTA)
    assert [r["id"] for r in rows] == [r[0] for r in records]
    # each residue up to the crop is a predicted token (the first one after BOS)
    assert [int(r["tokens"]) for r in rows] == [min(len(seq), 48) for _, _, seq in records]
    report = json.loads(ok(zoo("eval", tmp_path / "lm", "--data", FASTA)))
    assert report["tokens"] == sum(int(r["tokens"]) for r in rows)
    assert abs(report["perplexity"] - math.exp(report["loss"])) < 1e-3 * report["perplexity"]
    # 20 amino acids and X, U, Z, B... in the file: a uniform guess over the 20 standard ones
    # has perplexity 20, over the model's 24 ids 24
    assert report["perplexity"] < 20, "below a uniform guess over the amino acids"


def test_fasta_header_labels_train_a_classifier_that_predicts_those_classes(tmp_path):
    ok(zoo("train", "cnn-protein_tiny", "--data", FASTA, "--label-from-header", "2",
           "--steps", "6", "--batch-size", "8", "--max-len", "64", "--out", tmp_path / "c",
           *QUICK))
    rows = list(csv.DictReader(ok(zoo("predict", tmp_path / "c", "--data", FASTA))
                               .splitlines()))
    classes = {words[1] for _, words, _ in _fasta(FASTA)}
    assert len(classes) == 3 and len(rows) == 90
    assert {r["predicted"] for r in rows} <= classes


def test_fasta_trains_a_masked_lm():
    out = ok(zoo("train", "transformer-mlm_tiny", "--data", FASTA, "--steps", "5",
                 "--batch-size", "8", "--max-len", "32", *QUICK))
    assert "task masked_lm" in out and "step 5" in out


# --- misuse: one clean error each -------------------------------------------------------------

def _refused(result, *phrases):
    text = result.stderr + result.stdout
    assert result.returncode == 2, text
    assert "Traceback" not in text, text
    for phrase in phrases:
        assert phrase in text, text


@pytest.mark.parametrize("args, phrases", [
    (["demo", "--steps", "-1"], ["--steps", "must be an integer >= 1, got -1"]),
    (["train", "mlp-tiny", "--mesh", "a,b,c"], ["--mesh", "three integers", "'a,b,c'"]),
    (["train", "mlp-tiny", "--keep", "0"], ["--keep", ">= 1, got 0"]),
    (["train", "mlp-tiny", "--keep", "1.5"], ["--keep", "expected an integer, got '1.5'"]),
    (["train", "mlp-tiny", "--steps", "0"], ["--steps", ">= 1, got 0"]),
    (["train", "mlp-tiny", "--log-every", "0"], ["--log-every", ">= 1, got 0"]),
], ids=["demo-steps", "mesh", "keep-0", "keep-float", "steps-0", "log-every-0"])
def test_bad_flags_are_refused_naming_the_flag(args, phrases):
    _refused(zoo(*args), *phrases)


def test_a_mistyped_local_path_is_a_missing_file_not_the_hub(tmp_path):
    result = zoo("train", "cnn-splice", "--data", "tests/data/splise.csv")
    _refused(result, "tests/data/splise.csv does not exist")
    assert "Hub" not in result.stderr


def test_resume_without_a_checkpoint_dir_names_the_flags(tmp_path):
    _refused(zoo("train", "mlp-tiny", "--resume", "--steps", "2", *QUICK),
             "--resume needs --checkpoint-dir")
    _refused(zoo("train", "mlp-tiny", "--resume", "--steps", "2", "--checkpoint-dir",
                 tmp_path / "none", *QUICK), "--resume", str(tmp_path / "none"))
    assert not (tmp_path / "none").exists()


def test_a_classifier_without_labels_or_with_one_class_is_refused():
    _refused(zoo("train", "cnn-protein_tiny", "--data", FASTA, *QUICK),
             "--label-column", "--label-from-header")
    _refused(zoo("train", "cnn-protein_tiny", "--data", FASTA, "--label-from-header", "3",
                 *QUICK), "--label-from-header 3", "has 2 words")
    _refused(zoo("train", "cnn-protein_tiny", "--data", ONE_CLASS, "--label-from-header",
                 "2", *QUICK), "labels", "one class")


def test_a_missing_csv_column_is_named_with_the_columns_there():
    _refused(zoo("train", "cnn-splice", "--data", SPLICE, "--sequence-column", "seq",
                 "--label-column", "Class", *QUICK), "'seq'", "'Sequence'")


def test_predict_from_a_folder_without_a_model_is_a_missing_file(tmp_path):
    _refused(zoo("predict", tmp_path, "--data", FASTA), "no saved model", str(tmp_path))


def test_help_is_plain_text_and_bench_names_itself():
    for args in (["--help"], ["train", "--help"], ["predict", "--help"]):
        text = ok(zoo(*args))
        assert "``" not in text and ":func:" not in text and "`" not in text, text
    assert ok(zoo("bench", "--help")).startswith("usage: zoo bench")


def test_without_data_the_output_says_the_data_is_random():
    out = ok(zoo("train", "mlp-tiny", "--steps", "2", "--batch-size", "8", "--examples",
                 "16", *QUICK))
    assert "random" in out and "not that the model learns" in out
