"""Trains the seq2seq LSTM to reverse random token sequences (lengths 5-20) on CPU.

Usage:
    python examples/reverse_seq2seq.py [--steps 5000] [--batch 128] [--seed 0]

Prints the training loss as it goes, then the exact-sequence accuracy of greedy decoding on
held-out sequences (fresh random draws from another seed) and the wall-clock training time.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from zoo import seq2seq
from zoo.registry import spec_for
from zoo.train import init_state, make_train_step


def train(steps: int = 5000, batch: int = 128, seed: int = 0, lr: float = 5e-3,
          log_every: int = 250):
    """Returns ``(params, seconds)`` after ``steps`` Adam steps on fresh random batches."""
    spec = spec_for("seq2seq", seq2seq.REVERSE, "seq2seq-reverse")
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, min(200, steps // 10), steps,
                                                  lr / 20)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
    state = init_state(spec, optimizer, jax.random.key(seed))
    step = make_train_step(spec, optimizer)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for i in range(1, steps + 1):
        inputs, targets = seq2seq.task_batch(rng, spec.config, batch)
        state, loss = step(state, inputs, targets)
        if log_every and i % log_every == 0:
            print(f"step {i:5d}  loss {float(loss):.4f}  {time.perf_counter() - start:6.1f}s",
                  flush=True)
    jax.block_until_ready(state.params)
    return state.params, time.perf_counter() - start


def evaluate(params, n: int = 1000, seed: int = 12345, beam_size: int = 0) -> float:
    """Exact-sequence accuracy of greedy decoding (or beam search) on ``n`` fresh sequences."""
    cfg = seq2seq.REVERSE
    (src, lengths, _), tgt = seq2seq.task_batch(np.random.default_rng(seed), cfg, n)
    if beam_size:
        decode = jax.jit(lambda p, s, l: seq2seq.beam_search(p, s, l, cfg,
                                                             beam_size=beam_size)[0][:, 0])
    else:
        decode = jax.jit(lambda p, s, l: seq2seq.greedy_decode(p, s, l, cfg))
    pred = decode(params, jnp.asarray(src), jnp.asarray(lengths))
    return float(seq2seq.exact_match(pred, jnp.asarray(tgt), cfg).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--beam", type=int, default=0, help="also evaluate beam search")
    args = parser.parse_args()
    params, seconds = train(args.steps, args.batch, args.seed, args.lr)
    print(f"trained {args.steps} steps in {seconds:.1f}s")
    print(f"held-out exact-sequence accuracy (greedy): {evaluate(params):.4f}")
    if args.beam:
        print(f"held-out exact-sequence accuracy (beam {args.beam}): "
              f"{evaluate(params, beam_size=args.beam):.4f}")


if __name__ == "__main__":
    main()
