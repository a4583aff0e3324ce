"""What every meta-learner shares: its settings, phi (the outer parameters, ``Phi``) and its
metrics."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
from flax import struct

from rlx.core.types import PyTree
from rlx.learn import ppo as ppo_lib


@dataclasses.dataclass(frozen=True)
class MetaStatic:
    """Static meta settings (changing one recompiles)."""

    method: str = "one_step"
    inner_iterations: int = 1  # differentiated (unrolled) or plain updates per meta-iteration
    remat: bool = True
    learn: tuple[str, ...] = ()
    learn_gamma: bool = False
    neumann_steps: int = 5
    critic_hidden: tuple[int, ...] = (64, 64)
    warmup: int = 0
    population_size: int = 8
    exploit_fraction: float = 0.25
    fitness_window: int = 1  # population: fitness = mean primary return of the last N
    # population: the gradient method each member follows between exploit steps (the hybrid)
    member_gradient: str = "none"
    # population: how members 1..P-1 start: "normal" (phi_0 + N(0, init_scale^2)) or
    # "uniform" (each learned reward leaf drawn uniformly within search_radius of phi_0)
    init_distribution: str = "normal"
    # population: member 0 keeps phi_0 all run (never replaced nor explored)
    keep_start: bool = False
    # Meta-gradients go through the last this many minibatch steps of an update (0: all).
    grad_steps: int = 0
    # Differentiate Adam's second moment and the clipping norm too (exact), or hold them
    # constant (LIRPG's choice); see rlx/learn/optim.py.
    exact_gradient: bool = False
    # The outer step size's schedule over the run's meta-iterations (after the warmup):
    # constant, or a linear or cosine decay to outer_final_fraction of it at the end.
    outer_schedule: str = "constant"
    # one_step/unrolled: BMG's bootstrap, L plain updates past the K differentiated ones (0: off)
    bootstrap_steps: int = 0
    total_iterations: int = 0  # the run's meta-iterations (set from the config by rlx.config.build)


OUTER_SCHEDULES = ("constant", "linear", "cosine")


@struct.dataclass
class MetaHparams:
    """Traced outer hyperparameters (float32 scalars)."""

    outer_learning_rate: jax.Array
    outer_gamma: jax.Array
    outer_lambda: jax.Array
    l2: jax.Array
    gamma_l2: jax.Array
    critic_learning_rate: jax.Array
    neumann_alpha: jax.Array
    perturb_scale: jax.Array
    init_scale: jax.Array
    outer_max_grad_norm: jax.Array  # clip the outer gradient's global norm to this (0: off)
    outer_final_fraction: jax.Array  # the decayed schedules' last step / the first
    bootstrap_step_size: jax.Array  # BMG: the target's steps along the primary gradient
    search_radius: jax.Array  # learned reward leaves stay within this of their start (0: off)
    resample_probability: jax.Array  # population: a replaced member redraws phi in the box
    # population: resampling happens during this first fraction of the run's meta-iterations
    # only (1: throughout); after it a replaced member perturbs its copy, so the search settles
    resample_until: jax.Array


# Traced settings that have a neutral default (older callers need not name them).
META_HPARAM_DEFAULTS = {
    "outer_max_grad_norm": 0.0,
    "outer_final_fraction": 0.0,
    "bootstrap_step_size": 8.0,
    "search_radius": 0.0,
    "resample_probability": 0.0,
    "resample_until": 1.0,
}


def make_meta_hparams(**values: float) -> MetaHparams:
    values = {**META_HPARAM_DEFAULTS, **values}
    return MetaHparams(**{k: jnp.asarray(v, jnp.float32) for k, v in values.items()})


def outer_step_size(static: MetaStatic, iteration: jax.Array, meta_hparams: MetaHparams):
    """[] the outer step size at meta-iteration ``iteration``: ``outer_learning_rate`` times the
    schedule's factor (1 during the warmup and throughout when constant; decaying from 1 after
    the warmup to ``outer_final_fraction`` at the run's last meta-iteration)."""
    lr = meta_hparams.outer_learning_rate
    if static.outer_schedule == "constant":
        return lr
    span = max(static.total_iterations - static.warmup - 1, 1)
    progress = jnp.clip((iteration - static.warmup) / span, 0.0, 1.0)
    final = meta_hparams.outer_final_fraction
    if static.outer_schedule == "linear":
        return lr * (1.0 - (1.0 - final) * progress)
    return lr * (final + (1.0 - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress)))


def clip_outer_gradient(d_phi: PyTree, max_norm: jax.Array) -> PyTree:
    """``d_phi`` scaled to global norm ``max_norm`` when it is longer (``max_norm`` 0: as is)."""
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(d_phi)))
    factor = jnp.where(max_norm > 0, jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12)), 1.0)
    return jax.tree.map(lambda x: x * factor, d_phi)


class Hps(NamedTuple):
    """The hparams every meta-learner function takes (a pytree: both are traced)."""

    inner: ppo_lib.Hparams  # the inner learner's; its reward params are where phi starts
    outer: MetaHparams


class Meta(Protocol):
    """A meta-learner: pure functions of its state pytree and ``(Hparams, MetaHparams)``, and
    what the host needs of it. Nothing outside ``rlx.meta`` looks inside its state.

    ``init(key, hps)`` -> state; ``step(state, hps)`` -> (state, metrics) is one
    meta-iteration; ``chunk(state, hps, num_iterations)`` scans it; ``evaluate(state, hps,
    key)`` -> dict of [] eval metrics. ``learner(state, hps, member)`` -> (TrainState, Hparams
    under its phi, member index or None): the learner that eval, export and videos use (a
    population's best member by fitness unless ``member``; a ValueError for a member there is
    not); ``shardings(state, mesh)`` -> the state's shardings; ``devices_problem(devices)`` ->
    why the state cannot be split over that many devices (None: it can). ``agent`` is the
    inner PPO, ``mask`` which reward params are learned (a pytree of bools like them).
    ``env_batch_split``: whether the state is one learner whose env batch ``shardings`` splits
    over the devices (its env steps then run per device, ``rlx.run.driver``), not members.
    """

    agent: ppo_lib.PPO
    static: MetaStatic
    mask: PyTree
    env_batch_split: bool

    def init(self, key: jax.Array, hps: Hps) -> PyTree: ...

    def step(self, state: PyTree, hps: Hps) -> tuple[PyTree, dict]: ...

    def chunk(self, state: PyTree, hps: Hps, num_iterations: int) -> tuple[PyTree, dict]: ...

    def evaluate(self, state: PyTree, hps: Hps, key: jax.Array) -> dict: ...

    def learner(
        self, state: PyTree, hps: Hps, member: int | None = None
    ) -> tuple[ppo_lib.TrainState, ppo_lib.Hparams, PyTree]: ...

    def shardings(self, state: PyTree, mesh: jax.sharding.Mesh) -> PyTree: ...

    def devices_problem(self, devices: int) -> str | None: ...


def path_name(path) -> str:
    """'combine/pd_anti' for a key path of dict keys / sequence indices."""
    parts = []
    for entry in path:
        for attr in ("key", "idx", "name"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
    return "/".join(parts)


def learn_mask(reward_params: PyTree, learn: tuple[str, ...]) -> PyTree:
    """A pytree of bools like ``reward_params``: True where a leaf's path starts with one of
    ``learn`` (all leaves when ``learn`` is empty). Raises ValueError naming an entry that
    matches nothing, with the paths there are."""
    leaves = jax.tree_util.tree_leaves_with_path(reward_params)
    names = [path_name(p) for p, _ in leaves]

    def chosen(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + "/")

    for i, prefix in enumerate(learn):
        if not any(chosen(n, prefix) for n in names):
            raise ValueError(
                f"meta.learn[{i}]: {prefix!r} names no reward param (the params are: "
                f"{', '.join(names)})"
            )
    flags = [not learn or any(chosen(n, p) for p in learn) for n in names]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(reward_params), flags)


@struct.dataclass
class Phi:
    """What a meta-learner learns (its outer parameters).

    ``reward_params``: the reward layer's params (``hparams.reward_params``; the leaves
    ``MetaStatic.learn`` chooses move). ``gamma_logit``: [] the inner discount's logit with
    ``learn_gamma`` (gamma = sigmoid(logit)), else None (no leaf). The fields are in the order
    their leaves flatten in (as the dict phi was before: key splits and checkpoints keep it).
    """

    gamma_logit: jax.Array | None
    reward_params: PyTree


def init_phi(hparams: ppo_lib.Hparams, learn_gamma: bool) -> Phi:
    gamma_logit = None
    if learn_gamma:
        gamma = jnp.clip(hparams.gamma, 1e-4, 1 - 1e-4)
        gamma_logit = jnp.log(gamma) - jnp.log1p(-gamma)
    return Phi(gamma_logit=gamma_logit, reward_params=hparams.reward_params)


def clip_to_box(phi: Phi, start: PyTree, mask: PyTree, radius: jax.Array) -> Phi:
    """``phi`` with its learned reward leaves (``mask``) clipped to ``start`` +- ``radius``
    (``start``: the config's reward params; with ``parameterization: log_scale`` the weights
    stay within a factor e^radius of the config's). ``radius`` 0: phi as is."""

    def clip(x, x0, learned):
        if not learned:
            return x
        return jnp.where(radius > 0, jnp.clip(x, x0 - radius, x0 + radius), x)

    return phi.replace(reward_params=jax.tree.map(clip, phi.reward_params, start, mask))


def draw_in_box(phi: Phi, start: PyTree, mask: PyTree, radius: jax.Array, key: jax.Array) -> Phi:
    """``phi`` with each learned reward leaf drawn uniformly from ``start`` +- ``radius`` (the
    other leaves, and the discount logit, as in ``phi``)."""
    leaves, treedef = jax.tree.flatten(phi.reward_params)
    keys = jax.random.split(key, len(leaves))
    drawn = [
        x0 + radius * jax.random.uniform(k, jnp.shape(x0), jnp.result_type(x), -1.0, 1.0)
        if learned
        else x
        for x, x0, learned, k in zip(
            leaves, jax.tree.leaves(start), jax.tree.leaves(mask), keys, strict=True
        )
    ]
    return phi.replace(reward_params=jax.tree.unflatten(treedef, drawn))


def with_phi(hparams: ppo_lib.Hparams, phi: Phi) -> ppo_lib.Hparams:
    """The inner learner's Hparams under phi (reward params, and gamma if learned)."""
    hparams = hparams.replace(reward_params=phi.reward_params)
    if phi.gamma_logit is not None:
        hparams = hparams.replace(gamma=jax.nn.sigmoid(phi.gamma_logit))
    return hparams


def _effective_weights(reward_fn, reward_params, transition) -> dict | None:
    """{term: weight} decoded from the reward params, or None where there are none to decode.
    Without a ``transition`` (a population keeps no batch) only a state-independent
    parameterization decodes (free, fixed_sign, log_scale, simplex ignore it); a
    state-dependent one (``linear_head``) reads the transition and gives None here."""
    if reward_fn.weights is None:
        return None
    if transition is not None:
        return reward_fn.weights(reward_params, transition)
    try:
        return reward_fn.weights(reward_params, None)
    except (AttributeError, TypeError):  # it read the missing transition
        return None


def phi_metrics(phi: Phi, reward_fn, transition, hparams: ppo_lib.Hparams) -> dict:
    """phi's scalar leaves (``phi/<path>``; a norm for array leaves), the effective weights
    (``weights/<term>``, decoded and averaged over the batch; without ``transition`` only
    where they do not depend on the state) and the inner gamma."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(phi.reward_params):
        name = path_name(path)
        if leaf.ndim == 0:
            out[f"phi/{name}"] = leaf
        else:
            out[f"phi/{name}/norm"] = jnp.linalg.norm(leaf)
    weights = _effective_weights(reward_fn, phi.reward_params, transition)
    if weights is not None:
        out |= {f"weights/{k}": v for k, v in weights.items()}
    out["meta/gamma"] = with_phi(hparams, phi).gamma
    return out


def sum_or_mean(metrics: dict) -> dict:
    """Reduces metrics stacked over inner iterations: episode totals add, the rest average."""
    return {
        k: jnp.sum(v, 0) if k.startswith("episode_total/") else jnp.mean(v, 0)
        for k, v in metrics.items()
    }
