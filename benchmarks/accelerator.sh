#!/usr/bin/env bash
# Everything an accelerator adds, in one call of at most 9 minutes on one H200, each step under
# its own time limit and logged beside its results:
#   1. the tests that only run there (cuDNN LSTM and attention, the cuDNN window, splash on a
#      TPU) and the kernel and family tests on the accelerator's own devices;
#   2. the LSTM against PyTorch at batch 64, hidden 1024, length 1024: every candidate the zoo
#      has (plain scan, CPU-tuned loops, cuDNN), so each platform's default is measured;
#   3. restricted attention (bf16, 16 heads of 128, windows 256 and 1024, n 8k-64k) through
#      each implementation, beside dense attention, in useful TFLOP/s;
#   4. Table 1 at the --full sizes planned for the device, PyTorch peers beside it;
#   5. GPT-2-small training throughput (tokens/s, MFU against the datasheet and a timed GEMM).
# Then report.md gathers every step's markdown and results.tar.gz packs the rest, so OUT holds
# at most 8 files. A failed step does not stop the next; the exit status counts them.
#
# Usage: bash benchmarks/accelerator.sh [OUT_DIR]      (default benchmarks/results/accelerator)
#        QUICK=1 bash benchmarks/accelerator.sh OUT   (tiny sizes: checks the script on a CPU)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results/accelerator}
work=$(mktemp -d)
mkdir -p "$out"
failed=0
quick=${QUICK:-}
# The interpreter: $PYTHON, else python, else python3 (the CUDA image has only python3).
py=${PYTHON:-$(command -v python || command -v python3)}

step() {   # step NAME SECONDS COMMAND...: runs COMMAND under a limit, output in WORK/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    if ! timeout "$limit" "$@" >"$work/$name.log" 2>&1; then
        failed=$((failed + 1))
        echo "== $name failed or ran out of time (see $name.log in the tarball)"
    fi
    echo "== $name took $((SECONDS - start)) s"
    tail -n 15 "$work/$name.log"
}

"$py" -c "import jax; print(jax.__version__, jax.devices())" | tee "$work/devices.log"
if [ -n "$quick" ]; then
    step tests 300 "$py" -m pytest -q -p no:cacheprovider -rs -x tests/kernels \
        -k "cudnn or gpu or tpu or dispatch"
    step lstm 300 "$py" -m zoo.bench.lstm_speed --quick --batch 4 --hidden 8 --out "$work"
    step window 300 "$py" -m zoo.bench.window_speed --quick --out "$work"
    step table1 600 "$py" -m zoo.bench.table1 --smoke --no-progress --out "$work/table1"
    step train 300 "$py" -m zoo.bench.train_throughput --quick --out "$work"
else
    step tests 90 "$py" -m pytest -q -p no:cacheprovider -rs tests/kernels \
        tests/test_attention.py tests/test_window_speed.py
    step lstm 60 "$py" -m zoo.bench.lstm_speed --batch 64 --hidden 1024 --lengths 1024 \
        --unroll 1 --repeats 5 --out "$work"
    step window 70 "$py" -m zoo.bench.window_speed --repeats 5 --out "$work"
    step table1 230 "$py" -m zoo.bench.table1 --full --dtype bfloat16 --no-progress \
        --out "$work/table1"
    step train 60 "$py" -m zoo.bench.train_throughput --model transformer-gpt2-small \
        --dtype bfloat16 --out "$work"
fi
{
    echo "# Accelerator run: $("$py" -c 'import jax; print(jax.devices()[0].device_kind)')"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); failed steps: $failed. Commands: benchmarks/accelerator.sh."
    for md in "$work"/*.md "$work"/table1/*.md; do
        [ -f "$md" ] || continue
        echo
        sed 's/^# /## /' "$md"
    done
    echo
    echo "## Tests"
    echo
    echo '```'
    tail -n 30 "$work/tests.log"
    echo '```'
} >"$out/report.md"
tar -czf "$out/results.tar.gz" -C "$work" .
rm -rf "$work"
echo "== report: $out/report.md, everything else: $out/results.tar.gz"
exit "$failed"
