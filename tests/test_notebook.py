"""docs/notebooks/quickstart.ipynb: it parses and its imports resolve (fast); it runs top to
bottom on a CPU (slow tier, in a scratch copy: ``pytest -m slow tests/test_notebook.py``)."""

import ast
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "docs" / "notebooks" / "quickstart.ipynb"


def code_cells() -> list[str]:
    """Each code cell's Python, IPython magics and shell lines (%, !) left out."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return [
        "".join(line for line in cell["source"] if not line.lstrip().startswith(("%", "!")))
        for cell in cells
        if cell["cell_type"] == "code"
    ]


def test_the_notebook_parses_and_its_imports_resolve():
    modules = set()
    for source in code_cells():
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module)
                for alias in node.names:  # from rlx import members: rlx.run.members must exist
                    if importlib.util.find_spec(node.module) is not None:
                        candidate = f"{node.module}.{alias.name}"
                        try:
                            found = importlib.util.find_spec(candidate)
                        except ModuleNotFoundError:
                            found = None
                        if found is not None:
                            modules.add(candidate)
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    assert not missing, f"the notebook imports what is not installed: {missing}"
    assert {"rlx.runs", "rlx.ship.policy", "rlx.ship.render"} <= modules


def test_no_cell_needs_ipython_magics():
    """Every code cell is plain Python (the install is a subprocess, not ``%pip``), so the slow
    test below runs the notebook whole, the first cell included."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    magics = [
        line
        for cell in cells
        if cell["cell_type"] == "code"
        for line in cell["source"]
        if line.lstrip().startswith(("%", "!"))
    ]
    assert not magics


def first_cell(cwd: Path, monkeypatch) -> dict:
    monkeypatch.chdir(cwd)
    namespace = {"__name__": "__main__"}
    exec(compile(code_cells()[0], "cell 0", "exec"), namespace)
    return namespace


def test_the_first_cell_finds_the_checkout_and_keeps_the_runtimes_jax(tmp_path, monkeypatch):
    import jax
    import jaxlib

    namespace = first_cell(NOTEBOOK.parent, monkeypatch)  # rlx is installed: nothing to do
    assert namespace["CONFIGS"] == REPO / "configs"
    pins = namespace["runtime_pins"]()
    assert f"jax=={jax.__version__}" in pins and f"jaxlib=={jaxlib.__version__}" in pins
    with pytest.raises(RuntimeError, match="RLX_GIT_URL"):  # no checkout, no URL: it says so
        first_cell(tmp_path, monkeypatch)


RUNNER = """
import json, sys
cells = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for i, source in enumerate(cells):
    exec(compile(source, f"cell {i}", "exec"), namespace)
    print(f"cell {i} done", flush=True)
"""


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom(tmp_path):
    """A scratch copy two levels below a folder that links to the repo's configs, so its
    relative paths hold and its runs stay out of the repo."""
    (tmp_path / "configs").symlink_to(REPO / "configs")
    work = tmp_path / "docs" / "notebooks"
    work.mkdir(parents=True)
    (work / "cells.json").write_text(json.dumps(code_cells()))
    env = {**os.environ, "MPLBACKEND": "Agg", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, "cells.json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    print(f"notebook: {elapsed:.0f} s")
    assert elapsed < 600
    assert (work / "reach.mp4").stat().st_size > 0
