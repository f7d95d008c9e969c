"""Contacts from the tied row attention of an MSA Transformer
(:mod:`zoo.bio.msa_transformer`, Rao et al. 2021), trained here as a masked language model
over the training families' alignments.


**Training.** BERT masking over the tokens of random crops (``rows`` random rows, a random
window of at most ``crop`` columns) of the training families' alignments
(:data:`zoo.bio.contact_eval.TRAIN_FAMILIES`): 15% of the real tokens, gaps included, are
selected; 80% of them become :data:`MASK`, 10% a random amino acid, 10% stay; the loss is
the cross-entropy over the 21 states at the selected tokens. With ``relabel`` ``p``, a crop's
20 amino acids are first renamed by a random permutation with probability ``p``
(:func:`relabel_states`): co-variation is invariant to the renaming, so the model must read
it from the crop's rows rather than recall it from the training families.

**Contacts.** A family's alignment, the domain row first and ``eval_rows − 1`` rows of
:func:`zoo.bio.protein_lm.homolog_rows` (a random draw, or the most diverse of them:
:func:`family_rows`), runs through the model at its full width. Every
head's map (averaged over ``eval_draws`` draws of the rows) is made symmetric and
APC-corrected, and gives the same three predictors as the single-sequence LM
(:func:`zoo.bio.contact_eval.fit_predictors`: best head and logistic regression chosen and
fitted on the training families). Like MI+APC, this reads a held-out family's alignment at
inference only.

Shape letters: ``A`` alignments, ``B`` rows (sequences), ``T`` columns, ``I`` maps
(``L·N``: layers times heads), ``M`` alignment rows before the draw.

>>> settings = Settings(steps=100, eval_rows=64)
>>> settings.model_config().num_heads, settings.eval_rows
(16, 64)

References:
    R. Rao, J. Liu, R. Verkuil, J. Meier, J. Canny, P. Abbeel, T. Sercu, A. Rives, "MSA
    Transformer", ICML 2021. https://doi.org/10.1101/2021.02.12.430858
"""

import argparse
import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Float, Int

from zoo.bio import contact_eval as _eval
from zoo.bio import contacts as _contacts
from zoo.bio import msa as _msa
from zoo.bio import protein_lm as _lm
from zoo.bio.msa_transformer import (MASK, PAD, VOCAB, Config, apply, column_attention,
                                     init, load_params, loss, save_params,
                                     tied_row_attention)

#: :func:`head_maps` pads an alignment's columns up to a multiple of this.
COLUMN_STEP = 32
#: How :func:`family_rows` chooses the rows besides the domain's.
ROW_SELECTIONS = ("random", "diverse")


# --- the run's settings ------------------------------------------------------------------------

def rows_phrase(rows: int, draws: int, seed: int, rows_by: str) -> str:
    """The reports' words for the rows :func:`family_head_maps` reads."""
    if rows_by == "diverse":
        return (f"the domain row and the {rows - 1} rows of its alignment chosen for "
                "diversity (`zoo.bio.msa.diverse_rows`)")
    return (f"the domain row and {rows - 1} random rows of its alignment "
            f"(`zoo.bio.protein_lm.homolog_rows`, seed {seed}), averaged over {draws} "
            f"draw{'s' if draws > 1 else ''}")


def check_rows_by(rows_by: str, draws: int, *, draws_name: str = "eval_draws") -> None:
    """Raises ``ValueError`` unless ``rows_by`` is one of :data:`ROW_SELECTIONS` and, for
    ``"diverse"`` (rows that do not depend on the seed), ``draws`` (called ``draws_name``
    in the message) is 1."""
    if rows_by not in ROW_SELECTIONS:
        raise ValueError(f"rows_by must be one of {ROW_SELECTIONS}, got {rows_by!r}")
    if rows_by == "diverse" and draws != 1:
        raise ValueError(f"{draws_name} must be 1 with rows_by 'diverse' (every draw is "
                         f"the same rows), got {draws!r}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The MSA LM run (:func:`run`).

    Attributes:
        d_model, num_heads, d_ff, num_layers, column_attention, column_heads, center_rows:
            the network (:class:`Config`); 16 heads of width 4 give the regression 64 maps,
            and read contacts better than 4 heads of width 16 (the report lists both).
        rows, crop: each training crop's rows and most columns.
        batch_size, steps, learning_rate, mask_rate: the optimisation (AdamW, linear
            warm-up then cosine decay, as :func:`train`).
        relabel: the probability that a training crop's amino acids are renamed
            (:func:`relabel_states`); 0 trains on the letters as they are.
        eval_rows, eval_draws, rows_by: the rows of each family's alignment read for its
            maps (the domain and ``eval_rows − 1`` others, chosen as ``rows_by``, one of
            :data:`ROW_SELECTIONS`), and the draws averaged; reading more rows than a crop
            holds lowers the maps' noise (the logits are row means).
        l1: λ of the supervised head's L1 penalty.
        seed: data, masking, initialisation and row-draw seed.
        cache_dir: where MI+APC maps are cached between runs (``None``: no cache).
    """
    d_model: int = 64
    num_heads: int = 16
    d_ff: int = 256
    num_layers: int = 4
    column_attention: bool = True
    column_heads: int | None = None
    center_rows: bool = False
    rows: int = 64
    crop: int = 64
    batch_size: int = 2
    steps: int = 6000
    learning_rate: float = 2e-3
    mask_rate: float = 0.15
    relabel: float = 0.0
    eval_rows: int = 512
    eval_draws: int = 1
    rows_by: str = "random"
    l1: float = 1e-3
    seed: int = 0
    cache_dir: str | None = None

    def __post_init__(self):
        for name in ("rows", "crop", "batch_size", "steps", "eval_rows", "eval_draws"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        check_rows_by(self.rows_by, self.eval_draws)
        if not 0 <= self.relabel <= 1:
            raise ValueError(f"relabel must be in [0, 1], got {self.relabel!r}")
        if self.crop > Config.max_cols:
            raise ValueError(f"crop {self.crop} is wider than the network's max_cols "
                             f"{Config.max_cols}")

    def model_config(self) -> Config:
        """The :class:`Config`; ``max_cols`` 192 covers the widest alignment (164)."""
        return Config(d_model=self.d_model, num_heads=self.num_heads, d_ff=self.d_ff,
                      num_layers=self.num_layers, column_attention=self.column_attention,
                      column_heads=self.column_heads, center_rows=self.center_rows)


QUICK = Settings(steps=100, eval_rows=64)


# --- training data -----------------------------------------------------------------------------

def mask_msa(x: Int[np.ndarray, "A B T"], rng: np.random.Generator, *, rate: float = 0.15
             ) -> tuple[Int[np.ndarray, "A B T"], Int[np.ndarray, "A B T"]]:
    """BERT's masking of alignment tokens: ``(inputs, targets)``; ``targets`` is the
    state at the selected tokens and −1 elsewhere; :data:`PAD` is never selected.

    >>> x, y = mask_msa(np.array([[[0, 20, PAD]]]), np.random.default_rng(0), rate=1.0)
    >>> y.tolist(), int(x[0, 0, 2]) == PAD
    ([[[0, 20, -1]]], True)

    Raises:
        ValueError: if ``rate`` is not in (0, 1].
    """
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1], got {rate!r}")
    x = np.asarray(x)
    selected = (rng.random(x.shape) < rate) & (x != PAD)
    u = rng.random(x.shape)
    inputs = np.where(selected & (u < 0.8), MASK, x)
    inputs = np.where(selected & (u >= 0.8) & (u < 0.9), rng.integers(0, 20, x.shape), inputs)
    return inputs.astype(np.int32), np.where(selected, x, -1).astype(np.int32)


def sample_crop(msa: Int[np.ndarray, "M T"], rng: np.random.Generator, rows: int,
                crop: int) -> Int[np.ndarray, "B T"]:
    """``rows`` distinct random rows (all if fewer, then padded by repeats) and a random
    window of at most ``crop`` columns of ``msa``, padded with :data:`PAD` to ``crop``.

    >>> sample_crop(np.zeros((2, 3), np.int8), np.random.default_rng(0), 2, 4).tolist()
    [[0, 0, 0, 22], [0, 0, 0, 22]]
    """
    m, t = msa.shape
    pick = rng.permutation(m)[:rows]
    if len(pick) < rows:
        pick = np.concatenate([pick, rng.choice(pick, rows - len(pick))])
    start = int(rng.integers(0, t - crop + 1)) if t > crop else 0
    out = np.full((rows, crop), PAD, np.int32)
    window = msa[np.sort(pick), start:start + crop]
    out[:, :window.shape[1]] = window
    return out


def relabel_states(x: Int[np.ndarray, "B T"], rng: np.random.Generator
                   ) -> Int[np.ndarray, "B T"]:
    """``x`` with its 20 amino acids renamed by one random permutation (the gap, :data:`MASK`
    and :data:`PAD` kept): the crop's co-variation is unchanged, while which letter is which
    can no longer be recalled from the training families.

    >>> relabel_states(np.array([[0, 0, 20, PAD]]), np.random.default_rng(0)).tolist()
    [[4, 4, 20, 22]]

    Raises:
        ValueError: if ``x`` holds an id outside ``[0, VOCAB)``.
    """
    x = np.asarray(x)
    bad = (x < 0) | (x >= VOCAB)
    if bad.any():
        raise ValueError(f"x holds id {int(x[bad][0])} at index "
                         f"{tuple(int(i) for i in np.argwhere(bad)[0])}, outside [0, {VOCAB})")
    lookup = np.concatenate([rng.permutation(20), np.arange(20, VOCAB)])
    return lookup[x].astype(np.int32)


def _crop(settings: Settings, msa, rng):
    x = sample_crop(msa, rng, settings.rows, settings.crop)
    if settings.relabel and rng.random() < settings.relabel:   # no draw at 0: same stream
        return relabel_states(x, rng)
    return x


def train(settings: Settings, msas: list, *, log_every: int = 50, progress: bool = True):
    """Trains ``settings.model_config()`` on crops of ``msas`` (each ``[M, T]`` of
    :func:`zoo.bio.msa.encode`; each step draws ``batch_size`` of them uniformly); returns
    ``(params, history)``, ``history`` a list of ``(step, mean loss since the last
    entry)``."""
    s, cfg = settings, settings.model_config()
    steps, learning_rate = s.steps, s.learning_rate
    rng = np.random.default_rng(s.seed)
    params = init(jax.random.key(s.seed), cfg)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, max(steps // 20, 1), steps, learning_rate / 20)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))
    state = opt.init(params)

    @jax.jit
    def step(params, state, inputs, targets):
        value, grads = jax.value_and_grad(loss)(params, inputs, targets, cfg)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    history, running = [], []
    bar = _eval.progress_bar(range(steps), progress, "MSA LM")
    for i in bar:
        x = np.stack([_crop(s, msas[k], rng) for k in rng.integers(0, len(msas), s.batch_size)])
        inputs, targets = mask_msa(x, rng, rate=s.mask_rate)
        params, state, value = step(params, state, inputs, targets)
        running.append(float(value))
        if (i + 1) % log_every == 0 or i + 1 == steps:
            history.append((i + 1, float(np.mean(running))))
            running = []
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{history[-1][1]:.3f}")
    return params, history




# --- contacts from the tied row attention ------------------------------------------------------

def family_rows(family, rows: int, *, seed: int = 0, rows_by: str = "random"
                ) -> Int[np.ndarray, "B T"]:
    """The alignment the model reads for ``family``: the domain's aligned row first, then
    ``rows − 1`` (or fewer) of the rows :func:`zoo.bio.protein_lm.homolog_rows` finds
    eligible, as :func:`zoo.bio.msa.encode` ids: drawn with ``seed``
    (``rows_by="random"``) or chosen greedily to be far from the domain and from each other
    (``rows_by="diverse"``, :func:`zoo.bio.msa.diverse_rows`; ``seed`` unused).

    Raises:
        ValueError: if ``rows < 1`` or ``rows_by`` is not one of :data:`ROW_SELECTIONS`.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1 (the domain alone), got {rows!r}")
    check_rows_by(rows_by, 1)
    domain = _msa.encode([family.domain])
    aligned = family.alignment.encoded()
    if rows_by == "random":
        pick = _lm.homolog_rows(family, rows, seed=seed)
    else:
        eligible = _lm.homolog_rows(family, len(aligned) + 1)
        pick = eligible[_msa.diverse_rows(aligned[eligible], rows - 1, start=domain[0])]
    return np.concatenate([domain, aligned[pick]])


def head_maps(params: dict, cfg: Config, msa: Int[np.ndarray, "B T"]
              ) -> Float[np.ndarray, "I T T"]:
    """Every layer's and head's tied row attention map of ``msa`` (``I = L·N``, layer-major),
    made symmetric and APC-corrected. The columns are padded with :data:`PAD` up to a
    multiple of :data:`COLUMN_STEP` (at most ``cfg.max_cols``): a few compiled shapes per
    row count, and no work spent on columns far past the alignment's width.

    Raises:
        ValueError: if ``msa`` is not ``[B, T]`` with ``1 ≤ T ≤ cfg.max_cols``.
    """
    msa = np.asarray(msa)
    if msa.ndim != 2 or not 0 < msa.shape[1] <= cfg.max_cols:
        raise ValueError(f"msa must be [B, T] with 1 <= T <= max_cols {cfg.max_cols}, got "
                         f"shape {msa.shape}")
    t = msa.shape[1]
    width = min(-(-t // COLUMN_STEP) * COLUMN_STEP, cfg.max_cols)
    tokens = np.full((1, len(msa), width), PAD, np.int32)
    tokens[0, :, :t] = msa
    maps = np.asarray(_maps_jit(params, jnp.asarray(tokens), cfg), np.float64)
    maps = maps[:, 0, :, :t, :t].reshape(-1, t, t)
    return _contacts.apc(_contacts.symmetrize(maps))


@functools.partial(jax.jit, static_argnums=(2,))
def _maps_jit(params, tokens, cfg):
    return apply(params, tokens, cfg, return_maps=True)[1]


def family_head_maps(params: dict, cfg: Config, family, *, rows: int = 64, draws: int = 1,
                     seed: int = 0, rows_by: str = "random") -> Float[np.ndarray, "I T T"]:
    """:func:`head_maps` averaged over ``draws`` draws of :func:`family_rows` (seeds
    ``seed, seed + 1, …``; ``rows_by`` as there), on the family's alignment columns.

    Raises:
        ValueError: if ``rows < 1`` or ``draws < 1``, or ``draws > 1`` with
            ``rows_by="diverse"`` (its rows do not depend on the seed).
    """
    if rows < 1 or draws < 1:
        raise ValueError(f"rows and draws must be >= 1, got {rows!r} and {draws!r}")
    check_rows_by(rows_by, draws, draws_name="draws")
    return np.mean([head_maps(params, cfg, family_rows(family, rows, seed=seed + d,
                                                       rows_by=rows_by))
                    for d in range(draws)], axis=0)


# --- the run -----------------------------------------------------------------------------------

def heldout_loss(params: dict, cfg: Config, msas: list, *, rows: int = 32, crop: int = 128,
                 rate: float = 0.15, crops: int = 8, seed: int = 1) -> float:
    """Mean masked cross-entropy (nats) over ``crops`` random crops of each of ``msas``
    (rows, windows and masking drawn with ``seed``), every crop weighted equally."""
    rng = np.random.default_rng(seed)
    f = jax.jit(functools.partial(loss, cfg=cfg))
    values = []
    for m in msas:
        for _ in range(crops):
            inputs, targets = mask_msa(sample_crop(m, rng, rows, crop)[None], rng, rate=rate)
            values.append(float(f(params, inputs, targets)))
    return float(np.mean(values))


def run(settings: Settings = Settings(), *, data_dir=None, out=None,
        progress: bool = True, params: str | Path | None = None) -> dict:
    """Trains on the training families' alignments (or, with ``params``, reads a
    :func:`save_params` file and trains nothing), reads contacts from the tied row
    attention of all 40 (predictors fitted on the training families), scores them and
    MI+APC on the held-out families, and writes the report to ``out`` (if given).

    Raises:
        ValueError: if the model in ``params`` is not ``settings.model_config()``.
    """
    start = time.time()
    cfg = settings.model_config()
    saved = None if params is None else _eval.saved_params(params, cfg, load_params)
    families = _eval.load_families(_eval.TRAIN_FAMILIES + _eval.HELDOUT_FAMILIES, data_dir)
    msas = [families[p].alignment.encoded() for p in _eval.TRAIN_FAMILIES]
    if saved is None:
        weights, history = train(settings, msas, progress=progress)
    else:
        weights, history = saved, []
    bar = _eval.progress_bar(families.items(), progress, "row attention maps")
    maps = {p: family_head_maps(weights, cfg, f, rows=settings.eval_rows,
                                draws=settings.eval_draws, seed=settings.seed,
                                rows_by=settings.rows_by) for p, f in bar}
    pred = _eval.fit_predictors(maps, families, l1=settings.l1, tag=" (MSA LM)")
    scores = {"MI+APC": {p: _eval.mi_apc_cached(f, settings.cache_dir, seed=settings.seed)
                         for p, f in families.items()}, **pred["scores"]}
    rows = _eval.evaluate(scores, families, _eval.HELDOUT_FAMILIES)
    held = [families[p].alignment.encoded() for p in _eval.HELDOUT_FAMILIES]
    result = {"settings": dataclasses.asdict(settings), "history": history,
              "heldout_loss": heldout_loss(weights, cfg, held, rows=settings.rows,
                                           crop=settings.crop, rate=settings.mask_rate),
              "train_loss": heldout_loss(weights, cfg, msas, rows=settings.rows,
                                         crop=settings.crop, rate=settings.mask_rate),
              "best_head": pred["best_head"], "head_train": pred["head_train"].tolist(),
              "rows": rows, "summary": _eval.summarize(rows), "params": weights,
              "params_from": None if params is None else str(params),
              "seconds": time.time() - start}
    if out is not None:
        write_report(result, pred, scores, families, Path(out))
    return result



# --- the report --------------------------------------------------------------------------------

APP = "contacts/msa_lm"


def write_report(result: dict, pred: dict, scores: dict, families: dict, out: Path) -> None:
    """``report.md``, ``per_family.csv``, ``heads.png``, ``contact_maps.png`` and the
    parameters ``msa_lm_params.npz`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    s = Settings(**result["settings"])
    cfg = s.model_config()
    _eval.write_csv(result["rows"], out / "per_family.csv")
    _eval.plot_heads(pred["head_train"], cfg.num_layers, out / "heads.png")
    shown = _eval.HELDOUT_FAMILIES[:3]
    _eval.plot_contact_maps(scores, families, shown, out / "contact_maps.png",
                            methods=("MI+APC", "best head (MSA LM)",
                                     "supervised attention (MSA LM)"))
    if result["params_from"] is None:
        save_params(result["params"], out / "msa_lm_params.npz", cfg)
    layer, head = divmod(pred["best_head"], cfg.num_heads)
    count = int(sum(np.size(x) for x in jax.tree.leaves(result["params"])))
    lines = [
        "# MSA Transformer and contacts from tied row attention", "",
        f"Command: `python -m zoo.bio.msa_lm {' '.join(sys.argv[1:])}`", "",
        f"Settings: `{json.dumps(result['settings'])}`; model: {cfg.num_layers} layers "
        f"(tied row attention, {'column attention, ' if cfg.column_attention else ''}"
        f"feed-forward), d_model {cfg.d_model}, {cfg.num_heads} heads ({cfg.column_heads} in the "
        f"column attention), d_ff {cfg.d_ff}, "
        f"{count:,} parameters.", "",
        "Split: the fixed split of `zoo.bio.contact_eval` (30 training, 10 held-out "
        "families); the model trains on the training families' alignments only.", "",
        f"Wall time {result['seconds'] / 60:.1f} min on a shared 2-core CPU; one run, "
        f"seed {s.seed}.", "",
        *_lm_lines(result, s),
        "## Contacts on the held-out families", "",
        f"Each family's maps: {rows_phrase(s.eval_rows, s.eval_draws, s.seed, s.rows_by)}; "
        "symmetrised and APC-corrected. Mean over the 10 held-out families (contacts: Cβ < "
        "8 Å, Cα for glycine; long range |i − j| ≥ 24, medium 12–23):", "",
        *_eval.markdown_tables(result["rows"]), "",
        f"Best head (chosen on the training families): layer {layer}, head {head} (mean "
        f"long-range P@L/5 {pred['head_train'][pred['best_head']]:.3f} on training "
        f"families; `heads.png` shows every head). The supervised head is an L1 logistic "
        f"regression (λ {s.l1}) over the {len(pred['logistic'].w_i)} APC maps, fitted on "
        "the pairs |i − j| ≥ 6 of the 30 training families. `contact_maps.png`: true "
        "contacts (grey, lower triangle) and each method's top-L predictions (upper "
        f"triangle) for {', '.join(shown)}.", "",
        _eval.goal_line(result["summary"], "supervised attention (MSA LM)", ("MI+APC",)), ""]
    (out / "report.md").write_text("\n".join(lines))


def _lm_lines(result: dict, s: Settings) -> list[str]:
    """The report's masked-LM section: how the model was trained (or where it was read
    from) and its masked cross-entropy."""
    how = _eval.provenance_lines(result, f"{s.steps} steps of {s.batch_size} crops ({s.rows} "
                                 f"random rows, ≤ {s.crop} columns); BERT masking 15% "
                                 "(80/10/10) over residues and gaps"
                                 + (f"; a crop's amino acids renamed by a random permutation "
                                    f"with probability {s.relabel}." if s.relabel else "."))
    return ["## Masked LM over alignments", "", *how,
            f"Masked cross-entropy on 8 crops per family: training families "
            f"{result['train_loss']:.3f}, held-out families **{result['heldout_loss']:.3f}** "
            f"(uniform over 21 states: {np.log(21):.3f}).", ""]


def _network(path) -> dict:
    """The :class:`Settings` fields of the network saved in ``path``."""
    _, cfg = load_params(path)
    return {name: getattr(cfg, name) for name in ("d_model", "num_heads", "d_ff", "num_layers",
                                                  "column_attention", "column_heads",
                                                  "center_rows")}


def main(argv=None) -> int:
    """``zoo bio msa-lm [--quick] [--data-dir D] [--out O] [--seed S] [--steps N]
    [--cache-dir C] [--no-column-attention] [--heads N] [--column-heads N]
    [--center-rows | --no-center-rows] [--rows N] [--crop N] [--relabel P]
    [--rows-by random|diverse] [--params P]``;
    ``--params`` scores a saved model (e.g. the committed ``msa_lm_params.npz``) without
    training it."""
    parser = _eval.app_parser("zoo bio msa-lm", __doc__, APP)
    parser.add_argument("--cache-dir", default=None, help="keep MI+APC maps here")
    parser.add_argument("--no-column-attention", action="store_true",
                        help="layers without column attention")
    parser.add_argument("--heads", type=int, default=None, metavar="N",
                        help="the tied row attention's heads (default Settings.num_heads)")
    parser.add_argument("--column-heads", type=int, default=None, metavar="N",
                        help="the column attention's heads (default Settings.column_heads)")
    parser.add_argument("--center-rows", action=argparse.BooleanOptionalAction, default=None,
                        help="centre the tied row attention's queries and keys over the rows "
                        "(default Settings.center_rows)")
    parser.add_argument("--rows", type=int, default=None, metavar="N",
                        help="rows of each training crop (default Settings.rows)")
    parser.add_argument("--crop", type=int, default=None, metavar="N",
                        help="most columns of each training crop (default Settings.crop)")
    parser.add_argument("--relabel", type=float, default=None, metavar="P",
                        help="rename the amino acids of a training crop by a random "
                        "permutation with probability P (default Settings.relabel)")
    parser.add_argument("--rows-by", choices=ROW_SELECTIONS, default=None,
                        help="how the rows the maps are read from are chosen (default "
                        "Settings.rows_by)")
    parser.add_argument("--params", default=None, metavar="NPZ", help="score this "
                        f"save_params file (e.g. benchmarks/results/bio/{APP}/msa_lm_params.npz) "
                        "instead of training; its network replaces --heads, --column-heads, "
                        "--no-column-attention and --center-rows, and --steps is unused")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    changes = {"seed": args.seed, "cache_dir": args.cache_dir,
               "column_attention": not args.no_column_attention}
    for name, value in (("steps", args.steps), ("num_heads", args.heads),
                        ("column_heads", args.column_heads), ("relabel", args.relabel),
                        ("center_rows", args.center_rows), ("rows", args.rows),
                        ("crop", args.crop), ("rows_by", args.rows_by)):
        if value is not None:
            changes[name] = value
    try:
        if args.params is not None:
            changes.update(_network(args.params))
        settings = dataclasses.replace(QUICK if args.quick else Settings(), **changes)
        settings.model_config()
    except (OSError, ValueError, KeyError) as err:
        parser.error(f"--params: {err}" if args.params else f"settings: {err}")
    from zoo.bio import structure as _structure
    from zoo.data import data_dir
    data_dir(_structure.DATASET, root=args.data_dir)      # the clear error, early
    result = run(settings, data_dir=args.data_dir, out=args.out, params=args.params)
    _eval.print_summary(result["summary"])
    print(f"held-out masked cross-entropy {result['heldout_loss']:.3f}; report in {args.out}")
    return 0


__all__ = ["MASK", "PAD", "VOCAB", "COLUMN_STEP", "Config", "init", "apply", "loss",
           "tied_row_attention", "column_attention", "mask_msa", "sample_crop",
           "relabel_states", "train", "family_rows", "head_maps", "family_head_maps",
           "Settings", "QUICK", "ROW_SELECTIONS", "check_rows_by", "rows_phrase",
           "heldout_loss", "run", "save_params", "load_params", "write_report", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
