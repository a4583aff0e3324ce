"""Humanoid stand / walk / run: the task terms and primaries follow their definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs
from rlx.rewards.terms import tolerance

# The physics backend: MuJoCo's C engine in the fast tier (compiles in seconds), MJX in the slow
# one (the terms and geometry checked here do not depend on it; tests/test_mujoco_c.py checks
# the two backends against each other).
IMPLS = ["c", pytest.param("jax", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=IMPLS)
def stand_steps(request):
    """Two envs of humanoid_stand, three steps of random actions: (states, actions)."""
    env = envs.make("humanoid_stand", episode_length=16, impl=request.param)
    batched = envs.VmapWrapper(env)

    @jax.jit
    def run(key):
        state = batched.reset(jax.random.split(key, 2))

        def step(state, k):
            action = jax.random.uniform(k, (2, env.action_space.size), minval=-1.0)
            state = batched.step(state, action)
            return state, (state, action)

        return jax.lax.scan(step, state, jax.random.split(key, 3))[1]

    return env, run(jax.random.key(0))


def test_stand_terms_and_primary(stand_steps):
    env, (states, actions) = stand_steps
    terms, signals = states.terms, states.next_signals
    assert set(terms) == set(env.term_names)
    for name in ("standing", "upright", "move", "small_control"):
        values = np.asarray(terms[name])
        assert np.all((values >= 0) & (values <= 1)), name
    height = np.asarray(signals["torso_height"])
    np.testing.assert_allclose(
        terms["standing"], tolerance(jnp.asarray(height), 1.2, jnp.inf, 0.3), rtol=1e-5
    )
    upright = np.asarray(signals["uprightness"]) >= 0.9
    np.testing.assert_allclose(states.primary, height * upright, rtol=1e-6)
    control = (4 + np.mean(np.maximum(1 - np.asarray(actions) ** 2, 0), axis=-1)) / 5
    np.testing.assert_allclose(terms["small_control"], control, rtol=1e-5)
    np.testing.assert_allclose(terms["speed_error"], np.abs(signals["forward_velocity"]), rtol=1e-6)


def test_walk_and_run_targets_and_primaries(stand_steps):
    walk, run = envs.HumanoidWalk(), envs.HumanoidRun()
    assert walk.target_speed == 1.0 and run.target_speed == 10.0
    # The move term and primaries are functions of the signals: check them on a stand state.
    fake = jax.tree.map(lambda x: x[0, 0], stand_steps[1][0])
    signals = fake.next_signals | {"forward_velocity": jnp.float32(0.5)}
    state = fake.replace(next_signals=signals)
    action = jnp.zeros((walk.action_space.size,))
    walk_terms, walk_primary = walk._task_terms(state, action)
    run_terms, run_primary = run._task_terms(state, action)
    assert float(walk_primary) == pytest.approx(-0.5)
    assert float(run_primary) == pytest.approx(0.5)
    assert float(walk_terms["move"]) == pytest.approx(0.5)  # linear: v / target inside margin
    assert float(run_terms["move"]) == pytest.approx(0.05)
    assert float(walk_terms["small_control"]) == pytest.approx(1.0)
