"""``env.name: path/to/file.py:ClassName``: a user's env, loaded from its file without
registering it.

The class follows the env protocol (``rlx.core.types.Env``, as the built-in envs do): a frozen
dataclass whose fields are its typed config (``env.params``), with ``name``,
``episode_length``, ``term_names``, ``signal_names``, an ``action_space`` and pure
``reset(key)`` and ``step(state, action)`` for one env, built with ``rlx.envs.base``'s
``make_state`` and ``transition_state``. It is checked when the config is resolved, on one
abstract reset and step (``jax.eval_shape``, nothing runs): each problem is one line naming the
file (and the line, for an error raised inside it). The file's SHA-256 is kept with the run
(``env.file_sha256``), so resuming after it changed is an error.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp

from rlx.core import usercode
from rlx.core.types import Box, Discrete, EnvState

SEPARATOR = ".py:"


class UserEnvError(ValueError):
    """A user env that cannot be used (the message names the file)."""


def is_user_env(name: str) -> bool:
    return SEPARATOR in name


def split(name: str) -> tuple[str, str]:
    """('path/to/file.py', 'ClassName') of ``env.name``."""
    path, _, class_name = name.rpartition(":")
    return path, class_name


def load_class(name: str) -> type:
    """The env class ``name`` names (``path/to/file.py:ClassName``, the path absolute or from the
    working directory), checked to be a frozen dataclass with the protocol's members."""
    path, class_name = split(name)
    path = Path(path)
    try:
        cls = usercode.load(path, class_name, what="class")
    except usercode.UserCodeError as error:
        raise UserEnvError(str(error)) from None
    if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
        raise UserEnvError(f"{path}: {class_name} must be a dataclass (its fields: env.params)")
    if not cls.__dataclass_params__.frozen:
        raise UserEnvError(
            f"{path}: {class_name} must be frozen: @dataclasses.dataclass(frozen=True)"
        )
    fields = {f.name for f in dataclasses.fields(cls)}
    members = ("name", "episode_length", "term_names", "signal_names", "action_space")
    missing = [m for m in (*members, "reset", "step") if not hasattr(cls, m) and m not in fields]
    if missing:
        raise UserEnvError(
            f"{path}: {class_name} lacks {', '.join(missing)} (see rlx.core.types.Env)"
        )
    return cls


def check(env, name: str) -> None:
    """One abstract reset and step of ``env``: the EnvState's terms and signals are the names
    the env declares, its observation a float vector, its primary one float, and the step
    keeps the state's structure (shapes and dtypes). UserEnvError for anything wrong."""
    path = Path(split(name)[0])
    prefix = f"{path}: {type(env).__name__}"
    for names in ("term_names", "signal_names"):
        value = getattr(env, names)
        if not isinstance(value, tuple) or not all(isinstance(n, str) for n in value):
            raise UserEnvError(f"{prefix}.{names} must be a tuple of names, got {value!r}")
    space = env.action_space
    if not isinstance(space, Box | Discrete):
        raise UserEnvError(f"{prefix}.action_space must be a Box or Discrete, got {space!r}")
    state = _traced(env.reset, path, "reset", jax.random.key(0))
    _check_state(state, env, prefix, "reset")
    _check_new_key(env, prefix)
    action = (
        jax.ShapeDtypeStruct((), jnp.int32)
        if isinstance(space, Discrete)
        else jax.ShapeDtypeStruct((space.size,), jnp.float32)
    )
    after = _traced(env.step, path, "step", state, action)
    _check_state(after, env, prefix, "step")
    if jax.tree.structure(after) != jax.tree.structure(state) or any(
        (a.shape, a.dtype) != (b.shape, b.dtype)
        for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(state), strict=True)
    ):
        raise UserEnvError(
            f"{prefix}.step must return a state shaped as reset's (same fields, shapes and "
            "dtypes: start from the state passed in, with rlx.envs.base.transition_state)"
        )


def _check_new_key(env, prefix: str) -> None:
    """A reset that draws from its key must keep a new one in the state it returns: the
    wrapper resets the next episode with that key, so a passed-through key it also drew from
    would start every episode of an env from the same draw. (A reset that draws nothing may
    pass its key through: the step's own splits keep the stream going.)"""
    closed, shape = jax.make_jaxpr(env.reset, return_shape=True)(jax.random.key(0))
    jaxpr, given = closed.jaxpr, closed.jaxpr.invars[0]
    marker = object()
    leaves = jax.tree.leaves(shape.replace(key=marker), is_leaf=lambda leaf: leaf is marker)
    kept = marker in leaves and jaxpr.outvars[leaves.index(marker)] is given
    drawn = any(var is given for eqn in jaxpr.eqns for var in eqn.invars)
    if kept and drawn:
        raise UserEnvError(
            f"{prefix}.reset keeps the key it was given in the state it returns: split it and "
            "keep a new one (key, init_key = jax.random.split(key)), or every episode starts "
            "from the same draw"
        )


def _traced(fn, path: Path, what: str, *args):
    try:
        return jax.eval_shape(fn, *args)
    except Exception as error:  # noqa: BLE001 (any failure to trace is the file's)
        raise UserEnvError(f"{what}: {usercode.where(error, path)}") from None


def _check_state(state, env, prefix: str, what: str) -> None:
    if not isinstance(state, EnvState):
        raise UserEnvError(
            f"{prefix}.{what} must return an EnvState (rlx.envs.base.make_state / "
            f"transition_state), got {type(state).__name__}"
        )
    for field, declared in (("terms", env.term_names), ("signals", env.signal_names)):
        got = tuple(getattr(state, field))
        if set(got) != set(declared):
            raise UserEnvError(
                f"{prefix}.{what}: its {field} {sorted(got)} are not the declared "
                f"{field[:-1]}_names {sorted(declared)}"
            )
        for key, value in getattr(state, field).items():
            if value.shape != ():
                raise UserEnvError(
                    f"{prefix}.{what}: {field[:-1]} {key!r} must be one value per step, got "
                    f"shape {list(value.shape)}"
                )
    if state.obs.ndim != 1 or not jnp.issubdtype(state.obs.dtype, jnp.floating):
        raise UserEnvError(
            f"{prefix}.{what}: obs must be a float vector, got {state.obs.dtype}"
            f"{list(state.obs.shape)}"
        )
    if state.primary.shape != ():
        raise UserEnvError(f"{prefix}.{what}: primary must be one float per step")
