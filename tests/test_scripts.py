"""The experiment scripts run end to end on tiny settings and write their outputs."""

import importlib.util
import json
from pathlib import Path

from conftest import CONFIGS, REPO


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(REPO) / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_shaping_writes_table_json_and_plot(tmp_path):
    specs = tmp_path / "specs.yaml"
    specs.write_text(
        "plain: {weights: {alive: 1.0}}\n"
        "shaped:\n"
        "  weights: {alive: 1.0}\n"
        "  shaping: [{potential: {signals: {pole_angle: -1.0}}}, {bounded: {k: 2.0}}]\n"
    )
    out = tmp_path / "cmp"
    _script("compare_shaping").main(
        [
            "--config", f"{CONFIGS}/cartpole.yaml", "--specs", str(specs), "--seeds", "2",
            "--out", str(out), "train.total_steps=512", "train.num_envs=4",
            "train.unroll_length=8", "run.chunk_iterations=8", "eval.num_envs=2",
            "env.params.episode_length=20",
        ]
    )  # fmt: skip
    result = json.loads(out.with_suffix(".json").read_text())
    assert set(result["results"]) == {"plain", "shaped"}
    curve = result["results"]["shaped"]["eval_primary_return"]
    assert len(curve) == 2 and len(curve[0]) == 2  # [chunks][seeds]
    assert "| shaped |" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").stat().st_size > 1000
