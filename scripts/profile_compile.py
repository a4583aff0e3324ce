"""Where the XLA CPU compile of a train program goes, kernel by kernel, for rlx and rejax.

  python scripts/profile_compile.py [--seeds 1] [--out docs/bench/profile_compile.json]

Runs ``scripts/bench_cartpole.py``'s timed programs (rlx's whole run and rejax's, the same
PureJaxRL settings; rejax from ``.bench-venv/``, see that script's ``--setup-peer``), each in a
fresh process with XLA's compile timers logged (``TF_CPP_VMODULE`` for ``cpu_compiler``,
``fusion_compiler`` and ``ir_compiler``) and its optimised HLO dumped (``--xla_dump_to``). Every
kernel XLA compiles is a module named after an HLO instruction of the optimised program; the
script reads each one's MLIR and LLVM compile times from the log, finds the instruction's
``op_name`` in the dump, and sums the times by what the op is:

* ``PRNG call sites``: XLA turns the threefry loop of each PRNG call (``jax.random.split``,
  ``uniform``, ``categorical``'s gumbel, ``permutation``) into one ``call`` kernel, and a site
  over a batch of keys (vmapped per env) cost ~300 ms of LLVM time on the 2-core CPU;
* ``PRNG fusions``: the element-wise fusions around them;
* ``other``: the rest of the program (networks, losses, optimiser, env physics, bookkeeping).

Kernel times are summed over XLA's compile threads, so they exceed the compile's wall time;
``jit_s`` is the wall time XLA reports for the whole backend compile, ``hlo_passes_s`` that of
its HLO passes. Writes the JSON and a Markdown table next to it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "scripts" / "bench_cartpole.py"
PEER_PYTHON = REPO / ".bench-venv" / "bin" / "python"
UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
KERNEL = re.compile(
    r"Compiled (LLVM|MLIR) module: (?:__compute_module_)?(\S+?)_(?:computation_)?kernel_module "
    r"time: ([\d.]+) (s|ms|us) "
)
TOTAL = re.compile(r"(Running HLO passes on|Compiling) \[jit_train\].* time: ([\d.]+) (s|ms|us) ")
INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name=\"([^\"]*)\"", re.M)


def profile(engine: str, seeds: int, timeout_s: float = 600) -> dict:
    """One fresh process of ``engine``'s timed program with the compile timers on."""
    python = sys.executable if engine == "rlx" else str(PEER_PYTHON)
    part = engine  # scripts/bench_cartpole.py's part names: rlx, rejax
    with tempfile.TemporaryDirectory() as dump:
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "0",
            "TF_CPP_VMODULE": "cpu_compiler=1,fusion_compiler=1,ir_compiler=1",
            "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={dump} "
            "--xla_dump_hlo_as_text --xla_dump_hlo_module_re=jit_train",
        }
        command = [python, str(BENCH), "--part", part, "--seeds", str(seeds)]
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"{engine}: {out.stderr[-2000:]}")
        dumps = sorted(Path(dump).glob("*jit_train*after_optimizations.txt"))
        if not dumps:
            raise RuntimeError(f"{engine}: XLA wrote no optimised HLO for jit_train in {dump}")
        hlo = dumps[-1].read_text()
    op_names = dict(INSTRUCTION.findall(hlo))
    log = out.stderr
    # the kernels of jit_train's backend compile only (rejax's part evaluates afterwards)
    start = log.index("Compiling: jit_train")
    end = log.index("\n", log.index("Compiling [jit_train] for CPU"))
    groups = collections.defaultdict(lambda: {"mlir_s": 0.0, "llvm_s": 0.0, "kernels": 0})
    threefry_sites = []
    for kind, name, value, unit in KERNEL.findall(log[start:end]):
        seconds = float(value) * UNITS[unit]
        op_name = op_names.get(name, "")
        group = _group(name, op_name)
        groups[group][f"{kind.lower()}_s"] += seconds
        groups[group]["kernels"] += kind == "LLVM"
        if group.startswith("PRNG") and kind == "LLVM":
            threefry_sites.append({"kernel": name, "llvm_s": seconds, "op_name": op_name})
    totals = {}
    for what, value, unit in TOTAL.findall(log):
        totals["hlo_passes_s" if what.startswith("Running") else "jit_s"] = (
            float(value) * UNITS[unit]
        )
    return {
        "engine": engine,
        "seeds": seeds,
        "wall_s": json.loads(out.stdout.strip().splitlines()[-1])["after_imports"],
        **totals,
        "kernel_llvm_s": sum(g["llvm_s"] for g in groups.values()),
        "kernel_mlir_s": sum(g["mlir_s"] for g in groups.values()),
        "groups": dict(sorted(groups.items())),
        "threefry_sites": sorted(threefry_sites, key=lambda s: -s["llvm_s"]),
    }


def _group(kernel: str, op_name: str) -> str:
    """A kernel's group (see the module docstring) from its name and its ``op_name``."""
    if not re.search(r"threefry|_gumbel|_uniform|_shuffle|_normal", op_name):
        return "other"
    return "PRNG call sites" if kernel.startswith("call.") else "PRNG fusions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "docs" / "bench" / "profile_compile.json"))
    args = parser.parse_args()
    if not PEER_PYTHON.exists():
        raise SystemExit(f"no peer venv at {PEER_PYTHON}: run {BENCH} --setup-peer first")
    result = {
        "command": " ".join(["python", "scripts/profile_compile.py", *sys.argv[1:]]),
        "engines": [profile(engine, args.seeds) for engine in ("rlx", "rejax")],
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    markdown = Path(args.out).with_suffix(".md")
    markdown.write_text(_markdown(result))
    print(markdown.read_text())


def _markdown(result: dict) -> str:
    engines = result["engines"]
    names = sorted({g for e in engines for g in e["groups"]})
    head = " | ".join(e["engine"] for e in engines)
    lines = [
        "# The XLA CPU compile of CartPole's train program, kernel by kernel",
        "",
        f"Written by `{result['command']}` (see its docstring). Kernel compile times are summed "
        "over XLA's compile threads.",
        "",
        f"| | {head} |",
        "|---|" + "---|" * len(engines),
        "| the run's wall time with the timers on, compile included (s) | "
        + " | ".join(f"{e['wall_s']:.2f}" for e in engines)
        + " |",
        "| kernel compile time summed, MLIR + LLVM (s) | "
        + " | ".join(f"{e['kernel_mlir_s'] + e['kernel_llvm_s']:.2f}" for e in engines)
        + " |",
        "| backend compile, wall (s) | " + " | ".join(f"{e['jit_s']:.2f}" for e in engines) + " |",
        "| of which HLO passes (s) | "
        + " | ".join(f"{e['hlo_passes_s']:.2f}" for e in engines)
        + " |",
    ]
    for name in names:
        cells = []
        for e in engines:
            g = e["groups"].get(name)
            cells.append(f"{g['llvm_s'] + g['mlir_s']:.2f} ({g['kernels']} kernels)" if g else "-")
        lines.append(f"| kernels: {name}, MLIR + LLVM (s) | " + " | ".join(cells) + " |")
    lines += [
        "",
        "PRNG kernels (call sites and fusions, init and train loop), the 12 slowest by "
        "LLVM compile time:",
        "",
    ]
    for e in engines:
        sites = e["threefry_sites"][:12]
        listed = "; ".join(f"{s['llvm_s'] * 1e3:.0f} ms `{_short(s['op_name'])}`" for s in sites)
        lines.append(f"- {e['engine']} ({len(e['threefry_sites'])}): {listed}")
    return "\n".join(lines) + "\n"


def _short(op_name: str) -> str:
    parts = [p for p in op_name.split("/") if p not in ("while", "body", "closed_call", "vmap()")]
    return "/".join(parts[-3:])


if __name__ == "__main__":
    main()
