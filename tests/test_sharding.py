"""Four (faked) CPU devices give the same update as one, and `rlx train` uses them all."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    r"""
    import contextlib, functools, json, re, sys
    import jax, numpy as np
    from rlx.config import build as build_lib
    from rlx.core import sharding
    from rlx.run import driver
    from rlx import runs

    assert jax.device_count() == 4, jax.devices()
    overrides = [
        "train.num_envs=8", "train.unroll_length=8", "train.num_minibatches=2",
        "train.num_epochs=2", "network.policy_hidden=[16]", "network.value_hidden=[16]",
        "run.chunk_iterations=3", "run.compilation_cache=''",
    ]
    config = build_lib.load(sys.argv[1], overrides)
    built = build_lib.build(config)
    agent, hparams = built.agent, built.hparams

    # the op after its shape (a tuple's has spaces), not an operand named after one
    COLLECTIVE = r"= .*?[ )](?:all-reduce|all-gather|all-to-all|collective-permute|reduce-scatter)"

    def per_step_collectives(text, trip):
        # collectives in the computations a while loop of `trip` iterations (an env step
        # each: the rollout, GAE, the episode sums) runs, and in all they call
        comps, name = {}, None
        for line in text.splitlines():
            if line and not line.startswith(" ") and line.rstrip().endswith("{"):
                name = re.match(r"(?:ENTRY )?(%[^ ]+)", line).group(1)
                comps[name] = []
            elif name is not None:
                comps[name].append(line)
        bodies = re.findall(r"while\(.*?body=(%[^ ,]+).*?\"known_trip_count\":\{\"n\":\""
                            + str(trip) + r"\"\}", text)
        seen, todo = set(), list(bodies)
        while todo:
            c = todo.pop()
            if c in seen or c not in comps:
                continue
            seen.add(c)
            for line in comps[c]:
                todo += re.findall(r"(?:calls|to_apply|body|condition)=(%[^ ,]+)", line)
                for group in re.findall(r"branch_computations=\{([^}]*)\}", line):
                    todo += [b.strip() for b in group.split(",")]
        return sum(len(re.findall(COLLECTIVE + r"(?:-start)?\(", line))
                   for c in seen for line in comps[c]), len(bodies)

    def run(devices, local=False):
        # a fresh function per variant: each one traced and compiled on its own
        chunk = functools.partial(agent.train_chunk, num_iterations=3)
        mesh = sharding.make_mesh(devices)
        state = agent.init(jax.random.key(0), hparams.reward_params)
        shardings = sharding.state_shardings(state, mesh)
        state = jax.device_put(state, shardings)
        hp = jax.device_put(hparams, sharding.replicated(mesh))
        fn = jax.jit(chunk, out_shardings=(shardings, sharding.replicated(mesh)))
        # local: traced with the mesh set, as rlx.run.driver does for one learner
        with jax.set_mesh(mesh) if local else contextlib.nullcontext():
            compiled = fn.lower(state, hp).compile()
        text = compiled.as_text()
        synced = per_step_collectives(text, config.train.unroll_length)
        gathers = len(re.findall(r"= \S+ all-gather\(", text))
        state, metrics = compiled(state, hp)
        obs_devices = len(state.env_state.obs.sharding.device_set)
        return (jax.device_get(state.params), float(metrics["train/reward_mean"][0]),
                obs_devices, synced, gathers)

    one, four, local = run(jax.devices()[:1]), run(jax.devices()), run(jax.devices(), True)
    diff = lambda a, b: max(float(np.max(np.abs(x - y)))
                            for x, y in zip(jax.tree.leaves(a[0]), jax.tree.leaves(b[0])))
    again = run(jax.devices(), True)
    print(json.dumps({"max_param_diff": [diff(one, four), diff(one, local), diff(local, again)],
                      "devices": [r[2] for r in (one, four, local)],
                      "reward_mean": [r[1] for r in (one, four, local)],
                      "per_step_sync": [r[3] for r in (one, four, local)],
                      "all_gathers": [r[4] for r in (one, four, local)]}))
    """
)


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=300,  # a wedged run fails the test instead of holding the suite
    )


def test_four_devices_give_the_same_update_as_one(repo_configs):
    """The same update on 1 device and on 4; and with each device stepping and resetting its
    own envs and learning on its own samples (the mesh set while tracing, as the driver
    compiles one learner: data-parallel PPO), no collective runs at every env step and none
    gathers the rollout. That update averages 4 devices' gradients on their own parts of
    each minibatch, so it is not the 1-device one (the first iteration's rollout is), and it
    is the same on every run."""
    result = _run(SCRIPT, os.path.join(repo_configs, "cartpole.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["devices"] == [1, 4, 4]
    assert out["reward_mean"][0] == out["reward_mean"][1] == out["reward_mean"][2]
    one_four, one_local, local_again = out["max_param_diff"]
    assert one_four < 1e-5 and local_again == 0.0
    assert 1e-6 < one_local < 1e-2  # another update, of the same size
    # (collectives in the loops over env steps, loops over env steps found): none on one
    # device; GSPMD's reset test at every step without the mesh; none per step with it
    (one_sync, one_loops), (four_sync, _), (local_sync, local_loops) = out["per_step_sync"]
    assert one_loops >= 2 and local_loops >= 2  # the rollout and the episode sums, at least
    assert one_sync == 0 and four_sync > 0 and local_sync == 0, out["per_step_sync"]
    assert out["all_gathers"][0] == 0 and out["all_gathers"][1] > 0 == out["all_gathers"][2]


def test_rlx_train_uses_all_local_devices(tmp_path, repo_configs):
    from conftest import tiny_overrides

    code = textwrap.dedent(
        """
        import sys
        from rlx.config import build as build_lib
        from rlx.run import driver
        from rlx import runs
        config = build_lib.load(sys.argv[1], sys.argv[3:])
        print(runs.train(config, sys.argv[2], show_progress=False)["devices"])
        """
    )
    overrides = [*tiny_overrides(str(tmp_path)), "train.num_envs=4"]
    result = _run(
        code, os.path.join(repo_configs, "cartpole.yaml"), str(tmp_path / "run"), *overrides
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "4 x cpu"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["devices"] == "4 x cpu" and summary["status"] == "completed"


SPLIT_SGD = textwrap.dedent(
    r"""
    import dataclasses, functools, json, sys
    import jax, jax.numpy as jnp, numpy as np
    from rlx.config import build as build_lib
    from rlx.core import sharding
    from rlx.learn import ppo
    from rlx.meta import inner

    overrides = ["train.num_envs=8", "train.unroll_length=8", "train.num_minibatches=2",
                 "train.num_epochs=2", "network.policy_hidden=[16]", "network.value_hidden=[16]",
                 *sys.argv[2:]]
    built = build_lib.build(build_lib.load(sys.argv[1], overrides))
    agent, hp = built.agent, built.hparams
    state = agent.init(jax.random.key(0), hp.reward_params)
    mesh = sharding.make_mesh(jax.devices())
    state = jax.device_put(state, sharding.state_shardings(state, mesh))

    def learn(sgd):
        def fn(state):
            state, batch = agent.collect(state)
            return ppo.update(agent, state, batch, hp, sgd=sgd)[0].params
        with jax.set_mesh(mesh):
            return jax.device_get(jax.jit(fn)(state))

    def linearised_last_steps(agent, params, opt_state, obs_stats, samples, hparams, lr, key):
        # make_sgd's own path for a tail of steps, here over every step: XLA splits it
        optimizer = ppo.make_optimizer(agent, hparams, lr)
        step = functools.partial(ppo.minibatch_step, agent, optimizer, obs_stats, hparams)
        total = agent.static.num_epochs * agent.static.num_minibatches
        return inner._last_steps(agent, step, (params, opt_state), samples, key, total)

    def meta_gradient(sgd):
        # d(sum of the updated value head) / d(gamma): the inner update differentiated
        def fn(state, gamma):
            state, batch = agent.collect(state)
            h = dataclasses.replace(hp, gamma=gamma)
            params = ppo.update(agent, state, batch, h, sgd=sgd)[0].params
            return sum(jnp.sum(x) for x in jax.tree.leaves(params["value"]))
        with jax.set_mesh(mesh):
            return float(jax.jit(jax.grad(fn, argnums=1))(state, hp.gamma))

    diff = lambda a, b: max(float(np.max(np.abs(x - y)))
                            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    per_device = learn(ppo.sgd)  # each device's steps in a shard_map, one psum per step
    whole = learn(inner.make_sgd(0, True))  # the meta-learners' SGD: one program, split by XLA
    grads = [meta_gradient(ppo.sgd), meta_gradient(linearised_last_steps)]
    print(json.dumps({"param_diff": diff(per_device, whole), "meta_gradients": grads}))
    """
)


@pytest.mark.slow  # one more 4-device subprocess each (about 20 s)
@pytest.mark.parametrize("memory", ["none", "gru"])
def test_the_meta_learners_sgd_takes_ppos_steps_on_split_samples(repo_configs, memory):
    """On 4 devices the meta-learners' SGD (their forward values must be PPO's own) draws the
    same per-device minibatches and normalises each device's advantages as PPO's
    data-parallel steps do: steps ([T * B]) or, for a recurrent policy, env sequences; and a
    meta-gradient through PPO's per-device steps (their psum transposed) is the one through
    the same steps split by XLA."""
    config = os.path.join(repo_configs, "cartpole.yaml")
    result = _run(SPLIT_SGD, config, f"network.memory={memory}")
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["param_diff"] < 1e-5
    per_device, whole = out["meta_gradients"]
    assert whole != 0.0 and abs(per_device - whole) <= 1e-3 * abs(whole), out


META_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from rlx.config import build as build_lib
    from rlx.core import sharding

    assert jax.device_count() == 4, jax.devices()
    overrides = [
        "train.num_envs=8", "train.unroll_length=8", "train.num_minibatches=2",
        "train.num_epochs=2", "network.policy_hidden=[16]", "network.value_hidden=[16]",
        "meta.grad_steps=2", "meta.outer_learning_rate=0.5", "run.compilation_cache=''",
    ]
    config = build_lib.load(sys.argv[1], overrides)
    built = build_lib.build(config, meta=True)
    meta, hps = built.meta, built.meta_hps

    def run(devices):
        mesh = sharding.make_mesh(devices)
        state = meta.init(jax.random.key(0), hps)
        shardings = meta.shardings(state, mesh)
        state = jax.device_put(state, shardings)
        hp = jax.device_put(hps, sharding.replicated(mesh))
        fn = jax.jit(lambda s, h: meta.chunk(s, h, 3),
                     out_shardings=(shardings, sharding.replicated(mesh)))
        state, _ = fn(state, hp)
        obs_devices = len(state.train.env_state.obs.sharding.device_set)
        return jax.device_get((state.phi, state.train.params)), obs_devices

    (phi1, params1), one_devices = run(jax.devices()[:1])
    (phi4, params4), four_devices = run(jax.devices())
    diff = lambda a, b: max(float(np.max(np.abs(x - y)))
                            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    print(json.dumps({"phi": [float(x) for x in jax.tree.leaves(phi1)],
                      "phi_diff": diff(phi1, phi4), "param_diff": diff(params1, params4),
                      "devices": [one_devices, four_devices]}))
    """
)


@pytest.mark.slow  # 33 s cold; the plain PPO update's test stays in the fast tier
def test_four_devices_give_the_same_meta_update_as_one(repo_configs):
    result = _run(META_SCRIPT, os.path.join(repo_configs, "meta", "cartpole_anti_pd.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["devices"] == [1, 4]
    assert out["phi"] != [1.0, 1.0]  # phi moved (alive stays 1 only if it is not learned)
    assert out["phi_diff"] < 1e-4 and out["param_diff"] < 1e-4, out


POPULATION = textwrap.dedent(
    """
    import json, sys
    import jax
    from rlx.config import build as build_lib
    from rlx.core import sharding
    from rlx import runs
    from rlx.run.meta_run import meta_program

    config = build_lib.load(sys.argv[1], sys.argv[3:])
    program = meta_program(build_lib.build(config, meta=True))
    abstract = jax.eval_shape(program.init, jax.random.key(0))
    shardings = program.shardings(abstract, sharding.make_mesh())
    # members per device, from the shardings the run's state is given (every per-member leaf)
    per_device = sorted({
        s.shard_shape(a.shape)[0]
        for a, s in zip(jax.tree.leaves((abstract.train, abstract.phi, abstract.fitness)),
                        jax.tree.leaves((shardings.train, shardings.phi, shardings.fitness)))
    })
    devices = len(shardings.fitness.device_set)
    summary = runs.meta(config, sys.argv[2], show_progress=False)
    print(json.dumps({"devices": summary["devices"], "per_device": per_device,
                      "fitness_devices": devices}))
    """
)


@pytest.mark.slow  # two population runs in subprocesses (13 s alone, 43 s in a busy suite)
def test_a_population_splits_its_members_over_the_devices(tmp_path, repo_configs):
    """8 members on 4 faked devices run 2 on each, with the rows of 1 device (the same
    programs per member; only where they live changes)."""
    from conftest import tiny_overrides
    from rlx.run import driver

    overrides = [
        *tiny_overrides(str(tmp_path)),
        "meta.method=population",
        "meta.population_size=8",
        "meta.inner_iterations=1",
        "run.chunk_iterations=1",
    ]
    config = os.path.join(repo_configs, "meta", "cartpole_anti_pd.yaml")
    four = _run(POPULATION, config, str(tmp_path / "four"), *overrides)
    assert four.returncode == 0, four.stderr[-3000:]
    out = json.loads(four.stdout.strip().splitlines()[-1])
    assert out["devices"].startswith("4 x") and out["fitness_devices"] == 4, out
    assert out["per_device"] == [2], out  # 8 members, 2 on each of the 4 devices
    one = subprocess.run(
        [sys.executable, "-c", POPULATION, config, str(tmp_path / "one"), *overrides],
        capture_output=True,
        text=True,
        cwd="/",
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    single = json.loads(one.stdout.strip().splitlines()[-1])
    assert single["devices"].startswith("1 x") and single["per_device"] == [8], single
    rows = lambda d: [
        json.loads(r) for r in (tmp_path / d / "metrics.jsonl").read_text().splitlines()
    ]
    # To 1e-5: reductions over the split member axis may add in another order.
    for a, b in zip(rows("one"), rows("four"), strict=True):
        assert set(a) == set(b)
        for key in set(a) - set(driver.TIMING_KEYS):
            if isinstance(a[key], float):
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
            else:
                assert b[key] == a[key], key
