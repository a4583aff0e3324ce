"""CartPole's auxiliary terms from BARFI (Gupta et al. 2023): a PD controller on the pole angle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs


def _state(env, theta, previous_theta, x=0.0, x_dot=0.0, theta_dot=0.0):
    physics = jnp.array([x, x_dot, theta, theta_dot, previous_theta], jnp.float32)
    return env.reset(jax.random.key(0)).replace(physics=physics, obs=physics[:4])


def _classic_step(physics, action):
    """CartPole-v1's step as it was before the auxiliary terms: (next physics [4], terminated)."""
    x, x_dot, theta, theta_dot = physics
    force = jnp.where(action == 1, 10.0, -10.0)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    temp = (force + 0.05 * theta_dot**2 * sin) / 1.1
    theta_acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos**2 / 1.1))
    x_acc = temp - 0.05 * theta_acc * cos / 1.1
    cart = [x + 0.02 * x_dot, x_dot + 0.02 * x_acc]
    new = jnp.stack([*cart, theta + 0.02 * theta_dot, theta_dot + 0.02 * theta_acc])
    theta_limit = 12.0 * 2 * jnp.pi / 360
    return new, (jnp.abs(new[0]) > 2.4) | (jnp.abs(new[2]) > theta_limit)


@pytest.mark.parametrize(
    "theta,previous_theta,expected",
    [
        (0.02, 0.01, 1),  # 0.1 * 0.02 + 0.5 * 0.01 = 0.007 > 0
        (0.02, 0.03, 0),  # 0.002 - 0.005 < 0: falling back fast enough, push left
        (-0.02, -0.03, 1),  # -0.002 + 0.005 > 0
        (-0.02, -0.02, 0),  # no change: the sign of the angle decides
        (0.0, 0.0, 0),  # sigmoid(0) = 0.5 rounds to 0
    ],
)
def test_pd_action_and_terms_by_hand(theta, previous_theta, expected):
    env = envs.CartPole()
    state = _state(env, theta, previous_theta)
    assert int(env.pd_action(state.physics)) == expected
    agree = env.step(state, jnp.int32(expected))
    assert float(agree.terms["pd_agree"]) == 1.0 and float(agree.terms["pd_anti"]) == -5.0
    disagree = env.step(state, jnp.int32(1 - expected))
    assert float(disagree.terms["pd_agree"]) == 0.0 and float(disagree.terms["pd_anti"]) == 1.0
    assert float(agree.terms["alive"]) == 1.0 and not bool(agree.terminated)
    # The next state remembers the angle before the step.
    assert float(agree.physics[4]) == pytest.approx(theta)


def test_pd_gains_are_fields():
    state = _state(envs.CartPole(), 0.02, 0.03)
    assert int(envs.CartPole().pd_action(state.physics)) == 0
    assert int(envs.CartPole(pd_d=0.1).pd_action(state.physics)) == 1  # 0.002 - 0.001 > 0


def test_terms_are_zero_on_the_terminal_step():
    env = envs.CartPole()
    state = _state(env, 0.25, 0.24)  # past 12 degrees after the step
    for action in (0, 1):
        out = env.step(state, jnp.int32(action))
        assert bool(out.terminated)
        assert float(out.terms["pd_agree"]) == 0.0 and float(out.terms["pd_anti"]) == 0.0
        assert float(out.terms["alive"]) == 1.0 and float(out.primary) == 1.0


def test_first_step_uses_no_angle_change():
    env = envs.make("cartpole", episode_length=3)
    for state in (env.reset(jax.random.key(1)), env.reset(jax.random.key(2))):
        physics = state.physics
        assert float(physics[4]) == float(physics[2])
        assert int(env.env.pd_action(physics)) == int(0.1 * float(physics[2]) > 0)
    # And after an auto-reset: the next episode starts with previous theta = theta.
    for _ in range(3):
        state = env.step(state, jnp.int32(1))
    assert bool(state.truncated)
    assert float(state.physics[4]) == float(state.physics[2])


def test_obs_and_dynamics_are_the_classic_ones():
    env = envs.CartPole()
    state = env.reset(jax.random.key(3))
    classic_key = jax.random.split(jax.random.key(3))[1]
    classic = jax.random.uniform(classic_key, (4,), jnp.float32, -0.05, 0.05)
    np.testing.assert_array_equal(state.obs, classic)
    assert state.obs.shape == (4,)
    actions = jax.random.randint(jax.random.key(4), (40,), 0, 2)
    for action in actions:  # eagerly, op by op: bit for bit
        state = env.step(state, action)
        classic, terminated = _classic_step(classic, action)
        np.testing.assert_array_equal(state.obs, classic)
        np.testing.assert_array_equal(state.physics[:4], classic)
        assert bool(state.terminated) == bool(terminated)
        assert float(state.terms["alive"]) == 1.0 and float(state.primary) == 1.0
        if bool(terminated):
            break


def test_pd_controller_balances_the_pole():
    # BARFI: the PD controller scores about 500. Measured: 500.0 in each of 16 episodes (and
    # of 256 with other keys).
    env = envs.CartPole()

    def episode(key):
        def step(carry, _):
            state, done, total = carry
            out = env.step(state, env.pd_action(state.physics))
            total = total + jnp.where(done, 0.0, out.primary)
            return (out, done | out.terminated, total), None

        carry = (env.reset(key), jnp.zeros((), bool), jnp.zeros(()))
        (_, _, total), _ = jax.lax.scan(step, carry, None, length=env.episode_length)
        return total

    returns = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(0), 16))
    assert float(returns.mean()) > 400
