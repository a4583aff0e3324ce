"""A trained policy out of a run directory: ``rlx eval RUN_DIR`` and ``rlx.ship.policy.load``.

``restore(run_dir)`` finds the run's kind from its checkpoint (``rlx train``, a member of a
members run, ``rlx meta`` with a gradient method, a population or the hybrid), rebuilds its
program from its ``config.yaml`` and restores a checkpoint: what comes out is the inner
learner's ``TrainState`` (params and observation normaliser) and the ``Hparams`` it trained
under (a meta run's learned reward params included; a population's best member by fitness,
or ``member``). ``evaluate`` runs K episodes of it; ``load`` gives a jitted ``obs -> action``.

    rlx eval runs/cartpole-20261201-180102                  # the run's own last eval again
    rlx eval RUN_DIR --episodes 64 --seed 3 --stochastic    # 64 sampled-action episodes
    rlx eval RUN_DIR --checkpoint 20 --member 2 --out eval_member2.json
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlx import config as config_lib
from rlx.config import build as build_lib
from rlx.learn import acting
from rlx.run import driver, members_dir, meta_run, sweep
from rlx.run.checkpoint import _RECORD, Checkpointer, CheckpointFormatError


class PolicyError(ValueError):
    """A run directory, checkpoint or member that cannot give a policy (one line says why)."""


@dataclasses.dataclass(frozen=True)
class Restored:
    """A run's learner at one checkpoint: ``train`` (a ``ppo.TrainState``) and ``hparams``
    (its ``ppo.Hparams``), the ``agent`` that trains and evaluates it, and where it came from."""

    config: config_lib.Config
    agent: Any
    train: Any
    hparams: Any
    kind: str  # train, meta
    chunk: int
    member: int | None = None  # the population member evaluated, if any


def _checkpoint_kind(run_dir: Path) -> str:
    checkpoints = run_dir / "checkpoints"
    if not checkpoints.is_dir():
        return "none"
    checkpointer = Checkpointer(checkpoints)
    try:
        step = checkpointer.latest_step()
        if step is None:
            return "none"
        import orbax.checkpoint as ocp

        only_record = ocp.args.Composite(**{_RECORD: ocp.args.JsonRestore()})
        record = checkpointer._manager.restore(step, args=only_record)[_RECORD]
        return record.get("kind", "train")
    finally:
        checkpointer.close()


def restore(
    run_dir: str | Path, checkpoint: int | None = None, member: int | None = None
) -> Restored:
    """The learner of ``run_dir`` at chunk ``checkpoint`` (default: the newest that restores).
    Raises PolicyError naming what is wrong: not a run directory, no checkpoint, a members
    run's top directory, a member that does not exist."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise PolicyError(f"{run_dir}: not a run directory (no config.yaml)")
    if sweep.is_members_run(run_dir):
        raise PolicyError(
            f"{run_dir} is a members run (--seeds/--sweep): evaluate one member, "
            f"{run_dir / 'members' / '<i>'} (members.json lists them)"
        )
    try:
        config = config_lib.load(run_dir / "config.yaml")
    except config_lib.ConfigError as error:
        raise PolicyError(f"{run_dir / 'config.yaml'}: {error}") from None
    kind = _checkpoint_kind(run_dir)
    if kind == "none" and sweep.member_index(run_dir) is not None:
        kind = "member"
    if kind == "none":
        raise PolicyError(f"{run_dir}: no checkpoint to restore (checkpoints/ is empty)")
    meta = kind == "meta"
    built = build_lib.build(config, meta=meta)
    program = meta_run.meta_program(built) if meta else driver.ppo_program(built)
    abstract = jax.eval_shape(jax.jit(program.init), jax.random.key(config.train.seed))
    state, record = _restore_state(run_dir, kind, abstract, checkpoint)
    try:
        train, hparams, picked = program.learner(state, program.hparams, member)
    except ValueError as error:
        raise PolicyError(str(error)) from None
    picked = None if picked is None else int(picked)
    chunk = int(record["chunk"])
    return Restored(config, built.agent, train, hparams, "meta" if meta else "train", chunk, picked)


def _restore_state(run_dir: Path, kind: str, abstract, checkpoint: int | None):
    """(state, record) of the checkpoint (newest valid, or chunk ``checkpoint``)."""
    if kind == "member":
        found = members_dir.restore_alone(run_dir, abstract, step=checkpoint, detach=False)
    else:
        checkpointer = Checkpointer(run_dir / "checkpoints")
        try:
            if checkpoint is None:
                found = checkpointer.restore_newest_valid(abstract)
            elif checkpoint not in checkpointer._manager.all_steps():
                steps = ", ".join(map(str, sorted(checkpointer._manager.all_steps())))
                raise PolicyError(f"{run_dir}: no checkpoint {checkpoint} (there are: {steps})")
            else:
                found = checkpointer.restore(abstract, checkpoint)
        except CheckpointFormatError as error:
            raise PolicyError(str(error)) from None
        finally:
            checkpointer.close()
    if found is None:
        raise PolicyError(f"{run_dir}: no checkpoint restores (see the warnings above)")
    return found


def evaluate(
    restored: Restored, episodes: int | None = None, seed: int | None = None, stochastic=None
) -> dict[str, dict[str, float]]:
    """``episodes`` episodes (default ``eval.num_envs``) from eval key ``seed`` (default
    ``eval.seed``), the mode action unless ``stochastic`` (default: as the run's
    ``eval.deterministic``): for each quantity (``return``,
    ``primary_return``, ``length``, ``terms/<name>``) its mean, std, min and max over episodes.
    The defaults reproduce the run's own evaluation."""
    from rlx.learn import acting

    agent, config = restored.agent, restored.config
    episodes = config.eval.num_envs if episodes is None else episodes
    seed = config.eval.seed if seed is None else seed
    stochastic = not config.eval.deterministic if stochastic is None else stochastic
    state, hparams = restored.train, restored.hparams

    @jax.jit
    def run(key):
        per_episode = acting.evaluate_episodes(
            agent.actor,
            agent.reward_fn,
            state,
            hparams,
            key,
            episodes,
            deterministic=not stochastic,
        )
        # the mean as the run's own eval takes it (rlx.learn.acting.evaluate), in the same program
        return per_episode, {k: jnp.mean(v) for k, v in per_episode.items()}

    values, means = jax.device_get(run(jax.random.key(seed)))
    out = {}
    for key, v in values.items():
        v = np.asarray(v, np.float64)
        out[key.removeprefix("eval/")] = {
            "mean": float(means[key]),
            "std": float(v.std()),
            "min": float(v.min()),
            "max": float(v.max()),
        }
    return out


class NotLoadableError(ValueError):
    """A policy that ``load`` cannot give as ``obs -> action`` (one line says why)."""


def actor_input_size(restored: Restored) -> int:
    """The size of the observation the policy reads: the env's ``actor_observation_size``
    where it gives the critic a privileged rest, else the whole observation's."""
    from rlx.core.types import actor_observation_size, observation_size

    env = restored.agent.env
    return actor_observation_size(env) or observation_size(env)


def memory_size(restored: Restored) -> int:
    """Entries of the policy's memory per env, flat: a GRU's units, an LSTM's cell and
    hidden state side by side (2 x units); 0 for a feedforward policy."""
    carry = restored.agent.actor.policy.initial_carry((1,))
    return sum(int(x.shape[-1]) for x in jax.tree.leaves(carry))


def step_fn(restored: Restored):
    """The restored learner's deterministic ``(obs [N, actor_input_size], memory [N,
    memory_size]) -> (action, memory')`` (not jitted): normalisation, the policy network, the
    distribution's mode and its map to the env's action space. A zero memory is an episode's
    first step; a feedforward policy's memory is [N, 0] and passes through. The observation
    is the policy's part only (``actor_input_size``: a privileged rest is left out)."""
    actor, state = restored.agent.actor, restored.train
    dist, size = actor.dist, actor_input_size(restored)
    # The normaliser's statistics of the entries the policy reads.
    stats = jax.tree.map(lambda x: x[:size] if x.ndim else x, state.obs_stats)
    template = actor.policy.initial_carry((1,))
    structure = jax.tree.structure(template)
    widths = [int(x.shape[-1]) for x in jax.tree.leaves(template)]
    splits = np.cumsum(widths)[:-1].tolist()

    def step(obs, memory):
        x = acting.normalize_obs(actor, stats, jnp.asarray(obs, jnp.float32))
        parts = jnp.split(memory, splits, axis=-1) if widths else []
        carry = jax.tree.unflatten(structure, parts)
        start = jnp.zeros(x.shape[:-1], bool)  # a zero memory starts an episode by itself
        carry, params = actor.policy.step(state.params["policy"], carry, x, start)
        new_memory = jnp.concatenate(jax.tree.leaves(carry), axis=-1) if widths else memory
        return dist.to_env(dist.mode(params)), new_memory

    return step


def act_fn(restored: Restored):
    """A feedforward learner's deterministic ``obs -> action`` (``step_fn`` without a
    memory); a recurrent policy's needs its memory: ``step_fn``, ``load_step``."""
    if memory_size(restored):
        raise NotLoadableError(
            f"a recurrent policy (network.memory: {restored.config.network.memory}) keeps a "
            "memory: rlx.ship.policy.load_step gives (obs, memory) -> (action, memory)"
        )
    step = step_fn(restored)

    def act(obs):
        obs = jnp.asarray(obs, jnp.float32)
        return step(obs, jnp.zeros((*obs.shape[:-1], 0), jnp.float32))[0]

    return act


def load_step(run_dir: str | Path, checkpoint: int | None = None, member: int | None = None):
    """(a jitted ``step_fn``, its memory size) from a run's checkpoint: any policy, recurrent
    or not. Start each episode from ``np.zeros((N, memory_size))``."""
    restored = restore(run_dir, checkpoint, member)
    return jax.jit(step_fn(restored)), memory_size(restored)


def load(run_dir: str | Path, checkpoint: int | None = None, member: int | None = None):
    """A jitted deterministic policy ``obs [..., actor_input_size] -> action [..., action]``
    (the env's action, observation normalisation included; the observation the policy reads,
    without a privileged rest) from a run's checkpoint; a feedforward policy's only."""
    return jax.jit(act_fn(restore(run_dir, checkpoint, member)))


def write(path: Path, restored: Restored, results: dict, settings: dict) -> None:
    data = {
        "run_dir": str(settings.pop("run_dir")),
        "kind": restored.kind,
        "chunk": restored.chunk,
        "member": restored.member,
        **settings,
        "episodes": results,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
