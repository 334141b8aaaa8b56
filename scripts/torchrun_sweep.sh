#!/usr/bin/env bash
# One torchrun job per override set, one after another (Hydra multirun and DDP in one process tree
# clash: every DDP rank would run the whole sweep). Each job gets its own sweep directory (sweep_key).
#
#   bash scripts/torchrun_sweep.sh NPROC "SET1" "SET2" ... -- COMMON OVERRIDES...
#   bash scripts/torchrun_sweep.sh 8 "optim.lr=1e-5" "optim.lr=4e-5" -- stage=predictor trainer=ddp name=csi300
#
# Each SET is a space-separated list of overrides. Jobs write outputs/<name>/sweeps/<set>/ (Experiment.sweep)
# and load the experiment's exports (outputs/<name>/tokenizer/) by the weights rule.
# torchrun flags: TORCHRUN_ARGS (default --standalone),
#   e.g. TORCHRUN_ARGS="--nnodes=2 --node_rank=0 --master_addr=host0 --master_port=29500".
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,11p' "$0"; exit 2
fi
nproc=$1; shift
sets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do sets+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
common=("$@")
status=0
for set in "${sets[@]}"; do
  # A directory-safe key that Hydra parses as a plain value: "optim.lr=1e-4 x=2" -> optim.lr-1e-4_x-2
  key=$(echo "$set" | sed 's/=/-/g; s/[^A-Za-z0-9._-]/_/g')
  echo "=== torchrun job: $set"
  # shellcheck disable=SC2086
  if ! torchrun ${TORCHRUN_ARGS:---standalone} --nproc_per_node="$nproc" -m kronos.train \
      "${common[@]}" $set "sweep_key=$key"; then
    echo "job failed: $set" >&2; status=1
  fi
done
exit $status
