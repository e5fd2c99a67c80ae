#!/usr/bin/env bash
# Fine-tune ViT-L/16 (Ego4D verbs) on the rear and the dashboard view (config: configs/finetune/ego_vitl.yaml).
# usage: shell/Track3_finetune_ego_vitl.sh [DATA_ROOT] [PRETRAINED] [OUT_DIR] [NUM_GPUS] [FOLD]   (or the same names as env vars)
set -euo pipefail
exec "$(dirname "$0")/finetune_views.sh" ego_vitl configs/finetune/ego_vitl.yaml weights/pretrained/vit_l_ego4d_verb.pth "$@"
