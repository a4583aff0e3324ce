"""``rlx render``: an mp4 of a run's policy, in a subprocess (GL is chosen before mujoco loads)."""

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import CONFIGS, tiny_overrides
from rlx import build as build_lib
from rlx import driver, rundir


def _checkpoint_init(name: str, run_dir: Path, root: Path) -> None:
    """A run directory whose one checkpoint is the learner's initial state (no train compile)."""
    config = build_lib.load(Path(CONFIGS) / name, tiny_overrides(str(root)))
    program = driver.ppo_program(build_lib.build(config))
    files = rundir.Run(config, "train", run_dir, resume=False)
    state = jax.jit(program.init)(jax.random.key(config.train.seed))
    files.write({"chunk": 1, "iteration": 0, "env_steps": 0, "wall_s": 0.0}, state)
    files.close()


def rlx(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "rlx", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def gl():
    pytest.importorskip("imageio_ffmpeg")
    from rlx import render

    try:  # in a subprocess: this process may have loaded mujoco already
        return render.choose_gl()
    except render.RenderError as error:
        pytest.skip(str(error))


def test_render_writes_the_episodes_frames(tmp_path, gl):
    run_dir = tmp_path / "run"
    _checkpoint_init("reach.yaml", run_dir, tmp_path)
    out = tmp_path / "video.mp4"
    done = rlx(
        "render",
        str(run_dir),
        "--episodes",
        "2",
        "--width",
        "64",
        "--height",
        "48",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    from rlx import render

    frames, meta = render.read_video(out)
    config = build_lib.load(Path(CONFIGS) / "reach.yaml", tiny_overrides(str(tmp_path)))
    episode = build_lib.build(config).env.episode_length
    assert meta["fps"] > 0 and frames.shape == (
        2 * episode,
        48 + 16,
        64,
        3,
    )  # frame over its strip of terms
    scene = frames[:, :48].astype(int)
    assert np.abs(scene[1:] - scene[:-1]).max() > 0  # the arm moves
    assert f"{2 * episode} frames" in done.stdout
    done = rlx("render", str(run_dir), "--camera", "nope", "--out", str(tmp_path / "c.mp4"))
    assert done.returncode == 2 and "--camera 'nope'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "c.mp4").exists()


def test_render_refuses_what_it_cannot_draw(tmp_path, gl):
    run_dir = tmp_path / "cartpole"
    _checkpoint_init("cartpole.yaml", run_dir, tmp_path)
    done = rlx("render", str(run_dir), "--out", str(tmp_path / "v.mp4"))
    assert done.returncode == 2 and "has no renderer" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "v.mp4").exists()
    done = rlx("render", str(tmp_path / "nothing"))
    assert done.returncode == 2 and "not a file in an existing directory" in done.stderr
