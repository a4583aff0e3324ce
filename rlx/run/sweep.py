"""The plan of a members run (``rlx train CONFIG --seeds N --sweep KEY=V1,V2 ...``): which
learners it holds, each one's setting and seed, and the check that they share one program.

The members are the grid of the sweeps' values (their product, in the order given) times N
seeds: member ``p * N + s`` trains setting ``p`` with ``train.seed`` = the config's seed + ``s``,
exactly what ``rlx train CONFIG train.seed=<seed + s> <setting>`` would train alone (to float
tolerance: vmapped ops may round differently). Only traced values can be swept: the ``ppo``
section and the numbers of the reward section that are reward params; a key that changes the
compiled program (shapes, structure, the env, a reward's static form) is refused with one line
naming it, before anything is written. ``members.json`` records the plan.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import jax
import jax.numpy as jnp

from rlx import config as config_lib
from rlx.config import build as build_lib
from rlx.core.schema import ConfigError

MEMBERS_FILE = "members.json"
TRACED_SECTIONS = ("ppo.", "reward.")


class PlanError(ValueError):
    """A members.json that cannot be read (the message says where and why, in one line)."""


@dataclasses.dataclass(frozen=True)
class Member:
    """One learner of a members run: its setting (sweep key -> value text) and seed offset."""

    index: int
    seed: int  # train.seed of this member
    point: tuple[tuple[str, str], ...]
    directory: str  # relative to the run directory

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.point) or "base"

    @property
    def overrides(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.point] + [f"train.seed={self.seed}"]


def parse_sweep(text: str) -> tuple[str, tuple[str, ...]]:
    """``KEY=V1,V2,...`` -> (key, values); a ConfigError for anything else."""
    key, sep, values = text.partition("=")
    key = key.strip()
    parts = tuple(v.strip() for v in values.split(",")) if sep else ()
    if not key or not sep or not parts or any(not p for p in parts):
        raise ConfigError(
            f"--sweep {text!r}: expected KEY=V1,V2,... (e.g. ppo.learning_rate=1e-4,3e-4)"
        )
    return key, parts


def plan(seed: int, seeds: int, sweeps: list[tuple[str, tuple[str, ...]]]) -> list[Member]:
    """The members: the sweeps' grid (last key fastest) times ``seeds`` seeds from ``seed``."""
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: must be at least 1")
    keys = [k for k, _ in sweeps]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"--sweep: a key is given twice ({', '.join(keys)})")
    grid = list(itertools.product(*[values for _, values in sweeps]))
    width = len(str(len(grid) * seeds - 1))
    members = []
    for p, values in enumerate(grid):
        for s in range(seeds):
            index = p * seeds + s
            members.append(
                Member(
                    index,
                    seed + s,
                    tuple(zip(keys, values, strict=True)),
                    f"members/{index:0{width}d}",
                )
            )
    return members


def _static_reason(key: str) -> str:
    if key == "train.seed":
        return "the seeds of a run are --seeds N (train.seed is the first)"
    return (
        "a static key (it changes the compiled program: shapes, structure, the env or the "
        "run's layout); only ppo.* and the reward section's numbers are traced and can be swept"
    )


def _reward_program(built: build_lib.Built) -> str:
    """The reward's jaxpr over abstract inputs: equal for two configs exactly when they differ
    only in the reward params' values (not in the reward's static form)."""
    agent = built.agent
    env_state = jax.eval_shape(built.env.reset, jax.random.key(0))
    batched = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct((agent.static.num_envs, *x.shape), x.dtype), env_state
    )
    from rlx.learn import ppo

    traj = ppo._abstract_transition(agent, batched, jax.random.key(0))
    reward_state = jax.eval_shape(
        lambda k: agent.reward_fn.init(k, built.env.term_names, agent.static.num_envs),
        jax.random.key(0),
    )
    params = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.float32), built.reward_params
    )
    jaxpr = jax.make_jaxpr(lambda p, s, t, g: agent.reward_fn.apply(p, s, t, gamma=g)[0])(
        params, reward_state, traj, jax.ShapeDtypeStruct((), jnp.float32)
    )
    return str(jaxpr)


def _without_traced(config: config_lib.Config) -> dict:
    """The config without what a member may change: ppo, reward and the seed."""
    data = config_lib.to_dict(config)
    data.pop("ppo", None)
    data.pop("reward", None)
    data.get("train", {}).pop("seed", None)
    return data


def build_members(
    base: config_lib.Config, members: list[Member], overrides: list[str], path: str | Path
) -> tuple[build_lib.Built, list[build_lib.Built]]:
    """(the base's Built, each member's Built: ``path`` + ``overrides`` + its setting and seed);
    a ConfigError naming the sweep key when a member would need another compiled program."""
    built_base = build_lib.build(base)
    static_base, reward_base = _without_traced(built_base.config), None
    builts, by_point = [], {}
    for member in members:
        if member.point not in by_point:
            for key, _ in member.point:
                if not key.startswith(TRACED_SECTIONS):
                    raise ConfigError(f"--sweep {key}: {_static_reason(key)}")
            config = config_lib.load(path, [*overrides, *member.overrides])
            built = build_lib.build(config)
            keys = ", ".join(k for k, _ in member.point)
            if _without_traced(built.config) != static_base:
                raise ConfigError(f"--sweep {keys}: {_static_reason(keys)}")
            same_tree = jax.tree.structure(built.reward_params) == jax.tree.structure(
                built_base.reward_params
            )
            if any(k.startswith("reward.") for k, _ in member.point):
                reward_base = reward_base or _reward_program(built_base)
                if not same_tree or _reward_program(built) != reward_base:
                    raise ConfigError(
                        f"--sweep {keys}: the value {member.label!r} changes the reward's static "
                        "form (its terms, combination or a sign the parameterisation fixes), "
                        "not only its params: run it as a separate run"
                    )
            by_point[member.point] = built
        point_built = by_point[member.point]
        config = dataclasses.replace(
            point_built.config,
            train=dataclasses.replace(point_built.config.train, seed=member.seed),
        )
        builts.append(dataclasses.replace(point_built, config=config))
    return built_base, builts


def write_plan(run_dir: Path, members: tuple[Member, ...]) -> None:
    """members.json: the seeds per setting, the sweep (keys and values in order) and each
    member's setting, seed and directory."""
    first = members[0].label
    keys = [k for k, _ in members[0].point]
    sweep = [[k, list(dict.fromkeys(dict(m.point)[k] for m in members))] for k in keys]
    data = {
        "seeds": sum(m.label == first for m in members),
        "sweep": sweep,
        "members": [
            {"index": m.index, "seed": m.seed, "point": dict(m.point), "dir": m.directory}
            for m in members
        ],
    }
    (run_dir / MEMBERS_FILE).write_text(json.dumps(data, indent=1) + "\n")


def read_plan(run_dir: Path) -> tuple[int, list, list[Member]]:
    """(seeds per setting, the sweep, the members) from ``run_dir``'s members.json; a
    PlanError naming the file when it cannot be read."""
    try:
        data = json.loads((run_dir / MEMBERS_FILE).read_text())
        members = [
            Member(m["index"], m["seed"], tuple(m["point"].items()), m["dir"])
            for m in data["members"]
        ]
        return data["seeds"], [(k, tuple(v)) for k, v in data["sweep"]], members
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PlanError(
            f"{run_dir / MEMBERS_FILE}: unreadable ({type(error).__name__}: {error})"
        ) from None


def is_members_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` is the top directory of a members run."""
    return (Path(run_dir) / MEMBERS_FILE).is_file()


def member_index(member_dir: Path) -> int | None:
    """The index of the member whose directory is ``member_dir`` (``RUN/members/<i>``), None
    when it is no member of a members run."""
    member_dir = Path(member_dir)
    run_dir = member_dir.parent.parent
    if member_dir.parent.name != "members" or not is_members_run(run_dir):
        return None
    _, _, members = read_plan(run_dir)
    return next((m.index for m in members if run_dir / m.directory == member_dir), None)
