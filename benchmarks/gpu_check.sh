#!/usr/bin/env bash
# Every GPU check of the pixel path in one prepared run, sized for a lent device machine (under 10 minutes on an
# H100/H200; each step has its own time limit, so a slow one cannot eat the next):
#   1. the GPU tests (kernels vs references, PyTorch CUDA backend, fused path == torch ops, training on CUDA);
#   2. compute-sanitizer memcheck over the kernel tests at small and odd sizes;
#   3. python benchmarks/kernels.py --results (bandwidth vs a device copy, speed-up over the torch chains);
#   4. python benchmarks/latency.py --results for the realtime network and MPRNet at 1080p (with --resume: rows
#      measured before a time limit stay);
#   5. benchmarks/results/gpu_<device>.md: the tests' verdicts and both tables, each with its command.
# Usage on the device machine: bash benchmarks/gpu_check.sh   (logs and copies of the results go to $OUT, default
# runs/gpu_check). Nothing is downloaded: the package is installed with --no-deps over the image's torch.
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 2)" 2> /dev/null \
  || { echo "benchmarks/gpu_check.sh needs a CUDA GPU that torch sees" >&2; exit 2; }
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
started=$(date +%s)
step() { echo "[$(( $(date +%s) - started )) s] $*" | tee -a "$OUT/steps.log"; }

step "install"
python -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/install.log" 2>&1 || step "install failed (see install.log)"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem,power.limit --format=csv > "$OUT/nvidia-smi.csv" 2>&1
device=$(python -c "import torch; print(''.join(c for c in torch.cuda.get_device_name(0).split()[-1].lower() if c.isalnum()))")

step "GPU tests"
timeout 240 python -m pytest -q -m gpu -p no:cacheprovider -rs tests/test_cpp_ext.py tests/test_runtime_gpu.py \
  tests/test_gpu.py > "$OUT/gpu_tests.log" 2>&1
echo "exit status $?" >> "$OUT/gpu_tests.log"

step "compute-sanitizer"
if command -v compute-sanitizer > /dev/null; then
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 86 python -m pytest -q -m gpu -p no:cacheprovider \
    tests/test_cpp_ext.py -k "not 1080 and not 2160 and not nv12" > "$OUT/sanitizer.log" 2>&1
  echo "exit status $? (86: memcheck found errors; 124: time limit)" >> "$OUT/sanitizer.log"
else
  echo "compute-sanitizer is not on this machine" > "$OUT/sanitizer.log"
fi

step "kernel bandwidth"
timeout 90 python benchmarks/kernels.py --results > "$OUT/kernels.log" 2>&1

step "latency"
timeout 150 python benchmarks/latency.py --results --resume --networks realtime --sizes 1080x1920 --budget 1 \
  > "$OUT/latency_realtime.log" 2>&1
timeout 90 python benchmarks/latency.py --results --resume --networks mprnet --sizes 1080x1920 --budget 1 \
  --skip compile > "$OUT/latency_mprnet.log" 2>&1

step "report"
report="benchmarks/results/gpu_${device}.md"
{
  echo "# GPU checks on $(head -2 "$OUT/nvidia-smi.csv" | tail -1 | cut -d, -f1) ($(date -u +%Y-%m-%d))"
  echo
  echo "Command: \`bash benchmarks/gpu_check.sh\` (each step's own command below)."
  echo
  echo "## Tests: \`python -m pytest -q -m gpu tests/test_cpp_ext.py tests/test_runtime_gpu.py tests/test_gpu.py\`"
  echo
  echo '```'; grep -E "passed|failed|error|SKIPPED|exit status" "$OUT/gpu_tests.log" | tail -15; echo '```'
  echo
  echo "## compute-sanitizer memcheck over the kernel tests (small and odd sizes)"
  echo
  echo '```'; grep -E "ERROR SUMMARY|passed|failed|exit status|not on this" "$OUT/sanitizer.log" | tail -5; echo '```'
  echo
  for table in "benchmarks/results/kernels_${device}.md" "benchmarks/results/latency_${device}.md"; do
    [ -f "$table" ] && { sed 's/^# /## /' "$table"; echo; }
  done
} > "$report"
cp benchmarks/results/*_"${device}".* "$OUT/" 2>/dev/null
step "done: $report"
