"""Strict config loading: errors name the key and where it came from, and write nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlx import config as config_lib
from rlx.cli import main
from rlx.config import build as build_lib


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


BASE = "env: {name: cartpole}\nreward: {weights: {alive: 1.0}}\n"


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (BASE + "train: {num_envz: 3}\n", [], "key 'train.num_envz': unknown key"),
        (BASE + "train: {num_envs: many}\n", [], "key 'train.num_envs': expected an integer"),
        (BASE + "ppo: {gamma: 1.5}\n", [], "key 'ppo.gamma': must be in [0, 1]"),
        (BASE + "ppo: {learning_rate: -1e-3}\n", [], "key 'ppo.learning_rate': must be > 0"),
        (BASE + "train: {normalize_observations: 1}\n", [], "expected true or false"),
        (BASE, ["train.num_envs=0"], "override 'train.num_envs=0': key 'train.num_envs'"),
        (
            BASE + "train: {gradient_clip: norm}\n",
            [],
            "key 'train.gradient_clip': must be one of global_norm|elementwise",
        ),
        (
            BASE + "network: {kernel_init: xavier}\n",
            [],
            "key 'network.kernel_init': must be one of orthogonal|lecun_normal|lecun_uniform",
        ),
        (BASE, ["nope.x=1"], "override 'nope.x=1': key 'nope': unknown key"),
        ("env: {name: cartpol}\nreward: {weights: {alive: 1.0}}\n", [], "unknown env 'cartpol'"),
        (BASE.replace("alive", "alvie"), [], "unknown reward term for env 'cartpole'"),
        (BASE.replace("{name: cartpole}", "{params: {gravity: 'x'}}"), [], "env.params.gravity"),
        (BASE.replace("{name: cartpole}", "{params: {mass: 2}}"), [], "'env.params.mass': unknown"),
        (BASE + "train: {num_envs: 3, unroll_length: 3}\n", [], "must divide"),
    ],
)
def test_strict_errors_name_key_and_source(tmp_path, text, overrides, message):
    path = write(tmp_path, text)
    with pytest.raises(config_lib.ConfigError) as info:
        build_lib.load(path, overrides)
    assert message in str(info.value)
    if not overrides:
        assert str(path) in str(info.value)


def test_yaml_scientific_notation_and_defaults(tmp_path):
    path = write(tmp_path, BASE + "ppo: {learning_rate: 3e-4}\ntrain: {total_steps: 5e5}\n")
    config = build_lib.load(path)
    assert config.ppo.learning_rate == pytest.approx(3e-4)
    assert config.train.total_steps == 500_000
    assert config.env.params["episode_length"] == 500  # resolved from the env's config


def test_unknown_term_lists_available_terms(tmp_path):
    path = write(tmp_path, "env: {name: pendulum}\nreward: {weights: {speed: 1.0}}\n")
    with pytest.raises(config_lib.ConfigError, match="angle_cost, velocity_cost, ctrl_cost"):
        build_lib.load(path)


def test_cli_bad_config_exits_nonzero_with_one_line_and_writes_nothing(tmp_path):
    path = write(tmp_path, BASE + f"run: {{root: {tmp_path / 'runs'}}}\ntrain: {{num_envs: -2}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "rlx", "train", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "train.num_envs" in lines[0] and str(path) in lines[0]
    assert not (tmp_path / "runs").exists()


def test_cli_bad_override_in_process(tmp_path, capsys):
    path = write(tmp_path, BASE + f"run: {{root: {tmp_path / 'runs'}}}\n")
    assert main(["train", str(path), "ppo.clip_epsilon=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ppo.clip_epsilon=2" in err[0]
    assert not (tmp_path / "runs").exists()


def test_resolved_config_round_trips(tmp_path, repo_configs):
    config = build_lib.load(Path(repo_configs) / "pendulum.yaml")
    path = tmp_path / "resolved.yaml"
    path.write_text(config_lib.dump(config))
    assert build_lib.load(path) == config


PEND = "env: {name: pendulum}\nreward:\n  weights: {angle_cost: -1.0}\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  combine: sums\n", "key 'reward.combine': must be one of sum|product"),
        (
            "  shaping: [{potential: {signals: {hight: 1.0}}}]\n",
            "key 'reward.shaping[0].potential.signals.hight': unknown signal for env 'pendulum' "
            "(the env has: angle, angular_velocity, uprightness)",
        ),
        ("  shaping: [{potentail: {}}]\n", "key 'reward.shaping[0]': expected one of"),
        ("  shaping: [{bounded: {kk: 1}}]\n", "key 'reward.shaping[0].bounded.kk': unknown key"),
        ("  shaping: [{bounded: {mode: year}}]\n", "must be one of step|episode"),
        ("  shaping: [{potential: {}}]\n", "name at least one signal, or set learned: true"),
        ("  shaping: [{clip: {low: 2, high: 1}}]\n", "low must be < high"),
        (
            "  combine: product\n  product: {factors: {speed: 1}}\n",
            "key 'reward.product.factors.speed': unknown reward term for env 'pendulum' "
            "(the env has: angle_cost, velocity_cost, ctrl_cost)",
        ),
        ("  combine: product\n", "key 'reward.product.factors': name at least one factor"),
        ("  combine: gated\n", "gated takes its weights per level"),
        (
            "  combine: gated_outcome\n  outcome: {term: win}\n",
            "key 'reward.outcome.term': unknown reward term 'win' for env 'pendulum'",
        ),
        ("  normalize: {terms: [nope]}\n", "key 'reward.normalize.terms.nope': unknown reward"),
        ("  head_features: [nope]\n", "key 'reward.head_features.nope': unknown signal"),
        ("  parameterization: fixed_sign\n", "nonzero weight"),
        ("  lipschitz: {coef: -1}\n", "key 'reward.lipschitz.coef': must be >= 0"),
    ],
)
def test_reward_spec_errors_name_key_file_and_available_names(tmp_path, extra, message):
    base = PEND.replace("-1.0", "0") if "fixed_sign" in extra else PEND
    path = write(tmp_path, base + extra)
    with pytest.raises(config_lib.ConfigError) as info:
        build_lib.load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_reward_spec_resolves_and_round_trips(tmp_path):
    text = PEND + (
        "  normalize: {terms: [all]}\n"
        "  shaping:\n    - potential: {signals: {uprightness: 2}}\n    - clip: {low: -1}\n"
    )
    config = build_lib.load(write(tmp_path, text))
    assert config.reward.normalize.terms == ("angle_cost", "velocity_cost", "ctrl_cost")
    assert config.reward.shaping[0]["potential"]["signals"] == {"uprightness": 2.0}
    assert config.reward.shaping[1] == {"clip": {"low": -1.0, "high": 10.0}}
    again = write(tmp_path, config_lib.dump(config))
    assert build_lib.load(again) == config


def test_every_static_and_traced_setting_is_set_from_the_config():
    """Each field of PPO's and the meta-learner's static and traced bundles has its config key
    written out (a renamed field cannot fall back to its default in silence), the key exists,
    and the built bundle carries the config's value."""
    import dataclasses

    from rlx import meta
    from rlx.config import build as build_lib
    from rlx.learn import ppo
    from rlx.meta import schema as meta_schema

    fields = lambda cls: {f.name for f in dataclasses.fields(cls)}
    assert fields(ppo.PPOStatic) == set(build_lib.PPO_STATIC_KEYS) | set(
        build_lib.PPO_STATIC_NOT_CONFIGURED
    )
    assert fields(ppo.Hparams) == set(build_lib.HPARAMS_KEYS) | {"reward_params"}
    assert fields(meta.MetaStatic) == set(meta_schema.STATIC_FIELDS) | set(
        meta_schema.STATIC_NOT_CONFIGURED
    )
    assert fields(meta.MetaHparams) == set(meta_schema.HPARAMS_FIELDS)
    assert fields(meta_schema.MetaConfig) >= set(meta_schema.STATIC_FIELDS) | set(
        meta_schema.HPARAMS_FIELDS
    )
    # Non-default values travel: every numeric key of the ppo/train/network/eval sections
    # the bundles read, set to another value, arrives in the built bundle.
    overrides = [
        "train.num_envs=4",
        "train.unroll_length=8",
        "train.num_minibatches=2",
        "train.num_epochs=3",
        "train.anneal_learning_rate=false",
        "train.normalize_observations=false",
        "train.normalize_advantages=false",
        "train.gradient_clip=elementwise",
        "train.clip_value_loss=true",
        "network.policy_hidden=[7]",
        "network.value_hidden=[9]",
        "network.activation=relu",
        "network.init_log_std=-0.5",
        "network.kernel_init=lecun_normal",
        "network.memory=lstm",
        "network.memory_size=5",
        "eval.num_envs=3",
        "eval.deterministic=false",
        "ppo.learning_rate=0.125",
        "ppo.entropy_cost=0.25",
        "ppo.value_cost=0.375",
        "ppo.clip_epsilon=0.5",
        "ppo.gamma=0.625",
        "ppo.gae_lambda=0.75",
        "ppo.max_grad_norm=0.875",
    ]
    from conftest import CONFIGS

    config = build_lib.load(Path(CONFIGS) / "cartpole.yaml", overrides)
    static = build_lib.ppo_static(config, 1)
    hparams = build_lib.ppo_hparams(config, {})
    for name, key in build_lib.PPO_STATIC_KEYS.items():
        assert key in " ".join(overrides), f"{key} has no non-default value in this test"
        assert getattr(static, name) == build_lib.config_value(config, key), name
        assert getattr(static, name) != getattr(ppo.PPOStatic(), name), name
    for name, key in build_lib.HPARAMS_KEYS.items():
        assert float(getattr(hparams, name)) == build_lib.config_value(config, key), name
