"""The ``meta`` section of a config (``rlx meta``): its schema, split by field name into the
static settings (``MetaStatic``) and the traced ones (``MetaHparams``)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from rlx import meta as meta_lib
from rlx.core import schema
from rlx.core.schema import NON_NEGATIVE, OPEN_UNIT, POSITIVE, SIZES, UNIT, field, one_of
from rlx.meta.population import check_population


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    """``rlx meta``: bilevel optimisation of the reward params (see rlx/meta)."""

    method: str = field("one_step", one_of(meta_lib.METHODS))
    inner_iterations: int = field(1, POSITIVE, "PPO iterations per meta-iteration")
    remat: bool = field(True, doc="unrolled: rematerialise each inner update (jax.checkpoint)")
    grad_steps: int = field(
        0,
        NON_NEGATIVE,
        "one_step/unrolled: through the last N minibatch steps of an update (0: all)",
    )
    learn: tuple[str, ...] = field((), doc="reward param paths learned, e.g. combine/aux (all)")
    learn_gamma: bool = field(False, doc="also learn the inner discount (a logit)")
    outer_learning_rate: float = field(1e-2, POSITIVE, "Adam step on phi")
    outer_schedule: str = field(
        "constant",
        one_of(meta_lib.OUTER_SCHEDULES),
        "gradient methods: the outer step over the run (linear/cosine decay after the warmup)",
    )
    outer_final_fraction: float = field(
        0.0, UNIT, "linear/cosine: the last outer step as a fraction of the first"
    )
    outer_max_grad_norm: float = field(
        0.0, NON_NEGATIVE, "gradient methods: clip the outer gradient's norm to this (0: off)"
    )
    bootstrap_steps: int = field(
        0,
        NON_NEGATIVE,
        "one_step/unrolled: BMG, match the policy after the differentiated updates to a target "
        "L more updates ahead (0: off); a meta-iteration is inner_iterations + L PPO iterations",
    )
    bootstrap_step_size: float = field(
        8.0,
        NON_NEGATIVE,
        "BMG: the target's preconditioned steps along the primary policy gradient, in PPO "
        "learning rates (0: the L updates only, which only accelerates what phi does)",
    )
    outer_gamma: float = field(0.99, UNIT, "discount of the primary objective")
    outer_lambda: float = field(0.95, UNIT, "GAE lambda of the primary advantages")
    l2: float = field(0.0, NON_NEGATIVE, "l2 * |phi|^2 over the learned reward params")
    gamma_l2: float = field(0.0, NON_NEGATIVE, "gamma_l2 * gamma_phi (pushes gamma down)")
    critic_learning_rate: float = field(1e-3, POSITIVE, "Adam step of the primary critic")
    critic_hidden: tuple[int, ...] = field((64, 64), SIZES)
    warmup: int = field(0, NON_NEGATIVE, "meta-iterations before phi first moves")
    neumann_steps: int = field(5, NON_NEGATIVE, "implicit: Neumann series terms K")
    neumann_alpha: float = field(1e-2, POSITIVE, "implicit: Neumann step alpha")
    population_size: int = field(8, POSITIVE)
    exploit_fraction: float = field(0.25, OPEN_UNIT, "population: share replaced each time")
    fitness_window: int = field(
        1, POSITIVE, "population: fitness = mean primary return of the last N meta-iterations"
    )
    member_gradient: str = field(
        "none",
        one_of(meta_lib.MEMBER_GRADIENTS),
        "population: the meta-gradient each member follows between exploit steps (the hybrid)",
    )
    perturb_scale: float = field(0.2, NON_NEGATIVE, "population: explore noise on phi")
    init_scale: float = field(0.5, NON_NEGATIVE, "population: initial spread of phi")
    init_distribution: str = field(
        "normal",
        one_of(("normal", "uniform")),
        "population: members start at phi + N(0, init_scale^2), or uniform within search_radius",
    )
    search_radius: float = field(
        0.0,
        NON_NEGATIVE,
        "learned reward params stay within this of the config's (log_scale: weights within a "
        "factor e^R); 0: unbounded",
    )
    resample_probability: float = field(
        0.0, UNIT, "population: a replaced member redraws its phi within search_radius"
    )
    resample_until: float = field(
        1.0,
        UNIT,
        "population: resample only during this first fraction of the run's meta-iterations, "
        "then perturb only (1: throughout)",
    )
    keep_start: bool = field(
        False,
        doc="population: member 0 keeps the config's weights all run (never replaced nor "
        "moved; others may copy it), so the best member is never worse in fitness than the "
        "start's own run",
    )

    def problems(self):
        """A setting changed from its default under a method that does not take it (from the
        ``METHOD_SETTINGS`` table), a box setting without a box, and a population that cannot
        search."""
        taken = settings_taken(self.method, self.member_gradient)
        for group, names in SETTINGS.items():
            for name in names:
                if name in taken or getattr(self, name) == _DEFAULTS[name]:
                    continue
                methods = [m for m, groups in METHOD_SETTINGS.items() if group in groups]
                hybrid = " (or a population with member_gradient)" if group != "population" else ""
                yield name, f"applies to meta.method {' or '.join(methods)} only{hybrid}"
        if self.method == "population":
            for name in ("init_distribution", "resample_probability", "resample_until"):
                if getattr(self, name) != _DEFAULTS[name] and self.search_radius <= 0:
                    yield name, "needs meta.search_radius > 0 (the box to draw phi in)"
            if self.keep_start and self.member_gradient != "none":
                yield (
                    "keep_start",
                    (
                        "needs meta.member_gradient: none (a member following a gradient moves its "
                        "phi)"
                    ),
                )
            problem = check_population(self.population_size, self.exploit_fraction)
            if problem is not None:
                yield ("population_size", "exploit_fraction"), problem

    @property
    def ppo_iterations(self) -> int:
        """PPO iterations (rollout + update) per meta-iteration: inner_iterations, plus BMG's
        bootstrap_steps."""
        return self.inner_iterations + self.bootstrap_steps

    def static(self) -> meta_lib.MetaStatic:
        """The static settings, each from its field in ``STATIC_FIELDS``."""
        return meta_lib.MetaStatic(**{name: getattr(self, name) for name in STATIC_FIELDS})

    def hparams(self) -> meta_lib.MetaHparams:
        """The traced settings, each from its field in ``HPARAMS_FIELDS``, as float32."""
        return meta_lib.make_meta_hparams(**{name: getattr(self, name) for name in HPARAMS_FIELDS})


# Which settings each method takes, as one table: the settings in groups, and each method's
# groups. The settings not listed here (method, inner_iterations, learn, learn_gamma,
# search_radius) every method takes. A population whose members follow a meta-gradient
# (member_gradient) also takes that method's groups. A new method adds its row here (and its
# group, if it has settings of its own); ``MetaConfig.problems`` derives its checks from this.
SETTINGS: dict[str, tuple[str, ...]] = {
    "gradient": (
        "outer_learning_rate",
        "outer_schedule",
        "outer_final_fraction",
        "outer_max_grad_norm",
        "outer_gamma",
        "outer_lambda",
        "l2",
        "gamma_l2",
        "critic_learning_rate",
        "critic_hidden",
        "warmup",
    ),
    "truncated": ("grad_steps", "bootstrap_steps", "bootstrap_step_size"),
    "unrolled": ("remat",),
    "implicit": ("neumann_steps", "neumann_alpha"),
    "population": (
        "population_size",
        "exploit_fraction",
        "fitness_window",
        "member_gradient",
        "perturb_scale",
        "init_scale",
        "init_distribution",
        "resample_probability",
        "resample_until",
        "keep_start",
    ),
}
METHOD_SETTINGS: dict[str, tuple[str, ...]] = {
    "one_step": ("gradient", "truncated"),
    "unrolled": ("gradient", "truncated", "unrolled"),
    "implicit": ("gradient", "implicit"),
    "population": ("population",),
}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(MetaConfig)}
METHOD_SPECIFIC = frozenset(name for names in SETTINGS.values() for name in names)


def settings_taken(method: str, member_gradient: str = "none") -> frozenset[str]:
    """The method-specific settings (``SETTINGS``) that ``method`` takes: its groups, plus those
    of the meta-gradient a population's members follow (``member_gradient``)."""
    groups = set(METHOD_SETTINGS.get(method, ()))
    if method == "population" and member_gradient != "none":
        groups |= set(METHOD_SETTINGS.get(member_gradient, ()))
    return frozenset(name for group in groups for name in SETTINGS[group])


def for_method(meta: dict, keep: typing.Collection[str] = ()) -> dict:
    """A ``meta`` section (a plain dict, as read from a file) without the method-specific
    settings its method does not take, but those in ``keep`` (the ones the command line set,
    which ``MetaConfig.problems`` then checks)."""
    method = meta.get("method", _DEFAULTS["method"])
    if not isinstance(method, str) or method not in METHOD_SETTINGS:
        return meta  # the method's own check names the problem
    taken = settings_taken(method, meta.get("member_gradient", "none"))
    return {k: v for k, v in meta.items() if k not in METHOD_SPECIFIC or k in taken or k in keep}


# The meta section's fields that are static settings (``MetaStatic``: changing one recompiles)
# and traced ones (``MetaHparams``). ``STATIC_NOT_CONFIGURED`` are MetaStatic fields the build
# sets (total_iterations: the run's) or no config sets (exact_gradient: a research switch).
# tests/test_config.py checks that these cover every field of both bundles.
STATIC_FIELDS = (
    "method",
    "inner_iterations",
    "remat",
    "learn",
    "learn_gamma",
    "neumann_steps",
    "critic_hidden",
    "warmup",
    "population_size",
    "exploit_fraction",
    "fitness_window",
    "member_gradient",
    "init_distribution",
    "keep_start",
    "grad_steps",
    "outer_schedule",
    "bootstrap_steps",
)
STATIC_NOT_CONFIGURED = ("exact_gradient", "total_iterations")
HPARAMS_FIELDS = (
    "outer_learning_rate",
    "outer_gamma",
    "outer_lambda",
    "l2",
    "gamma_l2",
    "critic_learning_rate",
    "neumann_alpha",
    "perturb_scale",
    "init_scale",
    "outer_max_grad_norm",
    "outer_final_fraction",
    "bootstrap_step_size",
    "search_radius",
    "resample_probability",
    "resample_until",
)


def check_learn(config: MetaConfig, reward_params: Any, source: schema.Source) -> None:
    """Every ``meta.learn`` entry names reward params (else a ConfigError listing them)."""
    try:
        meta_lib.learn_mask(reward_params, config.learn)
    except ValueError as error:
        raise source.error("meta.learn", str(error)) from None
