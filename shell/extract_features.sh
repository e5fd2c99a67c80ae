#!/usr/bin/env bash
# The feature sets (fine-tuned backbones x views; nine with configs/extract/aicity.yaml), each video decoded once.
# usage: shell/extract_features.sh [CONFIG] [key=value ...]
#   NPROC=8 shell/extract_features.sh configs/extract/aicity.yaml   # one process per GPU (torchrun)
# The config, its data root and model folders and the output folder are checked before starting.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set /{s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac
CONFIG=${1:-configs/extract/aicity.yaml}
shift || true
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-1}
"$PYTHON" -m ndar.utils.preflight extract --config "$CONFIG" "$@"
if [ "$NPROC" -gt 1 ]; then
  exec "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" -m ndar extract --config "$CONFIG" "$@"
fi
exec "$PYTHON" -m ndar extract --config "$CONFIG" "$@"
