"""``reward.code``: a user's (or a language model's) reward function, plugged in without
editing the env.

The function, in its own Python file, is pure and written for one step::

    def reward(signals, next_signals, terms, params):   # dicts of [] arrays; params: floats
        return {"upright_bonus": tolerance(next_signals["pole_angle"], -0.05, 0.05, 0.2)}

- ``mode: terms``: it returns a dict of new terms, usable in ``weights`` and ``combine`` like
  the env's own (their episode sums are logged as the weighted ``reward/<name>``);
- ``mode: reward``: it returns the reward itself, in place of ``combine`` (shaping stages still
  apply after it).

``params`` (``reward.code.params``) are traced reward params under ``params['code']``, so
they can be meta-learned (``meta.learn: [code/<name>]``), vmapped and swept. The file is
checked when the config is resolved, with ``jax.eval_shape`` on one step: its output's names,
shapes ([]) and dtypes (floating), and every signal and term it reads must exist; each problem
is one line naming the file, the line and the name. Its SHA-256 goes into the resolved config,
so resuming a run whose reward file changed is an error.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp

from rlx.core import usercode
from rlx.rewards.base import EmptyState, RewardFn

MODES = ("terms", "reward")


class RewardCodeError(ValueError):
    """A reward file that cannot be used (the message names the file and line)."""


sha256 = usercode.sha256


def load_function(path: Path, name: str):
    """The function ``name`` of the Python file ``path``."""
    try:
        fn = usercode.load(Path(path), name)
    except usercode.UserCodeError as error:
        key = "file" if error.part == "file" else "function"
        raise RewardCodeError(f"reward.code.{key}: {error}") from None
    if not callable(fn):
        raise RewardCodeError(f"reward.code.function: {path}: {name!r} is not a function")
    return fn


def check(fn, path: Path, mode: str, signals: dict, terms: dict, params: dict) -> tuple[str, ...]:
    """Runs ``fn`` abstractly on one step (``signals``/``terms``: name -> ShapeDtypeStruct);
    returns the new term names (mode terms) or (); RewardCodeError for anything wrong."""
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    abstract_params = {k: scalar for k in params}
    try:
        out = jax.eval_shape(fn, signals, signals, terms, abstract_params)
    except Exception as error:  # noqa: BLE001
        raise RewardCodeError(f"reward.code: {usercode.where(error, path)}") from None
    if mode == "reward":
        if (
            not hasattr(out, "shape")
            or out.shape != ()
            or not jnp.issubdtype(out.dtype, jnp.floating)
        ):
            raise RewardCodeError(
                f"reward.code: {path}: mode reward must return one float per step, got {out!r}"
            )
        return ()
    if not isinstance(out, dict) or not out:
        raise RewardCodeError(f"reward.code: {path}: mode terms must return a dict of new terms")
    for name, value in out.items():
        if name in terms:
            raise RewardCodeError(f"reward.code: {path}: term {name!r} is the env's already")
        if value.shape != () or not jnp.issubdtype(value.dtype, jnp.floating):
            raise RewardCodeError(
                f"reward.code: {path}: term {name!r} must be one float per step, got "
                f"{value.dtype}{list(value.shape)}"
            )
    return tuple(out)


def _per_step(fn, transition, params):
    """``fn`` over the transition's [T, B] steps."""
    step = lambda s, ns, t: fn(s, ns, t, params)
    return jax.vmap(jax.vmap(step))(transition.signals, transition.next_signals, transition.terms)


# The info key of a code term's unweighted value: the learner logs it as ``terms/<name>`` (the
# env's terms come from the transition), the other info entries as ``reward/<key>``.
TERM_PREFIX = "terms/"


def with_terms(inner: RewardFn, fn, names: tuple[str, ...]) -> RewardFn:
    """``inner`` over the env's terms plus ``fn``'s (params: ``{**inner's, 'code': {...}}``).
    Its info adds each new term's unweighted per-step value as ``terms/<name>``."""

    def init(key, term_names, num_envs):
        return inner.init(key, (*term_names, *names), num_envs)

    def split(params):
        return {k: v for k, v in params.items() if k != "code"}, params["code"]

    def apply(params, state, transition, *, gamma):
        inner_params, code_params = split(params)
        new = _per_step(fn, transition, code_params)
        extended = transition.replace(terms={**transition.terms, **new})
        reward, state, info = inner.apply(inner_params, state, extended, gamma=gamma)
        # the new terms' unweighted values, as the env's own are logged (terms/<name>)
        raw = {f"{TERM_PREFIX}{k}": jnp.asarray(v, jnp.float32) for k, v in new.items()}
        return reward, state, {**info, **raw}

    weights = None
    if inner.weights is not None:
        weights = lambda params, transition: inner.weights(split(params)[0], transition)
    return inner._replace(init=init, apply=apply, weights=weights)


def as_reward(fn) -> RewardFn:
    """``fn``'s per-step output as the combined reward (params: ``code``'s)."""

    def init(key, term_names, num_envs):
        return EmptyState()

    def apply(params, state, transition, *, gamma):
        return _per_step(fn, transition, params).astype(jnp.float32), state, {}

    return RewardFn(init=init, apply=apply)
