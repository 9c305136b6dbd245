#!/usr/bin/env bash
# On the GPU machine, under the GPU kit's run-gpu.sh, after device_start.sh: the VAE's first
# chunk (3 latent frames, 9 frames at 480x720) on the CUDA provider with ONNX Runtime's profile
# (which nodes run where), the same chunk on the CPU provider (difference, time, resident memory
# after a run), and the text encoder run on the CPU provider. Logs go to $OUT.
# Usage: bash bench/real_width/device_extra.sh [work folder, default /tmp/real-width]
set -uo pipefail
work=${1:-/tmp/real-width}
out=${OUT:-$work}
for _ in $(seq 1 300); do [ -e "$work/make.rc" ] && break; sleep 2; done
grep make_components "$work/make.log" | tee "$out/make.log"
[ "$(cat "$work/make.rc" 2>/dev/null)" = 0 ] || { echo "device_extra: make_components.py failed or is still running"; exit 1; }
check() {
  echo "== $*" | tee -a "$out/check.log"
  timeout 300 deno run -A bench/real_width/check_components.ts --dir "$work" "$@" 2>&1 | tee -a "$out/check.log"
}
NVIDIA_TF32_OVERRIDE=0 check --component vae --provider cuda --frames 3 --runs 2 --profile
check --component text_encoder --provider cpu
check --component vae --provider cpu --frames 3
grep '^RESULT ' "$out/check.log" > "$out/results.jsonl"
