#!/usr/bin/env bash
# On the GPU machine: unpacks diffusers' source (carried as scratch/diffusers-src.tar.xz, made
# from the diffusers checkout: tar -cJf scratch/diffusers-src.tar.xz -C <checkout> src) and
# starts make_components.py in the background (its own process session, so it outlives this
# call while the machine stays warm). device_check.sh waits for it.
# Usage: bash bench/real_width/device_start.sh [work folder, default /tmp/real-width] [arguments
# of make_components.py, e.g. --only vae]
set -euo pipefail
work=${1:-/tmp/real-width}
shift || true
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$work/diffusers"
tar -xJf "$here/../../scratch/diffusers-src.tar.xz" -C "$work/diffusers"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
cp "$here/make_components.py" "$work/make_components.py"
PYTHONPATH="$work/diffusers/src" PYTHONUNBUFFERED=1 setsid nohup \
  bash -c "python3 '$work/make_components.py' --out '$work' $* > '$work/make.log' 2>&1; echo \$? > '$work/make.rc'" \
  </dev/null >/dev/null 2>&1 &
sleep 8
cat "$work/make.log"
