"""Scores, report and figures of a :mod:`zoo.bio.dna_models` run: accuracy, Gorodkin's MCC
and per-class error rates beside the published figures, the mass of attention and saliency
profiles in the known landmark windows, and the masked-LM comparison.

The mass of a non-negative profile ``p [S]`` in a window ``W`` is ``Σ_{s∈W} p_s / Σ_s p_s``;
a class's profile is the mean of its sequences' profiles.

Shape letters: ``B`` sequences, ``S`` positions, ``O`` classes.

>>> round(window_mass(np.full(60, 1 / 60), JUNCTION_WINDOW), 4)   # uniform: 7/60
0.1167
>>> class_profiles(np.array([[1., 0.], [0., 1.], [1., 1.]]), np.array([0, 0, 1]), 2).tolist()
[[0.5, 0.5], [1.0, 1.0]]
"""

import csv
import sys
from pathlib import Path

import numpy as np

from zoo.bio import dna, metrics

#: The window of ±3 positions around the splice junction: 0-based [27, 34), 7 of 60.
JUNCTION_WINDOW = slice(dna.SPLICE_JUNCTION - 3, dna.SPLICE_JUNCTION + 4)
#: Published results, copied from the UCI documentation (``promoters.names``,
#: ``splice.names``). Promoters: errors out of 106 by leave-one-out (Towell, Shavlik &
#: Noordewier 1990). Splice: error rates (%) per class by ten-fold cross-validation on 1,000
#: of the 3,190 examples (Noordewier, Towell & Shavlik 1991).
PUBLISHED = {
    "promoters": {"KBANN": 4, "BP (std backprop, one hidden layer)": 8,
                  "O'Neill (ad hoc, bio. lit.)": 12, "Near-Neigh (k=3)": 13, "ID3": 19},
    "splice": {"KBANN": (4.62, 7.56, 8.47), "BACKPROP": (5.29, 5.74, 10.75),
               "PEBLS": (6.86, 8.18, 7.55), "PERCEPTRON": (3.99, 16.32, 17.41),
               "ID3": (8.84, 10.58, 13.99), "COBWEB": (11.80, 15.04, 9.46),
               "Near. Neighbor": (31.11, 11.65, 9.09)},
}


def window_mass(profile, window: slice) -> float:
    """The fraction of a non-negative profile ``[S]`` inside ``window``."""
    p = np.asarray(profile, np.float64)
    return float(p[window].sum() / p.sum())



def class_profiles(per_seq, y, num_classes: int) -> np.ndarray:
    """Mean of per-sequence profiles ``[B, S]`` over each class: ``[O, S]``."""
    return np.stack([per_seq[y == c].mean(0) for c in range(num_classes)])



def _landmarks(task: str) -> dict:
    if task == "splice":
        return {"junction ±3": JUNCTION_WINDOW}
    return {"-35 box": dna.MINUS_35, "-10 box": dna.MINUS_10}


def summarize(task, res: dict) -> dict:
    """Accuracy (pooled out-of-fold, and mean/std over folds), Gorodkin's MCC and per-class
    error rates (``1 − recall``, %) per model; the mass of each profile in the landmark
    windows per class; the masked-LM losses. ``task`` is a
    :class:`zoo.bio.dna_models.TaskData`, ``res`` its
    :func:`zoo.bio.dna_models.cross_validate`."""
    y, classes = task.data.labels, task.data.classes
    acc = {}
    for name, pred in res["pred"].items():
        per_fold = [metrics.accuracy(y[te], pred[te]) for _, te in res["folds"]]
        recall = metrics.precision_recall_f1(y, pred, len(classes))["recall"]
        acc[name] = {"accuracy": metrics.accuracy(y, pred), "fold_mean": float(np.mean(per_fold)),
                     "fold_std": float(np.std(per_fold)), "per_fold": per_fold,
                     "errors": int((pred != y).sum()),
                     "mcc": metrics.gorodkin_mcc(y, pred, len(classes)),
                     "class_error_pct": [100 * (1 - r) for r in recall]}
    windows = {}
    for kind in ("attention", "attention_last", "saliency"):
        for name, per_seq in res[kind].items():
            prof = class_profiles(per_seq, y, len(classes))
            windows[(kind, name)] = {w: [window_mass(p, sl) for p in prof]
                                     for w, sl in _landmarks(task.name).items()}
    return {"accuracy": acc, "windows": windows, "mlm": res["mlm"], "n": len(y),
            "length": task.x_tokens.shape[1], "classes": classes,
            "seconds": res["seconds"], "folds": len(res["folds"])}


def write_outputs(out: Path, s, loaded, results, summaries, seconds,
                  command: str | None = None) -> None:
    """``report.md``, ``predictions.csv``, ``profiles.csv`` and one PNG per task."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        names = ["cnn", "lstm", "transformer", "transformer+mlm", "kmer_lr"]
        w.writerow(["task", "id", "fold", "label"] + names)
        for task, res in results.items():
            fold_of = np.empty(len(loaded[task].data.labels), np.int32)
            for i, (_, te) in enumerate(res["folds"]):
                fold_of[te] = i
            d = loaded[task].data
            for i in range(len(d.labels)):
                w.writerow([task, d.ids[i], fold_of[i], d.classes[d.labels[i]]] +
                           [d.classes[res["pred"][n][i]] if n in res["pred"] else ""
                            for n in names])
    with open(out / "profiles.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task", "quantity", "model", "class", "position", "value"])
        for task, res in results.items():
            d = loaded[task].data
            for kind in ("attention", "attention_last", "saliency"):
                for name, per_seq in res[kind].items():
                    for c, prof in enumerate(class_profiles(per_seq, d.labels, len(d.classes))):
                        w.writerows([task, kind, name, d.classes[c], t, f"{v:.6g}"]
                                    for t, v in enumerate(prof))
    for task, res in results.items():
        plot_profiles(out / f"{task}_profiles.png", task, loaded[task].data, res)
    (out / "report.md").write_text(report(s, summaries, seconds, command))


def plot_profiles(path: Path, task: str, data: dna.LabelledSequences, res: dict) -> None:
    """Attention mass (Transformer, all layers) and saliency (each model) by position, one
    line per class, the landmark windows shaded and the uniform level dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("attention", n) for n in res["attention"]] + \
        [("saliency", n) for n in res["saliency"]]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.1 * len(panels)), sharex=True)
    length = next(iter(res["saliency"].values())).shape[1]
    for ax, (kind, name) in zip(np.atleast_1d(axes), panels):
        prof = class_profiles(res[kind][name], data.labels, len(data.classes))
        for c, p in enumerate(prof):
            ax.plot(np.arange(length), p, label=data.classes[c], lw=1.2)
        for label, sl in _landmarks(task).items():
            ax.axvspan(sl.start - 0.5, sl.stop - 0.5, color="0.85", zorder=0)
            ax.text((sl.start + sl.stop) / 2 - 0.5, ax.get_ylim()[1], label, ha="center",
                    va="top", fontsize=7)
        if task == "splice":
            ax.axvline(dna.SPLICE_JUNCTION - 0.5, color="k", lw=0.8)
        ax.axhline(1 / length, color="0.4", ls="--", lw=0.8)
        ax.set_ylabel(f"{name}\n{kind}", fontsize=8)
        ax.legend(fontsize=7, loc="upper left", ncol=len(data.classes))
    np.atleast_1d(axes)[-1].set_xlabel("position (0-based index in the window)")
    fig.suptitle(f"{task}: attention mass and |d logit / d input| by position "
                 "(held-out sequences, mean per class)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(s, summaries: dict, seconds: float, command: str | None = None) -> str:
    """The markdown report: accuracy tables beside the published numbers, landmark masses,
    the masked-LM comparison, settings and timing."""
    lines = ["# DNA applications: promoters and splice junctions", "",
             f"Command: `{command or ' '.join(['python -m zoo.bio.dna_models'] + sys.argv[1:])}`",
             "",
             f"Settings: `{s}`", "",
             f"Wall time {seconds:.0f} s on this machine (shared CPU).", ""]
    for task, summ in summaries.items():
        lines += _accuracy_table(task, summ, s) + _window_table(task, summ)
        if summ["mlm"]:
            lines += _mlm_table(summ)
    return "\n".join(lines) + "\n"


def _accuracy_table(task, summ, s):
    classes, acc = summ["classes"], summ["accuracy"]
    head = " | ".join(f"{c} error %" for c in classes)
    lines = [f"## {task}: {summ['n']} sequences of {summ['length']} nt, {summ['folds']}-fold "
             f"stratified cross-validation (seed {s.seed})", "",
             f"| model | accuracy (pooled) | fold mean ± sd | errors / {summ['n']} | MCC | "
             f"{head} | train s |", "|---" * (6 + len(classes)) + "|"]
    for name, a in acc.items():
        errs = " | ".join(f"{e:.2f}" for e in a["class_error_pct"])
        secs = summ["seconds"].get(name)
        lines.append(f"| {name} | {a['accuracy']:.4f} | {a['fold_mean']:.4f} ± "
                     f"{a['fold_std']:.4f} | {a['errors']} | {a['mcc']:.3f} | {errs} | "
                     f"{'' if secs is None else f'{secs:.0f}'} |")
    pub = PUBLISHED[task]
    if task == "promoters":
        lines += ["", "Published (UCI `promoters.names`, Towell, Shavlik & Noordewier 1990; "
                  "**leave-one-out**, not our k-fold): errors out of 106 — " +
                  "; ".join(f"{k} {v}/106 ({1 - v / 106:.3f})" for k, v in pub.items()) + "."]
    else:
        lines += ["", "Published (UCI `splice.names`, Noordewier, Towell & Shavlik 1991; "
                  "ten-fold cross-validation on **1,000 of the 3,190** examples; error rates "
                  "% for Neither / EI / IE, which we read as per-class 1 − recall): " +
                  "; ".join(f"{k} {n:.2f} / {ei:.2f} / {ie:.2f}"
                            for k, (n, ei, ie) in pub.items()) +
                  f". Our columns are in the order {', '.join(classes)}."]
    return lines + [""]


def _window_table(task, summ):
    length = summ["length"]
    names = list(_landmarks(task))
    uniform = " / ".join(f"{(sl.stop - sl.start) / length:.4f}"
                         for sl in _landmarks(task).values())
    lines = [f"### {task}: profile mass in {' / '.join(names)} (uniform: {uniform})", "",
             "Per class, of the per-sequence profile normalised to 1 and averaged over the "
             "held-out sequences of that class.", "",
             "| quantity | model | " + " | ".join(summ["classes"]) + " |",
             "|---" * (2 + len(summ["classes"])) + "|"]
    for (kind, name), w in summ["windows"].items():
        cells = [" / ".join(f"{w[n][c]:.3f}" for n in names) for c in range(len(summ["classes"]))]
        lines.append(f"| {kind} | {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _mlm_table(summ):
    acc = summ["accuracy"]
    scratch, tuned = acc["transformer"]["per_fold"], acc["transformer+mlm"]["per_fold"]
    wins = sum(t > u for t, u in zip(tuned, scratch))
    lines = ["### splice: masked-LM pretraining, then fine-tuning, against the same "
             "Transformer from scratch (same classification epochs, seeds and head init)", "",
             "| fold | LM corpus (sequences) | LM train loss | LM held-out loss | pretrain s | "
             "scratch acc | fine-tuned acc |", "|---" * 7 + "|"]
    for m, a, b in zip(summ["mlm"], scratch, tuned):
        lines.append(f"| {m['fold']} | {m['sequences']} | {m['train_loss']:.3f} | "
                     f"{m['test_loss']:.3f} | {m['seconds']:.0f} | {a:.4f} | {b:.4f} |")
    d = acc["transformer+mlm"]["accuracy"] - acc["transformer"]["accuracy"]
    lines += ["", f"Fine-tuned minus scratch, pooled accuracy: {d:+.4f}; the fine-tuned model "
              f"is better on {wins} of {len(scratch)} folds. The LM corpus of each fold is its "
              "splice training sequences plus the 106 promoters (about 2,660 sequences, "
              "~160 k nucleotides: a tiny corpus for an LM); held-out sequences are never "
              "seen, not even unlabeled. ln 4 = 1.386 is the loss of a uniform guess over "
              "A C G T.", ""]
    return lines


__all__ = ["JUNCTION_WINDOW", "PUBLISHED", "window_mass", "class_profiles", "summarize",
           "write_outputs", "plot_profiles", "report"]
