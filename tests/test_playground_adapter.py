"""playground:<Name>: unit weights on the adapter's terms reproduce Playground's reward exactly.

MuJoCo Playground (PyPI ``playground`` 0.2) is in the ``dev`` extra, so CI runs these.
"""

import sys
import time

import jax
import numpy as np
import pytest

from rlx import config as config_lib
from rlx import envs
from rlx.config import build as build_lib
from rlx.envs import playground_adapter

# The two cheapest suite tasks to compile: one whose reward is a product of reported factors,
# one that reports no parts (its single term is the reward).
CASES = ["CartpoleBalance", "PendulumSwingup"]
EPISODE_LENGTH = 2  # the 3-step rollout crosses one time limit


@pytest.fixture(scope="module", params=CASES)
def stepped(request):
    """(env, Playground's reset and steps, rlx's) over 3 random steps of 2 envs, one program."""
    env = envs.make(f"playground:{request.param}", episode_length=EPISODE_LENGTH)
    playground = env.env.playground

    @jax.jit
    def run(key):
        keys = jax.random.split(key, 2)
        state = jax.vmap(env.reset)(keys)
        reset_keys = jax.vmap(lambda k: jax.random.key_data(jax.random.split(k)[1]))(keys)
        pg_reset = jax.vmap(playground.reset)(reset_keys)

        def step(state, k):
            action = jax.random.uniform(k, (2, env.action_space.size), minval=-1, maxval=1)
            pg_next = jax.vmap(playground.step)(state.physics, action)
            state = jax.vmap(env.step)(state, action)
            return state, (pg_next, state)

        return state, pg_reset, jax.lax.scan(step, state, jax.random.split(key, 3))[1]

    first, pg_reset, (pg, rlx) = run(jax.random.key(0))
    return env, first, pg_reset, pg, rlx


def test_unit_weights_reproduce_playground_reward(stepped):
    env, _, _, pg, rlx = stepped
    unit_weights = {k: 1.0 for k in env.term_names}
    reward = sum(unit_weights[k] * rlx.terms[k] for k in env.term_names)
    np.testing.assert_allclose(reward, pg.reward, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(rlx.primary, pg.reward)
    assert np.all(np.isfinite(rlx.obs)) and np.all(np.isfinite(reward))


def test_terms_follow_the_reward_structure(stepped):
    env, _, _, pg, rlx = stepped
    factors = playground_adapter.REWARD_FACTORS.get(env.env.playground_name)
    if factors is None:  # PendulumSwingup reports no parts
        assert env.term_names == ("reward",)
        return
    assert env.term_names == (*factors, "residual")
    # The factors' product is Playground's reward (reward.combine: product reproduces it).
    product = np.prod([rlx.terms[k] for k in factors], axis=0)
    np.testing.assert_allclose(product, pg.reward, rtol=1e-6, atol=1e-6)
    assert set(env.signal_names) <= set(rlx.next_signals)


def test_reset_is_playgrounds_reset(stepped):
    env, first, pg_reset, _, _ = stepped
    np.testing.assert_array_equal(first.obs, pg_reset.obs)
    assert envs.observation_size(env) == first.obs.shape[-1]


def test_time_limit_truncates_and_next_obs_is_pre_reset(stepped):
    _, _, _, pg, rlx = stepped
    # Suite tasks never terminate (except on NaN); rlx's time limit truncates step 2 of 3.
    assert not np.any(rlx.terminated)
    np.testing.assert_array_equal(rlx.truncated, [[False, False], [True, True], [False, False]])
    np.testing.assert_array_equal(rlx.next_obs, pg.obs)  # before the auto-reset
    np.testing.assert_array_equal(rlx.obs[0], pg.obs[0])
    assert not np.allclose(rlx.obs[1], pg.obs[1])  # after it: the next episode's first obs
    np.testing.assert_array_equal(rlx.step_count[:, 0], [1, 0, 1])


def test_unknown_playground_env_lists_the_offline_ones():
    with pytest.raises(ValueError, match="unknown Playground env 'Nope'.*CartpoleBalance"):
        envs.make("playground:Nope")


def test_env_that_needs_menagerie_fails_fast_without_downloading():
    _, _, menagerie, menagerie_path = playground_adapter._playground()
    if menagerie_path.exists():
        pytest.skip("MuJoCo Menagerie is installed here")
    start = time.perf_counter()
    with pytest.raises(playground_adapter.AssetsUnavailableError, match="needs MuJoCo Menagerie"):
        envs.make(f"playground:{menagerie[0]}")
    assert time.perf_counter() - start < 1.0
    assert not menagerie_path.exists()  # no clone was started


def test_missing_playground_is_a_clear_import_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco_playground", None)  # import fails
    playground_adapter._playground.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install -c constraints.txt '\.\[playground\]'"):
            envs.make("playground:CartpoleBalance")
        path = tmp_path / "c.yaml"
        path.write_text("env: {name: 'playground:CartpoleBalance'}\nreward: {weights: {a: 1}}\n")
        with pytest.raises(
            config_lib.ConfigError, match="key 'env.name': .*need MuJoCo Playground"
        ):
            build_lib.load(path)
    finally:
        playground_adapter._playground.cache_clear()


def test_playground_env_in_a_config_is_checked(tmp_path):
    path = tmp_path / "c.yaml"

    def load(env: str, weights: str = "{residual: 1.0}"):
        path.write_text(f"env: {env}\nreward: {{weights: {weights}}}\n")
        return build_lib.load(path)

    config = load(
        "{name: 'playground:CartpoleBalance', params: {episode_length: 200}}",
        "{upright: 1.0, residual: 1.0}",
    )
    assert config.env.params == {"episode_length": 200, "impl": "jax"}
    bad = [
        ("{name: 'playground:Nope'}", "key 'env.name': unknown Playground env 'Nope'"),
        ("{name: 'playground:PendulumSwingup'}", "key 'reward.weights.residual': unknown reward"),
        (
            "{name: 'playground:PendulumSwingup', params: {playground_name: X}}",
            "key 'env.params.playground_name': set the Playground env in env.name",
        ),
        (
            "{name: 'playground:PendulumSwingup', params: {episode_length: 0}}",
            "key 'env.params.episode_length': must be > 0",
        ),
        (
            "{name: 'playground:PendulumSwingup', params: {impl: cuda}}",
            "key 'env.params.impl': must be one of",
        ),
        ("{name: 'playground:PendulumSwingup', params: {nope: 1}}", "key 'env.params.nope'"),
    ]
    for env, message in bad:
        with pytest.raises(config_lib.ConfigError, match=message):
            load(env)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(playground_adapter.REWARD_PARTS))
def test_summed_rewards_leave_only_round_off_in_the_residual(name):
    env = envs.make_raw(f"playground:{name}")

    @jax.jit
    def run(key):
        state = env.reset(key)
        action = jax.random.uniform(key, (env.action_space.size,), minval=-1, maxval=1)
        return env.step(env.step(state, action), action)

    state = run(jax.random.key(0))
    assert abs(float(state.terms["residual"])) < 1e-5
    assert float(sum(state.terms.values())) == pytest.approx(float(state.physics.reward), abs=1e-6)


@pytest.mark.slow
def test_reward_tables_name_metrics_the_envs_report():
    tables = {**playground_adapter.REWARD_PARTS, **playground_adapter.REWARD_FACTORS}
    for name, parts in sorted(tables.items()):
        metrics = playground_adapter._metric_names(name, "jax", 1000)
        named = {*parts, *playground_adapter._NOT_SIGNALS.get(name, ())}
        assert {f"reward/{m}" for m in named} <= set(metrics), name
