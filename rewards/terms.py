"""Building blocks for reward terms (pure, jittable, differentiable in their parameters).

Envs use these to compute their unweighted terms; reward params (bounds, margins, scales) may be
traced values. ``tolerance`` follows dm_control's ``rewards.tolerance`` and its sigmoids.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SIGMOIDS = (
    "gaussian",
    "hyperbolic",
    "long_tail",
    "reciprocal",
    "cosine",
    "linear",
    "quadratic",
    "tanh_squared",
)


def _sigmoid(x: jax.Array, value_at_1: jax.Array, kind: str) -> jax.Array:
    """A function of x >= 0 equal to 1 at 0 and ``value_at_1`` at 1 (dm_control's shapes)."""
    if kind == "gaussian":
        scale = jnp.sqrt(-2.0 * jnp.log(value_at_1))
        return jnp.exp(-0.5 * (x * scale) ** 2)
    if kind == "hyperbolic":
        scale = jnp.arccosh(1.0 / value_at_1)
        return 1.0 / jnp.cosh(x * scale)
    if kind == "long_tail":
        scale = jnp.sqrt(1.0 / value_at_1 - 1.0)
        return 1.0 / ((x * scale) ** 2 + 1.0)
    if kind == "reciprocal":
        scale = 1.0 / value_at_1 - 1.0
        return 1.0 / (jnp.abs(x) * scale + 1.0)
    if kind == "cosine":
        scaled = x * jnp.arccos(2.0 * value_at_1 - 1.0) / jnp.pi
        return jnp.where(jnp.abs(scaled) < 1.0, (1.0 + jnp.cos(jnp.pi * scaled)) / 2.0, 0.0)
    if kind == "linear":
        scaled = x * (1.0 - value_at_1)
        return jnp.where(jnp.abs(scaled) < 1.0, 1.0 - scaled, 0.0)
    if kind == "quadratic":
        scaled = x * jnp.sqrt(1.0 - value_at_1)
        return jnp.where(jnp.abs(scaled) < 1.0, 1.0 - scaled**2, 0.0)
    if kind == "tanh_squared":
        scale = jnp.arctanh(jnp.sqrt(1.0 - value_at_1))
        return 1.0 - jnp.tanh(x * scale) ** 2
    raise ValueError(f"unknown sigmoid {kind!r} (known: {', '.join(SIGMOIDS)})")


def tolerance(
    x: jax.Array,
    lower: float | jax.Array = 0.0,
    upper: float | jax.Array = 0.0,
    margin: float | jax.Array = 0.0,
    sigmoid: str = "gaussian",
    value_at_margin: float | jax.Array = 0.1,
) -> jax.Array:
    """1 inside [lower, upper], falling off outside with ``sigmoid`` to ``value_at_margin`` at
    distance ``margin`` from the nearest bound; with ``margin == 0`` a hard 0/1 indicator.
    Elementwise on ``x`` (any shape); bounds and margin may be traced.
    """
    if sigmoid not in SIGMOIDS:
        raise ValueError(f"unknown sigmoid {sigmoid!r} (known: {', '.join(SIGMOIDS)})")
    inside = (lower <= x) & (x <= upper)
    distance = jnp.where(x < lower, lower - x, x - upper)
    soft = margin > 0
    scaled = distance / jnp.where(soft, margin, 1.0)
    outside = jnp.where(soft, _sigmoid(scaled, jnp.asarray(value_at_margin), sigmoid), 0.0)
    return jnp.where(inside, 1.0, outside)


def exp_kernel(error: jax.Array, sigma: float | jax.Array) -> jax.Array:
    """Tracking kernel exp(-|error|^2 / sigma) over the last axis ([..., D] -> [...])."""
    return jnp.exp(-jnp.sum(jnp.square(error), axis=-1) / sigma)


def control_cost(action: jax.Array) -> jax.Array:
    """Sum of squared actions over the last axis (a positive cost)."""
    return jnp.sum(jnp.square(action), axis=-1)


def small_control(action: jax.Array) -> jax.Array:
    """dm_control's small-control factor over the last axis ([..., A] -> [...]): (4 + mean_i
    tolerance(a_i, margin 1, quadratic, 0 at the margin)) / 5, in [0.8, 1] for actions in
    [-1, 1] (1 at zero action)."""
    per_actuator = tolerance(action, 0.0, 0.0, margin=1.0, sigmoid="quadratic", value_at_margin=0.0)
    return (4.0 + jnp.mean(per_actuator, axis=-1)) / 5.0


def contact_cost(forces: jax.Array, max_cost: float | None = None) -> jax.Array:
    """Sum of squared contact (constraint) forces, optionally capped (a positive cost)."""
    cost = jnp.sum(jnp.square(forces))
    return cost if max_cost is None else jnp.minimum(cost, max_cost)


def alive_bonus(healthy: jax.Array) -> jax.Array:
    """1.0 while ``healthy`` else 0.0."""
    return jnp.asarray(healthy, jnp.float32)


def distance(a: jax.Array, b: jax.Array) -> jax.Array:
    """Euclidean distance over the last axis."""
    return jnp.linalg.norm(a - b, axis=-1)


def progress(previous_distance: jax.Array, current_distance: jax.Array) -> jax.Array:
    """Decrease of a distance this step (positive when getting closer)."""
    return previous_distance - current_distance


def success(dist: jax.Array, threshold: float | jax.Array) -> jax.Array:
    """1.0 when ``dist < threshold`` else 0.0."""
    return (dist < threshold).astype(jnp.float32)
