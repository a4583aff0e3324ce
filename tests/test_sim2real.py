"""``env.sim2real``: observation noise, action latency, motor strength and pushes, each per
env in the compiled step, each doing what it says, all off by default."""

import dataclasses
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CONFIGS
from rlx import envs
from rlx.config import build as build_lib
from rlx.core.schema import ConfigError
from rlx.core.types import Box, EnvState
from rlx.envs.base import make_state, transition_state
from rlx.envs.sim2real import SimToReal
from rlx.envs.wrappers import EpisodeWrapper, VmapWrapper

CARTPOLE = str(Path(CONFIGS) / "cartpole.yaml")


@dataclasses.dataclass(frozen=True)
class Recorder:
    """Observes the action it was given last ([1]); its physics is a planar velocity [2]
    that only pushes change (observed too): obs = [applied action, vx, vy]."""

    episode_length: int = 1000
    name: ClassVar[str] = "recorder"
    action_space = Box(1, -10.0, 10.0)
    term_names = ("zero",)
    signal_names = ()
    pushable = True

    def reset(self, key) -> EnvState:
        obs = jnp.zeros(3)
        return make_state(physics=jnp.zeros(2), obs=obs, signals={}, term_names=self.term_names,
                          key=key)  # fmt: skip

    def step(self, state, action) -> EnvState:
        obs = jnp.concatenate([action, state.physics])
        return transition_state(state, physics=state.physics, obs=obs, signals={},
                                terms={"zero": 0.0}, primary=0.0, terminated=False)  # fmt: skip

    def push(self, physics, kick):
        return physics + kick


def rollout(env, num_envs: int, steps: int, action_of=lambda t: (t + 1).astype(jnp.float32)):
    """Observations [steps, num_envs, obs] of ``env`` (unbatched, wrapped here) under
    actions ``action_of(t)`` [1], and its reset states."""
    batched = VmapWrapper(EpisodeWrapper(env))
    state = batched.reset(jax.random.split(jax.random.key(3), num_envs))

    def step(state, t):
        space = env.action_space
        shape = (num_envs, space.size) if isinstance(space, Box) else (num_envs,)
        action = jnp.broadcast_to(action_of(t), shape)
        state = batched.step(state, action)
        return state, state.obs

    _, obs = jax.lax.scan(step, state, jnp.arange(steps))
    return np.asarray(obs), state


def test_each_env_applies_the_action_of_its_own_delay_ago():
    env = SimToReal(Recorder(), action_delay=(0, 3))
    obs, start = rollout(env, 400, 8)
    delays = np.asarray(start.physics.delay)
    counts = np.bincount(delays, minlength=4)
    assert counts.sum() == 400 and counts.min() >= 60  # uniform on 0..3: 100 each expected
    for t in range(8):  # step t applies action t + 1 - k (zeros before the first)
        np.testing.assert_array_equal(obs[t, :, 0], np.maximum(t + 1 - delays, 0))


def test_motor_strength_is_drawn_per_env_and_kept_through_the_episode():
    env = SimToReal(Recorder(), motor_strength=(0.5, 1.5))
    obs, start = rollout(env, 64, 6)
    ratio = obs[:, :, 0] / np.arange(1, 7)[:, None]
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[0], ratio.shape), rtol=1e-6)
    assert ratio.min() >= 0.5 and ratio.max() <= 1.5 and ratio[0].std() > 0.15


def test_pushes_come_at_the_drawn_intervals_and_stay_within_their_size():
    env = SimToReal(Recorder(), push_interval=(3, 6), push_velocity=0.7)
    obs, _ = rollout(env, 32, 120)
    velocity = obs[:, :, 1:]
    kicks = np.diff(np.concatenate([np.zeros((1, 32, 2)), velocity]), axis=0)
    pushed = np.any(kicks != 0, axis=-1)  # [T, B]
    assert np.abs(kicks).max() <= 0.7 + 1e-6
    gaps = np.concatenate([np.diff(np.flatnonzero(pushed[:, b])) for b in range(32)])
    assert gaps.min() >= 3 and gaps.max() <= 6 and len(set(gaps.tolist())) == 4
    firsts = [np.flatnonzero(pushed[:, b])[0] for b in range(32)]
    assert len(set(firsts)) > 1  # each env on its own clock


def test_observation_noise_is_per_group_and_leaves_the_critic_rest_exact():
    cartpole = envs.make_raw("cartpole", observation="positions_privileged")
    env = SimToReal(cartpole, obs_noise=(("pole_angle", 0.05),))
    obs, _ = rollout(env, 16, 30, action_of=lambda t: jnp.int32(t % 2))
    batched = VmapWrapper(EpisodeWrapper(env))
    state = batched.reset(jax.random.split(jax.random.key(0), 4))
    true = jax.vmap(cartpole._obs)(state.physics.physics)
    noise = np.asarray(state.obs - true)
    assert np.all(noise[:, [0, 2, 3]] == 0)  # cart position and the privileged velocities
    assert 0 < np.abs(noise[:, 1]).max() <= 0.05
    assert obs.shape == (30, 16, 4)


def test_everything_is_off_by_default_and_a_config_turns_it_on():
    built = build_lib.build(build_lib.load(CARTPOLE))
    assert isinstance(built.env, EpisodeWrapper) and type(built.env.env).__name__ == "CartPole"
    on = build_lib.load(CARTPOLE, ["env.sim2real.action_delay=[1,2]",
                                   "env.sim2real.obs_noise={pole_angle: 0.01}"])  # fmt: skip
    env = build_lib.build(on).env.env
    assert isinstance(env, SimToReal) and env.action_delay == (1, 2)
    assert env.obs_noise == (("pole_angle", 0.01),)


@pytest.mark.parametrize(
    "override, message",
    [
        ("env.sim2real.obs_noise={wheel: 0.1}", "env.sim2real.*no observation group 'wheel'"),
        ("env.sim2real.obs_noise={pole_angle: -1}", "env.sim2real.obs_noise.pole_angle"),
        ("env.sim2real.action_delay=[3,1]", "env.sim2real.action_delay"),
        ("env.sim2real.action_delay=[0.5,1]", "env.sim2real.action_delay"),
        ("env.sim2real.motor_strength=[1.2,1.1]", "env.sim2real.motor_strength"),
        ("env.sim2real.motor_strength=[0.9,1.1]", "scales continuous actions"),
        ("env.sim2real.push_velocity=0.5", "a push needs both"),
        ("env.sim2real.push_interval=[10,20]", "a push needs both"),
        ("env.sim2real.nosie=1", "env.sim2real.nosie"),
        ("env.sim2real.obs_noise={pole_angle: .nan}", "env.sim2real.obs_noise.pole_angle"),
        ("env.sim2real.push_interval=[0,5]", "env.sim2real.push_interval.*1 <= low"),
    ],
)
def test_bad_settings_are_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message) as error:
        build_lib.load(CARTPOLE, [override])
    assert len(str(error.value).splitlines()) == 1


def test_a_cartpole_cannot_be_pushed():
    with pytest.raises(ConfigError, match="cannot be pushed"):
        build_lib.load(CARTPOLE, ["env.sim2real.push_interval=[5,10]",
                                  "env.sim2real.push_velocity=0.5"])  # fmt: skip


def test_a_humanoid_on_the_c_engine_is_pushed_at_its_root():
    pytest.importorskip("mujoco")
    humanoid = envs.make_raw("humanoid", impl="c")
    env = SimToReal(humanoid, push_interval=(1, 1), push_velocity=1.0)
    state = jax.jit(env.reset)(jax.random.key(0))
    pushed = jax.jit(env.step)(state, jnp.zeros(humanoid.action_space.size))
    plain = jax.jit(humanoid.step)(state.replace(physics=state.physics.physics),
                                   jnp.zeros(humanoid.action_space.size))  # fmt: skip
    dv = np.asarray(pushed.physics.physics.qvel[:2] - plain.physics.qvel[:2])
    assert 0.2 < np.abs(dv).max() <= 1.0 + 0.1  # the kick, give or take one step's dynamics


def test_cached_resets_are_refused_and_a_zero_noise_is_off():
    with pytest.raises(ConfigError, match="need env.reset_mode: fresh"):
        build_lib.load(CARTPOLE, ["env.sim2real.action_delay=[0,1]", "env.reset_mode=cached"])
    config = build_lib.load(CARTPOLE, ["env.sim2real.obs_noise={pole_angle: 0}"])
    assert type(build_lib.build(config).env.env).__name__ == "CartPole"
    config = build_lib.load(CARTPOLE, ["env.sim2real.obs_noise={pole_angle: 1e-2}"])
    assert build_lib.build(config).env.env.obs_noise == (("pole_angle", 0.01),)


@dataclasses.dataclass(frozen=True)
class Commanded(Recorder):
    """A Recorder whose first observation entry is its last_action group."""

    observation_groups: ClassVar[tuple] = (("last_action", 1), ("velocity", 2))


def test_the_last_action_group_shows_the_command_not_the_delayed_action():
    env = SimToReal(Commanded(), action_delay=(2, 2), motor_strength=(0.5, 0.5))
    obs, _ = rollout(env, 2, 4)
    np.testing.assert_array_equal(obs[:, 0, 0], [1, 2, 3, 4])  # what the policy sent
    with pytest.raises(ValueError, match="cover 2 entries, but its policy reads 3"):
        SimToReal(Short(), action_delay=(0, 1))


@dataclasses.dataclass(frozen=True)
class Short(Recorder):
    """Groups that miss an entry of the observation."""

    observation_groups: ClassVar[tuple] = (("velocity", 2),)
