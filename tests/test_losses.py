import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import running_stats as normalize
from rlx.distributions import categorical, tanh_normal
from rlx.losses import ppo_loss


def test_ppo_loss_hand_computed():
    log_prob = jnp.log(jnp.array([0.5, 0.2, 0.9]))
    old_log_prob = jnp.log(jnp.array([0.25, 0.4, 0.9]))  # ratios 2.0, 0.5, 1.0
    advantages = jnp.array([1.0, -2.0, 3.0])
    value = jnp.array([0.0, 1.0, 2.0])
    targets = jnp.array([1.0, 1.0, 0.0])
    entropy = jnp.array([0.3, 0.6, 0.9])
    total, m = ppo_loss(
        log_prob=log_prob,
        old_log_prob=old_log_prob,
        advantages=advantages,
        value=value,
        targets=targets,
        entropy=entropy,
        clip_epsilon=0.2,
        value_cost=0.5,
        entropy_cost=0.01,
        normalize_advantages=False,
    )
    # min(rho A, clip(rho) A): 2*1 vs 1.2*1 -> 1.2 ; 0.5*-2 vs 0.8*-2 -> -1.6 ; 3 vs 3 -> 3.
    policy = -(1.2 - 1.6 + 3.0) / 3
    value_loss = 0.5 * (1.0 + 0.0 + 4.0) / 3
    expected = policy + 0.5 * value_loss - 0.01 * 0.6
    assert float(m["loss/policy"]) == pytest.approx(policy, rel=1e-5)
    assert float(m["loss/value"]) == pytest.approx(value_loss, rel=1e-5)
    assert float(total) == pytest.approx(expected, rel=1e-5)
    assert float(m["loss/clip_fraction"]) == pytest.approx(2 / 3)


def test_running_stats_match_numpy():
    rng = np.random.default_rng(1)
    batches = [rng.normal(3.0, 2.0, size=(n, 3)).astype(np.float32) for n in (5, 17, 40)]
    stats = normalize.init(3)
    for batch in batches:
        stats = normalize.update(stats, jnp.asarray(batch))
    everything = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean, everything.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.var, everything.var(0), rtol=1e-4)
    assert float(stats.count) == len(everything)


def test_tanh_normal_log_prob_is_change_of_variables():
    dist = tanh_normal(size=2, low=-1.0, high=1.0)
    params = jnp.array([0.3, -0.2, np.log(0.5), np.log(1.5)])
    raw = np.array([0.1, 1.2], np.float32)
    mean, std = np.array([0.3, -0.2]), np.array([0.5, 1.5])
    gauss = -0.5 * ((raw - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    expected = np.sum(gauss - np.log(1 - np.tanh(raw) ** 2))
    assert float(dist.log_prob(params, raw)) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(dist.to_env(raw), np.tanh(raw), rtol=1e-6)


def test_categorical_log_prob_and_mode():
    dist = categorical(3)
    logits = jnp.log(jnp.array([[0.2, 0.5, 0.3]]))
    assert float(dist.log_prob(logits, jnp.array([1]))[0]) == pytest.approx(np.log(0.5), rel=1e-6)
    assert int(dist.mode(logits)[0]) == 1
    h = -(0.2 * np.log(0.2) + 0.5 * np.log(0.5) + 0.3 * np.log(0.3))
    assert float(dist.entropy(logits)[0]) == pytest.approx(h, rel=1e-5)


@pytest.mark.parametrize("dist", [categorical(3), tanh_normal(size=2, low=-1.0, high=1.0)])
def test_noise_drawn_ahead_samples_what_sample_draws(dist):
    """A rollout draws every step's noise in one vmapped call before its scan
    (rlx.acting.unroll): that must give the very actions per-step sampling gives, and
    jax.random.categorical / normal's own draws."""
    keys = jax.random.split(jax.random.key(3), 7)  # 7 steps
    params = jax.random.normal(jax.random.key(4), (7, 5, dist.param_size))  # [T, B, P]
    per_step = jnp.stack([dist.sample(params[t], keys[t]) for t in range(7)])
    noise = jax.vmap(lambda k: dist.noise(k, (5,)))(keys)
    ahead = jax.vmap(dist.from_noise)(params, noise)
    np.testing.assert_array_equal(per_step, ahead)
    if dist.param_size == 3:  # categorical: jax's own sampler
        direct = jnp.stack([jax.random.categorical(keys[t], params[t]) for t in range(7)])
    else:
        mean, log_std = jnp.split(params, 2, axis=-1)
        eps = jnp.stack([jax.random.normal(keys[t], mean.shape[1:]) for t in range(7)])
        direct = mean + jnp.exp(jnp.clip(log_std, -5.0, 2.0)) * eps
    np.testing.assert_array_equal(per_step, direct)
