"""The ``zoo`` console script.

Commands:
    zoo list [--family F]     registered models with their task and parameter count
    zoo info NAME             one model's config, params and logical sharding
    zoo demo                  the perceptron and the MLP on the logic gates (AND, OR, XOR)
    zoo train NAME [...]      train a model on a file (or its example data): mesh, checkpoints,
                              resume, JSON-lines metrics; `zoo train --help` for the options
    zoo bench [...]           Table 1 of "Attention Is All You Need", measured on this device
                              (the benchmarks.table1 suite; `zoo bench --help` for the options)
"""

import argparse
import sys

import jax
import jax.numpy as jnp

import zoo

GATES = {
    "AND": [0, 0, 0, 1],
    "OR": [0, 1, 1, 1],
    "XOR": [0, 1, 1, 0],
}
GATE_INPUTS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from benchmarks import table1      # its own parser owns every option after `bench`
        return table1.main(argv[1:])
    parser = argparse.ArgumentParser(prog="zoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="registered models")
    p_list.add_argument("--family", choices=zoo.FAMILIES)
    p_info = sub.add_parser("info", help="one model's config and parameters")
    p_info.add_argument("name")
    p_demo = sub.add_parser("demo", help="perceptron and MLP on AND, OR, XOR")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--steps", type=int, default=300, help="MLP optimiser steps")
    _add_train_parser(sub)
    sub.add_parser("bench", help="Table 1 of 'Attention Is All You Need', measured", add_help=False)
    args = parser.parse_args(argv)
    try:
        return {"list": _list, "info": _info, "demo": _demo,
                "train": _train}[args.command](args)
    except (KeyError, ValueError, FileNotFoundError, FileExistsError, ConnectionError,
            RuntimeError) as err:
        print(f"zoo: error: {err}", file=sys.stderr)
        return 2


def _list(args) -> int:
    print(f"{'name':<24} {'task':<16} {'params':>12}")
    for name in zoo.list_models(args.family):
        spec = zoo.get(name)
        print(f"{name:<24} {spec.task:<16} {spec.num_params():>12,}")
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
    p = sub.add_parser("train", help="train a model (sharded, checkpointed, resumable)")
    p.add_argument("name", help="registered model, e.g. mlp-tiny")
    p.add_argument("--data", help="CSV/JSON/text/FASTA file or Hub dataset name "
                   "(default: the model's example data)")
    p.add_argument("--inputs", default="", help="comma-separated input columns (tables)")
    p.add_argument("--target", help="target column (tables; labels for sequence tasks)")
    p.add_argument("--sequence-column", help="text column of a sequence dataset")
    p.add_argument("--alphabet", default="ACDEFGHIKLMNPQRSTVWY",
                   help="characters of the sequence tokenizer")
    p.add_argument("--buckets", default="128", help="comma-separated padded lengths")
    p.add_argument("--examples", type=int, default=1024,
                   help="size of the example dataset when --data is not given")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32, help="global batch size")
    p.add_argument("--mesh", help="data,fsdp,tensor sizes (default: all devices on data)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--accumulate", type=int, default=1)
    p.add_argument("--dtype", default="float32", help="compute dtype (bfloat16: mixed)")
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--checkpoint-dir")
    p.add_argument("--checkpoint-every", type=int, default=0)
    p.add_argument("--keep", type=int, default=3)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--until", type=int, help="stop (and checkpoint) after this step")
    p.add_argument("--metrics", help="JSON-lines metrics file")
    p.add_argument("--log-every", type=int, default=10, help="steps between loss records")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--cpu-devices", type=int,
                   help="simulate this many CPU devices (to try meshes on one machine)")
    p.add_argument("--coordinator", help="host:port of process 0, for multi-process runs")
    p.add_argument("--num-processes", type=int)
    p.add_argument("--process-id", type=int)


def _train(args) -> int:
    import numpy as np
    from zoo import data, sharding, train

    if args.cpu_devices:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    if args.coordinator:
        jax.distributed.initialize(args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    spec = zoo.get(args.name)
    loader, eval_loader = _loaders(args, spec, data, np)
    mesh = None if not args.mesh else sharding.make_mesh(
        tuple(int(s) for s in args.mesh.split(",")))
    config = train.TrainConfig(learning_rate=args.lr, warmup_steps=args.warmup,
                               clip_norm=args.clip or None, accumulate=args.accumulate,
                               dtype=args.dtype)
    result = train.fit(spec, loader, steps=args.steps, config=config, mesh=mesh,
                       seed=args.seed, eval_data=eval_loader, eval_every=args.eval_every,
                       checkpoint_dir=args.checkpoint_dir,
                       checkpoint_every=args.checkpoint_every, keep=args.keep,
                       resume=args.resume, metrics_path=args.metrics,
                       log_every=args.log_every, until=args.until,
                       progress=not args.no_progress)
    last = ([h for h in result.history if "loss" in h] or [{"loss": float("nan")}])[-1]
    if jax.process_index() == 0:
        rate = f"  {last['examples_per_s']:.0f} examples/s" if "examples_per_s" in last else ""
        print(f"{spec.name}: step {int(result.state.step)}  loss {last['loss']:.4f}{rate}")
    return 0


def _loaders(args, spec, data, np):
    """The training loader (and an evaluation loader when --eval-every is set)."""
    kw = dict(batch_size=args.batch_size, seed=args.seed)
    if args.data is None:
        inputs, targets = spec.example_batch(jax.random.key(args.seed + 1), args.examples)
        to_np = lambda t: jax.tree.map(np.asarray, t)
        loader = data.Loader.from_arrays(to_np(inputs), to_np(targets), **kw)
        held = spec.example_batch(jax.random.key(args.seed + 2), args.batch_size)
        eval_loader = data.Loader.from_arrays(to_np(held[0]), to_np(held[1]), shuffle=False,
                                              repeat=False, batch_size=args.batch_size)
        return loader, eval_loader if args.eval_every else None
    dataset = data.load(args.data)
    if args.sequence_column:
        task = spec.task if spec.task in ("language_modelling", "sequence_labelling") \
            else "classification"
        loader = data.sequence_loader(
            dataset, args.sequence_column, data.CharTokenizer(args.alphabet), task=task,
            label_column=args.target, buckets=[int(b) for b in args.buckets.split(",")], **kw)
    else:
        if not args.inputs or not args.target:
            raise ValueError("a table needs --inputs and --target (or --sequence-column)")
        loader = data.columns_loader(dataset, args.inputs.split(","), args.target, **kw)
    return loader, None


if __name__ == "__main__":
    sys.exit(main())
