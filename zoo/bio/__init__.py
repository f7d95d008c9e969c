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
* ``contact_eval``: the protocol the contact applications share (the fixed 30/10 family split,
  best-head, mean and logistic-regression predictors from maps, their scores, report pieces).
* the applications' models and reports, apart from their runs: ``msa_transformer`` (the MSA
  Transformer's network and its parameter files), ``localization_model`` and
  ``localization_report``, ``dna_report``, ``escape_report`` (the viral-escape run's).
* the applications, each run by ``zoo bio APP`` (or ``python -m zoo.bio.<module>``):
  ``protein_lm`` (a masked protein LM and contacts from its attention; ``zoo bio contacts``),
  ``msa_lm`` (an MSA Transformer and contacts from its tied row attention; ``msa-lm``),
  ``msa_ensemble`` (one regression over several trained MSA LMs' maps; ``msa-ensemble``),
  ``pair_cnn`` (an AlphaFold-v1-style dilated residual CNN on pair features; ``pair-cnn``),
  ``contacts`` (the MI+APC baseline; ``mi``), ``dna_models`` (promoter and splice classifiers
  and a DNA masked LM; ``dna``), ``localization`` (DeepLoc's BiLSTM with attention pooling;
  ``localize``), ``bilstm_lm`` (the two-sided BiLSTM LM and CSCS viral escape; ``escape``),
  ``embeddings`` (sequence embeddings under a linear probe; ``embed``).

>>> import zoo.bio
>>> zoo.bio.tokenizers.ProteinTokenizer().encode("MK").tolist()
[15, 13]
"""

import importlib

_LAZY = ("tokenizers", "fasta", "dna", "features", "metrics", "msa", "structure", "contacts",
         "contact_eval", "escape", "protein_lm", "msa_lm", "msa_ensemble", "pair_cnn",
         "dna_models", "localization", "bilstm_lm", "embeddings", "msa_transformer",
         "localization_model", "localization_report", "dna_report",
         "escape_report")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"zoo.bio.{name}")
    raise AttributeError(f"module 'zoo.bio' has no attribute {name!r}")


__all__ = list(_LAZY)
