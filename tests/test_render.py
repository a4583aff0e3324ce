"""``rlx render``: an mp4 of a run's policy, in a subprocess (GL is chosen before mujoco loads)."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import CONFIGS, tiny_overrides
from rlx import envs
from rlx.config import build as build_lib
from rlx.run import driver, rundir
from rlx.ship import policy, render


def _checkpoint_init(name: str, run_dir: Path, root: Path, extra=()):
    """A run directory whose one checkpoint is the learner's initial state (no train compile);
    returns its config."""
    config = build_lib.load(Path(CONFIGS) / name, [*tiny_overrides(str(root)), *extra])
    program = driver.ppo_program(build_lib.build(config))
    files = rundir.Run(config, "train", run_dir, resume=False)
    state = jax.jit(program.init)(jax.random.key(config.train.seed))
    row = {"chunk": 1, "iteration": 0, "env_steps": 0, "wall_s": 0.0}
    files.write(row, [row], state)
    files.close()
    return config


def rlx(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "rlx", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def gl():
    pytest.importorskip("imageio_ffmpeg")
    from rlx.ship import render

    try:  # in a subprocess: this process may have loaded mujoco already
        return render.choose_gl()
    except render.RenderError as error:
        pytest.skip(str(error))


@pytest.mark.slow  # two renders of reach in fresh processes (27 s cold)
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
    from rlx.ship import render

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
    assert scene.mean() > 60 and scene.std() > 10  # a lit floor, not a black background
    assert f"{2 * episode} frames" in done.stdout
    done = rlx("render", str(run_dir), "--camera", "nope", "--out", str(tmp_path / "c.mp4"))
    assert done.returncode == 2 and "--camera 'nope'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "c.mp4").exists()


@pytest.mark.slow  # a Brax-MJX and a Playground env's init compile and render (60 s cold)
@pytest.mark.parametrize(
    ("name", "extra", "needs"),
    [
        ("meta/hopper_alive.yaml", ["env.params.backend=mjx"], "brax"),
        ("playground_cartpole.yaml", [], "mujoco_playground"),
    ],
)
def test_render_draws_brax_mjx_and_playground_envs(tmp_path, gl, name, extra, needs):
    pytest.importorskip(needs)
    config = _checkpoint_init(name, tmp_path / "run", tmp_path, extra)
    out = tmp_path / "video.mp4"
    done = rlx(
        "render", str(tmp_path / "run"), "--width", "64", "--height", "48", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    from rlx.ship import render

    frames, _ = render.read_video(out)
    episode = build_lib.build(config).env.episode_length
    assert frames.shape == (episode, 48 + 16, 64, 3)  # --episodes 1
    scene = frames[:, :48].astype(int)
    assert scene.std() > 10  # a lit scene, not a blank frame
    assert np.abs(scene[1:] - scene[:-1]).max() > 0  # the body moves


def test_render_refuses_what_it_cannot_draw(tmp_path, gl):
    run_dir = tmp_path / "cartpole"
    _checkpoint_init("cartpole.yaml", run_dir, tmp_path)
    done = rlx("render", str(run_dir), "--out", str(tmp_path / "v.mp4"))
    assert done.returncode == 2 and "has no renderer" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "v.mp4").exists()
    done = rlx("render", str(tmp_path / "nothing"))
    assert done.returncode == 2 and "not a run directory" in done.stderr
    done = rlx("render", str(run_dir), "--out", str(tmp_path / "no" / "v.mp4"))
    assert done.returncode == 2 and "not a file in an existing directory" in done.stderr


def _tensorboard_images(tb_dir: Path) -> list[tuple[str, int, bytes]]:
    """(tag, step, encoded image) of every image summary in a TensorBoard directory's event
    files (TFRecord: length, its CRC, the Event proto, its CRC)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    found = []
    for path in sorted(tb_dir.glob("events.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("image"):
                    found.append((value.tag, event.step, value.image.encoded_image_string))
    return found


@pytest.mark.slow  # an MJX train compile in a subprocess (40 s cold); CI's fast tier skips it
def test_training_writes_videos_and_tensorboard_videos(tmp_path, gl):
    run_dir = tmp_path / "run"
    overrides = [
        *[o for o in tiny_overrides(str(tmp_path)) if not o.startswith("run.tensorboard")],
        "eval.video_every_chunks=1",
        "eval.video_width=64",
        "eval.video_height=48",
    ]
    done = rlx(
        "train",
        str(Path(CONFIGS) / "reach.yaml"),
        *overrides,
        "--run-dir",
        str(run_dir),
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    from rlx.ship import render

    videos = sorted((run_dir / "videos").glob("step-*.mp4"))
    assert [v.name for v in videos] == ["step-32.mp4", "step-64.mp4"]
    frames, _ = render.read_video(videos[-1])
    assert frames.shape[1:] == (48 + 16, 64, 3) and len(frames) == 16
    images = _tensorboard_images(run_dir / "tb")
    assert [(tag, step) for tag, step, _ in images] == [("video", 32), ("video", 64)]
    assert all(data[:6] in (b"GIF87a", b"GIF89a") for _, _, data in images)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all("video_s" in row for row in rows)


def test_video_on_an_env_without_a_renderer_is_a_config_error(tmp_path, gl):
    done = rlx(
        "train",
        str(Path(CONFIGS) / "cartpole.yaml"),
        *tiny_overrides(str(tmp_path)),
        "eval.video_every_chunks=1",
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert done.returncode == 2 and "eval.video_every_chunks" in done.stderr
    assert "has no renderer" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_keys_added_since_a_checkpoint_at_their_defaults_are_no_change():
    import yaml

    from rlx import config as config_lib

    config = config_lib.load(Path(CONFIGS) / "cartpole.yaml")
    new = config_lib.dump(config)
    data = yaml.safe_load(new)
    for key in ("video_every_chunks", "video_width", "video_height"):
        del data["eval"][key]  # a run written before these keys existed
    old = yaml.safe_dump(data, sort_keys=False)
    assert rundir.config_changes(old, new) == {}
    edited = new.replace("video_every_chunks: 0", "video_every_chunks: 3")
    assert rundir.config_changes(old, edited) == {"eval.video_every_chunks": [None, 3]}
    # any schema field added later, at its default (the tune gate's plain arms, written
    # before meta.keep_start existed, failed to resume), but not one set away from it
    del data["meta"]["keep_start"], data["train"]["num_envs"]
    old = yaml.safe_dump(data, sort_keys=False)
    assert rundir.config_changes(old, new) == {"train.num_envs": [None, 16]}
    assert rundir.config_changes(old, new.replace("keep_start: false", "keep_start: true")) == {
        "meta.keep_start": [None, True],
        "train.num_envs": [None, 16],
    }


def test_an_mjx_impl_this_machine_cannot_run_is_one_line(tmp_path, capsys):
    """env.params.impl: warp needs a CUDA GPU and mujoco-warp; jax (the default) runs anywhere."""
    from rlx import cli

    run_dir = tmp_path / "run"
    args = ["train", str(Path(CONFIGS) / "reach.yaml"), "--run-dir", str(run_dir)]
    assert cli.main([*args, "env.params.impl=warp"]) == 2
    err = capsys.readouterr().err.strip()
    assert "env.params.impl" in err and "CUDA GPU" in err and len(err.splitlines()) == 1
    assert not run_dir.exists()
    config = build_lib.load(Path(CONFIGS) / "reach.yaml", ["env.params.impl=jax"])
    assert config.env.params["impl"] == "jax"


def test_a_failing_video_is_a_warning_and_training_goes_on(tmp_path, capsys):
    import dataclasses

    config = build_lib.load(Path(CONFIGS) / "cartpole.yaml", tiny_overrides(str(tmp_path)))
    calls = []

    def broken(state, hparams, path):
        calls.append(path)
        raise OSError("disk full")

    program = driver.ppo_program(build_lib.build(config))
    with_video = dataclasses.replace(
        config, eval=dataclasses.replace(config.eval, video_every_chunks=1)
    )
    program = dataclasses.replace(program, config=with_video, video=broken)
    summary = driver.run(program, tmp_path / "run", driver.RunOptions(show_progress=False))
    assert summary["status"] == "completed" and len(calls) == 1  # tried once, then off
    err = capsys.readouterr().err
    assert "the video at" in err and "OSError: disk full" in err and "no more videos" in err


# env -> {what the renderer draws (body or site): the signals that say where the env has it}
PLACES = {
    "reach": {
        ("body", "target"): ("target_x", "target_y"),
        ("site", "fingertip"): ("fingertip_x", "fingertip_y"),
    },
    "push": {
        ("body", "goal"): ("goal_x", "goal_y"),
        ("body", "puck"): ("object_x", "object_y"),
        ("site", "fingertip"): ("fingertip_x", "fingertip_y"),
    },
}


@pytest.mark.parametrize("name", ["reach", "push"])
def test_a_video_draws_the_target_where_the_env_has_it(tmp_path, name):
    """Every frame of a rendered rollout puts reach's target (push's goal and puck, the
    fingertip) where the env state's signals say it is: mocap bodies included, not at their
    MJCF default (0.1, 0.1)."""
    config = build_lib.load(Path(CONFIGS) / f"{name}.yaml", tiny_overrides(str(tmp_path)))
    built = build_lib.build(config)
    train = jax.jit(built.agent.init)(jax.random.key(0), built.reward_params)
    restored = policy.Restored(config, built.agent, train, built.hparams, "train", 0)
    episodes = 2
    record = render.rollout(restored, episodes, seed=3)
    _, model = render.source(built.agent.env)
    for k in range(episodes):
        scene = {field: v[:, k] for field, v in record.scene.items()}
        for t, (_, data) in enumerate(render.posed(model, scene)):
            for (kind, part), (x, y) in PLACES[name].items():
                drawn = getattr(data, kind)(part).xpos[:2]
                want = [record.signals[x][t, k], record.signals[y][t, k]]
                np.testing.assert_allclose(drawn, want, atol=1e-5, err_msg=f"{part} at step {t}")
    target = next(iter(PLACES[name].values()))
    start = np.stack([record.signals[target[0]][0], record.signals[target[1]][0]], -1)
    assert np.abs(start - 0.1).min() > 1e-3  # drawn where the env put it, not where the MJCF has it


def test_a_randomised_env_renders_its_episodes_model():
    env = envs.make("reach", episode_length=4, randomize={"mass": (0.5, 2.0)})
    drawn, model = render.source(env)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(1), 2))
    scene = jax.device_get(jax.jit(jax.vmap(drawn.render_state))(state.physics))
    trained = drawn.mj_model
    masses = np.asarray(trained.body_mass) * np.asarray(state.physics.body_scale)
    for k, (posed_model, data) in enumerate(render.posed(model, scene)):
        target = [state.signals["target_x"][k], state.signals["target_y"][k]]
        np.testing.assert_allclose(data.body("target").xpos[:2], target, atol=1e-5)
        np.testing.assert_allclose(posed_model.body_mass[: trained.nbody], masses[k], rtol=1e-6)
    assert model.body_mass[: trained.nbody].tolist() == trained.body_mass.tolist()  # kept


STAGED = [
    ("reach", {}),
    ("push", {}),
    ("push", {"effector": "pusher", "contact": "fingertip"}),
    ("lift", {}),
    ("humanoid_walk", {}),  # Brax's MJCF: its own floor, sky and light, dressed
]


@pytest.mark.parametrize(("name", "params"), STAGED)
def test_the_stage_is_drawn_only_and_keeps_the_state_layout(name, params):
    """The render model adds a floor, sky, light and camera; training's model is the MJCF's
    own, and every index a state carries (qpos, qvel, mocap, bodies, geoms, actuators) maps
    over unchanged."""
    import mujoco

    if name.startswith("humanoid"):
        pytest.importorskip("brax")
    env = envs.make_raw(name, **params)
    trained, drawn = env.mj_model, env.render_model()
    assert drawn is not trained and env.render_camera in [
        drawn.cam(i).name for i in range(drawn.ncam)
    ]
    assert "view" not in [trained.cam(i).name for i in range(trained.ncam)]
    for size in ("nq", "nv", "nu", "nmocap", "njnt"):
        assert getattr(drawn, size) == getattr(trained, size), size
    assert drawn.nbody == trained.nbody + 1  # the stage, last
    for field in ("body_parentid", "body_pos", "body_mocapid", "jnt_qposadr", "actuator_gear"):
        np.testing.assert_array_equal(
            getattr(drawn, field)[: len(getattr(trained, field))],
            getattr(trained, field),
            err_msg=field,
        )
    solid = trained.geom_type != mujoco.mjtGeom.mjGEOM_PLANE  # a dressed floor grows (drawn only)
    np.testing.assert_array_equal(drawn.geom_size[: trained.ngeom][solid], trained.geom_size[solid])
    for field in ("geom_bodyid", "geom_type", "geom_contype", "geom_conaffinity"):
        np.testing.assert_array_equal(
            getattr(drawn, field)[: trained.ngeom], getattr(trained, field)
        )
    stage = drawn.body("rlx_stage").id
    added = np.nonzero(drawn.geom_bodyid == stage)[0]
    assert (added >= trained.ngeom).all() and not drawn.geom_contype[added].any()
    assert not drawn.geom_conaffinity[added].any()
    skyboxes = drawn.tex_type == mujoco.mjtTexture.mjTEXTURE_SKYBOX
    assert skyboxes.any() and drawn.nlight > trained.nlight
    planes = drawn.geom_type == mujoco.mjtGeom.mjGEOM_PLANE
    assert (drawn.geom_matid[planes] >= 0).all()  # a checker floor


TERMS = {
    name: envs.REGISTRY[name].term_names for name in ("reach", "push", "lift", "humanoid_walk")
}


@pytest.mark.parametrize("width", [480, 320, 120])
@pytest.mark.parametrize("name", sorted(TERMS))
def test_the_strips_labels_never_overlap(name, width):
    rng = np.random.default_rng(0)
    steps = 50
    terms = {t: rng.normal(size=steps) * 10.0 ** rng.integers(-6, 7) for t in TERMS[name]}
    height = max(16, (width * 3 // 4 // 3) // 2 * 2)  # the strip under a 4:3 frame
    image, columns, labels, top = render.strip(terms, rng.normal(size=steps), width, height)
    assert image.shape == (height, width, 3) and len(columns) == steps
    boxes = list(labels.values())
    for i, (left, upper, right, lower) in enumerate(boxes):
        assert 0 <= left < right <= width and 0 <= upper < lower <= top <= height
        for other in boxes[i + 1 :]:
            apart = right <= other[0] or other[2] <= left or lower <= other[1] or other[3] <= upper
            assert apart, (labels, width)
    inside = np.zeros((top, width), bool)  # the text drawn is inside its measured box
    for left, upper, right, lower in boxes:
        inside[max(upper - 1, 0) : lower + 1, max(left - 1, 0) : right + 1] = True
        assert (image[upper:lower, left:right] < 200).any()  # and drawn
    assert (image[:top][~inside] > 250).all()
    if width >= 320:  # every series named at the sizes videos are made at
        assert set(labels) == {"primary", *TERMS[name]}


def test_an_envs_render_series_share_one_scale_in_the_strip():
    """The joystick env names its command and forward velocity in ``render_series``: the strip
    draws both on one range (a velocity that follows its command is drawn on top of it)."""
    command = np.repeat([0.0, 0.8, -0.5], 10)
    velocity = command * 0.9 + 0.05
    series = {"command_x": command, "forward_velocity": velocity, "other": velocity * 100}
    ranges = render.series_ranges(series, envs.REGISTRY["ant_joystick"].render_series)
    assert ranges["command_x"] == ranges["forward_velocity"] == (-0.5, 0.8)
    assert ranges["other"] == (float(velocity.min() * 100), float(velocity.max() * 100))
    assert render.series_ranges(series)["forward_velocity"] == pytest.approx((-0.4, 0.77))
    assert not hasattr(envs.REGISTRY["humanoid_walk"], "render_series")  # it draws its terms
