"""Where humanoid training time goes: Brax's rollout vs rlx's, and rlx's whole iteration.

One process, MJX humanoid (rlx through the ``brax:humanoid`` adapter, cached resets), 256 envs,
the 32x4 swish policy of scripts/bench_vs_brax.py: Brax's ``acting.generate_unroll`` (2 x 10
steps per iteration, as Brax's trainer collects 5,120 steps), rlx's rollout (20 steps, values
after the scan) and rlx's whole train iteration (8 minibatches x 4 epochs), each timed over 5
iterations, median of 4 repeats, run alternately.

  python scripts/bench_rollout_vs_brax.py
"""

import functools
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import yaml
from brax import envs as brax_envs
from brax.envs.wrappers import training as brax_wrappers
from brax.training import acting
from brax.training.acme import running_statistics, specs
from brax.training.agents.ppo import networks as ppo_networks

from rlx import envs
from rlx.config import build as build_lib
from rlx.core import runtime
from rlx.learn import acting as rlx_acting

runtime.configure()

N, T, U = 256, 20, 5
env = brax_envs.get_environment("humanoid", backend="mjx")
env = brax_wrappers.wrap(env, episode_length=1000, action_repeat=1)
nets = ppo_networks.make_ppo_networks(
    env.observation_size,
    env.action_size,
    policy_hidden_layer_sizes=(32,) * 4,
    value_hidden_layer_sizes=(256,) * 5,
)
make_policy = ppo_networks.make_inference_fn(nets)

key = jax.random.PRNGKey(0)
norm = running_statistics.init_state(specs.Array((env.observation_size,), jnp.dtype("float32")))
pparams = nets.policy_network.init(key)
policy = make_policy((norm, pparams))
state = jax.jit(env.reset)(jax.random.split(key, N))


@jax.jit
def brax_collect(state, key):
    def body(s, k):
        s, _ = acting.generate_unroll(env, s, policy, k, T // 2, extra_fields=("truncation",))
        return s, None

    return jax.lax.scan(body, state, jax.random.split(key, 2 * U))[0]


t0 = time.perf_counter()
jax.block_until_ready(brax_collect(state, key))
print("brax compile", time.perf_counter() - t0, flush=True)

base = {
    "env": {"name": "brax:humanoid", "reset_mode": "cached"},
    "reward": {"weights": {t: 1.0 for t in envs.make_raw("brax:humanoid").term_names}},
}
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    yaml.safe_dump(base, f)
config = build_lib.load(
    f.name,
    [
        f"train.num_envs={N}",
        f"train.unroll_length={T}",
        "train.num_minibatches=8",
        "train.num_epochs=4",
        "network.policy_hidden=[32,32,32,32]",
        "network.value_hidden=[256,256,256,256,256]",
        "network.activation=swish",
        "env.params.episode_length=1000",
        "train.normalize_observations=true",
        "ppo.max_grad_norm=1e6",
        "train.anneal_learning_rate=false",
    ],
)
built = build_lib.build(config)
agent, hparams = built.agent, built.hparams
st = agent.init(jax.random.key(0), hparams.reward_params)


@jax.jit
def rlx_collect(env_state, key):
    def body(es, k):
        es, _, _ = rlx_acting.collect(agent.actor, st.params, st.obs_stats, es, k, T)
        return es, None

    return jax.lax.scan(body, env_state, jax.random.split(key, U))[0]


t0 = time.perf_counter()
jax.block_until_ready(rlx_collect(st.env_state, key))
print("rlx compile", time.perf_counter() - t0, flush=True)
chunk = jax.jit(functools.partial(agent.train_chunk, num_iterations=U), donate_argnums=0)
t0 = time.perf_counter()
st2, _ = jax.block_until_ready(chunk(jax.tree.map(jnp.copy, st), hparams))
print("rlx train compile", time.perf_counter() - t0, flush=True)

res = {"brax_rollout": [], "rlx_rollout": [], "rlx_train": []}
bs, rs = state, st.env_state
for _ in range(4):
    t0 = time.perf_counter()
    bs = jax.block_until_ready(brax_collect(bs, key))
    res["brax_rollout"].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    rs = jax.block_until_ready(rlx_collect(rs, key))
    res["rlx_rollout"].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    st2, _ = jax.block_until_ready(chunk(st2, hparams))
    res["rlx_train"].append(time.perf_counter() - t0)
steps = U * T * N
for k, v in res.items():
    m = float(np.median(v))
    print(
        f"{k}: {m:.3f} s per {steps} steps -> {steps / m:,.0f} steps/s, "
        f"{m / steps * 1e6:.1f} us/step"
    )
