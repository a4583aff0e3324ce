"""The Transition of the data contract: what the rollout stores, leading axes ``[T, B]``."""

from __future__ import annotations

import jax
from flax import struct

Array = jax.Array


@struct.dataclass
class Transition:
    """One step of every env; each leaf has leading axes ``[T, B]`` (time-major).

    Fields:
      obs: [T, B, obs_size] raw (un-normalised) observation at s.
      action: [T, B, ...] the policy's raw sample (pre-squash for continuous actions).
      log_prob: [T, B] log-probability of ``action`` under the behaviour policy.
      value: [T, B] V(s) under the behaviour value network.
      next_obs: [T, B, obs_size] observation at s', before auto-reset.
      terms: dict of [T, B] unweighted reward terms.
      primary: [T, B] the task objective.
      signals: dict of [T, B] signals at s.
      next_signals: dict of [T, B] signals at s' (pre-reset).
      terminated: [T, B] bool, s' is terminal.
      truncated: [T, B] bool, the time limit ended the episode at s'.
    """

    obs: Array
    action: Array
    log_prob: Array
    value: Array
    next_obs: Array
    terms: dict[str, Array]
    primary: Array
    signals: dict[str, Array]
    next_signals: dict[str, Array]
    terminated: Array
    truncated: Array
