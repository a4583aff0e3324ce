"""brax:<name>: unit weights on the adapter's terms reproduce Brax's reward exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs
from rlx.config import build as build_lib

CASES = [
    pytest.param(("inverted_pendulum", "mjx"), id="inverted_pendulum-mjx"),
    # 45 s cold: the slow tier (humanoid's own reward parts; the adapter's mechanics are the same)
    pytest.param(("humanoid", "mjx"), id="humanoid-mjx", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module", params=CASES)
def stepped(request):
    """(env, brax rewards [T, B], rlx transitions [T, B]) over 3 random steps of 2 envs."""
    brax_name, backend = request.param
    env = envs.make(f"brax:{brax_name}", backend=backend)
    raw = env.env

    @jax.jit
    def run(key):
        state = jax.vmap(env.reset)(jax.random.split(key, 2))

        def step(state, k):
            action = jax.random.uniform(k, (2, env.action_space.size), minval=-1, maxval=1)
            brax_next = jax.vmap(raw.brax.step)(state.physics, action)
            state = jax.vmap(env.step)(state, action)
            return state, (brax_next.reward, state.terms, state.primary, state.obs)

        return jax.lax.scan(step, state, jax.random.split(key, 3))[1]

    return env, run(jax.random.key(0))


def test_unit_weights_reproduce_brax_reward(stepped):
    env, (brax_reward, terms, primary, obs) = stepped
    assert env.term_names[-1] == "residual"
    unit_weights = {k: 1.0 for k in env.term_names}
    reward = sum(unit_weights[k] * terms[k] for k in env.term_names)
    np.testing.assert_allclose(reward, brax_reward, rtol=1e-6, atol=1e-6)
    assert np.all(np.isfinite(obs))


def test_reward_parts_carry_the_reward(stepped):
    env, (brax_reward, terms, primary, obs) = stepped
    if len(env.term_names) == 1:  # inverted_pendulum: Brax reports no parts
        np.testing.assert_allclose(terms["residual"], brax_reward)
        return
    # Where Brax reports its parts, the residual is float round-off only.
    assert float(jnp.max(jnp.abs(terms["residual"]))) < 1e-4


def test_unknown_brax_env_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown Brax env 'nope'.*humanoid"):
        envs.make("brax:nope")


def test_brax_env_in_a_config_is_checked(tmp_path):
    from rlx import config as config_lib

    path = tmp_path / "c.yaml"
    path.write_text("env: {name: 'brax:nope'}\nreward: {weights: {residual: 1.0}}\n")
    with pytest.raises(config_lib.ConfigError, match="key 'env.name': unknown Brax env"):
        build_lib.load(path)
    path.write_text("env: {name: 'brax:reacher'}\nreward: {weights: {reward_dist: 1.0}}\n")
    assert build_lib.load(path).env.params["backend"] == "mjx"


def test_a_brax_env_with_impl_warp_is_one_line(tmp_path, capsys):
    pytest.importorskip("brax")
    from pathlib import Path

    from conftest import CONFIGS
    from rlx import cli

    config = Path(CONFIGS) / "meta" / "hopper_alive.yaml"
    args = ["train", str(config), "env.params.impl=warp", "--run-dir", str(tmp_path / "r")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "env.params.impl" in err and "JAX implementation only" in err, err
    assert len(err.splitlines()) == 1 and not (tmp_path / "r").exists()
