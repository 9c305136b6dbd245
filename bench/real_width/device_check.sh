#!/usr/bin/env bash
# On the GPU machine, under the GPU kit's run-gpu.sh (Deno and the CUDA provider on the PATH):
# waits for make_components.py (device_start.sh), then runs check_components.ts on each
# component with the CUDA provider (TF32 off) and, for resident memory, creates each one's CPU
# session without running it. Logs go to $OUT (or the work folder).
# Usage: bash bench/real_width/device_check.sh [work folder, default /tmp/real-width] [components...]
set -uo pipefail
work=${1:-/tmp/real-width}
shift || true
components=${*:-text_encoder transformer_2b transformer_5b vae}
out=${OUT:-$work}
for _ in $(seq 1 300); do [ -e "$work/make.rc" ] && break; sleep 2; done
cp "$work/make.log" "$out/make.log" 2>/dev/null
cat "$work/make.log"
[ "$(cat "$work/make.rc" 2>/dev/null)" = 0 ] || { echo "device_check: make_components.py failed or is still running"; exit 1; }
check() {
  echo "== $*" | tee -a "$out/check.log"
  timeout 400 deno run -A bench/real_width/check_components.ts --dir "$work" "$@" 2>&1 | tee -a "$out/check.log"
}
for component in $components; do
  [ "$component" = vae ] && continue
  NVIDIA_TF32_OVERRIDE=0 check --component "$component" --provider cuda --runs 2
done
for component in $components; do
  check --component "$component" --provider cpu --no-run
done
if [[ " $components " == *" vae "* ]]; then
  NVIDIA_TF32_OVERRIDE=0 check --component vae --provider cuda --runs 1
fi
grep '^RESULT ' "$out/check.log" > "$out/results.jsonl"
