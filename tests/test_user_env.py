"""``env.name: path/to/file.py:ClassName``: a user's env from a Python file (rlx.envs.user)."""

import json
from pathlib import Path

import pytest

from conftest import CONFIGS, tiny_overrides
from rlx import cli, runs
from rlx.config import build as build_lib
from rlx.ship import policy

CONFIG = Path(CONFIGS) / "point_mass_user.yaml"
EXAMPLE = Path(CONFIGS) / "code" / "point_mass.py"


def copy(tmp_path: Path, old: str = "", new: str = "") -> Path:
    """The example env's file in ``tmp_path``, with ``old`` replaced by ``new``."""
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / "my_env.py"
    path.write_text(text.replace(old, new, 1))
    return path


def test_the_example_env_trains_and_its_run_restores(tmp_path):
    config = build_lib.load(CONFIG, tiny_overrides(str(tmp_path)))
    assert config.env.name == f"{EXAMPLE.resolve()}:PointMass"  # found next to the config
    assert len(config.env.file_sha256) == 64
    runs.train(config, tmp_path / "run", show_progress=False)
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "reward/at_goal" in rows[-1] and "reward/distance" in rows[-1]
    act = policy.load(tmp_path / "run")  # a fresh build from the run's own config.yaml
    assert act(__import__("numpy").zeros(6, "float32")).shape == (2,)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("class PointMass:", "class Other:", "has no class 'PointMass'"),
        ("@dataclasses.dataclass(frozen=True)\n", "", "PointMass must be a dataclass"),
        ("(frozen=True)", "()", "PointMass must be frozen"),
        ("    def step(self", "    def stop(self", "PointMass lacks step"),
        (
            "key, start_key, goal_key = jax.random.split(key, 3)",
            "key, start_key, goal_key = jax.random.split(key, 2)",
            "reset: {path}:{split_line}: ValueError: not enough values to unpack",
        ),
        (
            "key, start_key, goal_key = jax.random.split(key, 3)",
            "start_key, goal_key = jax.random.split(key, 2)",
            "PointMass.reset keeps the key it was given",
        ),
        ('"at_goal": (', '"at_goals": (', "its terms ['at_goals', 'ctrl_cost', 'distance']"),
        ('"speed": jnp.linalg.norm(velocity)', '"speed": velocity', "signal 'speed' must be one"),
        (
            "            terminated=False,\n",
            '            terminated=False,\n            metrics={"speed": signals["speed"]},\n',
            "must return a state shaped as reset's",
        ),
        (
            "import dataclasses\n",
            "import dataclasses\nraise ImportError('x')\n",
            "{path}:{import_line}: ImportError: x",
        ),
    ],
)
def test_a_bad_user_env_is_one_line(tmp_path, capsys, old, new, message):
    path = copy(tmp_path, old, new)
    run_dir = tmp_path / "run"
    args = ["train", str(CONFIG), f"env.name={path}:PointMass", "--run-dir", str(run_dir)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    lines = EXAMPLE.read_text().splitlines()
    line_of = lambda text: next(i for i, line in enumerate(lines, 1) if text in line)
    message = message.format(
        path=path,
        split_line=line_of("jax.random.split(key, 3)"),
        import_line=line_of("import dataclasses") + 1,  # the raise added after it
    )
    assert message in err and "key 'env.name'" in err and len(err.splitlines()) == 1, err
    assert not run_dir.exists()


def test_resuming_after_the_env_file_changed_is_an_error(tmp_path, capsys):
    path = copy(tmp_path)
    run_dir = tmp_path / "run"
    overrides = [*tiny_overrides(str(tmp_path)), f"env.name={path}:PointMass"]
    runs.train(build_lib.load(CONFIG, overrides), run_dir, show_progress=False, max_chunks=1)
    path.write_text(path.read_text().replace("damping: float = 0.5", "damping: float = 0.6"))
    assert cli.main(["train", "--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "changed since the run started" in err and len(err.splitlines()) == 1, err


def test_a_reset_that_draws_nothing_may_pass_its_key_through(tmp_path):
    # As GridWorld does: the start is fixed and the step's own splits keep the key stream going.
    text = EXAMPLE.read_text()
    draws = [
        "        key, start_key, goal_key = jax.random.split(key, 3)\n",
        "        position = jax.random.uniform(start_key, (2,), minval=-1.0, maxval=1.0)\n",
        "        goal = jax.random.uniform(goal_key, (2,), minval=-1.0, maxval=1.0)\n",
    ]
    assert all(line in text for line in draws)
    text = text.replace(draws[0], "").replace(draws[1], "        position = jnp.zeros(2)\n")
    path = tmp_path / "my_env.py"
    path.write_text(text.replace(draws[2], "        goal = jnp.ones(2) * 0.5\n"))
    config = build_lib.load(CONFIG, [f"env.name={path}:PointMass", *tiny_overrides(str(tmp_path))])
    assert config.env.name == f"{path}:PointMass"
