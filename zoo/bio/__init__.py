"""zoo.bio: the bioinformatics layer of the zoo.

Submodules, each loaded on first use (``import zoo.bio`` imports none of them, and never
``datasets``):

* ``tokenizers``: protein, nucleotide and k-mer tokenizers with fixed ids (pad = 0).
* ``fasta``: FASTA records, header parsers, the DeepLoc splits and its cropping.
* ``dna``: the UCI promoter and splice-junction sets and their landmark positions.
* ``features``: k-mer composition vectors, a multinomial logistic regression and stratified
  k-fold splits (the shared baselines and linear probes).
* ``metrics``: accuracy, confusion matrix, per-class precision/recall/F1, Gorodkin's
  multi-class MCC, binary ROC AUC.
* ``msa``, ``structure``, ``contacts``, ``escape``: alignments, PDB structures, contact maps,
  viral-escape scoring.

>>> import zoo.bio
>>> zoo.bio.tokenizers.ProteinTokenizer().encode("MK").tolist()
[15, 13]
"""

import importlib

_LAZY = ("tokenizers", "fasta", "dna", "features", "metrics", "msa", "structure", "contacts",
         "escape")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"zoo.bio.{name}")
    raise AttributeError(f"module 'zoo.bio' has no attribute {name!r}")


__all__ = list(_LAZY)
