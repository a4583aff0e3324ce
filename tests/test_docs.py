"""The docs stay true: every ``rlx`` command line in README.md and docs/*.md parses (and the
config it names loads strictly with the overrides shown); every YAML snippet is a valid config."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from rlx import cli
from rlx import config as config_lib
from rlx.run import members

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PAGES = [p for p in PAGES if not p.name.startswith(("bench_", "compare_", "fault_"))]
SECTIONS = {f.name for f in config_lib.dataclasses.fields(config_lib.Config)}


def blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), flags=re.S)


def commands(page: Path) -> list[list[str]]:
    """Each ``rlx ...`` command of the page (its bash blocks' lines, and inline code that starts
    with ``rlx ``), as argv without ``rlx``; placeholders (``RUN_DIR``, ``<i>``, ``...``) stay
    as they are and are only parsed."""
    lines = [
        line for block in blocks(page, "bash") for line in block.replace("\\\n", " ").splitlines()
    ]
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    inline = re.findall(r"`((?:\.venv/bin/)?rlx [^`]+)`", text.replace("\n", " "))
    # a mention of a command or one of its flags (`rlx eval`, `rlx meta --resume`) is no line
    inline = [line for line in inline if len(line.split()) > 3 or "=" in line]
    out = []
    for line in lines + inline:
        for segment in line.split("&&"):
            tokens = shlex.split(segment, comments=True)
            if tokens and tokens[0] in ("rlx", ".venv/bin/rlx") and "..." not in tokens:
                out.append([PLACEHOLDERS.get(t, t) for t in tokens[1:]])
    return out


# What the pages write for a value the reader chooses, and a value that parses in its place.
PLACEHOLDERS = {"N": "4", "K": "2", "I": "0", "S": "0", "F": "30", "W": "320", "H": "240"}


def _check_command(argv: list[str]) -> None:
    parser = cli._parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if a.startswith("-")]
    assert not unknown, f"rlx {' '.join(argv)}: unknown options {unknown}"
    if args.command not in ("train", "meta"):
        return
    for text in getattr(args, "sweep", []):
        members.parse_sweep(text)
    tokens = [a for a in [args.config, *args.overrides, *extra] if a]
    paths = [t for t in tokens if t.endswith(".yaml")]
    overrides = [t for t in tokens if "=" in t and not t.endswith(".yaml")]
    for path in paths:
        if path.startswith("configs/"):
            assert (REPO / path).is_file(), f"rlx {' '.join(argv)}: no {path}"
            config_lib.load(REPO / path, overrides)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_rlx_command_shown_parses(page):
    for argv in commands(page):
        _check_command(argv)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_yaml_snippet_is_a_valid_config(page, tmp_path):
    for i, block in enumerate(blocks(page, "yaml")):
        data = yaml.safe_load(block)
        if not isinstance(data, dict) or not set(data) <= SECTIONS:
            continue  # not a config (a fragment of something else)
        data.setdefault("env", {"name": "cartpole"})
        path = tmp_path / f"snippet{i}.yaml"
        path.write_text(yaml.safe_dump(data))
        config_lib.load(path)


def test_the_pages_have_commands_to_check():
    assert sum(len(commands(p)) for p in PAGES) >= 20
