"""Policy and value networks (flax.linen MLPs, PureJaxRL's orthogonal initialisation)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "swish": nn.swish, "elu": nn.elu}


class MLP(nn.Module):
    """[..., in] -> [..., out] with hidden layers ``hidden`` and a scaled orthogonal init."""

    hidden: Sequence[int]
    out: int
    activation: str = "tanh"
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=nn.initializers.orthogonal(np.sqrt(2)))(x))
        return nn.Dense(self.out, kernel_init=nn.initializers.orthogonal(self.out_scale))(x)


class Policy(nn.Module):
    """obs [..., obs_size] -> distribution params [..., param_size].

    For continuous actions (``state_independent_std``) the head outputs the mean and a learned
    log-std vector (initialised at ``init_log_std``) is appended.
    """

    hidden: Sequence[int]
    param_size: int
    activation: str = "tanh"
    state_independent_std: bool = False
    init_log_std: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        if not self.state_independent_std:
            return MLP(self.hidden, self.param_size, self.activation, out_scale=0.01)(obs)
        size = self.param_size // 2
        mean = MLP(self.hidden, size, self.activation, out_scale=0.01)(obs)
        log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (size,))
        return jnp.concatenate([mean, jnp.broadcast_to(log_std, mean.shape)], axis=-1)


class Value(nn.Module):
    """obs [..., obs_size] -> V(s) [...]."""

    hidden: Sequence[int]
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1, self.activation, out_scale=1.0)(obs)[..., 0]
