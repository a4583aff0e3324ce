"""Proves a refactor changes no number: the same short runs at BASE_REV and in the working tree
must write bit-identical ``metrics.jsonl`` files (timing columns aside).

  python scripts/same_metrics.py BASE_REV [--out FILE] [--only NAME ...] [--rerun-base]
      [--keep] [--python PYTHON] [--cache-dir DIR] [--timeout SECONDS]

Each side is installed on its own, as pip installs it (``rlx.envs`` and ``rlx.rewards`` come
from ``envs/`` and ``rewards/`` through setuptools' package-dir, so the source tree itself is not
importable as rlx):

* the base: ``git worktree add --detach`` of BASE_REV in a scratch dir (removed at the end);
* the new side: a snapshot copy of the working tree (tracked files as they are on disk plus
  untracked, non-ignored ones), so that building writes nothing into the repo and edits made
  while the runs go do not mix into them;

each with ``PYTHON -m pip install -q --no-deps --no-build-isolation --target DIR SRC``. PYTHON is
the repo's ``.venv/bin/python`` (which holds rlx in editable mode, so the script checks that
``PYTHONPATH=DIR`` really imports rlx, rlx.envs, rlx.rewards and rlx.meta from DIR and stops if
not). Without build isolation the build backend is the one PYTHON finds, and the project asks
for setuptools>=77 (PEP 639 ``license``) where a venv has 65: the build-system requirements are
installed once into a cache dir (``pip install --target``) that is on PYTHONPATH while pip
builds.

Every rlx process runs with its cwd in an empty scratch dir outside the repo and its config given
by absolute path from that side's tree (the base worktree, or the repo for the working tree),
one at a time (the runs use every core). The runs are fixed in ``RUNS`` below; each makes >= 2
chunks with an eval row per chunk, in well under a minute on a 2-core CPU.

Rows compare as: the same number of rows; per row the same keys, and for every key but
``TIMING_KEYS`` the same value: equal as floats (JSON round-trips floats exactly), with NaN equal
to NaN and 0.0 unequal to -0.0, None equal to None.

The base side's metrics are cached per resolved commit and run in
``~/.cache/rlx/same_metrics/<sha>/<run>/`` (with the run's spec: command, overrides, package
versions, XLA/JAX/RLX environment variables; a changed spec reruns it), so a rerun against the
same base runs only the working tree; ``--rerun-base`` ignores the cache. The working tree is
run every time.

Prints a table; ``--out FILE`` also writes a JSON report (base sha, working tree HEAD and whether
it is dirty, per-run status, times and commands). Exit status 0 only if every run matches.

``--new-rev REV`` (not in --help) builds REV in a second worktree in place of the working tree:
``--new-rev HEAD`` against BASE_REV=HEAD checks that two builds of the same code agree.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path("~/.cache/rlx/same_metrics").expanduser()


class Run(NamedTuple):
    name: str
    command: str  # rlx train | rlx meta
    config: str  # relative to the side's source tree, or "scratch:<file>" (SCRATCH_CONFIGS)
    overrides: tuple[str, ...]


# Configs that configs/ has no file for, written into the scratch dir; the same file serves both
# sides. brax:inverted_pendulum: envs/brax_adapter.py has no REWARD_PARTS entry for it, so its
# only term is `residual` (Brax's reward minus the parts) and a unit weight is Brax's reward.
SCRATCH_CONFIGS = {
    "brax_inverted_pendulum.yaml": """\
env:
  name: brax:inverted_pendulum
reward:
  weights:
    residual: 1.0
ppo:
  learning_rate: 3.0e-4
  entropy_cost: 1.0e-3
  gamma: 0.97
  clip_epsilon: 0.3
""",
}

# Added to every run: an eval row per chunk, and nothing written or read besides metrics.
COMMON_OVERRIDES = (
    "eval.every_chunks=1",
    "run.compilation_cache=",
    "run.tensorboard=false",
    "run.checkpoint=false",
)

# Each: >= 2 chunks (total_steps / (num_envs * unroll_length) iterations, in chunks of
# run.chunk_iterations; rlx meta: meta-iterations of meta.inner_iterations PPO iterations).
RUNS = [
    Run(
        "cartpole",
        "train",
        "configs/cartpole.yaml",
        (
            "train.total_steps=20480",  # 10 iterations of 16 x 128: 5 chunks
            "train.num_envs=16",
            "train.unroll_length=128",
            "run.chunk_iterations=2",
            "eval.num_envs=4",
        ),
    ),
    Run(
        "pendulum",
        "train",
        "configs/pendulum.yaml",
        (
            "train.total_steps=12288",  # 6 iterations of 16 x 128: 3 chunks
            "train.num_envs=16",
            "train.unroll_length=128",
            "train.num_epochs=4",
            "run.chunk_iterations=2",
            "eval.num_envs=4",
        ),
    ),
    Run(
        "gridworld",
        "train",
        "configs/gridworld.yaml",
        (
            "train.total_steps=6144",  # 6 iterations of 16 x 64: 3 chunks
            "train.num_envs=16",
            "train.unroll_length=64",
            "run.chunk_iterations=2",
            "eval.num_envs=4",
        ),
    ),
    Run(
        "reach",
        "train",
        "configs/reach.yaml",
        (
            "train.total_steps=512",  # 4 iterations of 4 x 32: 2 chunks
            "train.num_envs=4",
            "train.unroll_length=32",
            "train.num_minibatches=4",
            "train.num_epochs=2",
            "run.chunk_iterations=2",
            "eval.num_envs=2",
        ),
    ),
    Run(
        "brax_inverted_pendulum",
        "train",
        "scratch:brax_inverted_pendulum.yaml",
        (
            "env.params.episode_length=100",
            "train.total_steps=768",  # 6 iterations of 8 x 16: 3 chunks
            "train.num_envs=8",
            "train.unroll_length=16",
            "train.num_minibatches=4",
            "train.num_epochs=2",
            "run.chunk_iterations=2",
            "eval.num_envs=2",
        ),
    ),
    Run(
        "meta_cartpole_anti_pd",
        "meta",
        "configs/meta/cartpole_anti_pd.yaml",
        (
            "train.total_steps=8192",  # 4 one_step meta-iterations of 16 x 128: 2 chunks
            "train.num_envs=16",
            "train.unroll_length=128",
            "run.chunk_iterations=2",
            "eval.num_envs=4",
        ),
    ),
    # The other meta methods on the same config: each has its own code path.
    *(
        Run(
            f"meta_cartpole_{method}",
            "meta",
            "configs/meta/cartpole_anti_pd.yaml",
            (
                f"meta.method={method}",
                "train.total_steps=8192",
                "train.num_envs=16",
                "train.unroll_length=128",
                "run.chunk_iterations=2",
                "eval.num_envs=4",
                *extra,  # later overrides win
            ),
        )
        for method, extra in (
            ("implicit", ()),
            ("unrolled", ("meta.inner_iterations=2", "run.chunk_iterations=1")),
            ("population", ("meta.population_size=4",)),
        )
    ),
]

# Columns that measure time (rlx.run.driver.TIMING_KEYS): present alike, values not compared.
TIMING_KEYS = (
    "wall_s",
    "train/steps_per_s",
    "chunk_s",
    "eval_s",
    "compile_s",
    "trace_s",
    "video_s",
)
# What the pip-installed package is made of (pyproject's package-dir), for the dirty flag.
PACKAGE_PATHS = ("rlx", "envs", "rewards", "pyproject.toml")
VERSIONED = ("jax", "jaxlib", "numpy", "flax", "optax", "mujoco", "mujoco-mjx", "brax")
STDERR_TAIL = 25
MISSING = "<missing>"

IMPORT_CHECK = (
    "import json, rlx, rlx.envs, rlx.rewards, rlx.meta; "
    "print(json.dumps([m.__file__ for m in (rlx, rlx.envs, rlx.rewards, rlx.meta)]))"
)
VERSIONS_CHECK = """\
import importlib.metadata as m, json, platform, sys
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
out = {"python": sys.version.split()[0], "machine": platform.machine()}
print(json.dumps(out | {name: version(name) for name in sys.argv[1:]}))
"""


def log(message: str) -> None:
    print(f"[same_metrics] {message}", flush=True)


def git(*args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise SystemExit(f"same_metrics: git {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def resolve(rev: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"same_metrics: {rev!r} is not a commit")
    return out.stdout.strip()


class Side:
    """One side of the comparison: its source tree, its installed package, its runs."""

    def __init__(self, label: str, scratch: Path):
        self.label = label
        self.root = scratch / label
        self.src: Path | None = None  # where the package is built from
        self.configs: Path | None = None  # where its configs/ are read from
        self.pkg = self.root / "pkg"
        self.cwd = self.root / "cwd"
        self.runs = self.root / "runs"
        self.logs = self.root / "logs"
        self.worktree: Path | None = None

    def add_worktree(self, sha: str) -> None:
        path = self.root / "src"
        self.root.mkdir(parents=True, exist_ok=True)
        git("worktree", "add", "--detach", str(path), sha)
        self.worktree = self.src = self.configs = path

    def snapshot_working_tree(self) -> None:
        """Copies the working tree's files (tracked, as on disk, and untracked, not ignored)."""
        path = self.root / "src"
        listing = git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
        for name in sorted(set(filter(None, listing.split("\0")))):
            source = REPO / name
            if not (source.is_file() or source.is_symlink()):
                continue  # deleted in the working tree, or a submodule
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
        self.src, self.configs = path, REPO

    def remove_worktree(self) -> None:
        if self.worktree is None:
            return
        out = subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(self.worktree)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode:
            log(f"git worktree remove {self.worktree}: {out.stderr.strip()}; pruning")
            shutil.rmtree(self.worktree, ignore_errors=True)
            subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False)
        self.worktree = None

    def install(self, python: str, build_tools: Path) -> None:
        for path in (self.cwd, self.runs, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        command = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
        command += ["--target", str(self.pkg), str(self.src)]
        out = subprocess.run(
            command,
            cwd=self.cwd,
            env=environment(build_tools),
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode:
            raise SystemExit(
                f"same_metrics: installing the {self.label} package failed:\n"
                f"{shlex.join(command)}\n{tail(out.stdout + out.stderr)}"
            )
        out = subprocess.run(
            [python, "-c", IMPORT_CHECK],
            cwd=self.cwd,
            env=environment(self.pkg),
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode:
            raise SystemExit(
                f"same_metrics: importing the {self.label} package failed:\n{tail(out.stderr)}"
            )
        files = json.loads(out.stdout.strip().splitlines()[-1])
        outside = [f for f in files if not Path(f).resolve().is_relative_to(self.pkg.resolve())]
        if outside:
            raise SystemExit(
                f"same_metrics: with PYTHONPATH={self.pkg} the {self.label} side imports "
                f"{', '.join(outside)}, not the package installed in {self.pkg}"
            )
        log(f"{self.label}: rlx installed from {self.src} into {self.pkg} (imports checked)")

    def config_path(self, run: Run, scratch: Path) -> Path:
        if run.config.startswith("scratch:"):
            return scratch / run.config.removeprefix("scratch:")
        return self.configs / run.config

    def argv(self, run: Run, python: str, scratch: Path) -> list[str]:
        return [
            python,
            "-m",
            "rlx",
            run.command,
            str(self.config_path(run, scratch)),
            *run.overrides,
            *COMMON_OVERRIDES,
            "--run-dir",
            str(self.runs / run.name),
            "--no-progress",
        ]

    def execute(self, run: Run, python: str, scratch: Path, timeout: float) -> dict[str, Any]:
        """Runs ``run``; returns {command, seconds, error, rows, stderr_tail}."""
        argv = self.argv(run, python, scratch)
        start = time.perf_counter()
        try:
            out = subprocess.run(
                argv,
                cwd=self.cwd,
                env=environment(self.pkg),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            returncode, stdout, stderr = out.returncode, out.stdout, out.stderr
        except subprocess.TimeoutExpired as error:
            returncode, stdout, stderr = None, _text(error.stdout), _text(error.stderr)
        seconds = time.perf_counter() - start
        (self.logs / f"{run.name}.stdout").write_text(stdout)
        (self.logs / f"{run.name}.stderr").write_text(stderr)
        result = {"command": shlex.join(argv), "seconds": seconds, "error": None, "rows": None}
        if returncode is None:
            result["error"] = f"timed out after {timeout:.0f} s"
        elif returncode:
            result["error"] = f"exit status {returncode}"
        else:
            rows = read_rows(self.runs / run.name / "metrics.jsonl")
            result["rows"] = rows
            result["error"] = check_shape(rows)
        if result["error"]:
            result["stderr_tail"] = tail(stderr or stdout)
        return result


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def tail(text: str, lines: int = STDERR_TAIL) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def print_tail(label: str, run: Run, result: dict) -> None:
    text = result.get("stderr_tail") or "(no output)"
    header = f"--- {label} {run.name}: last {STDERR_TAIL} lines of stderr ---"
    print(f"{header}\n{text}\n{'-' * len(header)}", file=sys.stderr, flush=True)


def environment(pythonpath: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pythonpath)
    env.pop("PYTHONHOME", None)
    return env


def read_rows(path: Path) -> list[dict] | None:
    if not path.exists():
        return None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_shape(rows: list[dict] | None) -> str | None:
    """Why a run's metrics cannot serve as a check (None when they can)."""
    if rows is None:
        return "no metrics.jsonl"
    if len(rows) < 2:
        return f"{len(rows)} metrics row(s): the run must make >= 2 chunks"
    if not all("eval/return" in row for row in rows):
        return "a row without eval columns (eval.every_chunks=1 expected)"
    return None


def same_value(a: Any, b: Any) -> bool:
    """Bit-identical JSON values: equal floats (NaN == NaN, 0.0 != -0.0), None == None."""
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if not (isinstance(a, numbers) and isinstance(b, numbers)):
        return type(a) is type(b) and a == b
    fa, fb = float(a), float(b)
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) and math.isnan(fb)
    return fa == fb and math.copysign(1.0, fa) == math.copysign(1.0, fb)


def compare(base: list[dict], new: list[dict]) -> dict[str, Any]:
    """Row by row, key by key; the first difference and how many values differ."""
    differing, compared, columns, first = 0, 0, set(), None
    if len(base) != len(new):
        differing += abs(len(base) - len(new))
        first = {"row": min(len(base), len(new)) + 1, "key": "<rows>"}
        first |= {"base": len(base), "new": len(new)}
    for index, (b, n) in enumerate(zip(base, new, strict=False), start=1):
        keys = list(b) + [k for k in n if k not in b]
        for key in keys:
            if key in b and key in n:
                if key in TIMING_KEYS:
                    continue
                columns.add(key)
                compared += 1
                equal = same_value(b[key], n[key])
            else:
                equal = False
            if not equal:
                differing += 1
                if first is None or (first["key"] == "<rows>" and index < first["row"]):
                    first = {"row": index, "key": key}
                    first |= {"base": b.get(key, MISSING), "new": n.get(key, MISSING)}
    return {
        "rows": min(len(base), len(new)),
        "base_rows": len(base),
        "new_rows": len(new),
        "columns": len(columns),
        "values_compared": compared,
        "values_differing": differing,
        "first_difference": first,
    }


def build_tools(python: str, src: Path, cache: Path) -> Path:
    """A dir with the build-system requirements of ``src``'s pyproject (installed once)."""
    try:
        import tomllib

        with (src / "pyproject.toml").open("rb") as f:
            requires = tomllib.load(f).get("build-system", {}).get("requires", [])
    except (ImportError, OSError, ValueError):
        requires = ["setuptools>=77", "wheel"]
    requires = sorted(requires) or ["setuptools", "wheel"]
    key = hashlib.sha256(json.dumps([python, requires]).encode()).hexdigest()[:12]
    path = cache / "buildtools" / key
    if (path / ".complete").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    log(f"installing the build requirements {' '.join(requires)} into {path}")
    out = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--target", str(path), *requires],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"same_metrics: pip install {requires} failed:\n{tail(out.stderr)}")
    (path / ".complete").write_text(json.dumps(requires) + "\n")
    return path


def run_spec(run: Run, fingerprint: dict) -> dict[str, Any]:
    """What a cached base result must match to be reused."""
    spec = {"command": run.command, "config": run.config, "overrides": list(run.overrides)}
    spec["common_overrides"] = list(COMMON_OVERRIDES)
    if run.config.startswith("scratch:"):
        spec["config_text"] = SCRATCH_CONFIGS[run.config.removeprefix("scratch:")]
    spec["environment"] = fingerprint
    return spec


def cached(cache_dir: Path, spec: dict) -> dict | None:
    try:
        if json.loads((cache_dir / "spec.json").read_text()) != spec:
            return None
        meta = json.loads((cache_dir / "result.json").read_text())
        rows = read_rows(cache_dir / "metrics.jsonl")
        hit = {"command": meta["command"], "seconds": meta["seconds"], "error": None}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if check_shape(rows):
        return None
    return hit | {"rows": rows}


def store(cache_dir: Path, spec: dict, result: dict, metrics: Path) -> None:
    tmp = cache_dir.with_name(cache_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(metrics, tmp / "metrics.jsonl")
    (tmp / "spec.json").write_text(json.dumps(spec, indent=1) + "\n")
    meta = {"command": result["command"], "seconds": result["seconds"], "stored": time.time()}
    (tmp / "result.json").write_text(json.dumps(meta, indent=1) + "\n")
    shutil.rmtree(cache_dir, ignore_errors=True)
    tmp.replace(cache_dir)


def fmt(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def status_of(base: dict, new: dict, comparison: dict | None) -> str:
    failed = [label for label, r in (("base", base), ("new", new)) if r["error"]]
    if failed:
        return "FAIL " + "+".join(failed)
    return "OK" if comparison["values_differing"] == 0 else "DIFFER"


def detail(base: dict, new: dict, comparison: dict | None) -> str:
    if base["error"] or new["error"]:
        return "; ".join(
            f"{lb}: {r['error']}" for lb, r in (("base", base), ("new", new)) if r["error"]
        )
    first = comparison["first_difference"]
    if first is None:
        return ""
    rows = ""
    if comparison["base_rows"] != comparison["new_rows"]:
        rows = f"{comparison['base_rows']} rows -> {comparison['new_rows']}; "
    return rows + (
        f"row {first['row']} {first['key']}: {fmt(first['base'])} -> {fmt(first['new'])}; "
        f"{comparison['values_differing']} of {comparison['values_compared']} values differ"
    )


def table(results: list[dict]) -> str:
    header = ("run", "status", "rows x cols", "values", "base s", "new s", "first difference")
    lines = []
    for r in results:
        c = r["comparison"]
        shape = f"{c['rows']} x {c['columns']}" if c else "-"
        values = str(c["values_compared"]) if c else "-"
        base_s = f"{r['base']['seconds']:.1f}" + (" (cached)" if r["base"]["cached"] else "")
        new_s = f"{r['new']['seconds']:.1f}" if r["new"]["seconds"] is not None else "-"
        lines.append((r["name"], r["status"], shape, values, base_s, new_s, r["detail"]))
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    render = lambda row: "  ".join(f"{v!s:{w}}" for v, w in zip(row, widths, strict=True)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule, *map(render, lines)])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("base_rev", metavar="BASE_REV", help="the commit to compare against")
    parser.add_argument("--out", help="also write the JSON report here")
    names = [run.name for run in RUNS]
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=names, help=", ".join(names))
    parser.add_argument("--rerun-base", action="store_true", help="ignore the base cache")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (runs, logs)")
    default_python = REPO / ".venv" / "bin" / "python"
    parser.add_argument(
        "--python",
        default=str(default_python if default_python.exists() else sys.executable),
        help="the interpreter that runs pip and rlx (default: the repo's .venv)",
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--new-rev", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def portable(text: str, python: str) -> str:
    """A report's text without this machine's paths: configs relative to their side's source
    tree, run dirs under ``<scratch>``, the interpreter as ``python``."""
    scratch = re.escape(str(Path(tempfile.gettempdir()).resolve())) + r"/same_metrics-[^/\s\"]+"
    text = re.sub(scratch + r"/(base|new)/src/", "", text)
    text = re.sub(scratch, "<scratch>", text)
    return text.replace(str(python), "python").replace(f"{REPO.resolve()}/", "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    python = os.path.abspath(args.python)
    base_sha = resolve(args.base_rev)
    new_sha = resolve(args.new_rev) if args.new_rev else None
    runs = [run for run in RUNS if not args.only or run.name in args.only]
    head = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain"))
    package_dirty = bool(git("status", "--porcelain", "--", *PACKAGE_PATHS))
    out = subprocess.run(
        [python, "-c", VERSIONS_CHECK, *VERSIONED], capture_output=True, text=True, check=False
    )
    if out.returncode:
        sys.exit(f"same_metrics: {python} does not run:\n{tail(out.stderr)}")
    fingerprint = json.loads(out.stdout)
    fingerprint["env"] = {
        k: v for k, v in sorted(os.environ.items()) if k.startswith(("XLA_", "JAX_", "RLX_"))
    }
    if os.environ.get("PYTHONPATH"):
        log(f"ignoring PYTHONPATH={os.environ['PYTHONPATH']} for the rlx processes")

    scratch = Path(tempfile.mkdtemp(prefix="same_metrics-")).resolve()
    if scratch.is_relative_to(REPO):
        sys.exit(f"same_metrics: the scratch dir {scratch} is inside the repo; set TMPDIR")
    for name, text in SCRATCH_CONFIGS.items():
        (scratch / name).write_text(text)
    base, new = Side("base", scratch), Side("new", scratch)
    results = []
    try:
        specs = {run.name: run_spec(run, fingerprint) for run in runs}
        cache_dirs = {run.name: args.cache_dir / base_sha / run.name for run in runs}
        base_results = {}
        if not args.rerun_base:
            for run in runs:
                hit = cached(cache_dirs[run.name], specs[run.name])
                if hit is not None:
                    base_results[run.name] = hit | {"cached": True}
        todo = [run for run in runs if run.name not in base_results]
        log(
            f"base {args.base_rev} = {base_sha[:12]}: {len(runs) - len(todo)} run(s) cached in "
            f"{args.cache_dir / base_sha}, {len(todo)} to run"
        )
        if new_sha:
            new.add_worktree(new_sha)
            log(f"new: {args.new_rev} = {new_sha[:12]} in a second worktree")
        else:
            new.snapshot_working_tree()
            log(f"new: working tree (HEAD {head[:12]}{', dirty' if dirty else ''}) snapshot")
        tools = build_tools(python, new.src, args.cache_dir)
        if todo:
            base.add_worktree(base_sha)
            base.install(python, build_tools(python, base.src, args.cache_dir))
            for run in todo:
                result = base.execute(run, python, scratch, args.timeout)
                result["cached"] = False
                log(f"base {run.name}: {result['error'] or 'done'} in {result['seconds']:.1f} s")
                if result["error"]:
                    print_tail("base", run, result)
                else:
                    metrics = base.runs / run.name / "metrics.jsonl"
                    store(cache_dirs[run.name], specs[run.name], result, metrics)
                base_results[run.name] = result
            base.remove_worktree()
        new.install(python, tools)
        for run in runs:
            result = new.execute(run, python, scratch, args.timeout)
            log(f"new {run.name}: {result['error'] or 'done'} in {result['seconds']:.1f} s")
            if result["error"]:
                print_tail("new", run, result)
            b = base_results[run.name]
            comparison = None
            if not (b["error"] or result["error"]):
                comparison = compare(b["rows"], result["rows"])
            results.append(
                {
                    "name": run.name,
                    "status": status_of(b, result, comparison),
                    "detail": detail(b, result, comparison),
                    "comparison": comparison,
                    "base": {k: b.get(k) for k in ("command", "seconds", "error", "cached")}
                    | {"stderr_tail": b.get("stderr_tail")},
                    "new": {k: result.get(k) for k in ("command", "seconds", "error")}
                    | {"stderr_tail": result.get("stderr_tail")},
                    "spec": specs[run.name],
                }
            )
    finally:
        base.remove_worktree()
        new.remove_worktree()
        if args.keep:
            log(f"scratch dir kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    total_s = time.perf_counter() - started
    print(table(results), flush=True)
    ok = len(results) == len(runs) and all(r["status"] == "OK" for r in results)
    log(f"{'all runs match' if ok else 'MISMATCH or failure'}; total {total_s:.1f} s")
    if args.out:
        report = {
            "command": shlex.join(["python", "scripts/same_metrics.py", *(argv or sys.argv[1:])]),
            "base": {"rev": args.base_rev, "sha": base_sha},
            "new": (
                {"rev": args.new_rev, "sha": new_sha}
                if new_sha
                else {"working_tree": True, "head": head, "dirty": dirty}
                | {"package_dirty": package_dirty}
            ),
            "ok": ok,
            "total_s": total_s,
            "timing_keys_ignored": list(TIMING_KEYS),
            # The home directory as ~: a report names no machine's paths.
            "cache_dir": str(args.cache_dir / base_sha).replace(str(Path.home()), "~", 1),
            "environment": fingerprint,
            "runs": results,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(portable(json.dumps(report, indent=1), python) + "\n")
        log(f"report: {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
