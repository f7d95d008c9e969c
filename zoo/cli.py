"""The ``zoo`` console script.

Commands:
    zoo list [--family F]     registered models with their task and parameter count
    zoo info NAME             one model's config, params and logical sharding
    zoo demo                  the perceptron and the MLP on the logic gates (AND, OR, XOR)
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
    parser = argparse.ArgumentParser(prog="zoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="registered models")
    p_list.add_argument("--family", choices=zoo.FAMILIES)
    p_info = sub.add_parser("info", help="one model's config and parameters")
    p_info.add_argument("name")
    p_demo = sub.add_parser("demo", help="perceptron and MLP on AND, OR, XOR")
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--steps", type=int, default=300, help="MLP optimiser steps")
    args = parser.parse_args(argv)
    try:
        return {"list": _list, "info": _info, "demo": _demo}[args.command](args)
    except (KeyError, ValueError) as err:
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


if __name__ == "__main__":
    sys.exit(main())
