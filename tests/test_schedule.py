"""``reward.schedule``: scheduled reward params (linear, cosine, step, performance-gated)."""

import json
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CONFIGS, tiny_overrides, whole_and_resumed_rows
from rlx import cli
from rlx.config import build as build_lib
from rlx.rewards import schedule as schedules

CARTPOLE = Path(CONFIGS) / "cartpole.yaml"
SCHEDULE = (
    'reward.schedule={"combine/alive": {"kind": "linear", "start": 0.1, "end": 1.0, '
    '"updates": 3}, "combine/pd_agree": {"kind": "gated", "values": [0.0, 0.5, 1.0], '
    '"thresholds": [2.0, 1e9], "on": "primary_return"}}'
)
WEIGHTS = 'reward.weights={"alive": 1.0, "pd_agree": 0.0}'


def test_each_kind_follows_its_formula():
    u = lambda n: jnp.asarray(n, jnp.int32)
    lin = {"start": 1.0, "end": 3.0, "updates": 4.0}
    assert [float(schedules.value("linear", lin, u(n), None)) for n in (0, 2, 4, 9)] == [
        1.0,
        2.0,
        3.0,
        3.0,
    ]
    cos = schedules.value("cosine", lin, u(2), None)
    np.testing.assert_allclose(float(cos), 2.0, atol=1e-6)  # halfway, by symmetry
    step = {"boundaries": np.asarray([2.0, 5.0]), "values": np.asarray([0.0, 1.0, 2.0])}
    got = [float(schedules.value("step", step, u(n), None)) for n in (0, 1, 2, 4, 5, 100)]
    assert got == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    gated = {"thresholds": np.asarray([1.0]), "values": np.asarray([5.0, 7.0])}
    assert float(schedules.value("gated", gated, u(0), jnp.asarray(1))) == 7.0


def test_the_gate_advances_on_the_episodes_that_ended():
    running = jnp.asarray([2.0, 0.0])
    values = jnp.ones((4, 2))
    done = jnp.asarray([[0, 0], [1, 0], [0, 0], [0, 0]], bool)
    after, total, count = schedules._episodes(running, values, done)
    # env 0: 2 carried + 2 steps ended an episode (4), then 2 steps run on; env 1 ran on.
    assert float(total) == 4.0 and float(count) == 1.0
    assert after.tolist() == [2.0, 4.0]


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_curriculum_resumes_exactly_mid_way(tmp_path):
    overrides = [*tiny_overrides(str(tmp_path)), "run.chunk_iterations=1", WEIGHTS, SCHEDULE]
    config = build_lib.load(CARTPOLE, overrides)
    whole, cut = whole_and_resumed_rows(config, tmp_path)
    assert whole == cut
    alive = [r["schedule/combine/alive"] for r in whole]
    np.testing.assert_allclose(alive, [0.4, 0.7, 1.0, 1.0][: len(alive)], rtol=1e-6)
    assert whole[-1]["schedule/combine/pd_agree/level"] >= 1.0  # episodes of length >= 2 ended


def test_new_schedule_values_recompile_nothing():
    config = build_lib.load(CARTPOLE, [*tiny_overrides("/tmp"), WEIGHTS, SCHEDULE])
    built = build_lib.build(config)
    agent, hparams = built.agent, built.hparams
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, hp):
        return agent.train_step(state, hp)

    state = agent.init(jax.random.key(0), hparams.reward_params)
    values = []
    for end in (1.0, 5.0):
        params = dict(hparams.reward_params)
        params["schedule"] = {
            **params["schedule"],
            "combine/alive": {**params["schedule"]["combine/alive"], "start": jnp.float32(end)},
        }
        _, metrics = step(state, hparams.replace(reward_params=params))
        values.append(float(metrics["schedule/combine/alive"]))
    assert values[0] != values[1]


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ('{"combine/nope": {"kind": "linear"}}', "no scalar reward param there"),
        ('{"combine/alive": {"kind": "step", "values": [1, 2]}}', "one more value than"),
        ('{"combine/alive": {"kind": "gated", "values": [1], "on": "speed"}}', "primary_return or"),
        ('{"combine/alive": {"kind": "warp"}}', "must be one of"),
    ],
)
def test_a_bad_schedule_is_one_line(tmp_path, capsys, schedule, message):
    code = cli.main(
        ["train", str(CARTPOLE), f"reward.schedule={schedule}", "--run-dir", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_a_param_both_scheduled_and_learned_is_a_config_error(tmp_path, capsys):
    path = Path(CONFIGS) / "meta" / "cartpole_anti_pd.yaml"
    schedule = 'reward.schedule={"combine/pd_anti": {"kind": "linear"}}'
    assert cli.main(["meta", str(path), schedule, "--run-dir", str(tmp_path / "r")]) == 2
    assert "scheduled or meta-learned, not both" in capsys.readouterr().err
