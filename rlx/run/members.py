"""The program of a members run (``rlx train CONFIG --seeds N --sweep ...``): many learners
vmapped in one program, their state and hparams stacked on a leading axis (the plan of which
learners: ``rlx.run.sweep``; their files: ``rlx.run.members_dir``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlx import config as config_lib
from rlx.config import build as build_lib
from rlx.core import sharding
from rlx.core.stacking import init_each, stack
from rlx.core.types import PyTree
from rlx.run import driver
from rlx.run.members_dir import MembersRun
from rlx.run.sweep import Member


def member_shardings(state: PyTree, mesh) -> PyTree:
    """A stacked TrainState's shardings: the members split over the devices where their count
    divides the devices' (each device runs its own members, nothing crosses), else each
    member's env batch split (its axis 1) and the rest replicated."""
    from jax.sharding import NamedSharding, PartitionSpec

    count = jax.tree.leaves(state)[0].shape[0]
    if mesh.size > 1 and count % mesh.size == 0:
        return jax.tree.map(
            lambda _: NamedSharding(mesh, PartitionSpec(sharding.BATCH_AXIS)), state
        )
    split = NamedSharding(mesh, PartitionSpec(None, sharding.BATCH_AXIS))
    whole = NamedSharding(mesh, PartitionSpec())
    out = jax.tree.map(lambda _: whole, state)
    return out.replace(
        env_state=jax.tree.map(lambda _: split, state.env_state),
        episode_sums=jax.tree.map(lambda _: split, state.episode_sums),
    )


def program(
    builts: list[build_lib.Built], members: list[Member], base: config_lib.Config
) -> driver.Program:
    """The driver's Program for the members: state, hparams, metrics and eval results stacked
    on a leading [members] axis; its files a ``MembersRun``."""
    agent = builts[0].agent
    hparams = stack([b.hparams for b in builts])
    keys = jax.random.wrap_key_data(
        jnp.stack([jax.random.key_data(jax.random.key(m.seed)) for m in members])
    )
    reward_params = builts[0].reward_params

    def init(_key):
        return init_each(lambda k: agent.init(k, reward_params), keys)

    def chunk(state, hps, num_iterations):
        step = lambda s, h: agent.train_chunk(s, h, num_iterations)
        return jax.vmap(step)(state, hps)

    def evaluate(state, hps, key):
        return jax.vmap(agent.evaluate, (0, 0, None))(state, hps, key)

    return driver.Program(
        init=init,
        chunk=chunk,
        evaluate=evaluate,
        hparams=hparams,
        iterations=base.iterations,
        steps_per_iteration=agent.static.batch_size,
        shardings=member_shardings,
        config=base,
        open_files=lambda path, resume, allow: MembersRun(
            base, tuple(members), tuple(b.config for b in builts), path, resume, allow
        ),
        learner=_no_single_learner,
        agent=agent,
        devices_problem=lambda devices: _devices_problem(base, len(members), devices),
        stacked=len(members),
    )


def _devices_problem(base: config_lib.Config, count: int, devices: int) -> str | None:
    """Members split over the devices where their count divides evenly; else each member's
    env batch is split, which its size must allow."""
    if devices > 1 and count % devices == 0:
        return None
    return driver.env_batch_problem(base, devices)


def _no_single_learner(state, hparams, member=None):
    raise ValueError(
        "a members run holds several learners: evaluate one member, RUN_DIR/members/<i> "
        "(members.json lists them)"
    )
