"""The index of ``docs/experiments``: one row per arm (or per reported result) of every JSON file
there, read as the file holds it.

The files come from several scripts and have several schemas (``scripts/experiments/
bilevel.py``'s arms, ``meta_diagnosis.py``'s finite differences, ``constraint_gate.py``,
``pareto.py``, ``push_learning.py``, ``push_scripted.py``, ``bmg_step_size.py``); each has a
reader here, chosen by the keys a file holds, and a file no reader knows still gets a row. A
figure a file does not hold is written ``-``: nothing is filled in from elsewhere, except a
population's member count, which the bilevel files do not record and which is read from the
command and the task's config (``population_size``).

``python scripts/index_experiments.py`` writes ``docs/experiments/README.md`` with
:func:`write`; ``tests/test_experiments_index.py`` checks that the committed page equals
:func:`render` of a fresh :func:`rows`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from rlx.core.stats import bootstrap_ci, ratio_ci
from rlx.lab.bilevel import DEFAULT_TASK, TASKS

MISSING = "-"
# ``meta.population_size``'s default when these runs were made (rlx/meta/schema.py): the member
# count of a population whose command and config do not set it.
POPULATION_SIZE_DEFAULT = 8


@dataclass(frozen=True)
class Row:
    """One line of the index: a result of one arm of one experiment file.

    ``steps`` is the env steps of one learner (a seed of a plain or gradient arm, one member of
    a population) at the final evaluation; ``members`` the learners per seed whose env steps
    the result spends (a population's size, a sweep's settings). ``None`` where the file does
    not say.
    """

    case: str
    arm: str
    seeds: int | None
    seed_start: int | None
    steps: int | None
    members: int | None
    result: str
    against: str
    file: str
    command: str
    report: str | None = None  # the file's markdown table beside it, where there is one

    @property
    def total_steps(self) -> int | None:
        """Env steps per seed, all members together: ``members x steps``."""
        if self.steps is None or self.members is None:
            return None
        return self.steps * self.members


@dataclass(frozen=True)
class ArmStats:
    """One bilevel arm's final eval primary return over its seeds, against arm A's."""

    arm: str
    kind: str
    finals: tuple[float, ...]
    mean: float
    ci: tuple[float, float]
    ratio: float | None
    ratio_ci: tuple[float, float] | None
    seeds: int
    seed_start: int | None
    steps: int
    members: int | None
    taken_from: str | None


def command_settings(commands: Sequence[str]) -> dict[str, str]:
    """The ``--option value`` pairs and ``dotted.key=value`` overrides (``--meta-set`` ones
    included) of a run's commands, later commands winning."""
    out: dict[str, str] = {}
    for command in commands:
        tokens = shlex.split(command)
        for i, token in enumerate(tokens):
            if token.startswith("--meta-set="):
                token = token.split("=", 1)[1]
            if token.startswith("--") and "=" not in token:
                nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
                out[token] = "" if nxt.startswith("--") else nxt
            elif "=" in token and not token.startswith("-"):
                key, value = token.split("=", 1)
                out[key] = value
    return out


def population_size(commands: Sequence[str], root: Path) -> int | None:
    """A bilevel population's member count: the commands' ``meta.population_size``, else its
    task config's, else the default; ``None`` for a task this module does not know."""
    settings = command_settings(commands)
    if "meta.population_size" in settings:
        return int(settings["meta.population_size"])
    task = TASKS.get(settings.get("--task", DEFAULT_TASK))
    if task is None:
        return None
    config = task["config"]
    meta = (yaml.safe_load((root / config).read_text()) or {}).get("meta") or {}
    return int(meta.get("population_size", POPULATION_SIZE_DEFAULT))


def _seed_start(data: dict) -> int | None:
    if "seed_start" in data["meta"]:
        return int(data["meta"]["seed_start"])
    value = command_settings(data["meta"]["commands"]).get("--seed-start")
    return int(value) if value else None


def arm_stats(data: dict, arm: str, root: Path) -> ArmStats:
    """``arm`` of a bilevel file (``data``, its JSON), with its ratio to arm A where the file
    has an A (``None`` for A itself and where it has none)."""
    record = data["arms"][arm]
    finals = tuple(float(v) for v in record["final"])
    reference = data["arms"].get("A")
    ratio = ratio_interval = None
    if reference is not None and arm != "A" and np.mean(reference["final"]):
        ratio = float(np.mean(finals) / np.mean(reference["final"]))
        ratio_interval = ratio_ci(finals, reference["final"])
    members = 1
    if "population" in record["kind"]:
        members = population_size(data["meta"]["commands"], root)
    return ArmStats(
        arm=arm,
        kind=record["kind"],
        finals=finals,
        mean=float(np.mean(finals)),
        ci=(float(record["ci95"][0]), float(record["ci95"][1])),
        ratio=ratio,
        ratio_ci=ratio_interval,
        seeds=len(finals),
        seed_start=_seed_start(data),
        steps=int(record["env_steps"][-1]),
        members=members,
        taken_from=record.get("from"),
    )


def _interval(low: float, high: float, digits: int) -> str:
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def format_mean(stats: ArmStats) -> str:
    """``mean [low, high]`` of an arm's final returns, as bilevel.py's tables write it."""
    return f"{stats.mean:.1f} {_interval(*stats.ci, 1)}"


def format_ratio(stats: ArmStats) -> str:
    """``ratio x [low, high] of A``, or ``-`` where there is none."""
    if stats.ratio is None or stats.ratio_ci is None:
        return MISSING
    return f"{stats.ratio:.2f}x {_interval(*stats.ratio_ci, 2)} of A"


def _bilevel_case(data: dict) -> str:
    settings = command_settings(data["meta"]["commands"])
    task = settings.get("--task", DEFAULT_TASK)
    learned = data["meta"].get("learned")
    if not learned or len(learned) == 1:  # a task with one auxiliary term
        return f"{task}, {data['meta']['aux']}"
    return task


def _joined(commands: Sequence[str]) -> str:
    unique = [c for i, c in enumerate(commands) if c not in commands[:i]]
    return " && ".join(unique)


def read_bilevel(data: dict, name: str, root: Path) -> list[Row]:
    """A ``bilevel.py`` file: one row per arm, its final eval primary return and its ratio to
    arm A."""
    out = []
    for arm in data["arms"]:
        stats = arm_stats(data, arm, root)
        label = f"{arm} {stats.kind}"
        if stats.taken_from:
            label += f" (from {stats.taken_from.split(',')[0].split('/')[-1]})"
        against = format_ratio(stats)
        if arm != "A" and against != MISSING:
            reference = arm_stats(data, "A", root)
            against += f" ({reference.mean:.1f})"
        out.append(
            Row(
                case=_bilevel_case(data),
                arm=label,
                seeds=stats.seeds,
                seed_start=stats.seed_start,
                steps=stats.steps,
                members=stats.members,
                result=format_mean(stats),
                against=against,
                file=name,
                command=_joined(data["meta"]["commands"]),
            )
        )
    return out


def _agreement(share_positive: float, direction: float) -> float:
    """The share of meta-iterations whose ascent sign agrees with ``direction``'s."""
    return share_positive if direction > 0 else 1.0 - share_positive


def read_diagnosis(data: dict, name: str, root: Path) -> list[Row]:
    """A ``meta_diagnosis.py`` file: the finite difference of the final return in the weight
    (two learners per seed, at w0 +- eps), then each setting's sign agreement with it."""
    fd = data["finite_difference"]
    settings = command_settings([data["command"]])
    case = f"{settings.get('--task', MISSING)} diagnosis, w0 = {fd['w0']:g}"
    command = _joined(data.get("commands") or [data["command"]])
    common = dict(case=case, seeds=data["seeds"], seed_start=None, file=name, command=command)
    low, high = fd["grad_ci"]
    result = f"d(final return)/dw {fd['grad_mean']:.3g} [{low:.3g}, {high:.3g}]"
    out = [
        Row(
            arm=f"finite difference (eps {fd['eps']:g})",
            steps=data["steps"],
            members=2,
            result=result,
            against=MISSING,
            **common,
        )
    ]
    for setting, record in data["settings"].items():
        agree = _agreement(record["sign_positive_share"], fd["grad_mean"])
        out.append(
            Row(
                arm=setting,
                steps=data["steps"],
                members=1,
                result=f"ascent agrees in sign on {agree:.0%} of meta-iterations",
                against="the finite difference's sign",
                **common,
            )
        )
    return out


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def read_constraint(data: dict, name: str, root: Path) -> list[Row]:
    """A ``constraint_gate.py`` file: the learned multiplier against the best fixed weight that
    meets the bound, from a sweep of fixed weights at the same env steps."""
    per_seed = data["constrained"]["per_seed"]
    primaries = [s["primary"] for s in per_seed]
    best, gate = data["best_feasible_fixed"], data["gate"]
    config = command_settings([data["command"]]).get("--config", "pendulum (the default)")
    case = f"constraint, {config}, cost <= {data['bound']:g} per step"
    common = dict(
        case=case,
        seeds=data["seeds"],
        seed_start=min(s["seed"] for s in per_seed),
        steps=data["env_steps"],
        file=name,
        command=data["command"],
    )
    constrained = data["constrained"]
    result = (
        f"primary {constrained['primary']:.1f} {_interval(*bootstrap_ci(primaries), 1)}, "
        f"cost {constrained['cost_per_step']:.3f} per step"
    )
    against = (
        f"fixed weight {best['weight']}: primary {best['primary']:.1f}, cost "
        f"{best['cost_per_step']:.3f}; bound held: {_yes(gate['bound_holds_within_10pct'])}, "
        f"primary at least the fixed's: {_yes(gate['primary_at_least_best_feasible_fixed'])}"
    )
    fixed = data["fixed"]
    feasible = sum(bool(f["meets_bound"]) for f in fixed)
    return [
        Row(arm="learned multiplier", members=1, result=result, against=against, **common),
        Row(
            arm=f"fixed weights ({len(fixed)})",
            members=len(fixed),
            result=f"{feasible} of {len(fixed)} meet the bound; best such: {best['weight']}",
            against=MISSING,
            **common,
        ),
    ]


def read_pareto(data: dict, name: str, root: Path) -> list[Row]:
    """A ``pareto.py`` file: the fixed-weight front and the dynamic weighting against it."""
    points, dynamic, term = data["points"], data["dynamic"], data["term"]
    common = dict(
        case=f"pareto, primary against {term}",
        seeds=data["seeds"],
        seed_start=None,
        steps=None,
        file=name,
    )
    front = sum(bool(p["front"]) for p in points)
    return [
        Row(
            arm=f"fixed weights ({len(points)})",
            members=len(points),
            result=f"{front} of {len(points)} on the front",
            against=MISSING,
            command=data["command"],
            **common,
        ),
        Row(
            arm="dynamic",
            members=1,
            result=f"primary {dynamic['primary']:.1f}, {term} {dynamic[term]:.1f}",
            against=f"dominated by {len(dynamic['dominated_by'])} of the fixed points",
            command=f"{data['command']} {dynamic['command']}",
            **common,
        ),
    ]


def read_push_learning(data: dict, name: str, root: Path) -> list[Row]:
    """A ``push_learning.py`` file: the eval success of a push config over its seeds, against
    its gate."""
    seeds = data["seeds"]
    steps = {s["summary"]["env_steps"] for s in seeds}
    success = [s["final_success"] for s in seeds]
    result = f"final eval success {np.mean(success):.3f}"
    if len(success) > 1:
        result += f" {_interval(*bootstrap_ci(success), 3)}"
    gate = "; ".join(f"{k}: {_yes(v)}" for k, v in data["gate"].items())
    arm = " ".join([data["config"], *data.get("overrides", [])])
    return [
        Row(
            case="push learning",
            arm=arm,
            seeds=len(seeds),
            seed_start=None,
            steps=steps.pop() if len(steps) == 1 else None,
            members=1,
            result=result,
            against=gate,
            file=name,
            command=data["command"],
        )
    ]


def read_push_scripted(data: dict, name: str, root: Path) -> list[Row]:
    """A ``push_scripted.py`` file: a scripted pusher's settings (no learning)."""
    rows = data["rows"]
    best = max(r["final_success"] for r in rows)
    episodes = data["episodes_per_setting"]
    return [
        Row(
            case="push, scripted pusher",
            arm=f"{len(rows)} settings",
            seeds=None,
            seed_start=None,
            steps=None,
            members=None,
            result=f"best final success {best:.3f} ({episodes} episodes per setting)",
            against=MISSING,
            file=name,
            command=data["command"],
        )
    ]


def read_bmg_step_size(data: dict, name: str, root: Path) -> list[Row]:
    """A ``bmg_step_size.py`` file: the lure weight BMG reaches per target setting."""
    return [
        Row(
            case="BMG target, lure probe",
            arm=f"L = {r['bootstrap_steps']}, step size {r['bootstrap_step_size']:g}",
            seeds=None,
            seed_start=None,
            steps=None,
            members=None,
            result=f"lure weight {r['lure_weight']:.2f}",
            against=MISSING,
            file=name,
            command=data["command"],
        )
        for r in data["rows"]
    ]


def read_cases(data: dict, name: str, root: Path) -> list[Row]:
    """A file of cases, each with arms of per-seed final eval primary returns
    (``tune_gate.py``'s, ``c_backend_learning.py``'s): one row per arm, against the case's
    reference arm (``reference``, else ``A``); an arm's earlier attempts (a case's
    ``earlier_attempts``, e.g. before the tuner's settings changed) as rows of their own."""
    out = []
    for case, entry in data["cases"].items():
        seeds = entry.get("seeds") or []
        reference = entry["arms"].get(entry.get("reference", "A"))
        earlier = [(f"{r['arm']} (earlier attempt)", r) for r in entry.get("earlier_attempts", [])]
        for arm, stats in [*entry["arms"].items(), *earlier]:
            result = f"{stats['mean']:.2f} {_interval(*stats['ci'], 2)}"
            against = MISSING
            if reference is not None and arm != entry.get("reference", "A"):
                against = f"{stats['mean'] / reference['mean']:.2f}x {entry.get('reference', 'A')}"
            out.append(
                Row(
                    case=case,
                    arm=arm,
                    seeds=len(stats.get("per_seed", seeds)),
                    seed_start=min(seeds) if seeds else None,
                    steps=stats.get("steps_per_learner", entry.get("steps_per_learner")),
                    members=stats.get("learners_per_seed"),
                    result=result,
                    against=against,
                    file=name,
                    command=stats.get("command", entry.get("command", MISSING)),
                )
            )
    return out


def read_sim2real(data: dict, name: str, root: Path) -> list[Row]:
    """``sim2real.json``: its memory-probe cases (``read_cases``), each joystick run (the
    gate's and development ones: mean forward tracking error over the command range [95% CI]
    over seeds, against a robot standing still) and the sim-to-sim check (C MuJoCo + ONNX
    return over rlx's eval)."""
    out = read_cases(data, name, root)
    for key, entry in data.items():
        if not (isinstance(entry, dict) and "per_seed_tracking_error_fraction" in entry):
            continue
        errors = entry["per_seed_tracking_error_fraction"]
        low, high = bootstrap_ci(errors)
        result = f"{np.mean(errors):.3f} {_interval(low, high, 3)} of the range"
        against = f"standing still {entry['standing_still_fraction']:.3f}"
        out.append(Row(key, "tracking error", len(errors), min(entry["seeds"]),
                       entry["steps_per_learner"], 1, result, against, name,
                       entry["command"]))  # fmt: skip
    check = data.get("sim_to_sim")
    if check is not None:
        ratio = data["sim_to_sim_return_ratio"]["value"]
        result = (f"{check['c_mujoco_onnx']['return']:.1f} ({ratio:.3f}x), tracking error "
                  f"{check['c_mujoco_onnx']['tracking_error_fraction']:.3f}")  # fmt: skip
        against = (f"rlx eval {check['rlx_eval']['return']:.1f}, tracking error "
                   f"{check['rlx_eval']['tracking_error_fraction']:.3f}")  # fmt: skip
        out.append(Row("sim_to_sim", "C MuJoCo + ONNX", 1, None, None, None, result, against,
                       name, check["command"]))  # fmt: skip
    return out


def read_unknown(data: dict, name: str, root: Path) -> list[Row]:
    """A file no reader knows: one row with its command, every figure ``-``."""
    command = data.get("command", MISSING) if isinstance(data, dict) else MISSING
    return [Row(Path(name).stem, MISSING, None, None, None, None, MISSING, MISSING, name, command)]


Reader = Callable[[dict, str, Path], list[Row]]
# (keys a file must hold, its reader), the first match wins.
READERS: tuple[tuple[frozenset[str], Reader], ...] = (
    (frozenset({"meta", "arms"}), read_bilevel),
    (frozenset({"finite_difference", "settings"}), read_diagnosis),
    (frozenset({"constrained", "best_feasible_fixed"}), read_constraint),
    (frozenset({"points", "dynamic"}), read_pareto),
    (frozenset({"final_success_mean", "seeds"}), read_push_learning),
    (frozenset({"rows", "episodes_per_setting"}), read_push_scripted),
    (frozenset({"rows", "command"}), read_bmg_step_size),
    (frozenset({"cases", "recurrent_probe_ratio"}), read_sim2real),
    (frozenset({"cases"}), read_cases),
)


def reader(data: object) -> Reader:
    """The reader of a file's JSON ``data``, by the keys it holds."""
    if isinstance(data, dict):
        for keys, read in READERS:
            if keys <= set(data):
                return read
    return read_unknown


def rows(folder: Path, root: Path | None = None) -> list[Row]:
    """Every row of every ``*.json`` in ``folder`` (sorted by name; ``root``: the repository,
    by default ``folder``'s grandparent, for the configs a command names)."""
    root = root if root is not None else folder.parent.parent
    out = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        report = path.with_suffix(".md")
        found = reader(data)(data, path.name, root)
        out += [replace(row, report=report.name if report.is_file() else None) for row in found]
    return out


def _number(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}"


def format_seeds(count: int | None, start: int | None) -> str:
    """``8 (4-11)``; the count alone where the first seed is not recorded."""
    if count is None:
        return MISSING
    if start is None:
        return str(count)
    return f"{count} ({start}-{start + count - 1})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


HEADER = """# Experiments

Every JSON file in this folder, one row per arm (or per reported result), generated by
`python scripts/index_experiments.py` from the files alone (`rlx/lab/index.py` reads them);
`tests/test_experiments_index.py` fails when this page and the files disagree. A figure a file
does not hold is `-`. The narrative (why each run was made, what it showed) is in
[log.md](log.md); the guide to the methods is [../meta.md](../meta.md).

- **seeds**: how many, and which where the file says.
- **env steps per learner**: one learner's env steps at the final evaluation (a seed of a
  plain or gradient arm; one member of a population).
- **members**: the learners per seed the result spends env steps on: a population's size, a
  sweep's settings (a population's own count is not in its file: it is read from the command
  and the task's config).
- **total env steps**: per seed, members x env steps per learner.
- **result**: for the bilevel arms, the final eval primary return, mean over seeds with its
  95% bootstrap CI; **against reference**: its ratio to arm A's mean in the same file, with a
  95% bootstrap CI resampling both arms' seeds (A's mean in brackets after it).
- **command**: what wrote the file, on the file's first row.

"""
COLUMNS = (
    "case",
    "arm",
    "seeds",
    "env steps per learner",
    "members",
    "total env steps",
    "result",
    "against reference",
    "file",
    "command",
)
TABLE_HEAD = f"| {' | '.join(COLUMNS)} |\n|{'---|' * len(COLUMNS)}\n"


def render(index: Sequence[Row]) -> str:
    """The index page (markdown) of ``index``'s rows."""
    lines = []
    previous = None
    for row in index:
        command = f"`{row.command}`" if (row.file, row.command) != previous else "as above"
        previous = (row.file, row.command)
        cells = (
            row.case,
            row.arm,
            format_seeds(row.seeds, row.seed_start),
            _number(row.steps),
            _number(row.members),
            _number(row.total_steps),
            row.result,
            row.against,
            f"[{row.file}]({row.file})" + (f" ([md]({row.report}))" if row.report else ""),
            command,
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return HEADER + TABLE_HEAD + "\n".join(lines) + "\n"


def write(folder: Path) -> Path:
    """Write ``folder/README.md``, the index of ``folder``'s JSON files; its path."""
    out = folder / "README.md"
    out.write_text(render(rows(folder)))
    return out


def cited_files(page: str) -> list[str]:
    """The file names a generated index links to, in order (its ``file`` column)."""
    return re.findall(r"\| \[([^\]]+\.json)\]\(", page)
