"""Recurrent policies (``network.memory``: gru, lstm) and the asymmetric actor-critic
(an env's ``actor_observation_size``): the memory resets where episodes start, the learner
replays the very policy that acted, seeds vmap, runs resume exactly, the actor never reads
the privileged inputs."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CACHE, CONFIGS, whole_and_resumed_rows
from rlx import runs
from rlx.config import build as build_lib
from rlx.core.schema import ConfigError
from rlx.learn import acting
from rlx.learn import ppo as ppo_lib
from rlx.learn.networks import RecurrentPolicy, memory_carry

MEMORY = str(Path(CONFIGS) / "cartpole_memory.yaml")
SMALL = [
    "train.total_steps=256",
    "train.num_envs=4",
    "train.unroll_length=32",
    "train.num_minibatches=2",
    "train.num_epochs=2",
    "env.params.episode_length=20",  # several episodes end inside each rollout
    "eval.num_envs=4",
    "eval.every_chunks=1",
    "run.chunk_iterations=1",
    "run.tensorboard=false",
    f"run.compilation_cache={CACHE}",
]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_memory_is_zeroed_where_an_episode_starts(cell):
    net = RecurrentPolicy((8,), 2, memory=cell, memory_size=5)
    obs = jnp.ones((3, 2))
    params = net.init(jax.random.key(0), memory_carry(cell, 5, (3,)), obs, jnp.zeros(3, bool))
    full = jax.tree.map(lambda x: x + 1.0, memory_carry(cell, 5, (3,)))
    start = jnp.array([True, False, True])
    carry, out = net.apply(params, full, obs, start)
    fresh_carry, fresh = net.apply(params, memory_carry(cell, 5, (3,)), obs, start)
    # envs 0 and 2 start an episode: what they remembered is gone
    np.testing.assert_array_equal(out[0], fresh[0])
    np.testing.assert_array_equal(out[2], fresh[2])
    assert not np.allclose(out[1], fresh[1])  # env 1 goes on from its memory


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_learner_replays_the_policy_that_acted(cell):
    """The update's replay of each env's sequence from the rollout's first carry, with the
    memory zeroed at every episode start, gives the behaviour policy's very log-probs; the
    carry goes on into the next rollout."""
    built = build_lib.build(build_lib.load(MEMORY, [*SMALL, f"network.memory={cell}"]))
    agent = built.agent
    state = agent.init(jax.random.key(1), built.hparams.reward_params)
    assert isinstance(state, ppo_lib.RecurrentTrainState)
    for _ in range(2):  # the second rollout starts from the first one's carry
        before = state.policy_carry
        state, batch = jax.jit(agent.collect)(state)
        assert bool(jnp.any(batch.traj.terminated | batch.traj.truncated))
        jax.tree.map(np.testing.assert_array_equal, batch.replay[0], before)
        samples, *_ = ppo_lib.samples_of(agent, batch, built.hparams, state.reward_state)
        assert samples["obs"].shape[:2] == (4, 32)  # [B, T]: minibatches of whole envs
        params, _ = acting.sample_policy_value(agent.actor, state.params, state.obs_stats, samples)
        log_prob = agent.dist.log_prob(params, samples["action"])
        np.testing.assert_allclose(log_prob, samples["log_prob"], rtol=1e-5, atol=1e-5)
        # the meta-gradients' outer losses replay the rollout [T, B] the same way
        replayed = acting.rollout_policy_params(
            agent.actor, state.params, state.obs_stats, batch.traj.obs, batch.replay
        )
        log_prob = agent.dist.log_prob(replayed, batch.traj.action)
        np.testing.assert_allclose(log_prob, batch.traj.log_prob, rtol=1e-5, atol=1e-5)
    assert float(jnp.max(jnp.abs(jax.tree.leaves(state.policy_carry)[0]))) > 0


def test_a_recurrent_run_resumes_exactly(tmp_path):
    config = build_lib.load(MEMORY, SMALL)
    whole, cut = whole_and_resumed_rows(config, tmp_path)
    assert whole == cut and len(whole) == 2


@pytest.mark.slow  # three programs; test_families runs a recurrent --seeds in the fast tier
def test_seeds_of_a_recurrent_run_equal_single_runs(tmp_path):
    summary = runs.train_members(MEMORY, SMALL, 2, [], tmp_path / "seeds", show_progress=False)
    assert summary["status"] == "completed"
    plan = json.loads((tmp_path / "seeds" / "members.json").read_text())
    runs.train(build_lib.load(MEMORY, [*SMALL, "train.seed=1"]), tmp_path / "one",
               show_progress=False)  # fmt: skip
    rows = lambda d: [json.loads(r) for r in (d / "metrics.jsonl").read_text().splitlines()]
    got = rows(tmp_path / "seeds" / plan["members"][1]["dir"])[-1]
    want = rows(tmp_path / "one")[-1]
    for key in ("train/return", "loss/total", "eval/return"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, err_msg=key)


def test_the_actor_never_reads_the_privileged_observation():
    built = build_lib.build(
        build_lib.load(MEMORY, [*SMALL, "env.params.observation=positions_privileged"])
    )
    agent = built.agent
    state = agent.init(jax.random.key(0), built.hparams.reward_params)
    # the policy's first layer takes the 2 positions; the critic's all 4 entries
    cell = state.params["policy"]["params"]["GRUCell_0"]
    assert {k: v["kernel"].shape[0] for k, v in cell.items() if k.startswith("i")} == {
        "ir": 2, "iz": 2, "in": 2,
    }  # fmt: skip
    assert state.params["value"]["params"]["MLP_0"]["Dense_0"]["kernel"].shape[0] == 4

    def policy_out(obs):
        carry = agent.actor.policy.initial_carry((1,))
        x = acting.actor_view(agent.actor, obs)
        return agent.actor.policy.step(state.params["policy"], carry, x, jnp.zeros(1, bool))[1]

    obs = jnp.array([[0.1, -0.05, 0.3, 0.7]])
    grad = jax.jacobian(lambda o: policy_out(o).sum())(obs)
    assert float(jnp.abs(grad[0, :2]).sum()) > 0
    np.testing.assert_array_equal(grad[0, 2:], 0.0)  # velocities: the critic's alone
    value = lambda o: agent.actor.value_net.apply(state.params["value"], o).sum()
    assert float(jnp.abs(jax.grad(value)(obs)[0, 2:]).sum()) > 0


def test_recurrent_settings_are_checked():
    with pytest.raises(ConfigError, match="network.memory.*gru"):
        build_lib.load(MEMORY, ["network.memory=rnn"])
    with pytest.raises(ConfigError, match="must divide num_envs = 6"):
        build_lib.load(MEMORY, ["train.num_envs=6", "train.num_minibatches=4"])
    with pytest.raises(ConfigError, match="env.params.observation.*positions_privileged"):
        build_lib.load(MEMORY, ["env.params.observation=velocities"])


def test_a_meta_step_carries_the_memory_on_from_its_last_rollout():
    """After a one_step meta-iteration the learner's memory is where its last rollout left it
    (the policy replayed over that rollout from its first carry), not an older one."""
    config = build_lib.load(MEMORY, [*SMALL, "meta.method=one_step", "meta.learn=[combine/alive]"])
    built = build_lib.build(config, meta=True)
    meta, hps = built.meta, built.meta_hps
    state, _ = jax.jit(meta.step)(meta.init(jax.random.key(0), hps), hps)
    train, batch = state.train, state.batch
    actor = meta.agent.actor
    x = acting.actor_view(actor, acting.normalize_obs(actor, train.obs_stats, batch.traj.obs))
    carry, starts = batch.replay

    def step(carry, inputs):
        return actor.policy.net.apply(train.params["policy"], carry, *inputs)[0], None

    last, _ = jax.lax.scan(step, carry, (x, starts))
    np.testing.assert_allclose(train.policy_carry, last, rtol=1e-5, atol=1e-5)
    assert not np.allclose(train.policy_carry, carry)


@pytest.mark.parametrize(
    "method",  # about 40 s each on 2 cores: one in the fast tier
    [
        "one_step",
        *(pytest.param(m, marks=pytest.mark.slow) for m in ("implicit", "unrolled", "bmg")),
    ],
)
def test_the_meta_gradients_tune_the_reward_of_a_recurrent_policy(tmp_path, method):
    """Every gradient method on a GRU policy: the run completes and the weight moves."""
    from rlx.cli import main

    run_dir = tmp_path / method
    method_args = {"bmg": ["meta.method=one_step", "meta.bootstrap_steps=1"],
                   "unrolled": ["meta.method=unrolled", "meta.inner_iterations=2"]}  # fmt: skip
    argv = ["meta", MEMORY, *SMALL, "train.total_steps=512", "meta.learn=[combine/alive]",
            *method_args.get(method, [f"meta.method={method}"]), "--run-dir", str(run_dir),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    weights = [r["phi/combine/alive"] for r in rows if "phi/combine/alive" in r]
    assert weights and all(np.isfinite(weights)) and weights[-1] != weights[0], rows[-1]


@pytest.mark.slow  # a population's program: about 30 s on 2 cores
def test_a_population_tunes_the_reward_of_a_recurrent_policy(tmp_path):
    from rlx.cli import main

    run_dir = tmp_path / "meta"
    argv = ["meta", MEMORY, *SMALL, "meta.method=population", "meta.population_size=4",
            "meta.learn=[combine/alive]", "--run-dir", str(run_dir),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
