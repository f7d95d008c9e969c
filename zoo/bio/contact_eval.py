"""The protocol the contact applications share: the fixed family split, the predictors read
from a stack of pair maps, their scores on the held-out families, and the report's pieces.

**Split.** The 40 Pfam families with a structure (``pfam_domains_structures``) are split once,
by a rule anyone can re-run: the Pfam ids sorted, ``numpy.random.default_rng(0)
.permutation(40)``, the first 10 positions held out (:data:`HELDOUT_FAMILIES`), the other 30
for training (:data:`TRAIN_FAMILIES`). The language models (:mod:`zoo.bio.protein_lm`,
:mod:`zoo.bio.msa_lm`), the head choice, the logistic regression over heads and the pair CNN
(:mod:`zoo.bio.pair_cnn`) see training families only; every contact number of their reports is
on the 10 held-out families.

**Predictors from maps** (Rao et al. 2021). Given ``I`` symmetric, APC-corrected maps
``F^{(i)}`` of every family (one per attention head), :func:`fit_predictors` gives

* *best head*: the one ``F^{(i)}`` with the highest mean long-range P@L/5 on the training
  families;
* *mean of heads*: ``(1/I) Σ F^{(i)}``;
* *supervised*: ``σ(Σ_i w_i F^{(i)}_{jk} + b)``, an L1-regularised logistic regression fitted
  on the pairs ``|j − k| ≥ 6`` of the training families, by proximal gradient descent (FISTA)
  on standardised features::

      min_{w,b}  (1/P) Σ_p BCE(x_p·w + b, y_p) + λ ‖w‖₁

and the baseline is MI+APC of the family's alignment (:func:`mi_apc_cached`). The scores
(:func:`evaluate`) are P@L/5 and P@L of the long-range (``|i − j| ≥ 24``) and medium-range
(12–23) pairs against the structure's contacts (:func:`zoo.bio.contacts.family_precisions`).

Shape letters: ``T`` alignment columns, ``I`` maps (features), ``P`` residue pairs.

>>> len(TRAIN_FAMILIES), len(HELDOUT_FAMILIES), set(TRAIN_FAMILIES) & set(HELDOUT_FAMILIES)
(30, 10, set())

References:
    R. Rao, J. Meier, T. Sercu, S. Ovchinnikov, A. Rives, "Transformer protein language models
    are unsupervised structure learners", ICLR 2021. https://doi.org/10.1101/2020.12.15.422761
    A. Beck, M. Teboulle, "A Fast Iterative Shrinkage-Thresholding Algorithm for Linear
    Inverse Problems", SIAM J. Imaging Sci. 2(1), 2009. https://doi.org/10.1137/080716542
"""

import argparse
import csv
import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Float, Int

from zoo.bio import contacts as _contacts
from zoo.bio import msa as _msa
from zoo.bio import structure as _structure

#: The 10 held-out families (module docstring: the sorted ids, ``default_rng(0)``'s
#: permutation, its first 10 positions).
HELDOUT_FAMILIES = ("PF00018", "PF00041", "PF00072", "PF00076", "PF00240", "PF00381",
                    "PF00550", "PF00581", "PF00691", "PF02823")


#: The 30 training families (the other 30 positions of the permutation), sorted.
TRAIN_FAMILIES = ("PF00013", "PF00085", "PF00111", "PF00168", "PF00169", "PF00179",
                  "PF00226", "PF00249", "PF00254", "PF00313", "PF00327", "PF00355",
                  "PF00364", "PF00439", "PF00486", "PF00498", "PF00542", "PF00582",
                  "PF00595", "PF00708", "PF01029", "PF01035", "PF01451", "PF01627",
                  "PF01833", "PF04002", "PF07679", "PF07686", "PF08666", "PF12844")


#: Minimum sequence separation of the pairs the supervised head is fitted on.
MIN_SEP = 6
#: The scores of every report: precision at L/5 and L, long and medium range.
METRICS = ("long_P@L/5", "long_P@L", "medium_P@L/5", "medium_P@L")


# --- the families ------------------------------------------------------------------------------

def split_families(pfam_ids, *, seed: int = 0, num_heldout: int = 10
                   ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(train, heldout)``: ``sorted(pfam_ids)`` permuted by ``default_rng(seed)``, the
    first ``num_heldout`` held out; each part sorted. :data:`TRAIN_FAMILIES` and
    :data:`HELDOUT_FAMILIES` are this split of the 40 families.

    >>> split_families(["c", "a", "b", "d"], num_heldout=1)
    (('a', 'b', 'd'), ('c',))

    Raises:
        ValueError: if ``num_heldout`` is not in ``[1, len(pfam_ids))`` or ids repeat.
    """
    ids = sorted(pfam_ids)
    if len(set(ids)) != len(ids):
        raise ValueError(f"pfam_ids must be distinct, got {len(ids)} ids with repeats")
    if not 1 <= num_heldout < len(ids):
        raise ValueError(f"num_heldout must be in [1, {len(ids)}), got {num_heldout!r}")
    perm = np.random.default_rng(seed).permutation(len(ids))
    held = tuple(sorted(ids[i] for i in perm[:num_heldout]))
    return tuple(sorted(ids[i] for i in perm[num_heldout:])), held


def load_families(pfam_ids, root=None) -> dict:
    """``{pfam: Family}`` through :func:`zoo.bio.structure.load_family`."""
    return {p: _structure.load_family(p, root) for p in pfam_ids}


# --- predictors from maps ----------------------------------------------------------------------

def head_scores(maps: Float[np.ndarray, "I T T"], family, key: str = "long_P@L/5"
                ) -> Float[np.ndarray, "I"]:
    """Each head's ``key`` precision on ``family``."""
    return np.array([_contacts.family_precisions(family, m)[key] for m in maps])


def pair_features(maps: Float[np.ndarray, "I T T"], family, *, min_sep: int = MIN_SEP
                  ) -> tuple[Float[np.ndarray, "P I"], Int[np.ndarray, "P"]]:
    """The supervised head's examples: for every resolved pair ``i < j`` of structured
    columns with residue separation ``≥ min_sep``, the ``I`` head scores and the contact
    label."""
    cols = np.flatnonzero(family.column_residue >= 0)
    pos = family.column_residue[cols]
    target = family.contacts()[np.ix_(cols, cols)]
    i, j = np.triu_indices(len(cols), 1)
    keep = (np.abs(pos[j] - pos[i]) >= min_sep) & (target[i, j] >= 0)
    i, j = i[keep], j[keep]
    return maps[:, cols[i], cols[j]].T, target[i, j].astype(np.int32)


@dataclasses.dataclass(frozen=True)
class L1Logistic:
    """A fitted binary logistic regression on standardised features (:func:`fit_l1_logistic`).

    Attributes: ``w_i [I]`` and ``b`` in the standardised space, ``mean_i``, ``scale_i``.
    """
    w_i: np.ndarray
    b: float
    mean_i: np.ndarray
    scale_i: np.ndarray

    def decision_function(self, x: Float[np.ndarray, "... I"]) -> np.ndarray:
        """The logits ``((x − mean)/scale)·w + b`` over the last axis."""
        return ((np.asarray(x) - self.mean_i) / self.scale_i) @ self.w_i + self.b

    def score_maps(self, maps: Float[np.ndarray, "I T T"]) -> Float[np.ndarray, "T T"]:
        """The logit of every pair of a stack of head maps."""
        return self.decision_function(np.moveaxis(maps, 0, -1))


def fit_l1_logistic(x: Float[np.ndarray, "P I"], y: Int[np.ndarray, "P"], *,
                    l1: float = 1e-3, steps: int = 500) -> L1Logistic:
    """``min (1/P) Σ BCE(x̂·w + b, y) + l1·‖w‖₁`` by FISTA (module docstring), ``x̂`` the
    standardised features, step ``1/Lip`` with ``Lip = λ_max(x̂ᵀx̂/P)/4 + ¼`` (the bias).

    >>> x = np.array([[0.], [1.], [2.], [3.]]); y = np.array([0, 0, 1, 1])
    >>> m = fit_l1_logistic(x, y, l1=1e-4)
    >>> (m.decision_function(x) > 0).astype(int).tolist()
    [0, 0, 1, 1]

    Raises:
        ValueError: for mismatched shapes, labels other than 0/1, or ``l1 < 0``.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"x must be [P, I] and y [P], got {x.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must hold 0/1 labels")
    if l1 < 0:
        raise ValueError(f"l1 must be >= 0, got {l1!r}")
    mean, std = x.mean(0), x.std(0)
    scale = np.where(std > 0, std, 1.0)
    xs = (x - mean) / scale
    lip = np.linalg.eigvalsh(xs.T @ xs / len(xs)).max() / 4 + 0.25
    w, b = _fista(jnp.asarray(xs, jnp.float32), jnp.asarray(y, jnp.float32),
                  float(l1), float(1.0 / lip), int(steps))
    return L1Logistic(np.asarray(w, np.float64), float(b), mean, scale)


@functools.partial(jax.jit, static_argnums=(4,))
def _fista(x, y, l1, lr, steps):
    def loss(wb):
        z = x @ wb[0] + wb[1]
        return jnp.mean(optax.sigmoid_binary_cross_entropy(z, y))

    def body(_, carry):
        wb, prev, t = carry
        g = jax.grad(loss)(wb)
        w = wb[0] - lr * g[0]
        w = jnp.sign(w) * jnp.maximum(jnp.abs(w) - lr * l1, 0.0)
        new = (w, wb[1] - lr * g[1])
        t_next = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
        momentum = (t - 1) / t_next
        look = jax.tree.map(lambda a, p: a + momentum * (a - p), new, prev)
        return look, new, t_next

    start = (jnp.zeros(x.shape[1]), jnp.zeros(()))
    _, wb, _ = jax.lax.fori_loop(0, steps, body, (start, start, jnp.ones(())))
    return wb


def fit_predictors(maps: dict, families: dict, *, l1: float = 1e-3, tag: str = "") -> dict:
    """The three attention predictors of head maps ``{pfam: [I, T, T]}`` (on alignment
    columns): the best head and the L1 logistic regression chosen and fitted on the
    :data:`TRAIN_FAMILIES` among ``maps``; method names end in ``tag``.

    Returns a dict: ``maps`` (the input), ``head_train`` ``[I]`` each head's mean long-range
    P@L/5 on the training families, ``best_head`` its argmax, the fitted ``logistic``
    (:class:`L1Logistic`) and ``scores`` ``{method: {pfam: [T, T]}}`` for ``"best head"``,
    ``"mean of heads"`` and ``"supervised attention"`` (each followed by ``tag``).

    Raises:
        ValueError: if ``maps`` holds no training family.
    """
    train = [p for p in TRAIN_FAMILIES if p in maps]
    if not train:
        raise ValueError(f"maps must hold at least one of TRAIN_FAMILIES, got {sorted(maps)}")
    head_train = np.mean([head_scores(maps[p], families[p]) for p in train], axis=0)
    best = int(np.argmax(head_train))
    xs, ys = zip(*(pair_features(maps[p], families[p]) for p in train))
    model = fit_l1_logistic(np.concatenate(xs), np.concatenate(ys), l1=l1)
    scores = {"best head" + tag: {p: m[best] for p, m in maps.items()},
              "mean of heads" + tag: {p: m.mean(0) for p, m in maps.items()},
              "supervised attention" + tag: {p: model.score_maps(m) for p, m in maps.items()}}
    return {"maps": maps, "head_train": head_train, "best_head": best, "logistic": model,
            "scores": scores}


# --- the baseline and the scores ---------------------------------------------------------------

def mi_apc_cached(family, cache_dir: str | None = None, *, max_sequences: int | None = None,
                  seed: int = 0) -> Float[np.ndarray, "T T"]:
    """:func:`zoo.bio.contacts.mi_apc` of the family's alignment (sequence weights θ 0.8;
    at most ``max_sequences`` rows drawn with ``seed``), kept as
    ``<cache_dir>/mi_apc_<pfam>[_<max_sequences>_<seed>].npy`` when ``cache_dir`` is given."""
    tag = f"_{max_sequences}_{seed}" if max_sequences is not None else ""
    path = Path(cache_dir) / f"mi_apc_{family.pfam_id}{tag}.npy" if cache_dir else None
    if path is not None and path.is_file():
        return np.load(path)
    x = family.alignment.encoded()
    if max_sequences is not None and len(x) > max_sequences:
        x = x[np.sort(np.random.default_rng(seed).permutation(len(x))[:max_sequences])]
    scores = _contacts.mi_apc(x, _msa.sequence_weights(x))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, scores)
    return scores


def evaluate(scores: dict, families: dict, pfam_ids) -> list[dict]:
    """One row per (method, family) of ``scores`` ``{method: {pfam: [T, T]}}``: P@L/5 and
    P@L in the medium and long ranges, and the long-range contact density."""
    rows = []
    for method, by_family in scores.items():
        for p in pfam_ids:
            res = _contacts.family_precisions(families[p], by_family[p])
            rows.append({"method": method, "family": p,
                         "L": int((families[p].column_residue >= 0).sum()),
                         **{k: res[k] for k in METRICS}, "long_density": res["long_density"]})
    return rows


def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
    """``{method: {metric: mean over the rows' families}}``."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        sub = [r for r in rows if r["method"] == method]
        out[method] = {k: float(np.mean([r[k] for r in sub])) for k in sub[0]
                       if k not in ("method", "family", "L")}
    return out


# --- the applications' shared pieces -----------------------------------------------------------

def saved_params(path, cfg, load) -> dict:
    """``load(path)`` (a ``(params, config)`` reader such as
    :func:`zoo.bio.protein_lm.load_params`), checked to be a model of ``cfg``.

    Raises:
        ValueError: if the file's config is not ``cfg``.
    """
    params, saved = load(path)
    if saved != cfg:
        raise ValueError(f"params: {path} holds a model of {saved}, the settings ask for {cfg}")
    return params


def markdown_tables(rows: list[dict]) -> list[str]:
    """The mean table (one row per method) and the per-family table of ``rows``."""
    summary = summarize(rows)
    lines = ["| method | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for method, res in summary.items():
        lines.append(f"| {method} | " + " | ".join(f"{res[k]:.3f}" for k in METRICS) + " |")
    methods = list(summary)
    lines += ["", "Long-range P@L/5 per held-out family (L structured residues; density = "
              "the fraction of long-range pairs in contact, a random predictor's precision):",
              "", "| family | L | density | " + " | ".join(methods) + " |",
              "|---|---|---|" + "---|" * len(methods)]
    for p in dict.fromkeys(r["family"] for r in rows):
        sub = {r["method"]: r for r in rows if r["family"] == p}
        first = next(iter(sub.values()))
        lines.append(f"| {p} | {first['L']} | {first['long_density']:.3f} | "
                     + " | ".join(f"{sub[m]['long_P@L/5']:.3f}" for m in methods) + " |")
    return lines


def write_csv(rows: list[dict], path: Path) -> None:
    """``rows`` as CSV (the keys of the first row as header)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_contact_maps(scores: dict, families: dict, pfam_ids, path: Path,
                      methods=("MI+APC", "supervised attention")) -> None:
    """For each family a row of panels, one per method: the true contacts (grey, lower
    triangle) and each method's top-L predictions with ``|i − j| ≥ 6`` (upper triangle;
    green a contact, red not)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(pfam_ids), len(methods),
                             figsize=(3.2 * len(methods), 3.2 * len(pfam_ids)), squeeze=False)
    for r, p in enumerate(pfam_ids):
        fam = families[p]
        cols = np.flatnonzero(fam.column_residue >= 0)
        true = fam.contacts()[np.ix_(cols, cols)]
        pos = fam.column_residue[cols]
        for c, method in enumerate(methods):
            ax = axes[r, c]
            n = len(cols)
            lower = np.tril(true > 0, -1)
            ax.imshow(np.where(lower, 0.75, 1.0), cmap="gray", vmin=0, vmax=1)
            s = np.asarray(scores[method][p])[np.ix_(cols, cols)]
            i, j = np.triu_indices(n, 1)
            keep = np.abs(pos[j] - pos[i]) >= MIN_SEP
            i, j = i[keep], j[keep]
            top = np.argsort(-s[i, j])[:n]
            hit = true[i[top], j[top]] > 0
            ax.scatter(j[top][hit], i[top][hit], s=4, c="tab:green")
            ax.scatter(j[top][~hit], i[top][~hit], s=4, c="tab:red")
            res = _contacts.family_precisions(fam, scores[method][p])
            ax.set_title(f"{p} {method}\nlong P@L/5 {res['long_P@L/5']:.2f}", fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_heads(head_train: np.ndarray, num_layers: int, path: Path) -> None:
    """A layers × heads grid of each head's mean long-range P@L/5 on the training
    families (the course's figure of the head that tracks contacts)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    grid = np.asarray(head_train).reshape(num_layers, -1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * grid.shape[1], 1.0 + 0.5 * num_layers))
    im = ax.imshow(grid, cmap="viridis")
    for (l, n), v in np.ndenumerate(grid):
        ax.text(n, l, f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="white" if v < grid.max() * 0.7 else "black")
    ax.set_xlabel("head"), ax.set_ylabel("layer")
    ax.set_xticks(range(grid.shape[1])), ax.set_yticks(range(num_layers))
    ax.set_title("long-range P@L/5 per head\n(APC maps, training families)", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def provenance_lines(result: dict, how: str) -> list[str]:
    """Report lines on where a run's parameters came from: ``how`` it trained them and
    every tenth entry of ``result["history"]``, or the :func:`save_params`-style file
    ``result["params_from"]`` they were read from."""
    if result["params_from"] is not None:
        return [f"Parameters read from `{result['params_from']}` (float16 as saved); not "
                "retrained.", ""]
    history = result["history"][::max(len(result["history"]) // 10, 1)]
    return [how, "", "Training loss (step: mean masked cross-entropy, nats): "
            + ", ".join(f"{st}: {v:.3f}" for st, v in history) + ".", ""]


def goal_line(summary: dict, method: str, others) -> str:
    """One line: does ``method`` beat each of ``others`` in held-out long-range P@L/5."""
    key = "long_P@L/5"
    mine = summary[method][key]
    parts = [f"{o} {summary[o][key]:.3f}" for o in others if o in summary]
    met = all(mine > summary[o][key] for o in others if o in summary)
    return (f"Goal ({method} beats {', '.join(o for o in others if o in summary)} on held-out "
            f"long-range P@L/5): **{'met' if met else 'not met'}** ({method} {mine:.3f}; "
            + "; ".join(parts) + ").")


def print_summary(summary: dict) -> None:
    """One console line per method of :func:`summarize`'s ``summary``: its :data:`METRICS`."""
    width = max(map(len, summary), default=0) + 1
    for method, res in summary.items():
        print(f"{method:{width}}" + " ".join(f"{k} {res[k]:.3f}" for k in METRICS))


def count_params(params) -> int:
    """The number of scalars in ``params``."""
    return int(sum(np.size(x) for x in jax.tree.leaves(params)))


def progress_bar(it, enabled: bool, desc: str):
    """``it`` wrapped in a tqdm bar labelled ``desc`` when ``enabled``, else ``it``."""
    if not enabled:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, mininterval=5, leave=False)


def app_parser(prog: str, doc: str, app: str) -> argparse.ArgumentParser:
    """The options the contact applications share: ``--quick``, ``--data-dir``, ``--out``
    (default ``benchmarks/results/bio/<app>``), ``--seed`` and ``--steps``."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (minutes)")
    parser.add_argument("--data-dir", default=None, help="the data root (default $ZOO_DATA)")
    parser.add_argument("--out", default=f"benchmarks/results/bio/{app}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="override the step count")
    return parser


__all__ = ["HELDOUT_FAMILIES", "TRAIN_FAMILIES", "MIN_SEP", "METRICS", "split_families",
           "load_families", "mi_apc_cached", "head_scores", "pair_features", "L1Logistic",
           "fit_l1_logistic", "fit_predictors", "evaluate", "summarize", "markdown_tables",
           "write_csv", "plot_contact_maps", "plot_heads", "provenance_lines", "goal_line",
           "saved_params", "print_summary", "count_params", "progress_bar", "app_parser"]
