"""``parameterization: dynamic``: weights adapted from each objective's improvement rate."""

from pathlib import Path

import chex
import jax
import numpy as np
import pytest
from test_rewards import transition

from conftest import CONFIGS, tiny_overrides, whole_and_resumed_rows
from rlx import cli
from rlx.config import build as build_lib
from rlx.rewards import combine, dynamic, weights
from rlx.rewards.base import chain

EVERY_4 = np.zeros((8, 2), bool)
EVERY_4[[3, 7], :] = True  # both envs end an episode every 4 steps
PENDULUM = Path(CONFIGS) / "pendulum.yaml"


def reward_fn():
    inner = chain(combine.weighted_sum(("gain", "cost"), weights.free()))
    return dynamic.dynamic(inner, ("gain", "cost"), {"gain": 1.0, "cost": -1.0})


def params(temperature=1.0, momentum=0.0, period=1.0):
    knobs = {"temperature": temperature, "momentum": momentum, "period": period, "eps": 1e-3}
    return {"combine": {"gain": 1.0, "cost": -1.0}, "dynamic": knobs}


def batch(gain: float, cost: float):
    terms = {"gain": np.full((8, 2), gain), "cost": np.full((8, 2), cost)}
    return transition(terms=terms, terminated=EVERY_4, shape=(8, 2))


def test_the_objective_that_improves_least_gets_more_weight():
    fn = reward_fn()
    state = fn.init(jax.random.key(0), ("gain", "cost"), 2)
    # Episode sums (signed): gain 4 then 8 (+100%), -cost -8 then -8 (no improvement).
    _, state, _ = fn.apply(params(), state, batch(1.0, 2.0), gamma=0.99)
    np.testing.assert_allclose(state.multipliers, [1.0, 1.0])  # one period: nothing to compare
    reward, state, _ = fn.apply(params(), state, batch(2.0, 2.0), gamma=0.99)
    improvement = np.array([(8 - 4) / (4 + 1e-3), 0.0])
    expected = 2 * np.exp(-improvement) / np.exp(-improvement).sum()
    np.testing.assert_allclose(state.multipliers, expected, rtol=1e-5)
    assert state.multipliers[1] > 1 > state.multipliers[0]
    np.testing.assert_allclose(np.asarray(reward), 2.0 - 2.0, atol=1e-6)  # used from the next
    assert float(fn.metrics(params(), state)["dynamic/cost"]) == pytest.approx(expected[1])
    reward, state, _ = fn.apply(params(), state, batch(2.0, 2.0), gamma=0.99)
    np.testing.assert_allclose(np.asarray(reward), expected[0] * 2.0 - expected[1] * 2.0, rtol=1e-5)


def test_a_period_without_an_ended_episode_changes_nothing():
    fn = reward_fn()
    state = fn.init(jax.random.key(0), ("gain", "cost"), 2)
    for gain in (1.0, 2.0):
        _, state, _ = fn.apply(params(), state, batch(gain, 2.0), gamma=0.99)
    moved = np.asarray(state.multipliers)
    assert not np.allclose(moved, 1.0)
    quiet = transition(
        terms={"gain": np.full((8, 2), 9.0), "cost": np.full((8, 2), 9.0)}, shape=(8, 2)
    )
    for _ in range(3):  # three period ends, no episode ended: not a reset to 1
        _, state, _ = fn.apply(params(), state, quiet, gamma=0.99)
    np.testing.assert_allclose(state.multipliers, moved)


def test_code_terms_can_be_objectives():
    overrides = [*tiny_overrides("/tmp"), "reward.parameterization=dynamic"]
    built = build_lib.build(build_lib.load(Path(CONFIGS) / "cartpole_code.yaml", overrides))
    assert "upright" in built.config.reward.dynamic.objectives
    agent, hparams = built.agent, built.hparams
    state = jax.eval_shape(agent.init, jax.random.key(0), hparams.reward_params)
    _, metrics = jax.eval_shape(agent.train_step, state, hparams)
    assert "dynamic/upright" in metrics


def test_a_high_temperature_gives_back_the_fixed_weights_and_no_change_recompiles():
    fn = reward_fn()
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def apply(p, state, t):
        return fn.apply(p, state, t, gamma=0.99)[1]

    out = {}
    for temperature in (1.0, 1e6):
        state = fn.init(jax.random.key(0), ("gain", "cost"), 2)
        for gain in (1.0, 2.0, 3.0):
            state = apply(params(temperature), state, batch(gain, 2.0))
        out[temperature] = np.asarray(state.multipliers)
    np.testing.assert_allclose(out[1e6], [1.0, 1.0], atol=1e-5)
    assert out[1.0][1] > 1.05


def test_a_dynamic_run_logs_its_multipliers_and_resumes_exactly(tmp_path):
    overrides = [
        *tiny_overrides(str(tmp_path)),
        "run.chunk_iterations=1",
        "reward.parameterization=dynamic",
        'reward.dynamic={"period": 1}',
    ]
    config = build_lib.load(PENDULUM, overrides)
    assert config.reward.dynamic.objectives == ("angle_cost", "velocity_cost", "ctrl_cost")
    whole, cut = whole_and_resumed_rows(config, tmp_path)
    assert whole == cut
    last = whole[-1]
    total = sum(last[f"dynamic/{n}"] for n in config.reward.dynamic.objectives)
    assert total == pytest.approx(3.0, rel=1e-5)  # multipliers average 1
    assert any(abs(last[f"dynamic/{n}"] - 1.0) > 1e-4 for n in config.reward.dynamic.objectives)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (['reward.dynamic={"period": 5}'], "set reward.parameterization: dynamic"),
        (["reward.parameterization=dynamic", "reward.combine=geometric_mean"], "combine: sum"),
        (
            ["reward.parameterization=dynamic", 'reward.dynamic={"objectives": ["ctrl_cost"]}'],
            "two or more distinct terms",
        ),
        (
            [
                "reward.parameterization=dynamic",
                "reward.weights.ctrl_cost=0",
                'reward.dynamic={"objectives": ["angle_cost", "ctrl_cost"]}',
            ],
            "'ctrl_cost' needs a nonzero weight",
        ),
        (["reward.parameterization=dynamic", 'reward.dynamic={"momentum": 1}'], "must be < 1"),
    ],
)
def test_a_bad_dynamic_setting_is_one_line(tmp_path, capsys, extra, message):
    args = ["train", str(PENDULUM), *extra, "--run-dir", str(tmp_path / "run")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()
