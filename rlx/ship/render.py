"""``rlx render RUN_DIR --out video.mp4``: a run's policy on video, with its terms beside it.

The policy (``rlx.ship.policy.restore``) runs ``episodes`` deterministic episodes (the first
of those ``rlx eval`` scores with the same key) in one batched, jitted rollout that records
each step's render fields, signals and terms; on the host, MuJoCo's offscreen renderer draws
every step of each env's first episode (``mujoco.Renderer``, headless: EGL, else OSMesa, chosen
before mujoco is imported), a strip plot of the terms (or of the signals the env names in
``render_series``, such as a command and the velocity it asks for, on one scale) over the
episode with a cursor at the current step goes under each frame, and the frames are written as
an H.264 mp4 with the ffmpeg binary that ``imageio-ffmpeg`` ships (``pip install -c
constraints.txt '.[video]'``). Rendering is host code outside the compiled training step.

What is drawn is the env's business (``rlx.envs.scene.Renderable``): a render-only model (for
rlx's MJX envs their MJCF on a stage: checker floor, sky, light and a camera that frames the
task) and, recorded at every step of the rollout, the state's fields that place what a frame
shows (joint positions, mocap bodies such as reach's target, randomised model fields).
MuJoCo-based envs render: rlx's MJX envs (humanoid and its tasks, reach, push, lift), ``brax:``
envs on the mjx backend and ``playground:`` envs. Others are a one-line ``RenderError``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rlx.envs.scene import MODEL_PREFIX, Renderable, RenderError

GL_BACKENDS = ("egl", "osmesa")


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


def source(env):
    """(the env that draws ``env``, its render model): the first of ``env`` and the envs it
    wraps that is ``Renderable`` (a wrapper that changes the state's physics, such as domain
    randomisation, is one); RenderError for an env MuJoCo does not draw."""
    drawn = env
    while not isinstance(drawn, Renderable) and hasattr(drawn, "env"):
        drawn = drawn.env
    if not isinstance(drawn, Renderable):
        raw = _raw(env)
        name = getattr(raw, "name", type(raw).__name__)
        raise RenderError(
            f"env {name!r} has no renderer (MuJoCo-based envs only: humanoid tasks, reach, push, "
            "lift, brax:<name> on the mjx backend, playground:<name>)"
        )
    return drawn, drawn.render_model()


class Episodes(NamedTuple):
    """A rollout's record, [T, K] leading axes (step t's state is the one before action t):
    ``scene`` the env's render fields of each state, ``signals`` its signals; ``terms``,
    ``primary`` and ``done`` of the step from it."""

    scene: dict
    signals: dict
    terms: dict
    primary: np.ndarray
    done: np.ndarray


def rollout(restored, episodes: int, seed: int) -> Episodes:
    """Deterministic episodes of the restored policy from eval key ``seed``: the first
    ``episodes`` of those ``rlx eval`` scores with that key (the same reset keys)."""
    import jax

    drawn, _ = source(restored.agent.env)
    run = _rollout_program(restored.agent, episodes, drawn.render_state)
    out = jax.device_get(run(restored.train, jax.random.key(seed)))
    return Episodes(*jax.tree.map(np.asarray, tuple(out)))


_PROGRAMS: dict = {}


def _rollout_program(agent, episodes: int, scene_of):
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
        k_reset, _, _ = jax.random.split(key, 3)  # as acting.evaluate_episodes splits it
        env_state = batched.reset(jax.random.split(k_reset, episodes))

        def step(state_and_carry, _):
            s, carry = state_and_carry
            x = acting.actor_view(actor, acting.normalize_obs(actor, train.obs_stats, s.obs))
            carry, params = actor.policy.step(train.params["policy"], carry, x, s.done)
            nxt = batched.step(s, dist.to_env(dist.mode(params)))
            done = jnp.logical_or(nxt.terminated, nxt.truncated)
            scene = jax.vmap(scene_of)(s.physics)
            return (nxt, carry), (scene, s.signals, nxt.terms, nxt.primary, done)

        start = (env_state, actor.policy.initial_carry((episodes,)))
        _, out = jax.lax.scan(step, start, None, length=actor.env.episode_length)
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


class Strip(NamedTuple):
    """The term strip: ``image`` [height, width, 3] uint8, ``columns`` the pixel column of each
    step, ``labels`` {series: (left, top, right, bottom) pixel box of its label}, ``plot_top``
    the first pixel row under the labels."""

    image: np.ndarray
    columns: np.ndarray
    labels: dict
    plot_top: int


LABEL_PAD = 3  # pixels around and between the labels


def strip(
    terms: dict[str, np.ndarray],
    primary: np.ndarray,
    width: int,
    height: int,
    shared: tuple[tuple[str, ...], ...] = (),
) -> Strip:
    """Each of ``terms`` (any named series [steps]; the primary too) over the episode, scaled to
    its own range, or to one range per group of ``shared`` names, under rows of labels in the
    curves' colours with their ranges (``_place_labels``: never overlapping, at most half the
    strip)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dpi = 100
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
    series = {"primary": primary, **terms}
    ranges = series_ranges(series, shared)
    colours = {n: f"C{i % 10}" for i, n in enumerate(series)}
    fontsize = 7.0 if width >= 400 else 6.0
    placed = _place_labels(fig, ranges, colours, fontsize, width, height)
    top = max(box[3] for box in placed.values()) + LABEL_PAD if placed else 0
    ax = fig.add_axes([0.0, 0.0, 1.0, max(height - top, 1) / height])
    steps = len(primary)
    for name, values in series.items():
        low, high = ranges[name]
        values = np.asarray(values, np.float64)
        scaled = (values - low) / (high - low) if high > low else np.full_like(values, 0.5)
        ax.plot(np.arange(steps), scaled * 0.8 + 0.1, lw=1.2, color=colours[name])
    ax.set_xlim(-0.5, max(steps - 1, 1) + 0.5)
    ax.set_ylim(0, 1)
    ax.axis("off")
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    columns = np.round(np.linspace(0, width - 1, steps) if steps > 1 else [0]).astype(int)
    return Strip(image, columns, placed, top)


def _range(values) -> tuple[float, float]:
    values = np.asarray(values, np.float64)
    return float(values.min()), float(values.max())


def series_ranges(series: dict, shared: tuple[tuple[str, ...], ...] = ()) -> dict:
    """{name: (low, high)} each series' range, one range per group of ``shared`` names (the
    group's lowest and highest values), so a command and the velocity it asks for are drawn
    on one scale."""
    ranges = {n: _range(v) for n, v in series.items()}
    for group in shared:
        low, high = zip(*(ranges[n] for n in group), strict=True)
        ranges |= dict.fromkeys(group, (min(low), max(high)))
    return ranges


def _place_labels(fig, ranges, colours, fontsize, width, height) -> dict:
    """Draws the labels in rows from the strip's top-left, in at most half its height: each
    name with its range where all of them fit so, else the names alone (those that fit);
    returns {name: (left, top, right, bottom)} in image pixels (from the top-left)."""
    from matplotlib.transforms import IdentityTransform

    style = {"fontsize": fontsize, "va": "top", "ha": "left", "transform": IdentityTransform()}
    ranged = {n: f"{n} [{low:.2g}, {high:.2g}]" for n, (low, high) in ranges.items()}
    for labels in (ranged, {n: n for n in ranges}):
        texts = {n: fig.text(0, 0, s, color=colours[n], **style) for n, s in labels.items()}
        boxes = {n: t.get_window_extent(fig.canvas.get_renderer()) for n, t in texts.items()}
        sizes = {n: (int(np.ceil(b.width)), int(np.ceil(b.height))) for n, b in boxes.items()}
        placed = flow(sizes, width, height // 2)
        if len(placed) == len(labels):
            break
        for name, text in texts.items():  # all of a first try; the last try's misfits
            if labels is ranged or name not in placed:
                text.remove()
    for name, (left, top, _, _) in placed.items():
        texts[name].set_position((left, height - top))  # display pixels: y up from the bottom
    return placed


def flow(sizes: dict, width: int, height: int) -> dict:
    """{name: (left, top, right, bottom)} of boxes of ``sizes`` ({name: (w, h)} pixels) laid in
    rows from the top-left of a ``width`` x ``height`` area, ``LABEL_PAD`` apart and from its
    edges; a box that does not fit is left out, so none overlap."""
    x, top, bottom, placed = LABEL_PAD, LABEL_PAD, LABEL_PAD, {}
    for name, (w, h) in sizes.items():
        if x > LABEL_PAD and x + w > width - LABEL_PAD:  # the next row
            x, top = LABEL_PAD, bottom + LABEL_PAD
        if x + w <= width - LABEL_PAD and top + h <= height:
            placed[name] = (x, top, x + w, top + h)
            x, bottom = x + w + 2 * LABEL_PAD, max(bottom, top + h)
    return placed


def check_camera(mj_model, camera: str | None) -> None:
    if camera is None:
        return
    names = [mj_model.camera(i).name for i in range(mj_model.ncam)]
    if camera not in names:
        named = ", ".join(n for n in names if n) or "no named cameras"
        raise RenderError(f"--camera {camera!r}: the model has {named}")


def posed(mj_model, scene: dict):
    """For each step of ``scene`` ({field: [T, ...]}, an env's ``render_state`` over an
    episode), (model, MjData) with its fields set and forwarded: MjData fields by name, and
    ``model.<field>`` on the leading rows of a copy of ``mj_model``'s field."""
    import copy

    import mujoco

    on_model = {
        k.removeprefix(MODEL_PREFIX): v for k, v in scene.items() if k.startswith(MODEL_PREFIX)
    }
    on_data = {k: v for k, v in scene.items() if not k.startswith(MODEL_PREFIX)}
    model = copy.deepcopy(mj_model) if on_model else mj_model
    data = mujoco.MjData(model)
    for t in range(len(next(iter(scene.values())))):
        for name, values in on_model.items():
            getattr(model, name)[: len(values[t])] = values[t]
        for name, values in on_data.items():
            getattr(data, name)[:] = values[t]
        mujoco.mj_forward(model, data)
        yield model, data


def _free_camera(mj_model):
    """A camera that follows the first body, 1.5 model sizes away and 20 degrees above it (for
    models without a camera of their own: brax: and playground: envs)."""
    import mujoco

    view = mujoco.MjvCamera()
    view.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    view.trackbodyid = 1 if mj_model.nbody > 1 else 0
    view.distance = 1.5 * float(mj_model.stat.extent)
    view.elevation, view.azimuth = -20.0, 90.0
    return view


def frames(mj_model, scene: dict, width: int, height: int, camera: str | None):
    """[T, height, width, 3] uint8 frames of an episode's render fields ``scene`` (``posed``)
    from ``camera`` (None: a free camera following the first body)."""
    import mujoco

    check_camera(mj_model, camera)
    renderer = None
    view = _free_camera(mj_model) if camera is None else camera
    out = []
    try:
        for model, data in posed(mj_model, scene):
            if renderer is None:
                renderer = mujoco.Renderer(model, height=height, width=width)
            renderer.update_scene(data, camera=view)
            out.append(renderer.render())
    finally:
        if renderer is not None:
            renderer.close()
    return np.stack(out)


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
    drawn, mj_model = source(env)
    camera = drawn.render_camera if camera is None else camera
    check_camera(mj_model, camera)
    seed = restored.config.eval.seed if seed is None else seed
    record = rollout(restored, episodes, seed)
    shared = getattr(drawn, "render_series", ())  # optional (rlx.envs.scene)
    strip_height = max(16, (height // 3) // 2 * 2)
    video, lengths = [], []
    for k in range(episodes):
        ends = np.nonzero(record.done[:, k])[0]
        length = int(ends[0]) + 1 if len(ends) else len(record.done)
        scene = {n: v[:length, k] for n, v in record.scene.items()}
        shots = frames(mj_model, scene, width, height, camera)
        series = {n: record.signals[n][:length, k] for g in shared for n in g}
        series = series or {n: v[:length, k] for n, v in record.terms.items()}
        image, columns, _, top = strip(
            series, record.primary[:length, k], width, strip_height, shared
        )
        for t in range(length):
            panel = image.copy()
            panel[top:, max(columns[t] - 1, 0) : columns[t] + 1] = 0  # the cursor, under the labels
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
