#!/usr/bin/env bash
# The measurements an accelerator adds, in one call, each step logged beside its results:
#   1. the tests that only run there (the cuDNN LSTM against the XLA path, gradients included,
#      and the attention implementation `auto` picks), on the accelerator's own devices;
#   2. the LSTM against PyTorch at batch 64, hidden 1024, length 1024 (PyTorch on CUDA, so
#      cuDNN on both sides; the zoo both through its own loops and through cuDNN);
#   3. Table 1 at the --full sizes, with the peers side by side.
# A step that fails does not stop the next; the exit status counts the failed steps.
#
# Usage: bash benchmarks/accelerator.sh [OUT_DIR]      (default benchmarks/results)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results}
mkdir -p "$out"
failed=0

step() {   # step NAME COMMAND...: runs COMMAND, its output in OUT_DIR/NAME.log
    local name=$1
    shift
    echo "== $name: $*"
    if ! "$@" >"$out/$name.log" 2>&1; then
        failed=$((failed + 1))
        echo "== $name failed (see $out/$name.log)"
    fi
    tail -n 25 "$out/$name.log"
}

python -c "import jax; print(jax.__version__, jax.devices())"
step accelerator-tests python -m pytest -q -p no:cacheprovider -rs \
    tests/test_rnn.py tests/test_attention.py -k "cudnn or auto_picks"
step lstm-speed python -m benchmarks.lstm_speed --batch 64 --hidden 1024 --lengths 1024 \
    --unroll 1 --repeats 5 --out "$out"
step table1-full python -m benchmarks.table1 --full --no-progress \
    --out "$out/table1-$(python -c 'import jax; print(jax.default_backend())')-full"
exit "$failed"
