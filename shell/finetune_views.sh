#!/usr/bin/env bash
# Shared by the three Track3_finetune_*.sh scripts: fine-tune one track on each view (rear,
# dashboard, right) with torchrun + `python -m ndar finetune`. Hyperparameters live in the config.
# usage: shell/finetune_views.sh TRACK CONFIG DEFAULT_PRETRAINED [DATA_ROOT] [PRETRAINED] [OUT_DIR] [NUM_GPUS] [FOLD]
#   (the last five also as env vars; FOLD: all (= -1, train on every A1 driver) or a held-out fold;
#   VIEWS="rear dashboard" skips the right-side window, which the measured recipe includes: docs/finetune.md)
# The data root, the checkpoint and the output folders are checked before torchrun starts; a view
# that fails leaves no output folder behind unless it holds checkpoints to resume from.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set /{s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac
TRACK=${1:?usage: shell/finetune_views.sh TRACK CONFIG DEFAULT_PRETRAINED [DATA_ROOT] [PRETRAINED] [OUT_DIR] [NUM_GPUS] [FOLD]}
CONFIG=${2:?missing CONFIG} DEFAULT_PRETRAINED=${3:?missing DEFAULT_PRETRAINED}
shift 3
DATA_ROOT=${1:-${DATA_ROOT:-data/aicity}}
PRETRAINED=${2:-${PRETRAINED:-$DEFAULT_PRETRAINED}}
OUT_DIR=${3:-${OUT_DIR:-weights/finetuned}}
NUM_GPUS=${4:-${NUM_GPUS:-1}}
FOLD=${5:-${FOLD:-all}}
PY=${PYTHON:-python}
VIEWS=${VIEWS-rear dashboard right}
[ -n "${VIEWS// /}" ] || { echo "VIEWS: empty; expected one or more of: rear dashboard right" >&2; exit 2; }
case "$FOLD" in all) FOLD=-1 ;; esac
# folder names come from ndar.layout, the one place they are spelled
model_dir() { "$PY" -m ndar layout finetune-dir --root "$OUT_DIR" --track "$TRACK" --view "$1" --fold "$FOLD"; }
OUTS=()
for VIEW in $VIEWS; do OUTS+=(--out "$(model_dir "$VIEW")"); done
"$PY" -m ndar.utils.preflight finetune --data-root "$DATA_ROOT" --pretrained "$PRETRAINED" "${OUTS[@]}"
for VIEW in $VIEWS; do
  OUT=$(model_dir "$VIEW")
  "$PY" -m torch.distributed.run ${TORCHRUN_ARGS:---standalone} --nproc_per_node "$NUM_GPUS" \
    -m ndar finetune --config "$CONFIG" data.root="$DATA_ROOT" model.pretrained="$PRETRAINED" \
    data.view="$VIEW" data.fold="$FOLD" output="$OUT" ${FINETUNE_ARGS:-} ||
    { "$PY" -m ndar.utils.preflight forget "$OUT"; exit 1; }
done
