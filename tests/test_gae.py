import jax.numpy as jnp
import numpy as np
import pytest
from brax.training.agents.ppo.losses import compute_gae as brax_compute_gae

from rlx.learn.losses import compute_gae


def test_gae_hand_computed_with_termination_and_truncation():
    gamma, lam = 0.9, 0.5
    # One env, 4 steps: episode A ends *terminated* at t=1; episode B is *truncated* at t=3.
    rewards = jnp.array([[1.0], [2.0], [3.0], [4.0]])
    values = jnp.array([[0.5], [1.5], [2.5], [3.5]])
    next_values = jnp.array([[1.5], [9.0], [3.5], [10.0]])  # V(s'_t), pre-reset.
    terminated = jnp.array([[False], [True], [False], [False]])
    truncated = jnp.array([[False], [False], [False], [True]])
    adv, targets = compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    d0 = 1.0 + 0.9 * 1.5 - 0.5  # 1.85
    d1 = 2.0 + 0.0 - 1.5  # terminal: no bootstrap -> 0.5
    d2 = 3.0 + 0.9 * 3.5 - 2.5  # 3.65
    d3 = 4.0 + 0.9 * 10.0 - 3.5  # truncated: bootstrap from V(next_obs) -> 9.5
    a3 = d3
    a2 = d2 + 0.45 * a3
    a1 = d1  # episode boundary cuts the recursion
    a0 = d0 + 0.45 * a1
    np.testing.assert_allclose(adv[:, 0], [a0, a1, a2, a3], rtol=1e-6)
    np.testing.assert_allclose(targets, adv + values, rtol=1e-6)


@pytest.mark.parametrize("gae_lambda", [0.9, 1.0])
def test_gae_matches_brax_without_truncation(gae_lambda):
    rng = np.random.default_rng(0)
    t, b = 7, 5
    rewards = jnp.asarray(rng.normal(size=(t, b)), jnp.float32)
    values = jnp.asarray(rng.normal(size=(t, b)), jnp.float32)
    bootstrap = jnp.asarray(rng.normal(size=(b,)), jnp.float32)
    terminated = jnp.asarray(rng.random((t, b)) < 0.2)
    truncated = jnp.zeros((t, b), bool)
    # With auto-reset, Brax's next value is values[t+1] (the reset state after a terminal,
    # which termination masks out) and the bootstrap value at the end.
    next_values = jnp.concatenate([values[1:], bootstrap[None]], axis=0)
    adv, targets = compute_gae(
        rewards, values, next_values, terminated, truncated, 0.97, gae_lambda
    )
    brax_vs, brax_adv = brax_compute_gae(
        truncation=truncated.astype(jnp.float32),
        termination=terminated.astype(jnp.float32),
        rewards=rewards,
        values=values,
        bootstrap_value=bootstrap,
        lambda_=gae_lambda,
        discount=0.97,
    )
    # The lambda-return value targets agree for any lambda.
    np.testing.assert_allclose(targets, brax_vs, rtol=1e-5, atol=1e-5)
    # Brax's policy advantage is r + gamma * vs_{t+1} - V (lambda only inside vs), which is
    # the GAE advantage exactly when lambda = 1.
    if gae_lambda == 1.0:
        np.testing.assert_allclose(adv, brax_adv, rtol=1e-5, atol=1e-5)


def test_gae_is_differentiable_in_rewards_but_not_values():
    import jax

    t, b = 3, 2
    values = jnp.ones((t, b))
    flags = jnp.zeros((t, b), bool)

    def total(rewards, values):
        adv, _ = compute_gae(rewards, values, values, flags, flags, 0.9, 0.8)
        return adv.sum()

    g_rewards, g_values = jax.grad(total, argnums=(0, 1))(jnp.ones((t, b)), values)
    # d sum(A) / d r_t = sum_{k<=t} (gamma lambda)^(t-k): the first step's reward counts once.
    np.testing.assert_allclose(g_rewards[:, 0], [1.0, 1.72, 1.0 + 0.72 + 0.72**2], rtol=1e-6)
    assert float(jnp.abs(g_values).sum()) == pytest.approx(0.0)
