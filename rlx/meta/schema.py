"""The ``meta`` section of a config (``rlx meta``): its schema, split by field name into the
static settings (``MetaStatic``) and the traced ones (``MetaHparams``)."""

from __future__ import annotations

import dataclasses
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

    def problems(self):
        gradient_only = {
            "outer_schedule": self.outer_schedule != "constant",
            "outer_max_grad_norm": self.outer_max_grad_norm > 0,
        }
        if self.bootstrap_steps and self.method not in ("one_step", "unrolled"):
            yield "bootstrap_steps", "applies to one_step and unrolled only"
        hybrid = self.member_gradient != "none"
        if hybrid and self.method != "population":
            yield "member_gradient", "applies to method population only"
        for key, used in gradient_only.items():
            if used and self.method == "population" and not hybrid:
                yield (
                    key,
                    (
                        "applies to the gradient methods (one_step, unrolled, implicit) and a "
                        "population with member_gradient only"
                    ),
                )
        boxed = {
            "init_distribution": self.init_distribution == "uniform",
            "resample_probability": self.resample_probability > 0,
            "resample_until": self.resample_until < 1,
        }
        for key, used in boxed.items():
            if used and self.method != "population":
                yield key, "applies to method population only"
            elif used and self.search_radius <= 0:
                yield key, "needs meta.search_radius > 0 (the box to draw phi in)"
        if self.method == "population":
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
