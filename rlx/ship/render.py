"""``rlx render RUN_DIR --out video.mp4``: a run's policy on video, with its terms beside it.

The policy (``rlx.ship.policy.restore``) runs ``episodes`` deterministic episodes in one batched,
jitted rollout that records each step's joint positions and terms; on the host, MuJoCo's
offscreen renderer draws every step of each env's first episode (``mujoco.Renderer``, headless:
EGL, else OSMesa, chosen before mujoco is imported), a strip plot of the terms over the
episode with a cursor at the current step goes under each frame, and the frames are written as
an H.264 mp4 with the ffmpeg binary that ``imageio-ffmpeg`` ships (``pip install -c
constraints.txt '.[video]'``). Rendering is host code outside the compiled training step.

MuJoCo-based envs render: rlx's MJX envs (humanoid and its tasks, reach, push), ``brax:`` envs
on the mjx backend and ``playground:`` envs. Others are a one-line ``RenderError``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

GL_BACKENDS = ("egl", "osmesa")


class RenderError(ValueError):
    """An env, camera or setting that cannot be rendered (one line says why)."""


def choose_gl() -> str:
    """Sets ``MUJOCO_GL`` to the first headless backend that makes a GL context here (a
    subprocess tries each, so a failure leaves this process untouched); the user's own
    ``MUJOCO_GL`` is kept. Must run before ``mujoco`` is first imported."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    probe = "import mujoco; mujoco.GLContext(8, 8).make_current()"
    for backend in GL_BACKENDS:
        env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
        try:
            done = subprocess.run(
                [sys.executable, "-c", probe], env=env, capture_output=True, timeout=60
            )
        except subprocess.TimeoutExpired:
            continue
        if done.returncode == 0:
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
    raise RenderError(
        "no headless OpenGL for MuJoCo's renderer: install EGL (apt install libegl1) or OSMesa "
        "(apt install libosmesa6), or set MUJOCO_GL"
    )


def _dt(raw) -> float:
    for owner in (raw, getattr(raw, "brax", None), getattr(raw, "playground", None)):
        if owner is not None and hasattr(owner, "dt"):
            return float(owner.dt)
    return 1.0 / 30.0


def _raw(env):
    while hasattr(env, "env"):
        env = env.env
    return env


def source(env) -> tuple[object, callable]:
    """(mujoco.MjModel, physics -> qpos) of a (wrapped) env; RenderError for an env MuJoCo
    does not draw."""
    raw = _raw(env)
    name = getattr(raw, "name", type(raw).__name__)
    from rlx.envs.mjx_base import MjxEnv

    if isinstance(raw, MjxEnv):
        return raw.mj_model, lambda physics: physics.qpos
    kind = type(raw).__name__
    if kind == "BraxEnv":
        if raw.backend != "mjx":
            raise RenderError(
                f"env {name!r} on the {raw.backend} backend has no renderer: use "
                "env.params.backend: mjx"
            )
        return raw.brax.sys.mj_model, lambda physics: physics.pipeline_state.q
    if kind == "PlaygroundEnv":
        return raw.playground.mj_model, lambda physics: physics.data.qpos
    raise RenderError(
        f"env {name!r} has no renderer (MuJoCo-based envs only: humanoid tasks, reach, push, "
        "brax:<name> on the mjx backend, playground:<name>)"
    )


def rollout(restored, episodes: int, seed: int, qpos_of):
    """Deterministic episodes of the restored policy: qpos [T, K, nq], terms {name: [T, K]},
    primary [T, K], done [T, K] (step t's state is the one before action t)."""
    import jax

    run = _rollout_program(restored.agent, episodes, qpos_of)
    qpos, terms, primary, done = jax.device_get(run(restored.train, jax.random.key(seed)))
    return np.asarray(qpos), {k: np.asarray(v) for k, v in terms.items()}, primary, done


_PROGRAMS: dict = {}


def _rollout_program(agent, episodes: int, qpos_of):
    """The jitted rollout for ``agent`` and ``episodes`` (built once: the learner's state is
    an argument, so a training run's videos compile it once)."""
    key = (id(agent), episodes)
    if key in _PROGRAMS:
        return _PROGRAMS[key][1]
    import jax
    import jax.numpy as jnp

    from rlx.learn import acting

    actor, dist = agent.actor, agent.actor.dist
    batched = actor.batched

    @jax.jit
    def run(train, key):
        k_reset, _ = jax.random.split(key)
        env_state = batched.reset(jax.random.split(k_reset, episodes))

        def step(s, _):
            params = acting.policy_params(actor, train.params, train.obs_stats, s.obs)
            nxt = batched.step(s, dist.to_env(dist.mode(params)))
            done = jnp.logical_or(nxt.terminated, nxt.truncated)
            return nxt, (jax.vmap(qpos_of)(s.physics), nxt.terms, nxt.primary, done)

        _, out = jax.lax.scan(step, env_state, None, length=actor.env.episode_length)
        return out

    _PROGRAMS[key] = (agent, run)  # the agent kept alive: its id stays its own
    return run


def video_hook(agent, config, policy_of):
    """For the driver: ``(state, hparams, path) -> what render wrote`` rendering
    ``eval.video_width`` x ``eval.video_height``, one episode, of the learner ``policy_of(state,
    hparams) -> (TrainState, Hparams)`` picks; checks the env renders first (RenderError)."""
    source(agent.env)
    from rlx.ship import policy

    def hook(state, hparams, path: Path) -> dict:
        train, train_hparams = policy_of(state, hparams)
        restored = policy.Restored(config, agent, train, train_hparams, "train", 0)
        width, height = config.eval.video_width // 2 * 2, config.eval.video_height // 2 * 2
        return render(restored, path, 1, None, width, height, keep_frames=True)

    return hook


def strip(terms: dict[str, np.ndarray], primary: np.ndarray, width: int, height: int):
    """[height, width, 3] uint8 image of each term (and the primary) over the episode, each
    scaled to its own range; and the pixel column of each step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dpi = 100
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes([0.0, 0.0, 1.0, 1.0])
    steps = len(primary)
    series = {"primary": primary, **terms}
    for i, (name, values) in enumerate(series.items()):
        values = np.asarray(values, np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.full_like(values, 0.5)
        ax.plot(np.arange(steps), scaled * 0.8 + 0.1, lw=1.2, color=f"C{i}")
        ax.text(
            0.01 + 0.16 * (i % 6),
            0.97 - 0.12 * (i // 6),
            f"{name} [{low:.3g}, {high:.3g}]",
            transform=ax.transAxes,
            fontsize=6,
            color=f"C{i}",
            va="top",
        )
    ax.set_xlim(-0.5, max(steps - 1, 1) + 0.5)
    ax.set_ylim(0, 1)
    ax.axis("off")
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    columns = np.round(np.linspace(0, width - 1, steps) if steps > 1 else [0]).astype(int)
    return image, columns


def check_camera(mj_model, camera: str | None) -> None:
    if camera is None:
        return
    names = [mj_model.camera(i).name for i in range(mj_model.ncam)]
    if camera not in names:
        raise RenderError(
            f"--camera {camera!r}: the model has {', '.join(names) or 'no named cameras'}"
        )


def frames(mj_model, qpos: np.ndarray, width: int, height: int, camera: str | None):
    """[T, height, width, 3] uint8 frames of joint positions ``qpos`` [T, nq]."""
    import mujoco

    check_camera(mj_model, camera)
    renderer = mujoco.Renderer(mj_model, height=height, width=width)
    data = mujoco.MjData(mj_model)
    view = camera
    if camera is None:  # a camera that follows the first body, 1.5 model sizes away
        view = mujoco.MjvCamera()
        view.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        view.trackbodyid = 1 if mj_model.nbody > 1 else 0
        view.distance = 1.5 * float(mj_model.stat.extent)
        view.elevation, view.azimuth = -15.0, 90.0
    out = np.empty((len(qpos), height, width, 3), np.uint8)
    try:
        for t, q in enumerate(qpos):
            data.qpos[:] = q
            mujoco.mj_forward(mj_model, data)
            renderer.update_scene(data, camera=view)
            out[t] = renderer.render()
    finally:
        renderer.close()
    return out


def write_video(path: Path, video: np.ndarray, fps: float) -> None:
    """``video`` [T, H, W, 3] uint8 as an H.264 mp4 (yuv420p, plays everywhere)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise RenderError(
            "rlx render needs imageio-ffmpeg: pip install -c constraints.txt '.[video]'"
        ) from None
    import warnings

    height, width = video.shape[1:3]
    warnings.filterwarnings("ignore", message=".*os.fork.*", category=RuntimeWarning)
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=2,
        quality=7,
    )
    writer.send(None)  # start ffmpeg
    try:
        for frame in video:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def read_video(path: Path) -> tuple[np.ndarray, dict]:
    """(frames [T, H, W, 3] uint8, ffmpeg's metadata) of a video file."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]
    return np.stack(frames), meta


def render(
    restored,
    out: Path,
    episodes: int = 1,
    camera: str | None = None,
    width: int = 480,
    height: int = 360,
    fps: float | None = None,
    seed: int | None = None,
    keep_frames: bool = False,
) -> dict:
    """Renders ``episodes`` first episodes of the restored policy to ``out`` (mp4); returns
    what was written (frames per episode, size, fps)."""
    if width % 2 or height % 2 or width < 16 or height < 16:
        raise RenderError(f"--width {width} --height {height}: even sizes of at least 16")
    env = restored.agent.env
    mj_model, qpos_of = source(env)
    check_camera(mj_model, camera)
    seed = restored.config.eval.seed if seed is None else seed
    qpos, terms, primary, done = rollout(restored, episodes, seed, qpos_of)
    strip_height = max(16, (height // 3) // 2 * 2)
    video, lengths = [], []
    for k in range(episodes):
        ends = np.nonzero(done[:, k])[0]
        length = int(ends[0]) + 1 if len(ends) else len(done)
        shots = frames(mj_model, qpos[:length, k], width, height, camera)
        image, columns = strip(
            {n: v[:length, k] for n, v in terms.items()}, primary[:length, k], width, strip_height
        )
        for t in range(length):
            panel = image.copy()
            panel[:, max(columns[t] - 1, 0) : columns[t] + 1] = 0  # the cursor
            video.append(np.concatenate([shots[t], panel], axis=0))
        lengths.append(length)
    if fps is None:  # real time, within 10-60 frames per second
        fps = float(min(60, max(10, round(1.0 / _dt(_raw(env))))))
    video = np.stack(video)
    write_video(out, video, fps)
    return ({"frames": video} if keep_frames else {}) | {
        "file": str(out),
        "episodes": episodes,
        "frames_per_episode": lengths,
        "width": width,
        "height": height + strip_height,
        "fps": fps,
    }
