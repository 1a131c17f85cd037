#!/usr/bin/env bash
# GPU check for a lent machine (at most ~8 minutes): the training tests on CUDA, training throughput of the
# LibriSpeech recipe configs in fp32 and bf16 (with projected epoch times), the full-pipeline efficiency,
# and CPU/GPU parity. Writes one results file.
# Usage: bash bench/gpu.sh [OUT_DIR]   (default: $OUT if set, else bench/results); needs `make install` first.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
out=${1:-${OUT:-bench/results}}
mkdir -p "$out"
res="$out/gpu-results.md"
status=0
section() { printf '\n## %s\n\n' "$1" >> "$res"; echo "== $1"; }

{
  echo "# bench/gpu.sh $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | sed 's/^/GPU: /'
  "$PY" -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")'
} > "$res" 2>&1

section "tests on CUDA (train.device=auto picks the GPU)"
timeout 180 "$PY" -m pytest -q -x tests/test_train.py tests/test_model.py tests/test_chunking.py \
  tests/test_bundle.py tests/test_featcache.py 2>&1 | tail -3 >> "$res" || status=1

section "training throughput, LibriSpeech recipe configs (python bench/train_speed.py --device cuda)"
timeout 200 "$PY" bench/train_speed.py --device cuda --out "$res" --json "$out/train_speed.json" > /dev/null 2>&1 || status=1

section "full pipeline / bare model, demo config (python bench/pipeline.py --device cuda --utts 600)"
timeout 90 "$PY" bench/pipeline.py --device cuda --utts 600 >> "$res" 2>&1 || status=1

section "CPU/GPU parity (python bench/gpu_parity.py)"
timeout 60 "$PY" bench/gpu_parity.py >> "$res" 2>&1 || status=1

cat "$res"
exit "$status"
