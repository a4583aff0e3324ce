"""BARFI's continuous GridWorld: moves, goal, trap, walls, slip and the registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs
from rlx.envs import GridWorld, VmapWrapper

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3


def _at(env, x, y):
    position = jnp.array([x, y], jnp.float32)
    return env.reset(jax.random.key(0)).replace(physics=position, obs=position)


def test_starts_at_the_corner():
    state = GridWorld().reset(jax.random.key(5))
    np.testing.assert_array_equal(state.obs, [0.125, 0.125])
    assert float(state.signals["in_trap"]) == 0.0
    assert float(state.signals["goal_distance"]) == pytest.approx(-2 * 0.745**2)


def test_straight_path_reaches_the_goal():
    env = GridWorld(slip=0.0)
    state = env.reset(jax.random.key(0))
    # Four steps right to x = 0.925; then y = 0.725 after three up, and the fourth enters the
    # goal at its first micro-step (y = 0.765) and stops there.
    for action in [RIGHT] * 4 + [UP] * 3:
        state = env.step(state, jnp.int32(action))
        assert float(state.terms["goal"]) == 0.0 and not bool(state.terminated)
        assert float(state.primary) == pytest.approx(-0.1)
    np.testing.assert_allclose(state.obs, [0.925, 0.725], atol=1e-6)
    state = env.step(state, jnp.int32(UP))
    assert bool(state.terminated)
    assert float(state.terms["goal"]) == 100.0
    assert float(state.primary) == pytest.approx(99.9)
    np.testing.assert_allclose(state.obs, [0.925, 0.765], atol=1e-6)
    assert float(state.terms["goal_distance"]) == pytest.approx(-(0.055**2 + 0.105**2), rel=1e-4)


@pytest.mark.parametrize(
    "x,expected",
    [
        (0.3, 3),  # 0.34, 0.38 outside; 0.42, 0.46, 0.50 inside
        (0.38, 5),  # 0.42 ... 0.58: the whole step
        (0.45, 3),  # 0.49, 0.53, 0.57 inside; 0.61, 0.65 outside
        (0.7, 0),
    ],
)
def test_trap_counts_micro_steps_inside(x, expected):
    env = GridWorld(slip=0.0)
    out = env.step(_at(env, x, 0.5), jnp.int32(RIGHT))
    assert float(out.terms["trap"]) == pytest.approx(50.0 * expected)
    assert float(out.primary) == pytest.approx(-0.1)  # the trap never enters the task objective


def test_walls_clip():
    env = GridWorld(slip=0.0)
    out = env.step(_at(env, 0.05, 0.5), jnp.int32(LEFT))
    np.testing.assert_allclose(out.obs, [0.0, 0.5])
    out = env.step(_at(env, 0.5, 0.95), jnp.int32(UP))
    np.testing.assert_allclose(out.obs, [0.5, 1.0])
    out = env.step(_at(env, 0.0, 0.0), jnp.int32(DOWN))
    np.testing.assert_allclose(out.obs, [0.0, 0.0])


def _positions(env, key, actions):
    """[T, 2] positions a rollout of ``actions`` visits (before auto-resets)."""

    def step(state, action):
        state = env.step(state, action)
        return state, state.next_obs

    return jax.lax.scan(step, env.reset(key), actions)[1]


def test_slip_zero_is_deterministic_and_slip_one_is_not():
    actions = jax.random.randint(jax.random.key(0), (60,), 0, 4)
    run = jax.jit(_positions, static_argnums=0)
    still = envs.make("gridworld", slip=0.0)
    a = run(still, jax.random.key(1), actions)
    b = run(still, jax.random.key(2), actions)
    np.testing.assert_array_equal(a, b)
    slippery = envs.make("gridworld", slip=1.0)
    c = run(slippery, jax.random.key(1), actions)
    d = run(slippery, jax.random.key(2), actions)
    assert not np.array_equal(c, d)


def test_primary_is_step_cost_plus_goal_and_episodes_end():
    env = envs.make("gridworld")
    batched = VmapWrapper(env)

    @jax.jit
    def run(key):
        state = batched.reset(jax.random.split(key, 8))

        def step(state, k):
            # Mostly up and right, so that some episodes reach the goal.
            action = jax.random.choice(k, 4, (8,), p=jnp.array([0.4, 0.1, 0.1, 0.4]))
            state = batched.step(state, action)
            return state, (state.terms, state.primary, state.terminated, state.truncated)

        return jax.lax.scan(step, state, jax.random.split(key, 120))[1]

    terms, primary, terminated, truncated = run(jax.random.key(0))
    assert set(terms) == set(env.term_names)
    np.testing.assert_allclose(primary, terms["step_cost"] + terms["goal"], rtol=1e-6)
    np.testing.assert_array_equal(terms["goal"] == 100.0, terminated)
    assert bool(terminated.any()) and bool(truncated.any())
    assert float(terms["trap"].max()) <= 250.0
    for leaf in jax.tree.leaves(terms):
        assert np.all(np.isfinite(leaf))
