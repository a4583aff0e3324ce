"""``rlx meta``: shipped meta configs, logging of phi, the plot, exact resume, config errors."""

import dataclasses
import json
from pathlib import Path

import jax
import pytest

from conftest import TRACE_ONLY_ENVS, tiny_overrides
from rlx import cli, runs
from rlx import config as config_lib
from rlx.config import build as build_lib
from rlx.run import driver

META_CONFIGS = sorted(
    p.name for p in (Path(__file__).parent.parent / "configs" / "meta").glob("*.yaml")
)


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", META_CONFIGS)
def test_shipped_meta_config_runs_a_tiny_meta_training(tmp_path, repo_configs, name):
    path = Path(repo_configs) / "meta" / name
    config = build_lib.load(path, tiny_overrides(str(tmp_path)))
    if config.env.name.startswith("brax:") or config.env.name in TRACE_ONLY_ENVS:
        # A Brax or MJX physics compile is 30-60 s: trace the meta-learner's programs instead
        # (the same learner code compiles and runs on the other configs).
        built = build_lib.build(config, meta=True)
        meta, hps = built.meta, built.meta_hps
        state = jax.eval_shape(meta.init, jax.random.key(0), hps)
        new_state, metrics = jax.eval_shape(lambda s: meta.chunk(s, hps, 2), state)
        assert jax.tree.structure(new_state) == jax.tree.structure(state)
        assert f"phi/{config.meta.learn[0]}" in metrics and "meta/gamma" in metrics
        return
    summary = runs.meta(config, tmp_path / "run", show_progress=False)
    assert summary["status"] == "completed"
    row = rows(tmp_path / "run")[-1]
    learned = config.meta.learn[0].split("/")[-1]
    assert f"phi/{config.meta.learn[0]}" in row and f"weights/{learned}" in row
    assert row["meta/gamma"] == pytest.approx(config.ppo.gamma)
    assert "eval/primary_return" in row and "meta/grad_norm" in row
    assert (tmp_path / "run" / "phi.png").stat().st_size > 0
    assert (tmp_path / "run" / "checkpoints").exists()
    # rlx eval restores the inner learner under the learned reward params: the run's own eval
    from rlx.ship import policy

    restored = policy.restore(tmp_path / "run")
    assert restored.kind == "meta"
    assert policy.evaluate(restored)["primary_return"]["mean"] == row["eval/primary_return"]


def test_population_through_the_cli(tmp_path, repo_configs, capsys):
    path = str(Path(repo_configs) / "meta" / "cartpole_anti_pd.yaml")
    overrides = [*tiny_overrides(str(tmp_path)), "meta.method=population"]
    overrides += ["meta.population_size=2", "meta.exploit_fraction=0.5", "meta.learn_gamma=true"]
    code = cli.main(["meta", path, *overrides, "--run-dir", str(tmp_path / "run")])
    assert code == 0
    out = capsys.readouterr().out
    assert "learned weights:" in out and "gamma" in out and "phi plot:" in out
    row = rows(tmp_path / "run")[-1]
    assert "meta/fitness_best" in row and "eval/primary_return_best_member" in row
    assert "phi/gamma_logit" not in row and "meta/gamma" in row
    # rlx eval: one member of the population (the best by fitness unless --member)
    assert cli.main(["eval", str(tmp_path / "run"), "--member", "1"]) == 0
    data = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert data["kind"] == "meta" and data["member"] == 1
    assert cli.main(["eval", str(tmp_path / "run"), "--member", "2"]) == 2
    assert "members 0-1" in capsys.readouterr().err


HYBRID = ["meta.method=population", "meta.member_gradient=one_step", "meta.population_size=2"]
HYBRID += ["meta.exploit_fraction=0.5", "meta.outer_schedule=cosine"]


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param([], id="one_step"),
        pytest.param(HYBRID, id="hybrid", marks=pytest.mark.slow),  # 29 s cold
    ],
)
def test_meta_resume_gives_identical_metrics(tmp_path, repo_configs, extra):
    path = Path(repo_configs) / "meta" / "cartpole_anti_pd.yaml"
    overrides = [*tiny_overrides(str(tmp_path)), "train.total_steps=128", "run.chunk_iterations=2"]
    config = build_lib.load(path, overrides + extra)
    runs.meta(config, tmp_path / "full", show_progress=False)
    runs.meta(config, tmp_path / "part", show_progress=False, max_chunks=2)
    summary = runs.meta(config, tmp_path / "part", resume=True, show_progress=False)
    assert summary["status"] == "completed"
    strip = lambda r: {k: v for k, v in r.items() if k not in driver.TIMING_KEYS}
    full, part = rows(tmp_path / "full"), rows(tmp_path / "part")
    assert len(full) == len(part) == 4
    assert [strip(r) for r in full] == [strip(r) for r in part]
    if extra:  # the hybrid logs the population's and the members' gradient quantities
        assert {"meta/fitness_best", "meta/grad_norm", "weights/pd_anti"} <= set(full[-1])


@pytest.mark.parametrize(
    "override,message",
    [
        ("meta.method=newton", r"key 'meta.method': must be one of one_step\|unrolled"),
        ("meta.learn=[combine/nope]", r"meta.learn\[0\]: 'combine/nope' names no reward param"),
        ("meta.exploit_fraction=0.9", r"key 'meta.exploit_fraction'"),
        ("meta.outer_gamma=1.5", r"key 'meta.outer_gamma': must be in \[0, 1\]"),
        ("meta.bootstrap_steps=2", r"'meta.bootstrap_steps': applies to meta.method one_step or"),
        ("meta.init_distribution=uniform", r"key 'meta.init_distribution': needs meta.search_rad"),
        ("meta.resample_probability=0.5", r"'meta.resample_probability': applies to meta.m"),
        ("meta.search_radius=-1", r"key 'meta.search_radius'"),
        ("meta.resample_until=0.5", r"'meta.resample_until': applies to meta.method popul"),
        ("meta.keep_start=true", r"'meta.keep_start': applies to meta.method population"),
    ],
)
def test_meta_config_errors_name_the_key(repo_configs, override, message):
    path = Path(repo_configs) / "meta" / "cartpole_anti_pd.yaml"
    extra = ["meta.method=population"] if "exploit" in override or "init_d" in override else []
    extra += ["meta.method=implicit"] if "bootstrap" in override else []
    with pytest.raises(config_lib.ConfigError, match=message):
        build_lib.load(path, [*extra, override])


def test_keep_start_is_refused_for_a_population_following_a_gradient(repo_configs):
    path = Path(repo_configs) / "meta" / "cartpole_anti_pd.yaml"
    hybrid = ["meta.method=population", "meta.member_gradient=one_step"]
    with pytest.raises(config_lib.ConfigError, match=r"keep_start': needs meta.member_gradi"):
        build_lib.load(path, [*hybrid, "meta.keep_start=true"])
    assert build_lib.load(path, ["meta.method=population", "meta.keep_start=true"])


def test_each_method_takes_the_settings_of_its_row_in_one_table(repo_configs):
    """``METHOD_SETTINGS``: every method has a row, every method-specific field is in one group;
    a file's settings of other methods are dropped (one file serves several methods), and an
    override of a setting the method does not take is an error naming it."""
    from rlx import meta as meta_lib
    from rlx.meta import schema as meta_schema

    assert set(meta_schema.METHOD_SETTINGS) == set(meta_lib.METHODS)
    groups = [name for names in meta_schema.SETTINGS.values() for name in names]
    assert len(groups) == len(set(groups))
    common = {"method", "inner_iterations", "learn", "learn_gamma", "search_radius"}
    fields = {f.name for f in dataclasses.fields(meta_schema.MetaConfig)}
    assert set(groups) | common == fields
    path = Path(repo_configs) / "meta" / "halfcheetah_ctrl.yaml"  # implicit, with grad_steps 4
    implicit = build_lib.load(path, [])
    assert implicit.meta.grad_steps == 0 and implicit.meta.outer_learning_rate == 0.5
    one_step = build_lib.load(path, ["meta.method=one_step"])  # the file's grad_steps applies
    assert one_step.meta.grad_steps == 4 and one_step.meta.outer_learning_rate == 0.5
    population = build_lib.load(path, ["meta.method=population"])
    assert population.meta.outer_learning_rate == 1e-2  # the default: population takes none
    hybrid = build_lib.load(path, ["meta.method=population", "meta.member_gradient=one_step"])
    assert hybrid.meta.grad_steps == 4 and hybrid.meta.outer_learning_rate == 0.5
    with pytest.raises(config_lib.ConfigError, match=r"'meta.neumann_steps': applies to meta.m"):
        build_lib.load(path, ["meta.method=one_step", "meta.neumann_steps=3"])


def test_bmg_meta_iterations_count_the_bootstrap_updates(repo_configs):
    """A BMG meta-iteration is inner_iterations + bootstrap_steps PPO iterations: the run's
    env steps stay train.total_steps."""
    import math

    path = Path(repo_configs) / "meta" / "cartpole_anti_pd.yaml"
    cfg = build_lib.load(path, ["meta.bootstrap_steps=2", "train.total_steps=300000"])
    assert cfg.meta.ppo_iterations == 3
    per_meta = cfg.train.num_envs * cfg.train.unroll_length * 3
    chunk = cfg.run.chunk_iterations
    assert cfg.meta_iterations == math.ceil(math.ceil(300000 / per_meta) / chunk) * chunk
