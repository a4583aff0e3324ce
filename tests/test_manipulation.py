"""The MJX manipulation envs (reach, push): terms, signals and primary against the geometry.

Tiny sizes, and one compiled reset and one compiled step per model shared by the module. The
step takes the mjx model as an argument (``step_with_model``), so a modified model reuses the
same program, as domain randomisation will.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs
from rlx.envs.reach import sample_in_annulus

# The physics backend: MuJoCo's C engine in the fast tier (compiles in seconds), MJX in the slow
# one (the terms and geometry checked here do not depend on it; tests/test_mujoco_c.py checks
# the two backends against each other).
IMPLS = ["c", pytest.param("jax", marks=pytest.mark.slow)]

BATCH = 4
LINK = 0.1  # each arm link's length (m), see envs/reach.py


@dataclasses.dataclass(frozen=True)
class Compiled:
    env: Any
    reset: Any  # (model, keys [B]) -> EnvState [B]
    step: Any  # (model, state [B], action [B, 2]) -> EnvState [B]

    def first(self, seed: int = 0):
        return self.reset(self.env.mjx_model, jax.random.split(jax.random.key(seed), BATCH))

    def advance(self, state, action, model=None):
        action = jnp.broadcast_to(jnp.asarray(action, jnp.float32), (BATCH, 2))
        return self.step(self.env.mjx_model if model is None else model, state, action)


def _compile(env) -> Compiled:
    return Compiled(
        env=env,
        reset=jax.jit(jax.vmap(env.reset_with_model, in_axes=(None, 0))),
        step=jax.jit(jax.vmap(env.step_with_model, in_axes=(None, 0, 0))),
    )


@pytest.fixture(scope="module", params=IMPLS)
def reach(request) -> Compiled:
    return _compile(envs.Reach(impl=request.param))


@pytest.fixture(scope="module", params=IMPLS)
def push(request) -> Compiled:
    return _compile(envs.Push(impl=request.param))


def _fingertip(qpos) -> np.ndarray:
    """[B, 2] forward kinematics of the 2-link arm from its joint angles."""
    q = np.asarray(qpos)
    first, both = q[:, 0], q[:, 0] + q[:, 1]
    return LINK * np.stack([np.cos(first) + np.cos(both), np.sin(first) + np.sin(both)], -1)


def _random_actions(seed: int) -> jax.Array:
    return jax.random.uniform(jax.random.key(seed), (BATCH, 2), minval=-1.0, maxval=1.0)


def _with_target(state, target):
    """``state`` with the mocap target/goal moved to ``target`` [B, 2]."""
    mocap = state.physics.mocap_pos.at[:, 0, :2].set(target)
    return state.replace(physics=state.physics.replace(mocap_pos=mocap))


def test_reach_terms_signals_and_primary_follow_the_geometry(reach):
    state = reach.first()
    for i in range(3):
        action = _random_actions(i)
        new = reach.advance(state, action)
        tip = _fingertip(new.physics.qpos)
        target = np.asarray(new.physics.mocap_pos[:, 0, :2])
        distance = np.linalg.norm(tip - target, axis=-1)
        np.testing.assert_allclose(new.terms["distance"], distance, atol=1e-5)
        np.testing.assert_allclose(new.next_signals["distance"], distance, atol=1e-5)
        np.testing.assert_allclose(new.next_signals["fingertip_x"], tip[:, 0], atol=1e-5)
        np.testing.assert_allclose(new.next_signals["target_y"], target[:, 1], atol=1e-6)
        np.testing.assert_allclose(new.primary, -new.terms["distance"], rtol=1e-6)
        np.testing.assert_allclose(
            new.terms["progress"], state.signals["distance"] - new.terms["distance"], atol=1e-6
        )
        np.testing.assert_allclose(new.terms["ctrl_cost"], np.sum(np.square(action), -1), 1e-6)
        beyond = np.maximum(distance - 0.02, 0.0) / 0.1  # gaussian tolerance, 0.1 at the margin
        near = np.exp(-0.5 * (beyond * np.sqrt(-2 * np.log(0.1))) ** 2)
        np.testing.assert_allclose(new.terms["near"], near, atol=1e-4)
        control = (4 + np.mean(1 - np.square(np.asarray(action)), -1)) / 5
        np.testing.assert_allclose(new.terms["small_control"], control, rtol=1e-5)
        np.testing.assert_allclose(new.obs[:, 6:8], target, atol=1e-6)
        np.testing.assert_allclose(new.obs[:, 8:10], tip - target, atol=1e-5)
        assert not np.any(new.terminated)
        state = new
    assert np.all(np.abs(np.asarray(state.physics.qvel)) > 0)  # the arm moved


def test_reach_success_iff_distance_below_threshold(reach):
    state = reach.first(seed=1)
    tip = np.stack([state.signals["fingertip_x"], state.signals["fingertip_y"]], -1)
    offsets = np.array([0.0, 0.01, 0.03, 0.1])  # threshold 0.02
    target = tip + offsets[:, None] * np.array([0.6, 0.8])
    # The arm rests (zero velocity) and zero torque keeps it there.
    new = reach.advance(_with_target(state, target), jnp.zeros(2))
    np.testing.assert_allclose(new.terms["distance"], offsets, atol=1e-4)
    np.testing.assert_array_equal(new.terms["success"], [1.0, 1.0, 0.0, 0.0])


def test_reach_final_success_primary_only_on_the_last_step(reach):
    env = envs.Reach(primary_objective="final_success", episode_length=2, impl=reach.env.impl)
    step = jax.jit(jax.vmap(env.step_with_model, in_axes=(None, 0, 0)))
    state = reach.first(seed=2)
    tip = np.stack([state.signals["fingertip_x"], state.signals["fingertip_y"]], -1)
    state = _with_target(state, tip + np.array([[0.0], [0.0], [0.1], [0.1]]))
    zeros = jnp.zeros((BATCH, 2))
    first = step(env.mjx_model, state, zeros)
    np.testing.assert_array_equal(first.primary, 0.0)
    np.testing.assert_array_equal(first.terms["success"], [1.0, 1.0, 0.0, 0.0])
    last = step(env.mjx_model, first, zeros)
    np.testing.assert_array_equal(last.primary, last.terms["success"])
    np.testing.assert_array_equal(last.primary, [1.0, 1.0, 0.0, 0.0])


def test_reach_resets_resample_the_target_inside_the_annulus(reach):
    env = reach.env
    targets = []
    for seed in range(5):
        state = reach.first(seed)
        target = np.asarray(state.physics.mocap_pos[:, 0, :2])
        np.testing.assert_allclose(state.obs[:, 6:8], target)
        radius = np.linalg.norm(target, axis=-1)
        assert np.all(radius >= env.target_radius_min - 1e-6)
        assert np.all(radius <= env.target_radius_max + 1e-6)
        assert np.all(np.abs(np.asarray(state.physics.qpos)) <= env.reset_angle_range)
        assert np.all(np.asarray(state.physics.qvel) == 0)
        targets.append(target)
    targets = np.concatenate(targets)
    assert len(np.unique(targets.round(6), axis=0)) == len(targets)


def test_reach_step_uses_the_model_it_is_given(reach):
    # Domain randomisation passes its own model to step_with_model: no torque, no motion.
    state = reach.first(seed=3)
    model = reach.env.mjx_model
    powerless = model.replace(actuator_gear=model.actuator_gear * 0.0)
    moved = reach.advance(state, jnp.ones(2))
    still = reach.advance(state, jnp.ones(2), model=powerless)
    assert np.all(np.abs(np.asarray(moved.physics.qpos - state.physics.qpos)) > 1e-3)
    np.testing.assert_allclose(still.physics.qpos, state.physics.qpos, atol=1e-7)


def test_reach_rejects_an_unknown_primary_objective():
    with pytest.raises(ValueError, match="primary_objective"):
        envs.Reach(primary_objective="reward")


def test_push_terms_signals_and_primary_follow_the_geometry(push):
    state = push.first()
    for i in range(3):
        action = _random_actions(10 + i)
        new = push.advance(state, action)
        qpos = np.asarray(new.physics.qpos)
        tip, puck = _fingertip(qpos), qpos[:, 2:4]
        goal = np.asarray(new.physics.mocap_pos[:, 0, :2])
        object_goal = np.linalg.norm(puck - goal, axis=-1)
        np.testing.assert_allclose(new.terms["object_goal_distance"], object_goal, atol=1e-5)
        np.testing.assert_allclose(
            new.terms["hand_object_distance"], np.linalg.norm(tip - puck, axis=-1), atol=1e-5
        )
        away = (puck - goal) / np.linalg.norm(puck - goal, axis=-1, keepdims=True)
        behind = puck + 0.03 * away  # where a straight push at the goal starts
        want = [around_disc(*p, 0.03) for p in zip(tip, behind, puck, strict=True)]
        np.testing.assert_allclose(new.terms["pre_push_distance"], want, atol=1e-5)
        np.testing.assert_allclose(new.next_signals["object_x"], puck[:, 0], atol=1e-6)
        np.testing.assert_allclose(new.next_signals["goal_y"], goal[:, 1], atol=1e-6)
        np.testing.assert_array_equal(
            new.terms["success"], new.terms["object_goal_distance"] < push.env.success_threshold
        )
        np.testing.assert_allclose(new.primary, -new.terms["object_goal_distance"], rtol=1e-6)
        np.testing.assert_allclose(
            new.terms["progress"],
            state.signals["object_goal_distance"] - new.terms["object_goal_distance"],
            atol=1e-6,
        )
        np.testing.assert_allclose(new.obs[:, 14:16], puck - goal, atol=1e-5)
        assert not np.any(new.terminated)
        state = new


def test_push_resets_place_puck_and_goal_in_bounds_clear_of_the_arm(push):
    env = push.env
    pucks, goals = [], []
    for seed in range(3):
        state = push.first(seed)
        puck = np.asarray(state.physics.qpos[:, 2:4])
        goal = np.asarray(state.physics.mocap_pos[:, 0, :2])
        for point in (puck, goal):
            radius = np.linalg.norm(point, axis=-1)
            assert np.all((radius >= env.radius_min - 1e-6) & (radius <= env.radius_max + 1e-6))
        # The arm starts clear of the puck: a zero-torque step leaves the puck where it was.
        rested = push.advance(state, jnp.zeros(2))
        np.testing.assert_allclose(rested.physics.qpos[:, 2:4], puck, atol=1e-7)
        pucks.append(puck)
        goals.append(goal)
    pucks, goals = np.concatenate(pucks), np.concatenate(goals)
    assert len(np.unique(pucks.round(6), axis=0)) == len(pucks)
    assert len(np.unique(goals.round(6), axis=0)) == len(goals)


def test_pushing_moves_the_puck_and_sweeping_away_does_not(push):
    state = push.first()
    # Arm straight along -0.6 rad, puck at (0.15, 0): turning the shoulder counter-clockwise
    # sweeps the forearm into the puck and pushes it towards +y.
    # (Built from the reset's arrays, which keeps their placement: fresh host arrays would make
    # jit compile the step a second time.)
    qpos = state.physics.qpos.at[:].set(jnp.array([-0.6, 0.0, 0.15, 0.0]))
    start = state.replace(physics=state.physics.replace(qpos=qpos))  # at rest: qvel 0 at reset
    toward, away = start, start
    for _ in range(10):
        toward = push.advance(toward, jnp.array([1.0, 0.0]))
        away = push.advance(away, jnp.array([-1.0, 0.0]))
    assert np.all(np.asarray(toward.physics.qpos[:, 3]) > 0.05)
    np.testing.assert_allclose(away.physics.qpos[:, 2:4], qpos[:, 2:4], atol=1e-7)


def test_eval_success_is_the_share_of_episodes_ending_within_the_threshold(tmp_path):
    # eval/success reads the success term on each episode's last step; with the final_success
    # primary, the primary return is that same indicator, summed over the episode.
    from conftest import CONFIGS, tiny_overrides
    from rlx.config import build as build_lib
    from rlx.learn import acting

    overrides = [
        *tiny_overrides(str(tmp_path)),
        "env.params.primary_objective=final_success",
        "env.params.success_threshold=0.12",  # wide: a random policy ends inside it at times
        "env.params.impl=c",  # the eval's bookkeeping is checked, not the physics: the C engine
    ]
    built = build_lib.build(build_lib.load(f"{CONFIGS}/reach.yaml", overrides))
    agent, hp = built.agent, built.hparams
    state = agent.init(jax.random.key(0), hp.reward_params)

    def episodes(state, hp, key):
        return acting.evaluate_episodes(
            agent.actor,
            agent.reward_fn,
            state,
            hp,
            key,
            64,
            deterministic=False,  # sampled actions: some episodes end near the target
        )

    out = jax.jit(episodes)(state, hp, jax.random.key(3))
    np.testing.assert_array_equal(out["eval/success"], out["eval/primary_return"])
    assert set(np.unique(out["eval/success"])) == {0.0, 1.0}  # some episodes end in, some out
    # the last step's indicator, not the episode's count of steps inside
    assert not np.array_equal(out["eval/success"], out["eval/terms/success"])


def around_disc(p, q, centre, radius):
    """The shortest path from p to q (on the circle) around the disc, by sampling: the straight
    line if clear, else the best of the tangent-then-arc routes either way round."""
    if np.linalg.norm(p - centre) < radius:
        p = centre + (p - centre) / np.linalg.norm(p - centre) * radius
    segment = p + np.linspace(0, 1, 2001)[:, None] * (q - p)
    if np.all(np.linalg.norm(segment - centre, axis=-1) >= radius - 1e-4):
        return np.linalg.norm(q - p)
    angles = np.linspace(-np.pi, np.pi, 20001)
    rim = centre + radius * np.stack([np.cos(angles), np.sin(angles)], -1)
    q_angle = np.arctan2(*(q - centre)[::-1])
    best = np.inf
    for angle, point in zip(angles, rim, strict=True):  # leave the line at a visible rim point
        if np.dot(point - centre, p - point) < -1e-9:
            continue  # not visible from p: the chord to it crosses the disc
        arc = abs((angle - q_angle + np.pi) % (2 * np.pi) - np.pi) * radius
        best = min(best, np.linalg.norm(point - p) + arc)
    return best


def test_around_disc_goes_round_the_puck():
    from rlx.envs.push import around_disc as jax_around_disc

    rng = np.random.default_rng(0)
    centre, radius = np.array([0.1, -0.05]), 0.03
    for _ in range(20):
        p = centre + rng.uniform(-0.12, 0.12, 2)
        angle = rng.uniform(-np.pi, np.pi)
        q = centre + radius * np.array([np.cos(angle), np.sin(angle)])
        got = float(jax_around_disc(jnp.asarray(p), jnp.asarray(q), jnp.asarray(centre), radius))
        np.testing.assert_allclose(got, around_disc(p, q, centre, radius), atol=2e-4)
    # straight through would be 0.06; round the rim it is half the circumference
    p, q = centre + [0.0, 0.03], centre - [0.0, 0.03]
    got = float(jax_around_disc(jnp.asarray(p), jnp.asarray(q), jnp.asarray(centre), radius))
    np.testing.assert_allclose(got, np.pi * radius, atol=1e-4)  # float32 arccos near 1


def test_push_goals_near_the_puck_keep_their_distance_and_the_annulus():
    # goal_offset_*: the goal is drawn at that distance from the puck, inside the annulus
    # (pure jnp, no physics: nothing to compile but this small vmap).
    env = envs.Push(goal_offset_min=0.04, goal_offset_max=0.1)
    keys = jax.random.split(jax.random.key(0), 512)
    pucks = jax.vmap(lambda k: sample_in_annulus(k, env.radius_min, env.radius_max))(keys)
    goals = np.asarray(jax.jit(jax.vmap(env._goal))(jax.random.split(keys[0], 512), pucks))
    radius = np.linalg.norm(goals, axis=-1)
    assert np.all((radius >= env.radius_min - 1e-6) & (radius <= env.radius_max + 1e-6))
    offset = np.linalg.norm(goals - np.asarray(pucks), axis=-1)
    assert np.all((offset >= 0.04 - 1e-6) & (offset <= 0.1 + 1e-6))
    assert offset.std() > 0.01  # spread over the range, not one distance
    with pytest.raises(ValueError, match="goal_offset_min"):
        envs.Push(goal_offset_min=0.1, goal_offset_max=0.05)


def test_push_gear_sets_the_motor_torque():
    assert np.all(envs.Push().mj_model.actuator_gear[:, 0] == 1.0)
    assert np.all(envs.Push(gear=0.3).mj_model.actuator_gear[:, 0] == pytest.approx(0.3))
    with pytest.raises(ValueError, match="gear"):
        envs.Push(gear=0.0)


@pytest.mark.parametrize("contact", ["arm", "fingertip"])
def test_push_contact_decides_what_touches_the_puck(contact):
    # MuJoCo's C engine on the env's MJCF (no XLA compile). The arm straight along -0.6 rad,
    # the shoulder turning counter-clockwise: the forearm sweeps over a puck at 0.15 m (the
    # fingertip passes 0.05 m outside it), and the fingertip itself into a puck at 0.2 m.
    import mujoco

    model = envs.Push(contact=contact).mj_model

    def moved(puck_xy) -> float:
        data = mujoco.MjData(model)
        data.qpos[:] = [-0.6, 0.0, *puck_xy]
        data.ctrl[:] = [1.0, 0.0]
        for _ in range(40):
            mujoco.mj_step(model, data)
        return float(np.linalg.norm(data.qpos[2:4] - np.asarray(puck_xy)))

    swept = moved([0.15, 0.0])
    tipped = moved([0.2 * np.cos(0.2), 0.2 * np.sin(0.2)])
    assert tipped > 0.02  # the fingertip pushes in both modes
    if contact == "arm":
        assert swept > 0.02
    else:
        assert swept < 1e-6  # the links pass over the puck


def test_push_pusher_moves_the_fingertip_at_the_commanded_velocity_and_pushes():
    # MuJoCo's C engine on the env's MJCF (no XLA compile): full action along +x drives the
    # pusher at pusher_speed; it meets a puck on its line and pushes it along +x.
    import mujoco

    from rlx.envs.mjx_base import scale_action

    env = envs.Push(effector="pusher", contact="fingertip", pusher_speed=0.4)
    model = env.mj_model
    assert model.nu == 2 and model.nq == 4
    data = mujoco.MjData(model)
    data.qpos[:] = [0.0, 0.0, 0.1, 0.0]
    data.ctrl[:] = np.asarray(scale_action(model, jnp.array([1.0, 0.0])))
    for _ in range(10):  # 0.1 s: five velocity time constants
        mujoco.mj_step(model, data)
    np.testing.assert_allclose(data.qvel[:2], [0.4, 0.0], atol=0.01)
    for _ in range(50):
        mujoco.mj_step(model, data)
    assert data.qpos[2] > 0.12 and abs(data.qpos[3]) < 1e-6  # pushed straight on
    assert data.qpos[2] - data.qpos[0] == pytest.approx(0.03, abs=0.003)  # touching it


def test_push_pusher_reset_and_observation():
    env = envs.Push(
        effector="pusher",
        contact="fingertip",
        goal_offset_min=0.04,
        goal_offset_max=0.1,
        impl="c",  # the reset's placement is checked, not the physics: the C engine
    )
    keys = jax.random.split(jax.random.key(3), 8)
    state = jax.jit(jax.vmap(env.reset))(keys)
    qpos, obs = np.asarray(state.physics.qpos), np.asarray(state.obs)
    assert obs.shape == (8, 14)
    assert np.all(np.linalg.norm(qpos[:, :2], axis=-1) <= env.pusher_start_radius + 1e-6)
    np.testing.assert_allclose(obs[:, :2], qpos[:, :2], atol=1e-6)  # the pusher's x, y
    np.testing.assert_allclose(obs[:, 4:6], qpos[:, 2:4], atol=1e-6)  # the puck's
    fingertip = np.stack([state.signals["fingertip_x"], state.signals["fingertip_y"]], -1)
    np.testing.assert_allclose(fingertip, qpos[:, :2], atol=1e-6)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"effector": "hand"}, "effector must be one of"),
        ({"effector": "pusher"}, "contact: fingertip"),
        ({"effector": "pusher", "contact": "fingertip", "gear": 2.0}, "no gear"),
        ({"effector": "pusher", "contact": "fingertip", "pusher_speed": 0.0}, "pusher_speed"),
        ({"effector": "pusher", "contact": "fingertip", "pusher_start_radius": 0.06}, "clear"),
    ],
)
def test_push_pusher_rejects_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        envs.Push(**params)
