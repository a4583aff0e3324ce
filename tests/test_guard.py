"""The numerical guard: a run that goes non-finite stops at that chunk with status `diverged`
and exit 3, says where and why in one line, keeps its last finite checkpoint, and writes only
valid JSON."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CACHE
from rlx.cli import main
from rlx.config import build as build_lib
from rlx.run import meta_run
from rlx.run.checkpoint import Checkpointer

SMALL = [
    "train.num_envs=8",
    "train.unroll_length=16",
    "train.num_minibatches=2",
    "train.num_epochs=1",
    "run.chunk_iterations=2",
    "eval.num_envs=2",
    "run.tensorboard=false",
    f"run.compilation_cache={CACHE}",
]


def strict_rows(path) -> list[dict]:
    """metrics.jsonl rows, refusing NaN and Infinity (not JSON)."""

    def refuse(name):
        raise ValueError(f"{path}: {name} is not valid JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_an_overflowing_reward_weight_diverges_in_the_first_chunk(tmp_path, repo_configs, capsys):
    run_dir = tmp_path / "run"
    code = main(
        ["train", f"{repo_configs}/cartpole.yaml", "reward.weights.alive=3e38",
         "train.total_steps=1024", *SMALL, "--run-dir", str(run_dir), "--no-progress"]
    )  # fmt: skip
    assert code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "diverged at chunk 1" in err[0] and "reward/alive" in err[0]
    summary = json.loads((run_dir / "summary.json").read_text(), parse_constant=float)
    assert summary["status"] == "diverged" and summary["diverged"]["last_checkpoint"] is None
    assert "params" in summary["diverged"]["quantities"]
    (row,) = strict_rows(run_dir / "metrics.jsonl")
    assert row["reward/alive"] is None and "reward/alive" in row["nonfinite"]
    assert row["terms/alive"] is not None  # the unweighted term stayed finite
    assert not list((run_dir / "checkpoints").iterdir())  # nothing non-finite was saved


@pytest.mark.slow  # 21 s cold; the plain run's and the population's guard tests stay fast
def test_a_meta_run_that_diverges_later_keeps_its_last_finite_checkpoint(
    tmp_path, repo_configs, capsys
):
    run_dir = tmp_path / "run"
    overrides = ["meta.outer_learning_rate=1e38", "meta.warmup=4", "train.total_steps=1536"]
    code = main(
        ["meta", f"{repo_configs}/meta/cartpole_anti_pd.yaml", *overrides, *SMALL,
         "--run-dir", str(run_dir), "--no-progress"]
    )  # fmt: skip
    assert code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "diverged at chunk 3" in err[0] and "(chunk 2) is kept" in err[0]
    rows = strict_rows(run_dir / "metrics.jsonl")
    assert [r["chunk"] for r in rows] == [1, 2, 3] and "nonfinite" not in rows[1]
    config = build_lib.load(run_dir / "config.yaml")
    program = meta_run.meta_program(build_lib.build(config, meta=True))
    checkpointer = Checkpointer(run_dir / "checkpoints")
    state, record = checkpointer.restore(jax.eval_shape(program.init, jax.random.key(0)))
    checkpointer.close()
    assert record["chunk"] == 2
    for leaf in jax.tree.leaves((state.train.params, state.phi)):
        assert np.all(np.isfinite(leaf))
    # As the line says: change the setting in config.yaml and go on from the kept checkpoint.
    config_file = run_dir / "config.yaml"
    config_file.write_text(config_file.read_text().replace("1.0e+38", "0.01"))
    assert main(["meta", "--resume", str(run_dir), "--no-progress", "--allow-config-change"]) == 0
    chunks = [r["chunk"] for r in strict_rows(run_dir / "metrics.jsonl")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and chunks == list(range(1, summary["chunks"] + 1))
    assert len(chunks) > 3  # the diverged chunk 3 was run again, finite now, and the rest
    assert list(summary["config_changes"][0]["changed"]) == ["meta.outer_learning_rate"]


def test_a_population_replaces_a_non_finite_member_and_diverges_only_when_all_are():
    from test_meta import lure_meta

    from rlx.run import driver

    pop, hps = lure_meta("population")
    state = jax.jit(pop.init)(jax.random.key(0), hps)
    step = jax.jit(pop.step)

    def poisoned(members):
        params = jax.tree.map(lambda x: x.at[members].set(jnp.nan), state.train.params)
        return state.replace(train=state.train.replace(params=params))

    def flagged(metrics):
        return driver.nonfinite_quantities({k: np.asarray(v)[None] for k, v in metrics.items()})

    after, metrics = step(poisoned(np.array([1])), hps)
    assert float(metrics["meta/nonfinite_members"]) == 1
    assert flagged(metrics) == []  # one bad member is not divergence
    for leaf in jax.tree.leaves(after.train.params):  # it was replaced by a finite copy
        assert np.all(np.isfinite(leaf))
    assert np.all(np.isfinite(np.asarray(after.fitness)) | (np.asarray(after.fitness) == -np.inf))
    after, metrics = step(poisoned(np.arange(4)), hps)
    assert float(metrics["meta/nonfinite_members"]) == 4
    assert "params" in flagged(metrics)
