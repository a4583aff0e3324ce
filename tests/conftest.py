"""Shared fixtures. Tests import the *installed* rlx (the repo root is not on sys.path)."""

from __future__ import annotations

import os

import jax
import pytest

from rlx import runtime

runtime.configure()

CACHE = os.path.expanduser(os.environ.get("RLX_TEST_JAX_CACHE", "~/.cache/rlx/jax-tests"))
jax.config.update("jax_compilation_cache_dir", CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

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
]


@pytest.fixture(scope="session")
def repo_configs() -> str:
    return CONFIGS


def tiny_overrides(run_root: str) -> list[str]:
    return [*TINY, f"run.root={run_root}", f"run.compilation_cache={CACHE}"]
