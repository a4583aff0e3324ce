"""The joystick quadruped (``ant_joystick``): commands drawn in their ranges and resampled on
time, observed by the policy; the layout the policy and the critic read; the terms."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CONFIGS, tiny_overrides
from rlx import envs, runs
from rlx.config import build as build_lib
from rlx.envs.joystick import GROUPS, PRIVILEGED

pytest.importorskip("mujoco")


@pytest.fixture(scope="module")
def env():
    return envs.make_raw("ant_joystick", impl="c", command_resample_steps=5,
                         zero_command_probability=0.0)  # fmt: skip


def test_the_observation_is_the_policy_groups_then_the_privileged_rest(env):
    state = jax.jit(env.reset)(jax.random.key(0))
    actor = sum(size for _, size in GROUPS)
    assert env.actor_observation_size == actor == 36
    assert state.obs.shape == (actor + PRIVILEGED,)
    np.testing.assert_array_equal(state.obs[actor - 3 : actor], state.physics.command)
    plain = envs.make_raw("ant_joystick", impl="c", privileged=False)
    assert plain.actor_observation_size is None
    assert jax.jit(plain.reset)(jax.random.key(0)).obs.shape == (actor,)


def test_commands_are_drawn_in_their_ranges_and_resampled_on_time(env):
    keys = jax.random.split(jax.random.key(1), 64)
    state = jax.jit(jax.vmap(env.reset))(keys)
    step = jax.jit(jax.vmap(env.step))
    commands = [np.asarray(state.physics.command)]
    for _ in range(11):
        state = step(state, jnp.zeros((64, 8)))
        commands.append(np.asarray(state.physics.command))
    commands = np.stack(commands)  # [12, 64, 3]
    high = np.array([env.command_vx, env.command_vy, env.command_yaw])
    assert np.all(np.abs(commands) <= high) and np.all(commands[0].std(axis=0) > 0.1)
    changed = np.any(commands[1:] != commands[:-1], axis=-1)  # [11, 64]: steps 5 and 10
    assert changed[[4, 9]].all() and not changed[[0, 1, 2, 3, 5, 6, 7, 8, 10]].any()
    assert set(state.terms) == set(env.term_names)
    # the last step kept its command: the error is the signal's velocity against it
    error = np.abs(np.asarray(state.signals["forward_velocity"] - state.signals["command_x"]))
    np.testing.assert_allclose(state.terms["velocity_error"], error, rtol=1e-5, atol=1e-6)


def test_a_tiny_joystick_run_trains_with_the_privileged_critic_and_noise(tmp_path):
    overrides = [*tiny_overrides(str(tmp_path)), "env.sim2real.action_delay=[0,1]",
                 "env.sim2real.obs_noise={gyro: 0.1, joint_vel: 0.5}",
                 "env.sim2real.push_interval=[5,10]", "env.sim2real.push_velocity=0.3",
                 "env.reset_mode=fresh"]  # fmt: skip
    config = build_lib.load(Path(CONFIGS) / "ant_joystick.yaml", overrides)
    summary = runs.train(config, tmp_path / "run", show_progress=False)
    assert summary["status"] == "completed"
    params = build_lib.build(config).agent.actor
    assert params.actor_inputs == 36


def _sim2sim():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "sim2sim.py"
    spec = importlib.util.spec_from_file_location("sim2sim", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("actuation", ["position", "torque"])
def test_the_robot_side_of_sim2sim_computes_what_the_env_computes(actuation):
    """scripts/sim2sim.py writes the observation, the servos and the terms again in numpy on
    plain MuJoCo: from the same state and action both give the same step."""
    sim2sim = _sim2sim()
    env = envs.make_raw("ant_joystick", impl="c", actuation=actuation)
    state = jax.jit(env.reset)(jax.random.key(4))
    action = jnp.linspace(-0.8, 0.8, 8)
    stepped = jax.jit(env.step)(state, action)
    params = sim2sim.DEFAULTS | {"actuation": actuation}
    sim2real = {"action_delay": [0, 0], "motor_strength": [1, 1], "obs_noise": {},
                "push_interval": [0, 0], "push_velocity": 0.0}  # fmt: skip
    robot = sim2sim.Robot(sim2sim.ant_model(params), params, sim2real, {},
                          np.random.default_rng(0))  # fmt: skip
    robot.reset()
    robot.data.qpos[:] = np.asarray(state.physics.data.qpos, np.float64)
    robot.data.qvel[:] = np.asarray(state.physics.data.qvel, np.float64)
    robot.command = np.asarray(state.physics.command, np.float64)
    robot.mujoco.mj_forward(robot.model, robot.data)
    groups = [{"name": n, "size": k} for n, k in GROUPS]
    np.testing.assert_allclose(robot.observe(groups), state.obs[:36], atol=1e-4)
    _, terms, fallen = robot.step(np.asarray(action, np.float64))
    for name in env.term_names:
        np.testing.assert_allclose(terms[name], stepped.terms[name], rtol=2e-3, atol=2e-3,
                                   err_msg=name)  # fmt: skip
    assert fallen == bool(stepped.terminated)


def test_position_servos_hold_the_pose_that_torque_motors_fling():
    """With ``actuation: position`` (the default) an action is a joint target: random actions
    keep the torso near its standing height; Brax's torque motors (gear 150) throw it up."""
    rng = np.random.default_rng(0)
    actions = jnp.asarray(rng.uniform(-1, 1, (40, 8)), jnp.float32)
    heights = {}
    for actuation in ("position", "torque"):
        env = envs.make_raw("ant_joystick", impl="c", actuation=actuation)
        state, step = jax.jit(env.reset)(jax.random.key(0)), jax.jit(env.step)
        top = 0.0
        for action in actions:
            state = step(state, action)
            top = max(top, float(state.physics.data.qpos[2]))
        heights[actuation] = top
    assert heights["position"] < 0.7 < heights["torque"], heights
    with pytest.raises(ValueError, match="actuation must be"):
        envs.make_raw("ant_joystick", impl="c", actuation="velocity")


def test_motor_strength_is_refused_for_servo_targets_and_gains_reach_the_effort():
    """Scaling a joint target moves the pose, not the force: env.sim2real.motor_strength is a
    one-line error for the servos, whose strength is env.randomize.actuator_gain, and the
    ``torques`` term (the servos' effort) follows the randomised gains."""
    from rlx.core.schema import ConfigError

    with pytest.raises(ConfigError, match="position targets") as error:
        overrides = ["env.sim2real.motor_strength=[0.8,1.2]", "env.reset_mode=fresh"]
        build_lib.load(Path(CONFIGS) / "ant_joystick.yaml", overrides)
    assert "\n" not in str(error.value)
    env = envs.make_raw("ant_joystick", impl="c")
    state = jax.jit(env.reset)(jax.random.key(0))
    action = jnp.linspace(-1.0, 1.0, 8)
    model = env.mjx_model
    weak = model.replace(actuator_gainprm=model.actuator_gainprm * 0.5,
                         actuator_biasprm=model.actuator_biasprm * 0.5)  # fmt: skip
    ctrl = jax.jit(env.step_with_model)(model, state, action).terms["torques"]
    halved = jax.jit(env.step_with_model)(weak, state, action).terms["torques"]
    assert 0.0 < float(halved) < float(ctrl)


def test_it_renders_on_the_c_engine(env):
    """The C engine's data has no mocap fields for a model without mocap bodies: a renderer
    gets zero-size ones (rlx render drew nothing before)."""
    fields = env.render_state(jax.jit(env.reset)(jax.random.key(0)).physics)
    assert fields["qpos"].shape == (15,) and fields["mocap_pos"].shape == (0, 3)
    assert fields["mocap_quat"].shape == (0, 4)


@pytest.mark.parametrize(
    "override, words",
    [("env.params.actuation=velocity", "actuation must be"), ("env.params.kp=0", "kp > 0")],
)
def test_bad_servo_settings_are_one_line_errors_naming_the_key(override, words):
    from rlx.core.schema import ConfigError

    with pytest.raises(ConfigError) as error:
        build_lib.load(Path(CONFIGS) / "ant_joystick.yaml", [override])
    message = str(error.value)
    assert words in message and override in message and "\n" not in message, message
