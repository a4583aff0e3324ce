"""``rlx train CONFIG --seeds N --sweep KEY=V1,V2 ...``: many learners vmapped in one program.

The members of such a run are the grid of the sweeps' values (their product, in the order
given) times N seeds: member ``p * N + s`` trains setting ``p`` with ``train.seed`` = the
config's seed + ``s``, exactly what ``rlx train CONFIG train.seed=<seed + s> <setting>`` would
train alone (to float tolerance: vmapped ops may round differently). Only traced values can be
swept: the ``ppo`` section and the numbers of the reward section that are reward params; a key
that changes the compiled program (shapes, structure, the env, a reward's static form) is
refused with one line naming it, before anything is written.

Run directory::

    config.yaml      the base config (train.seed = the first seed)
    members.json     the seeds, the sweep and each member's setting, seed and directory
    metrics.jsonl    one row per chunk: every metric's mean over the members
    checkpoints/     one orbax save per chunk of the stacked state (every member)
    members/<i>/     each member a single-seed run directory (config.yaml, metrics.jsonl,
                     tb/, summary.json): ``rlx train --resume RUN_DIR/members/<i>`` restores
                     its slice of the newest checkpoint and continues it alone (``detached``)
    sweep.md, .json  final eval return per setting: mean, 95% bootstrap CI over its seeds,
    sweep.png        each seed's value (the plot needs matplotlib)
    summary.json     the aggregate summary, with the per-setting table

``rlx train --resume RUN_DIR`` continues all members from the newest chunk every member has a
checkpoint of (the same state as an uninterrupted run).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlx import config as config_lib
from rlx.config import build as build_lib
from rlx.core import runtime
from rlx.core.schema import ConfigError
from rlx.run import rundir, sharding

MEMBERS_FILE = "members.json"
TRACED_SECTIONS = ("ppo.", "reward.")


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


def stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def member_shardings(state: Any, mesh) -> Any:
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


def program(builts: list[build_lib.Built], members: list[Member], base: config_lib.Config):
    """The driver's Program for the members: state and hparams stacked on a leading axis."""
    from rlx.run import driver

    agent = builts[0].agent
    hparams = stack([b.hparams for b in builts])
    keys = jax.random.wrap_key_data(
        jnp.stack([jax.random.key_data(jax.random.key(m.seed)) for m in members])
    )
    reward_params = builts[0].reward_params

    def init(_key):
        return jax.vmap(lambda k: agent.init(k, reward_params))(keys)

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
        members=tuple(members),
        member_configs=tuple(b.config for b in builts),
    )


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
    try:
        data = json.loads((run_dir / MEMBERS_FILE).read_text())
        members = [
            Member(m["index"], m["seed"], tuple(m["point"].items()), m["dir"])
            for m in data["members"]
        ]
        return data["seeds"], [(k, tuple(v)) for k, v in data["sweep"]], members
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise rundir.RunDirError(
            f"{run_dir / MEMBERS_FILE}: unreadable ({type(error).__name__}: {error})"
        ) from None


def is_members_run(run_dir: Path) -> bool:
    return (Path(run_dir) / MEMBERS_FILE).is_file()


KIND = "train-members"  # the run kind in a members run's checkpoint records
DETACHED = "detached.json"  # in a member's directory once it was resumed alone


class MembersRun:
    """A members run's files: the aggregate ones and the stacked checkpoints at the top, one
    ``rundir.Run`` per member for its config, rows, TensorBoard and summary (see the module
    docstring). One orbax save per chunk holds every member, so checkpointing costs about what
    a single run's does; a member resumed alone restores its slice of it (``restore_alone``)."""

    def __init__(self, program, run_dir: Path, resume: bool, allow_config_change: bool = False):
        self.dir, self.config = run_dir, program.config
        self.members, self.member_configs = program.members, program.member_configs
        self.metrics_path = run_dir / "metrics.jsonl"
        self.allow_config_change = allow_config_change
        self.primary = runtime.is_primary()  # in a multi-process run, process 0 writes files
        if not resume and self.primary:
            if run_dir.exists() and any(run_dir.iterdir()) and not rundir.unstarted(run_dir):
                raise rundir.RunDirError(f"run directory {run_dir} exists and is not empty")
            run_dir.mkdir(parents=True, exist_ok=True)
            self.metrics_path.unlink(missing_ok=True)
            (run_dir / "config.yaml").write_text(config_lib.dump(self.config))
            write_plan(run_dir, self.members)
        elif resume:
            detached = [
                m.directory for m in self.members if (run_dir / m.directory / DETACHED).exists()
            ]
            if detached:
                raise rundir.RunDirError(
                    f"{run_dir}: {', '.join(detached)} went on alone (rlx train --resume "
                    f"{run_dir / detached[0]}) and no longer matches this run's checkpoint: "
                    "resume the members alone, or start the run again"
                )
        runtime.barrier("rlx-members-dir")
        self.checkpointer = None
        if self.config.run.checkpoint or resume:
            from rlx.run.checkpoint import Checkpointer

            self.checkpointer = Checkpointer(
                run_dir / "checkpoints", self.config.run.max_checkpoints
            )
        self.runs = [
            rundir.Run(
                config,
                "train",
                run_dir / m.directory,
                resume,
                allow_config_change,
                checkpoints=False,
            )
            for m, config in zip(self.members, self.member_configs, strict=True)
        ]
        self.member_rows: list[list[dict]] = [[] for _ in self.members]

    def restore(self, abstract_state) -> tuple[Any, int, float, list[dict]] | None:
        """(stacked state, chunks done, wall seconds, the top rows up to it) from the newest
        valid stacked checkpoint; each member's rows are cut back to it too. None when there is
        none (the run starts again, its rows dropped)."""
        found = self.checkpointer.restore_newest_valid(abstract_state, expect={"kind": KIND})
        step, state, wall = 0, None, 0.0
        if found is not None:
            state, record = found
            step, wall = int(record["chunk"]), float(record["wall_s"])
            changed = rundir.config_changes(record["config"], config_lib.dump(self.config))
            if changed and not self.allow_config_change:
                raise rundir.ConfigChangedError(
                    f"{self.dir / 'config.yaml'} differs from the config checkpoint {step} was "
                    f"written with, in {', '.join(changed)} (undo the edit, or pass "
                    "--allow-config-change)"
                )
        rows = [r for r in rundir.read_rows(self.metrics_path) if r["chunk"] <= step]
        if self.primary:
            rundir.write_rows(self.metrics_path, rows)
        for i, run in enumerate(self.runs):
            kept = [r for r in rundir.read_rows(run.metrics_path) if r["chunk"] <= step]
            if self.primary:
                rundir.write_rows(run.metrics_path, kept)
            self.member_rows[i] = kept
        return None if found is None else (state, step, wall, rows)

    def open_tensorboard(self, rows: list[dict]) -> None:
        for run, kept in zip(self.runs, self.member_rows, strict=True):
            run.open_tensorboard(kept)

    def write(self, row: dict, state: Any, checkpoint: bool = True, member_rows=None) -> None:
        """The top row, each member's row, then one checkpoint of the stacked state (none for
        a diverged one)."""
        if self.primary:
            with self.metrics_path.open("a") as f:
                f.write(json.dumps(row, allow_nan=False) + "\n")
        for i, (run, member_row) in enumerate(zip(self.runs, member_rows, strict=True)):
            run.write(member_row, None, checkpoint=False)
            self.member_rows[i].append(member_row)
        if self.checkpointer is not None and checkpoint:
            record = {
                "chunk": row["chunk"],
                "wall_s": row["wall_s"],
                "config": config_lib.dump(self.config),
                "kind": KIND,
                "member_configs": [config_lib.dump(c) for c in self.member_configs],
            }
            self.checkpointer.save(row["chunk"], state, record)

    def last_checkpoint(self) -> int | None:
        return None if self.checkpointer is None else self.checkpointer.latest_step()

    def config_change_log(self) -> list[dict]:
        return []

    def close(self) -> None:
        for run in self.runs:
            run.close()
        if self.checkpointer is not None:
            self.checkpointer.close()

    def finish(self, summary_of) -> dict:
        """Writes each member's summary.json and the per-setting table (sweep.md/.json/.png);
        returns the table's data for the run's summary."""
        finals = []
        for run, rows in zip(self.runs, self.member_rows, strict=True):
            summary = summary_of(rows, run.dir)
            if self.primary:
                (run.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            finals.append(summary)
        table = settings_table(self.members, finals)
        if not self.primary:
            return table
        (self.dir / "sweep.json").write_text(json.dumps(table, indent=1) + "\n")
        (self.dir / "sweep.md").write_text(settings_markdown(table))
        plot_settings(table, self.dir / "sweep.png")
        return table


def restore_alone(
    member_dir: Path, abstract_state, step: int | None = None, detach: bool = True
) -> tuple[Any, dict] | None:
    """(state, record) of a members run's member from the run's newest valid stacked
    checkpoint (or the one of chunk ``step``), for ``rlx train --resume RUN_DIR/members/<i>``
    and ``rlx eval``; None when ``member_dir`` is not a member or the run has no checkpoint.
    With ``detach`` the member is marked detached: it goes on alone from here, and the members
    run can no longer resume it."""
    member_dir = Path(member_dir)
    run_dir = member_dir.parent.parent
    if member_dir.parent.name != "members" or not is_members_run(run_dir):
        return None
    _, _, members = read_plan(run_dir)
    index = next((m.index for m in members if run_dir / m.directory == member_dir), None)
    if index is None or not (run_dir / "checkpoints").is_dir():
        return None
    from rlx.run.checkpoint import Checkpointer

    stacked = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct((len(members), *x.shape), x.dtype), abstract_state
    )
    checkpointer = Checkpointer(run_dir / "checkpoints")
    try:
        if step is None:
            found = checkpointer.restore_newest_valid(stacked, expect={"kind": KIND})
        elif step in checkpointer._manager.all_steps():
            found = checkpointer.restore(stacked, step, expect={"kind": KIND})
        else:
            found = None
    finally:
        checkpointer.close()
    if found is None:
        return None
    state, record = found
    record = {**record, "config": record["member_configs"][index], "kind": "train"}
    if detach:
        (member_dir / DETACHED).write_text(json.dumps({"from_chunk": record["chunk"]}) + "\n")
    return jax.tree.map(lambda x: x[index], state), record


def bootstrap_ci(values, n: int = 10_000, seed: int = 0) -> list[float]:
    """95% bootstrap CI of the mean of ``values`` (the value itself twice for one value)."""
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(n, len(values))).mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def settings_table(members, summaries) -> list[dict]:
    """Per setting: its seeds' final eval returns (and primary), mean and 95% CI."""
    table = []
    for label in dict.fromkeys(m.label for m in members):
        idx = [i for i, m in enumerate(members) if m.label == label]
        finals = [summaries[i]["final_eval_return"] for i in idx]
        primaries = [summaries[i]["final_eval_primary_return"] for i in idx]
        entry = {"setting": label, "seeds": [members[i].seed for i in idx], "finals": finals}
        if all(v is not None for v in finals):
            entry |= {"mean": float(np.mean(finals)), "ci95": bootstrap_ci(finals)}
        if all(v is not None for v in primaries):
            entry |= {"primary_finals": primaries, "primary_mean": float(np.mean(primaries))}
        table.append(entry)
    return table


def settings_markdown(table: list[dict]) -> str:
    lines = [
        "| setting | seeds | final eval return (mean) | 95% CI (bootstrap over seeds) "
        "| per seed | final eval primary (mean) |",
        "|---|---|---|---|---|---|",
    ]
    for e in table:
        mean = f"{e['mean']:.2f}" if "mean" in e else "-"
        ci = f"[{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}]" if "ci95" in e else "-"
        each = ", ".join("-" if v is None else f"{v:.2f}" for v in e["finals"])
        primary = f"{e['primary_mean']:.2f}" if "primary_mean" in e else "-"
        lines.append(f"| {e['setting']} | {len(e['seeds'])} | {mean} | {ci} | {each} | {primary} |")
    return "\n".join(lines) + "\n"


def plot_settings(table: list[dict], path: Path) -> None:
    """Final eval return per setting: each seed a dot, the mean with its CI as a bar."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"[rlx] {path.name} not drawn: matplotlib is not installed", flush=True)
        return
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(table) + 2), 3.5))
    for x, e in enumerate(table):
        values = [v for v in e["finals"] if v is not None]
        ax.scatter([x] * len(values), values, color="C0", alpha=0.5, s=14)
        if "mean" in e:
            low, high = e["ci95"]
            ax.errorbar(
                [x],
                [e["mean"]],
                yerr=[[e["mean"] - low], [high - e["mean"]]],
                fmt="o",
                color="C1",
                capsize=4,
            )
    ax.set_xticks(range(len(table)), [e["setting"] for e in table], rotation=20, ha="right")
    ax.set_ylabel("final eval return")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def train(
    config_path: str | Path,
    overrides: list[str],
    seeds: int,
    sweeps: list[str],
    run_dir: Path,
    **run_options,
) -> dict:
    """``rlx train CONFIG --seeds N --sweep ...`` into ``run_dir`` (see the module docstring).
    ConfigError (nothing written) for a bad sweep, a static key or a config a member refuses."""
    from rlx.run import driver

    base = config_lib.load(config_path, overrides)
    members = plan(base.train.seed, seeds, [parse_sweep(t) for t in sweeps])
    built_base, builts = build_members(base, members, overrides, config_path)
    return driver.run(program(builts, members, built_base.config), run_dir, **run_options)


def resume(run_dir: Path, **run_options) -> dict:
    """``rlx train --resume RUN_DIR`` of a members run: every member from the newest chunk they
    all have a checkpoint of."""
    from rlx.run import driver

    _, _, members = read_plan(run_dir)
    base = config_lib.load(run_dir / "config.yaml")
    built_base, builts = build_members(base, members, [], run_dir / "config.yaml")
    return driver.run(
        program(builts, members, built_base.config), run_dir, resume=True, **run_options
    )
