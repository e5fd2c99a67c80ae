#!/bin/bash
# The cost of running a main-job stage through its notebook instead of the package: both commands
# only resume a finished run (nothing left to train), so the difference is the kernel start, the
# notebook's imports and its plots. usage: bench/notebook_overhead.sh RUN_DIR (a finished main-job run)
set -euo pipefail
RUN=${1:?usage: bench/notebook_overhead.sh RUN_DIR}
OUT=$(mktemp -d)
export PYTHONPATH=$PWD/src
C=$RUN/configs/heads_tim_k400_vith.yaml
E=$RUN/configs/ensemble.yaml
for i in 1 2; do
  /usr/bin/time -f "package heads %e s" .venv/bin/python -m ndar heads train --config "$C" >/dev/null 2>"$OUT/log"; tail -1 "$OUT/log"
  /usr/bin/time -f "notebook heads %e s" .venv/bin/python -m ndar notebooks --notebook notebooks/10_tim.ipynb --executed "$OUT/tim.ipynb" -p config_path "$C" >/dev/null 2>"$OUT/log"; tail -1 "$OUT/log"
  /usr/bin/time -f "package ensemble %e s" .venv/bin/python -m ndar ensemble --config "$E" >/dev/null 2>"$OUT/log"; tail -1 "$OUT/log"
  /usr/bin/time -f "notebook ensemble %e s" .venv/bin/python -m ndar notebooks --notebook notebooks/30_ensemble.ipynb --executed "$OUT/ens.ipynb" -p config_path "$E" >/dev/null 2>"$OUT/log"; tail -1 "$OUT/log"
done
rm -rf "$OUT"
