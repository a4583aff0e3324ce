"""Bilevel reward optimisation: the estimators against finite differences and closed forms,
and the PPO meta-learners on a probe with a misleading auxiliary term."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rlx import envs, meta
from rlx.learn import optim, ppo
from rlx.meta import grads, inner
from rlx.rewards import weighted_sum

# A softmax bandit: exact expected rewards, so the outer objective after k inner steps is a
# smooth deterministic function of phi (the auxiliary's weight) and finite differences apply.
R_PRIMARY = jnp.array([1.0, 0.2, -0.5, 0.3])
R_AUX = jnp.array([-0.4, 1.0, 0.6, 0.0])


def inner_loss(theta, phi):
    pi = jax.nn.softmax(theta)
    entropy = -jnp.sum(pi * jnp.log(pi))
    return -jnp.sum(pi * (R_PRIMARY + phi * R_AUX)) - 0.05 * entropy


def outer_objective(theta):
    return jnp.sum(jax.nn.softmax(theta) * R_PRIMARY)


def bandit_step(carry, phi):
    """One inner step with rlx's PPO optimizer (exact derivative, through Adam's moments)."""
    theta, opt_state = carry
    opt = optim.ppo_optimizer(10.0, 0.1, exact=True)
    updates, opt_state = opt.update(jax.grad(inner_loss)(theta, phi), opt_state, theta)
    return (optax.apply_updates(theta, updates), opt_state), None


def objective_after(phi, k, remat, warm):
    """J_p(theta_k(phi)), starting from a warm optimizer state (3 steps at phi = 0.3)."""
    theta = jnp.array([0.1, -0.2, 0.3, 0.0])
    carry = (theta, optim.ppo_optimizer(10.0, 0.1).init(theta))
    if warm:
        carry, _ = grads.unroll(bandit_step, carry, jnp.float32(0.3), 3, remat=False)
    (theta, _), _ = grads.unroll(bandit_step, carry, phi, k, remat=remat)
    return outer_objective(theta)


@pytest.mark.parametrize("k,remat", [(1, False), (5, False), (5, True), (20, True)])
def test_unrolled_meta_gradient_matches_finite_differences(k, remat):
    """One-step (k = 1) and truncated unrolled meta-gradients, Adam update included, against
    central differences of the outer objective after k inner steps (float32, eps 1e-2)."""
    phi = jnp.float32(0.7)
    f = jax.jit(functools.partial(objective_after, k=k, remat=remat, warm=True))
    grad = jax.grad(f)(phi)
    eps = 1e-2
    fd = (f(phi + eps) - f(phi - eps)) / (2 * eps)
    assert abs(float(grad)) > 1e-3, "the test problem must have a nonzero meta-gradient"
    np.testing.assert_allclose(grad, fd, rtol=2e-2, atol=1e-4)


def test_bootstrapped_meta_gradient_matches_finite_differences():
    """BMG on the bandit: theta_K(phi) after K = 2 Adam steps, the target L = 3 steps further
    plus a step up the primary objective, held fixed; d/dphi KL(pi_target || pi_theta_K(phi))
    against central differences of that KL with the target frozen at phi."""
    theta0 = jnp.array([0.1, -0.2, 0.3, 0.0])
    warm = (theta0, optim.ppo_optimizer(10.0, 0.1).init(theta0))
    warm, _ = grads.unroll(bandit_step, warm, jnp.float32(0.3), 3, remat=False)

    def forward(phi):
        carry, _ = grads.unroll(bandit_step, warm, phi, 2, remat=False)
        return carry[0], carry

    def extend(theta_k, carry, phi):
        (theta, _), _ = grads.unroll(bandit_step, carry, phi, 3, remat=False)
        return theta + 0.5 * jax.grad(outer_objective)(theta), None

    def kl(target, theta):
        p, q = jax.nn.log_softmax(target), jax.nn.log_softmax(theta)
        return jnp.sum(jnp.exp(p) * (p - q))

    phi = jnp.float32(0.7)
    d_phi, mu, target, _ = grads.bootstrapped_grad(
        forward,
        phi,
        lambda th, carry: extend(th, carry, jax.lax.stop_gradient(phi)),
        lambda t, th, aux, extra: kl(t, th),
    )
    frozen = lambda ph: kl(target, forward(ph)[0])
    eps = 1e-2
    fd = (frozen(phi + eps) - frozen(phi - eps)) / (2 * eps)
    assert float(mu) > 1e-4 and abs(float(d_phi)) > 1e-4, "the target must differ from theta_K"
    np.testing.assert_allclose(d_phi, fd, rtol=2e-2, atol=1e-5)
    np.testing.assert_allclose(mu, frozen(phi), rtol=1e-6)


@pytest.mark.parametrize("which", ["categorical", "tanh_normal"])
def test_distribution_kl_is_the_closed_form(which):
    """The matching loss's KL against a Monte-Carlo estimate E_p[log p - log q]."""
    from rlx.learn import distributions

    dist = (
        distributions.categorical(3)
        if which == "categorical"
        else distributions.tanh_normal(2, -1.0, 1.0)
    )
    if which == "categorical":
        p, q = jnp.array([0.5, -0.2, 1.0]), jnp.array([0.0, 0.3, -0.4])
    else:
        p, q = jnp.array([0.3, -0.5, -0.2, 0.1]), jnp.array([0.1, 0.2, 0.3, -0.4])
    samples = jax.vmap(lambda k: dist.sample(p, k))(jax.random.split(jax.random.key(0), 200_000))
    mc = jnp.mean(jax.vmap(lambda a: dist.log_prob(p, a) - dist.log_prob(q, a))(samples))
    np.testing.assert_allclose(dist.kl(p, q), mc, rtol=2e-2)
    np.testing.assert_allclose(dist.kl(p, p), 0.0, atol=1e-6)


def test_remat_changes_memory_not_the_gradient():
    f = lambda remat: jax.grad(functools.partial(objective_after, k=8, remat=remat, warm=True))
    np.testing.assert_allclose(f(True)(0.5), f(False)(0.5), rtol=1e-5)


def test_implicit_gradient_matches_closed_form_and_converges():
    """Quadratic inner problem L_in = 1/2 t'At - t'B phi (optimum A^-1 B phi), outer
    L_out = 1/2 |t - c|^2: dL_out/dphi = B' A^-1 (t* - c). The Neumann estimate converges to it
    as the number of terms K grows (alpha = 0.3 < 2 / lambda_max(A))."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    a = jnp.asarray(q @ np.diag([1.0, 1.5, 2.0, 2.5, 3.0]) @ q.T, jnp.float32)
    b = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    c = jnp.asarray(rng.normal(size=5), jnp.float32)
    phi = {"w": jnp.asarray([0.5, -1.0, 2.0], jnp.float32)}
    theta_star = {"t": jnp.linalg.solve(a, b @ phi["w"])}
    inner_grad = lambda th, ph: {"t": a @ th["t"] - b @ ph["w"]}
    outer_grad = {"t": theta_star["t"] - c}
    exact = b.T @ jnp.linalg.solve(a, theta_star["t"] - c)
    errors = []
    for k in (0, 2, 5, 10, 40):
        est = grads.implicit_grad(inner_grad, theta_star, phi, outer_grad, num_terms=k, alpha=0.3)
        errors.append(float(jnp.linalg.norm(est["w"] - exact) / jnp.linalg.norm(exact)))
    assert all(e2 < e1 for e1, e2 in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 1e-4, errors


def test_neumann_series_is_the_inverse_hessian_product():
    h = jnp.diag(jnp.array([1.0, 2.0]))
    g = jnp.array([1.0, 1.0])
    p = grads.neumann_inverse_hvp(lambda v: h @ v, g, 60, 0.4)
    np.testing.assert_allclose(p, jnp.linalg.solve(h, g), rtol=1e-5)


# PPO meta-learners on probe/lure: primary +1 for action 1, a lure +1 for action 0 at weight 2.


def lure_agent(**static) -> ppo.PPO:
    env = envs.make("probe/lure")
    ppo_static = ppo.PPOStatic(
        num_envs=8,
        unroll_length=8,
        num_minibatches=2,
        num_epochs=2,
        total_iterations=100,
        policy_hidden=(16,),
        value_hidden=(16,),
        normalize_observations=False,
        anneal_learning_rate=False,
        # With one state, per-batch advantage normalisation makes the update invariant to the
        # lure's weight while it stays above 1 (rewards {1, w} normalise to the same values),
        # so the weight would be invisible to any meta-gradient.
        normalize_advantages=False,
        **static,
    )
    return ppo.make_ppo(ppo_static, env, weighted_sum(("reward", "lure")))


def lure_meta(method: str, **static):
    agent = lure_agent()
    hp = ppo.make_hparams(
        {"reward": 1.0, "lure": 2.0},
        # A slow inner learner and a fast outer one: the lure must lose before the policy
        # collapses onto action 0 (then every advantage in a batch is equal and no gradient,
        # inner or outer, is left).
        learning_rate=2e-3,
        entropy_cost=0.01,
        value_cost=0.5,
        clip_epsilon=0.2,
        gamma=0.9,
        gae_lambda=0.95,
        max_grad_norm=1.0,
    )
    mh = meta.make_meta_hparams(
        outer_learning_rate=0.2,
        outer_gamma=0.9,
        outer_lambda=0.95,
        l2=0.0,
        gamma_l2=0.0,
        critic_learning_rate=1e-2,
        neumann_alpha=0.1,
        perturb_scale=0.5,
        init_scale=1.5,  # population: members must start on both sides of 1 to find it
    )
    settings = dict(method=method, learn=("lure",), critic_hidden=(16,), population_size=4)
    m = meta.make(agent, meta.MetaStatic(**(settings | static)), hp.reward_params)
    return m, meta.Hps(hp, mh)


METHOD_CASES = [
    "one_step",
    "implicit",
    "unrolled",
    "population",
    "bmg",
    pytest.param("hybrid", marks=pytest.mark.slow),  # 17 s cold: population and one_step stay
]


@pytest.mark.parametrize("method", METHOD_CASES)
def test_harmful_auxiliary_weight_goes_down_and_compiles_once(method):
    static = {"inner_iterations": 2 if method == "unrolled" else 1}
    if method == "bmg":  # one_step matched to a target 2 updates further (Flennerhag et al.)
        method, static = "one_step", {"bootstrap_steps": 2}
    if method == "hybrid":  # a population whose members follow one_step between exploits
        method, static = "population", {"member_gradient": "one_step", "inner_iterations": 3}
    m, hps = lure_meta(method, **static)
    state = jax.jit(m.init)(jax.random.key(0), hps)
    traced = chex.assert_max_traces(n=1)(lambda s, h: m.chunk(s, h, 15))
    chunk = jax.jit(traced)
    chex.clear_trace_counter()
    for _ in range(2):  # a second call with a moved phi reuses the compiled program
        state, metrics = chunk(state, hps)
    phi = m.members_of(state)[1] if method == "population" else state.phi
    lure = phi.reward_params["lure"]
    reward = phi.reward_params["reward"]
    if method == "population":
        # Exploit/explore keeps the members whose lure weight let them pick action 1.
        best = int(jnp.argmax(state.fitness))
        assert float(lure[best]) < float(reward[best]), (lure, reward)
        assert float(state.fitness[best]) > 0.8
        if m.static.member_gradient != "none":  # members moved by their gradient too
            assert "meta/grad_norm" in metrics and "weights/lure" in metrics
            assert int(state.members.iteration[0]) == 90  # 30 exploits x 3 outer steps
    else:
        assert float(lure) < 1.5, f"{method}: lure weight {float(lure)} did not go down from 2"
        np.testing.assert_allclose(reward, 1.0)  # not in meta.learn: never moves
        assert np.all(np.isfinite(np.asarray(metrics["meta/grad_norm"])))
    if m.static.bootstrap_steps:  # 1 + 2 PPO iterations per meta-iteration, 30 of them
        assert int(state.train.iteration) == 90
        assert np.all(np.asarray(metrics["meta/bootstrap_kl"]) > 0)
    assert "meta/gamma" in metrics


def test_learned_discount_moves_and_is_penalised():
    m, (hp, mh) = lure_meta("one_step", learn_gamma=True)
    state = jax.jit(m.init)(jax.random.key(1), meta.Hps(hp, mh))
    np.testing.assert_allclose(jax.nn.sigmoid(state.phi.gamma_logit), 0.9, rtol=1e-5)
    chunk = jax.jit(lambda s, h: m.chunk(s, h, 10))
    strong = mh.replace(gamma_l2=jnp.float32(10.0), l2=jnp.float32(0.0))
    after, metrics = chunk(state, meta.Hps(hp, strong))
    # gamma_l2 * gamma_phi pushes the discount down (BARFI's penalty)
    assert float(jax.nn.sigmoid(after.phi.gamma_logit)) < 0.9
    assert metrics["meta/gamma"].shape == (10,)


def test_learn_mask_names_unknown_paths():
    params = {"combine": {"alive": 1.0, "aux": 2.0}, "potential": {"coef": {"h": 1.0}}}
    mask = meta.learn_mask(params, ("combine/aux", "potential"))
    assert mask == {"combine": {"alive": False, "aux": True}, "potential": {"coef": {"h": True}}}
    with pytest.raises(ValueError, match=r"meta.learn\[0\].*combine/alive, combine/aux"):
        meta.learn_mask(params, ("combine/nope",))


def test_grad_steps_keeps_the_update_and_cuts_the_gradient():
    """The meta-learners' inner update with grad_steps = N runs PPO's minibatches in PPO's
    order (the same new params as ``ppo.update``) and lets the reward's gradient through the
    last N of the 4 steps only."""
    _, (hp, _) = lure_meta("one_step")
    agent = lure_agent()
    state, batch = agent.collect(agent.init(jax.random.key(3), hp.reward_params))
    outputs = {}
    for steps in (0, 1):
        sgd = inner.make_sgd(steps, exact=False)

        def new_policy(lure, sgd=sgd):
            params = {"reward": hp.reward_params["reward"], "lure": lure}
            hparams = hp.replace(reward_params=params)
            return ppo.update(agent, state, batch, hparams, sgd=sgd)[0].params["policy"]

        params = jax.jit(new_policy)(hp.reward_params["lure"])
        grad = jax.jit(jax.grad(lambda w, f=new_policy: optax.tree_utils.tree_sum(f(w))))(
            hp.reward_params["lure"]
        )
        outputs[steps] = (params, grad)
    plain = jax.jit(lambda: agent.update(state, batch, hp)[0].params["policy"])()
    chex.assert_trees_all_equal(outputs[0][0], plain)
    chex.assert_trees_all_close(outputs[0][0], outputs[1][0], atol=1e-6)
    assert float(outputs[0][1]) != 0.0 and float(outputs[1][1]) != 0.0
    assert not np.isclose(float(outputs[0][1]), float(outputs[1][1]))


def test_exact_inner_gradient_keeps_the_update_and_changes_only_the_derivative():
    """exact_gradient differentiates Adam's second moment and the clipping norm too: the same
    new params as PPO's own update, another (nonzero) meta-gradient."""
    _, (hp, _) = lure_meta("one_step")
    agent = lure_agent()
    state, batch = agent.collect(agent.init(jax.random.key(3), hp.reward_params))

    def new_policy(lure, sgd):
        hparams = hp.replace(reward_params={"reward": hp.reward_params["reward"], "lure": lure})
        return ppo.update(agent, state, batch, hparams, sgd=sgd)[0].params["policy"]

    lure = hp.reward_params["lure"]
    out = {}
    for exact in (False, True):
        f = functools.partial(new_policy, sgd=inner.make_sgd(0, exact=exact))
        grad = jax.grad(lambda w, f=f: optax.tree_utils.tree_sum(f(w)))
        out[exact] = (jax.jit(f)(lure), float(jax.jit(grad)(lure)))
    chex.assert_trees_all_close(out[False][0], out[True][0], atol=1e-6)
    assert out[True][1] != 0.0 and not np.isclose(out[True][1], out[False][1])


def test_outer_step_schedules_and_gradient_clipping():
    """The outer step decays from outer_learning_rate after the warmup to outer_final_fraction
    of it at the last meta-iteration (closed forms), and clipping caps the global norm."""
    mh = meta.make_meta_hparams(
        outer_learning_rate=0.2, outer_gamma=0.9, outer_lambda=0.95, l2=0.0, gamma_l2=0.0,
        critic_learning_rate=1e-2, neumann_alpha=0.1, perturb_scale=0.5, init_scale=1.5,
        outer_final_fraction=0.25,
    )  # fmt: skip
    size = lambda schedule, i: float(
        meta.base.outer_step_size(
            meta.MetaStatic(outer_schedule=schedule, total_iterations=12, warmup=1), i, mh
        )
    )
    # Meta-iterations 0..11, warmup 1: the decay runs from iteration 1 (1.0) to 11 (0.25).
    assert [size("constant", i) for i in (0, 5, 11)] == pytest.approx([0.2] * 3)
    assert [size("linear", i) for i in (0, 1, 6, 11)] == pytest.approx(
        [0.2, 0.2, 0.2 * (1 - 0.75 * 0.5), 0.05]
    )
    assert [size("cosine", i) for i in (1, 6, 11)] == pytest.approx([0.2, 0.2 * 0.625, 0.05])
    grads = {"a": jnp.asarray([3.0, 4.0]), "b": jnp.asarray(12.0)}  # norm 13
    clipped = meta.base.clip_outer_gradient(grads, jnp.float32(1.3))
    np.testing.assert_allclose(clipped["a"], [0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(clipped["b"], 1.2, rtol=1e-6)
    same = meta.base.clip_outer_gradient(grads, jnp.float32(0.0))  # 0: off
    np.testing.assert_array_equal(same["a"], grads["a"])


def test_a_linear_outer_schedule_to_zero_stops_phi_at_the_last_step():
    m, (hp, mh) = lure_meta("one_step", outer_schedule="linear", total_iterations=6)
    mh = mh.replace(outer_final_fraction=jnp.float32(0.0), outer_max_grad_norm=jnp.float32(1.0))
    state = jax.jit(m.init)(jax.random.key(0), meta.Hps(hp, mh))
    step = jax.jit(m.step)
    lures = []
    for _ in range(6):
        state, metrics = step(state, meta.Hps(hp, mh))
        lures.append(float(state.phi.reward_params["lure"]))
    assert float(metrics["meta/outer_step_size"]) == 0.0
    assert lures[-1] == lures[-2]  # the last step is zero
    assert lures[0] != 2.0  # the first was not


def test_population_fitness_is_the_mean_over_a_window_of_recent_returns():
    from rlx.meta import population

    history = jnp.full((2, 3), jnp.nan)
    for value, new in ((1.0, (True, False)), (2.0, (True, False)), (4.0, (True, True))):
        history = population._push(history, jnp.full((2,), value), jnp.asarray(new))
    np.testing.assert_allclose(population._window_mean(history), [7 / 3, 4.0])
    history = population._push(history, jnp.asarray([10.0, 0.0]), jnp.asarray([True, False]))
    np.testing.assert_allclose(population._window_mean(history), [16 / 3, 4.0])  # 1 dropped
    assert float(population._window_mean(jnp.full((1, 3), jnp.nan))[0]) == -np.inf
    pop, hps = lure_meta("population", fitness_window=3)
    state = jax.jit(pop.init)(jax.random.key(0), hps)
    assert state.history.shape == (4, 3)
    state, _ = jax.jit(lambda s, h: pop.chunk(s, h, 4))(state, hps)
    recorded = np.isfinite(np.asarray(state.history))
    assert recorded.any()
    np.testing.assert_allclose(
        state.fitness, population._window_mean(state.history), rtol=1e-6
    )  # fitness is the window mean of the (copied) history


def test_search_radius_boxes_phi_and_a_replaced_member_can_resample_in_the_box():
    """The learned leaf (lure, 2.0 in the config) stays within search_radius of 2.0 under the
    gradient methods and the population; resample_probability 1 redraws a replaced member's
    phi in the box instead of perturbing its copy, and 0 keeps the copy (perturb_scale 0)."""
    from rlx.meta import population

    radius = 0.25
    m, (hp, mh) = lure_meta("one_step")
    mh = mh.replace(search_radius=jnp.float32(radius), outer_learning_rate=jnp.float32(1.0))
    state = jax.jit(m.init)(jax.random.key(0), meta.Hps(hp, mh))
    state, _ = jax.jit(lambda s, h: m.chunk(s, h, 10))(state, meta.Hps(hp, mh))
    lure = float(state.phi.reward_params["lure"])
    assert lure == pytest.approx(2.0 - radius), lure  # pushed down to the box's edge
    np.testing.assert_allclose(state.phi.reward_params["reward"], 1.0)  # not learned

    pop, (hp, mh) = lure_meta("population", init_distribution="uniform")
    mh = mh.replace(search_radius=jnp.float32(radius), perturb_scale=jnp.float32(5.0))
    state = jax.jit(pop.init)(jax.random.key(1), meta.Hps(hp, mh))
    lures = np.asarray(state.phi.reward_params["lure"])
    assert lures[0] == 2.0 and len(set(lures.tolist())) == 4  # member 0 at the start
    assert np.all(np.abs(lures - 2.0) <= radius + 1e-6), lures
    source, replaced = jnp.asarray([0, 1, 0, 0]), jnp.asarray([False, False, True, True])
    explore = lambda p: population._explore(
        pop,
        state.phi,
        source,
        replaced,
        meta.Hps(hp, mh.replace(**p)),
        jax.random.key(2),
        state.iteration,
    )
    noisy = explore({"perturb_scale": 5.0, "resample_probability": 0.0}).reward_params
    assert np.all(np.abs(np.asarray(noisy["lure"]) - 2.0) <= radius + 1e-6)  # clipped to the box
    assert len(set(np.asarray(noisy["lure"])[2:].tolist())) == 2  # each its own noise
    kept = explore({"perturb_scale": 0.0, "resample_probability": 0.0})
    drawn = explore({"perturb_scale": 0.0, "resample_probability": 1.0})
    copy = np.asarray(state.phi.reward_params["lure"])[0]
    np.testing.assert_array_equal(kept.reward_params["lure"][2:], [copy, copy])
    fresh = np.asarray(drawn.reward_params["lure"])
    assert fresh[2] != copy and fresh[3] != copy and fresh[2] != fresh[3]
    assert np.all(np.abs(fresh - 2.0) <= radius + 1e-6)
    np.testing.assert_array_equal(fresh[:2], np.asarray(state.phi.reward_params["lure"])[:2])


def test_resample_until_stops_resampling_after_that_fraction_of_the_run():
    """resample_until 0.5 of a 10-meta-iteration run: a replaced member redraws its phi at
    meta-iteration 4 and perturbs its copy from 5 on (perturb_scale 0: keeps it exactly)."""
    from rlx.meta import population

    pop, (hp, mh) = lure_meta("population", init_distribution="uniform", total_iterations=10)
    mh = mh.replace(
        search_radius=jnp.float32(0.25),
        perturb_scale=jnp.float32(0.0),
        resample_probability=jnp.float32(1.0),
        resample_until=jnp.float32(0.5),
    )
    state = jax.jit(pop.init)(jax.random.key(1), meta.Hps(hp, mh))
    source, replaced = jnp.asarray([0, 1, 0, 0]), jnp.asarray([False, False, True, True])
    explore = jax.jit(
        lambda i: population._explore(
            pop, state.phi, source, replaced, meta.Hps(hp, mh), jax.random.key(2), i
        ).reward_params["lure"]
    )
    copy = float(state.phi.reward_params["lure"][0])
    early, late = np.asarray(explore(jnp.int32(4))), np.asarray(explore(jnp.int32(5)))
    assert early[2] != copy and early[3] != copy  # redrawn in the box
    np.testing.assert_array_equal(late[2:], [copy, copy])  # the copy, kept
    np.testing.assert_array_equal(late[:2], np.asarray(state.phi.reward_params["lure"])[:2])


def test_keep_start_holds_member_0_at_the_start_and_never_replaces_it():
    """keep_start: member 0, the worst by fitness, is not among the replaced (the next worst
    are), may be copied as a winner, keeps phi_0 through exploit/explore steps (perturb_scale
    5) and, gone non-finite, copies a winner's learner but keeps phi_0. Without it member 0,
    the worst, is replaced."""
    from rlx.meta import population

    fitness = jnp.asarray([-5.0, 1.0, 3.0, 2.0])
    finite = jnp.ones((4,), bool)
    for keep, loser in ((True, 1), (False, 0)):
        pop, _ = lure_meta("population", keep_start=keep)
        source, replaced, *_ = population._choose(pop, jax.random.key(0), fitness, finite)
        assert np.flatnonzero(np.asarray(replaced)).tolist() == [loser]
        assert int(source[loser]) == 2  # the one winner (4 x 0.25 replaced: 1)
    pop, hps = lure_meta("population", keep_start=True)
    _, replaced, *_ = population._choose(pop, jax.random.key(0), fitness, finite.at[0].set(False))
    assert np.asarray(replaced).tolist() == [True, True, False, False]  # non-finite: replaced
    state = jax.jit(pop.init)(jax.random.key(1), hps)
    state, _ = jax.jit(lambda s, h: pop.chunk(s, h, 6))(state, hps)
    lures = np.asarray(state.phi.reward_params["lure"])
    assert lures[0] == 2.0 and np.all(lures[1:] != 2.0), lures
    phi = population._explore(
        pop, state.phi, jnp.asarray([2, 2, 2, 3]), jnp.asarray([True, True, False, False]),
        hps, jax.random.key(2), state.iteration,
    )  # fmt: skip
    explored = np.asarray(phi.reward_params["lure"])
    assert explored[0] == 2.0 and explored[1] != lures[2] and explored[2] == lures[2]


def test_a_population_logs_its_best_members_effective_weights():
    """A population keeps no batch, yet a state-independent weight decodes without one: its
    metrics carry ``weights/<term>`` (w itself: under log_scale exp(phi), not phi), and a
    state-dependent one (linear_head) is left out, not decoded from a missing transition."""
    import types

    from rlx.rewards import weights as parameterizations

    pop, hps = lure_meta("population")
    state = jax.jit(pop.init)(jax.random.key(0), hps)
    _, metrics = jax.jit(pop.step)(state, hps)
    assert float(metrics["weights/lure"]) == float(metrics["phi/lure"])  # free: w = phi

    def fn(param):
        return types.SimpleNamespace(weights=lambda raw, transition: param.decode(raw, transition))

    log_scale = fn(parameterizations.log_scale({"alive": 1.0, "ctrl": -1.0}))
    raw = {"alive": jnp.log(100.0), "ctrl": jnp.log(0.01)}
    got = meta.base._effective_weights(log_scale, raw, None)
    np.testing.assert_allclose([got["alive"], got["ctrl"]], [100.0, -0.01], rtol=1e-5)
    head = parameterizations.linear_head(("alive",), (), 3)
    assert meta.base._effective_weights(fn(head), head.encode({"alive": 1.0}), None) is None
