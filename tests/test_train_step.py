"""One compiled train step serves any Hparams; vmap over seeds and hparams works."""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs
from rlx.learn import acting, ppo
from rlx.rewards import weighted_sum

STATIC = ppo.PPOStatic(
    num_envs=4,
    unroll_length=8,
    num_minibatches=2,
    num_epochs=2,
    total_iterations=10,
    policy_hidden=(16,),
    value_hidden=(16,),
    num_eval_envs=2,
)


def hparams(lr=3e-4, entropy=0.01, angle=-1.0, velocity=-0.1, reward=None):
    return ppo.make_hparams(
        reward if reward is not None else {"angle_cost": angle, "velocity_cost": velocity},
        learning_rate=lr,
        entropy_cost=entropy,
        value_cost=0.5,
        clip_epsilon=0.2,
        gamma=0.99,
        gae_lambda=0.95,
        max_grad_norm=0.5,
    )


@pytest.fixture(scope="module")
def agent():
    env = envs.make("pendulum", episode_length=16)
    return ppo.make_ppo(STATIC, env, weighted_sum(("angle_cost", "velocity_cost")))


def test_train_step_compiles_once_across_hparams_and_reward_weights(agent):
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, hp):
        return agent.train_step(state, hp)

    state = agent.init(jax.random.key(0), hparams().reward_params)
    outputs = []
    for hp in (hparams(), hparams(lr=1e-3, entropy=0.0), hparams(angle=-3.0, velocity=0.0)):
        new_state, metrics = step(state, hp)
        outputs.append(float(metrics["train/reward_mean"]))
    # Same batch, different reward weights: the reward (and so the update) differs.
    assert outputs[0] == outputs[1] and outputs[2] != outputs[0]


def test_vmap_over_seeds_equals_separate_runs(agent):
    hp = hparams()
    chunk = functools.partial(agent.train_chunk, num_iterations=2)
    keys = jax.random.split(jax.random.key(3), 2)
    batched = jax.vmap(agent.init, in_axes=(0, None))(keys, hp.reward_params)
    batched, _ = jax.jit(jax.vmap(chunk, in_axes=(0, None)))(batched, hp)
    for i in range(2):
        single, _ = jax.jit(chunk)(agent.init(keys[i], hp.reward_params), hp)
        for a, b in zip(
            jax.tree.leaves(single.params),
            jax.tree.leaves(jax.tree.map(lambda x, i=i: x[i], batched.params)),
            strict=True,
        ):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_vmap_over_hparams_and_reward_weights(agent):
    hps = jax.tree.map(lambda *xs: jnp.stack(xs), hparams(angle=-1.0), hparams(lr=1e-3, angle=-5.0))
    state = agent.init(jax.random.key(0), hparams().reward_params)
    states = jax.tree.map(lambda x: jnp.stack([x, x]), state)
    step = jax.jit(jax.vmap(agent.train_step))
    new_states, metrics = step(states, hps)
    reward_means = np.asarray(metrics["train/reward_mean"])
    # Same seed and batch, weights differ by 5x on the dominant term.
    assert reward_means[1] < reward_means[0] < 0
    single, single_metrics = jax.jit(agent.train_step)(state, hparams(lr=1e-3, angle=-5.0))
    assert float(single_metrics["train/reward_mean"]) == pytest.approx(reward_means[1], rel=1e-5)


def test_evaluate_is_deterministic(agent):
    hp = hparams()
    state = agent.init(jax.random.key(0), hp.reward_params)
    evaluate = jax.jit(agent.evaluate)
    first = evaluate(state, hp, jax.random.key(7))
    second = evaluate(state, hp, jax.random.key(7))
    assert first == second
    assert set(first) >= {"eval/return", "eval/primary_return", "eval/terms/angle_cost"}


class _WeakTypedEnv(envs.ProbeConstant.__mro__[1]):  # the probes' base: one step, reward 1
    """Its step stores a Python float in the physics, as Brax's metrics do (weakly typed)."""

    name = "test/weak"

    def _outcome(self, obs, count, action):
        return obs, jnp.ones(()), True

    def step(self, state, action):
        stepped = super().step(state, action)
        return stepped.replace(physics=stepped.physics * 0 + 1.0, primary=jnp.asarray(2.0))


def test_repeated_chunks_do_not_retrace_when_the_env_emits_weak_types():
    env = envs.EpisodeWrapper(_WeakTypedEnv())
    agent = ppo.make_ppo(STATIC, env, weighted_sum(("reward",)))
    hp = hparams(reward={"reward": 1.0})
    chex.clear_trace_counter()

    @functools.partial(jax.jit, donate_argnums=0)
    @chex.assert_max_traces(n=1)
    def chunk(state, hp):
        return agent.train_chunk(state, hp, num_iterations=2)

    state = agent.init(jax.random.key(0), hp.reward_params)
    for _ in range(3):  # the output state goes straight back in
        state, _ = chunk(state, hp)


@pytest.mark.parametrize("unroll_length", [12, 30])
def test_value_pass_equals_a_value_pass_over_every_next_observation(unroll_length):
    # CartPole with a 12-step limit under a random policy: episodes both fall (terminated) and
    # time out (truncated) inside a rollout; 30 > 12 takes the full-pass branch.
    static = dataclasses.replace(STATIC, num_envs=16, unroll_length=unroll_length)
    agent = ppo.make_ppo(static, envs.make("cartpole", episode_length=12), weighted_sum(("alive",)))
    state = agent.init(jax.random.key(3), {"alive": 1.0})
    env_state, seen = state.env_state, {"terminated": 0, "truncated": 0}
    for i in range(3):
        key = jax.random.key(i)
        env_state, traj = acting.unroll(
            agent.actor, state.params, state.obs_stats, env_state, key, unroll_length
        )
        values, next_values = acting.value_pass(agent.actor, state.params, state.obs_stats, traj)
        value = lambda obs: acting.sample_policy_value(
            agent.actor, state.params, state.obs_stats, {"obs": obs}
        )[1]
        np.testing.assert_allclose(values, value(traj.obs), rtol=1e-5, atol=1e-6)
        expected = jnp.where(traj.terminated, 0.0, value(traj.next_obs))
        np.testing.assert_allclose(next_values, expected, rtol=1e-5, atol=1e-6)
        seen = {k: seen[k] + int(jnp.sum(getattr(traj, k))) for k in seen}
    assert seen["terminated"] > 0 and seen["truncated"] > 0, seen


def test_accumulate_episodes_matches_a_step_by_step_loop():
    # Episode sums carried across batches: every episode that ends inside the batch is
    # totalled (with what it had gathered in earlier batches), the rest carried on.
    from rlx.learn.ppo import accumulate_episodes

    rng = np.random.default_rng(0)
    T, B = 7, 5
    done = rng.random((T, B)) < 0.3
    done[:, 0] = False  # one env with no episode end in the batch
    done[[1, 4], 1] = True  # one with two
    values = {"a": rng.normal(size=(T, B)), "b": rng.normal(size=(T, B))}
    running = {"a": rng.normal(size=B), "b": rng.normal(size=B)}
    carry = {k: v.copy() for k, v in running.items()}
    want = {k: 0.0 for k in values}
    for t in range(T):
        for k in values:
            carry[k] = carry[k] + values[k][t]
            want[k] += float(np.sum(np.where(done[t], carry[k], 0.0)))
            carry[k] = np.where(done[t], 0.0, carry[k])
    as_jax = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)
    got_running, completed = accumulate_episodes(as_jax(running), as_jax(values), jnp.asarray(done))
    for k in values:
        np.testing.assert_allclose(completed[k], want[k], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got_running[k], carry[k], rtol=1e-5, atol=1e-5)
    assert completed["episodes"] == done.sum()


def test_rejax_style_clipping_changes_the_update_and_keeps_the_state_tree():
    """train.gradient_clip=elementwise and train.clip_value_loss (the settings the CartPole
    bench matches rejax with): one step from the same state and batch runs, differs from the
    default's (global-norm clip, unclipped value loss), and the state tree is the default's,
    so a checkpoint restores under either."""
    env = envs.make("pendulum", episode_length=16)
    reward = weighted_sum(("angle_cost", "velocity_cost"))
    default = ppo.make_ppo(STATIC, env, reward)
    matched = ppo.make_ppo(
        dataclasses.replace(STATIC, gradient_clip="elementwise", clip_value_loss=True), env, reward
    )
    hp = hparams()
    state = jax.jit(default.init)(jax.random.key(0), hp.reward_params)
    state, batch = jax.jit(default.collect)(state)
    samples = ppo.samples_of(default, batch, hp, state.reward_state)[0]
    matched_samples = ppo.samples_of(matched, batch, hp, state.reward_state)[0]
    assert "value" not in samples
    np.testing.assert_array_equal(matched_samples["value"], batch.traj.value.reshape(-1))
    new_default, m_default = jax.jit(default.update)(state, batch, hp)
    new_matched, m_matched = jax.jit(matched.update)(state, batch, hp)
    assert jax.tree.structure(new_default) == jax.tree.structure(new_matched)
    assert np.isfinite(float(m_matched["loss/value"]))
    differs = jax.tree.map(
        lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
        new_default.params,
        new_matched.params,
    )
    assert any(jax.tree.leaves(differs))


@pytest.mark.parametrize("typed", [True, False])
def test_env_keys_pass_the_fusion_break_unchanged(typed):
    """``ppo._unfused`` returns its keys bit for bit, typed or raw, vmapped."""
    keys = jax.random.split(jax.random.key(3) if typed else jax.random.PRNGKey(3), 6)
    out = jax.jit(jax.vmap(ppo._unfused))(jnp.stack([keys, keys[::-1]]))
    data = (lambda k: jax.random.key_data(k)) if typed else (lambda k: k)
    np.testing.assert_array_equal(data(out[0]), data(keys))
    np.testing.assert_array_equal(data(out[1]), data(keys[::-1]))
    assert out.dtype == keys.dtype


def test_init_keeps_the_env_key_split_apart_from_the_resets(agent):
    """The compiled init holds the sort that keeps XLA from fusing the env-key split into the
    resets (fused, a ~0.8 s kernel of CartPole's compile)."""
    hlo = jax.jit(agent.init).lower(jax.random.key(0), hparams().reward_params).compile()
    assert " sort(" in hlo.as_text()
