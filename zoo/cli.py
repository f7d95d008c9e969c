"""The zoo console script.

Commands:
    zoo list [--family F]     registered models with their task and parameter count
    zoo info NAME             one model's config, params and logical sharding
    zoo demo                  the perceptron and the MLP on the logic gates (AND, OR, XOR)
    zoo train NAME [...]      train a model on a FASTA or CSV file: a language model (causal
                              or masked) or a classifier; mesh, checkpoints, resume, metrics
                              and a loss-curve PNG; --out DIR saves the trained model
    zoo predict DIR --data F  a saved model's predictions for the sequences of a file
    zoo eval DIR --data F     a saved model's loss (and accuracy) on a labelled file
    zoo bench [...]           Table 1 of "Attention Is All You Need", measured on this device
    zoo bio APP [...]         the bioinformatics applications on the real data sets (data
                              folder from --data-dir or $ZOO_DATA): contacts, msa-lm,
                              msa-ensemble, pair-cnn, mi, dna, embed, localize, escape;
                              "zoo bio APP --help" for each

Run "zoo COMMAND --help" for a command's options.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import zoo

GATES = {
    "AND": [0, 0, 0, 1],
    "OR": [0, 1, 1, 1],
    "XOR": [0, 1, 1, 0],
}
GATE_INPUTS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]

#: Library argument names and the console flags that set them, for error messages.
FLAGS = {"keep": "--keep", "checkpoint_dir": "--checkpoint-dir",
         "checkpoint_every": "--checkpoint-every", "log_every": "--log-every",
         "eval_every": "--eval-every", "until": "--until", "steps": "--steps",
         "batch_size": "--batch-size", "accumulate": "--accumulate", "learning_rate": "--lr",
         "warmup_steps": "--warmup", "clip_norm": "--clip", "dtype": "--dtype",
         "seed": "--seed"}
ERRORS = (KeyError, ValueError, TypeError, OSError, ConnectionError, RuntimeError,
          ArithmeticError)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from zoo.bench import table1      # its own parser owns every option after `bench`
        sys.argv[0] = "zoo bench"          # argparse names the program after argv[0]
        return table1.main(argv[1:])
    if argv[:1] == ["bio"]:
        return _bio(argv[1:])
    args = _parser().parse_args(argv)
    commands = {"list": _list, "info": _info, "demo": _demo, "train": _train,
                "predict": _predict, "eval": _eval}
    try:
        return commands[args.command](args)
    except ERRORS as err:
        text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"zoo {args.command}: error: {flag_names(text)}", file=sys.stderr)
        return 2


#: ``zoo bio APP`` -> the ``zoo.bio`` module whose ``main`` runs it.
BIO_APPS = {"contacts": "protein_lm", "msa-lm": "msa_lm", "msa-ensemble": "msa_ensemble",
            "pair-cnn": "pair_cnn", "mi": "contacts",
            "dna": "dna_models", "embed": "embeddings", "localize": "localization",
            "escape": "bilstm_lm"}


def _bio(argv: list[str]) -> int:
    """``zoo bio APP ...``: the application's own parser owns every option after ``APP``."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BIO_APPS:
        apps = ", ".join(BIO_APPS)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"zoo bio: error: unknown application {argv[0]!r}; choose one of {apps}",
                  file=sys.stderr)
            return 2
        print(f"usage: zoo bio APP [options]\n\napplications: {apps}\n"
              "Run \"zoo bio APP --help\" for an application's options.")
        return 0
    import importlib
    module = importlib.import_module(f"zoo.bio.{BIO_APPS[argv[0]]}")
    sys.argv[0] = f"zoo bio {argv[0]}"        # argparse names the program after argv[0]
    try:
        result = module.main(argv[1:])
    except FileNotFoundError as err:           # the data folder: say where the files go
        print(f"zoo bio {argv[0]}: error: {err}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


def flag_names(message: str) -> str:
    """A library message with argument names (``keep must``, ``resume=True``) as the console
    flags that set them (``--keep must``, ``--resume``).

    >>> flag_names("keep must be an integer >= 1, got 0; pass resume=True to continue")
    '--keep must be an integer >= 1, got 0; pass --resume to continue'
    """
    message = message.replace("resume=True", "--resume")
    for name, flag in FLAGS.items():
        after = "" if "_" in name else r"(?=(=\S| must| needs))"   # plain words in context
        message = re.sub(rf"(?<![\w-]){name}(?![\w-]){after}", flag, message)
    return message


def _count(minimum: int):
    """An argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value
    return parse


def _mesh_shape(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected three integers >= 1, data,fsdp,tensor (e.g. 8,1,1), got {text!r}")
    return tuple(int(p) for p in parts)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description=__doc__.splitlines()[0],
                                     epilog="\n".join(__doc__.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="registered models")
    p_list.add_argument("--family", choices=zoo.FAMILIES)
    p_info = sub.add_parser("info", help="one model's config and parameters")
    p_info.add_argument("name")
    p_demo = sub.add_parser("demo", help="perceptron and MLP on AND, OR, XOR")
    p_demo.add_argument("--seed", type=_count(0), default=0)
    p_demo.add_argument("--steps", type=_count(1), default=300, help="MLP optimiser steps")
    _add_train_parser(sub)
    for command, text in (("predict", "a saved model's predictions for a file"),
                          ("eval", "a saved model's loss and accuracy on a labelled file")):
        p = sub.add_parser(command, help=text, description=text)
        p.add_argument("model", help="folder written by zoo train --out (or zoo.save)")
        p.add_argument("--data", required=True, help="FASTA or CSV file")
        p.add_argument("--batch-size", type=_count(1), default=64)
        if command == "predict":
            p.add_argument("--output", help="CSV file for the predictions (default: stdout)")
    sub.add_parser("bench", help="Table 1 of 'Attention Is All You Need', measured",
                   add_help=False)
    return parser


def _list(args) -> int:
    print(f"{'name':<24} {'task':<20} {'params':>12}")
    for name in zoo.list_models(args.family):
        spec = zoo.get(name)
        print(f"{name:<24} {spec.task:<20} {spec.num_params():>12,}")
    return 0


def _info(args) -> int:
    spec = zoo.get(args.name)
    print(spec)
    print(f"parameters: {spec.num_params():,}")
    shapes = jax.eval_shape(spec.init, jax.random.key(0))
    axes = spec.param_axes()
    for (path, leaf), ax in zip(jax.tree_util.tree_flatten_with_path(shapes)[0],
                                jax.tree.leaves(axes, is_leaf=lambda a: isinstance(
                                    a, jax.sharding.PartitionSpec))):
        print(f"  {jax.tree_util.keystr(path):<32} {str(leaf.shape):<16} {ax}")
    return 0


def _demo(args) -> int:
    import optax
    from zoo import perceptron
    from zoo.train import init_state, make_train_step

    x = jnp.array(GATE_INPUTS)
    key_p, key_m = jax.random.split(jax.random.key(args.seed))
    print("Perceptron learning rule (Rosenblatt), budget "
          f"{perceptron.PRESETS['tiny'].max_epochs} epochs:")
    cfg = perceptron.PRESETS["tiny"]
    for gate, y in GATES.items():
        out = perceptron.fit(perceptron.init(key_p, cfg), x, jnp.array(y, jnp.float32), cfg)
        acc = float((perceptron.apply(out.params, x, cfg) == jnp.array(y)).mean())
        status = (f"converged in {int(out.epochs)} epochs" if out.converged
                  else "did not converge (not linearly separable)")
        print(f"  {gate:<4} accuracy {acc:6.0%}  {status}")

    spec = zoo.get("mlp-xor")
    optimizer = optax.adam(0.05)
    state = init_state(spec, optimizer, key_m)
    step = make_train_step(spec, optimizer)
    y = jnp.array(GATES["XOR"])
    for _ in range(args.steps):
        state, loss = step(state, (x,), y)
    acc = float((spec.apply(state.params, x).argmax(-1) == y).mean())
    print(f"MLP {spec.config.hidden_dims} tanh, Adam, {args.steps} steps:")
    print(f"  XOR  accuracy {acc:6.0%}  final loss {float(loss):.4f}")
    return 0


def _add_train_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model on a FASTA or CSV file (sharded, checkpointed)",
        description="Train a registered model. A language model (transformer-lm_tiny: causal, "
        "transformer-mlm_tiny: masked) learns the sequences of a FASTA or CSV file; a "
        "classifier (cnn-*, rnn-*, mlp-*) learns labels from a CSV column (--label-column) "
        "or a FASTA header word (--label-from-header). Sequences are encoded as the model "
        "takes them (one-hot channels or token ids), and the model's input, vocabulary and "
        "class sizes follow the data. Without --data the model's random example data is "
        "used, which shows the program runs, not that the model learns.")
    p.add_argument("name", help="registered model, e.g. transformer-lm_tiny or cnn-splice")
    p.add_argument("--data", help="FASTA, CSV/TSV or JSON file (or a Hub dataset name)")
    p.add_argument("--sequence-column", default="sequence",
                   help="column of the sequences in a table (FASTA: the sequence)")
    p.add_argument("--label-column", help="column of the class labels in a table")
    p.add_argument("--label-from-header", type=_count(2), metavar="N",
                   help="FASTA: the label is word N of the header line (word 1 is the id), "
                   "e.g. 2 for DeepLoc's 'Nucleus-S'")
    p.add_argument("--inputs", default="",
                   help="comma-separated numeric input columns of a table (an MLP's features)")
    p.add_argument("--alphabet", default="ACDEFGHIKLMNPQRSTVWY",
                   help="sequence characters (ACGT: DNA, IUPAC codes shared over the bases)")
    p.add_argument("--max-len", type=_count(2), default=256,
                   help="sequences are cropped to this length")
    p.add_argument("--holdout", type=float, default=0.2,
                   help="fraction of the file held out for evaluation (0: none)")
    p.add_argument("--examples", type=_count(1), default=1024,
                   help="size of the random example data when --data is not given")
    p.add_argument("--out", help="folder for the trained model, its metrics and loss curve")
    _add_run_options(p)


def _add_run_options(p) -> None:
    p.add_argument("--steps", type=_count(1), default=100)
    p.add_argument("--batch-size", type=_count(1), default=32, help="global batch size")
    p.add_argument("--mesh", type=_mesh_shape,
                   help="data,fsdp,tensor sizes (default: all devices on data)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=_count(0), default=0)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--accumulate", type=_count(1), default=1)
    p.add_argument("--dtype", default="float32", help="compute dtype (bfloat16: mixed)")
    p.add_argument("--eval-every", type=_count(0), default=0)
    p.add_argument("--checkpoint-dir")
    p.add_argument("--checkpoint-every", type=_count(0), default=0)
    p.add_argument("--keep", type=_count(1), default=3, help="checkpoints kept (>= 1)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--until", type=_count(1), help="stop (and checkpoint) after this step")
    p.add_argument("--metrics", help="JSON-lines metrics file (a loss-curve PNG goes beside)")
    p.add_argument("--log-every", type=_count(1), default=10, help="steps between records")
    p.add_argument("--seed", type=_count(0), default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--cpu-devices", type=_count(1),
                   help="simulate this many CPU devices (to try meshes on one machine)")
    p.add_argument("--coordinator", help="host:port of process 0, for multi-process runs")
    p.add_argument("--num-processes", type=_count(1))
    p.add_argument("--process-id", type=_count(0))


def _train(args) -> int:
    from zoo import data, prepare, sharding, train

    if args.cpu_devices:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    if args.coordinator:
        jax.distributed.initialize(args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    run = train.RunConfig(
        steps=args.steps, until=args.until, seed=args.seed, log_every=args.log_every,
        progress=not args.no_progress, metrics_path=_metrics_path(args),
        eval_every=args.eval_every, checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=args.checkpoint_every, keep=args.keep, resume=args.resume)
    config = train.TrainConfig(learning_rate=args.lr, warmup_steps=args.warmup,
                               clip_norm=args.clip or None, accumulate=args.accumulate,
                               dtype=args.dtype)
    job = prepare.job(args, zoo.get(args.name))
    print(f"{job.spec.name}: {job.about}", flush=True)
    mesh = sharding.make_mesh() if args.mesh is None else sharding.make_mesh(args.mesh)
    loader = data.Loader.from_arrays(*job.train, batch_size=args.batch_size, seed=args.seed)
    held = None
    if job.held is not None:      # whole batches that split over the mesh's data axes
        split = mesh.shape["data"] * mesh.shape["fsdp"]
        size = min(args.batch_size, len(job.held[1])) // split * split
        held = None if size == 0 else data.Loader.from_arrays(
            *job.held, batch_size=size, shuffle=False, repeat=False)
    result = train.fit(job.spec, loader, run, config=config, mesh=mesh, eval_data=held)
    if jax.process_index() != 0:
        return 0
    last = [h for h in result.history if "loss" in h][-1:]
    evals = [h for h in result.history if "eval_loss" in h][-1:]
    line = f"{job.spec.name}: step {int(result.state.step)}"
    line += f"  loss {last[0]['loss']:.4f}" if last else ""
    line += f"  held-out loss {evals[0]['eval_loss']:.4f}" if evals else ""
    if job.held is not None and job.record["task"] == "classification":
        acc = prepare.accuracy(job.spec, result.state.params, *job.held)
        line += f"  held-out accuracy {acc:.4f} ({len(job.held[1])} examples)"
    print(line)
    if run.metrics_path is not None:
        print(f"metrics: {run.metrics_path}, loss curve: {prepare.plot_losses(run.metrics_path)}")
    if args.out:
        saved = zoo.save(Path(args.out) / "model", job.spec, result.state.params,
                         overwrite=True, extra=job.record)
        print(f"model: {saved} (zoo predict {args.out} --data FILE)")
    return 0


def _metrics_path(args) -> Path | None:
    if args.metrics:
        return Path(args.metrics)
    return None if not args.out else Path(args.out) / "metrics.jsonl"


def _predict(args) -> int:
    from zoo import prepare
    spec, params, record = prepare.load_model(args.model)
    rows = prepare.read_rows(args.data, record)
    out = prepare.predict(spec, params, record, rows, args.batch_size)
    text = "\n".join([",".join(out[0])] + [",".join(map(str, r)) for r in out[1:]]) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"{len(out) - 1} predictions written to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _eval(args) -> int:
    from zoo import prepare
    spec, params, record = prepare.load_model(args.model)
    rows = prepare.read_rows(args.data, record)
    report = prepare.evaluate(spec, params, record, rows, args.batch_size)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
