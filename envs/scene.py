"""What a renderer needs from an env, and the render-only stage it draws the env on.

An env that can be drawn (``Renderable``; ``rlx.ship.render`` asks nothing else of it) offers:

- ``render_model()``: the ``mujoco.MjModel`` to draw with. For rlx's MJX envs it is a copy of
  the env's MJCF with a ``Stage`` added: a checker floor, a sky gradient, a light and a camera
  that frames the task. Training never sees it (its model is built from the MJCF alone), and
  the stage is one static body appended after every other, so qpos, qvel, mocap bodies and
  the indices of the env's bodies, geoms and actuators are those of the training model: a
  state maps over as is.
- ``render_state(physics) -> dict``: traced inside the rollout, every field of an env state's
  physics that places what a picture shows: MjData fields by name (``qpos``, ``mocap_pos``,
  ``mocap_quat``: a mocap target is drawn where the env put it, not at its MJCF default) and,
  as ``model.<field>``, model fields the env changes per episode (domain randomisation), which
  set the leading rows of the render model's field.
- ``render_camera``: the camera drawn unless the user names another (None: the renderer's own
  free camera).
- ``render_series`` (optional, not needed to be ``Renderable``): groups of the env's signals
  that the strip under the video draws, each group on one shared scale (a commanded velocity
  against the body's), in place of the terms; absent or empty: the strip draws the terms, each
  on its own scale.

``RenderError`` is what an env, camera or setting that cannot be drawn raises (one line).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Protocol, runtime_checkable

# MjData fields that, with the model, place every body a picture shows. qpos places the
# joints' bodies; mocap bodies (reach's target, push's goal) are placed by mocap_pos/quat.
DATA_FIELDS = ("qpos", "mocap_pos", "mocap_quat")
MODEL_PREFIX = "model."
STAGE_BODY = "rlx_stage"
CAMERA = "view"


class RenderError(ValueError):
    """An env, camera or setting that cannot be rendered (one line says why)."""


@runtime_checkable
class Renderable(Protocol):
    """An env a renderer can draw (the module docstring says what each member gives)."""

    render_camera: str | None

    def render_model(self): ...

    def render_state(self, physics) -> dict: ...


def data_fields(data) -> dict:
    """The ``DATA_FIELDS`` of an ``mjx.Data`` (traced), or of the C engine's data, which has
    no mocap fields for a model without mocap bodies: zero-size ones stand in."""
    empty = {"mocap_pos": (0, 3), "mocap_quat": (0, 4)}
    out = {}
    for name in DATA_FIELDS:
        try:
            out[name] = getattr(data, name)
        except AttributeError:
            if name not in empty:
                raise
            import jax.numpy as jnp

            out[name] = jnp.zeros(empty[name], jnp.float32)
    return out


@dataclasses.dataclass(frozen=True)
class Stage:
    """The render-only additions to an env's MJCF (lengths in m, angles in degrees).

    ``floor``: the name of the model's own floor geom, dressed in the checker (it keeps its
    collision settings; rendering never steps), or None for a new floor plane at z 0 (visual
    only: contype 0, conaffinity 0) of half-size ``floor_size``. ``square``: the checker's
    square. The camera ``view`` looks at ``lookat`` from ``distance`` away, ``elevation`` below
    the horizon, from the direction ``azimuth`` (0: from -x, 90: from -y); with ``track`` (a
    body's name) it is placed relative to that body's origin at qpos0 and then keeps its
    offset from the body's subtree centre of mass, at a fixed angle (MuJoCo's ``trackcom``).
    ``base``: the radius of a dark post under the world origin (where a fixed arm is mounted;
    0: none), as high as ``base_height``.
    """

    lookat: tuple[float, float, float] = (0.0, 0.0, 0.0)
    distance: float = 1.0
    elevation: float = 45.0
    azimuth: float = 90.0
    fovy: float = 45.0
    track: str | None = None
    floor: str | None = None
    floor_size: float = 1.0
    square: float = 0.05
    base: float = 0.0
    base_height: float = 0.02


def camera_pose(stage: Stage) -> tuple[list[float], list[float]]:
    """(position, xyaxes) of the stage's camera (a MuJoCo camera looks along its -z axis, x to
    the right of the picture, y up)."""
    el, az = math.radians(stage.elevation), math.radians(stage.azimuth)
    forward = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), -math.sin(el))
    right = _unit((forward[1], -forward[0], 0.0))  # forward x world z
    up = _cross(right, forward)
    pos = [c - stage.distance * f for c, f in zip(stage.lookat, forward, strict=True)]
    return pos, [*right, *up]


def _unit(v):
    norm = math.sqrt(sum(x * x for x in v))
    return tuple(x / norm for x in v)


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


# The look of rlx's stages: MuJoCo Playground's (a blue-grey checker with light edges, a blue
# sky fading to black, a soft headlight and one shadow-casting light from above).
SKY = ((0.3, 0.5, 0.7), (0.0, 0.0, 0.0))
CHECKER = ((0.2, 0.3, 0.4), (0.1, 0.2, 0.3), (0.8, 0.8, 0.8))  # squares, edges
OFFSCREEN = (1920, 1088)  # the largest frame the render model draws (MuJoCo's default: 640x480)


@functools.cache
def staged_model(mjcf: str, stage: Stage, *, is_path: bool = False):
    """The ``mujoco.MjModel`` of ``mjcf`` (an MJCF string, or its file's path) with ``stage``
    added (cached; the model training uses is built apart and never sees it)."""
    import mujoco

    spec = mujoco.MjSpec.from_file(mjcf) if is_path else mujoco.MjSpec.from_string(mjcf)
    _dress(spec, stage, mujoco)
    return spec.compile()


def _dress(spec, stage: Stage, mujoco) -> None:
    visual = spec.visual
    visual.headlight.ambient = [0.3, 0.3, 0.3]
    visual.headlight.diffuse = [0.6, 0.6, 0.6]
    visual.headlight.specular = [0.0, 0.0, 0.0]
    visual.rgba.haze = [0.15, 0.25, 0.35, 1.0]
    visual.global_.offwidth = max(visual.global_.offwidth, OFFSCREEN[0])
    visual.global_.offheight = max(visual.global_.offheight, OFFSCREEN[1])
    skyboxes = [t for t in spec.textures if t.type == mujoco.mjtTexture.mjTEXTURE_SKYBOX]
    sky = skyboxes[0] if skyboxes else spec.add_texture(type=mujoco.mjtTexture.mjTEXTURE_SKYBOX)
    sky.builtin, sky.width, sky.height = mujoco.mjtBuiltin.mjBUILTIN_GRADIENT, 512, 3072
    sky.rgb1, sky.rgb2 = SKY
    squares, edges = CHECKER[:2], CHECKER[2]
    spec.add_texture(
        name="rlx_checker",
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        mark=mujoco.mjtMark.mjMARK_EDGE,
        rgb1=squares[0],
        rgb2=squares[1],
        markrgb=edges,
        width=300,
        height=300,
    )
    material = spec.add_material(name="rlx_checker", texuniform=True, reflectance=0.1)
    material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "rlx_checker"
    material.texrepeat = [1 / (2 * stage.square)] * 2  # per m; the texture holds 2x2 squares
    body = spec.worldbody.add_body(name=STAGE_BODY)  # last: every other index is kept
    size = [stage.floor_size, stage.floor_size, 0.05]
    if stage.floor is None:
        body.add_geom(
            name="rlx_floor",
            type=mujoco.mjtGeom.mjGEOM_PLANE,
            size=size,
            material="rlx_checker",
            contype=0,
            conaffinity=0,
        )
    else:
        floor = spec.geom(stage.floor)
        floor.material, floor.size, floor.rgba = "rlx_checker", size, [0.5, 0.5, 0.5, 1.0]
    if stage.base > 0:
        body.add_geom(
            name="rlx_base",
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[stage.base, stage.base_height / 2, 0.0],
            pos=[0.0, 0.0, stage.base_height / 2],
            rgba=[0.25, 0.25, 0.3, 1.0],
            contype=0,
            conaffinity=0,
        )
    for light in spec.lights:  # the stage's light casts the one shadow (a second, from a
        light.castshadow = False  # low light, streaks the far floor with shadow-map artefacts)
    body.add_light(
        name="rlx_light",
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,  # no cone: the whole floor lit alike
        pos=[0.0, 0.0, 4.0 * stage.distance],
        dir=[0.0, 0.0, -1.0],
        diffuse=[0.6, 0.6, 0.6],
        specular=[0.2, 0.2, 0.2],
        castshadow=True,
    )
    _add_camera(spec, stage, body, mujoco)


def _add_camera(spec, stage: Stage, stage_body, mujoco) -> None:
    pos, xyaxes = camera_pose(stage)
    owner = stage_body if stage.track is None else spec.body(stage.track)
    camera = owner.add_camera(name=CAMERA, pos=pos, fovy=stage.fovy)
    camera.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    camera.alt.xyaxes = xyaxes
    if stage.track is not None:
        camera.mode = mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM
