#!/usr/bin/env bash
# Wall time of the fast test suite on clean clones with cold caches, two revisions alternated.
#
#   scripts/time_suite.sh BASE_REV NEW_REV [ROUNDS]      (default 2 rounds: A B A B)
#
# Each revision is cloned from this repo and installed (non-editable, no deps) into a copy of
# .venv; each run gets a fresh HOME and compile cache, and runs the README's `pytest` there
# (`python -P` keeps the clone's source tree off sys.path, as CI's installed package does).
# Prints one line per run and the ratio NEW / BASE of the summed wall times; writes
# /tmp/rlx-time-suite/results.txt.
set -euo pipefail
BASE=$1 NEW=$2 ROUNDS=${3:-2}
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=/tmp/rlx-time-suite
rm -rf "$WORK" && mkdir -p "$WORK"
for rev in "$BASE" "$NEW"; do
  git clone -q "$REPO" "$WORK/clone_$rev" && git -C "$WORK/clone_$rev" checkout -q "$rev"
  cp -a "$REPO/.venv" "$WORK/venv_$rev"
  site="$WORK/venv_$rev/lib/python3.11/site-packages"
  rm -rf "$site"/__editable__*rlx* "$site"/rlx-*.dist-info "$site"/rlx
  "$WORK/venv_$rev/bin/python" -m pip install -q --no-deps "$WORK/clone_$rev"
done
declare -A total=([$BASE]=0 [$NEW]=0)
for round in $(seq "$ROUNDS"); do
  for rev in "$BASE" "$NEW"; do
    home="$WORK/home_${rev}_$round" && mkdir -p "$home"
    start=$(date +%s.%N)
    (cd "$WORK/clone_$rev" && HOME=$home RLX_TEST_JAX_CACHE=$home/jax-tests \
      "$WORK/venv_$rev/bin/python" -P -m pytest -q -p no:cacheprovider) \
      > "$WORK/log_${rev}_$round.txt" 2>&1 || echo "tests failed: $WORK/log_${rev}_$round.txt"
    wall=$(echo "$(date +%s.%N) - $start" | bc)
    total[$rev]=$(echo "${total[$rev]} + $wall" | bc)
    echo "round $round $rev: ${wall}s; $(tail -1 "$WORK/log_${rev}_$round.txt")" \
      | tee -a "$WORK/results.txt"
  done
done
echo "ratio $NEW / $BASE: $(echo "scale=3; ${total[$NEW]} / ${total[$BASE]}" | bc)" \
  | tee -a "$WORK/results.txt"
