"""The code's layout, read with ``ast`` (nothing is imported): small functions, PPO free of
meta-learning, a thin config module, and the one-way import order

    leaf modules -> envs, rewards -> rlx learner -> rlx.meta -> config, build, driver, cli

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

LEAF = {
    "rlx",
    "rlx.interrupts",
    "rlx.types",
    "rlx.running_stats",
    "rlx.schema",
    "rlx.runtime",
    "rlx.usercode",
    "rlx.rewards.terms",
}
LEARNER = {
    "rlx.acting",
    "rlx.checkpoint",
    "rlx.distributions",
    "rlx.losses",
    "rlx.networks",
    "rlx.optim",
    "rlx.ppo",
    "rlx.progress",
    "rlx.sharding",
}
DRIVER = {
    "rlx.build",
    "rlx.cli",
    "rlx.config",
    "rlx.driver",
    "rlx.meta.run",
    "rlx.rundir",
    "rlx.__main__",
    # what runs on top of the driver: members runs, a run's policy, its export and videos
    "rlx.members",
    "rlx.policy",
    "rlx.export",
    "rlx.render",
}
RANK = {"leaf": 0, "envs": 1, "rewards": 1, "learner": 2, "meta": 3, "driver": 4}


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


def layer(name: str) -> str:
    if name in LEAF:
        return "leaf"
    if name in DRIVER:
        return "driver"
    if name in LEARNER:
        return "learner"
    for prefix in ("envs", "rewards", "meta"):
        if name == f"rlx.{prefix}" or name.startswith(f"rlx.{prefix}."):
            return prefix
    raise AssertionError(f"module {name} has no layer in tests/test_layout.py")


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


def test_every_module_has_a_layer():
    for name in MODULES:
        layer(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_one_way(name):
    own = layer(name)
    for other in sorted(imported(name, MODULES[name])):
        assert other in MODULES, f"{name} imports {other}, which does not exist"
        theirs = layer(other)
        if own == "envs" and other == "rlx.rewards.terms":
            continue
        allowed = RANK[theirs] < RANK[own] or theirs == own
        assert allowed, f"{name} ({own}) imports {other} ({theirs}): against the import order"


def test_no_function_is_longer_than_80_lines():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_DEF_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, long


def test_ppo_never_mentions_meta_learning():
    text = (REPO / "rlx" / "ppo.py").read_text().lower()
    assert "meta" not in text


def test_config_only_assembles_section_schemas():
    path = REPO / "rlx" / "config.py"
    assert len(path.read_text().splitlines()) < 300
    for other in imported("rlx.config", path):
        assert other == "rlx.schema" or other.endswith(".schema"), (
            f"rlx/config.py imports {other}: only section schemas (builders live in rlx.build)"
        )


def test_option_lists_are_written_once():
    """The options a config accepts are the registries that build them (imported here)."""
    from rlx.config import TrainConfig
    from rlx.meta import METHODS
    from rlx.meta.schema import MetaConfig
    from rlx.optim import GRADIENT_CLIPS
    from rlx.rewards import schema, spec
    from rlx.schema import ConfigError, Source, from_dict

    assert set(schema.SHAPING_CONFIGS) == set(spec.SHAPING)
    for options, cls, key in (
        (METHODS, MetaConfig, "method"),
        (spec.COMBINES, schema.RewardConfig, "combine"),
        (spec.PARAMETERIZATIONS, schema.RewardConfig, "parameterization"),
        (GRADIENT_CLIPS, TrainConfig, "gradient_clip"),
    ):
        for option in options:
            assert getattr(from_dict(cls, {key: option}, Source("t")), key) == option
        with pytest.raises(ConfigError, match=re.escape("must be one of " + "|".join(options))):
            from_dict(cls, {key: "nope"}, Source("t"))
