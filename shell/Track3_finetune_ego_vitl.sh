#!/usr/bin/env bash
# Fine-tune ViT-L/16 (Ego4D verbs) on each view, rear, dashboard and right (config: configs/finetune/ego_vitl.yaml).
# usage: shell/Track3_finetune_ego_vitl.sh [DATA_ROOT] [PRETRAINED] [OUT_DIR] [NUM_GPUS] [FOLD]   (or the same names as env vars)
# Checks the data root, the checkpoint and the output folders before torchrun starts (--help: this text).
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set /{s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac
exec "$(dirname "$0")/finetune_views.sh" ego_vitl configs/finetune/ego_vitl.yaml weights/pretrained/vit_l_ego4d_verb.pth "$@"
