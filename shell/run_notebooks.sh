#!/usr/bin/env bash
# Execute parameterised notebooks with papermill; executed copies land in OUT/<notebook>/.
# Usage: shell/run_notebooks.sh OUT [NOTEBOOK ...] [-- -p NAME VALUE ...]
#   shell/run_notebooks.sh runs/notebooks notebooks/20_actionformer.ipynb -- -p folds 3
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set /{s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac
OUT=${1:?usage: shell/run_notebooks.sh OUT [NOTEBOOK ...] [-- -p NAME VALUE ...]}
shift
PYTHON=${PYTHON:-python}
NOTEBOOKS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do NOTEBOOKS+=(--notebook "$1"); shift; done
[ "${1:-}" = "--" ] && shift
exec "$PYTHON" -m ndar notebooks --out "$OUT" "${NOTEBOOKS[@]}" "$@"
