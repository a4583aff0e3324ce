"""``rlx export``: ONNX and jax.export policies that act as the JAX policy does."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import CONFIGS, tiny_overrides
from rlx import cli, runs
from rlx.config import build as build_lib
from rlx.run import driver
from rlx.ship import policy


@pytest.mark.parametrize(
    "name",
    [
        "cartpole.yaml",
        "pendulum.yaml",
        "cartpole_privileged",  # an asymmetric actor-critic: the export reads the actor's inputs
        pytest.param("reach.yaml", marks=pytest.mark.slow),  # an MJX init compile (10 s cold)
    ],
)
def test_onnx_and_jax_exports_match_the_policy(tmp_path, name, capsys):
    pytest.importorskip("onnxruntime")
    overrides = tiny_overrides(str(tmp_path))
    if name == "pendulum.yaml":  # the normalised path too (reach normalises already)
        overrides.append("train.normalize_observations=true")
    if name == "cartpole_privileged":
        name = "cartpole.yaml"
        overrides += ["env.params.observation=positions_privileged",
                      "train.normalize_observations=true"]  # fmt: skip
    config = build_lib.load(Path(CONFIGS) / name, overrides)
    run_dir = tmp_path / "run"
    if name == "reach.yaml":  # an MJX train chunk compiles for a minute: checkpoint the init
        _checkpoint_init(config, run_dir)
    else:
        runs.train(config, run_dir, show_progress=False)
    assert cli.main(["export", str(run_dir), "--format", "onnx"]) == 0
    assert "max abs diff" in capsys.readouterr().out
    spec = json.loads((run_dir / "export" / "policy.onnx.json").read_text())
    assert spec["check"]["observations"] == 1000 and spec["check"]["max_abs_diff"] <= 1e-5
    assert spec["input"]["name"] == "obs" and spec["file"] == "policy.onnx"
    if "positions_privileged" in overrides:  # x and theta; the velocities were the critic's
        assert spec["input"]["shape"] == ["batch", 2]
        assert spec["observation"]["groups"] == [
            {"name": "cart_position", "start": 0, "size": 1},
            {"name": "pole_angle", "start": 1, "size": 1},
        ]
        assert spec["control_period_s"] == pytest.approx(0.02)
        assert spec["sim2real"]["action_delay"] == [0, 0]

    assert cli.main(["export", str(run_dir), "--format", "jax", "--out", str(tmp_path / "j")]) == 0
    from jax import export as jax_export

    exported = jax_export.deserialize((tmp_path / "j" / "policy.jax").read_bytes())
    size = spec["input"]["shape"][1]
    obs = np.random.default_rng(1).normal(size=(7, size)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(exported.call(obs)), np.asarray(policy.load(run_dir)(obs)), atol=1e-6
    )


def _checkpoint_init(config, run_dir):
    """A run directory whose one checkpoint is the learner's initial state."""
    import jax

    from rlx.run import rundir

    program = driver.ppo_program(build_lib.build(config))
    files = rundir.Run(config, "train", run_dir, resume=False)
    state = jax.jit(program.init)(jax.random.key(config.train.seed))
    row = {"chunk": 1, "iteration": 0, "env_steps": 0, "wall_s": 0.0}
    files.write(row, [row], state)
    files.close()


def test_bad_export_input_is_one_line(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a run directory" in err and len(err.splitlines()) == 1
    (tmp_path / "file").write_text("x")
    assert cli.main(["export", str(tmp_path), "--out", str(tmp_path / "file" / "sub")]) == 2
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    "cell",
    ["gru", pytest.param("lstm", marks=pytest.mark.slow)],  # each a train + 2 exports
)
def test_a_recurrent_policy_exports_with_its_memory(tmp_path, cell, capsys):
    """ONNX and jax.export take (obs, memory) and give (action, memory'), as the JAX policy
    does step after step; the GRU run also normalises and has a privileged critic."""
    pytest.importorskip("onnxruntime")
    overrides = [*tiny_overrides(str(tmp_path)), f"network.memory={cell}"]
    if cell == "gru":
        overrides += ["env.params.observation=positions_privileged",
                      "train.normalize_observations=true"]  # fmt: skip
    config = build_lib.load(Path(CONFIGS) / "cartpole_memory.yaml", overrides)
    run_dir = tmp_path / "run"
    runs.train(config, run_dir, show_progress=False)
    with pytest.raises(policy.NotLoadableError, match="keeps a memory"):
        policy.load(run_dir)
    assert cli.main(["export", str(run_dir), "--format", "onnx"]) == 0
    spec = json.loads((run_dir / "export" / "policy.onnx.json").read_text())
    units = 64 * (2 if cell == "lstm" else 1)
    assert spec["memory"]["shape"] == ["batch", units] and spec["memory"]["cell"] == cell
    assert spec["input"]["shape"] == ["batch", 2]  # x and theta only
    assert spec["check"]["observations"] == 1000 and spec["check"]["max_abs_diff"] <= 1e-5
    assert cli.main(["export", str(run_dir), "--format", "jax", "--out", str(tmp_path / "j")]) == 0
    from jax import export as jax_export

    exported = jax_export.deserialize((tmp_path / "j" / "policy.jax").read_bytes())
    step, size = policy.load_step(run_dir)
    assert size == units
    rng = np.random.default_rng(2)
    got_memory = want_memory = np.zeros((3, size), np.float32)
    for _ in range(5):  # the memory carries what the steps before saw
        obs = rng.normal(size=(3, 2)).astype(np.float32)
        got, got_memory = exported.call(obs, got_memory)
        want, want_memory = step(obs, want_memory)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        np.testing.assert_allclose(np.asarray(got_memory), np.asarray(want_memory), atol=1e-6)
    assert float(np.abs(np.asarray(want_memory)).max()) > 0
    assert cli.main(["eval", str(run_dir), "--episodes", "2"]) == 0
