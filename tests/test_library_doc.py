"""docs/library.md's Python snippets run as printed, from the repo root: the reward weightings
vmapped in one program (fast: small sizes), every snippet (slow tier)."""

import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "library.md"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


def run(source: str, monkeypatch) -> dict:
    monkeypatch.chdir(REPO)  # its config paths are the repo's
    namespace = {"__name__": "__main__"}
    exec(compile(source, str(PAGE), "exec"), namespace)
    return namespace


def test_the_page_shows_its_snippets():
    sources = snippets()
    assert len(sources) >= 2, "a Python snippet of docs/library.md went missing"
    assert sum("reward.weights." in s for s in sources) == 1


def test_the_reward_weightings_snippet_trains_three_learners(monkeypatch, capsys):
    (source,) = [s for s in snippets() if "reward.weights." in s]
    result = run(source, monkeypatch)["result"]
    weighted, primary = np.asarray(result["eval/return"]), np.asarray(result["eval/primary_return"])
    assert weighted.shape == primary.shape == (3,)
    assert np.isfinite(weighted).all() and np.isfinite(primary).all()
    # velocity_cost 0 vs -1: the weighted return differs from the primary where the weight
    # differs from Gym's -0.1, and equals it (the same terms, the same weights) where it does not
    assert weighted[1] == pytest.approx(primary[1], rel=1e-5)
    assert weighted[0] > primary[0] and weighted[2] < primary[2]
    assert capsys.readouterr().out.count("[") >= 2  # both arrays printed


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(snippets())))
def test_every_snippet_runs(index, monkeypatch):
    run(snippets()[index], monkeypatch)
