"""Shared fixtures. Tests import the *installed* rlx (the repo root is not on sys.path)."""

from __future__ import annotations

import os

# The suite is compile-bound (MJX programs, cold cache on CI): XLA's backend at optimisation
# level 1 compiles CartPole's train step about 27% faster and the humanoid's 9% faster, at run
# speeds within 3% (measured here). Set before JAX starts; subprocesses inherit it.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=1".strip()

import jax  # noqa: E402
import pytest

from rlx.core import runtime

runtime.configure()

CACHE = os.path.expanduser(os.environ.get("RLX_TEST_JAX_CACHE", "~/.cache/rlx/jax-tests"))
jax.config.update("jax_compilation_cache_dir", CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

# MJX compiles dominate the suite (30-60 s each, cold). Where another test already compiles
# and runs the same program, a smoke test traces the whole program (shapes, names, dtypes)
# instead of compiling it again:
# - envs whose shipped config runs a full tiny chunk in test_driver (and humanoid_walk/run,
#   humanoid_stand's code and physics with other constants);
TRACE_ONLY_ENVS = {
    "humanoid",
    "humanoid_stand",
    "humanoid_walk",
    "humanoid_run",
    "reach",
    "push",
    "lift",  # test_lift's slow scripted grasp compiles and runs its physics
    "ant_joystick",  # test_joystick steps it and trains a tiny run of its config
}
# - configs that under the tiny overrides build the same programs as another shipped config up
#   to constants (humanoid.yaml: humanoid_cpu.yaml; humanoid_walk/run/stand: the same
#   physics as humanoid_cpu.yaml, whose tasks' terms test_humanoid_tasks.py compiles and runs).
TRACE_ONLY_CONFIGS = {
    "humanoid.yaml",
    "humanoid_walk.yaml",
    "humanoid_run.yaml",
    "humanoid_stand.yaml",  # humanoid_cpu.yaml runs the physics; test_humanoid_tasks the task
    "lift.yaml",  # test_lift.py's slow scripted grasp runs the physics
    "push_near.yaml",  # test_manipulation's push fixture compiles the arm's physics
    "push_arm.yaml",  # the same
    "halfcheetah.yaml",  # test_brax_adapter runs the adapter; test_reward_code a code term
    "ant_joystick.yaml",  # test_joystick trains a tiny run of it, with sim2real on
}

# - shipped configs whose tiny chunk costs 25-65 s cold (DESIGN.md "Tests and time": over about
#   30 s goes to the slow tier): traced in the fast tier, run in full by test_driver's slow
#   test_heavy_shipped_config_runs_a_tiny_chunk. Their physics still compile in the fast tier
#   (test_humanoid_tasks, test_manipulation, test_playground_adapter), and the meta configs
#   on humanoid compile a whole MJX learner there.
HEAVY_CHUNK_CONFIGS = {
    "humanoid_cpu.yaml",  # 64 s
    "push.yaml",  # 33 s
    "playground_cartpole.yaml",  # 26 s
}
TRACE_ONLY_CONFIGS |= HEAVY_CHUNK_CONFIGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")

# Overrides that shrink any shipped config to a seconds-long smoke run.
TINY = [
    "train.total_steps=64",
    "train.num_envs=2",
    "train.unroll_length=8",
    "train.num_minibatches=2",
    "train.num_epochs=1",
    "eval.num_envs=2",
    "eval.every_chunks=1",
    "env.params.episode_length=16",
    "run.chunk_iterations=2",
    "run.tensorboard=false",
    "env.reset_mode=cached",
]


@pytest.fixture(scope="session")
def repo_configs() -> str:
    return CONFIGS


def whole_and_resumed_rows(config, tmp_path) -> tuple[list[dict], list[dict]]:
    """The non-timing metrics rows of ``config`` run whole, and run for 2 chunks then resumed
    (an exact resume makes them equal)."""
    import json

    from rlx import runs
    from rlx.run import driver

    runs.train(config, tmp_path / "whole", show_progress=False)
    runs.train(config, tmp_path / "cut", show_progress=False, max_chunks=2)
    runs.train(config, tmp_path / "cut", resume=True, show_progress=False)
    untimed = lambda r: {k: v for k, v in r.items() if k not in driver.TIMING_KEYS}
    read = lambda d: [
        untimed(json.loads(r)) for r in (tmp_path / d / "metrics.jsonl").read_text().splitlines()
    ]
    return read("whole"), read("cut")


def tiny_overrides(run_root: str) -> list[str]:
    return [*TINY, f"run.root={run_root}", f"run.compilation_cache={CACHE}"]
