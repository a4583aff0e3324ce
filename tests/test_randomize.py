"""Domain randomisation: every env draws its own model scales, within range, per reset."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import config as config_lib
from rlx import envs
from rlx.config import build as build_lib

RANGES = {"mass": (0.5, 2.0), "friction": (0.8, 1.2), "actuator_gain": (0.25, 0.5)}


# The physics backend: MuJoCo's C engine in the fast tier (compiles in seconds), MJX in the slow
# one (the terms and geometry checked here do not depend on it; tests/test_mujoco_c.py checks
# the two backends against each other).
IMPLS = ["c", pytest.param("jax", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=IMPLS)
def randomized_rollout(request):
    """4 randomised reach envs, same keys and actions, from the same first state with its
    drawn scales and with every scale 1 (one compiled rollout for both, since a second env
    would be a second compile): (states_dr, states_plain), each (first, [6] stepped). "Plain"
    holds until the episode ends at step 4, whose reset draws new scales."""
    env = envs.make("reach", episode_length=4, randomize=RANGES, impl=request.param)
    batched = envs.VmapWrapper(env)
    size = env.action_space.size
    key = jax.random.key(0)

    @jax.jit
    def rollout(state):
        def step(state, _):
            state = batched.step(state, np.ones((4, size), np.float32) * 0.7)
            return state, state

        return jax.lax.scan(step, state, None, length=6)[1]

    first = jax.jit(batched.reset)(jax.random.split(key, 4))
    ones = lambda x: jnp.ones_like(x)
    scales = first.physics
    plain = first.replace(
        physics=scales.replace(
            body_scale=ones(scales.body_scale),
            friction_scale=ones(scales.friction_scale),
            gain_scale=ones(scales.gain_scale),
        )
    )
    return (first, rollout(first)), (plain, rollout(plain))


def test_each_env_draws_its_own_scales_in_range(randomized_rollout):
    (first, states), _ = randomized_rollout
    scales = first.physics
    for name, field in (
        ("mass", "body_scale"),
        ("friction", "friction_scale"),
        ("actuator_gain", "gain_scale"),
    ):
        values = np.asarray(getattr(scales, field))
        low, high = RANGES[name]
        assert values.shape[0] == 4
        assert np.all((values >= low) & (values <= high)), name
        assert len(np.unique(values[:, 0])) == 4  # every env its own draw
    # Episodes end every 4 steps: the fresh reset draws new scales.
    before, after = (
        np.asarray(states.physics.gain_scale[2]),
        np.asarray(states.physics.gain_scale[4]),
    )
    assert not np.allclose(before, after)


def test_weaker_actuators_move_the_arm_less(randomized_rollout):
    (_, dr_states), (_, plain_states) = randomized_rollout
    # Same actions; gains of 0.25-0.5x give slower joints in the first step after reset.
    dr_speed = np.abs(np.asarray(dr_states.physics.physics.qvel[0]))
    plain_speed = np.abs(np.asarray(plain_states.physics.physics.qvel[0]))
    assert np.all(dr_speed.sum(-1) < plain_speed.sum(-1))


def test_config_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "env: {name: cartpole, randomize: {mass: [0.5, 2]}}\nreward: {weights: {alive: 1}}\n"
    )
    with pytest.raises(config_lib.ConfigError, match="env.randomize.*does not support domain"):
        build_lib.load(path)
    path.write_text(
        "env: {name: reach, randomize: {mass: [2, 1]}}\nreward: {weights: {distance: -1}}\n"
    )
    with pytest.raises(config_lib.ConfigError, match="env.randomize.mass.*0 < low <= high"):
        build_lib.load(path)
    path.write_text(
        "env: {name: reach, randomize: {friction: [0.9, 1.1]}}\nreward: {weights: {distance: -1}}\n"
    )
    assert build_lib.load(path).env.randomization()["friction"] == (0.9, 1.1)
