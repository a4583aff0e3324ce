"""The learner's config sections: ``ppo`` (traced hyperparameters), ``train`` (sizes and
switches of the PPO run) and ``network``; their option lists are the registries that build
them (``rlx.learn.networks``, ``rlx.learn.optim``)."""

from __future__ import annotations

import dataclasses

from rlx.core.schema import NON_NEGATIVE, OPEN_UNIT, POSITIVE, SEED, SIZES, UNIT, field, one_of
from rlx.learn.networks import ACTIVATIONS, KERNEL_INITS, MEMORIES
from rlx.learn.optim import GRADIENT_CLIPS


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    learning_rate: float = field(3e-4, POSITIVE)
    entropy_cost: float = field(0.01, NON_NEGATIVE)
    value_cost: float = field(0.5, NON_NEGATIVE)
    clip_epsilon: float = field(0.2, OPEN_UNIT)
    gamma: float = field(0.99, UNIT)
    gae_lambda: float = field(0.95, UNIT)
    max_grad_norm: float = field(0.5, POSITIVE)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int = field(0, SEED, wide=True)
    total_steps: int = field(500_000, POSITIVE, "env steps per learner", wide=True)
    num_envs: int = field(8, POSITIVE)
    unroll_length: int = field(128, POSITIVE)
    num_minibatches: int = field(4, POSITIVE)
    num_epochs: int = field(4, POSITIVE)
    anneal_learning_rate: bool = field(True)
    normalize_observations: bool = field(True)
    normalize_advantages: bool = field(True)
    gradient_clip: str = field(
        "global_norm",
        one_of(GRADIENT_CLIPS),
        "clip the gradient to ppo.max_grad_norm by its global norm (PPO's usual: PureJaxRL, "
        "Brax, CleanRL) or element by element (rejax)",
    )
    clip_value_loss: bool = field(
        False,
        doc="clip V's change to +-ppo.clip_epsilon around the rollout's value and take the "
        "larger loss (CleanRL's clip_vloss, rejax)",
    )


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    policy_hidden: tuple[int, ...] = field((64, 64), SIZES)
    value_hidden: tuple[int, ...] = field((64, 64), SIZES)
    activation: str = field("tanh", one_of(tuple(ACTIVATIONS)))
    init_log_std: float = field(0.0)
    kernel_init: str = field(
        "orthogonal",
        one_of(KERNEL_INITS),
        "how the layers' kernels start: PureJaxRL's scaled orthogonal, Flax's default "
        "lecun_normal (rejax), Brax's lecun_uniform",
    )
    memory: str = field(
        "none",
        one_of(MEMORIES),
        "the policy's recurrent cell between the observation and policy_hidden (none: a "
        "feedforward MLP); it is trained over whole unrolls, minibatches of envs",
    )
    memory_size: int = field(64, POSITIVE, "units of the recurrent cell")
