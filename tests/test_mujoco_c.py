"""``env.params.impl: c``: the MJX envs on MuJoCo's C engine (``rlx.envs.mujoco_c``).

The C path is checked against plain ``mujoco`` stepping one MjData per env (it must be the same
engine, to float32 rounding of what it copies out), then as a run: seeds and sweeps vmapped
(a seed of a 2-seed run is the run of that seed alone), domain randomisation, exact resume and
every meta method. Against MJX (the same MJCF through both backends) in the slow tier and in
``scripts/bench_cpu_backend.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CONFIGS, tiny_overrides, whole_and_resumed_rows
from rlx import envs
from rlx.cli import main
from rlx.config import build as build_lib

REACH = str(Path(CONFIGS) / "reach.yaml")


def _rollout(env, num_envs: int, steps: int, seed: int = 0):
    """(first state, [steps] states, [steps, num_envs, nu] actions) of uniform random
    actions, jitted and vmapped."""
    batched = envs.VmapWrapper(env)
    size = env.action_space.size
    actions = jax.random.uniform(jax.random.key(seed + 1), (steps, num_envs, size), minval=-1)

    @jax.jit
    def run(key):
        first = batched.reset(jax.random.split(key, num_envs))

        def step(state, action):
            state = batched.step(state, action)
            return state, state

        return first, jax.lax.scan(step, first, actions)[1]

    first, states = run(jax.random.key(seed))
    return first, states, np.asarray(actions)


def test_c_steps_are_mujocos_own():
    """Each env's trajectory equals MuJoCo stepping its own MjData from the same state with
    the same controls (same engine: equal to the float32 rounding of the copies)."""
    import mujoco

    env = envs.make("humanoid", impl="c", episode_length=1000, terminate_when_unhealthy=False)
    raw = env.env
    first, states, actions = _rollout(env, num_envs=3, steps=6)
    model = raw.mj_model
    nstate = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_INTEGRATION)
    for i in range(3):
        data = mujoco.MjData(model)
        bits = np.asarray(first.physics.state[i])
        row = bits.view(np.float64)
        assert row.shape == (nstate,)
        mujoco.mj_setState(model, data, row, mujoco.mjtState.mjSTATE_INTEGRATION)
        np.testing.assert_allclose(first.physics.qpos[i], data.qpos, rtol=1e-6, atol=1e-7)
        for t in range(actions.shape[0]):
            low, high = model.actuator_ctrlrange.T
            data.ctrl[:] = low + (actions[t, i] + 1.0) * 0.5 * (high - low)
            for _ in range(raw.frames_per_step):
                mujoco.mj_step(model, data)
            got = np.asarray(states.physics.state[t, i]).view(np.float64)
            want = np.empty(nstate)
            mujoco.mj_getState(model, data, want, mujoco.mjtState.mjSTATE_INTEGRATION)
            # the controls went through float32 (the policy's dtype): the same to its rounding
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(states.physics.qpos[t, i], data.qpos, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(states.physics.cvel[t, i], data.cvel, rtol=1e-3, atol=1e-3)
            assert states.physics.xmat.shape[-2:] == (3, 3)  # mjx.Data's shape


def test_replacing_a_state_field_moves_the_engines_state():
    """``data.replace(qpos=...)`` (as tests and wrappers do with ``mjx.Data``) is where the next
    C step starts from."""
    import mujoco

    env = envs.make_raw("reach", impl="c")
    model = env.mj_model
    state = jax.jit(env.reset)(jax.random.key(0))
    qpos = jnp.asarray([0.5, -0.3], jnp.float32)
    moved = state.replace(physics=state.physics.replace(qpos=qpos))
    after = jax.jit(env.step)(moved, jnp.zeros(2))
    data = mujoco.MjData(model)
    mujoco.mj_setState(model, data, np.asarray(state.physics.state).view(np.float64),
                       mujoco.mjtState.mjSTATE_INTEGRATION)  # fmt: skip
    data.qpos[:] = np.asarray(qpos, np.float64)
    low, high = model.actuator_ctrlrange.T
    data.ctrl[:] = low + 0.5 * (high - low)
    for _ in range(env.frames_per_step):
        mujoco.mj_step(model, data)
    np.testing.assert_allclose(after.physics.qpos, data.qpos, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # an MJX humanoid compile
def test_c_and_mjx_agree_until_contacts():
    """The same MJCF through both backends, the same first state and actions: ``qpos`` agrees
    to 1e-4 over the first 8 steps (the falling humanoid's contacts then make the float32 and
    float64 engines diverge: scripts/bench_cpu_backend.py reports how fast), and so do the
    terms without contact forces."""
    out = {}
    for impl in ("c", "jax"):
        env = envs.make("humanoid", impl=impl, episode_length=1000, terminate_when_unhealthy=False)
        out[impl] = _rollout(env, num_envs=2, steps=8)
    (first_c, states_c, _), (first_j, states_j, _) = out["c"], out["jax"]
    np.testing.assert_allclose(first_c.physics.qpos, first_j.physics.qpos, atol=1e-6)
    np.testing.assert_allclose(states_c.physics.qpos, states_j.physics.qpos, atol=1e-4)
    np.testing.assert_allclose(states_c.obs, states_j.obs, rtol=1e-3, atol=1e-3)
    for name in ("forward_velocity", "alive", "ctrl_cost"):
        np.testing.assert_allclose(states_c.terms[name], states_j.terms[name], atol=1e-4)


def test_c_reach_places_its_target_and_sees_positions_after_the_step():
    """reach's mocap target is where the reset put it, and site positions describe the new
    qpos (the step's ``positions_after``), as on MJX."""
    import mujoco

    env = envs.make("reach", impl="c", episode_length=50)
    raw = env.env
    first, states, _ = _rollout(env, num_envs=2, steps=3)
    model = raw.mj_model
    data = mujoco.MjData(model)
    for i in range(2):
        data.qpos[:] = np.asarray(states.physics.qpos[-1, i], np.float64)
        data.mocap_pos[:] = np.asarray(states.physics.mocap_pos[-1, i], np.float64)
        mujoco.mj_kinematics(model, data)
        np.testing.assert_allclose(states.physics.site_xpos[-1, i], data.site_xpos, atol=1e-5)
        target = np.asarray(first.physics.mocap_pos[i, 0, :2])
        assert np.linalg.norm(target) > 0.01  # drawn, not the MJCF default
        assert np.allclose(states.physics.mocap_pos[-1, i, 0, :2], target)


def test_c_randomized_models_step_per_env():
    """Domain randomisation on the C engine: each env steps its own scaled model (weaker
    actuators move the arm less than scales of 1 from the same first state), and scales of 1
    step as the model itself does."""
    ranges = {"mass": (1.0, 1.0), "friction": (1.0, 1.0), "actuator_gain": (0.2, 0.3)}
    env = envs.make("reach", impl="c", episode_length=50, randomize=ranges)
    batched = envs.VmapWrapper(env)
    actions = np.full((4, 2, env.action_space.size), 0.7, np.float32)

    @jax.jit
    def rollout(state):
        def step(state, action):
            state = batched.step(state, action)
            return state, state.physics

        return jax.lax.scan(step, state, actions)[1]

    first = jax.jit(batched.reset)(jax.random.split(jax.random.key(0), 2))
    scales = first.physics
    assert np.all(np.asarray(scales.gain_scale) <= 0.3)
    ones = first.replace(physics=scales.replace(gain_scale=jnp.ones_like(scales.gain_scale)))
    weak, plain = rollout(first), rollout(ones)
    moved = lambda p: np.abs(np.asarray(p.physics.qvel[-1, :, :2])).sum()
    assert moved(weak) < 0.5 * moved(plain)
    # scales of 1: MuJoCo's own steps of the unscaled model
    import mujoco

    model = env.env.mj_model  # DomainRandomization forwards to the reach env
    data = mujoco.MjData(model)
    inner = scales.physics
    mujoco.mj_setState(model, data, np.asarray(inner.state[0]).view(np.float64),
                       mujoco.mjtState.mjSTATE_INTEGRATION)  # fmt: skip
    low, high = model.actuator_ctrlrange.T
    data.ctrl[:] = low + (0.7 + 1.0) * 0.5 * (high - low)
    for _ in range(4 * env.env.frames_per_step):
        mujoco.mj_step(model, data)
    np.testing.assert_allclose(plain.physics.qpos[-1, 0], data.qpos, rtol=1e-4, atol=1e-5)


def test_c_has_no_physics_gradient_and_says_so():
    """No learner or meta method differentiates the simulator; a program that does fails at
    trace time (rather than giving a wrong gradient)."""
    env = envs.make("reach", impl="c", episode_length=50)
    state = env.reset(jax.random.key(0))

    def loss(action):
        return jnp.sum(env.step(state, action).obs)

    with pytest.raises(Exception, match="(?i)pure.?callback|JVP|differentiat"):
        jax.grad(loss)(jnp.zeros(env.action_space.size))


@pytest.mark.slow  # 60 s: three runs
def test_c_run_resumes_bit_identically(tmp_path):
    config = build_lib.load(REACH, [*tiny_overrides(str(tmp_path)), "env.params.impl=c",
                                    "env.reset_mode=fresh", "train.total_steps=128"])  # fmt: skip
    whole, resumed = whole_and_resumed_rows(config, tmp_path)
    assert whole == resumed and len(whole) == 4


@pytest.mark.slow  # 35 s: two runs
def test_c_seeds_are_the_runs_of_each_seed_alone(tmp_path):
    """A 2-seed run vmaps the C engine's callback over seeds: each seed's rows are the run of
    that seed alone (to the float rounding that vmapping the learner brings)."""
    from test_members import assert_rows_close

    base = [REACH, *tiny_overrides(str(tmp_path)), "env.params.impl=c", "--no-progress"]
    assert main(["train", *base, "--seeds", "2", "--run-dir", str(tmp_path / "two")]) == 0
    assert main(["train", *base, "train.seed=1", "--run-dir", str(tmp_path / "one")]) == 0
    rows = lambda path: [json.loads(line) for line in path.read_text().splitlines()]
    member = sorted((tmp_path / "two" / "members").iterdir())[1]
    assert_rows_close(rows(member / "metrics.jsonl"), rows(tmp_path / "one" / "metrics.jsonl"))


# The population (2 members vmapped around the callback) in the fast tier; the gradient
# methods, 30 s each, in the slow one.
@pytest.mark.parametrize(
    "method",
    [pytest.param(m, marks=pytest.mark.slow) for m in ("one_step", "unrolled", "implicit")]
    + ["population"],
)
def test_every_meta_method_runs_on_c(tmp_path, method):
    extra = (
        ["meta.population_size=2", "meta.exploit_fraction=0.5"] if method == "population" else []
    )
    argv = ["meta", REACH, *tiny_overrides(str(tmp_path)), "env.params.impl=c",
            f"meta.method={method}", "meta.learn=[combine/ctrl_cost]", *extra,
            "--run-dir", str(tmp_path / "run"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed"
