"""``rlx eval`` and ``rlx.ship.policy``: a trained policy out of a run directory."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import CONFIGS, tiny_overrides
from rlx import cli, runs
from rlx.config import build as build_lib
from rlx.ship import policy


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("policy")
    config = build_lib.load(Path(CONFIGS) / "cartpole.yaml", tiny_overrides(str(root)))
    runs.train(config, root / "run", show_progress=False)
    return root / "run"


def test_eval_reproduces_the_runs_own_last_eval(cartpole_run, capsys):
    assert cli.main(["eval", str(cartpole_run)]) == 0
    out = capsys.readouterr().out
    assert "| return |" in out and "eval.json" in out
    data = json.loads((cartpole_run / "eval.json").read_text())
    last = rows(cartpole_run)[-1]
    assert data["chunk"] == last["chunk"] and data["kind"] == "train"
    for name in ("return", "primary_return", "length", "terms/alive"):
        assert data["episodes"][name]["mean"] == last[f"eval/{name}"], name
    # Each quantity's std is its spread over the episodes run: no larger than half the range
    # (Popoviciu), and large enough that no episode lies more than std * sqrt(n - 1) from the
    # mean (Samuelson). With 2 episodes (the tiny run's eval.num_envs) that pins std to
    # (max - min) / 2: a std over the wrong axis, of the means or of zeros fails, and so does
    # a variance (pd_anti spans -3 to 7 here).
    n = data["episodes_run"]
    for name, s in data["episodes"].items():
        tol = 1e-5 * (1 + abs(s["min"]) + abs(s["max"]))
        assert s["min"] <= s["mean"] <= s["max"], name
        spread = max(s["max"] - s["mean"], s["mean"] - s["min"]) / np.sqrt(n - 1)
        assert spread - tol <= s["std"] <= (s["max"] - s["min"]) / 2 + tol, (name, s)
    assert any(s["max"] > s["min"] for s in data["episodes"].values())  # so some std is > 0


def test_eval_options_change_what_runs(cartpole_run, tmp_path):
    out = tmp_path / "e.json"
    args = ["eval", str(cartpole_run), "--episodes", "3", "--seed", "7", "--stochastic"]
    assert cli.main([*args, "--out", str(out)]) == 0
    first = json.loads(out.read_text())
    assert first["episodes_run"] == 3 and first["seed"] == 7 and first["stochastic"]
    assert cli.main([*args, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["episodes"] == first["episodes"]  # same key, same result
    assert cli.main(["eval", str(cartpole_run), "--checkpoint", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["chunk"] == 1


def test_load_gives_the_mode_action(cartpole_run):
    act = policy.load(cartpole_run)
    restored = policy.restore(cartpole_run)
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    actions = np.asarray(act(obs))
    from rlx.learn import acting

    actor = restored.agent.actor
    train = restored.train
    logits, _ = acting.sample_policy_value(actor, train.params, train.obs_stats, {"obs": obs})
    assert actions.shape == (5,)
    np.testing.assert_array_equal(actions, np.asarray(jax.numpy.argmax(logits, -1)))


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda d: d, [], "not a run directory"),
        (
            lambda d: (d / "config.yaml").write_text("env: {name: cartpole}\n") and d,
            [],
            "no checkpoint",
        ),
        (None, ["--checkpoint", "999"], "no checkpoint 999"),
        (None, ["--member", "1"], "--member picks a population member"),
        (None, ["--out", "/nonexistent/dir/e.json"], "--out"),
        (None, ["--episodes", "0"], "--episodes 0"),
    ],
)
def test_bad_eval_input_is_one_line(cartpole_run, tmp_path, capsys, make, args, message):
    run_dir = cartpole_run if make is None else make(tmp_path)
    before = sorted(p.name for p in Path(run_dir).iterdir())
    assert cli.main(["eval", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in Path(run_dir).iterdir()) == before  # nothing written


def test_a_stochastic_eval_run_is_reproduced_and_differs_from_the_mode(tmp_path):
    overrides = [*tiny_overrides(str(tmp_path)), "eval.deterministic=false"]
    config = build_lib.load(Path(CONFIGS) / "pendulum.yaml", overrides)
    runs.train(config, tmp_path / "run", show_progress=False)
    last = rows(tmp_path / "run")[-1]
    sampled = policy.evaluate(policy.restore(tmp_path / "run"))  # the run's own: sampled
    assert sampled["return"]["mean"] == last["eval/return"]
    mode = policy.evaluate(policy.restore(tmp_path / "run"), stochastic=False)
    assert mode["return"]["mean"] != last["eval/return"]
