"""BARFI's continuous GridWorld with a centre trap (Gupta et al. 2023), in pure JAX."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from rlx.core.types import Discrete, EnvState
from rlx.envs.base import make_state, transition_state

START = (0.125, 0.125)
GOAL_LOW, GOAL_HIGH = 0.75, 0.99
GOAL_CENTRE = 0.87
TRAP_LOW, TRAP_HIGH = 0.4, 0.6
# Action -> direction: up, down, left, right.
DIRECTIONS = ((0.0, 1.0), (0.0, -1.0), (-1.0, 0.0), (1.0, 0.0))


def _inside(position: jax.Array, low: float, high: float) -> jax.Array:
    return jnp.all((position >= low) & (position <= high))


@dataclasses.dataclass(frozen=True)
class GridWorld:
    """Move a point in [0, 1]^2 from (0.125, 0.125) into the goal square [0.75, 0.99]^2.

    Actions: up (0), down (1), left (2), right (3). A step moves ``step_size`` (0.2) in
    ``micro_steps`` (5) equal micro-steps of 0.04, each clipped to [0, 1] (BARFI: "about 0.2 in
    0.045 micro-steps"; equal ones make the step exactly 0.2). With probability ``slip`` the
    action is replaced by a uniformly random one (drawn from the state's key, split per step).
    Entering the goal at any micro-step ends the move there and terminates the episode.

    Terms: ``step_cost`` (-0.1 every step), ``goal`` (+100 on entering the goal, else 0),
    ``trap`` (+50 per micro-step that ends inside the trap [0.4, 0.6]^2: BARFI's misleading
    auxiliary, at most 250 per step with 5 micro-steps) and ``goal_distance`` (minus the
    squared distance of the new position to the goal centre (0.87, 0.87): the helpful one).
    Primary: ``step_cost + goal``. Signals: ``x``, ``y``, ``in_trap`` (1 inside the trap, else
    0) and ``goal_distance`` at the new position. Observation: the position [2].
    """

    episode_length: int = 50
    slip: float = 0.1
    step_size: float = 0.2
    micro_steps: int = 5
    name: ClassVar[str] = "gridworld"

    action_space = Discrete(4)
    term_names = ("step_cost", "goal", "trap", "goal_distance")
    signal_names = ("x", "y", "in_trap", "goal_distance")

    def _signals(self, position: jax.Array) -> dict[str, jax.Array]:
        return {
            "x": position[0],
            "y": position[1],
            "in_trap": _inside(position, TRAP_LOW, TRAP_HIGH).astype(jnp.float32),
            "goal_distance": -jnp.sum((position - GOAL_CENTRE) ** 2),
        }

    def reset(self, key: jax.Array) -> EnvState:
        position = jnp.array(START, jnp.float32)
        return make_state(
            physics=position,
            obs=position,
            signals=self._signals(position),
            term_names=self.term_names,
            key=key,
        )

    def _move(self, position: jax.Array, direction: jax.Array):
        """(position [2], reached_goal [], micro-steps in the trap []) after one move."""
        micro_step = direction * (self.step_size / self.micro_steps)
        reached = jnp.zeros((), bool)
        trapped = jnp.zeros((), jnp.float32)
        for _ in range(self.micro_steps):
            # Once in the goal the episode is over: the point stays where it entered.
            moved = jnp.clip(position + micro_step, 0.0, 1.0)
            position = jnp.where(reached, position, moved)
            trapped = trapped + jnp.where(reached, 0.0, _inside(position, TRAP_LOW, TRAP_HIGH))
            reached = reached | _inside(position, GOAL_LOW, GOAL_HIGH)
        return position, reached, trapped

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        key, slip_key, random_action_key = jax.random.split(state.key, 3)
        slipped = jax.random.bernoulli(slip_key, self.slip)
        random_action = jax.random.randint(random_action_key, (), 0, len(DIRECTIONS))
        action = jnp.where(slipped, random_action, action)
        direction = jnp.asarray(DIRECTIONS, jnp.float32)[action]
        position, reached, trapped = self._move(state.physics, direction)
        signals = self._signals(position)
        step_cost = jnp.full((), -0.1, jnp.float32)
        goal = jnp.where(reached, 100.0, 0.0)
        out = transition_state(
            state,
            physics=position,
            obs=position,
            signals=signals,
            terms={
                "step_cost": step_cost,
                "goal": goal,
                "trap": 50.0 * trapped,
                "goal_distance": signals["goal_distance"],
            },
            primary=step_cost + goal,
            terminated=reached,
        )
        # The slip draws used this step's key; the wrappers split the next one for resets.
        return out.replace(key=key)
