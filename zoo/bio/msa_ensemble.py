"""Contacts from the tied row attention of several trained MSA language models at once.

Each model ``k`` of :mod:`zoo.bio.msa_lm` (a :func:`zoo.bio.msa_lm.save_params` file) reads
a family's alignment (the same rows for every model) and gives its ``I_k`` symmetric,
APC-corrected head maps. The maps of all ``K`` models are stacked into one feature vector
per residue pair, and the predictors of :func:`zoo.bio.contact_eval.fit_predictors` are
fitted on the stack, on the training families only::

    x_jk = [F^{(1,1)}_jk, …, F^{(1,I_1)}_jk, …, F^{(K,I_K)}_jk]     (I = Σ_k I_k features)
    p_jk = σ(x_jk · w + b)                   (one L1 logistic regression over all of them)

Independently trained models put co-variation into different heads with different noise, so
one regression over all their heads reads the contacts better than over any one model's.
Every member is also scored alone (its own regression, the same λ), beside MI+APC.

The maps of a model are kept, when ``cache_dir`` is given, as
``<cache_dir>/msa_maps_<sha256 of the file, 16 hex>_<rows>_<draws>_<seed>.npz`` (``…_<rows>
_diverse.npz`` for the diverse rows): a model
is read once per setting, whichever ensembles it joins.

Shape letters: ``T`` alignment columns, ``I`` maps (all models' heads, model-major).

>>> import jax
>>> from zoo.bio import msa_lm
>>> cfg = msa_lm.Config(d_model=8, num_heads=2, d_ff=16, num_layers=1, max_cols=12)
>>> models = [(msa_lm.init(jax.random.key(k), cfg), cfg) for k in range(2)]
>>> stack_maps([msa_lm.head_maps(p, c, np.zeros((3, 5), np.int8)) for p, c in models]).shape
(4, 5, 5)
"""

import argparse
import dataclasses
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
from jaxtyping import Float

from zoo.bio import contact_eval as _eval
from zoo.bio import contacts as _contacts
from zoo.bio import msa_lm as _msa_lm

APP = "contacts/msa_ensemble"
SUPERVISED = "supervised attention (ensemble)"


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the members read the families.

    Attributes:
        eval_rows, eval_draws, seed, rows_by: the rows each family is read from
            (:func:`zoo.bio.msa_lm.family_head_maps`), the same for every member; the most
            diverse rows (``"diverse"``) read the ensemble's contacts better than a random
            draw, by cross-validation over the training families (the report gives both).
        l1: the regressions' λ (the members' own and the ensemble's).
        folds: the folds of the check of λ by cross-validation over the training families.
        l1_grid: the λ values that check compares.
        cache_dir: where the MI+APC maps and each member's head maps are kept.
    """
    eval_rows: int = 512
    eval_draws: int = 1
    seed: int = 0
    rows_by: str = "diverse"
    l1: float = 1e-3
    folds: int = 3
    l1_grid: tuple = (3e-4, 1e-3, 3e-3)
    cache_dir: str | None = None

    def __post_init__(self):
        for name in ("eval_rows", "eval_draws", "folds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        _msa_lm.check_rows_by(self.rows_by, self.eval_draws)
        if not self.l1 > 0 or not all(v > 0 for v in self.l1_grid):
            raise ValueError(f"l1 and l1_grid must be > 0, got {self.l1!r}, {self.l1_grid!r}")


QUICK = Settings(eval_rows=64, l1_grid=())


def load_members(paths) -> list[tuple[dict, _msa_lm.Config]]:
    """``(params, config)`` of each :func:`zoo.bio.msa_lm.save_params` file in ``paths``.

    Raises:
        ValueError: if ``paths`` names fewer than two files, or one twice.
        OSError: if a file cannot be read.
    """
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError(f"an ensemble needs at least two params files, got {len(paths)}")
    twice = [str(p) for i, p in enumerate(paths) if p.resolve() in
             [q.resolve() for q in paths[:i]]]
    if twice:
        raise ValueError(f"params file {twice[0]} is named twice")
    return [_msa_lm.load_params(p) for p in paths]


def stack_maps(maps: list) -> Float[np.ndarray, "I T T"]:
    """The members' head maps of one family, ``[I_k, T, T]`` each, as one ``[Σ I_k, T, T]``
    stack (model-major).

    Raises:
        ValueError: if the maps are not all ``[I_k, T, T]`` over the same ``T``.
    """
    shapes = [np.shape(m) for m in maps]
    if not maps or any(len(s) != 3 or s[1:] != shapes[0][1:] or s[1] != s[2] for s in shapes):
        raise ValueError(f"maps must be [I_k, T, T] over one T, got shapes {shapes}")
    return np.concatenate(maps)


def _cache_path(path, settings: Settings) -> Path | None:
    if settings.cache_dir is None:
        return None
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    s = settings
    tag = "diverse" if s.rows_by == "diverse" else f"{s.eval_draws}_{s.seed}"
    return Path(s.cache_dir) / f"msa_maps_{digest}_{s.eval_rows}_{tag}.npz"


def member_maps(path, member: tuple, families: dict, settings: Settings, *,
                progress: bool = True) -> dict:
    """``{pfam: [I_k, T, T]}``: the head maps of the member read from ``path``
    (``member`` its ``(params, config)``) on every family of ``families``, from the cache
    when it holds them all."""
    cache = _cache_path(path, settings)
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            if set(families) <= set(data.files):
                return {p: data[p].astype(np.float64) for p in families}
    params, cfg = member
    bar = _eval.progress_bar(families.items(), progress, f"maps of {path}")
    maps = {p: _msa_lm.family_head_maps(params, cfg, f, rows=settings.eval_rows,
                                        draws=settings.eval_draws, seed=settings.seed,
                                        rows_by=settings.rows_by)
            for p, f in bar}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **{p: m.astype(np.float32) for p, m in maps.items()})
    return maps


def cross_validate_l1(maps: dict, families: dict, l1s, *, folds: int = 3) -> dict:
    """``{λ: mean long-range P@L/5}`` of the L1 regression over ``maps`` by ``folds``-fold
    cross-validation over the :data:`~zoo.bio.contact_eval.TRAIN_FAMILIES` (fold ``f``
    tests the families ``f, f + folds, …`` of the sorted list): the held-out families are
    never read.

    Raises:
        ValueError: if ``folds`` is below 2 or above the training families in ``maps``.
    """
    train = [p for p in _eval.TRAIN_FAMILIES if p in maps]
    if not 2 <= folds <= len(train):
        raise ValueError(f"folds must be in [2, {len(train)}] (the training families in "
                         f"maps), got {folds!r}")
    pairs = {p: _eval.pair_features(maps[p], families[p]) for p in train}
    out = {}
    for l1 in l1s:
        scores = []
        for f in range(folds):
            test = train[f::folds]
            xs, ys = zip(*(pairs[p] for p in train if p not in test))
            model = _eval.fit_l1_logistic(np.concatenate(xs), np.concatenate(ys), l1=l1)
            scores += [_contacts.family_precisions(families[p], model.score_maps(maps[p]))
                       ["long_P@L/5"] for p in test]
        out[l1] = float(np.mean(scores))
    return out


def run(paths, settings: Settings = Settings(), *, data_dir=None, out=None,
        progress: bool = True) -> dict:
    """Reads every member in ``paths`` on all 40 families, fits each member's regression
    and the ensemble's on the training families, scores them and MI+APC on the held-out
    families, and writes the report to ``out`` (if given).

    Raises:
        ValueError: if ``paths`` names fewer than two files, or one twice.
    """
    start = time.time()
    members = load_members(paths)
    families = _eval.load_families(_eval.TRAIN_FAMILIES + _eval.HELDOUT_FAMILIES, data_dir)
    cached = sum(c is not None and c.is_file() for c in (_cache_path(p, settings)
                                                          for p in paths))
    maps = [member_maps(p, m, families, settings, progress=progress)
            for p, m in zip(paths, members)]
    stacked = {p: stack_maps([m[p] for m in maps]) for p in families}
    pred = _eval.fit_predictors(stacked, families, l1=settings.l1, tag=" (ensemble)")
    scores = {"MI+APC": {p: _eval.mi_apc_cached(f, settings.cache_dir, seed=settings.seed)
                         for p, f in families.items()}}
    for k, m in enumerate(maps):
        alone = _eval.fit_predictors(m, families, l1=settings.l1, tag=f" (model {k})")
        scores[f"supervised attention (model {k})"] = alone["scores"][
            f"supervised attention (model {k})"]
    scores.update(pred["scores"])
    rows = _eval.evaluate(scores, families, _eval.HELDOUT_FAMILIES)
    held = [families[p].alignment.encoded() for p in _eval.HELDOUT_FAMILIES]
    result = {"settings": dataclasses.asdict(settings), "paths": [str(p) for p in paths],
              "configs": [dataclasses.asdict(c) for _, c in members],
              "heldout_loss": [_msa_lm.heldout_loss(w, c, held, rows=64, crop=64)
                               for w, c in members],
              "cv": (cross_validate_l1(stacked, families, settings.l1_grid,
                                       folds=settings.folds) if settings.l1_grid else {}),
              "rows": rows, "summary": _eval.summarize(rows),
              "weights": len(pred["logistic"].w_i), "cached": cached,
              "seconds": time.time() - start}
    if out is not None:
        write_report(result, scores, families, Path(out))
    return result


def write_report(result: dict, scores: dict, families: dict, out: Path) -> None:
    """``report.md``, ``per_family.csv`` and ``contact_maps.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    s = Settings(**result["settings"])
    _eval.write_csv(result["rows"], out / "per_family.csv")
    shown = _eval.HELDOUT_FAMILIES[:3]
    _eval.plot_contact_maps(scores, families, shown, out / "contact_maps.png",
                            methods=("MI+APC", "supervised attention (model 0)", SUPERVISED))
    cv = "; ".join(f"λ {k:g}: {v:.3f}" for k, v in result["cv"].items())
    lines = [
        "# Contacts from an ensemble of MSA language models", "",
        f"Command: `python -m zoo.bio.msa_ensemble {' '.join(sys.argv[1:])}`", "",
        f"Wall time {result['seconds'] / 60:.1f} min on a shared 2-core CPU ("
        f"{result['cached']} of the {len(result['paths'])} members' maps read from the "
        "cache).", "",
        "## Members", "",
        "| model | file | network | held-out masked CE |", "|---|---|---|---|",
        *[f"| {k} | `{p}` | {_network(c)} | {ce:.3f} |" for k, (p, c, ce) in
          enumerate(zip(result["paths"], result["configs"], result["heldout_loss"]))], "",
        "Held-out masked CE: `zoo.bio.msa_lm.heldout_loss` (8 crops of 64 rows × 64 "
        "columns per held-out family, the same crops for every member).", "",
        "## Contacts on the held-out families", "",
        "Every member reads the same rows of each family: "
        f"{_msa_lm.rows_phrase(s.eval_rows, s.eval_draws, s.seed, s.rows_by)}. Each "
        "member's regression is "
        f"fitted on its own APC maps; the ensemble's on all {result['weights']} maps "
        f"stacked; λ {s.l1:g} for all, fitted on the 30 training families.", "",
        *_eval.markdown_tables(result["rows"]), "",
        *([f"Check of λ by {s.folds}-fold cross-validation over the training families "
           f"(the ensemble's regression, long-range P@L/5): {cv}.", ""] if cv else []),
        _eval.goal_line(result["summary"], SUPERVISED, ("MI+APC",)), ""]
    (out / "report.md").write_text("\n".join(lines))


def _network(cfg: dict) -> str:
    return (f"{cfg['num_layers']} layers, d_model {cfg['d_model']}, {cfg['num_heads']} "
            f"heads{', centred rows' if cfg['center_rows'] else ''}")


def main(argv=None) -> int:
    """``zoo bio msa-ensemble PARAMS PARAMS [PARAMS …] [--quick] [--data-dir D] [--out O]
    [--seed S] [--rows N] [--rows-by random|diverse] [--l1 L] [--cache-dir C]``."""
    parser = argparse.ArgumentParser(prog="zoo bio msa-ensemble",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("params", nargs="+", metavar="PARAMS",
                        help="two or more zoo.bio.msa_lm save_params files")
    parser.add_argument("--quick", action="store_true", help="read 64 rows, no λ check")
    parser.add_argument("--data-dir", default=None, help="the data root (default $ZOO_DATA)")
    parser.add_argument("--out", default=f"benchmarks/results/bio/{APP}")
    parser.add_argument("--seed", type=int, default=None,
                        help="the rows' draw (with --rows-by random)")
    parser.add_argument("--rows-by", choices=_msa_lm.ROW_SELECTIONS, default=None,
                        help="how the rows are chosen (default Settings.rows_by)")
    parser.add_argument("--rows", type=int, default=None, metavar="N",
                        help="rows each family is read from (default Settings.eval_rows)")
    parser.add_argument("--l1", type=float, default=None, help="the regressions' λ")
    parser.add_argument("--cache-dir", default=None, help="keep MI+APC and head maps here")
    args = parser.parse_args(argv)
    changes = {k: v for k, v in (("seed", args.seed), ("eval_rows", args.rows),
                                 ("rows_by", args.rows_by), ("l1", args.l1),
                                 ("cache_dir", args.cache_dir))
               if v is not None}
    try:
        settings = dataclasses.replace(QUICK if args.quick else Settings(), **changes)
        load_members(args.params)
    except (OSError, ValueError, KeyError) as err:
        parser.error(str(err))
    from zoo.bio import structure as _structure
    from zoo.data import data_dir
    data_dir(_structure.DATASET, root=args.data_dir)      # the clear error, early
    result = run(args.params, settings, data_dir=args.data_dir, out=args.out)
    _eval.print_summary(result["summary"])
    print(f"report in {args.out}")
    return 0


__all__ = ["Settings", "QUICK", "load_members", "stack_maps", "member_maps",
           "cross_validate_l1", "run", "write_report", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
