"""``reward.constraints``: Lagrange multipliers learned by projected dual ascent."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from test_rewards import transition

from conftest import CONFIGS, tiny_overrides, whole_and_resumed_rows
from rlx import cli, runs
from rlx.config import build as build_lib
from rlx.rewards import combine, constraints, weights
from rlx.rewards.base import chain

EVERY_4 = np.zeros((8, 2), bool)
EVERY_4[[3, 7], :] = True  # both envs end an episode every 4 steps


def constrained(statistic, source=("term", "cost")):
    inner = chain(combine.weighted_sum(("cost",), weights.free()))
    return constraints.constrained(inner, {"c": (source, statistic)})


def params(bound, step=0.5, init=0.0, kp=0.0, kd=0.0):
    return {
        "combine": {"cost": 0.0},
        "constraints": {"c": {"bound": bound, "step_size": step, "init": init, "kp": kp, "kd": kd}},
    }


@pytest.mark.parametrize(("statistic", "value"), [("sum", 8.0), ("mean", 2.0)])
def test_the_multiplier_rises_while_violated_and_decays_to_zero_when_slack(statistic, value):
    fn = constrained(statistic)
    state = fn.init(jax.random.key(0), ("cost",), 2)
    violated = transition(terms={"cost": np.full((8, 2), 2.0)}, terminated=EVERY_4, shape=(8, 2))
    reward, state, _ = fn.apply(params(1.0), state, violated, gamma=0.99)
    lam = float(state.multipliers["c"])
    assert float(state.values["c"]) == pytest.approx(value)
    assert lam == pytest.approx(0.5 * (value - 1.0))
    reward, state, _ = fn.apply(params(1.0), state, violated, gamma=0.99)
    assert float(state.multipliers["c"]) == pytest.approx(2 * lam)  # still violated: rises
    np.testing.assert_allclose(np.asarray(reward), -2 * lam * 2.0 / 2, rtol=1e-6)
    slack = transition(terms={"cost": np.zeros((8, 2))}, terminated=EVERY_4, shape=(8, 2))
    for _ in range(20):
        _, state, _ = fn.apply(params(1.0), state, slack, gamma=0.99)
    assert float(state.multipliers["c"]) == 0.0  # projected: never below zero
    metrics = fn.metrics(params(1.0), state)
    assert float(metrics["constraint/c/violation"]) == pytest.approx(-1.0)


def test_no_ended_episode_changes_nothing_and_a_rate_counts_episodes_once():
    fn = constrained("rate", ("signal", "fell"))
    state = fn.init(jax.random.key(0), ("cost",), 2)
    fell = np.zeros((8, 2))
    fell[1:3, 0] = 1.0  # env 0 falls at steps 1 and 2 of its first episode: one event
    batch = transition(
        terms={"cost": np.zeros((8, 2))}, signals={"fell": fell}, terminated=EVERY_4, shape=(8, 2)
    )
    reward, state, _ = fn.apply(params(0.1, init=1.0), state, batch, gamma=0.99)
    assert float(state.values["c"]) == pytest.approx(1 / 4)  # 1 of the 4 ended episodes
    assert np.asarray(reward)[:, 0].tolist() == [0, -1, 0, 0, 0, 0, 0, 0]  # the first step only
    quiet = transition(
        terms={"cost": np.zeros((3, 2))}, signals={"fell": np.zeros((3, 2))}, shape=(3, 2)
    )
    before = float(state.multipliers["c"])
    _, state, _ = fn.apply(params(0.1, init=1.0), state, quiet, gamma=0.99)
    assert float(state.multipliers["c"]) == before and float(state.values["c"]) == 0.25


def test_a_constrained_run_logs_and_resumes_exactly(tmp_path):
    spec = '[{"term": "pd_anti", "statistic": "mean", "bound": -0.5, "step_size": 0.1}]'
    overrides = [
        *tiny_overrides(str(tmp_path)),
        "run.chunk_iterations=1",
        f"reward.constraints={spec}",
    ]
    config = build_lib.load(Path(CONFIGS) / "cartpole.yaml", overrides)
    whole, cut = whole_and_resumed_rows(config, tmp_path)
    assert whole == cut
    assert "constraint/pd_anti/multiplier" in whole[-1]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('[{"bound": 1}]', "name one term or one signal"),
        ('[{"term": "alive", "signal": "cart_position"}]', "name one term or one signal"),
        ('[{"term": "speed"}]', "unknown reward term"),
        ('[{"term": "alive"}, {"term": "alive"}]', "names must be unique"),
        ('[{"term": "alive", "statistic": "max"}]', "must be one of"),
    ],
)
def test_a_bad_constraint_is_one_line(tmp_path, capsys, spec, message):
    code = cli.main(
        [
            "train",
            str(Path(CONFIGS) / "cartpole.yaml"),
            f"reward.constraints={spec}",
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_pid_gains_add_the_latest_violation_and_its_change():
    fn = constrained("mean")
    state = fn.init(jax.random.key(0), ("cost",), 2)
    batch = lambda c: transition(
        terms={"cost": np.full((8, 2), c)}, terminated=EVERY_4, shape=(8, 2)
    )
    p = params(1.0, step=0.1, kp=2.0, kd=1.0)
    _, state, _ = fn.apply(p, state, batch(2.0), gamma=0.99)  # e = 1: I = 0.1
    assert float(fn.metrics(p, state)["constraint/c/multiplier"]) == pytest.approx(0.1 + 2.0 * 1.0)
    _, state, _ = fn.apply(p, state, batch(1.5), gamma=0.99)  # e = 0.5: I = 0.15, de = -0.5
    expected = 0.15 + 2.0 * 0.5 + 1.0 * (0.5 - 1.0)
    assert float(fn.metrics(p, state)["constraint/c/multiplier"]) == pytest.approx(expected)


def test_ppo_reaches_the_constrained_optimum_of_a_bandit(tmp_path):
    """probe/lure: action 1 pays primary 1. "Take it in at most 30% of steps" (the mean of the
    term ``reward`` <= 0.3) has the exact optimum P(action 1) = 0.3, with multiplier 1 (where
    1 - lambda makes the two actions equal). PID dual ascent gets there and stays."""
    spec = [{"name": "c", "term": "reward", "statistic": "mean", "bound": 0.3, "step_size": 0.5}]
    spec[0]["kp"] = 2.0
    overrides = [
        "env.name=probe/lure",
        'reward.weights={"reward": 1.0, "lure": 0.0}',
        f"reward.constraints={json.dumps(spec)}",
        "train.total_steps=81920",
        "train.num_envs=64",
        "train.unroll_length=16",
        "train.num_minibatches=4",
        "train.num_epochs=4",
        "train.normalize_observations=false",
        "network.policy_hidden=[16]",
        "network.value_hidden=[16]",
        "ppo.learning_rate=3e-3",
        "ppo.entropy_cost=0.01",
        "eval.num_envs=2",
        "run.chunk_iterations=4",
        "run.tensorboard=false",
        f"run.root={tmp_path}",
    ]
    config = build_lib.load(Path(CONFIGS) / "cartpole.yaml", overrides)
    runs.train(config, tmp_path / "run", show_progress=False)
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[0], rows[-4:]
    assert first["constraint/c/value"] > 0.6  # unconstrained at first: action 1 mostly
    share = np.mean([r["constraint/c/value"] for r in last])
    multiplier = np.mean([r["constraint/c/multiplier"] for r in last])
    assert abs(share - 0.3) < 0.04, share  # the bound holds, and is not over-satisfied
    assert abs(multiplier - 1.0) < 0.15, multiplier
