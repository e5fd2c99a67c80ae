#!/usr/bin/env bash
# Shared by the three Track3_finetune_*.sh scripts: fine-tune one track on the rear and the
# dashboard view with torchrun + `python -m ndar finetune`. Hyperparameters live in the config.
# usage: shell/finetune_views.sh TRACK CONFIG DEFAULT_PRETRAINED [DATA_ROOT] [PRETRAINED] [OUT_DIR] [NUM_GPUS] [FOLD]
#   (the last five also as env vars; FOLD: all (= -1, train on every A1 driver) or a held-out fold)
set -euo pipefail
TRACK=$1 CONFIG=$2 DEFAULT_PRETRAINED=$3
shift 3
DATA_ROOT=${1:-${DATA_ROOT:-data/aicity}}
PRETRAINED=${2:-${PRETRAINED:-$DEFAULT_PRETRAINED}}
OUT_DIR=${3:-${OUT_DIR:-weights/finetuned}}
NUM_GPUS=${4:-${NUM_GPUS:-1}}
FOLD=${5:-${FOLD:-all}}
case "$FOLD" in all | -1) FOLD=-1 SUFFIX="" ;; *) SUFFIX="_fold${FOLD}" ;; esac
for VIEW in rear dashboard; do
  ${PYTHON:-python} -m torch.distributed.run ${TORCHRUN_ARGS:---standalone} --nproc_per_node "$NUM_GPUS" \
    -m ndar finetune --config "$CONFIG" data.root="$DATA_ROOT" model.pretrained="$PRETRAINED" \
    data.view="$VIEW" data.fold="$FOLD" output="$OUT_DIR/${TRACK}_${VIEW}${SUFFIX}" ${FINETUNE_ARGS:-}
done
