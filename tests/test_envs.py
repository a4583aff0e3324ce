import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TRACE_ONLY_ENVS
from rlx import envs
from rlx.envs import Box, Discrete, VmapWrapper, observation_size


def _random_actions(env, key, batch):
    space = env.action_space
    if isinstance(space, Discrete):
        return jax.random.randint(key, (batch,), 0, space.num_actions)
    return jax.random.uniform(key, (batch, space.size), minval=space.low, maxval=space.high)


@pytest.mark.parametrize("name", sorted(envs.REGISTRY))
def test_every_registered_env_resets_and_steps(name):
    env = envs.make(name)
    batched = VmapWrapper(env)
    size = observation_size(env)

    @jax.jit
    def run(key):
        state = batched.reset(jax.random.split(key, 2))

        def step(state, k):
            state = batched.step(state, _random_actions(env, k, 2))
            return state, (state.obs, state.terms, state.primary, state.done)

        return jax.lax.scan(step, state, jax.random.split(key, 3))

    if name in TRACE_ONLY_ENVS:  # compiled and run by another test (see conftest)
        state, (obs, terms, primary, done) = jax.eval_shape(run, jax.random.key(0))
    else:
        state, (obs, terms, primary, done) = run(jax.random.key(0))
        for leaf in jax.tree.leaves((obs, terms, primary)):
            assert np.all(np.isfinite(leaf))
    assert obs.shape == (3, 2, size)
    assert set(terms) == set(env.term_names)
    assert set(state.signals) == set(state.next_signals) == set(env.signal_names)


def test_cartpole_step_matches_classic_equations():
    env = envs.CartPole()
    state = env.reset(jax.random.key(0))
    physics = jnp.array([0.1, -0.2, 0.05, 0.3, 0.04])  # the 5th: previous theta
    state = state.replace(physics=physics, obs=physics[:4])
    out = env.step(state, jnp.int32(1))
    x, x_dot, th, th_dot = (float(v) for v in physics[:4])
    temp = (10.0 + 0.05 * th_dot**2 * np.sin(th)) / 1.1
    th_acc = (9.8 * np.sin(th) - np.cos(th) * temp) / (0.5 * (4 / 3 - 0.1 * np.cos(th) ** 2 / 1.1))
    x_acc = temp - 0.05 * th_acc * np.cos(th) / 1.1
    expected = [x + 0.02 * x_dot, x_dot + 0.02 * x_acc, th + 0.02 * th_dot, th_dot + 0.02 * th_acc]
    np.testing.assert_allclose(out.obs, expected, rtol=1e-5)
    assert float(out.terms["alive"]) == 1.0 and float(out.primary) == 1.0
    assert not bool(out.terminated)
    tilted = state.replace(physics=jnp.array([0.0, 0.0, 0.25, 0.0, 0.25]))
    assert bool(env.step(tilted, jnp.int32(0)).terminated)


def test_time_limit_truncates_and_keeps_pre_reset_next_obs():
    env = envs.make("pendulum", episode_length=3)
    state = env.reset(jax.random.key(0))
    action = jnp.zeros((1,))
    for _ in range(2):
        state = env.step(state, action)
        assert not bool(state.truncated)
        np.testing.assert_array_equal(state.obs, state.next_obs)
    before = state
    state = env.step(state, action)
    assert bool(state.truncated) and not bool(state.terminated)
    assert int(state.step_count) == 0
    # next_obs is the pre-reset observation; obs is a fresh reset.
    assert not np.allclose(state.obs, state.next_obs)
    expected_next = env.env.step(before, action).next_obs
    np.testing.assert_allclose(state.next_obs, expected_next, rtol=1e-6)
    np.testing.assert_allclose(state.signals["uprightness"], state.obs[0], rtol=1e-6)


def test_termination_is_not_truncation():
    env = envs.make("probe/constant")
    state = env.step(env.reset(jax.random.key(0)), jnp.int32(0))
    assert bool(state.terminated) and not bool(state.truncated)


def test_observation_size_never_resets():
    calls = []

    class Counting(envs.CartPole):
        def reset(self, key):
            calls.append(isinstance(key, jax.core.Tracer))
            return super().reset(key)

    assert observation_size(Counting()) == 4
    # eval_shape traces with abstract values: no concrete key ever reaches reset.
    assert calls == [True]


def test_unknown_env_names_the_registered_ones():
    with pytest.raises(envs.UnknownEnvError, match="cartpole"):
        envs.make("no-such-env")


def test_pendulum_action_space_is_box():
    assert envs.make("pendulum").action_space == Box(size=1, low=-2.0, high=2.0)


@pytest.mark.parametrize("reset_mode", ["fresh", "cached"])
def test_batched_step_skips_resets_without_changing_results(reset_mode):
    # VmapWrapper resets only in steps where some env ended; per-env stepping always resets.
    env = envs.make("cartpole", reset_mode=reset_mode, episode_length=5)
    batched = VmapWrapper(env)

    def run(step_fn):
        state = batched.reset(jax.random.split(jax.random.key(0), 3))
        for i in range(12):
            actions = jax.random.randint(jax.random.key(i), (3,), 0, 2)
            state = step_fn(state, actions)
        return state

    a = jax.jit(lambda: run(batched.step))()
    b = jax.jit(lambda: run(jax.vmap(env.step)))()
    # Equal up to float rounding: the two programs differ, and XLA may contract multiply-adds
    # differently in each (1 ulp seen with some compiler flags).
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(
            jax.random.key_data(x) if x.dtype == a.key.dtype else x,
            jax.random.key_data(y) if y.dtype == a.key.dtype else y,
            rtol=1e-6,
            atol=1e-7,
        )


def test_cached_reset_returns_to_the_first_state():
    env = envs.make("pendulum", reset_mode="cached", episode_length=3)
    first = env.reset(jax.random.key(0))
    state = first
    for _ in range(3):
        state = env.step(state, jnp.ones((1,)))
    assert bool(state.truncated)
    np.testing.assert_array_equal(state.obs, first.obs)
    fresh = envs.make("pendulum", episode_length=3)
    state = fresh.reset(jax.random.key(0))
    for _ in range(3):
        state = fresh.step(state, jnp.ones((1,)))
    assert not np.allclose(state.obs, first.obs)


def test_a_fresh_reset_starts_the_next_episode_from_the_ended_states_key():
    # The wrapper splits no key: the next episode is reset(key of the ended state), and that
    # reset's own new key goes on; an episode that goes on keeps its key.
    env = envs.make("cartpole", episode_length=2)
    batched = VmapWrapper(env)
    state = batched.reset(jax.random.split(jax.random.key(0), 2))
    once = batched.step(state, jnp.zeros((2,), jnp.int32))  # step 1 of 2: nobody done
    np.testing.assert_array_equal(jax.random.key_data(once.key), jax.random.key_data(state.key))
    twice = batched.step(once, jnp.zeros((2,), jnp.int32))  # the time limit: both reset
    assert bool(jnp.all(twice.truncated))
    expected = jax.vmap(env.env.reset)(once.key)
    np.testing.assert_array_equal(twice.obs, expected.obs)
    np.testing.assert_array_equal(jax.random.key_data(twice.key), jax.random.key_data(expected.key))
    assert not np.array_equal(jax.random.key_data(twice.key), jax.random.key_data(once.key))
