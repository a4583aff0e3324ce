"""Probe envs: each checks one part of the learner against a known answer."""

import functools

import jax
import jax.numpy as jnp
import pytest

from rlx import envs
from rlx.learn import ppo
from rlx.rewards import weighted_sum


def train_probe(name: str, iterations: int, **hparams):
    env = envs.make(name)
    static = ppo.PPOStatic(
        num_envs=8,
        unroll_length=8,
        num_minibatches=2,
        num_epochs=4,
        total_iterations=iterations,
        policy_hidden=(16,),
        value_hidden=(16,),
        normalize_observations=False,
        anneal_learning_rate=False,
    )
    agent = ppo.make_ppo(static, env, weighted_sum(("reward",)))
    values = dict(
        learning_rate=3e-3,
        entropy_cost=0.0,
        value_cost=0.5,
        clip_epsilon=0.2,
        gamma=0.9,
        gae_lambda=0.95,
        max_grad_norm=1.0,
    )
    values.update(hparams)
    hp = ppo.make_hparams({"reward": 1.0}, **values)
    state = agent.init(jax.random.key(0), hp.reward_params)
    chunk = jax.jit(functools.partial(agent.train_chunk, num_iterations=iterations))
    state, _ = chunk(state, hp)
    return agent, state


def value_of(agent, state, obs):
    from rlx.learn.networks import Value

    net = Value(agent.static.value_hidden, agent.static.activation)
    return float(net.apply(state.params["value"], jnp.asarray(obs, jnp.float32)))


def policy_params(agent, state, obs):
    from rlx.learn.distributions import for_action_space
    from rlx.learn.networks import Policy

    dist = for_action_space(agent.env.action_space)
    net = Policy(
        agent.static.policy_hidden,
        dist.param_size,
        agent.static.activation,
        state_independent_std=isinstance(agent.env.action_space, envs.Box),
    )
    return dist, net.apply(state.params["policy"], jnp.asarray(obs, jnp.float32))


def test_constant_reward_value_is_one():
    agent, state = train_probe("probe/constant", 60)
    assert value_of(agent, state, [1.0]) == pytest.approx(1.0, abs=0.05)


def test_value_depends_on_observation():
    agent, state = train_probe("probe/observed", 80)
    assert value_of(agent, state, [1.0]) == pytest.approx(1.0, abs=0.1)
    assert value_of(agent, state, [-1.0]) == pytest.approx(-1.0, abs=0.1)


def test_two_steps_are_discounted():
    agent, state = train_probe("probe/two_step", 100)
    assert value_of(agent, state, [1.0]) == pytest.approx(1.0, abs=0.1)
    assert value_of(agent, state, [0.0]) == pytest.approx(0.9, abs=0.1)


def test_time_limit_is_bootstrapped_not_terminal():
    # Reward 1 forever, cut every 4 steps by the time limit: V = 1 / (1 - 0.9) = 10.
    # Treating the cut as termination would give at most 1 + .9 + .81 + .729 = 3.44.
    agent, state = train_probe("probe/time_limit", 300, learning_rate=1e-2)
    assert value_of(agent, state, [1.0]) == pytest.approx(10.0, abs=1.0)


def test_policy_learns_the_rewarded_action():
    agent, state = train_probe("probe/action", 60, entropy_cost=0.0)
    dist, logits = policy_params(agent, state, [1.0])
    assert float(jax.nn.softmax(logits)[1]) > 0.9


def test_continuous_policy_learns_the_rewarded_action():
    agent, state = train_probe("probe/continuous", 150)
    dist, params = policy_params(agent, state, [1.0])
    assert float(dist.to_env(dist.mode(params))[0]) == pytest.approx(0.5, abs=0.1)
