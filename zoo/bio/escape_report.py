"""The report of the viral-escape run of :mod:`zoo.bio.bilstm_lm`: the escape AUCs of CSCS,
grammaticality and semantic change beside Hie et al.'s and EVEscape's, every scored mutant,
the training curve and the escape curves (the paper's Fig. 2).

A curve ranks the mutants by a score and counts the escape mutations among the first ``k``
acquired; its AUC is :func:`zoo.bio.escape.escape_auc`.

>>> print(evescape_table({}).strip().splitlines()[0])
## On EVEscape's mutants and labels
"""

import csv
import sys
from pathlib import Path

import numpy as np

from zoo.bio import escape


def write_report(out: Path, settings, result: dict, scored: dict, log: dict) -> None:
    """Writes ``report.md``, ``aucs.csv``, ``mutant_scores.csv``, ``training.csv`` and
    ``escape_curves.png`` under ``out``: ``settings`` and ``result`` those of
    :func:`zoo.bio.bilstm_lm.run`, ``scored`` its ``{virus: (Mutants, aucs)}``, ``log`` the
    training log."""
    out.mkdir(parents=True, exist_ok=True)
    rows = _auc_rows(result)
    with open(out / "aucs.csv", "w") as f:
        f.write("virus,score,ours,published_hie2021,hie2021_scores_this_protocol,evescape\n")
        f.writelines(",".join(map(str, r)) + "\n" for r in rows)
    with open(out / "mutant_scores.csv", "w") as f:
        f.write("virus,pos,wt,mut,log10_prob,change,is_escape\n")
        for virus, (m, _) in scored.items():
            for p, w, a, pr, c, e in zip(m.pos, m.wt, m.mut, m.prob, m.change, m.is_escape):
                f.write(f"{virus},{p},{w},{a},{np.log10(max(pr, 1e-30)):.4f},{c:.5g},"
                        f"{int(e)}\n")
    losses = np.asarray(log["losses"])
    with open(out / "training.csv", "w") as f:
        f.write("step,mean_loss_last_50\n")
        for i in range(49, len(losses), 50):
            f.write(f"{i + 1},{losses[i - 49:i + 1].mean():.4f}\n")
    plot_curves(scored, out / "escape_curves.png")
    table = ["| virus | score | ours | Hie et al. 2021 (published) | Hie et al. scores, "
             "this protocol | EVEscape 2023 |", "|---|---|---:|---:|---:|---:|"]
    table += [f"| {escape.VIRUSES[v]} | {escape.SCORES[k]} | {o} | {p} | {r} | {e} |"
              for v, k, o, p, r, e in rows]
    (out / "report.md").write_text(_report_text(settings, result, table)
                                   + evescape_table(result["on_evescape_labels"]))


def read_mutant_scores(path) -> dict:
    """``{virus: Mutants}`` from a ``mutant_scores.csv`` of :func:`write_report` (the
    probabilities back from their rounded log10)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for virus in dict.fromkeys(r["virus"] for r in rows):
        sel = [r for r in rows if r["virus"] == virus]
        col = lambda k, cast: np.array([cast(r[k]) for r in sel])
        out[virus] = escape.Mutants(
            col("pos", int), col("wt", str), col("mut", str), 10.0 ** col("log10_prob", float),
            col("change", float), np.ones(len(sel), bool), col("is_escape", int) == 1)
    return out


def evescape_table(comparison: dict) -> str:
    """The markdown section of :func:`evescape_comparison`'s AUCs."""
    lines = ["", "## On EVEscape's mutants and labels", "",
             "The mutants EVEscape's tables hold (its labels; flu H1, HIV, and the RBD with "
             "`is_escape_experiment_all`), ranked among themselves, the curve over all of them.",
             "", "| virus | mutants | escape | EVEscape | ours CSCS | ours grammaticality | "
             "ours semantic change | Hie et al. CSCS (published scores) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for v, c in comparison.items():
        lines.append(f"| {escape.VIRUSES[v]} | {c['n']} | {c['n_escape']} | "
                     f"{c['evescape']:.3f} | {c['ours_cscs']:.3f} | "
                     f"{c['ours_grammaticality']:.3f} | {c['ours_semantic_change']:.3f} | "
                     f"{c['paper_cscs']:.3f} |")
    return "\n".join(lines) + "\n"


def _auc_rows(result):
    rows = []
    for v, aucs in result["aucs"].items():
        for k, ours in aucs.items():
            pub = result["published"].get(v, {}).get(k)
            rep = result["reproduced"].get(v, {}).get(k)
            eve = result["evescape"].get(v) if k == "cscs" else None
            rows.append((v, k, f"{ours:.3f}", "" if pub is None else f"{pub:.3f}",
                         "" if rep is None else f"{rep:.3f}",
                         "" if eve is None else f"{eve:.3f}"))
    return rows


def _report_text(settings, result, table):
    c, t = result["corpus"], result["train"]
    return "\n".join([
        "# Viral escape (CSCS) with our BiLSTM language model", "",
        f"Command: `python -m zoo.bio.bilstm_lm {' '.join(sys.argv[1:])}`", "",
        f"Settings: `{settings}` (model {result['network']}); one run, seed "
        f"{settings.seed}; wall time {result['seconds']:.0f} s on a shared 2-core CPU.", "",
        "**Training corpus: not viral.** No influenza/HIV/coronavirus corpus is openly "
        "available here (`viral_escape/SOURCE.md`), so the LM is trained on the general "
        f"protein corpus at hand: {len(c['files'])} files ({c['sequences']} sequences, "
        f"{c['residues']} residues after removing alignment gaps and duplicates; "
        f"{c['valid']} more held out). Hie et al. trained 2x512 BiLSTMs on tens of thousands "
        "of sequences of each virus; ours is a small model trained for a fixed CPU budget "
        f"({t['steps']} steps of {settings.batch_size} crops of at most "
        f"{settings.max_length} residues, {t['seconds']:.0f} s).", "",
        f"Held-out per-residue NLL: {result['valid_nll']:.3f} nats (perplexity "
        f"{np.exp(result['valid_nll']):.2f}) against {result['unigram_nll']:.3f} "
        f"({np.exp(result['unigram_nll']):.2f}) for residue frequencies alone.", "",
        "Escape AUCs by the paper's protocol (`zoo.bio.escape.protocol_aucs`: the DMS-measured "
        "mutants to the 20 standard residues; the RBD is scored inside the full Spike, sites "
        "331-531). EVEscape's AUC is of its own score on its own mutant set and labels "
        "(flu H1, HIV, RBD), shown in the CSCS row. \"Hie et al. scores, this protocol\" "
        "recomputes the AUC from the paper's published per-mutant scores with the same "
        "code as ours (H3 and the RBD do not reproduce: their tables carry 2020 labels; see "
        "`zoo.bio.escape`). HIV: the wild type is UniProt Q2N0S6 with the table's N at "
        "0-based 329 (BG505 T332N); the table covers residues 29-698.", "",
        *table, "",
        "Files: `aucs.csv` (this table), `mutant_scores.csv` (every scored mutant: log10 "
        "grammaticality, semantic change, label), `training.csv` (loss curve), "
        "`escape_curves.png`, `lm.npz` (the trained LM, `zoo.bio.bilstm_lm.load_params`).", ""])


def plot_curves(scored: dict, path) -> Path:
    """One panel per virus: escape mutations found against mutations acquired, for CSCS,
    grammaticality and semantic change (the paper's Fig. 2), with random ranking."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(scored), figsize=(3.6 * len(scored), 3.4), squeeze=False)
    for ax, (virus, (m, aucs)) in zip(axes[0], scored.items()):
        for key, s in (("cscs", escape.cscs(m.prob, m.change)), ("grammaticality", m.prob),
                       ("semantic_change", m.change)):
            acquired, found = escape.escape_curve(s, m.is_escape)
            ax.plot(acquired, found, label=f"{escape.SCORES[key]} {aucs[key]:.3f}")
        ax.plot([0, len(m.pos)], [0, m.is_escape.sum()], "--", c="gray", label="random 0.5")
        ax.set(title=escape.VIRUSES[virus], xlabel="mutations acquired")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("escape mutations found")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


__all__ = ["write_report", "read_mutant_scores", "evescape_table", "plot_curves"]
