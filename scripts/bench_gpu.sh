#!/usr/bin/env bash
# The GPU figures of issue 18 in one call (about 7 minutes on a GPU): rlx's MJX humanoid train
# steps/s at 2048 and 8192 envs, bench_vs_brax.py --gpu with one seed each, and a small bilevel
# subset (scripts/bench_gpu.py says what each part runs). For the device machine, whose image has
# JAX with CUDA but not brax, mujoco, mujoco-mjx or tensorboardX:
#
#   here, once:   bash scripts/bench_gpu.sh --fetch-wheels     # into .whl/ (git-ignored, ~19 MB)
#   there:        bash scripts/bench_gpu.sh                    # carry .whl; figures into $OUT
#
# rlx goes in with --no-deps and the carried wheels, never constraints.txt (JAX there is its own).
set -u
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fetch-wheels" ]; then
  grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
  mkdir -p .whl
  for spec in brax==0.14.2 mujoco==4.0.0 mujoco-core==4.0.0 mujoco-mjx==3.17.0 \
      tensorboardX==2.6.5 jaxopt==0.8.5 ml-collections==1.1.0 trimesh==5.2.0 setuptools==80.9.0; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$spec" || exit 1
  done
  du -sh .whl
  exit 0
fi
OUT=${OUT:-/tmp/rlx-gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-deps --no-build-isolation --no-cache-dir --target /tmp/rlx . \
  > "$OUT/install.log" 2>&1 || { tail -20 "$OUT/install.log"; exit 1; }
export PYTHONPATH=/tmp/rlx:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl
python3 -c "import rlx, rlx.envs, brax, mujoco.mjx; print('rlx', rlx.__file__)" || exit 1
python3 scripts/bench_gpu.py --out "$OUT" "$@"
