#!/usr/bin/env bash
# Fine-tune VideoMamba-M/16 (masked pre-training + Kinetics-400, 32 frames) on each view, rear, dashboard and right (config: configs/finetune/videomamba_m.yaml).
# usage: shell/Track3_finetune_videomamba_m.sh [DATA_ROOT] [PRETRAINED] [OUT_DIR] [NUM_GPUS] [FOLD]   (or the same names as env vars)
# Checks the data root, the checkpoint and the output folders before torchrun starts (--help: this text).
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set /{s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac
exec "$(dirname "$0")/finetune_views.sh" videomamba_m configs/finetune/videomamba_m.yaml weights/pretrained/videomamba_m16_k400_mask_ft_f32_res224.pth "$@"
