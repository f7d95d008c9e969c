"""An AlphaFold-v1-style contact predictor: a deep 2-D residual network of dilated
convolutions over pair features, trained on the training families, scored on the held-out ones.

**Pair features** of a family with ``T`` alignment columns, a ``[T, T, C]`` image (channels
last). From the weighted frequencies ``f_i``, ``f_ij`` of :func:`zoo.bio.contacts.frequencies`
(sequence weights θ 0.8, pseudocount :data:`zoo.bio.contacts.MI_PSEUDOCOUNT`)::

    MI_ij   = Σ_ab f_ij(a,b) log(f_ij(a,b) / (f_i(a) f_j(b)))              (MI_ii = 0)
    COV_ij  = ( Σ_{a,b ≤ 20 amino acids} (f_ij(a,b) − f_i(a) f_j(b))² )^{1/2}    (COV_ii = 0)
    H_i     = −Σ_a f_i(a) log f_i(a),     g_i = f_i(gap)

The channels: the domain's residue at column ``i`` and at ``j`` one-hot over the 21 states
(42), ``MI``, ``apc(MI)``, ``COV``, ``apc(COV)`` (each standardised over its map), ``H_i``,
``H_j``, ``g_i``, ``g_j``, the separation ``log(1 + |i − j|)`` and its range one-hot
(``< 6``, ``6–11``, ``12–23``, ``≥ 24``), and optionally the ``L·N`` APC-corrected attention
maps of the protein LM (:func:`zoo.bio.protein_lm.family_head_maps`, each standardised).

**Network** (Senior et al. 2020, at this data's scale). A 1×1 convolution to ``width``
channels, then residual blocks ``h ← h + conv_d(elu(LN(conv_d(elu(LN(h))))))`` of 3×3
convolutions (:func:`zoo.cnn.conv`, ``same`` padding) whose dilation ``d`` cycles through
``dilations``, then a 1×1 convolution to one logit per pair. Each 3×3 convolution of
dilation ``d`` widens the receptive field by ``2d``, so::

    receptive field = 1 + Σ_blocks 4 d_b          (121 for 8 blocks of 1, 2, 4, 8)

The loss is the binary cross-entropy of ``c_ij = [Cβ–Cβ < 8 Å]`` on the resolved pairs with
residue separation ``≥ 6``, on random ``crop × crop`` windows (rows and columns drawn apart, as
AlphaFold's 64×64 crops); a map is predicted whole and symmetrised, ``(s + sᵀ)/2``.

Shape letters: ``B`` crops, ``T`` columns (``Y``/``X`` the rows and columns of a crop), ``C``
channels, ``W`` kernel taps, ``L`` layers of the LM, ``N`` its heads.

>>> receptive_field(Settings())
121

References:
    A. W. Senior et al., "Improved protein structure prediction using potentials from deep
    learning", Nature 577, 2020. https://doi.org/10.1038/s41586-019-1923-7
    S. Wang, S. Sun, Z. Li, R. Zhang, J. Xu, "Accurate De Novo Prediction of Protein Contact
    Map by Ultra-Deep Learning Model", PLoS Comput Biol 13(1), 2017.
    https://doi.org/10.1371/journal.pcbi.1005324
"""

import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Float, Int

from zoo import cnn, layers
from zoo.bio import contact_eval as _eval
from zoo.bio import contacts as _contacts
from zoo.bio import msa as _msa
from zoo.bio import protein_lm as _lm

APP = "contacts/pair_cnn"
#: The default protein LM parameters (written by ``python -m zoo.bio.protein_lm``).
LM_PARAMS = f"benchmarks/results/bio/{_lm.APP}/protein_lm_params.npz"
#: Separation ranges of the one-hot separation channels.
SEP_BINS = (6, 12, 24)
MSA_CHANNELS = 2 * _msa.NUM_STATES + 4 + 4 + 1 + len(SEP_BINS) + 1


@dataclasses.dataclass(frozen=True)
class Settings:
    """The pair CNN run.

    Attributes:
        width: channels of the residual blocks.
        dilations: the dilation of each residual block.
        crop: the side of the training windows.
        batch_size: windows per step.
        steps: optimizer steps (AdamW, warm-up then cosine decay).
        learning_rate: peak learning rate.
        attention: add the LM's attention maps to the features.
        max_sequences: alignment sequences used for the MSA features (a random subset;
            ``None``: all).
        seed: crops and initialisation.
        cache_dir: where MSA features are kept between runs (``None``: no cache).
        lm_params: the protein LM's parameters (:func:`zoo.bio.protein_lm.save_params`).
    """
    width: int = 32
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8)
    crop: int = 64
    batch_size: int = 4
    steps: int = 300
    learning_rate: float = 1e-3
    attention: bool = True
    max_sequences: int | None = None
    seed: int = 0
    cache_dir: str | None = None
    lm_params: str = LM_PARAMS


QUICK = Settings(width=16, dilations=(1, 2, 4, 8), steps=80, max_sequences=800)


# --- features ----------------------------------------------------------------------------------

def msa_statistics(x: Int[np.ndarray, "B T"], weights=None) -> dict[str, np.ndarray]:
    """``mi``, ``cov`` ``[T, T]`` and ``entropy``, ``gap`` ``[T]`` (module docstring)."""
    f_i, f_ij = _contacts.frequencies(x, weights)
    indep = f_i[:, None, :, None] * f_i[None, :, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        mi = np.sum(np.where(f_ij > 0, f_ij * np.log(f_ij / indep), 0.0), axis=(-1, -2))
    aa = slice(0, _msa.GAP)
    cov = np.sqrt(np.sum((f_ij - indep)[:, :, aa, aa] ** 2, axis=(-1, -2)))
    np.fill_diagonal(mi, 0.0)
    np.fill_diagonal(cov, 0.0)
    entropy = -np.sum(np.where(f_i > 0, f_i * np.log(np.where(f_i > 0, f_i, 1.0)), 0.0), -1)
    return {"mi": mi, "cov": cov, "entropy": entropy, "gap": f_i[:, _msa.GAP]}


def family_statistics(family, *, max_sequences: int | None = None, seed: int = 0,
                      cache_dir: str | None = None) -> dict[str, np.ndarray]:
    """:func:`msa_statistics` of the family's alignment (weights θ 0.8; at most
    ``max_sequences`` rows drawn with ``seed``), cached as
    ``<cache_dir>/msa_<pfam>_<max_sequences>.npz``."""
    path = (Path(cache_dir) / f"msa_{family.pfam_id}_{max_sequences or 'all'}.npz"
            if cache_dir else None)
    if path is not None and path.is_file():
        with np.load(path) as data:
            return dict(data)
    x = family.alignment.encoded()
    if max_sequences is not None and len(x) > max_sequences:
        x = x[np.sort(np.random.default_rng(seed).permutation(len(x))[:max_sequences])]
    stats = msa_statistics(x, _msa.sequence_weights(x))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **stats)
    return stats


def _standardize(m: np.ndarray) -> np.ndarray:
    """``(m − mean) / std`` over the off-diagonal entries."""
    off = ~np.eye(len(m), dtype=bool)
    std = m[off].std()
    return (m - m[off].mean()) / (std if std > 0 else 1.0)


def pair_features(domain: str, stats: dict, head_maps=None) -> Float[np.ndarray, "T T C"]:
    """The ``[T, T, C]`` features of a family (module docstring): ``domain`` its aligned
    sequence (``T`` letters), ``stats`` from :func:`msa_statistics`, ``head_maps``
    ``[I, T, T]`` or ``None``. ``C`` is :data:`MSA_CHANNELS` (+ ``I``)."""
    t = len(domain)
    onehot = np.eye(_msa.NUM_STATES)[_msa.encode(domain)[0]]
    row = lambda v: np.broadcast_to(v[:, None, ...], (t, t) + v.shape[1:])
    col = lambda v: np.broadcast_to(v[None, :, ...], (t, t) + v.shape[1:])
    sep = np.abs(np.arange(t)[:, None] - np.arange(t)[None, :])
    edges = (0,) + SEP_BINS + (np.inf,)
    bins = [(sep >= lo) & (sep < hi) for lo, hi in zip(edges[:-1], edges[1:])]
    maps = [stats["mi"], _contacts.apc(stats["mi"]), stats["cov"], _contacts.apc(stats["cov"])]
    planes = [row(onehot), col(onehot),
              np.stack([_standardize(m) for m in maps], -1),
              np.stack([row(stats["entropy"]), col(stats["entropy"]),
                        row(stats["gap"]), col(stats["gap"]), np.log1p(sep)], -1),
              np.stack(bins, -1).astype(np.float64)]
    if head_maps is not None:
        planes.append(np.stack([_standardize(m) for m in head_maps], -1))
    return np.concatenate(planes, -1).astype(np.float32)


def training_target(family) -> tuple[Float[np.ndarray, "T T"], Float[np.ndarray, "T T"]]:
    """``(contacts, weight)`` over the columns: 1/0 contacts; weight 1 on resolved pairs
    with residue separation ``≥ 6``, 0 elsewhere."""
    c = family.contacts()
    pos = family.column_residue
    sep = np.abs(pos[:, None] - pos[None, :])
    weight = (c >= 0) & (sep >= _eval.MIN_SEP)
    return (c > 0).astype(np.float32), weight.astype(np.float32)


# --- the network -----------------------------------------------------------------------------

def init(key: jax.Array, settings: Settings, in_channels: int) -> dict:
    """He-normal kernels, zero biases, unit norms; the second convolution of each block
    scaled by 0.1 so that the stack starts near the identity."""
    c = settings.width
    keys = jax.random.split(key, 2 * len(settings.dilations) + 2)
    he = lambda k, shape: jax.random.normal(k, shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
    blocks = []
    for b in range(len(settings.dilations)):
        blocks.append({"ln1": {"scale": jnp.ones(c), "bias": jnp.zeros(c)},
                       "w1": he(keys[2 * b], (3, 3, c, c)), "b1": jnp.zeros(c),
                       "ln2": {"scale": jnp.ones(c), "bias": jnp.zeros(c)},
                       "w2": 0.1 * he(keys[2 * b + 1], (3, 3, c, c)), "b2": jnp.zeros(c)})
    return {"in": {"w": he(keys[-2], (1, 1, in_channels, c)), "b": jnp.zeros(c)},
            "blocks": blocks,
            "out": {"w": jax.random.normal(keys[-1], (1, 1, c, 1)) / np.sqrt(c),
                    "b": jnp.zeros(1)}}


def apply(params: dict, x: Float[jax.Array, "B Y X C"], settings: Settings
          ) -> Float[jax.Array, "B Y X"]:
    """Contact logits of every pair of a feature image (module docstring)."""
    h = cnn.conv(x, params["in"]["w"], params["in"]["b"], padding="same")
    for p, d in zip(params["blocks"], settings.dilations):
        y = jax.nn.elu(layers.layer_norm(h, p["ln1"]["scale"], p["ln1"]["bias"], 1e-5))
        y = cnn.conv(y, p["w1"], p["b1"], padding="same", dilation=d)
        y = jax.nn.elu(layers.layer_norm(y, p["ln2"]["scale"], p["ln2"]["bias"], 1e-5))
        h = h + cnn.conv(y, p["w2"], p["b2"], padding="same", dilation=d)
    return cnn.conv(h, params["out"]["w"], params["out"]["b"])[..., 0]


def receptive_field(settings: Settings) -> int:
    """``1 + Σ_b 4·d_b`` pairs per axis (two 3×3 convolutions of dilation ``d_b`` a block)."""
    return 1 + 4 * sum(settings.dilations)


def loss(params, x, target, weight, settings: Settings) -> jax.Array:
    """The mean binary cross-entropy over the weighted pairs."""
    logits = apply(params, x, settings)
    bce = optax.sigmoid_binary_cross_entropy(logits, target)
    return jnp.sum(bce * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def random_crops(data: list, rng: np.random.Generator, crop: int, batch_size: int):
    """``batch_size`` windows ``(x [B, crop, crop, C], target, weight)``: a random family of
    ``data`` (a list of ``(features, target, weight)``), a random row window and an
    independent column window; maps smaller than ``crop`` are zero-padded (weight 0)."""
    channels = data[0][0].shape[-1]
    x = np.zeros((batch_size, crop, crop, channels), np.float32)
    t = np.zeros((batch_size, crop, crop), np.float32)
    w = np.zeros((batch_size, crop, crop), np.float32)
    for b in range(batch_size):
        feats, target, weight = data[rng.integers(len(data))]
        n = len(target)
        i0, j0 = (int(rng.integers(0, max(n - crop, 0) + 1)) for _ in range(2))
        rows, cols = slice(i0, i0 + crop), slice(j0, j0 + crop)
        sub = feats[rows, cols]
        x[b, :sub.shape[0], :sub.shape[1]] = sub
        t[b, :sub.shape[0], :sub.shape[1]] = target[rows, cols]
        w[b, :sub.shape[0], :sub.shape[1]] = weight[rows, cols]
    return x, t, w


def train(settings: Settings, data: list, *, progress: bool = True):
    """Trains on ``data`` (a list of ``(features, target, weight)``); returns ``(params,
    history)``, ``history`` of ``(step, mean loss)`` every 20 steps."""
    rng = np.random.default_rng(settings.seed)
    params = init(jax.random.key(settings.seed), settings, data[0][0].shape[-1])
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, settings.learning_rate, max(settings.steps // 20, 1), settings.steps,
        settings.learning_rate / 20)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=1e-4))
    state = opt.init(params)

    @jax.jit
    def step(params, state, x, t, w):
        value, grads = jax.value_and_grad(loss)(params, x, t, w, settings)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    history, running = [], []
    for i in _eval.progress_bar(range(settings.steps), progress, "pair CNN"):
        params, state, value = step(params, state,
                                    *random_crops(data, rng, settings.crop,
                                                  settings.batch_size))
        running.append(float(value))
        if (i + 1) % 20 == 0 or i + 1 == settings.steps:
            history.append((i + 1, float(np.mean(running))))
            running = []
    return params, history


def predict(params, features: Float[np.ndarray, "T T C"], settings: Settings, *,
            multiple: int = 32) -> Float[np.ndarray, "T T"]:
    """The symmetrised logits ``(s + sᵀ)/2`` of a whole map (zero-padded to a multiple of
    ``multiple`` so that few shapes compile)."""
    n = len(features)
    size = -(-n // multiple) * multiple
    x = np.zeros((1, size, size, features.shape[-1]), np.float32)
    x[0, :n, :n] = features
    s = np.asarray(_apply_jit(params, jnp.asarray(x), settings))[0, :n, :n]
    return _contacts.symmetrize(s.astype(np.float64))


_apply_jit = jax.jit(apply, static_argnums=(2,))


# --- the run -----------------------------------------------------------------------------------

def run(settings: Settings = Settings(), *, data_dir=None, out=None,
        progress: bool = True) -> dict:
    """Builds the features of the 40 families, trains the CNN on the training families,
    and scores every method on the held-out ones; writes the report to ``out`` if given."""
    start = time.time()
    families = _eval.load_families(_eval.TRAIN_FAMILIES + _eval.HELDOUT_FAMILIES, data_dir)
    stats = {p: family_statistics(f, max_sequences=settings.max_sequences,
                                  seed=settings.seed, cache_dir=settings.cache_dir)
             for p, f in _eval.progress_bar(families.items(), progress, "MSA features")}
    scores = {"MI+APC": {p: _contacts.apc(s["mi"]) for p, s in stats.items()},
              "COV+APC": {p: _contacts.apc(s["cov"]) for p, s in stats.items()}}
    maps = None
    if settings.attention:
        if not Path(settings.lm_params).is_file():
            raise FileNotFoundError(
                f"lm_params: no protein LM parameters at {settings.lm_params}; train them "
                "with `python -m zoo.bio.protein_lm` or run without attention features")
        lm_params, lm_cfg = _lm.load_params(settings.lm_params)
        pred = _lm.attention_predictors(lm_params, lm_cfg, families, progress=progress)
        scores.update(pred["scores"])
        maps = pred["maps"]
    feats = {p: pair_features(f.domain, stats[p], None if maps is None else maps[p])
             for p, f in families.items()}
    data = [(feats[p], *training_target(families[p])) for p in _eval.TRAIN_FAMILIES]
    params, history = train(settings, data, progress=progress)
    scores["pair CNN"] = {p: predict(params, feats[p], settings) for p in families}
    rows = _eval.evaluate(scores, families, _eval.HELDOUT_FAMILIES)
    train_rows = _eval.evaluate({"pair CNN": scores["pair CNN"]}, families, _eval.TRAIN_FAMILIES)
    result = {"settings": dataclasses.asdict(settings), "rows": rows,
              "summary": _eval.summarize(rows), "train_summary": _eval.summarize(train_rows),
              "history": history, "channels": int(data[0][0].shape[-1]),
              "num_params": _eval.count_params(params), "seconds": time.time() - start}
    if out is not None:
        write_report(result, scores, families, Path(out))
    return result


def write_report(result: dict, scores: dict, families: dict, out: Path) -> None:
    """``report.md``, ``per_family.csv`` and ``contact_maps.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    s = result["settings"]
    _eval.write_csv(result["rows"], out / "per_family.csv")
    shown = _eval.HELDOUT_FAMILIES[:3]
    methods = [m for m in ("MI+APC", "supervised attention", "pair CNN") if m in scores]
    _eval.plot_contact_maps(scores, families, shown, out / "contact_maps.png", methods=methods)
    train_p = result["train_summary"]["pair CNN"]["long_P@L/5"]
    lines = [
        "# Pair CNN (AlphaFold-v1 style) contact prediction", "",
        f"Command: `python -m zoo.bio.pair_cnn {' '.join(sys.argv[1:])}`", "",
        f"Settings: `{json.dumps(s)}`.", "",
        f"A residual network of {len(s['dilations'])} blocks (two dilated 3×3 convolutions "
        f"each, dilations {tuple(s['dilations'])}, width {s['width']}, receptive field "
        f"{1 + 4 * sum(s['dilations'])}), {result['num_params']:,} parameters, over "
        f"{result['channels']} pair-feature channels "
        f"({'with' if s['attention'] else 'without'} the LM's attention maps), trained for "
        f"{s['steps']} steps of {s['batch_size']} random {s['crop']}×{s['crop']} crops of "
        f"the 30 training families; one run, seed {s['seed']}; wall time "
        f"{result['seconds'] / 60:.1f} min on a shared 2-core CPU.", "",
        f"Held-out families: {', '.join(_eval.HELDOUT_FAMILIES)} (the fixed split of "
        "`zoo.bio.contact_eval`). MI+APC and COV+APC are inputs of the CNN; the attention "
        "methods are those of `zoo.bio.protein_lm` (best head and the logistic regression "
        "chosen/fitted on the training families).", "",
        "Mean over the 10 held-out families (long range |i − j| ≥ 24, medium 12–23):", "",
        *_eval.markdown_tables(result["rows"]), "",
        f"Pair CNN on its own training families: long-range P@L/5 {train_p:.3f}.", "",
        "Training loss (step: mean BCE): " + ", ".join(
            f"{st}: {v:.3f}" for st, v in result["history"][::max(
                len(result["history"]) // 10, 1)]) + ".", "",
        f"`contact_maps.png`: true contacts (grey, lower triangle) and the top-L predictions "
        f"(upper triangle; green a contact, red not) of {', '.join(methods)} for "
        f"{', '.join(shown)}.", "",
        _eval.goal_line(result["summary"], "pair CNN",
                        ("MI+APC", "COV+APC", "best head", "mean of heads",
                         "supervised attention")),
        ""]
    (out / "report.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    """``zoo bio pair_cnn [--quick] [--data-dir D] [--out O] [--seed S]``."""
    parser = _eval.app_parser("zoo bio pair-cnn", __doc__, APP)
    parser.add_argument("--cache-dir", default=None, help="keep MSA features here")
    parser.add_argument("--lm-params", default=LM_PARAMS,
                        help="protein LM parameters for the attention features")
    parser.add_argument("--no-attention", action="store_true",
                        help="MSA features only (no protein LM needed)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else Settings()
    changes = {"seed": args.seed, "cache_dir": args.cache_dir, "lm_params": args.lm_params,
               "attention": not args.no_attention}
    if args.steps is not None:
        changes["steps"] = args.steps
    settings = dataclasses.replace(settings, **changes)
    from zoo.bio import structure
    from zoo.data import data_dir
    data_dir(structure.DATASET, root=args.data_dir)
    result = run(settings, data_dir=args.data_dir, out=args.out)
    _eval.print_summary(result["summary"])
    print(f"report in {args.out}")
    return 0


__all__ = ["Settings", "QUICK", "LM_PARAMS", "MSA_CHANNELS", "msa_statistics",
           "family_statistics", "pair_features", "training_target", "init", "apply",
           "receptive_field", "loss", "random_crops", "train", "predict", "run",
           "write_report", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
