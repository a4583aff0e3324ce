#!/bin/bash
# Every case of the tune gate (scripts/experiments/tune_gate.py), one process each, in order:
# arms already in docs/experiments/tune_gate.json are kept, a stopped arm resumes from
# runs/tune_gate/<case>/<arm>. Logs: runs/tune_gate/<case>.log. Stops at the first case that
# fails (exit status above 1: an error, not an arm left to resume).
#
#   bash scripts/experiments/tune_gate_all.sh [case ...]
set -u
cd "$(dirname "$0")/../.."
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(walker2d walker2d_expert halfcheetah halfcheetah_expert ant
                                humanoid_poor humanoid_lure)
mkdir -p runs/tune_gate
python=${PYTHON:-.venv/bin/python}
for case in "${cases[@]}"; do
  "$python" scripts/experiments/tune_gate.py --case "$case" >> "runs/tune_gate/$case.log" 2>&1
  status=$?
  echo "$(date -u +%FT%TZ) $case exit $status" | tee -a runs/tune_gate/chain.log
  [ $status -gt 1 ] && exit $status
done
exit 0
