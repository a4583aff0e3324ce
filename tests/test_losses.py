import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx.core import running_stats as normalize
from rlx.learn.distributions import categorical, tanh_normal
from rlx.learn.losses import ppo_loss


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
    (rlx.learn.acting.unroll): that must give the very actions per-step sampling gives, and
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


def test_clipped_value_loss_takes_the_larger_of_the_two_errors():
    """old_value: V's change is clipped to +-eps around it and the larger squared error kept
    (CleanRL's clip_vloss, rejax); without it the plain 0.5 * mean((V - target)^2)."""
    args = dict(
        log_prob=jnp.zeros(3),
        old_log_prob=jnp.zeros(3),
        advantages=jnp.ones(3),
        entropy=jnp.zeros(3),
        clip_epsilon=0.2,
        value_cost=1.0,
        entropy_cost=0.0,
        normalize_advantages=False,
    )
    value, targets = jnp.array([1.0, 0.0, 0.5]), jnp.array([2.0, 1.0, 0.5])
    old = jnp.array([0.0, 0.1, 0.5])
    # V_clip = old + clip(V - old, -0.2, 0.2) = [0.2, 0.0, 0.5]; errors^2 unclipped [1, 1, 0],
    # clipped [3.24, 1, 0]: the max is [3.24, 1, 0].
    _, plain = ppo_loss(value=value, targets=targets, **args)
    _, clipped = ppo_loss(value=value, targets=targets, old_value=old, **args)
    assert float(plain["loss/value"]) == pytest.approx(0.5 * 2.0 / 3, rel=1e-6)
    assert float(clipped["loss/value"]) == pytest.approx(0.5 * 4.24 / 3, rel=1e-6)


def test_elementwise_gradient_clip_clips_each_element_with_the_same_state():
    """ppo_optimizer(clip="elementwise") clips every element to +-max (optax.clip, rejax's);
    "global_norm" rescales the whole gradient. The state trees are the same, so a checkpoint
    restores under either, and Adam after an elementwise clip is optax's."""
    import optax

    from rlx.learn import optim

    params = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
    grads = {"a": jnp.array([3.0, -0.1, 0.4]), "b": jnp.array([[-2.0, 0.2], [0.0, 5.0]])}
    ref = optax.chain(optax.clip(0.5), optax.scale_by_adam(eps=1e-5, eps_root=1e-10))
    ref = optax.chain(ref, optax.scale(-0.1))
    for exact in (False, True):
        opt = optim.ppo_optimizer(0.5, 0.1, exact, clip="elementwise")
        state = opt.init(params)
        glob = optim.ppo_optimizer(0.5, 0.1, exact).init(params)
        assert jax.tree.structure(state) == jax.tree.structure(glob)
        updates, _ = opt.update(grads, state, params)
        expected, _ = ref.update(grads, ref.init(params), params)
        for key in params:
            np.testing.assert_allclose(updates[key], expected[key], rtol=1e-6)
    clip = optax.clip(0.5)  # what the elementwise chain starts with
    clipped, _ = clip.update(grads, clip.init(params))
    np.testing.assert_array_equal(clipped["a"], np.float32([0.5, -0.1, 0.4]))
    np.testing.assert_array_equal(clipped["b"], np.float32([[-0.5, 0.2], [0.0, 0.5]]))
    with pytest.raises(ValueError, match="clip must be global_norm or elementwise"):
        optim.ppo_optimizer(0.5, 0.1, clip="norm")
