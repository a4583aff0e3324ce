"""Population search over reward params (the derivative-free baseline): exploit/explore.

``population_size`` PPO runs, each with its own phi (reward params, and a discount logit when
learned), train side by side as one vmapped program. Every meta-iteration each member runs
``inner_iterations`` PPO iterations; its fitness is the mean undiscounted primary return of the
training episodes it finished then (kept from before when none finished), or with
``fitness_window`` W > 1 the mean of its last W such returns, as robot PBT does (DexPBT). Then
the worst ``exploit_fraction`` of the members copy the policy, value, optimizer and normaliser
state, fitness history and phi of members drawn from the best fraction (exploit) and perturb
the copied phi's learned leaves by Gaussian noise of scale ``perturb_scale`` (explore), as
population-based training does. Members start from phi_0 plus noise of scale ``init_scale``
(member 0 keeps phi_0), or with ``init_distribution: uniform`` drawn uniformly within
``search_radius`` of phi_0. ``search_radius`` R > 0 keeps every member's learned leaves within
phi_0 +- R (under ``log_scale`` the weights within a factor e^R of the config's), and with
``resample_probability`` p a replaced member draws its phi afresh in that box instead of
perturbing the copy (PBT's resample explore): an escape from a region the whole population has
drifted into, which neither the copy nor the members' gradients give. ``resample_until`` u < 1
resamples during the first u of the run's meta-iterations only, then perturbs, so that the
search can settle on the weights it found. With ``keep_start`` member 0 keeps phi_0 all run:
it is never among the replaced (others may copy it) and its phi never moves, so the start's
own run is always a candidate and the member chosen at the end (the best by fitness) is never
one the start's run beat; a member 0 that goes non-finite copies a winner's learner and keeps
phi_0.
A member whose learner goes non-finite (params, obs, terms, rewards, losses) gets fitness -inf,
is left out of the logged means (``meta/nonfinite_members`` counts it) and is replaced at that
exploit step; the run diverges only when every member has.

With ``member_gradient`` (one_step, unrolled or implicit) the population is the hybrid
(``HybridMeta``): between exploit steps every member also takes that method's outer steps on
its own phi, one per PPO iteration, and a member that copies a winner takes its pending batch,
primary critic and outer Adam state too.

``train.total_steps`` counts env steps per member: the population costs ``population_size``
times the env steps of one run.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rlx.core import sharding
from rlx.core.stacking import init_each
from rlx.core.types import PyTree
from rlx.learn import ppo as ppo_lib
from rlx.meta.base import (
    Hps,
    MetaStatic,
    Phi,
    clip_to_box,
    draw_in_box,
    init_phi,
    learn_mask,
    phi_metrics,
    sum_or_mean,
    with_phi,
)
from rlx.meta.gradient import GradientMeta, make_gradient_meta
from rlx.meta.inner import make_sgd


@struct.dataclass
class PopulationState:
    """train: TrainState with a leading [P] axis; phi [P, ...]; fitness [P] (the mean of
    history); history [P, fitness_window] (each member's latest primary returns, NaN where
    none yet, newest last)."""

    train: ppo_lib.TrainState
    phi: PyTree
    fitness: jax.Array
    history: jax.Array
    key: jax.Array
    iteration: jax.Array


def check_population(size: int, exploit_fraction: float) -> str | None:
    """Why ``size`` members with ``exploit_fraction`` cannot search (None when they can)."""
    if size < 2 or not 1 <= int(size * exploit_fraction) <= size // 2:
        return (
            "population_size * exploit_fraction must round down to between 1 and "
            f"population_size / 2, got {size} x {exploit_fraction}"
        )
    return None


@dataclasses.dataclass(frozen=True)
class PopulationMeta:
    """Population-based search (see the module docstring) around the inner PPO ``agent``."""

    agent: ppo_lib.PPO
    static: MetaStatic
    mask: PyTree
    sgd: ppo_lib.SGD
    env_batch_split: ClassVar[bool] = False  # members, vmapped (split over the devices whole)

    @property
    def num_replaced(self) -> int:
        return int(self.static.population_size * self.static.exploit_fraction)

    def init(self, key: jax.Array, hps: Hps) -> PopulationState:
        return init(self, key, hps)

    def step(self, state: PopulationState, hps: Hps) -> tuple[PopulationState, dict]:
        return step(self, state, hps)

    def chunk(self, state: PopulationState, hps: Hps, num_iterations: int):
        return jax.lax.scan(lambda s, _: self.step(s, hps), state, None, length=num_iterations)

    def evaluate(self, state: PopulationState, hps: Hps, key: jax.Array) -> dict:
        return evaluate(self, state, hps, key)

    def members_of(self, state: PopulationState) -> tuple[ppo_lib.TrainState, PyTree, jax.Array]:
        """(train [P], phi [P], fitness [P]): the members' learners, phi and fitness."""
        return state.train, state.phi, state.fitness

    def learner(self, state, hps: Hps, member: int | None = None):
        """(member ``member``'s TrainState, its Hparams under its phi, its index): by default
        the best member by fitness (member 0 while none has a fitness). Works traced (the
        default) and on host values (a ValueError for a member that does not exist)."""
        train, phi, fitness = self.members_of(state)
        size = fitness.shape[0]
        if member is None:
            member = jnp.argmax(jnp.nan_to_num(fitness, nan=-jnp.inf))
        elif not 0 <= member < size:
            raise ValueError(f"--member {member}: the population has members 0-{size - 1}")
        pick = lambda tree: jax.tree.map(lambda x: x[member], tree)
        return pick(train), with_phi(hps.inner, pick(phi)), member

    def shardings(self, state, mesh: Mesh):
        """The members split over the devices (8 members on 4 devices run 2 on each) where
        their count divides evenly, every leaf with the member axis first; else replicated.
        The exploit step's gather across members is then a collective."""
        whole = sharding.replicated(mesh)
        size = self.static.population_size
        if mesh.size == 1 or size % mesh.size:
            return jax.tree.map(lambda _: whole, state)
        members = NamedSharding(mesh, PartitionSpec(sharding.BATCH_AXIS))
        per_member = lambda x: getattr(x, "ndim", 0) >= 1 and x.shape[0] == size
        return jax.tree.map(lambda x: members if per_member(x) else whole, state)

    def devices_problem(self, devices: int) -> str | None:
        """Any device count: members split over the devices, or the population replicated."""
        return None


def make_population(agent: ppo_lib.PPO, meta_static: MetaStatic, reward_params: PyTree):
    """Population-based search around ``agent`` (raises ValueError for a size and exploit
    fraction that cannot search); with ``member_gradient`` set, the hybrid (``HybridMeta``)."""
    problem = check_population(meta_static.population_size, meta_static.exploit_fraction)
    if problem is not None:
        raise ValueError(f"meta: population search: {problem}")
    if meta_static.member_gradient != "none":
        member_static = dataclasses.replace(
            meta_static,
            method=meta_static.member_gradient,
            inner_iterations=1,
            total_iterations=meta_static.total_iterations * meta_static.inner_iterations,
        )
        return HybridMeta(
            agent=agent,
            static=meta_static,
            mask=learn_mask(reward_params, meta_static.learn),
            sgd=make_sgd(meta_static.grad_steps, meta_static.exact_gradient),
            member=make_gradient_meta(agent, member_static, reward_params),
        )
    return PopulationMeta(
        agent=agent,
        static=meta_static,
        mask=learn_mask(reward_params, meta_static.learn),
        sgd=make_sgd(meta_static.grad_steps, meta_static.exact_gradient),
    )


def _perturb(phi, mask, scale, key):
    leaves, treedef = jax.tree.flatten(phi)
    keys = jax.random.split(key, len(leaves))
    flags = jax.tree.leaves(
        Phi(gamma_logit=None if phi.gamma_logit is None else True, reward_params=mask)
    )
    noisy = [
        x + scale * jax.random.normal(k, x.shape, x.dtype) if flag else x
        for x, k, flag in zip(leaves, keys, flags, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)


def _initial_phis(pop: PopulationMeta, phi0, hps: Hps, key: jax.Array):
    """[P] phi: member 0 at ``phi0``, the others around it (``init_distribution`` normal:
    ``init_scale`` Gaussian noise; uniform: drawn within ``search_radius``), in the box."""
    hparams, meta_hparams = hps.inner, hps.outer
    keys = jax.random.split(key, pop.static.population_size)
    radius = meta_hparams.search_radius
    if pop.static.init_distribution == "uniform":
        draw = lambda k: draw_in_box(phi0, hparams.reward_params, pop.mask, radius, k)
    else:
        draw = lambda k: _perturb(phi0, pop.mask, meta_hparams.init_scale, k)
    phis = jax.vmap(lambda k: clip_to_box(draw(k), hparams.reward_params, pop.mask, radius))(keys)
    return jax.tree.map(lambda p, p0: p.at[0].set(p0), phis, phi0)


def init(pop: PopulationMeta, key: jax.Array, hps: Hps) -> PopulationState:
    hparams = hps.inner
    size = pop.static.population_size
    k_train, k_phi, key = jax.random.split(key, 3)
    # One member at a time, not vmapped (rlx.core.stacking: the CPU runtime's deadlock)
    train = init_each(
        lambda k: pop.agent.init(k, hparams.reward_params), jax.random.split(k_train, size)
    )
    phis = _initial_phis(pop, init_phi(hparams, pop.static.learn_gamma), hps, k_phi)
    return PopulationState(
        train=train,
        phi=phis,
        fitness=jnp.full((size,), -jnp.inf, jnp.float32),
        history=jnp.full((size, pop.static.fitness_window), jnp.nan, jnp.float32),
        key=key,
        iteration=jnp.zeros((), jnp.int32),
    )


def _member(pop: PopulationMeta, train, phi, hparams):
    """``inner_iterations`` PPO iterations of one member under its phi."""
    inner = with_phi(hparams, phi)

    def iteration(state, _):
        state, batch = ppo_lib.collect(pop.agent, state)
        return ppo_lib.update(pop.agent, state, batch, inner, sgd=pop.sgd)

    return jax.lax.scan(iteration, train, None, length=pop.static.inner_iterations)


def _choose(pop: PopulationMeta, key, fitness, finite):
    """Who copies whom: the worst ``num_replaced`` members (with ``keep_start``, member 0
    never among them), and every member that went non-finite (``finite`` [P] false), each draw
    a member from the best. Returns (source [P]: the member each copies, itself where kept;
    replaced [P] bool; key'; the explore key)."""
    size, num_replaced = pop.static.population_size, pop.num_replaced
    key, k_pick, k_noise = jax.random.split(key, 3)
    winners = jnp.argsort(fitness)[size - num_replaced :]  # the best, member 0 among them
    if pop.static.keep_start:
        fitness = fitness.at[0].set(jnp.inf)
    losers = jnp.argsort(fitness)[:num_replaced]  # worst first
    picked = jax.random.choice(k_pick, winners, (num_replaced,))
    source = jnp.arange(size).at[losers].set(picked)
    replaced = jnp.zeros((size,), bool).at[losers].set(True)
    # Non-finite members beyond the worst num_replaced are replaced too (their own draws).
    extra = ~finite & ~replaced
    spare = jax.random.choice(jax.random.fold_in(k_pick, 1), winners, (size,))
    source, replaced = jnp.where(extra, spare, source), replaced | extra
    return source, replaced, key, k_noise


def _resampling(pop: PopulationMeta, iteration: jax.Array, meta_hparams) -> jax.Array:
    """[] bool: whether a replaced member may still resample at meta-iteration ``iteration``
    (during the first ``resample_until`` of the run's ``total_iterations``)."""
    total = max(pop.static.total_iterations, 1)
    return iteration < meta_hparams.resample_until * total


def _explore(pop: PopulationMeta, phi, source, replaced, hps: Hps, k_noise, iteration):
    """[P] phi after the copy, the replaced members' explored: perturbed by ``perturb_scale``
    noise or, each with ``resample_probability`` while ``_resampling`` at meta-iteration
    ``iteration``, drawn afresh within ``search_radius`` of the config's start
    (PBT's resample); kept in that box. With ``keep_start`` member 0 keeps its phi."""
    hparams, meta_hparams = hps.inner, hps.outer
    size = pop.static.population_size
    start, radius = hparams.reward_params, meta_hparams.search_radius
    copied = jax.tree.map(lambda x: x[source], phi)
    noisy = jax.vmap(lambda p, k: _perturb(p, pop.mask, meta_hparams.perturb_scale, k))(
        copied, jax.random.split(k_noise, size)
    )
    # Keys apart from the members' noise keys (split(k_noise, P)[i] is fold_in(k_noise, i)).
    k_fresh, k_redraw = jax.random.split(jax.random.fold_in(k_noise, size))
    # A resampled member draws its reward leaves afresh; its discount logit is perturbed.
    fresh = jax.vmap(lambda p, k: draw_in_box(p, start, pop.mask, radius, k))(
        noisy, jax.random.split(k_fresh, size)
    )
    redraw = jax.random.uniform(k_redraw, (size,))
    redraw = redraw < meta_hparams.resample_probability
    redraw = redraw & _resampling(pop, iteration, meta_hparams)
    pick = lambda flags, a, b: jax.tree.map(
        lambda x, y: jnp.where(flags.reshape((-1,) + (1,) * (x.ndim - 1)), x, y), a, b
    )
    explored = jax.vmap(lambda p: clip_to_box(p, start, pop.mask, radius))(
        pick(redraw, fresh, noisy)
    )
    out = pick(replaced, explored, copied)
    if pop.static.keep_start:  # member 0 keeps its phi (phi_0), even when it went non-finite
        out = pick(jnp.arange(size) == 0, phi, out)
    return out


def _copy_learner(train: ppo_lib.TrainState, source) -> ppo_lib.TrainState:
    """The learners' policy, value, optimizer, normaliser and reward state copied from
    ``source`` (the env states, keys and episode sums stay each member's own, and so does a
    recurrent policy's memory of those envs' episodes: the copied policy goes on from it, and
    each env's memory is zeroed at its next episode start)."""
    copy = lambda tree: jax.tree.map(lambda x: x[source], tree)
    return train.replace(
        params=copy(train.params),
        opt_state=copy(train.opt_state),
        obs_stats=copy(train.obs_stats),
        reward_state=copy(train.reward_state),
    )


def _exploit_explore(pop: PopulationMeta, state: PopulationState, train, fitness, hps, finite):
    """The worst members, and every member that went non-finite, copy the learners and phi
    of members drawn from the best, and perturb the copied phi: (train', phi', fitness',
    source, key')."""
    source, replaced, key, k_noise = _choose(pop, state.key, fitness, finite)
    phi = _explore(pop, state.phi, source, replaced, hps, k_noise, state.iteration)
    return _copy_learner(train, source), phi, fitness[source], source, key


def _fitness(history: jax.Array, metrics: dict):
    """From the members' metrics stacked over a meta-iteration ([P, I] each): (the metrics
    reduced per member [P], finite [P], history' with the new primary returns, fitness [P])."""
    episodes = jnp.sum(metrics["episode_total/episodes"], axis=1)
    primary = jnp.sum(metrics["episode_total/primary_return"], axis=1)
    per_member = jax.vmap(sum_or_mean)(metrics)
    finite = _members_finite(per_member)
    history = _push(history, primary / jnp.maximum(episodes, 1.0), episodes > 0)
    history = jnp.where(finite[:, None], history, jnp.nan)  # a non-finite member starts over
    fitness = _window_mean(history)  # -inf for a non-finite member: replaced at this exploit
    return per_member, finite, history, fitness


def _population_metrics(pop: PopulationMeta, per_member, finite, fitness) -> dict:
    """The metrics over the finite members and the population's own (fitness, replaced)."""
    out = _over_members(per_member, finite)
    return out | {
        "meta/nonfinite_members": jnp.sum(~finite).astype(jnp.float32),
        "meta/fitness_mean": jnp.mean(jnp.where(jnp.isfinite(fitness), fitness, jnp.nan)),
        "meta/fitness_best": fitness[jnp.argmax(fitness)],
        "meta/replaced": jnp.asarray(pop.num_replaced, jnp.float32),
    }


def step(pop: PopulationMeta, state: PopulationState, hps: Hps):
    """Every member's inner iterations, fitness, then exploit/explore: (state', metrics)."""
    hparams = hps.inner
    train, metrics = jax.vmap(lambda t, p: _member(pop, t, p, hparams))(state.train, state.phi)
    per_member, finite, history, fitness = _fitness(state.history, metrics)
    train, phi, fitness, source, key = _exploit_explore(pop, state, train, fitness, hps, finite)
    history = history[source]  # a copied learner brings its record
    out = _population_metrics(pop, per_member, finite, fitness)
    # The best member's phi leaves, its weights (state-independent ones only: no batch is
    # kept to decode state-dependent weights) and gamma.
    best_phi = jax.tree.map(lambda x: x[jnp.argmax(fitness)], phi)
    out |= phi_metrics(best_phi, pop.agent.reward_fn, None, hparams)
    new_state = PopulationState(
        train=train,
        phi=phi,
        fitness=fitness,
        history=history,
        key=key,
        iteration=state.iteration + 1,
    )
    return new_state, out


def _push(history: jax.Array, value: jax.Array, new: jax.Array) -> jax.Array:
    """[P, W] history with ``value`` [P] appended (the oldest dropped) where ``new`` [P]."""
    pushed = jnp.concatenate([history[:, 1:], value[:, None]], axis=1)
    return jnp.where(new[:, None], pushed, history)


def _window_mean(history: jax.Array) -> jax.Array:
    """[P] mean of each member's recorded returns; -inf for a member with none."""
    valid = jnp.isfinite(history)
    count = jnp.sum(valid, axis=1)
    total = jnp.sum(jnp.where(valid, history, 0.0), axis=1)
    return jnp.where(count > 0, total / jnp.maximum(count, 1), -jnp.inf)


def _members_finite(metrics: dict) -> jax.Array:
    """[P] bool: the members whose metrics ([P] each, reduced over the meta-iteration's inner
    iterations: a mean or total is finite iff every value was) stayed finite and whose guard
    flags (params, obs, terms, rewards; their mean is 1 iff every flag was) held."""
    flags = [v >= 1.0 if k.startswith("guard/") else jnp.isfinite(v) for k, v in metrics.items()]
    return jnp.all(jnp.stack(flags), axis=0)


def _over_members(per_member: dict, finite: jax.Array) -> dict:
    """Metrics over the finite members: episode totals summed (the driver's totals/episodes
    is their mean), the rest averaged. With none finite the guard flags read 0: the run has
    diverged."""
    count = jnp.maximum(jnp.sum(finite.astype(jnp.float32)), 1.0)
    out = {}
    for k, v in per_member.items():
        kept = jnp.where(finite, v, 0.0)
        out[k] = jnp.sum(kept) if k.startswith("episode_total/") else jnp.sum(kept) / count
    return out


def evaluate(pop: PopulationMeta, state: PopulationState, hps: Hps, key: jax.Array) -> dict:
    """Every member's evaluation: means over members, and the best member's (``*_best_member``)."""
    hparams = hps.inner
    trains, phis, fitness = pop.members_of(state)
    results = jax.vmap(lambda train, phi: pop.agent.evaluate(train, with_phi(hparams, phi), key))(
        trains, phis
    )
    best = jnp.argmax(fitness)
    out = {k: jnp.mean(v) for k, v in results.items()}
    out |= {f"{k}_best_member": v[best] for k, v in results.items()}
    return out


# The hybrid: population-based training whose members follow the meta-gradient in between.


@struct.dataclass
class HybridState:
    """members: the gradient meta-learners' states (``rlx.meta.gradient.MetaState``) with a
    leading [P] axis, each with its own phi and outer Adam; fitness, history, key, iteration
    as in ``PopulationState``."""

    members: PyTree
    fitness: jax.Array
    history: jax.Array
    key: jax.Array
    iteration: jax.Array


@dataclasses.dataclass(frozen=True)
class HybridMeta(PopulationMeta):
    """PBT with meta-gradient members (``meta.member_gradient``): between exploit steps each
    member runs ``inner_iterations`` meta-iterations of ``member`` (one PPO update and one outer
    step of its own phi each); at the exploit step the worst copy a winner's learner, pending
    batch, primary critic and outer Adam state, and explore around its phi. The population
    keeps the exploration a gradient cannot (a member stuck where the outer signal vanished is
    replaced), the members the gradient's direction between the jumps. ``chunk``,
    ``evaluate``, ``learner`` and ``shardings`` are the population's, over ``members_of``."""

    member: GradientMeta  # the members' meta-learner (method = member_gradient)

    def members_of(self, state: HybridState) -> tuple[ppo_lib.TrainState, PyTree, jax.Array]:
        return state.members.train, state.members.phi, state.fitness

    def init(self, key: jax.Array, hps: Hps) -> HybridState:
        size = self.static.population_size
        k_members, k_phi, key = jax.random.split(key, 3)
        members = init_each(lambda k: self.member.init(k, hps), jax.random.split(k_members, size))
        phis = _initial_phis(self, jax.tree.map(lambda x: x[0], members.phi), hps, k_phi)
        return HybridState(
            members=members.replace(phi=phis),
            fitness=jnp.full((size,), -jnp.inf, jnp.float32),
            history=jnp.full((size, self.static.fitness_window), jnp.nan, jnp.float32),
            key=key,
            iteration=jnp.zeros((), jnp.int32),
        )

    def step(self, state: HybridState, hps: Hps) -> tuple[HybridState, dict]:
        hparams = hps.inner

        def member(ms):
            step = lambda s, _: self.member.step(s, hps)
            return jax.lax.scan(step, ms, None, length=self.static.inner_iterations)

        members, metrics = jax.vmap(member)(state.members)
        per_member, finite, history, fitness = _fitness(state.history, metrics)
        source, replaced, key, k_noise = _choose(self, state.key, fitness, finite)
        phi = _explore(self, members.phi, source, replaced, hps, k_noise, state.iteration)
        copy = lambda tree: jax.tree.map(lambda x: x[source], tree)
        members = members.replace(
            train=_copy_learner(members.train, source),
            batch=copy(members.batch),
            critic=copy(members.critic),
            critic_opt=copy(members.critic_opt),
            outer_opt=copy(members.outer_opt),
            phi=phi,
        )
        fitness, history = fitness[source], history[source]
        best = jnp.argmax(fitness)
        out = _population_metrics(self, per_member, finite, fitness)
        # The members' own phi/weights averaged over members say nothing: the best one's below.
        out = {k: v for k, v in out.items() if not k.startswith(("phi/", "weights/"))}
        # The best member's phi, and its weights decoded on its pending batch.
        best_phi = jax.tree.map(lambda x: x[best], phi)
        best_traj = jax.tree.map(lambda x: x[best], members.batch.traj)
        out |= phi_metrics(best_phi, self.agent.reward_fn, best_traj, hparams)
        new_state = HybridState(
            members=members,
            fitness=fitness,
            history=history,
            key=key,
            iteration=state.iteration + 1,
        )
        return new_state, out
