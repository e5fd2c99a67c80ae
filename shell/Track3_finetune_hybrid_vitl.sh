#!/usr/bin/env bash
# Fine-tune ViT-L/16 (InternVideo, UnlabeledHybrid + Kinetics-700) on the rear and the dashboard view.
# usage: shell/Track3_finetune_hybrid_vitl.sh [DATA_ROOT] [PRETRAINED] [OUT_DIR] [NUM_GPUS] [FOLD]   (or the same names as env vars)
# Hyperparameters live in the config; extra `key=value` overrides can be given in FINETUNE_ARGS.
set -euo pipefail
CONFIG=configs/finetune/hybrid_vitl.yaml
DATA_ROOT=${1:-${DATA_ROOT:-data/aicity}}
PRETRAINED=${2:-${PRETRAINED:-weights/pretrained/vit_l_hybrid_k700_internvideo.pth}}
OUT_DIR=${3:-${OUT_DIR:-weights/finetuned}}
NUM_GPUS=${4:-${NUM_GPUS:-1}}
FOLD=${5:-${FOLD:-all}}  # all (= -1: train on every A1 driver) or a held-out fold number
case "$FOLD" in all | -1) FOLD=-1 SUFFIX="" ;; *) SUFFIX="_fold${FOLD}" ;; esac
for VIEW in rear dashboard; do
  ${PYTHON:-python} -m torch.distributed.run ${TORCHRUN_ARGS:---standalone} --nproc_per_node "$NUM_GPUS" \
    -m ndar finetune --config "$CONFIG" data.root="$DATA_ROOT" model.pretrained="$PRETRAINED" \
    data.view="$VIEW" data.fold="$FOLD" output="$OUT_DIR/hybrid_vitl_${VIEW}${SUFFIX}" ${FINETUNE_ARGS:-}
done
