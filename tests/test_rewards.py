"""The reward layer: semantics of each combination and transform, invariance of potential-based
shaping, differentiability in every param, and one compiled train step for any param values."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rlx import envs
from rlx import rewards as R
from rlx.config import build as build_lib
from rlx.core.types import Transition
from rlx.learn import ppo
from rlx.rewards import terms as T
from rlx.rewards import weights as W


def transition(
    terms=None,
    signals=None,
    next_signals=None,
    terminated=None,
    truncated=None,
    shape=(4, 3),
    obs_size=2,
    seed=0,
):
    """A synthetic Transition [T, B] (unset fields are zeros / random)."""
    rng = np.random.default_rng(seed)
    zeros = np.zeros(shape, np.float32)
    as_f32 = lambda d: {k: jnp.asarray(v, jnp.float32) for k, v in (d or {}).items()}
    return Transition(
        obs=jnp.asarray(rng.normal(size=(*shape, obs_size)), jnp.float32),
        action=jnp.zeros(shape),
        log_prob=jnp.zeros(shape),
        value=jnp.zeros(shape),
        next_obs=jnp.asarray(rng.normal(size=(*shape, obs_size)), jnp.float32),
        terms=as_f32(terms),
        primary=jnp.asarray(zeros),
        signals=as_f32(signals),
        next_signals=as_f32(next_signals if next_signals is not None else signals),
        terminated=jnp.asarray(terminated if terminated is not None else zeros, bool),
        truncated=jnp.asarray(truncated if truncated is not None else zeros, bool),
    )


def run(fn, params, traj, state=None, gamma=0.9):
    if state is None:
        state = fn.init(jax.random.key(0), tuple(traj.terms), traj.primary.shape[1])
    return fn.apply(params, state, traj, gamma=gamma)


# ----------------------------------------------------------------------------- combinations


def test_weighted_sum_and_its_contributions():
    traj = transition({"a": [[1.0, 2.0]], "b": [[3.0, -1.0]]}, shape=(1, 2))
    reward, _, info = run(R.weighted_sum(("a", "b")), {"a": 2.0, "b": -1.0}, traj)
    np.testing.assert_allclose(reward, [[-1.0, 5.0]])
    np.testing.assert_allclose(info["a"], [[2.0, 4.0]])


def test_product_signs_zero_and_exponents():
    progress = [[2.0, -2.0, 2.0, 2.0]]
    factor = [[0.5, 0.5, 0.0, -0.3]]
    traj = transition({"p": progress, "f": factor}, shape=(1, 4))
    fn = R.product(("p",), ("f",))
    reward, _, info = run(fn, {"progress": {"p": 1.0}, "exponents": {"f": 2.0}}, traj)
    # 2 * 0.5^2; the sign is the progress's; a zero or negative factor zeroes the reward.
    np.testing.assert_allclose(reward, [[0.5, -0.5, 0.0, 0.0]], atol=1e-7)
    np.testing.assert_allclose(info["factor/f"], [[0.25, 0.25, 0.0, 0.0]], atol=1e-7)
    np.testing.assert_allclose(info["progress"], progress)


def test_geometric_mean_signs_zero_and_clip():
    a = [[0.25, -0.25, 0.0, 0.5, 4.0]]
    b = [[1.0, 1.0, 0.7, -0.5, 0.25]]
    traj = transition({"a": a, "b": b}, shape=(1, 5))
    reward, _, _ = run(R.geometric_mean(("a", "b")), {"a": 1.0, "b": 1.0}, traj)
    # sqrt(.25*1) = .5 ; a negative factor makes it negative (a logical AND of signs); a zero
    # term gives 0; the first term of the last column is clipped to 1: sqrt(1 * .25).
    np.testing.assert_allclose(reward, [[0.5, -0.5, 0.0, -0.5, 0.5]], rtol=1e-6)
    unclipped, _, _ = run(R.geometric_mean(("a", "b"), clip=False), {"a": 1.0, "b": 1.0}, traj)
    np.testing.assert_allclose(unclipped[0, 4], 1.0, rtol=1e-6)


def test_gated_levels_open_only_when_higher_levels_reach_their_threshold():
    safety = [[1.0, -1.0, 1.0]]
    task = [[0.2, 0.9, 0.8]]
    style = [[5.0, 5.0, 5.0]]
    traj = transition({"safety": safety, "task": task, "style": style}, shape=(1, 3))
    fn = R.gated([("safety",), ("task",), ("style",)])
    params = {
        "levels": [{"safety": 1.0}, {"task": 1.0}, {"style": 1.0}],
        "thresholds": [0.0, 0.5, 0.0],
        "temperature": 0.1,
    }
    reward, _, info = run(fn, params, traj)
    # col 0: safety ok, task 0.2 < 0.5 -> style gated out; col 1: safety fails -> only safety;
    # col 2: all open.
    np.testing.assert_allclose(reward, [[1.2, -1.0, 6.8]], rtol=1e-6)
    np.testing.assert_allclose(info["gate/2"], [[0.0, 0.0, 1.0]])
    np.testing.assert_allclose(info["gate/1"], [[1.0, 0.0, 1.0]])


def test_gated_outcome_gates_each_episode_by_its_own_outcome_or_the_last_one():
    # One env, 6 steps: an episode ends at t=2 with success 1, the next at t=4 with success 0,
    # and the last step starts an episode that is still running at the end of the rollout.
    success = [[0.0], [0.0], [1.0], [0.0], [0.0], [1.0]]
    bonus = [[1.0]] * 6
    done = [[0], [0], [1], [0], [1], [0]]
    traj = transition({"success": success, "bonus": bonus}, truncated=done, shape=(6, 1))
    fn = R.gated_outcome("success", ("bonus",), aggregate="last")
    params = {
        "immediate": {"bonus": 1.0},
        "outcome_weight": 10.0,
        "threshold": 0.5,
        "temperature": 0.1,
    }
    reward, state, info = run(fn, params, traj)
    np.testing.assert_allclose(info["gate"][:, 0], [1, 1, 1, 0, 0, 0])  # last: lag gate (0)
    np.testing.assert_allclose(reward[:, 0], [1, 1, 11, 0, 0, 0])
    # Next rollout: the running episode ends successfully at its first step.
    traj2 = transition(
        {"success": [[1.0], [0.0]], "bonus": [[1.0], [1.0]]}, truncated=[[1], [0]], shape=(2, 1)
    )
    reward2, _, info2 = run(fn, params, traj2, state=state)
    np.testing.assert_allclose(info2["gate"][:, 0], [1, 1])
    np.testing.assert_allclose(reward2[:, 0], [11, 1])


def test_gated_outcome_max_aggregates_across_rollouts():
    fn = R.gated_outcome("success", ("bonus",), aggregate="max")
    params = {
        "immediate": {"bonus": 1.0},
        "outcome_weight": 1.0,
        "threshold": 0.5,
        "temperature": 0.1,
    }
    first = transition({"success": [[1.0], [0.0]], "bonus": [[1.0], [1.0]]}, shape=(2, 1))
    _, state, _ = run(fn, params, first)
    second = transition({"success": [[0.0]], "bonus": [[1.0]]}, truncated=[[1]], shape=(1, 1))
    reward, _, info = run(fn, params, second, state=state)
    assert float(info["gate"][0, 0]) == 1.0 and float(info["outcome"][0, 0]) == 1.0
    np.testing.assert_allclose(reward[:, 0], [2.0])


# ----------------------------------------------------------------------------- shaping


def _rollout(name, length, num_envs=3, steps=40, **params):
    """A real rollout of random actions through the auto-resetting env: Transition [T, B]."""
    env = envs.make(name, episode_length=length, **params)
    batched = envs.VmapWrapper(env)

    def step(state, key):
        if isinstance(env.action_space, envs.Discrete):
            action = jax.random.randint(key, (num_envs,), 0, env.action_space.num_actions)
        else:
            action = jax.random.uniform(key, (num_envs, env.action_space.size), minval=-1)
        nxt = batched.step(state, action)
        traj = Transition(
            obs=state.obs,
            action=action,
            log_prob=jnp.zeros(num_envs),
            value=jnp.zeros(num_envs),
            next_obs=nxt.next_obs,
            terms=nxt.terms,
            primary=nxt.primary,
            signals=state.signals,
            next_signals=nxt.next_signals,
            terminated=nxt.terminated,
            truncated=nxt.truncated,
        )
        return nxt, traj

    state = batched.reset(jax.random.split(jax.random.key(1), num_envs))
    _, traj = jax.lax.scan(step, state, jax.random.split(jax.random.key(2), steps))
    return traj


@pytest.mark.parametrize("name,length", [("cartpole", 200), ("pendulum", 7)])
def test_potential_shaping_telescopes_per_episode(name, length):
    """sum_t gamma^t F_t = gamma^T Phi(s_T) - Phi(s_0), Phi(s_T) = 0 at a terminal state.

    CartPole episodes under random actions end by termination; pendulum's by truncation
    (episode_length 7), where Phi(s_T) is the true pre-reset state's potential.
    """
    traj = _rollout(name, length)
    signal = "pole_angle" if name == "cartpole" else "angle"
    gamma = 0.9
    fn = R.potential_based(R.signal_potential((signal,)))
    params = {"potential": {"coef": {signal: 2.0}}, "scale": 1.0, "final_scale": 1.0}
    state = fn.init(jax.random.key(0), (), 3)
    _, _, info = fn.apply(params, state, jnp.zeros_like(traj.primary), traj, gamma=gamma)
    shaping = np.asarray(info["shaping"])
    phi = 2.0 * np.asarray(traj.signals[signal])
    phi_next = 2.0 * np.asarray(traj.next_signals[signal])
    term, trunc = np.asarray(traj.terminated), np.asarray(traj.truncated)
    checked = {"terminated": 0, "truncated": 0}
    for b in range(3):
        start = 0
        for t in range(traj.primary.shape[0]):
            if term[t, b] or trunc[t, b]:
                steps = t - start + 1
                total = sum(gamma**i * shaping[start + i, b] for i in range(steps))
                last = 0.0 if term[t, b] else phi_next[t, b]
                expected = gamma**steps * last - phi[start, b]
                np.testing.assert_allclose(total, expected, rtol=1e-4, atol=1e-5)
                checked["terminated" if term[t, b] else "truncated"] += 1
                start = t + 1
    kind = "terminated" if name == "cartpole" else "truncated"
    assert checked[kind] >= 3


def _solve(reward_sa, transitions, gamma, iterations=2000):
    """Greedy optimal policy [S] and Q [S, A] of a tabular MDP by value iteration."""
    q = np.zeros_like(reward_sa)
    for _ in range(iterations):
        v = q.max(axis=1)
        q = reward_sa + gamma * transitions @ v
    return q.argmax(axis=1), q


def test_potential_shaping_keeps_the_optimal_policy_a_bonus_does_not():
    """A 6-state chain (move left/right, noise 0.1, goal at the right end pays 1 and
    terminates). Shaped rewards go through the reward layer on every (s, a, s') transition."""
    num_states, gamma = 6, 0.9
    rng = np.random.default_rng(0)
    P = np.zeros((num_states, 2, num_states))
    for s in range(num_states - 1):
        for a, move in enumerate((-1, 1)):
            intended = min(max(s + move, 0), num_states - 1)
            other = min(max(s - move, 0), num_states - 1)
            P[s, a, intended] += 0.9
            P[s, a, other] += 0.1
    goal = num_states - 1
    # (s, a, s') triples as one batch [1, S * A * S].
    s_idx, a_idx, n_idx = (
        x.ravel()
        for x in np.meshgrid(
            np.arange(num_states), np.arange(2), np.arange(num_states), indexing="ij"
        )
    )
    base = (n_idx == goal).astype(np.float32)
    bonus = ((s_idx == 1) & (a_idx == 0)).astype(np.float32)  # pays for moving away
    potential = rng.normal(size=num_states).astype(np.float32) * 3.0
    traj = transition(
        terms={"goal": base[None], "bonus": bonus[None]},
        signals={"phi": potential[s_idx][None]},
        next_signals={"phi": potential[n_idx][None]},
        terminated=(n_idx == goal)[None],
        shape=(1, s_idx.size),
    )

    def expected_reward(fn, params):
        state = fn.init(jax.random.key(0), ("goal", "bonus"), s_idx.size)
        r, _, _ = fn.apply(params, state, traj, gamma=gamma)
        r_sas = np.asarray(r).reshape(num_states, 2, num_states)
        r_sa = np.sum(P * r_sas, axis=2)
        # The goal is absorbing: nothing more happens after reaching it.
        transitions = P.copy()
        transitions[:, :, goal] = 0.0
        return r_sa, transitions

    plain = R.weighted_sum(("goal",))
    shaped = R.chain(
        plain, shaping=[("potential", R.potential_based(R.signal_potential(("phi",))))]
    )
    with_bonus = R.weighted_sum(("goal", "bonus"))
    pi_plain, _ = _solve(*expected_reward(plain, {"goal": 1.0}), gamma)
    pi_shaped, _ = _solve(
        *expected_reward(
            shaped,
            {
                "combine": {"goal": 1.0},
                "potential": {
                    "potential": {"coef": {"phi": 1.0}},
                    "scale": 1.0,
                    "final_scale": 1.0,
                },
            },
        ),
        gamma,
    )
    pi_bonus, _ = _solve(*expected_reward(with_bonus, {"goal": 1.0, "bonus": 1.0}), gamma)
    assert np.all(pi_plain[:goal] == 1)  # always move right
    np.testing.assert_array_equal(pi_shaped[:goal], pi_plain[:goal])
    assert pi_bonus[1] == 0  # the non-potential bonus makes moving away optimal in state 1


def test_dynamic_potential_scale_follows_its_schedule():
    traj = transition(
        signals={"x": np.ones((2, 1))}, next_signals={"x": np.ones((2, 1))}, shape=(2, 1)
    )
    fn = R.potential_based(R.signal_potential(("x",)), decay_updates=2)
    params = {"potential": {"coef": {"x": 1.0}}, "scale": 1.0, "final_scale": 0.0}
    state = fn.init(jax.random.key(0), (), 1)
    shapings = []
    for _ in range(4):
        _, state, info = fn.apply(params, state, jnp.zeros((2, 1)), traj, gamma=0.5)
        shapings.append(float(info["shaping"][0, 0]))
    # F = scale * (0.5 * 1 - 1): scale 1, 0.5, 0, 0 over updates 0..3.
    np.testing.assert_allclose(shapings, [-0.5, -0.25, 0.0, 0.0])


def test_bounded_step_and_episode():
    reward = jnp.asarray([[1.0, -1.0], [2.0, 0.0]])
    traj = transition(truncated=[[0, 0], [1, 0]], shape=(2, 2))
    params = {"k": 2.0, "reference": 0.5, "momentum": 0.9, "dense_weight": 0.0}
    step = R.bounded("step")
    out, _, _ = step.apply(params, step.init(None, (), 2), reward, traj)
    np.testing.assert_allclose(out, jax.nn.sigmoid(2.0 * (reward - 0.5)), rtol=1e-6)
    episode = R.bounded("episode")
    state = episode.init(None, (), 2)
    out, state, _ = episode.apply(params, state, reward, traj)
    expected = np.zeros((2, 2))
    expected[1, 0] = jax.nn.sigmoid(2.0 * (3.0 - 0.5))
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    # Env 1's episode is still running: its sum carries into the next batch.
    np.testing.assert_allclose(state.episode_sum.value, [0.0, -1.0])
    running = R.bounded("step", running=True)
    rstate = running.init(None, (), 2)
    out, rstate, _ = running.apply(params, rstate, reward, traj)
    np.testing.assert_allclose(out, jax.nn.sigmoid(2.0 * (reward - 0.5)), rtol=1e-6)  # mean 0.5
    assert float(rstate.reference) == pytest.approx(0.5)


def test_normalize_terms_uses_running_std():
    rng = np.random.default_rng(0)
    big = rng.normal(scale=10.0, size=(50, 8)).astype(np.float32)
    traj = transition({"big": big, "other": big}, shape=(50, 8))
    fn = R.chain(
        R.weighted_sum(("big", "other")), terms=[("normalize", R.normalize_terms(("big",)))]
    )
    reward, state, info = run(fn, {"combine": {"big": 1.0, "other": 0.0}, "normalize": {}}, traj)
    assert np.std(np.asarray(info["big"])) == pytest.approx(1.0, rel=0.05)
    assert float(state["normalize"].count) == big.size


def test_clip():
    fn = R.clip()
    out, _, _ = fn.apply(
        {"low": -1.0, "high": 2.0}, fn.init(None, (), 1), jnp.asarray([-5.0, 0.5, 9.0]), None
    )
    np.testing.assert_allclose(out, [-1.0, 0.5, 2.0])


def test_for_batch_swaps_per_env_parts_only():
    fn = R.chain(
        R.gated_outcome("s", ("s",)), shaping=[("bounded", R.bounded("episode", running=True))]
    )
    trained = fn.init(jax.random.key(0), ("s",), 8)
    trained["bounded"] = trained["bounded"]._replace(reference=jnp.float32(3.0))
    small = R.for_batch(trained, fn.init(jax.random.key(0), ("s",), 2))
    assert small["bounded"].episode_sum.value.shape == (2,)
    assert small["combine"].last_gate.value.shape == (2,)
    assert float(small["bounded"].reference) == 3.0


# ----------------------------------------------------------------------------- building blocks


def test_tolerance_follows_dm_control():
    x = jnp.asarray([0.5, 1.0, 2.0, 3.0])
    hard = T.tolerance(x, lower=0.0, upper=1.0)
    np.testing.assert_allclose(hard, [1, 1, 0, 0])
    for sigmoid in T.SIGMOIDS:
        soft = T.tolerance(
            x, lower=0.0, upper=1.0, margin=1.0, sigmoid=sigmoid, value_at_margin=0.1
        )
        np.testing.assert_allclose(soft[:2], [1.0, 1.0])
        np.testing.assert_allclose(soft[2], 0.1, rtol=1e-5, err_msg=sigmoid)  # at the margin
        assert float(soft[3]) <= float(soft[2])
    g = T.tolerance(jnp.asarray(1.5), 0.0, 1.0, margin=1.0, sigmoid="gaussian")
    np.testing.assert_allclose(g, np.exp(-0.5 * (0.5 * np.sqrt(-2 * np.log(0.1))) ** 2), rtol=1e-6)
    with pytest.raises(ValueError, match="unknown sigmoid"):
        T.tolerance(x, sigmoid="nope")


def test_term_blocks():
    np.testing.assert_allclose(
        T.exp_kernel(jnp.asarray([[0.0, 0.0], [1.0, 1.0]]), 2.0), [1.0, np.exp(-1.0)], rtol=1e-6
    )
    np.testing.assert_allclose(T.control_cost(jnp.asarray([1.0, -2.0])), 5.0)
    np.testing.assert_allclose(T.contact_cost(jnp.asarray([3.0, 4.0]), max_cost=10.0), 10.0)
    np.testing.assert_allclose(T.distance(jnp.asarray([0.0, 3.0]), jnp.asarray([4.0, 0.0])), 5.0)
    np.testing.assert_allclose(T.progress(2.0, 1.5), 0.5)
    np.testing.assert_allclose(T.success(jnp.asarray([0.01, 0.1]), 0.05), [1.0, 0.0])
    np.testing.assert_allclose(T.alive_bonus(jnp.asarray(True)), 1.0)


def test_weight_parameterizations():
    traj = transition({"a": np.ones((2, 3)), "b": np.ones((2, 3))}, shape=(2, 3))
    weights = {"a": 2.0, "b": -0.5}
    for param in (
        W.free(),
        W.fixed_sign({"a": 1.0, "b": -1.0}),
        W.log_scale({"a": 1.0, "b": -1.0}),
        W.simplex({"a": 1.0, "b": -1.0}, 2.5),
    ):
        decoded = param.decode(jax.tree.map(jnp.asarray, param.encode(weights)), traj)
        np.testing.assert_allclose([decoded["a"], decoded["b"]], [2.0, -0.5], rtol=1e-5)
    signed = W.fixed_sign({"a": 1.0, "b": -1.0})
    far = signed.decode({"a": jnp.float32(-30.0), "b": jnp.float32(30.0)}, traj)
    assert float(far["a"]) >= 0 and float(far["b"]) <= 0  # a sign never flips
    # log_scale: the sign never flips, and one step in raw is the same factor at any scale.
    logs = W.log_scale({"a": 1.0, "b": -1.0})
    for weight in (1e-3, 1.0, 100.0):
        raw = jax.tree.map(jnp.asarray, logs.encode({"a": weight, "b": -weight}))
        stepped = logs.decode(jax.tree.map(lambda x: x + 0.5, raw), traj)
        np.testing.assert_allclose(float(stepped["a"]) / weight, np.exp(0.5), rtol=1e-5)
        assert float(stepped["b"]) < 0
        grad = jax.grad(lambda r: logs.decode(r, traj)["a"])(raw)["a"]
        np.testing.assert_allclose(float(grad), weight, rtol=1e-5)  # dw/draw = w
    with pytest.raises(ValueError, match="does not have sign"):
        logs.encode({"a": -1.0, "b": -1.0})
    simplex = W.simplex({"a": 1.0, "b": -1.0}, 2.5)
    moved = simplex.decode({"a": jnp.float32(3.0), "b": jnp.float32(-1.0)}, traj)
    assert abs(float(moved["a"])) + abs(float(moved["b"])) == pytest.approx(2.5)
    head = W.linear_head(("a",), (), 2, lipschitz_coef=1.0, lipschitz_k=1.0)
    raw = jax.tree.map(jnp.asarray, head.encode({"a": 2.0}))
    np.testing.assert_allclose(head.decode(raw, traj)["a"], np.full((2, 3), 2.0))
    assert float(head.penalty(raw, traj)) == 0.0
    raw["kernel"]["a"] = jnp.asarray([3.0, 4.0])  # slope 5 > 1
    assert float(head.penalty(raw, traj)) == pytest.approx(16.0, rel=1e-5)
    np.testing.assert_allclose(
        head.decode(raw, traj)["a"], 2.0 + traj.obs @ raw["kernel"]["a"], rtol=1e-6
    )


# ----------------------------------------------------------------------------- gradients


def _grad_cases():
    rng = np.random.default_rng(3)
    positive = lambda: rng.uniform(0.2, 0.9, size=(5, 2)).astype(np.float32)
    traj = transition(
        {"a": positive(), "b": positive(), "c": rng.normal(size=(5, 2))},
        signals={"x": rng.normal(size=(5, 2))},
        next_signals={"x": rng.normal(size=(5, 2))},
        terminated=rng.uniform(size=(5, 2)) < 0.2,
        truncated=rng.uniform(size=(5, 2)) < 0.2,
        shape=(5, 2),
    )
    sum_ab = {"a": 0.7, "b": 1.3}
    cases = {
        "weighted_sum": (R.weighted_sum(("a", "b", "c")), {"a": 0.7, "b": 1.3, "c": -0.4}),
        "product": (
            R.product(("c",), ("a", "b")),
            {"progress": {"c": 1.5}, "exponents": {"a": 1.2, "b": 0.8}},
        ),
        "geometric_mean": (R.geometric_mean(("a", "b")), sum_ab),
        "gated_soft": (
            R.gated([("a",), ("b", "c")], soft=True),
            {
                "levels": [{"a": 1.0}, {"b": 0.5, "c": 0.3}],
                "thresholds": [0.5, 0.0],
                "temperature": 0.2,
            },
        ),
        "gated_outcome_soft": (
            R.gated_outcome("a", ("b", "c"), aggregate="max", soft=True),
            {
                "immediate": {"b": 1.0, "c": 0.5},
                "outcome_weight": 2.0,
                "threshold": 0.6,
                "temperature": 0.3,
            },
        ),
        "fixed_sign": (
            R.weighted_sum(("a", "c"), W.fixed_sign({"a": 1.0, "c": -1.0})),
            {"a": 0.3, "c": -0.2},
        ),
        "simplex": (
            R.weighted_sum(("a", "c"), W.simplex({"a": 1.0, "c": -1.0}, 1.0)),
            {"a": 0.3, "c": -0.2},
        ),
        "linear_head": (
            R.weighted_sum(("a",), W.linear_head(("a",), ("x",), 1)),
            {"bias": {"a": 0.5}, "kernel": {"a": np.asarray([0.3], np.float32)}},
        ),
        "potential_chain": (
            R.chain(
                R.weighted_sum(("a",)),
                shaping=[
                    ("potential", R.potential_based(R.signal_potential(("x",)))),
                    ("bounded", R.bounded("step")),
                ],
            ),
            {
                "combine": {"a": 1.0},
                "potential": {"potential": {"coef": {"x": 0.5}}, "scale": 0.8, "final_scale": 1.0},
                "bounded": {"k": 1.5, "reference": 0.1, "momentum": 0.9, "dense_weight": 0.0},
            },
        ),
        "learned_potential": (
            R.chain(
                R.weighted_sum(("a",)),
                shaping=[
                    ("potential", R.potential_based(R.linear_potential(()))),
                    ("bounded", R.bounded("episode")),
                ],
            ),
            {
                "combine": {"a": 1.0},
                "potential": {
                    "potential": {"kernel": np.asarray([0.2, -0.1], np.float32), "bias": 0.1},
                    "scale": 1.0,
                    "final_scale": 1.0,
                },
                "bounded": {"k": 0.7, "reference": 0.5, "momentum": 0.9, "dense_weight": 0.3},
            },
        ),
    }
    return traj, cases


GRAD_TRAJ, GRAD_CASES = _grad_cases()


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_every_combination_is_differentiable_in_its_params(name):
    fn, params = GRAD_CASES[name]
    if name in ("fixed_sign", "simplex"):
        param = fn.penalty  # unused; encode the user weights into raw params first
        del param
        spec_param = (
            W.fixed_sign({"a": 1.0, "c": -1.0})
            if name == "fixed_sign"
            else W.simplex({"a": 1.0, "c": -1.0}, 0.5)
        )
        params = spec_param.encode(params)
    params = jax.tree.map(
        lambda x: jnp.asarray(x, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32), params
    )
    state = fn.init(jax.random.key(0), ("a", "b", "c"), 2)
    weights = jnp.asarray(np.random.default_rng(4).normal(size=(5, 2)), jnp.float32)

    def objective(p):
        reward, _, _ = fn.apply(p, state, GRAD_TRAJ, gamma=0.9)
        return jnp.sum(reward * weights)

    grads = jax.grad(objective)(params)
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads))
    check_grads(objective, (params,), order=1, modes=("rev",), atol=2e-2, rtol=2e-2, eps=1e-3)


# ----------------------------------------------------------------------------- learner


def test_one_compiled_train_step_serves_any_reward_params():
    import pathlib
    import tempfile

    from rlx.rewards import spec as reward_spec

    text = """
env: {name: pendulum, params: {episode_length: 16}}
reward:
  weights: {angle_cost: -1.0, velocity_cost: -0.1}
  combine: sum
  normalize: {terms: [angle_cost]}
  shaping:
    - potential: {signals: {uprightness: 1.0}, decay_updates: 5, final_scale: 0.0}
    - bounded: {mode: episode, running: true, dense_weight: 0.5}
    - clip: {low: -5, high: 5}
"""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "r.yaml"
        path.write_text(text)
        config = build_lib.load(path)
    env = envs.make("pendulum", episode_length=16)
    fn, params = reward_spec.build(config.reward, env)
    static = ppo.PPOStatic(
        num_envs=4,
        unroll_length=8,
        num_minibatches=2,
        num_epochs=1,
        total_iterations=10,
        policy_hidden=(8,),
        value_hidden=(8,),
        num_eval_envs=2,
    )
    agent = ppo.make_ppo(static, env, fn)

    def hp(reward):
        return ppo.make_hparams(
            reward,
            learning_rate=3e-4,
            entropy_cost=0.0,
            value_cost=0.5,
            clip_epsilon=0.2,
            gamma=0.99,
            gae_lambda=0.95,
            max_grad_norm=0.5,
        )

    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, hparams):
        return agent.train_step(state, hparams)

    state = agent.init(jax.random.key(0), hp(params).reward_params)
    other = jax.tree.map(lambda x: x * 0.5, params)
    means = []
    for p in (params, other):
        new_state, metrics = step(state, hp(p))
        means.append(float(metrics["train/reward_mean"]))
        assert "episode_total/reward/potential/shaping" in metrics
        assert "episode_total/reward/bounded/score" in metrics
    assert means[0] != means[1]
    # Evaluation runs on its own batch size with the trained running statistics.
    out = jax.jit(agent.evaluate)(new_state, hp(params), jax.random.key(1))
    assert np.isfinite(float(out["eval/return"]))
