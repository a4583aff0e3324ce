"""The experiment scripts run end to end on tiny settings and write their outputs."""

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import CONFIGS, REPO


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(REPO) / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # 21 s cold; bilevel's table/plot test stays in the fast tier
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


def test_bilevel_experiment_writes_table_json_and_plot(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "bilevel"
    tiny = [
        "train.total_steps=256", "train.num_envs=4", "train.unroll_length=16",
        "train.num_minibatches=2", "train.num_epochs=1", "run.chunk_iterations=2",
        "eval.every_chunks=2", "eval.num_envs=2", "env.params.episode_length=20",
        "meta.grad_steps=1",
    ]  # fmt: skip
    script = Path(REPO) / "scripts" / "experiments" / "bilevel.py"
    command = [sys.executable, str(script), "--task", "cartpole", "--arms", "E", "--seeds", "2"]
    result = subprocess.run(
        [*command, "--out", str(out), *tiny], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.with_suffix(".json").read_text())
    assert set(data["arms"]) == {"E"} and data["meta"]["seeds"] == 2
    e = data["arms"]["E"]
    assert len(e["final"]) == 2 and len(e["weights"]["pd_anti"][-1]) == 2
    table = out.with_suffix(".md").read_text()
    assert "| E | one_step |" in table and "pd_anti" in table
    assert out.with_suffix(".png").stat().st_size > 1000


@pytest.mark.slow
def test_fault_matrix_quick_holds_and_writes_its_report(tmp_path):
    """The fault matrix's smoke run (one case per kind, about 2 minutes): every case holds."""
    import subprocess
    import sys

    out = tmp_path / "fault_matrix.md"
    script = str(Path(REPO) / "scripts" / "fault_matrix.py")
    done = subprocess.run(
        [sys.executable, script, "--quick", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    cases = json.loads(out.with_suffix(".json").read_text())
    assert cases and all(c["ok"] for c in cases)
    assert "cases held" in out.read_text()


@pytest.mark.slow
def test_meta_diagnosis_writes_its_table_and_resumes_by_arm(tmp_path):
    """The diagnosis on a tiny CartPole: finite difference and two settings, then a rerun that
    reuses the stored arms."""
    import subprocess
    import sys

    out = tmp_path / "diag.json"
    script = str(Path(REPO) / "scripts" / "experiments" / "meta_diagnosis.py")
    args = [sys.executable, script, "--task", "cartpole", "--seeds", "2", "--steps", "20480"]
    args += ["--out", str(out), "--only", "one_step, last epoch", "implicit x1"]
    done = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert sorted(results["settings"]) == ["implicit x1", "one_step, last epoch"]
    assert len(results["finite_difference"]["grad"]) == 2
    assert "| one_step, last epoch |" in out.with_suffix(".md").read_text()
    again = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert again.returncode == 0 and "[diagnosis] implicit x1" not in again.stdout  # reused


@pytest.mark.slow
def test_bench_unroll_writes_memory_and_time_per_k(tmp_path):
    """The horizon benchmark's smallest run: a row per K and variant, with XLA's temp memory
    and a time ratio, and the table."""
    import subprocess
    import sys

    out = tmp_path / "bench_unroll.json"
    script = str(Path(REPO) / "scripts" / "bench_unroll.py")
    command = [sys.executable, script, "--ks", "1", "2", "--iterations", "1", "--repeats", "1"]
    done = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert {(r["K"], r["variant"]) for r in rows} >= {(2, "unrolled, no remat"), (2, "ppo")}
    assert all(r["ratio_to_ppo"] > 0 for r in rows)
    assert "| 2 | unrolled, remat |" in out.with_suffix(".md").read_text()


def test_pareto_front_keeps_the_non_dominated_points():
    path = Path(REPO) / "scripts" / "experiments" / "pareto.py"
    spec = importlib.util.spec_from_file_location("pareto", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # (primary, cost): higher primary and lower cost are better
    points = [(10.0, 5.0), (8.0, 1.0), (7.0, 2.0), (10.0, 6.0), (3.0, 0.5)]
    assert module.front(points) == [0, 1, 4]


def test_the_tune_gate_records_its_command_by_the_repo_path():
    """Wherever the running copy of the gate's script lives, its recorded command is the
    repo's, without the options that only say where files go."""
    module = _script("experiments/tune_gate")
    argv = ["--root", "/tmp/x/runs", "--case", "walker2d", "--out=/tmp/o.json", "--arms", "T"]
    assert module._command(argv) == (
        "python scripts/experiments/tune_gate.py --case walker2d --arms T"
    )
