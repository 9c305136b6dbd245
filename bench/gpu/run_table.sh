#!/usr/bin/env bash
# The GPU table's driver, on the GPU machine under the GPU kit (Deno and the CUDA provider on the
# PATH): makes the real-width pipelines, then runs every configuration of diffusers_bench.py and
# cogflow_bench.ts, one process each with its own time limit, appending to $WORK/gpu_table.jsonl.
# A failing or killed configuration leaves a line saying so and the others go on; a configuration
# already in gpu_table.jsonl (or in $DONE_FILE) is skipped, so a stopped run resumes where it was.
#
# One call of the device lasts at most 10 minutes, so the work runs in the background
# (its own process session) and later calls wait for it, each returning in under 9 minutes:
#   bash .gpu-out/final/run-gpu.sh bash bench/gpu/run_table.sh start [stages]   # returns in ~15 s
#   bash .gpu-out/final/run-gpu.sh bash bench/gpu/run_table.sh wait [seconds]   # default 500
#   bash bench/gpu/run_table.sh status | estimate
#   bash .gpu-out/final/run-gpu.sh bash bench/gpu/run_table.sh run [stages]     # foreground
# `wait` and `status` copy gpu_table.jsonl, the logs and the manifests to $OUT (when set).
#
# Stages (default all): smoke (both drivers on the tiny fixture at 64x64x9, 2 steps, into
# $WORK/smoke.jsonl: about 1.5 min, catches a broken script before the real runs), probes
# (bench/hf_gpu_parity.ts and bench/transfer_probe.ts on CUDA, about 2 min), vae_step (the
# whole-video VAE's device peak, bench/gpu/transformer_step_probe.ts), native
# (bench/gpu/native_chain_probe.ts), streamed (weight streaming and the VAE's provider options,
# after make), make (the
# pipeline folders), context (a CUDA context alone: the NVML baseline), diffusers, cogflow (only
# that side), table (both sides, pairs in priority order), all = smoke make context table.
#
# Settings (environment):
#   WORK=/tmp/gpu-table   MODELS="2b 5b"   STEPS=3
#   LAYERS_2B=30 LAYERS_5B=42 T5_LAYERS=24          transformer / text encoder depth made
#   CONFIGS="all_gpu group_offload_tiling sequential_tiling model_offload_tiling model_offload"
#   CONFIGS_5B=<CONFIGS>   EXTRA_COGFLOW=""          e.g. "low_memory budget_tiling" (cogflow only)
#   DIFFUSERS_DTYPE_2B=fp16 DIFFUSERS_DTYPE_5B=bf16 COGFLOW_DTYPE=float16
#   LIMIT_DIFFUSERS=360 LIMIT_COGFLOW=480           seconds per configuration
#   EXTRA_ARGS=""        more arguments for both drivers, e.g. "--frames 25" (a decode at another
#                        frame count: give it its own WORK or table) or, for a check on the CPU with
#                        the tiny fixture, "--height 64 --width 64 --frames 9 --max-sequence-length 16"
#   COGFLOW_PROVIDER=cuda
#   TABLE=$WORK/gpu_table.jsonl   the results file (another one for another frame count, e.g.
#                        TABLE=$WORK/gpu_table_25f.jsonl EXTRA_ARGS="--frames 25")
#   DONE_FILE=<jsonl>   results to skip (e.g. a carried earlier gpu_table.jsonl); RETRY=1 reruns
#                       configurations whose line is not ok
# diffusers' source: scratch/diffusers-src.tar.xz (carry it: it is ignored by git), unpacked to
# $WORK/diffusers, unless `python3 -c "import diffusers"` works already.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
WORK=${WORK:-/tmp/gpu-table}
MODELS=${MODELS:-2b 5b}
STEPS=${STEPS:-3}
LAYERS_2B=${LAYERS_2B:-30}
LAYERS_5B=${LAYERS_5B:-42}
T5_LAYERS=${T5_LAYERS:-24}
CONFIGS=${CONFIGS:-all_gpu group_offload_tiling sequential_tiling model_offload_tiling model_offload}
CONFIGS_5B=${CONFIGS_5B:-$CONFIGS}
EXTRA_COGFLOW=${EXTRA_COGFLOW:-}
DIFFUSERS_DTYPE_2B=${DIFFUSERS_DTYPE_2B:-fp16}
DIFFUSERS_DTYPE_5B=${DIFFUSERS_DTYPE_5B:-bf16}
COGFLOW_DTYPE=${COGFLOW_DTYPE:-float16}
LIMIT_DIFFUSERS=${LIMIT_DIFFUSERS:-360}
LIMIT_COGFLOW=${LIMIT_COGFLOW:-480}
EXTRA_ARGS=${EXTRA_ARGS:-}
COGFLOW_PROVIDER=${COGFLOW_PROVIDER:-cuda}
table=${TABLE:-$WORK/gpu_table.jsonl}
PIPES=$WORK/pipes
SMOKE=0
logs=$WORK/logs

say() { echo "[run_table $(date +%H:%M:%S)] $*"; }

# Rough device seconds per configuration (assumed, not measured: the first run replaces them),
# scaled with the layers made: start-up and load, then the steps, then the decode.
estimate() {
  say "estimates (assumed; STEPS=$STEPS, layers 2b $LAYERS_2B, 5b $LAYERS_5B, text encoder $T5_LAYERS):"
  awk -v s="$STEPS" -v l2="$LAYERS_2B" -v l5="$LAYERS_5B" -v t5="$T5_LAYERS" -v models="$MODELS" \
    -v c2="$CONFIGS" -v c5="$CONFIGS_5B" -v extra="$EXTRA_COGFLOW" 'BEGIN {
    f["2b"] = l2 / 30; f["5b"] = l5 / 42; ft = t5 / 24
    step["2b"] = 1.0; step["5b"] = 2.2; load["2b"] = 1; load["5b"] = 2.5
    split("all_gpu model_offload model_offload_tiling sequential_tiling group_offload_tiling low_memory low_memory_model budget_tiling", names, " ")
    split("1 1.1 1.1 4 1.6 1.6 1.1 1.1", slow, " ")   # step time against all_gpu
    split("8 8 12 40 20 20 12 12", dec, " ")          # diffusers decode s
    for (i in names) { slowOf[names[i]] = slow[i]; decOf[names[i]] = dec[i] }
    printf "  smoke: 90 s; context: 10 s\n"; total = 100
    n = split(models, ms, " ")
    for (m = 1; m <= n; m++) {
      model = ms[m]; x = f[model]
      make = 15 + 25 * ft + 10 * load[model] * x + 8
      printf "  make %s: %d s\n", model, make; total += make
      k = split(model == "5b" ? c5 : c2, cs, " ")
      for (j = 1; j <= k; j++) {
        c = cs[j]
        d = 20 + 15 * (ft + load[model] * x) + s * step[model] * x * slowOf[c] + decOf[c]
        g = 25 + 30 * ft + 12 * load[model] * x + s * 2 * step[model] * x * slowOf[c] + 45
        printf "  %s %-22s diffusers %4d s, cogflow %4d s\n", model, c, d, g; total += d + g
      }
      k = split(extra, cs, " ")
      for (j = 1; j <= k; j++) {
        c = cs[j]; g = 25 + 30 * ft + 12 * load[model] * x + s * 2 * step[model] * x * slowOf[c] + 45
        printf "  %s %-22s cogflow %4d s\n", model, c, g; total += g
      }
    }
    printf "  in all about %.0f min of device time (plus the kit: 5 calls, about 1.2 min)\n", total / 60
  }'
}

# Whether a result for side/model/config is there already (any status; ok only with RETRY=1).
done_already() {
  python3 - "$1" "$2" "$3" "${RETRY:-0}" "$table" "${DONE_FILE:-}" <<'EOF'
import json, sys
side, model, config, retry = sys.argv[1:5]
for path in sys.argv[5:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if (row.get("side"), row.get("model"), row.get("config")) == (side, model, config):
            if retry != "1" or row.get("status") == "ok":
                sys.exit(0)
sys.exit(1)
EOF
}

# Appends a line for a configuration whose process left none (killed at its limit, crashed).
note_missing() {
  local side=$1 model=$2 config=$3 rc=$4 limit=$5
  python3 - "$side" "$model" "$config" "$rc" "$limit" >>"$table" <<'EOF'
import json, sys
side, model, config, rc, limit = sys.argv[1:]
status = "timeout" if rc in ("124", "137") else "crashed"
print(json.dumps({"side": side, "model": model, "config": config, "status": status,
                  "exit_code": int(rc), "limit_s": int(limit)}))
EOF
}

lines() { [ -e "$table" ] && wc -l <"$table" || echo 0; }

# Waits (at most 30 s) until no compute process holds the GPU, so the next idle figure is idle.
gpu_quiet() {
  command -v nvidia-smi >/dev/null || return 0
  for _ in $(seq 1 30); do
    [ -z "$(nvidia-smi --query-compute-apps=pid --format=csv,noheader 2>/dev/null)" ] && return 0
    sleep 1
  done
  say "warning: a compute process still holds the GPU: $(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader)"
}

diffusers_env() {
  if [ -d "$WORK/diffusers/src" ]; then
    export PYTHONPATH="$WORK/diffusers/src${PYTHONPATH:+:$PYTHONPATH}"
    return 0
  fi
  if [ -e "$root/scratch/diffusers-src.tar.xz" ]; then
    mkdir -p "$WORK/diffusers"
    tar -xJf "$root/scratch/diffusers-src.tar.xz" -C "$WORK/diffusers"
    export PYTHONPATH="$WORK/diffusers/src${PYTHONPATH:+:$PYTHONPATH}"
    return 0
  fi
  python3 -c "import diffusers" 2>/dev/null && return 0
  say "no diffusers: carry scratch/diffusers-src.tar.xz (tar -cJf scratch/diffusers-src.tar.xz -C <diffusers checkout> src)"
  return 1
}

layers_of() { [ "$1" = 5b ] && echo "$LAYERS_5B" || echo "$LAYERS_2B"; }
configs_of() { [ "$1" = 5b ] && echo "$CONFIGS_5B" || echo "$CONFIGS"; }

stage_make() {
  diffusers_env || return 1
  for model in $MODELS; do
    say "make $model: $(layers_of "$model") transformer layers, $T5_LAYERS text encoder layers"
    timeout 480 python3 "$here/make_pipeline.py" --out "$WORK/pipes" --variant "$model" \
      --layers "$(layers_of "$model")" --t5-layers "$T5_LAYERS" 2>&1 | tee -a "$logs/make.log" |
      grep --line-buffered -v 'it/s\]'
    [ "${PIPESTATUS[0]}" = 0 ] || say "make $model failed (see logs/make.log)"
  done
  df -h "$WORK" | tail -1
}

run_one() {
  local side=$1 model=$2 config=$3
  local dir=$PIPES/$model log=$logs/$side-$model-$config.log
  [ "$SMOKE" = 1 ] && log=$logs/smoke-$side-$model-$config.log
  if done_already "$side" "$model" "$config"; then
    say "$side $model $config: in the table already, skipped"
    return 0
  fi
  if [ "$config" != context ] && [ "$SMOKE" = 0 ] && [ ! -e "$PIPES/$model.manifest.json" ]; then
    say "$side $model $config: no pipeline $dir (stage make), skipped"
    return 0
  fi
  gpu_quiet
  local before rc started=$SECONDS
  before=$(lines)
  say "$side $model $config: starting (log $log)"
  if [ "$side" = diffusers ]; then
    local dtype=$DIFFUSERS_DTYPE_2B
    [ "$model" = 5b ] && dtype=$DIFFUSERS_DTYPE_5B
    local model_args=(--model "$dir" --label "$model")
    [ "$config" = context ] && model_args=(--label "$model")
    timeout --kill-after=15 "$LIMIT_DIFFUSERS" python3 "$here/diffusers_bench.py" "${model_args[@]}" \
      --config "$config" --steps "$STEPS" --dtype "$dtype" --out "$table" $EXTRA_ARGS >"$log" 2>&1
    rc=$?
  else
    # The driver ends its cogflow process tree itself 20 s before the outer limit.
    timeout --kill-after=15 "$LIMIT_COGFLOW" deno run -A "$root/bench/gpu/cogflow_bench.ts" \
      --model "$dir" --label "$model" --config "$config" --steps "$STEPS" \
      --provider "$COGFLOW_PROVIDER" --dtype "$COGFLOW_DTYPE" --out "$table" \
      --time-limit $((LIMIT_COGFLOW - 20)) $EXTRA_ARGS >"$log" 2>&1
    rc=$?
  fi
  if [ "$(lines)" = "$before" ]; then
    note_missing "$side" "$model" "$config" "$rc" "$([ "$side" = diffusers ] && echo "$LIMIT_DIFFUSERS" || echo "$LIMIT_COGFLOW")"
  fi
  say "$side $model $config: exit $rc in $((SECONDS - started)) s: $(tail -1 "$table" | cut -c1-160)"
}

stage_side() {
  local sides=$1
  diffusers_env || return 1
  for model in $MODELS; do
    local configs
    configs=$(configs_of "$model")
    for config in $configs; do
      for side in $sides; do run_one "$side" "$model" "$config"; done
    done
    if [[ " $sides " == *" cogflow "* ]]; then
      for config in $EXTRA_COGFLOW; do run_one cogflow "$model" "$config"; done
    fi
  done
}

# Both drivers on the tiny fixture, on the GPU: a check of the scripts, not a measurement.
stage_smoke() {
  diffusers_env || return 1
  (
    table=$WORK/smoke.jsonl PIPES=$root/tests/fixtures/tiny-cogvideox-hf SMOKE=1 STEPS=2
    LIMIT_DIFFUSERS=120 LIMIT_COGFLOW=150
    EXTRA_ARGS="--height 64 --width 64 --frames 9 --max-sequence-length 16"
    for config in all_gpu model_offload_tiling sequential_tiling group_offload_tiling; do
      run_one diffusers 2b "$config"
    done
    for config in all_gpu group_offload_tiling; do run_one cogflow 2b "$config"; done
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("smoke:", r.get("side"), r.get("config"), r.get("status"), (r.get("error") or "")[:200])
' "$table"
  )
}

# cogflow alone on the GPU: the tiny pipelines' frames against diffusers' (float32 with TF32 off,
# float16) and the cost of moving a block's activations through run(). Logs in logs/probe-*.log.
stage_probes() {
  NVIDIA_TF32_OVERRIDE=0 timeout 240 deno run -A "$root/bench/hf_gpu_parity.ts" --provider cuda \
    --dtypes float32,float16 --offloads none,sequential >"$logs/probe-parity.log" 2>&1
  say "parity: exit $?: $(grep -E '^\|' "$logs/probe-parity.log" | tr '\n' ' ' | cut -c1-1200)"
  timeout 120 deno run -A "$root/bench/transfer_probe.ts" >"$logs/probe-transfer.log" 2>&1
  say "transfer: exit $?: $(grep -E '^\|' "$logs/probe-transfer.log" | tr '\n' ' ' | cut -c1-1200)"
}

# Device peak (NVML, minus the idle device) of a command, with gpu_sampler.py beside it.
with_device_peak() {
  local samples=$WORK/samples-$1.csv
  shift
  python3 "$here/gpu_sampler.py" --out "$samples" &
  local sampler=$!
  sleep 1
  "$@"
  local rc=$?
  kill "$sampler" 2>/dev/null
  wait "$sampler" 2>/dev/null
  python3 - "$samples" <<'EOF'
import sys
rows = [line.split(",") for line in open(sys.argv[1]) if not line.startswith("#")]
used = [int(r[1]) for r in rows if len(r) == 2]
print(f"device peak {(max(used) - used[0]) / 2**30:.2f} GiB over idle ({len(used)} samples)" if used else "no samples")
EOF
  return $rc
}

# The whole-video VAE decode on CUDA in float16 (a 240x360 tile and a whole 480x720 frame, 13
# latent frames), and the transformer step probe. Logs in logs/probe-*.log.
stage_vae_step() {
  for size in "30 45" "60 90"; do
    set -- $size
    with_device_peak "vae-$1x$2" timeout 200 deno run -A "$root/bench/vae_video_decoder_memory.ts" \
      --providers cuda --dtype float16 --frames 13 --height "$1" --width "$2" --mode video \
      >"$logs/probe-vae-$1x$2.log" 2>&1
    say "vae $1x$2: $(grep -v '^Download' "$logs/probe-vae-$1x$2.log" | tail -2 | tr '\n' ' ' | cut -c1-600)"
  done
  timeout 240 deno run -A "$root/bench/gpu/transformer_step_probe.ts" --provider cuda \
    --dtype float16 --layers 2,8 --profile >"$logs/probe-step.log" 2>&1
  say "step: exit $?: $(grep -v '^Download' "$logs/probe-step.log" | tr '\n' ' ' | cut -c1-2000)"
}

# Part boundaries with the activations left on the device (bench/gpu/native_chain_probe.ts).
stage_native() {
  timeout 200 deno run -A "$root/bench/gpu/native_chain_probe.ts" --provider cuda \
    >"$logs/probe-native.log" 2>&1
  say "native: exit $?: $(grep -v '^Download' "$logs/probe-native.log" | tr '\n' ' ' | cut -c1-1000)"
}

# Weight streaming against all weights resident (bench/gpu/streamed_step_probe.ts, one mode per
# process for each one's device peak) on the made 2b transformer, and the whole-video VAE tile in a
# native session with CUDA provider options (VAE_OPTIONS, one set per word). Needs make.
stage_streamed() {
  local folder=$WORK/pipes/2b/transformer
  for mode in whole streamed prefetch; do
    with_device_peak "step-$mode" timeout 240 deno run -A "$root/bench/gpu/streamed_step_probe.ts" \
      --folder "$folder" --modes "$mode" --dtype float16 >"$logs/probe-streamed-$mode.log" 2>&1
    say "step $mode: $(grep -v '^Download' "$logs/probe-streamed-$mode.log" | tr '\n' ' ' | cut -c1-1500)"
  done
  local options
  for options in ${VAE_OPTIONS:-arena_extend_strategy=kSameAsRequested,cudnn_conv_use_max_workspace=0,cudnn_conv_algo_search=HEURISTIC}; do
    with_device_peak "vae-native" timeout 200 deno run -A "$root/bench/vae_video_decoder_memory.ts" \
      --dtype float16 --frames 13 --height 30 --width 45 --mode video \
      --native-cuda-options "$options" >"$logs/probe-vae-native.log" 2>&1
    say "vae native $options: $(grep -v '^Download' "$logs/probe-vae-native.log" | tail -2 | tr '\n' ' ' | cut -c1-600)"
  done
}

run_stages() {
  mkdir -p "$WORK" "$logs"
  local stages=${*:-all}
  [ "$stages" = all ] && stages="smoke make context table"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader 2>/dev/null
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1
  python3 -c 'import accelerate; print("accelerate", accelerate.__version__)' 2>&1 | tail -1
  deno --version | head -1
  estimate
  for stage in $stages; do
    say "stage $stage"
    case $stage in
      smoke) stage_smoke ;;
      probes) stage_probes ;;
      vae_step) stage_vae_step ;;
      native) stage_native ;;
      streamed) stage_streamed ;;
      make) stage_make ;;
      context) diffusers_env && run_one diffusers none context ;;
      diffusers) stage_side diffusers ;;
      cogflow) stage_side cogflow ;;
      table) stage_side "diffusers cogflow" ;;
      *) say "unknown stage \"$stage\": smoke, probes, vae_step, native, make, context, diffusers, cogflow, table or all" ;;
    esac
  done
  say "stages done: $stages"
}

copy_out() {
  [ -n "${OUT:-}" ] || return 0
  cp "$WORK"/*.jsonl "$table" "$OUT/" 2>/dev/null
  cp "$WORK/run.log" "$OUT/run.log" 2>/dev/null
  cp "$WORK"/pipes/*.manifest.json "$OUT/" 2>/dev/null
  mkdir -p "$OUT/logs" && cp "$logs"/*.log "$OUT/logs/" 2>/dev/null
  true
}

command=${1:-status}
shift || true
case $command in
  start)
    mkdir -p "$WORK" "$logs"
    if [ -e "$WORK/run.pid" ] && kill -0 "$(cat "$WORK/run.pid")" 2>/dev/null; then
      say "already running (pid $(cat "$WORK/run.pid")): use wait"
      exit 0
    fi
    rm -f "$WORK/run.rc"
    # A copy of this script runs, so a new copy of the working tree cannot change it mid-run.
    cp "$here/run_table.sh" "$WORK/run_table.sh"
    setsid nohup bash -c "cd '$root' && bash '$WORK/run_table.sh' run-from '$here' $*; echo \$? > '$WORK/run.rc'" \
      </dev/null >>"$WORK/run.log" 2>&1 &
    echo $! >"$WORK/run.pid"
    sleep 12
    cat "$WORK/run.log"
    copy_out
    ;;
  run-from)
    here=$1
    shift
    root=$(cd "$here/../.." && pwd)
    run_stages "$@"
    ;;
  run)
    run_stages "$@" 2>&1 | tee -a "$WORK/run.log"
    copy_out
    ;;
  wait)
    seconds=${1:-500}
    shown=$(wc -l <"$WORK/run.log" 2>/dev/null || echo 0)
    end=$((SECONDS + seconds))
    while [ $SECONDS -lt $end ] && [ ! -e "$WORK/run.rc" ]; do
      sleep 5
      total=$(wc -l <"$WORK/run.log" 2>/dev/null || echo 0)
      [ "$total" -gt "$shown" ] && sed -n "$((shown + 1)),${total}p" "$WORK/run.log" | grep -v 'it/s\]'
      shown=$total
    done
    if [ -e "$WORK/run.rc" ]; then say "finished, exit $(cat "$WORK/run.rc")"; else say "still running: wait again"; fi
    copy_out
    ;;
  status)
    [ -e "$WORK/run.rc" ] && say "finished, exit $(cat "$WORK/run.rc")" || say "running or not started"
    tail -5 "$WORK/run.log" 2>/dev/null
    [ -e "$table" ] && python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(r.get("side"), r.get("model"), r.get("config"), r.get("status"), "step_s", r.get("step_s"))
' "$table"
    copy_out
    ;;
  estimate) estimate ;;
  *) echo "usage: run_table.sh start|wait [seconds]|run|status|estimate [stages]" >&2; exit 2 ;;
esac
