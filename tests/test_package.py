"""The suite must exercise the installed package, not the source tree on sys.path."""

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import rlx
import rlx.envs
import rlx.rewards

REPO = Path(__file__).resolve().parent.parent


def _editable() -> bool:
    text = metadata.distribution("rlx").read_text("direct_url.json")
    return bool(text) and json.loads(text).get("dir_info", {}).get("editable", False)


def test_tests_import_the_installed_package():
    if _editable():  # a developer's `pip install -e .`: the source tree is the install
        return
    for module, source in ((rlx, "rlx"), (rlx.envs, "envs"), (rlx.rewards, "rewards")):
        assert Path(module.__file__).resolve().parent != REPO / source, module.__file__
    assert Path(rlx.envs.__file__).parent.parent == Path(rlx.__file__).parent


def test_source_tree_imports_work_from_the_repo_root():
    # `python -m rlx ...` run in the repo root imports the source tree, which must find
    # envs/ and rewards/ as rlx.envs and rlx.rewards.
    code = "import rlx.envs, rlx.rewards, rlx.cli; print(rlx.envs.make('cartpole').name)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cartpole"
