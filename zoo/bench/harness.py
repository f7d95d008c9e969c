"""The one timing harness every benchmark uses.

Rules it enforces: compile time is measured apart from run time; inputs are placed on the
device before timing; every call is followed by ``block_until_ready``; a warm-up precedes the
repeats; results report the median with min and max. Each record carries the environment
(device, platform, dtype, matmul precision, library versions) so numbers from different
machines can be compared.

>>> import jax.numpy as jnp
>>> r = time_jax(lambda x: x @ x, jnp.ones((64, 64)), repeats=3)
>>> sorted(r) == ["compile_s", "max_s", "median_s", "min_s", "repeats", "times"]
True
"""

import ctypes
import ctypes.util
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np


def environment() -> dict:
    """Device, platform and library versions, for every record."""
    import zoo
    device = jax.devices()[0]
    env = {
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
        "jax": jax.__version__,
        "zoo": zoo.__version__,
        "malloc": _MALLOC_POLICY,
    }
    for lib in ("flax", "torch"):
        try:
            env[lib] = __import__(lib).__version__
        except ImportError:
            pass
    return env


#: What :func:`keep_freed_memory` did, for :func:`environment`.
_MALLOC_POLICY = "system default"

#: ``mallopt`` parameters of glibc's ``malloc.h``.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def keep_freed_memory(trim_threshold: int = 1 << 30) -> bool:
    """Has glibc's ``malloc`` serve large blocks from its heap and keep freed memory for reuse.

    By default glibc maps each block over its mapping threshold (which adapts, up to 32 MiB)
    afresh from the kernel and unmaps it when freed, so every call of a compiled program whose
    buffers exceed that size faults in and zeroes each 4 KiB page again: a cost of the
    allocator's policy, not of the layer, that falls only on the largest sizes of a sweep and
    bends its fitted exponents. With ``M_MMAP_MAX = 0`` and a trim threshold of
    ``trim_threshold`` bytes, freed blocks stay in the heap and the next call reuses them; with
    ``M_ARENA_MAX = 1`` every thread allocates from that one heap, because the arenas glibc
    gives other threads (XLA's workers) grow in pieces of at most 64 MiB and map any larger
    block afresh whatever ``M_MMAP_MAX`` says. The process keeps up to its peak memory. Returns
    False, changing nothing, where the C library has no ``mallopt`` (not glibc) or refuses the
    settings.

    >>> kept = keep_freed_memory()
    >>> environment()["malloc"].startswith("glibc heap only") == kept
    True
    """
    global _MALLOC_POLICY
    if (not isinstance(trim_threshold, int) or isinstance(trim_threshold, bool)
            or not 0 < trim_threshold < 2 ** 31):
        raise ValueError(f"trim_threshold must be a number of bytes in [1, 2**31), "
                         f"got {trim_threshold!r}")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not (mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, trim_threshold)
            and mallopt(_M_ARENA_MAX, 1)):
        return False
    _MALLOC_POLICY = (f"glibc heap only (M_MMAP_MAX 0, M_TRIM_THRESHOLD {trim_threshold}, "
                      f"M_ARENA_MAX 1)")
    return True


def stats(times: list[float]) -> dict:
    """Median, min and max of a list of run times (seconds), and how many there were."""
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "repeats": len(times)}


def time_jax(fn: Callable, *args, repeats: int = 5, warmup: int = 1, jit: bool = True,
             min_total_s: float = 0.0, max_repeats: int = 25) -> dict:
    """Times a JAX function: compile once (timed apart), warm up, then ``repeats`` runs, and
    more (up to ``max_repeats``) while the runs add up to less than ``min_total_s``: fast
    calls get more samples, so the minimum over them is as steady as a slow call's.

    Args are put on the default device first. ``fn`` is jit-compiled unless ``jit=False``
    (pass an already compiled function then). Returns the statistics of :func:`stats`, the
    compile time and the run times themselves (``"times"``, seconds).
    """
    args = jax.device_put(args)
    jax.block_until_ready(args)
    compiled = jax.jit(fn) if jit else fn
    start = time.perf_counter()
    if jit:
        compiled = compiled.lower(*args).compile()
    compile_s = time.perf_counter() - start
    for _ in range(warmup):
        jax.block_until_ready(compiled(*args))
    times = []
    while len(times) < repeats or (sum(times) < min_total_s and len(times) < max_repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return {"compile_s": compile_s, **stats(times), "times": times}


def jax_call(fn: Callable, *args) -> Callable[[], object]:
    """``fn`` compiled for ``args`` (put on the default device first), as a call with no
    arguments that waits for its results: one entry of :func:`time_interleaved`."""
    args = jax.block_until_ready(jax.device_put(args))
    compiled = jax.jit(fn).lower(*args).compile()
    return lambda: jax.block_until_ready(compiled(*args))


def torch_device() -> str:
    """Where PyTorch peers run: ``"cuda"`` when JAX's default backend is a GPU and PyTorch
    sees one (so that cuDNN meets cuDNN), else ``"cpu"``."""
    import torch
    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def torch_runner(module, x_np: np.ndarray, backward: bool,
                 call: Callable = lambda m, x: m(x)) -> Callable[[], None]:
    """A PyTorch peer as one entry of :func:`time_interleaved`: ``call(module, x)`` on
    :func:`torch_device`, forward under ``no_grad`` or, with ``backward``, forward and the
    gradient of the summed output; it waits for the device before it returns.

    >>> import torch
    >>> run = torch_runner(torch.nn.Linear(3, 2), np.ones((4, 3), np.float32), backward=True)
    >>> run()
    """
    import torch
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    device = torch_device()
    module = module.to(device)
    x = torch.from_numpy(np.array(x_np)).to(device)        # np.array: a writable copy
    wait = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run():
        if backward:
            module.zero_grad(set_to_none=True)
            call(module, x).sum().backward()
        else:
            with torch.no_grad():
                call(module, x)
        wait()
    return run


def time_interleaved(calls: dict[str, Callable[[], object]], repeats: int = 5,
                     warmup: int = 1, lead: int = 0) -> dict[str, dict]:
    """Times several calls with no arguments in rounds, one timed run of each per round, so
    that a burst of other work on a shared machine slows one run of every call rather than
    all runs of one; returns each call's :func:`stats`. Each call must finish its work before
    it returns (see :func:`jax_call`).

    ``lead`` untimed runs of a call come right before each of its timed runs, so that no
    timed run starts in the wake of another call. Calls from different libraries need it:
    PyTorch's worker threads keep spinning for a while after their last parallel region, and
    on a 2-core CPU the JAX LSTM run right after PyTorch's took 15.7-17.9 ms against 12.1 ms
    run after itself (B 32, D 256, T 64).

    >>> t = time_interleaved({"a": lambda: sum(range(100)), "b": lambda: None}, repeats=3,
    ...                      lead=1)
    >>> sorted(t), t["a"]["repeats"]
    (['a', 'b'], 3)
    """
    if not calls:
        raise ValueError("time_interleaved needs at least one call, got none")
    if repeats < 1 or warmup < 0 or lead < 0:
        raise ValueError(f"repeats must be >= 1, warmup and lead >= 0, got repeats={repeats}, "
                         f"warmup={warmup}, lead={lead}")
    for _ in range(warmup):
        for call in calls.values():
            call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            for _ in range(lead):
                call()
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: stats(t) for name, t in times.items()}


def time_python(fn: Callable, *args, repeats: int = 5, warmup: int = 1,
                sync: Callable | None = None) -> dict:
    """Times any callable (PyTorch, say); ``sync`` runs after each call (a device sync)."""
    for _ in range(warmup):
        fn(*args)
        if sync:
            sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return {"compile_s": 0.0, **stats(times)}


def memory_analysis(fn: Callable, *args) -> dict:
    """Bytes of the compiled program: arguments, outputs, temporaries (XLA's own analysis)."""
    compiled = jax.jit(fn).lower(*args).compile()
    mem = compiled.memory_analysis()
    if mem is None:
        return {}
    return {"argument_bytes": int(mem.argument_size_in_bytes),
            "output_bytes": int(mem.output_size_in_bytes),
            "temp_bytes": int(mem.temp_size_in_bytes)}


def xla_flops(fn: Callable, *args) -> float | None:
    """XLA's FLOP count of the compiled program (a cross-check only: it counts one iteration
    of a while loop, and nothing inside custom calls)."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, list):
        cost = cost[0] if cost else None
    return None if not cost or "flops" not in cost else float(cost["flops"])


def random_inputs(seed, *shapes, dtype="float32") -> tuple:
    """Standard normal arrays on the default device (never zeros: some kernels shortcut on
    zeros), drawn on the host with NumPy from ``seed`` (an int or a JAX key), so that no
    program is compiled per shape (eager ``jax.random`` compiles one for each new shape).

    >>> a, b = random_inputs(0, (2, 3), (4,), dtype="bfloat16")
    >>> a.shape, b.shape, str(b.dtype), bool((random_inputs(0, (4,))[0] != 0).all())
    ((2, 3), (4,), 'bfloat16', True)
    """
    rng = host_rng(seed)
    return tuple(jnp.asarray(rng.standard_normal(s, dtype=np.float32).astype(jnp.dtype(dtype)))
                 for s in shapes)


def host_rng(seed) -> np.random.Generator:
    """NumPy generator seeded by an int or by a JAX key's data."""
    if isinstance(seed, jax.Array):
        seed = np.asarray(jax.random.key_data(seed)).ravel().tolist()
    return np.random.default_rng(seed)


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    """Appends one JSON object per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for r in records:
            f.write(json.dumps(r, default=_json_default) + "\n")


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return str(x)
