"""Bilevel reward optimisation against fixed rewards: the tasks, the arms, one arm's
vmapped run with per-eval checkpoints, and the report (JSON, markdown table with bootstrap
intervals, plot). ``scripts/experiments/bilevel.py`` is the command.

Arms (each a config: the task's base config plus overrides; every arm sees the same env steps
per learner, the same PPO settings and the same seeds):
  A  primary reward only;  B  primary + auxiliary at its starting weight (naive: 1, and 4
     in BARFI's units on halfcheetah);
  C  primary + potential-based shaping with the auxiliary as the potential (only where the
     auxiliary is a function of the state: gridworld's trap, Phi(s) = 250 in_trap(s));
  D  implicit meta-gradient (BARFI);  E  one-step meta-gradient;  G  unrolled (2 updates);
  F  population search (exploit/explore; its result is the member with the best fitness, and
     it uses population_size times the env steps);  H  the PBT hybrid (F whose members follow
     one_step between exploits, ``meta.member_gradient``);  I  BMG (one_step matched to a target
     2 updates further, ``meta.bootstrap_steps``).
A task with a ``poor`` weighting (the humanoid) has no single auxiliary: A is the hand-tuned
weighting of its terms, B the poor one, and the meta arms start from B's and learn ``learn``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rlx import config as config_lib
from rlx.config import build as build_lib
from rlx.core.stats import bootstrap_ci, ratio_ci
from rlx.meta import schema as meta_schema

DEFAULT_TASK = "cartpole"  # the command's --task default
TASKS = {
    "cartpole": {
        "config": "configs/meta/cartpole_anti_pd.yaml",
        "primary": {"alive": 1.0},
        "aux": {"bad": ("pd_anti", 1.0), "good": ("pd_agree", 1.0)},
        "potential": None,
    },
    "gridworld": {
        "config": "configs/meta/gridworld_trap.yaml",
        "primary": {"step_cost": 1.0, "goal": 1.0},
        "aux": {"bad": ("trap", 1.0), "good": ("goal_distance", 1.0)},
        "potential": {"in_trap": 250.0},
    },
    # Brax's reward_ctrl term is -0.1 sum(a^2); BARFI's r_aux = -sum(a^2) at weight 4 (bad) or
    # 1 (good) is reward_ctrl at weight 40 or 10.
    "halfcheetah": {
        "config": "configs/meta/halfcheetah_ctrl.yaml",
        "primary": {"reward_run": 1.0},
        "aux": {"bad": ("reward_ctrl", 40.0), "good": ("reward_ctrl", 10.0)},
        "potential": None,
        # --gpu: 16 seeds x 256 envs, 5M env steps per seed
        "gpu": ["train.num_envs=256", "train.total_steps=5000000", "eval.num_envs=16"],
    },
    # Brax hopper with a 10x healthy bonus: standing still out-earns hopping (a hacked reward).
    # A: Brax's own weights (1, 1, 1); B: the hacked ones; the meta arms learn the healthy
    # weight from B's.
    "hopper": {
        "config": "configs/meta/hopper_alive.yaml",
        "default": {"reward_forward": 1.0, "reward_healthy": 1.0, "reward_ctrl": 1.0},
        "poor": {"reward_forward": 1.0, "reward_healthy": 10.0, "reward_ctrl": 1.0},
        "learn": ("reward_healthy",),
        "gpu": ["train.num_envs=256", "train.total_steps=5000000", "eval.num_envs=16"],
    },
    # Brax walker2d with the healthy bonus at 100x: on two legs, standing still is safe and
    # collects the bonus every step, so it out-earns walking (a hacked reward; 10x did not hack).
    "walker2d": {
        "config": "configs/meta/walker2d_alive.yaml",
        "default": {"reward_forward": 1.0, "reward_healthy": 1.0, "reward_ctrl": 1.0},
        "poor": {"reward_forward": 1.0, "reward_healthy": 100.0, "reward_ctrl": 1.0},
        "learn": ("reward_healthy",),
        "gpu": ["train.num_envs=256", "train.total_steps=5000000", "eval.num_envs=16"],
    },
    # MJX humanoid_run: the hand-tuned weights against the same plus dm_control's standing and
    # upright terms at 1 each, a lure: balancing in place out-earns moving forward.
    "humanoid_lure": {
        "config": "configs/meta/humanoid_run_lure.yaml",
        "default": {"forward_velocity": 0.125, "alive": 0.5, "ctrl_cost": -0.01},
        "poor": {
            "forward_velocity": 0.125,
            "alive": 0.5,
            "ctrl_cost": -0.01,
            "standing": 1.0,
            "upright": 1.0,
        },
        "learn": ("standing", "upright"),
        "gpu": ["train.num_envs=256", "train.total_steps=10000000", "eval.num_envs=16"],
    },
    # MJX humanoid: hand-tuned weights (configs/humanoid_cpu.yaml) against a poor start.
    "humanoid": {
        "config": "configs/meta/humanoid_poor_weights.yaml",
        "default": {"forward_velocity": 0.125, "alive": 0.5, "ctrl_cost": -0.01},
        "poor": {"forward_velocity": 0.125, "alive": 0.05, "ctrl_cost": -0.5},
        "learn": ("alive", "ctrl_cost"),  # the primary's weight stays fixed
        # --gpu: 16 seeds x 256 envs (4,096 in all), 10M env steps per seed
        "gpu": ["train.num_envs=256", "train.total_steps=10000000", "eval.num_envs=16"],
    },
}


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One bilevel experiment: its task (a ``TASKS`` key), auxiliary (``bad`` or ``good``),
    seeds ``seed_start .. seed_start + seeds - 1``, and every arm's command-line overrides."""

    task: str
    aux: str = "bad"
    seeds: int = 16
    seed_start: int = 0
    overrides: tuple[str, ...] = ()


def learned_names(task: dict, which: str) -> tuple[str, ...]:
    """The reward terms whose weights the meta arms learn (and the tables report)."""
    if "poor" in task:
        return tuple(task["poor"])
    return (task["aux"][which][0],)


def arms(task: dict, which: str) -> dict[str, tuple[str, dict]]:
    """arm -> (kind, overrides of the task's base config)."""
    if "poor" in task:  # A: hand-tuned, B: poor, meta arms: from poor, task["learn"] learned
        start, learn = task["poor"], [f"combine/{name}" for name in task["learn"]]
        out = {
            "A": ("plain", {"reward": {"weights": task["default"]}}),
            "B": ("plain", {"reward": {"weights": start}}),
        }
        return out | _meta_arms(start, learn)
    primary = task["primary"]
    aux, weight = task["aux"][which]
    both = {**primary, aux: weight}
    learn = [f"combine/{aux}"]
    out = {
        "A": ("plain", {"reward": {"weights": primary}}),
        "B": ("plain", {"reward": {"weights": both}}),
    }
    if task["potential"] is not None and which == "bad":
        shaping = [{"potential": {"signals": task["potential"]}}]
        out["C"] = ("plain", {"reward": {"weights": primary, "shaping": shaping}})
    return out | _meta_arms(both, learn)


def _meta_arms(weights: dict, learn: list[str]) -> dict[str, tuple[str, dict]]:
    out = {}
    for arm, method, extra in (
        ("D", "implicit", {}),
        ("E", "one_step", {}),
        ("G", "unrolled", {"inner_iterations": 2}),
        # F: exploit/explore every 5 iterations (the base's gradient settings do not apply)
        ("F", "population", {"inner_iterations": 5}),
        # H: the PBT hybrid, members following one_step between exploits (every 5 iterations)
        ("H", "population", {"inner_iterations": 5, "member_gradient": "one_step"}),
        # I: BMG, one_step matched to a target 2 updates further
        ("I", "one_step", {"bootstrap_steps": 2}),
    ):
        meta = {"method": method, "learn": learn, **extra}
        out[arm] = ("meta", {"reward": {"weights": weights}, "meta": meta})
    return out


def merge(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in, nested dicts key by key (``extra`` wins)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def load(path: Path, overrides: dict, cli: list[str]) -> config_lib.Config:
    """The base config with ``overrides`` (a nested dict) then the command line's."""
    import yaml

    data = yaml.safe_load(path.read_text())
    # The arm's reward section replaces the base config's whole; the rest merges.
    data = merge(data, {k: v for k, v in overrides.items() if k != "reward"})
    data = {k: v for k, v in data.items() if v is not None}
    if "reward" in overrides:
        data["reward"] = overrides["reward"]
    if "meta" not in overrides:
        data["meta"] = {}  # a plain PPO arm: the base's meta section may name absent terms
    else:  # the base's settings of other methods are dropped, the arm's own kept and checked
        data["meta"] = meta_schema.for_method(data["meta"], keep=overrides["meta"])
    tmp = [f"{k}={json.dumps(v)}" for k, v in data.items()]
    return build_lib.load(path, [*tmp, *cli])


def run_arm(
    kind: str,
    cfg: config_lib.Config,
    seeds: int,
    names: tuple[str, ...],
    arm_dir: Path | None = None,
    max_chunks: int | None = None,
    seed_start: int = 0,
) -> dict | None:
    """One arm, its seeds vmapped. With ``arm_dir`` it checkpoints the states and the curves
    at every eval point there and continues from the newest checkpoint it finds (an arm that
    was stopped resumes where it stopped, to the same result). ``max_chunks`` stops after that
    many chunks in this call (None returned), as a kill would. Seed i is the i-th key split from
    ``train.seed``'s (the same key for any number of seeds: JAX's partitionable threefry); the
    arm runs seeds ``seed_start .. seed_start + seeds - 1``."""
    built, hps, init, chunk_fn, evaluate, iterations = _learner(kind, cfg)
    per_chunk = cfg.run.chunk_iterations
    keys = jax.random.split(jax.random.key(cfg.train.seed), seed_start + seeds)[seed_start:]
    start = time.perf_counter()
    # One seed at a time, then stacked: the jitted vmap of a meta-learner's init (PPO init plus
    # a rollout) is the program the jaxlib CPU runtime was seen to wedge on (README, Known
    # issues).
    one = jax.jit(init)
    states = jax.tree.map(lambda *xs: jnp.stack(xs), *[one(k) for k in keys])
    chunk = jax.jit(jax.vmap(functools.partial(chunk_fn, num_iterations=per_chunk), (0, None)))
    eval_key = jax.random.key(cfg.eval.seed)
    ev = jax.jit(jax.vmap(evaluate, (0, None, None)))
    steps_per_chunk = cfg.train.num_envs * cfg.train.unroll_length * per_chunk
    steps_per_chunk *= cfg.meta.ppo_iterations if kind == "meta" else 1
    log = {"curve": [], "gammas": [], "env_steps": [], "weights": {n: [] for n in names}}
    primary_key = "eval/primary_return"
    if kind == "meta" and cfg.meta.method == "population":  # F and H
        primary_key = "eval/primary_return_best_member"
    chunks = iterations // per_chunk
    every = min(cfg.eval.every_chunks, max(1, chunks // 10))  # >= 10 points per curve
    done, wall_before, checkpointer = 0, 0.0, None
    if arm_dir is not None:
        from rlx.run.checkpoint import Checkpointer

        checkpointer = Checkpointer(arm_dir, max_to_keep=1)
        found = checkpointer.restore_newest_valid(states)
        if found is not None:
            states, record = found
            done, wall_before, log = record["chunk"], record["wall_s"], record["log"]
            print(f"[bilevel]     resumed at chunk {done}/{chunks}", flush=True)
    for c in range(done, chunks):
        if max_chunks is not None and c - done >= max_chunks:
            checkpointer.close()
            return None
        states, metrics = chunk(states, hps)
        print(f"[bilevel]     chunk {c + 1}/{chunks}", flush=True)
        if (c + 1) % every == 0 or c + 1 == chunks:
            result = jax.device_get(ev(states, hps, eval_key))
            _log_eval(log, result, metrics, primary_key, built.reward_fn)
            log["env_steps"].append((c + 1) * steps_per_chunk)
            if checkpointer is not None:
                wall = wall_before + time.perf_counter() - start
                checkpointer.save(c + 1, states, {"chunk": c + 1, "wall_s": wall, "log": log})
    if checkpointer is not None:
        checkpointer.close()
    wall = wall_before + time.perf_counter() - start
    return {
        "env_steps": log["env_steps"],
        "eval_primary": log["curve"],
        "weight": log["weights"][names[0]],  # the (first) learned weight, per eval and seed
        "weights": log["weights"],
        "weights_decoded": True,  # w itself, not a log_scale phi (bilevel_redecode.py)
        "gamma": log["gammas"],
        "wall_s": wall,
        "final": log["curve"][-1],
        "eval_terms": log.get("terms", {}),  # term -> per eval point, per seed: episode sums
        "eval_length": log.get("length", []),
    }


def _learner(kind: str, cfg: config_lib.Config) -> tuple:
    """(built, hparams, init, chunk, evaluate, iterations) of a ``plain`` PPO learner or a
    ``meta`` one."""
    if kind == "plain":
        built = build_lib.build(cfg)
        agent, hps = built.agent, built.hparams
        init = lambda key: agent.init(key, hps.reward_params)
        return built, hps, init, agent.train_chunk, agent.evaluate, cfg.iterations
    built = build_lib.build(cfg, meta=True)
    meta, hps = built.meta, built.meta_hps
    init = lambda key: meta.init(key, hps)
    return built, hps, init, meta.chunk, meta.evaluate, cfg.meta_iterations


def decoded_weights(metrics: dict, reward_fn) -> dict:
    """{term: [seeds]} weights at a chunk's last iteration (metrics are [seeds, iterations]):
    the effective ``weights/<term>`` where the method logs them, else its raw
    ``phi/combine/<term>`` decoded by the reward's parameterization (a population logs phi
    only; under ``log_scale`` that is log|w|, not w). A state-dependent parameterization, which
    needs a transition to decode, stays raw."""
    last = lambda prefix: {
        k[len(prefix) :]: np.asarray(v)[:, -1] for k, v in metrics.items() if k.startswith(prefix)
    }
    out, raw = last("weights/"), last("phi/combine/")
    if out or not raw or reward_fn.weights is None:
        return out or raw
    try:
        decode = jax.vmap(lambda r: reward_fn.weights({"combine": r}, None))  # over seeds
        return {k: np.asarray(v) for k, v in decode(raw).items()}
    except (TypeError, AttributeError, KeyError):  # state-dependent, or a non-scalar leaf
        return raw


def _log_eval(log: dict, result: dict, metrics: dict, primary_key: str, reward_fn) -> None:
    """Appends one eval point: the primary return per seed, every term's episode sum and the
    episode length (what a hacked reward shows in), the learned weights and gamma."""
    log["curve"].append(np.asarray(result[primary_key]).tolist())
    suffix = primary_key[len("eval/primary_return") :]  # "_best_member" for a population
    for key, value in result.items():
        if key.startswith("eval/terms/") and key.endswith(suffix):
            name = key[len("eval/terms/") : len(key) - len(suffix)]
            log.setdefault("terms", {}).setdefault(name, []).append(np.asarray(value).tolist())
    if f"eval/length{suffix}" in result:
        log.setdefault("length", []).append(np.asarray(result[f"eval/length{suffix}"]).tolist())
    weights = decoded_weights(metrics, reward_fn)
    for name in log["weights"]:
        if name in weights:
            log["weights"][name].append(weights[name].tolist())
    if "meta/gamma" in metrics:
        log["gammas"].append(np.asarray(metrics["meta/gamma"])[:, -1].tolist())


def arm_from(arm: str, source: Path, args: Experiment, root: Path) -> dict:
    """Arm ``arm``'s result in the bilevel JSON ``source``, cut to this run's seeds
    (``args.seed_start``, ``args.seeds``; task configs under ``root``). Exits with one line
    where the file lacks the arm or the seeds, or ran the arm with other settings or another
    budget."""
    task = TASKS[args.task]
    task_arms = arms(task, args.aux)
    if arm not in task_arms:
        raise SystemExit(f"--arm-from {arm}={source}: --task {args.task} has no arm {arm}")
    source = source.resolve()
    if not source.is_file():
        raise SystemExit(f"--arm-from {arm}={source}: no such file")
    data = json.loads(source.read_text())
    meta, result = data["meta"], data["arms"].get(arm)
    if result is None:
        raise SystemExit(f"--arm-from {arm}={source}: the file has arms {sorted(data['arms'])}")
    kind, overrides = task_arms[arm]
    if kind != "plain" or result["overrides"] != overrides:
        raise SystemExit(
            f"--arm-from {arm}={source}: not the fixed arm {arm} of --task {args.task}"
        )
    first = meta.get("seed_start", 0)  # runs written before --seed-start began at 0
    lo = args.seed_start - first
    if lo < 0 or lo + args.seeds > meta["seeds"]:
        raise SystemExit(
            f"--arm-from {arm}={source}: it ran seeds {first}-"
            f"{first + meta['seeds'] - 1}, not {args.seed_start}-"
            f"{args.seed_start + args.seeds - 1}"
        )
    cfg = load(root / task["config"], overrides, list(args.overrides))
    chunk = cfg.train.num_envs * cfg.train.unroll_length * cfg.run.chunk_iterations
    if abs(result["env_steps"][-1] - cfg.train.total_steps) > chunk:
        raise SystemExit(
            f"--arm-from {arm}={source}: it ran {result['env_steps'][-1]} env steps per "
            f"learner, this run {cfg.train.total_steps}"
        )
    n = meta["seeds"]
    # The per-seed fields ([..., seeds]); the rest (env_steps, wall_s, ...) is copied as is.
    per_seed = ("final", "eval_primary", "eval_length", "weight", "gamma", "weights", "eval_terms")
    cut = lambda v: np.asarray(v)[..., lo : lo + args.seeds].tolist() if np.size(v) else v
    out = {k: v for k, v in result.items() if k not in ("overrides", "kind")}
    for k in per_seed:
        if isinstance(out.get(k), dict):
            out[k] = {name: cut(v) for name, v in out[k].items()}
        elif k in out:
            out[k] = cut(out[k])
    out |= {"kind": result["kind"], "overrides": overrides}
    final = np.asarray(out["final"])
    out |= {"ci95": bootstrap_ci(final), "mean": float(final.mean())}
    out["from"] = f"{source.relative_to(root) if source.is_relative_to(root) else source}"
    out["from"] += f", seeds {args.seed_start}-{args.seed_start + args.seeds - 1} of its {n}"
    return out


def method_label(meta) -> str:
    """The meta arm's method as the tables name it: the method, with the hybrid's member
    gradient or BMG's bootstrap."""
    if meta.method == "population" and meta.member_gradient != "none":
        return f"population + {meta.member_gradient}"
    if meta.bootstrap_steps:
        return f"{meta.method} + BMG L={meta.bootstrap_steps}"
    return meta.method


def learned(result: dict) -> str:
    """'name mean +- std, ...' of the last learned weights over seeds ('' for fixed arms)."""
    weights = result.get("weights") or {}
    return ", ".join(
        f"{name} {np.mean(w[-1]):.2f} +- {np.std(w[-1]):.2f}" for name, w in weights.items() if w
    )


def write(
    out: Path, args: Experiment, names: tuple[str, ...], results: dict, commands: list[str]
) -> None:
    """``out``.json (every arm's curves, finals, weights, wall time), ``out``.md (the table,
    with 95% bootstrap intervals and each arm's ratio to A) and ``out``.png (``plot``)."""
    task = TASKS[args.task]
    if "poor" in task:
        title = (
            f"{args.task}, from a poor weighting {task['poor']} (A: hand-tuned "
            f"{task['default']}; meta arms start from B's weights and learn "
            f"{', '.join(task['learn'])})"
        )
    else:
        title = f"{args.task}, auxiliary `{names[0]}` ({args.aux})"
    meta = {
        "commands": commands,
        "machine": f"{platform.machine()}, {jax.devices()[0].device_kind} x {jax.device_count()}",
        "jax": jax.__version__,
        "seeds": args.seeds,
        "seed_start": args.seed_start,
        "aux": names[0],
        "learned": list(names),
    }
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "arms": results}, indent=1))
    lines = [
        f"# Bilevel reward optimisation: {title}",
        "",
        f"`{' && '.join(commands)}` ({meta['machine']}, JAX {meta['jax']}, "
        f"{args.seeds} seeds"
        + (f" ({args.seed_start}-{args.seed_start + args.seeds - 1})" if args.seed_start else "")
        + ", vmapped)",
        "",
        "| arm | method | final eval primary return (mean) | 95% CI (bootstrap) "
        f"| learned weight of {', '.join(f'`{n}`' for n in names)} (mean +- std) "
        "| inner gamma | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, r in results.items():
        weights = learned(r) if "weights" in r else None
        if weights is None and r["weight"]:  # results written before "weights" existed
            w = np.asarray(r["weight"][-1])
            weights = f"{w.mean():.2f} +- {w.std():.2f}"
        g = np.asarray(r["gamma"][-1]) if r["gamma"] else None
        lines.append(
            f"| {arm} | {r['kind']} | {r['mean']:.1f} | [{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}] "
            f"| {weights or '-'} "
            f"| {'-' if g is None else f'{g.mean():.4f}'} | {r['wall_s']:.0f} |"
        )
    lines += _notes(results)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    plot(out, results, names, weight_lines(task, args.aux, names))


def _notes(results: dict) -> list[str]:
    """The lines under the table: finals per seed, arms taken from other runs, each arm's
    final term sums and episode length, and each arm's ratio to A with its bootstrap CI."""
    lines: list[str] = []
    per_seed = (f"{arm} {', '.join(f'{v:.1f}' for v in r['final'])}" for arm, r in results.items())
    lines += ["", "Final eval primary return per seed: " + "; ".join(per_seed)]
    taken = [f"- {arm}: from `{r['from']}`" for arm, r in results.items() if r.get("from")]
    if taken:
        note = "Arms taken from another run (wall s: the arm's there, all its seeds):"
        lines += ["", note, *taken]
    with_terms = {arm: r for arm, r in results.items() if r.get("eval_terms")}
    if with_terms:
        lines += [
            "",
            "Final eval episode sums of the terms (unweighted, mean over seeds) and episode "
            "length:",
            "",
        ]
        for arm, r in with_terms.items():
            sums = ", ".join(
                f"{name} {np.mean(v[-1]):.1f}" for name, v in sorted(r["eval_terms"].items())
            )
            length = f"; length {np.mean(r['eval_length'][-1]):.0f}" if r["eval_length"] else ""
            lines.append(f"- {arm}: {sums}{length}")
    if "A" in results and results["A"]["mean"]:
        a = np.asarray(results["A"]["final"])
        lines += [
            "",
            "Ratio of each arm's mean final return to arm A's, with a 95% bootstrap CI "
            "(seeds resampled in both arms): "
            + ", ".join(
                f"{arm} {r['mean'] / a.mean():.2f} [{{:.2f}}, {{:.2f}}]".format(
                    *ratio_ci(np.asarray(r["final"]), a)
                )
                for arm, r in results.items()
                if arm != "A"
            ),
        ]
    return lines


# One colour per arm, the same in every panel and every plot.
ARM_COLORS = {arm: f"C{i}" for i, arm in enumerate("ABCDEFGHI")}


def weight_lines(task: dict, which: str, names: tuple[str, ...]) -> dict[str, list]:
    """Per learned term, the (value, label) lines the weight panel draws: where the meta arms
    start, and the reference (the hand-tuned weight; BARFI's right one; 0, primary only)."""
    if "poor" in task:
        return {  # a term the hand-tuned weights leave out (a lure) has only its start line
            n: [(task["poor"][n], "start")]
            + ([(task["default"][n], "hand-tuned")] if n in task["default"] else [])
            for n in names
        }
    aux, start = task["aux"][which]
    good_term, good = task["aux"]["good"]
    reference = (good, "reference") if good_term == aux and which == "bad" else (0.0, "A (0)")
    return {aux: [(start, "start"), reference]}


def plot(out: Path, results: dict, names: tuple[str, ...], lines: dict | None = None) -> None:
    """``out``.png: each arm's eval primary return (left) and learned weights (right) against
    env steps per learner, mean and IQR over seeds, ``lines`` (``weight_lines``) as marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    styles = ["-", "--", ":", "-."]
    plotted = []  # every weight drawn: a range over 100x gets a symlog axis
    for arm, r in results.items():
        color = ARM_COLORS.get(arm, "k")
        x = np.asarray(r["env_steps"])
        y = np.asarray(r["eval_primary"])
        left.plot(x, y.mean(1), color=color, marker=".", label=f"{arm} ({r['kind']})")
        left.fill_between(x, *np.percentile(y, [25, 75], axis=1), color=color, alpha=0.15)
        curves = r.get("weights") or {names[0]: r["weight"]}
        for i, (name, w) in enumerate(curves.items()):
            if not w:
                continue
            w = np.asarray(w)
            plotted.append(np.abs(w).ravel())
            label = arm if len(names) == 1 else f"{arm} {name}"
            right.plot(x[: len(w)], w.mean(1), color=color, ls=styles[i % 4], label=label)
            right.fill_between(
                x[: len(w)], *np.percentile(w, [25, 75], axis=1), color=color, alpha=0.15
            )
    for i, (name, marks) in enumerate((lines or {}).items()):
        for value, label in marks:
            text = label if len(names) == 1 else f"{name} {label}"
            gray = "0.3" if label == "start" else "0.6"
            right.axhline(value, color=gray, ls=styles[i % 4], lw=0.8, label=text)
    left.set(
        xlabel="env steps per learner",
        ylabel="eval primary return",
        title="primary return (mean, IQR)",
    )
    right.set(
        xlabel="env steps per learner",
        ylabel=f"weight of {names[0]}" if len(names) == 1 else "learned weights",
        title="learned weight (mean, IQR)",
    )
    magnitudes = np.concatenate(plotted) if plotted else np.zeros(0)
    magnitudes = magnitudes[magnitudes > 0]
    if magnitudes.size and magnitudes.max() > 100 * magnitudes.min():
        right.set_yscale("symlog", linthresh=max(float(magnitudes.min()), 1e-3))
        right.set_title("learned weight (mean, IQR; symlog axis)")
    left.legend(fontsize=7)
    if any(r["weight"] for r in results.values()):
        right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)
