#!/usr/bin/env bash
# Fine-tune ViT-H/16 (VideoMAE, Kinetics-400) on the rear and the dashboard view (config: configs/finetune/k400_vith.yaml).
# usage: shell/Track3_finetune_k400_vith.sh [DATA_ROOT] [PRETRAINED] [OUT_DIR] [NUM_GPUS] [FOLD]   (or the same names as env vars)
set -euo pipefail
exec "$(dirname "$0")/finetune_views.sh" k400_vith configs/finetune/k400_vith.yaml weights/pretrained/vit_h_k400_videomae.pth "$@"
