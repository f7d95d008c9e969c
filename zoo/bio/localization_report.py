"""Scores, report and figures of a :mod:`zoo.bio.localization` run: accuracy, Gorodkin's
MCC and membrane accuracy per model, seed and split; the markdown report, CSVs, confusion
matrices and the attention-pooling plot.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo.bio import metrics
from zoo.bio.fasta import DEEPLOC_LOCATIONS, crop_termini
from zoo.bio.localization_model import KINDS, MEMBRANE_CLASS


def scores(records: Sequence[dict], pred: dict) -> dict[str, float]:
    """10-class accuracy, Gorodkin's MCC, and the membrane/soluble accuracy over the
    proteins labelled ``M`` or ``S``."""
    y = np.array([r["label"] for r in records])
    p = pred["loc_prob"].argmax(axis=1)
    m = np.array([MEMBRANE_CLASS[r["membrane"]] for r in records])
    known = m >= 0
    mem_acc = (metrics.accuracy(m[known], pred["mem_prob"][known].argmax(axis=1))
               if known.any() else float("nan"))
    return {"accuracy": metrics.accuracy(y, p),
            "mcc": metrics.gorodkin_mcc(y, p, len(DEEPLOC_LOCATIONS)),
            "membrane_accuracy": mem_acc, "membrane_known": int(known.sum())}


def attention_head_mass(weights: Sequence[np.ndarray], n: int = 30) -> np.ndarray:
    """Per protein, the pooling weight on its first ``n`` (cropped) residues."""
    return np.array([float(w[:n].sum()) for w in weights])


def summarize(splits: dict, preds: dict, histories: dict) -> dict:
    """Score rows per (model, seed, split), their mean over seeds, per-class rows (the first
    seed of each model) and the attention mass on the first 30 residues (first attention
    model, DeepLoc test set)."""
    rows = []
    for (model, seed), pred in preds.items():
        for split in ("holdout", "test", "hard"):
            rows.append({"model": model, "seed": seed, "split": split,
                         **scores(splits[split], pred[split])})
    per_class = []
    firsts = {}
    for model, seed in preds:
        firsts.setdefault(model, seed)
    for model, seed in firsts.items():
        for split in ("test", "hard"):
            y = np.array([r["label"] for r in splits[split]])
            p = preds[(model, seed)][split]["loc_prob"].argmax(axis=1)
            prf = metrics.precision_recall_f1(y, p, len(DEEPLOC_LOCATIONS))
            for c, name in enumerate(DEEPLOC_LOCATIONS):
                per_class.append({"model": model, "seed": seed, "split": split,
                                  "location": name, **{k: float(prf[k][c]) for k in
                                                       ("precision", "recall", "f1")},
                                  "support": int(prf["support"][c])})
    return {"scores": rows, "mean": _mean_rows(rows), "per_class": per_class,
            "attention": _attention_summary(splits, preds, firsts),
            "history": {f"{m}/{s}": h for (m, s), h in histories.items()}}


def _mean_rows(rows):
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for split in ("holdout", "test", "hard"):
            sel = [r for r in rows if r["model"] == model and r["split"] == split]
            entry = {"model": model, "split": split, "runs": len(sel)}
            for key in ("accuracy", "mcc", "membrane_accuracy"):
                values = np.array([r[key] for r in sel])
                entry[key], entry[key + "_std"] = float(values.mean()), float(values.std())
            out.append(entry)
    return out


def _attention_summary(splits, preds, firsts):
    model = next((m for m in ("blstm", "transformer") if m in firsts), None)
    if model is None:
        return {}
    records, pred = splits["test"], preds[(model, firsts[model])]["test"]
    mass = attention_head_mass(pred["weights"])
    uniform = np.array([min(30, len(w)) / len(w) for w in pred["weights"]])
    ext = np.array([r["location"] == "Extracellular" for r in records])
    return {"model": model, "seed": firsts[model], "mass": mass,
            "extracellular": float(mass[ext].mean()), "others": float(mass[~ext].mean()),
            "uniform_extracellular": float(uniform[ext].mean()),
            "uniform_others": float(uniform[~ext].mean()), "n_extracellular": int(ext.sum()),
            "n_others": int((~ext).sum())}


def scores_table(rows: Sequence[dict]) -> str:
    """A markdown table of the mean scores (``summarize(...)["mean"]`` rows)."""
    lines = ["| model | runs | test acc | test MCC | setHARD acc | setHARD MCC | "
             "test M/S acc | setHARD M/S acc |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    by = {(r["model"], r["split"]): r for r in rows if "runs" in r}
    for model in dict.fromkeys(r["model"] for r in rows if "runs" in r):
        t, h = by[(model, "test")], by[(model, "hard")]
        cell = lambda r, k: "—" if np.isnan(r[k]) else (
            f"{r[k]:.4f}" + (f" ± {r[k + '_std']:.4f}" if r["runs"] > 1 else ""))
        lines.append(f"| {model} | {t['runs']} | {cell(t, 'accuracy')} | {cell(t, 'mcc')} | "
                     f"{cell(h, 'accuracy')} | {cell(h, 'mcc')} | "
                     f"{cell(t, 'membrane_accuracy')} | {cell(h, 'membrane_accuracy')} |")
    return "\n".join(lines)


def write_outputs(out: Path, settings, splits: dict, preds: dict, result: dict,
                  command: str | None) -> None:
    """``report.md``, ``scores.csv``, ``per_class.csv``, ``predictions.csv``,
    ``confusion.png`` and ``attention.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _csv(out / "scores.csv", result["scores"])
    _csv(out / "per_class.csv", result["per_class"])
    _csv(out / "predictions.csv", _prediction_rows(splits, preds, result))
    _confusion_png(out / "confusion.png", splits, preds)
    example = _attention_png(out / "attention.png", splits, preds, result["attention"])
    (out / "report.md").write_text(_report_md(settings, splits, result, command, example))


def _csv(path, rows):
    import csv
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v
                             for k, v in r.items()})


def _prediction_rows(splits, preds, result):
    att = result["attention"]
    rows = []
    for split in ("test", "hard"):
        for i, r in enumerate(splits[split]):
            row = {"split": split, "id": r["id"], "length": len(r["sequence"]),
                   "location": r["location"], "membrane": r["membrane"]}
            for (model, seed), pred in preds.items():
                row[f"{model}/{seed}"] = DEEPLOC_LOCATIONS[
                    int(pred[split]["loc_prob"][i].argmax())]
            if att and split == "test":
                row["first30_mass"] = float(att["mass"][i])
            elif att:
                row["first30_mass"] = float(attention_head_mass(
                    [preds[(att["model"], att["seed"])]["hard"]["weights"][i]])[0])
            rows.append(row)
    return rows


def _model_of_figures(preds):
    models = [m for m, _ in preds]
    model = next((m for m in KINDS if m in models), "kmer-LR")
    return model, min(s for m, s in preds if m == model)


def _confusion_png(path, splits, preds):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    model, seed = _model_of_figures(preds)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.8))
    names = [n.replace("Endoplasmic.reticulum", "ER").replace(".", " ") for n in
             DEEPLOC_LOCATIONS]
    for ax, split, title in zip(axes, ("test", "hard"), ("DeepLoc test", "setHARD")):
        y = np.array([r["label"] for r in splits[split]])
        p = preds[(model, seed)][split]["loc_prob"].argmax(axis=1)
        cm = metrics.confusion_matrix(y, p, len(DEEPLOC_LOCATIONS))
        frac = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                if cm[i, j]:
                    ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=7,
                            color="white" if frac[i, j] > 0.5 else "black")
        ax.set_xticks(range(10), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(10), names, fontsize=8)
        ax.set(xlabel="predicted", ylabel="true", title=f"{model} (seed {seed}), {title}: "
               f"acc {metrics.accuracy(y, p):.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _attention_png(path, splits, preds, att):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not att:
        return None
    records, pred = splits["test"], preds[(att["model"], att["seed"])]["test"]
    right = [i for i, r in enumerate(records) if r["location"] == "Extracellular"
             and pred["loc_prob"][i].argmax() == r["label"]]
    pool = right or [i for i, r in enumerate(records) if r["location"] == "Extracellular"]
    if not pool:
        return None
    i = max(pool, key=lambda j: att["mass"][j])
    w, seq = pred["weights"][i], crop_termini(records[i]["sequence"], len(pred["weights"][i]))
    fig, ax = plt.subplots(figsize=(11, 3.4))
    ax.bar(np.arange(1, len(w) + 1), w, width=1.0, color="tab:blue")
    ax.axvspan(0.5, 30.5, color="tab:orange", alpha=0.15, label="first 30 residues")
    ax.set(xlabel="position in the (cropped) sequence", ylabel="attention weight a_t",
           xlim=(0.5, len(w) + 0.5),
           title=f"{records[i]['id']} ({records[i]['location']}, predicted "
                 f"{DEEPLOC_LOCATIONS[int(pred['loc_prob'][i].argmax())]}): {att['model']} "
                 f"attention pooling; N-terminus {seq[:30]}")
    ax.title.set_fontsize(8)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"id": records[i]["id"], "mass": float(att["mass"][i]), "head": seq[:30]}


def _report_md(settings, splits, result, command, example):
    sizes = {k: len(v) for k, v in splits.items()}
    att = result["attention"]
    lines = [
        "# Subcellular localization (DeepLoc 10 classes): BiLSTM-attention, Transformer, CNN",
        "", f"Command: `{command or 'run(...)'}`", "",
        f"Settings: `{settings}`", "",
        f"Wall time: {result['seconds']:.0f} s on this machine's CPU (shared).", "",
        f"Data: trained on `deeploc_our_val_set.fasta` without its dual Cytoplasm-Nucleus "
        f"records, split (stratified, seed 0) into {sizes['train']} training and "
        f"{sizes['holdout']} hold-out proteins (the hold-out picks the epoch: early "
        f"stopping); tested on the DeepLoc test set ({sizes['test']}) and setHARD "
        f"({sizes['hard']}). Sequences longer than {settings.max_length} keep their first "
        f"{settings.max_length - settings.max_length // 2} and last "
        f"{settings.max_length // 2} residues." +
        (f" **Reduced run:** each file limited to {settings.limit} proteins." if settings.limit
         else ""), "",
        f"Runs: every neural row averages {len(settings.seeds)} run(s) (seeds "
        f"{list(settings.seeds)}; ± is the standard deviation over seeds); the baselines are "
        f"deterministic (1 run). k-mer baseline: amino-acid + dipeptide composition (420 "
        f"features), multinomial logistic regression, L2 {result['kmer_l2']:g} chosen on the "
        f"hold-out from {list(settings.kmer_l2)}.", "",
        "## 10-class accuracy and Gorodkin's MCC (M/S: membrane/soluble accuracy over the "
        "proteins labelled M or S; setHARD's headers label every protein U, so it has none)",
        "", scores_table(result["mean"]), "",
        *_published_md(), "", *_goal_md(result["mean"]), "",
        *_per_class_md(result["per_class"]), "",
        "![confusion matrices](confusion.png)", "",
        *_attention_md(att, example), "",
        "Files: `scores.csv` (every model, seed and split), `per_class.csv`, "
        "`predictions.csv` (each test and setHARD protein's prediction by every run, and the "
        "attention mass on its first 30 residues), `confusion.png`, `attention.png`.", ""]
    return "\n".join(lines)


def _published_md():
    return [
        "## Published figures beside ours", "",
        "| method | training data | DeepLoc test acc | DeepLoc test MCC | setHARD acc |",
        "|---|---|---:|---:|---:|",
        "| DeepLoc 1.0, BLSTM + attention on PSSM profiles (Almagro Armenteros et al. 2017) "
        "| DeepLoc train, 11,000+ proteins | 0.7797 | ≈0.74 (not verified here) | — |",
        "| ours, BLSTM + attention on learned amino-acid embeddings (above) | 1,678-protein "
        "file (about a sixth) | see above | see above | see above |", "",
        "The 0.7797 is DeepLoc's test accuracy as the light-attention repository "
        "(HannesStark/protein-localization, README, \"Numbers taken from the DeepLoc paper\") "
        "quotes it; the MCC ≈ 0.74 could not be checked against the paper here. Stärk et al. "
        "2021 (light attention, Bioinformatics Advances 1:vbab035) introduced setHARD and "
        "report DeepLoc's and their models' setHARD accuracy in their results table; those "
        "numbers could not be read from the material available here, so none is quoted "
        "rather than one from memory.", "",
        "**Ours trains on about a sixth of DeepLoc's training set** (the 1,678 proteins of "
        "Stärk et al.'s validation file, against DeepLoc's 11,000+ training proteins), with "
        "sequence input only (DeepLoc used PSSM profiles from PSI-BLAST) and a much smaller "
        "network, so the published figures are an upper reference, not a like-for-like "
        "comparison."]


def _goal_md(mean):
    by = {(r["model"], r["split"]): r["accuracy"] for r in mean}
    if ("blstm", "test") not in by:
        return []
    verdict = []
    for split, name in (("test", "DeepLoc test"), ("hard", "setHARD")):
        b, k = by[("blstm", split)], by[("kmer-LR", split)]
        verdict.append(f"{name}: BiLSTM {b:.4f} vs k-mer {k:.4f} "
                       f"({'beats' if b > k else 'does not beat'} it)")
    return ["**Goal (the BiLSTM beats the k-mer baseline on both test sets):** "
            + "; ".join(verdict) + "."]


def _per_class_md(per_class):
    model = next((m for m in KINDS if any(r["model"] == m for r in per_class)), "kmer-LR")
    lines = [f"## Per-class precision / recall / F1 ({model}, first seed)", "",
             "| location | test P | test R | test F1 | test n | setHARD P | setHARD R | "
             "setHARD F1 | setHARD n |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = {(r["split"], r["location"]): r for r in per_class if r["model"] == model}
    for name in DEEPLOC_LOCATIONS:
        t, h = rows[("test", name)], rows[("hard", name)]
        cells = lambda r: f"{r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | " \
                          f"{r['support']}"
        lines.append(f"| {name} | {cells(t)} | {cells(h)} |")
    return lines


def _attention_md(att, example):
    if not att:
        return []
    lines = [f"## What the model used: attention pooling weights ({att['model']}, seed "
             f"{att['seed']}, DeepLoc test set)", "",
             f"Mean attention mass on the first 30 residues: Extracellular proteins "
             f"{att['extracellular']:.3f} (n = {att['n_extracellular']}), all other proteins "
             f"{att['others']:.3f} (n = {att['n_others']}); uniform attention would give "
             f"{att['uniform_extracellular']:.3f} and {att['uniform_others']:.3f}.", ""]
    if example:
        lines += ["![attention along the sequence](attention.png)", "",
                  f"The protein plotted is {example['id']}, the correctly predicted "
                  f"Extracellular test protein with the most attention on its first 30 "
                  f"residues ({example['mass']:.3f}); its N-terminus is "
                  f"`{example['head']}`."]
    return lines


__all__ = ["scores", "attention_head_mass", "summarize", "scores_table", "write_outputs"]
