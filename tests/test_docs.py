"""The docs stay true: every ``rlx`` command line in README.md and the guides parses (and the
config it names loads strictly with the overrides shown); every YAML snippet is a valid config;
the README's Python example runs; every file a page names exists. Each check also counts what
it checked, so a break that makes it check nothing fails."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from rlx import cli
from rlx import config as config_lib
from rlx.run import sweep

REPO = Path(__file__).resolve().parent.parent
# The guides: README.md, docs/*.md, the benchmarks and experiments narratives.
PAGES = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "docs" / "bench" / "benchmarks.md",
    REPO / "docs" / "experiments" / "log.md",
]
# Every page whose file citations are checked: the guides and the generated tables beside them.
CITING = [
    *PAGES,
    *sorted((REPO / "docs" / "bench").glob("*.md")),
    *sorted((REPO / "docs" / "experiments").glob("*.md")),
]
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
    if args.command not in ("train", "meta", "tune"):
        return
    for text in getattr(args, "sweep", []):
        sweep.parse_sweep(text)
    learn = [t for t in getattr(args, "learn", []) if "=" not in t]
    tokens = [a for a in [args.config, *args.overrides, *extra] if a]
    tokens += [t for t in getattr(args, "learn", []) if "=" in t]
    paths = [t for t in tokens if t.endswith(".yaml")]
    overrides = [t for t in tokens if "=" in t and not t.endswith(".yaml")]
    for path in paths:
        if path.startswith("configs/"):
            assert (REPO / path).is_file(), f"rlx {' '.join(argv)}: no {path}"
            config = config_lib.load(REPO / path, overrides)
            if args.command == "tune":  # its plan too: terms, budget and signs check out
                from rlx import tune

                budget = tune.DEFAULT_BUDGET if args.budget is None else args.budget
                tune.plan(config, budget, tuple(learn))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_rlx_command_shown_parses(page):
    for argv in commands(page):
        _check_command(argv)


def config_snippets(page: Path) -> list[dict]:
    """The page's YAML blocks that are configs (their top-level keys are config sections); the
    other YAML blocks are fragments of something else."""
    out = []
    for block in blocks(page, "yaml"):
        data = yaml.safe_load(block)
        if isinstance(data, dict) and set(data) <= SECTIONS:
            out.append(data)
    return out


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_yaml_snippet_is_a_valid_config(page, tmp_path):
    for i, data in enumerate(config_snippets(page)):
        data.setdefault("env", {"name": "cartpole"})
        path = tmp_path / f"snippet{i}.yaml"
        path.write_text(yaml.safe_dump(data))
        config_lib.load(path)


def test_the_pages_have_commands_and_configs_to_check():
    # Floors a little under today's counts (38 commands and 10 config snippets over 13 pages,
    # 656 file citations): a change that makes a parser find (nearly) nothing fails here.
    assert len(PAGES) >= 13 and all(p.is_file() for p in PAGES)
    assert sum(len(commands(p)) for p in PAGES) >= 30
    assert sum(len(config_snippets(p)) for p in PAGES) >= 8
    assert sum(len(cited(p)) for p in CITING) >= 500


def test_the_readme_python_example_runs(monkeypatch, capsys):
    """The README's Python example, as written, from the repository root (it names
    ``configs/cartpole.yaml``)."""
    (example,) = blocks(REPO / "README.md", "python")
    monkeypatch.chdir(REPO)
    exec(compile(example, "README.md", "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("[") and len(printed.strip("[]").split()) == 4, printed


# A repository path as the pages write it (``docs/x.md``, ``rlx/core/stats.py::name``, a root
# file such as ``DESIGN.md``), and a relative markdown link. A path with a placeholder (``<i>``,
# ``*``, ``{json,md}``) names no single file and is skipped.
REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:docs|configs|scripts|tests|rlx|envs|rewards)/[\w./*<>{},-]*[\w*>}]"
    r"|[A-Z][A-Z_]+\.(?:md|txt)|constraints\.txt|pyproject\.toml)"
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def cited(page: Path) -> set[Path]:
    """The repository files ``page`` names: its repository paths (from the root) and its
    relative links (from the page's folder)."""
    text = page.read_text()
    out = set()
    for match in REPO_PATH.findall(text):
        path = match.split("::")[0].rstrip(".,")
        if not any(c in path for c in "<>*{}"):
            out.add(REPO / path)
    for link in LINK.findall(text):
        if not link.startswith(("http", "#", "mailto:")):
            out.add((page.parent / link.split("#")[0]).resolve())
    return out


def _exists(path: Path) -> bool:
    # ``--out docs/experiments/NAME`` names the stem of the files a script writes
    return path.exists() or (not path.suffix and any(path.parent.glob(f"{path.name}.*")))


@pytest.mark.parametrize("page", CITING, ids=[str(p.relative_to(REPO)) for p in CITING])
def test_every_file_a_page_names_exists(page):
    missing = sorted(str(p) for p in cited(page) if not _exists(p))
    assert not missing, f"{page.relative_to(REPO)} names files not in the repository: {missing}"
