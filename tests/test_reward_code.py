"""``reward.code``: user reward functions from a Python file (rlx.rewards.code)."""

import json
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import pytest

from conftest import CONFIGS, tiny_overrides
from rlx import cli, runs
from rlx.config import build as build_lib

CODE_CONFIG = Path(CONFIGS) / "cartpole_code.yaml"
CARTPOLE = Path(CONFIGS) / "cartpole.yaml"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "my_reward.py"
    path.write_text(
        "from rlx.rewards.terms import tolerance\n\n\ndef reward(s, ns, t, p):\n" + body
    )
    return path


def test_new_terms_are_weighted_and_their_params_traced():
    from rlx import config as config_lib

    assert config_lib.load(CODE_CONFIG).reward.code.terms == ()  # filled in when resolved
    built = build_lib.build(build_lib.load(CODE_CONFIG, tiny_overrides("/tmp")))
    assert built.config.reward.code.terms == ("centred", "upright")
    assert len(built.config.reward.code.sha256) == 64
    agent, hparams = built.agent, built.hparams
    assert float(hparams.reward_params["code"]["angle_margin"]) == pytest.approx(0.2)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, hp):
        return agent.train_step(state, hp)

    state = agent.init(jax.random.key(0), hparams.reward_params)
    means = []
    for margin in (0.2, 0.01):
        params = {**hparams.reward_params, "code": {"angle_margin": jnp.float32(margin)}}
        _, metrics = step(state, hparams.replace(reward_params=params))
        means.append(float(metrics["train/reward_mean"]))
    assert means[0] != means[1]  # a narrower margin pays the upright term less


def test_mode_reward_replaces_the_combination(tmp_path):
    path = write(tmp_path, '    return 1.0 - ns["pole_angle"] ** 2\n')
    overrides = [
        *tiny_overrides(str(tmp_path)),
        "reward.weights={}",
        f'reward.code={{"file": "{path}", "mode": "reward"}}',
    ]
    config = build_lib.load(CARTPOLE, overrides)
    runs.train(config, tmp_path / "run", show_progress=False)
    row = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert 0 < row["eval/return"] <= row["eval/length"]  # 1 - angle^2 per step, in (0, 1]


@pytest.mark.parametrize(
    ("body", "extra", "message"),
    [
        (None, {"file": "missing.py"}, "no such file"),
        ('    return {"x": ns["pole_angle"]}\n', {"function": "nope"}, "has no function 'nope'"),
        (
            '    return {"x": ns["pole_angel"]}\n',
            {},
            "my_reward.py:5: KeyError: unknown name 'pole_angel'",
        ),
        ('    return {"x": jnp.zeros(3)}\n', {}, "term 'x' must be one float per step"),
        ('    return {"alive": ns["pole_angle"]}\n', {}, "term 'alive' is the env's already"),
    ],
)
def test_bad_reward_code_is_one_line(tmp_path, capsys, body, extra, message):
    if body is not None:
        body = body.replace("jnp.", "__import__('jax.numpy').numpy.")
    path = write(tmp_path, body or "    return {}\n")
    code = {"file": str(path), **extra}
    if extra.get("file") == "missing.py":
        code["file"] = str(tmp_path / "missing.py")
    args = [
        "train",
        str(CARTPOLE),
        f"reward.code={json.dumps(code)}",
        "--run-dir",
        str(tmp_path / "run"),
    ]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_resuming_after_the_reward_file_changed_is_an_error(tmp_path, capsys):
    path = write(tmp_path, '    return {"x": ns["pole_angle"]}\n')
    run_dir = tmp_path / "run"
    overrides = [
        *tiny_overrides(str(tmp_path)),
        f'reward.code={{"file": "{path}"}}',
        'reward.weights={"alive": 1.0, "x": 0.1}',
    ]
    config = build_lib.load(CARTPOLE, overrides)
    runs.train(config, run_dir, show_progress=False, max_chunks=1)
    path.write_text(path.read_text().replace("pole_angle", "cart_position"))
    assert cli.main(["train", "--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "changed since the run started" in err and len(err.splitlines()) == 1, err


def test_code_terms_are_logged_and_a_constraint_can_bound_one():
    # cartpole_code.yaml's `upright` (in [0, 1], weighted 0.5) bounded at a mean of 0.1 per
    # step: the constraint sees the code's terms, and its statistic is the pooled per-step
    # mean of the episodes that ended, which the term's own episode totals (terms/upright,
    # logged as the env's terms are) and its weighted contribution's also give.
    spec = '[{"term": "upright", "statistic": "mean", "bound": 0.1, "step_size": 1.0}]'
    config = build_lib.load(CODE_CONFIG, [*tiny_overrides("/tmp"), f"reward.constraints={spec}"])
    built = build_lib.build(config)
    agent, hparams = built.agent, built.hparams
    state = agent.init(jax.random.key(0), hparams.reward_params)
    _, metrics = jax.jit(agent.train_chunk, static_argnums=2)(state, hparams, 6)
    episodes = metrics["episode_total/episodes"]
    ended = int(jnp.argmax(episodes > 0))  # the first iteration in which episodes ended
    assert episodes[ended] > 0
    value = metrics["constraint/upright/value"][ended]
    length = metrics["episode_total/length"][ended]
    # the code term's own episode sums (terms/<name>, as the env's) and its contribution's
    expected = metrics["episode_total/terms/upright"][ended] / length
    assert float(value) == pytest.approx(float(expected), rel=1e-4)
    weighted = metrics["episode_total/reward/upright"][ended] / 0.5 / length
    assert float(value) == pytest.approx(float(weighted), rel=1e-4)
    assert float(value) > 0.1  # CartPole starts upright: violated, so the multiplier rises
    assert float(metrics["constraint/upright/multiplier"][ended]) > 0
    # the eval reports the code terms' episode sums too
    evaluated = jax.jit(agent.evaluate)(state, hparams, jax.random.key(1))
    assert 0 < float(evaluated["eval/terms/upright"]) <= float(evaluated["eval/length"])
