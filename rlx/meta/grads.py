"""Meta-gradient estimators over pytrees, independent of PPO (so they can be checked on toy
problems against finite differences and closed forms).

Notation: ``theta`` the inner (policy) params, ``phi`` the outer (reward) params, L_in(theta,
phi) the inner loss, L_out(theta) the outer loss (minus the primary objective).

- ``unroll``: theta_K(phi) after K inner updates, each optionally rematerialised
  (``jax.checkpoint``) so reverse-mode memory grows with K only by the saved inputs; its
  ``jax.vjp`` is the one-step (K = 1) or truncated unrolled meta-gradient.
- ``neumann_inverse_hvp`` and ``implicit_grad``: the implicit-function-theorem meta-gradient
  dL_out/dphi = -(d2 L_in / dphi dtheta) H^-1 grad_theta L_out with H^-1 g from a Neumann series
  (Lorraine et al. 2020, as BARFI uses it), Hessian-vector products by forward-over-reverse.
- ``bootstrapped_grad``: the bootstrapped meta-gradient (Flennerhag et al. 2022, BMG): theta_K
  (phi) is matched to a target pushed further (L more updates and a step on the outer
  objective, not differentiated), d/dphi mu(target, theta_K(phi)), so the outer step sees past
  the K updates it differentiates.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from rlx.core.types import PyTree


def unroll(
    step: Callable[[PyTree, PyTree], tuple[PyTree, PyTree]],
    carry: PyTree,
    phi: PyTree,
    num_steps: int,
    *,
    remat: bool = True,
) -> tuple[PyTree, PyTree]:
    """``num_steps`` applications of ``step(carry, phi) -> (carry, metrics)`` as a scan.

    Differentiable in ``phi`` (and in ``carry``). With ``remat`` each step is a
    ``jax.checkpoint``: the backward pass recomputes a step's internals from its saved inputs,
    so memory holds K carries instead of K steps' activations.
    Returns (final carry, metrics stacked over steps).
    """
    body = jax.checkpoint(step) if remat else step
    return jax.lax.scan(lambda c, _: body(c, phi), carry, None, length=num_steps)


def _tree_axpy(a, x, y):
    return jax.tree.map(lambda xi, yi: a * xi + yi, x, y)


def neumann_inverse_hvp(
    hvp: Callable[[PyTree], PyTree], g: PyTree, num_terms: int, alpha: float | jax.Array
) -> PyTree:
    """H^-1 g ~= alpha * sum_{i=0..K} (I - alpha H)^i g for a positive-definite H (loss form).

    ``hvp(v)`` returns H v. Converges as K grows when 0 < alpha < 2 / lambda_max(H).
    """

    def term(carry, _):
        v, total = carry
        v = _tree_axpy(-alpha, hvp(v), v)  # v <- (I - alpha H) v
        return (v, jax.tree.map(jnp.add, total, v)), None

    (_, total), _ = jax.lax.scan(term, (g, g), None, length=num_terms)
    return jax.tree.map(lambda t: alpha * t, total)


def implicit_grad(
    inner_grad: Callable[[PyTree, PyTree], PyTree],
    theta: PyTree,
    phi: PyTree,
    outer_grad: PyTree,
    *,
    num_terms: int,
    alpha: float | jax.Array,
) -> PyTree:
    """dL_out/dphi at an (approximate) inner optimum ``theta`` by the implicit function theorem.

    inner_grad: (theta, phi) -> grad_theta L_in(theta, phi).
    outer_grad: grad_theta L_out(theta), a pytree like ``theta``.
    Returns -(d/dphi) [grad_theta L_in(theta, phi) . stop_gradient(H^-1 outer_grad)], a pytree
    like ``phi``; H = d2 L_in / dtheta2 enters only through Hessian-vector products computed
    forward-over-reverse (``jax.jvp`` of ``inner_grad``).
    """

    def hvp(v):
        return jax.jvp(lambda t: inner_grad(t, phi), (theta,), (v,))[1]

    p = jax.lax.stop_gradient(neumann_inverse_hvp(hvp, outer_grad, num_terms, alpha))
    _, mixed_vjp = jax.vjp(lambda ph: inner_grad(theta, ph), phi)
    (mixed,) = mixed_vjp(p)
    return jax.tree.map(jnp.negative, mixed)


def bootstrapped_grad(
    forward: Callable[[PyTree], tuple[PyTree, PyTree]],
    phi: PyTree,
    extend: Callable[[PyTree, PyTree], tuple[PyTree, PyTree]],
    match: Callable[[PyTree, PyTree, PyTree, PyTree], jax.Array],
) -> tuple[PyTree, jax.Array, PyTree, PyTree]:
    """The bootstrapped meta-gradient d/dphi mu(target, theta_K(phi)) (BMG).

    forward: phi -> (theta_K, aux), the K differentiated inner updates.
    extend: (theta_K, aux) -> (target, extra): the bootstrap (L more updates from theta_K, then
      a step on the outer objective); its output is held constant (``stop_gradient``).
    match: (target, theta_K, aux, extra) -> [] the matching loss mu (a KL of the policies).
    Returns (d_phi like phi, mu, target, (aux, extra)).
    """
    theta_k, vjp_fn, aux = jax.vjp(forward, phi, has_aux=True)
    target, extra = extend(theta_k, aux)
    target = jax.lax.stop_gradient(target)
    mu, g = jax.value_and_grad(lambda th: match(target, th, aux, extra))(theta_k)
    (d_phi,) = vjp_fn(g)
    return d_phi, mu, target, (aux, extra)
