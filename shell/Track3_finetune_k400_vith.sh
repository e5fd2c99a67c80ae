#!/usr/bin/env bash
# Fine-tune ViT-H/16 (VideoMAE, Kinetics-400) on each view, rear, dashboard and right (config: configs/finetune/k400_vith.yaml).
# usage: shell/Track3_finetune_k400_vith.sh [DATA_ROOT] [PRETRAINED] [OUT_DIR] [NUM_GPUS] [FOLD]   (or the same names as env vars)
# Checks the data root, the checkpoint and the output folders before torchrun starts (--help: this text).
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set /{s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac
exec "$(dirname "$0")/finetune_views.sh" k400_vith configs/finetune/k400_vith.yaml weights/pretrained/vit_h_k400_videomae.pth "$@"
