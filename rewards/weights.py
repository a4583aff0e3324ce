"""Weight parameterisations: how raw (traced, learnable) params become term weights.

A ``Parameterization`` is a pair ``encode(weights) -> raw params`` (run once, on the host, from
the weights a user writes in a config) and ``decode(raw, transition) -> {term: weight}`` (inside
the trace, weights [] or [T, B] when they depend on the state). An optimiser of the reward
params (a meta-gradient, a population search) moves the raw params; the parameterisation keeps
the decoded weights where they belong:

- ``free``: the weights themselves;
- ``fixed_sign``: ``sign * softplus(raw)``: a weight never changes sign (a cost stays a cost);
- ``log_scale``: ``sign * exp(raw)``: a weight never changes sign, and a step in raw is the same
  factor at any scale (an outer step of 0.1 is x1.105 for a weight of 0.001 or of 100);
- ``simplex``: ``sign * scale * softmax(raw)``: magnitudes on a simplex of fixed total;
- ``linear_head``: ``w(s) = bias + kernel . x(s)``, a state-dependent weight per term (BARFI's
  phi(s)), with x(s) the named signals at s or the observation; it has a Lipschitz penalty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlx.core.types import Transition


class Parameterization(NamedTuple):
    """encode: {term: float} -> raw params; decode: (raw, transition) -> {term: weight}.

    penalty: None, or (raw, transition) -> [] Lipschitz penalty of a learned (state-dependent)
    weight.
    """

    encode: Callable[[Mapping[str, float]], Any]
    decode: Callable[[Any, Transition], dict[str, jax.Array]]
    penalty: Callable[[Any, Transition], jax.Array] | None = None


def free() -> Parameterization:
    """The raw params are the weights."""
    return Parameterization(
        encode=lambda weights: {k: float(v) for k, v in weights.items()},
        decode=lambda raw, transition: dict(raw),
    )


def _inverse_softplus(y: float) -> float:
    return float(y + np.log(-np.expm1(-y)))


def _signs(weights: Mapping[str, float], where: str) -> dict[str, float]:
    signs = {}
    for name, value in weights.items():
        if value == 0:
            raise ValueError(f"{where}: weight of {name!r} is 0; a fixed-sign weight needs a sign")
        signs[name] = float(np.sign(value))
    return signs


def _signed(signs: Mapping[str, float], to_raw, to_magnitude) -> Parameterization:
    """``w = sign * to_magnitude(raw)`` with static ``signs``; ``to_raw`` inverts it on |w|."""
    signs = dict(signs)

    def encode(weights):
        out = {}
        for name, value in weights.items():
            if np.sign(value) != signs[name]:
                raise ValueError(f"weight {value} of {name!r} does not have sign {signs[name]}")
            out[name] = to_raw(abs(float(value)))
        return out

    def decode(raw, transition):
        del transition
        return {name: signs[name] * to_magnitude(raw[name]) for name in signs}

    return Parameterization(encode=encode, decode=decode)


def fixed_sign(signs: Mapping[str, float]) -> Parameterization:
    """``w = sign * softplus(raw)``; ``signs`` ({term: +1 or -1}) are static."""
    return _signed(signs, _inverse_softplus, jax.nn.softplus)


def log_scale(signs: Mapping[str, float]) -> Parameterization:
    """``w = sign * exp(raw)`` (raw = log|w|); ``signs`` ({term: +1 or -1}) are static."""
    return _signed(signs, lambda m: float(np.log(m)), jnp.exp)


def simplex(signs: Mapping[str, float], scale: float) -> Parameterization:
    """``w = sign * scale * softmax(raw)``: |w| sums to the static ``scale``."""
    signs, names = dict(signs), tuple(signs)

    def encode(weights):
        total = sum(abs(float(v)) for v in weights.values())
        if not np.isclose(total, scale, rtol=1e-5):
            raise ValueError(f"simplex weights must have |w| summing to {scale}, got {total}")
        return {name: float(np.log(abs(float(weights[name])) / total)) for name in names}

    def decode(raw, transition):
        del transition
        probs = jax.nn.softmax(jnp.stack([raw[name] for name in names]))
        return {name: signs[name] * scale * probs[i] for i, name in enumerate(names)}

    return Parameterization(encode=encode, decode=decode)


def features_of(transition: Transition, features: Sequence[str], at_next: bool = False):
    """[T, B, F] state features: the named signals (at s, or at s' if ``at_next``), or the
    observation when ``features`` is empty."""
    if not features:
        return transition.next_obs if at_next else transition.obs
    signals = transition.next_signals if at_next else transition.signals
    return jnp.stack([signals[name] for name in features], axis=-1)


def lipschitz_penalty(
    fn: Callable[[jax.Array], jax.Array], x: jax.Array, k: float = 1.0, one_sided: bool = True
) -> jax.Array:
    """Gradient penalty ``mean((|grad_x fn(x)| - k)^2)`` over a batch ``x`` [..., F].

    ``fn`` maps one [F] input to a scalar. One-sided (the default) penalises only slopes above
    ``k``, as a Lipschitz constraint; two-sided is WGAN-GP's form (Blonde et al. 2020).
    """
    flat = x.reshape((-1, x.shape[-1]))
    grads = jax.vmap(jax.grad(fn))(flat)
    excess = jnp.linalg.norm(grads, axis=-1) - k
    if one_sided:
        excess = jnp.maximum(excess, 0.0)
    return jnp.mean(excess**2)


def linear_head(
    names: Sequence[str],
    features: Sequence[str],
    num_features: int,
    lipschitz_coef: float = 0.0,
    lipschitz_k: float = 1.0,
) -> Parameterization:
    """``w_i(s) = bias_i + kernel_i . x(s)`` per term, x(s) [F] the features at s.

    The kernel starts at zero, so the weights start at the configured ones. With
    ``lipschitz_coef > 0`` the penalty is ``coef * sum_i lipschitz_penalty(w_i, x)``.
    """
    names, features = tuple(names), tuple(features)

    def encode(weights):
        return {
            "bias": {name: float(weights[name]) for name in names},
            "kernel": {name: np.zeros((num_features,), np.float32) for name in names},
        }

    def decode(raw, transition):
        x = features_of(transition, features)
        return {name: raw["bias"][name] + x @ raw["kernel"][name] for name in names}

    def penalty(raw, transition):
        x = jax.lax.stop_gradient(features_of(transition, features))
        total = 0.0
        for name in names:
            weight = lambda v, name=name: raw["bias"][name] + v @ raw["kernel"][name]
            total = total + lipschitz_penalty(weight, x, lipschitz_k)
        return lipschitz_coef * total

    return Parameterization(
        encode=encode, decode=decode, penalty=penalty if lipschitz_coef > 0 else None
    )
