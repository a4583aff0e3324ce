"""The ``lift`` env: a gantry gripper that picks a ball off the floor (MJX)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs

pytest.importorskip("mujoco.mjx")


def test_lift_has_the_protocols_shapes():
    env = envs.make_raw("lift")
    state = jax.eval_shape(env.reset, jax.random.key(0))
    assert state.obs.shape == (19,) and env.action_space.size == 5
    after = jax.eval_shape(env.step, state, jax.ShapeDtypeStruct((5,), jnp.float32))
    assert set(after.terms) == set(env.term_names) and set(after.signals) == set(env.signal_names)
    with pytest.raises(ValueError, match="primary_objective"):
        envs.make_raw("lift", primary_objective="nope")


@pytest.mark.slow  # two MJX compiles (11 s cold)
def test_a_scripted_grasp_lifts_the_ball():
    env = envs.make_raw("lift")
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    state = reset(jax.random.key(3))
    low, high = env.mj_model.actuator_ctrlrange.T
    x, y = float(state.signals["object_x"]), float(state.signals["object_y"])
    plan = [  # targets: gantry x, y, z, then each finger's closing
        ([x, y, 0.0, 0, 0], 15),  # above the ball
        ([x, y, -0.065, 0, 0], 15),  # down around it: the grasp point at the ball's centre
        ([x, y, -0.065, 0.03, 0.03], 10),  # close
        ([x, y, 0.05, 0.03, 0.03], 20),  # up
    ]
    seen = []
    for target, steps in plan:
        action = jnp.asarray(2 * (np.asarray(target) - low) / (high - low) - 1, jnp.float32)
        for _ in range(steps):
            state = step(state, action)
        seen.append({k: float(v) for k, v in state.terms.items()})
    assert seen[1]["hand_object_distance"] < 0.015 and seen[1]["grasped"] == 0.0
    assert seen[2]["grasped"] == 1.0 and seen[2]["lifted"] == 0.0
    assert seen[3]["grasped"] == 1.0 and seen[3]["lifted"] == 1.0
    assert all(stage["success"] == stage["lifted"] for stage in seen)
    assert seen[3]["object_height"] > env.lift_height
    assert float(state.primary) == pytest.approx(env.lift_height)  # capped
