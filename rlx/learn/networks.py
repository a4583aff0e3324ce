"""Policy and value networks (flax.linen MLPs; PureJaxRL's scaled orthogonal init by default,
or the LeCun inits of Flax and Brax)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "swish": nn.swish, "elu": nn.elu}
# How the Dense kernels start (biases start at 0 in all three):
# - orthogonal: PureJaxRL's and CleanRL's, gain sqrt(2) on the hidden layers and the head's
#   ``out_scale`` (0.01 for the policy, 1 for the value);
# - lecun_normal: Flax's default for nn.Dense (what rejax's networks get), every layer alike;
# - lecun_uniform: Brax's networks (brax.training.networks.MLP), every layer alike.
_INITIALIZERS = {
    "orthogonal": nn.initializers.orthogonal,
    "lecun_normal": lambda scale: nn.initializers.lecun_normal(),
    "lecun_uniform": lambda scale: nn.initializers.lecun_uniform(),
}
KERNEL_INITS = tuple(_INITIALIZERS)  # the network.kernel_init options (rlx.learn.schema)


def kernel_init(name: str, scale: float):
    """The kernel initializer ``name`` (one of ``KERNEL_INITS``); ``scale`` is the orthogonal
    init's gain and is not used by the LeCun inits."""
    return _INITIALIZERS[name](scale)


class MLP(nn.Module):
    """[..., in] -> [..., out] with hidden layers ``hidden``, kernels from ``kernel_init``
    (``KERNEL_INITS``; the orthogonal init's gain is sqrt(2) inside, ``out_scale`` at the head)."""

    hidden: Sequence[int]
    out: int
    activation: str = "tanh"
    out_scale: float = 1.0
    kernel_init: str = "orthogonal"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=kernel_init(self.kernel_init, np.sqrt(2)))(x))
        return nn.Dense(self.out, kernel_init=kernel_init(self.kernel_init, self.out_scale))(x)


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
    kernel_init: str = "orthogonal"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        head = functools.partial(
            MLP,
            self.hidden,
            activation=self.activation,
            out_scale=0.01,
            kernel_init=self.kernel_init,
        )
        if not self.state_independent_std:
            return head(self.param_size)(obs)
        size = self.param_size // 2
        mean = head(size)(obs)
        log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (size,))
        return jnp.concatenate([mean, jnp.broadcast_to(log_std, mean.shape)], axis=-1)


class Value(nn.Module):
    """obs [..., obs_size] -> V(s) [...]."""

    hidden: Sequence[int]
    activation: str = "tanh"
    kernel_init: str = "orthogonal"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        mlp = MLP(self.hidden, 1, self.activation, out_scale=1.0, kernel_init=self.kernel_init)
        return mlp(obs)[..., 0]


# The policy's memory (network.memory): none (a feedforward MLP), or a recurrent cell between
# the observation and the MLP, as rsl_rl's ActorCriticRecurrent puts it.
_CELLS = {"gru": nn.GRUCell, "lstm": nn.OptimizedLSTMCell}
MEMORIES = ("none", *_CELLS)


def memory_carry(cell: str, size: int, batch_shape: tuple[int, ...]):
    """A fresh (zero) carry of ``cell`` for ``batch_shape``: [*batch, size] for a GRU, the
    pair (c, h) of those for an LSTM."""
    zeros = jnp.zeros((*batch_shape, size), jnp.float32)
    return (zeros, zeros) if cell == "lstm" else zeros


class RecurrentPolicy(nn.Module):
    """One step of a recurrent policy: (carry, obs [..., obs_size], start [...] bool) ->
    (carry', distribution params [..., param_size]).

    ``start`` marks an observation that begins an episode: the carry is zeroed before the
    cell reads it, so no memory crosses an episode boundary. The cell (``memory``: gru or
    lstm, ``memory_size`` units) reads the observation; the MLP ``hidden`` maps its output to
    the distribution's params (a learned state-independent log-std appended for continuous
    actions, as ``Policy``).
    """

    hidden: Sequence[int]
    param_size: int
    memory: str = "gru"
    memory_size: int = 64
    activation: str = "tanh"
    state_independent_std: bool = False
    init_log_std: float = 0.0
    kernel_init: str = "orthogonal"

    @nn.compact
    def __call__(self, carry, obs: jax.Array, start: jax.Array):
        keep = jnp.logical_not(start)[..., None]
        carry = jax.tree.map(lambda c: jnp.where(keep, c, 0.0), carry)
        carry, features = _CELLS[self.memory](self.memory_size)(carry, obs)
        head = functools.partial(
            MLP, self.hidden, activation=self.activation, out_scale=0.01,
            kernel_init=self.kernel_init,
        )  # fmt: skip
        if not self.state_independent_std:
            return carry, head(self.param_size)(features)
        size = self.param_size // 2
        mean = head(size)(features)
        log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (size,))
        return carry, jnp.concatenate([mean, jnp.broadcast_to(log_std, mean.shape)], axis=-1)
