"""rlx PPO against a real peer, rejax's PPO, on CartPole-v1, side by side in one run.

Both run PureJaxRL's settings (4 envs x 128 steps, 4 epochs x 4 minibatches, lr 2.5e-4,
entropy 0.01, clip 0.2 for the policy and the value, gamma 0.99, lambda 0.95, max grad 0.5,
64x64 tanh MLPs, no observation normalisation, 499,712 env steps), rlx with the gradient
clipped element by element and its networks started from LeCun normal kernels as rejax
does (and once more, as ``rlx_purejaxrl``, with PureJaxRL's global-norm clip and orthogonal
init, rlx's defaults), as one jitted program per process, 1 seed and
``--seeds`` seeds vmapped, compile included, no eval inside the timed run (rejax's eval
callback is replaced by a no-op, its eval frequency is the whole run). Each measurement is a
fresh process (the persistent compilation cache off); the three programs alternate within each
of ``--rounds`` rounds, each going first in turn. The differences that
remain between the two settings are listed in ``DIFFERENCES`` and in the output.

rejax (0.1.3) runs from a scratch venv that sees the repo venv's packages (the same JAX and
Flax) plus rejax, gymnax and their import-time needs, installed with ``--no-deps``; never a
dependency of rlx:

  python scripts/bench_cartpole.py --setup-peer          # makes .bench-venv/ (once)
  python scripts/bench_cartpole.py [--seeds 16] [--rounds 2] [--out docs/bench/bench_cartpole.json]

Also measured, for rlx only ("curve"): eval return after every chunk of 10 iterations, to find
the env steps at which it first reaches 475, per seed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # rlx from this checkout, in the peer venv too

from rlx.core import runtime  # noqa: E402  (light: XLA's CPU flags; the engines import later)

# Set by the parent for each measurement: time.time() just before it starts the process.
LAUNCHED = "RLX_BENCH_LAUNCHED"

PUREJAXRL = [
    "train.total_steps=499712",  # PureJaxRL: 5e5 // (4 * 128) = 976 updates
    "train.num_envs=4",
    "train.unroll_length=128",
    "train.num_minibatches=4",
    "train.num_epochs=4",
    "train.normalize_observations=false",
    "ppo.learning_rate=2.5e-4",
    "ppo.entropy_cost=0.01",
    "ppo.clip_epsilon=0.2",
    "ppo.gamma=0.99",
    "ppo.gae_lambda=0.95",
    "ppo.max_grad_norm=0.5",
    "eval.num_envs=16",
    # PureJaxRL's and rejax's value loss: V's change clipped to +-clip_eps, the larger error
    "train.clip_value_loss=true",
    # rejax has no learning-rate annealing: matched by turning it off here
    "train.anneal_learning_rate=false",
]
# rejax clips each gradient element to +-max_grad_norm (optax.clip) where PureJaxRL clips the
# global norm (rlx's default), and its networks start from Flax's default init (LeCun normal)
# where PureJaxRL's start orthogonal (rlx's default): both matched for the comparison with the
# peer. The "rlx_purejaxrl" measurement runs without them (PureJaxRL's clip and init), so both
# are on record.
MATCH_REJAX = ["train.gradient_clip=elementwise", "network.kernel_init=lecun_normal"]
RLX_VARIANTS = {"rlx": MATCH_REJAX, "rlx_purejaxrl": []}
CLOCKS = {
    "after_imports": "from once the engine's modules are imported (rlx.config.build; rejax, gymnax "
    "and what they import) to the trained result: config, build, trace, compile, run",
    "from_launch": "from the parent starting the process to the trained result: the "
    "interpreter, every import (JAX's included) and the above",
}
# What still differs between the two programs (rejax 0.1.3's PPO against rlx's).
DIFFERENCES = [
    "optimisers: rejax steps the actor and the critic with two Adams, rlx one Adam on the joint "
    "parameters; with the gradient clipped element by element in both (matched: "
    "train.gradient_clip=elementwise) that is the same arithmetic, Adam being element-wise "
    "and the two networks separate",
    "gradient clipping: matched to rejax's element-wise clip; PureJaxRL, and rlx by default, "
    "clip the global norm instead, measured here too as rlx_purejaxrl",
    "updates: rejax takes an actor step then a critic step per minibatch (two backward passes); "
    "rlx one step on policy + value_cost * value loss - entropy_cost * entropy",
    "time limits: rejax treats an episode's truncation at 500 steps as terminal; rlx "
    "bootstraps V(s') there",
    "env: gymnax's CartPole-v1 for rejax, rlx's own cartpole (same dynamics and limits) for rlx",
    "network init: matched to rejax's (Flax's default, LeCun normal, every layer: "
    "network.kernel_init=lecun_normal); PureJaxRL, and rlx by default, start orthogonal (gain "
    "sqrt(2), 0.01 at the policy head), measured here too as rlx_purejaxrl",
    "bookkeeping: rlx also computes per-iteration metrics (losses, episode returns, per-term "
    "episode sums) inside the program; rejax only its train state",
]


def load(chunk_iterations: int, variant: str = "rlx"):
    """The bench's rlx config: PureJaxRL's settings plus ``RLX_VARIANTS[variant]``."""
    from rlx.config import build as build_lib

    overrides = [*PUREJAXRL, *RLX_VARIANTS[variant], f"run.chunk_iterations={chunk_iterations}"]
    return build_lib.load(REPO / "configs" / "cartpole.yaml", overrides)


def _run_in_phases(train, keys, start: float):
    """Runs the jitted ``train(keys)`` as ``lower``, ``compile``, call (what calling it does in
    one go), timing each: (its result, ``_timed`` seconds with the phases)."""
    phases = {"setup": time.perf_counter() - start}
    lowered = train.lower(keys)
    phases["trace_lower"] = time.perf_counter() - start - sum(phases.values())
    compiled = lowered.compile()
    phases["compile"] = time.perf_counter() - start - sum(phases.values())
    out = jax.block_until_ready(compiled(keys))
    phases["run"] = time.perf_counter() - start - sum(phases.values())
    return out, {**_timed(start), "phases": phases}


def _timed(start: float) -> dict:
    """The two clocks of one measurement, read when its result is ready: ``after_imports``
    (seconds since ``start``, taken once the engine's modules are imported) and ``from_launch``
    (seconds since the parent started this process: interpreter start and every import
    included; None when run by hand)."""
    launched = os.environ.get(LAUNCHED)
    return {
        "after_imports": time.perf_counter() - start,
        "from_launch": time.time() - float(launched) if launched else None,
    }


def whole_run(num_seeds: int, variant: str = "rlx") -> dict:
    """Seconds (``_timed``) for the full run of ``num_seeds`` vmapped seeds, compile included,
    under ``load(..., variant)``."""
    from rlx.config import build as build_lib

    start = time.perf_counter()
    config = load(chunk_iterations=976, variant=variant)
    built = build_lib.build(config)
    agent, hparams = built.agent, built.hparams
    keys = jax.random.split(jax.random.key(0), num_seeds)
    run = functools.partial(agent.train_chunk, num_iterations=config.iterations)

    @jax.jit
    def train(keys):
        states = jax.vmap(agent.init, in_axes=(0, None))(keys, hparams.reward_params)
        states, metrics = jax.vmap(run, in_axes=(0, None))(states, hparams)
        return metrics["episode_total/return"].sum(-1) / metrics["episode_total/episodes"].sum(-1)

    mean_train_return, elapsed = _run_in_phases(train, keys, start)
    print(
        f"{variant} whole run, {num_seeds} seed(s): {elapsed['after_imports']:.1f} s after imports "
        f"(mean train return over the run {float(np.mean(mean_train_return)):.1f})",
        flush=True,
    )
    return elapsed


def curve(num_seeds: int, chunk_iterations: int = 10) -> dict:
    """Eval return after every chunk, for ``num_seeds`` vmapped seeds."""
    from rlx.config import build as build_lib

    config = load(chunk_iterations)
    built = build_lib.build(config)
    agent, hparams = built.agent, built.hparams
    keys = jax.random.split(jax.random.key(0), num_seeds)
    states = jax.jit(jax.vmap(agent.init, in_axes=(0, None)))(keys, hparams.reward_params)
    chunk = jax.jit(
        jax.vmap(
            functools.partial(agent.train_chunk, num_iterations=chunk_iterations),
            in_axes=(0, None),
        ),
        donate_argnums=0,
    )
    evaluate = jax.jit(jax.vmap(agent.evaluate, in_axes=(0, None, None)))
    eval_key = jax.random.key(config.eval.seed)
    steps, returns = [], []
    for index in range(config.iterations // chunk_iterations):
        states, _ = chunk(states, hparams)
        returns.append(np.asarray(evaluate(states, hparams, eval_key)["eval/return"]))
        steps.append((index + 1) * chunk_iterations * agent.static.batch_size)
    returns = np.stack(returns, axis=1)  # [seeds, chunks]
    first = []
    for seed_returns in returns:
        hit = np.nonzero(seed_returns >= 475)[0]
        first.append(int(steps[hit[0]]) if len(hit) else None)
    reached = [s for s in first if s is not None]
    print(
        f"steps to eval return 475: {len(reached)}/{num_seeds} seeds, median "
        f"{np.median(reached) if reached else float('nan'):,.0f}",
        flush=True,
    )
    return {
        "env_steps": steps,
        "eval_return": returns.tolist(),
        "first_steps_to_475": first,
        "seeds_reaching_475": len(reached),
        "median_steps_to_475": float(np.median(reached)) if reached else None,
        "final_eval_return_mean": float(returns[:, -1].mean()),
        "final_eval_return_min": float(returns[:, -1].min()),
    }


def rejax_whole_run(num_seeds: int) -> dict:
    """Seconds (``_timed``) for rejax's PPO on gymnax CartPole-v1, ``num_seeds`` vmapped,
    compile included, its eval callback a no-op (run in the peer venv, see --setup-peer)."""
    import jax.numpy as jnp
    from rejax import PPO

    start = time.perf_counter()
    total = 499_712
    algo = PPO.create(
        env="CartPole-v1",
        total_timesteps=total,
        eval_freq=total,  # one "evaluation", at the end: the no-op below
        skip_initial_evaluation=True,
        num_envs=4,
        num_steps=128,
        num_epochs=4,
        num_minibatches=4,
        learning_rate=2.5e-4,
        max_grad_norm=0.5,
        gamma=0.99,
        gae_lambda=0.95,
        clip_eps=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        normalize_observations=False,
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": (64, 64)},
    )
    algo = algo.replace(eval_callback=lambda algo, ts, rng: jnp.zeros(()))
    keys = jax.random.split(jax.random.key(0), num_seeds)
    train = jax.jit(jax.vmap(algo.train))
    (states, _), elapsed = _run_in_phases(train, keys, start)
    # Outside the timing: rejax's own evaluation of the trained policies (128 episodes each).
    from rejax.evaluate import evaluate

    def score(ts, key):
        act = algo.make_act(ts)
        lengths, returns = evaluate(act, key, algo.env, algo.env_params, 128, 500)
        return returns.mean()

    returns = jax.vmap(score)(states, keys)
    print(
        f"rejax whole run, {num_seeds} seed(s): {elapsed['after_imports']:.1f} s after imports "
        f"(mean eval return of the "
        f"trained policies {float(np.mean(returns)):.1f})",
        flush=True,
    )
    return elapsed


def _part(part: str, seeds: int, timeout_s: float, python: str = sys.executable):
    """Runs one measurement in a fresh process (compile counted in full, nothing shared).

    On a 2-core CPU, XLA's CPU runtime (jaxlib 0.10.2) was seen to wedge with every worker
    idle, waiting for a result, on the second or third large program of one process. A part
    that passes ``timeout_s`` is killed and run again; the number of tries is reported.
    """
    command = [python, __file__, "--part", part, "--seeds", str(seeds)]
    for attempt in range(1, 4):
        env = {**os.environ, LAUNCHED: repr(time.time())}
        try:
            out = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, env=env
            )
        except subprocess.TimeoutExpired:
            print(f"{part} with {seeds} seed(s): no result in {timeout_s:.0f} s, retrying")
            continue
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        print(out.stdout.strip().splitlines()[-2], flush=True)
        return json.loads(out.stdout.strip().splitlines()[-1]), attempt
    raise RuntimeError(f"{part} with {seeds} seed(s) never finished")


# The measurements, each in its own process: an engine's whole run, or rlx's curve.
PARTS = {
    "rlx": whole_run,
    "rlx_purejaxrl": functools.partial(whole_run, variant="rlx_purejaxrl"),
    "rejax": rejax_whole_run,
    "curve": curve,
}
ENGINES = ("rlx", "rejax", "rlx_purejaxrl")

PEER_VENV = REPO / ".bench-venv"
# rejax and what it and gymnax import, without their declared dependencies (those would
# replace the repo venv's JAX): the versions measured with.
PEER_PACKAGES = [
    "rejax==0.1.3",
    "gymnax==0.0.9",
    "distrax==0.1.9",
    "tfp-nightly==0.26.0.dev20261027",
    "gymnasium==1.4.0",
    "seaborn==0.13.2",
    "pandas==3.1.1",
    "dm-tree==0.1.10",
    "decorator==5.3.1",
    "six==1.17.0",
]


def setup_peer() -> None:
    """Makes .bench-venv/: a venv whose .pth adds this interpreter's site-packages (the same
    JAX, Flax, Optax), with rejax and gymnax installed there with --no-deps."""
    import site

    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    own = PEER_VENV / "lib" / version / "site-packages"
    (own / "rlx_venv.pth").write_text(site.getsitepackages()[0] + "\n")
    pip = [str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run([*pip, *PEER_PACKAGES], check=True)
    check = [str(PEER_VENV / "bin" / "python"), "-c", "import jax, rejax; print(jax.__version__)"]
    out = subprocess.run(check, check=True, capture_output=True, text=True)
    print(f"{PEER_VENV}: rejax with JAX {out.stdout.strip()} (the repo venv's)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "bench_cartpole.json"))
    parser.add_argument("--setup-peer", action="store_true", help="make .bench-venv/ and exit")
    parser.add_argument("--no-curve", action="store_true", help="skip rlx's steps-to-475 curve")
    parser.add_argument("--part", choices=tuple(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup_peer:
        setup_peer()
        return
    runtime.configure()
    if args.part:
        print(json.dumps(PARTS[args.part](args.seeds)))
        return
    peer_python = PEER_VENV / "bin" / "python"
    if not peer_python.exists():
        raise SystemExit(f"no peer venv at {PEER_VENV}: run {__file__} --setup-peer first")
    for line in DIFFERENCES:
        print(f"difference: {line}", flush=True)
    times = {f"{engine}_{n}": [] for engine in ENGINES for n in (1, args.seeds)}
    tries = {key: [] for key in times}
    for r in range(args.rounds):
        # Each engine goes first, second and third in turn over the rounds.
        order = ENGINES[r % 3 :] + ENGINES[: r % 3]
        for n in (1, args.seeds):
            for engine in order:
                python = str(peer_python) if engine == "rejax" else sys.executable
                seconds, attempt = _part(engine, n, 120 if n == 1 else 600, python)
                times[f"{engine}_{n}"].append(seconds)
                tries[f"{engine}_{n}"].append(attempt)
    clocks = ("after_imports", "from_launch")
    seconds = {
        clock: {key: [t[clock] for t in runs] for key, runs in times.items()} for clock in clocks
    }
    ratios = {
        clock: {
            f"{ours}_{n}" if ours != "rlx" else str(n): [
                p / o for p, o in zip(by[f"rejax_{n}"], by[f"{ours}_{n}"], strict=True)
            ]
            for ours in ("rlx", "rlx_purejaxrl")
            for n in (1, args.seeds)
        }
        for clock, by in seconds.items()
    }
    curve_n, tries_curve = (None, 0) if args.no_curve else _part("curve", args.seeds, 900)
    result = {
        "machine": f"{platform.machine()}, {jax.device_count()} x {jax.devices()[0].device_kind}",
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "command": " ".join(["python", "scripts/bench_cartpole.py", *sys.argv[1:]]),
        "settings": PUREJAXRL,
        "rlx_variants": RLX_VARIANTS,
        "peer": "rejax " + PEER_PACKAGES[0].split("==")[1],
        "differences": DIFFERENCES,
        "clocks": CLOCKS,
        "seconds": seconds,
        "phases_mean_s": {
            key: {
                phase: float(np.mean([t["phases"][phase] for t in runs]))
                for phase in runs[0]["phases"]
            }
            for key, runs in times.items()
        },
        "speed_ratio_rlx_over_rejax_per_round": ratios,
        "speed_ratio_of_means": {
            clock: {
                f"{ours}_{n}" if ours != "rlx" else str(n): float(
                    np.mean(by[f"rejax_{n}"]) / np.mean(by[f"{ours}_{n}"])
                )
                for ours in ("rlx", "rlx_purejaxrl")
                for n in (1, args.seeds)
            }
            for clock, by in seconds.items()
        },
        "tries": {**tries, "curve": tries_curve},
        "curve": curve_n,
    }
    for clock in clocks:
        for n in (1, args.seeds):
            by = seconds[clock]
            print(
                f"{clock}, {n} seed(s): rlx {np.mean(by[f'rlx_{n}']):.1f} s, rejax "
                f"{np.mean(by[f'rejax_{n}']):.1f} s: rlx at "
                f"{result['speed_ratio_of_means'][clock][str(n)]:.2f}x rejax's speed "
                f"(rounds: {', '.join(f'{x:.2f}' for x in ratios[clock][str(n)])}); "
                f"rlx_purejaxrl {np.mean(by[f'rlx_purejaxrl_{n}']):.1f} s: "
                f"{result['speed_ratio_of_means'][clock][f'rlx_purejaxrl_{n}']:.2f}x",
                flush=True,
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    markdown = Path(args.out).with_suffix(".md")
    markdown.write_text(_markdown(result, args.seeds))
    print(f"wrote {args.out} and {markdown}")


def _joined(values: list) -> str:
    return ", ".join(f"{x:.1f}" for x in values)


def _markdown(result: dict, seeds: int) -> str:
    phases = next(iter(result["phases_mean_s"].values()))
    rows = ""
    for clock, by in result["seconds"].items():
        ratio = result["speed_ratio_of_means"][clock]
        rows += "".join(
            f"| {n} | {clock.replace('_', ' ')} | {_joined(by[f'rlx_{n}'])} | "
            f"{_joined(by[f'rejax_{n}'])} | **{ratio[str(n)]:.2f}x** | "
            f"{_joined(by[f'rlx_purejaxrl_{n}'])} | {ratio[f'rlx_purejaxrl_{n}']:.2f}x |\n"
            for n in (1, seeds)
        )
    text = (
        "# CartPole-v1: rlx PPO against rejax's PPO, side by side\n\n"
        f"Machine: {result['machine']}, {result['cpu_count']} CPU cores, JAX {result['jax']}, "
        f"peer {result['peer']} (same JAX, from `.bench-venv/`). Written by "
        f"`{result['command']}`: every measurement a fresh process, compile included, "
        "persistent compilation cache off, the two engines alternating in each round.\n\n"
        "PureJaxRL's settings for both, 499,712 env steps, no eval inside the timed run. "
        "Both processes start through this script, so both run with rlx's CPU runtime "
        "settings (`rlx.core.runtime`: XLA's concurrency-optimised scheduler off, synchronous "
        "dispatch, JAX's threefry lowered as straight-line code instead of a loop; what that "
        "last one buys is measured in `docs/bench/bench_threefry.md`), the peer included. Each "
        "measurement is read on two clocks:\n\n"
        + "".join(f"- **{clock.replace('_', ' ')}**: {text}\n" for clock, text in CLOCKS.items())
        + "\nrlx runs PureJaxRL's settings with the gradient clipped element by element and "
        "the networks started from LeCun normal kernels, as rejax does "
        f"(`{' '.join(MATCH_REJAX)}`); rlx_purejaxrl is the same with PureJaxRL's (and rlx's "
        "defaults) global-norm clip and orthogonal init.\n\n"
        "| seeds (vmapped) | clock | rlx wall s, per round | rejax wall s, per round "
        "| rlx speed / rejax's (ratio of means) | rlx_purejaxrl wall s | its speed / rejax's "
        "|\n|---|---|---|---|---|---|---|\n"
        + rows
        + "\nWhere the after-imports time goes, mean over rounds (s; the jitted program run as "
        "`lower`, `compile`, call, timed apart; setup: config, env and agent for rlx, "
        "`PPO.create` for rejax):\n\n| part | "
        + " | ".join(phases)
        + " |\n|---|"
        + "---|" * len(phases)
        + "\n"
        + "".join(
            f"| {key.rsplit('_', 1)[0]}, {key.rsplit('_', 1)[1]} seed(s) | "
            + " | ".join(f"{by[p]:.2f}" for p in phases)
            + " |\n"
            for key, by in result["phases_mean_s"].items()
        )
        + "\nDifferences that remain between the two programs:\n\n"
        + "".join(f"- {d}\n" for d in result["differences"])
    )
    curve_result = result["curve"]
    if curve_result:
        first = [s for s in curve_result["first_steps_to_475"] if s is not None]
        text += (
            f"\nrlx alone, deterministic eval (16 envs, full episodes) every 5,120 env steps, "
            f"{seeds} seeds: {len(first)}/{seeds} reach eval return 475; first at "
            f"{min(first) if first else '-'} to {max(first) if first else '-'} env steps, "
            f"median {curve_result['median_steps_to_475']}; final eval return mean "
            f"{curve_result['final_eval_return_mean']:.1f}, min "
            f"{curve_result['final_eval_return_min']:.1f}.\n"
        )
    return (
        text
        + f"\nTries per part (a part that hangs is rerun, see the script): {result['tries']}.\n"
    )


if __name__ == "__main__":
    main()
