#!/usr/bin/env bash
# The six feature sets (3 fine-tuned backbones x rear/dashboard), each video decoded once.
# Usage: shell/extract_features.sh [CONFIG] [key=value ...]
#   NPROC=8 shell/extract_features.sh configs/extract/aicity.yaml   # one process per GPU (torchrun)
set -euo pipefail
CONFIG=${1:-configs/extract/aicity.yaml}
shift || true
PYTHON=${PYTHON:-python}
NPROC=${NPROC:-1}
if [ "$NPROC" -gt 1 ]; then
  exec "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" -m ndar extract --config "$CONFIG" "$@"
fi
exec "$PYTHON" -m ndar extract --config "$CONFIG" "$@"
