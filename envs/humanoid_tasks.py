"""Humanoid stand, walk and run on MJX, with dm_control-style terms for the reward layer.

Same physics and observation as ``humanoid`` (Brax's humanoid MJCF); the tasks add terms built
with ``rlx.rewards.terms`` (``tolerance``, ``small_control``) in the manner of dm_control's
humanoid (whose reward is the *product* small_control * standing * upright * move, which
``configs/humanoid_*.yaml`` express with ``combine: product``):

- ``standing``: tolerance(torso height, [stand_height, inf), margin stand_height / 4);
- ``upright``: tolerance(uprightness, [0.9, inf), margin 1.9, linear, 0 at the margin);
- ``move``: stand: tolerance(|horizontal speed|, [0, 0.1], margin 1, quadratic); walk and run:
  tolerance(forward velocity, [target_speed, inf), margin target_speed, linear);
- ``small_control``: (4 + mean_i tolerance(a_i, margin 1, quadratic, 0)) / 5;
- ``speed_error``: |forward velocity - target_speed| (a positive cost);
- and the base terms ``forward_velocity``, ``alive``, ``ctrl_cost``, ``constraint_cost``.

Primary (what a user really wants): stand: torso height while upright (height times
1[uprightness >= 0.9]); walk: minus the speed tracking error -|v - target_speed|; run: forward
velocity. Signals: the base signals plus ``speed_error``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.core.types import EnvState
from rlx.envs.humanoid import Humanoid
from rlx.rewards.terms import small_control, tolerance

_TERMS = (
    "standing",
    "upright",
    "move",
    "small_control",
    "speed_error",
    "forward_velocity",
    "alive",
    "ctrl_cost",
    "constraint_cost",
)
_SIGNALS = ("torso_height", "uprightness", "forward_velocity", "x_position", "speed_error")


@dataclasses.dataclass(frozen=True)
class _HumanoidTask(Humanoid):
    stand_height: float = 1.2
    target_speed: float = 0.0
    task: ClassVar[str] = ""

    term_names = _TERMS
    signal_names = _SIGNALS

    def _task_terms(self, state: EnvState, action: jax.Array) -> tuple[dict, jax.Array]:
        """(task terms, primary) of the raw step that produced ``state`` (its next_signals)."""
        signals = state.next_signals
        height, upright_z = signals["torso_height"], signals["uprightness"]
        velocity = signals["forward_velocity"]
        standing = tolerance(
            height, self.stand_height, jnp.inf, margin=self.stand_height / 4, sigmoid="gaussian"
        )
        upright = tolerance(
            upright_z, 0.9, jnp.inf, margin=1.9, sigmoid="linear", value_at_margin=0.0
        )
        if self.task == "stand":
            speed = jnp.linalg.norm(state.physics.qvel[:2])
            move = tolerance(speed, 0.0, 0.1, margin=1.0, sigmoid="quadratic", value_at_margin=0.0)
        else:
            move = tolerance(
                velocity,
                self.target_speed,
                jnp.inf,
                margin=self.target_speed,
                sigmoid="linear",
                value_at_margin=0.0,
            )
        speed_error = jnp.abs(velocity - self.target_speed)
        terms = {
            "standing": standing,
            "upright": upright,
            "move": move,
            "small_control": small_control(action),
            "speed_error": speed_error,
        }
        if self.task == "stand":
            primary = height * (upright_z >= 0.9)
        elif self.task == "walk":
            primary = -speed_error
        else:
            primary = velocity
        return terms, primary

    def reset_with_model(self, model, key: jax.Array) -> EnvState:
        state = super().reset_with_model(model, key)
        signals = state.signals | {"speed_error": jnp.asarray(self.target_speed, jnp.float32)}
        return state.replace(signals=signals, next_signals=signals)

    def step_with_model(self, model, state: EnvState, action: jax.Array) -> EnvState:
        out = super().step_with_model(model, state, action)
        terms, primary = self._task_terms(out, action)
        signals = out.next_signals | {"speed_error": terms["speed_error"]}
        return out.replace(
            terms=out.terms | {k: jnp.asarray(v, jnp.float32) for k, v in terms.items()},
            primary=jnp.asarray(primary, jnp.float32),
            signals=signals,
            next_signals=signals,
        )


@dataclasses.dataclass(frozen=True)
class HumanoidStand(_HumanoidTask):
    """Stand up straight and still (see the module docstring for terms and primary)."""

    name: ClassVar[str] = "humanoid_stand"
    primary_term: ClassVar[str | None] = None  # primary: height while upright, no term
    task: ClassVar[str] = "stand"


@dataclasses.dataclass(frozen=True)
class HumanoidWalk(_HumanoidTask):
    """Walk forward at ``target_speed`` (1 m/s); primary: -|v - target_speed|."""

    target_speed: float = 1.0
    name: ClassVar[str] = "humanoid_walk"
    primary_term: ClassVar[str | None] = None  # primary: -|v - target_speed|, no term
    task: ClassVar[str] = "walk"


@dataclasses.dataclass(frozen=True)
class HumanoidRun(_HumanoidTask):
    """Run forward, rewarded up to ``target_speed`` (10 m/s); primary: forward velocity."""

    target_speed: float = 10.0
    name: ClassVar[str] = "humanoid_run"
    task: ClassVar[str] = "run"
