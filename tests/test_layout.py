"""The code's layout, read with ``ast`` (nothing is imported): small functions, a learner free
of meta-learning, a thin config module, and the one-way import order of the package's floors
(its folders)

    core -> envs, rewards -> learn -> meta -> config -> run -> ship -> lab -> cli

(envs and rewards do not import each other, except the term building blocks
``rlx.rewards.terms`` that envs use)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Source folders and the package each installs as (pyproject's package-dir).
PACKAGES = {"rlx": "rlx", "envs": "rlx.envs", "rewards": "rlx.rewards"}
MAX_DEF_LINES = 80

# Each folder is a floor; a module may import its own floor and the floors below it, and
# no two modules may import each other in a loop (lazy imports inside functions included).
# envs and rewards share floor 1 and do not import each other, except the term building
# blocks ``rlx.rewards.terms`` that envs use. The package's root modules (``rlx``,
# ``rlx.__main__``, ``rlx.cli``) are the front door, on top.
FLOORS = {
    "core": 0,
    "envs": 1,
    "rewards": 1,
    "learn": 2,
    "meta": 3,
    "config": 4,
    "run": 5,
    "ship": 6,
    "lab": 7,
    "": 8,
}


def modules() -> dict[str, Path]:
    """Module name -> file, for every module of the three packages."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


MODULES = modules()


def floor(name: str) -> str:
    """The floor of module ``name``: its folder under ``rlx/`` (``""`` for the root modules)."""
    parts = name.split(".")
    if len(parts) == 1 or (len(parts) == 2 and MODULES[name].parent.name == "rlx"):
        return ""
    if parts[1] not in FLOORS:
        raise AssertionError(f"module {name} sits in folder {parts[1]!r}, which is no floor")
    return parts[1]


def imported(name: str, path: Path) -> set[str]:
    """The rlx modules ``name`` imports (at any depth, lazy imports included)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        out |= {t for t in targets if t == "rlx" or t.startswith("rlx.")}
    return out - {name}


def test_every_module_sits_on_a_floor():
    for name in MODULES:
        floor(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_one_way(name):
    own = floor(name)
    for other in sorted(imported(name, MODULES[name])):
        assert other in MODULES, f"{name} imports {other}, which does not exist"
        theirs = floor(other)
        if own == "envs" and other == "rlx.rewards.terms":
            continue
        allowed = FLOORS[theirs] < FLOORS[own] or theirs == own
        assert allowed, f"{name} ({own}) imports {other} ({theirs}): against the import order"


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_import_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_rlx_modules():
    """A package's ``__init__`` counts as importing nothing of its own subpackages' children."""
    graph = {name: imported(name, path) for name, path in MODULES.items()}
    assert import_cycles(graph) == []


def test_the_driver_knows_no_kind_of_run():
    """The driver runs any run files it is handed: it imports no members runs, populations or
    videos (those are built by the caller and passed in)."""
    banned = ("rlx.run.members", "rlx.run.sweep", "rlx.meta.population", "rlx.ship")
    for other in imported("rlx.run.driver", MODULES["rlx.run.driver"]):
        assert not other.startswith(banned), f"rlx.run.driver imports {other}"


def test_no_function_is_longer_than_80_lines():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_DEF_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, long


def test_the_learner_never_imports_meta_learning():
    """PPO and acting stay free of meta-learning: meta composes them, never the reverse."""
    for name in MODULES:
        if floor(name) == "learn":
            for other in imported(name, MODULES[name]):
                assert floor(other) in ("core", "envs", "rewards", "learn"), (name, other)


def test_config_only_assembles_section_schemas():
    path = REPO / "rlx" / "config" / "__init__.py"
    assert len(path.read_text().splitlines()) < 300
    for other in imported("rlx.config", path):
        assert other == "rlx.core.schema" or other.endswith(".schema"), (
            f"rlx/config/__init__.py imports {other}: only section schemas "
            "(builders live in rlx.config.build)"
        )


def test_option_lists_are_written_once():
    """The options a config accepts are the registries that build them (imported here)."""
    from rlx.config import NetworkConfig, TrainConfig
    from rlx.core.schema import ConfigError, Source, from_dict
    from rlx.learn.networks import ACTIVATIONS, KERNEL_INITS
    from rlx.learn.optim import GRADIENT_CLIPS
    from rlx.meta import MEMBER_GRADIENTS, METHODS
    from rlx.meta.schema import MetaConfig
    from rlx.rewards import schema, spec

    assert set(schema.SHAPING_CONFIGS) == set(spec.SHAPING)
    for options, cls, key in (
        (METHODS, MetaConfig, "method"),
        (MEMBER_GRADIENTS, MetaConfig, "member_gradient"),
        (spec.COMBINES, schema.RewardConfig, "combine"),
        (spec.PARAMETERIZATIONS, schema.RewardConfig, "parameterization"),
        (GRADIENT_CLIPS, TrainConfig, "gradient_clip"),
        (tuple(ACTIVATIONS), NetworkConfig, "activation"),
        (KERNEL_INITS, NetworkConfig, "kernel_init"),
    ):
        context = {"method": "population"} if key == "member_gradient" else {}
        for option in options:
            data = {**context, key: option}
            assert getattr(from_dict(cls, data, Source("t")), key) == option
        with pytest.raises(ConfigError, match=re.escape("must be one of " + "|".join(options))):
            from_dict(cls, {key: "nope"}, Source("t"))
