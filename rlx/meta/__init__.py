"""Bilevel reward optimisation: meta-learn reward params (and the discount) around PPO.

``make(agent, meta_static, reward_params)`` returns the meta-learner (init, step, chunk,
evaluate; see ``rlx.meta.base.Meta``) for ``meta_static.method``, one of ``METHODS``:
``one_step``, ``unrolled``, ``implicit`` (``rlx.meta.gradient``) or ``population``
(``rlx.meta.population``; with ``member_gradient`` its members follow a meta-gradient between
exploit steps, ``HybridMeta``). ``rlx.meta.grads`` holds the estimators themselves, independent of
PPO; ``rlx.meta.inner`` the pieces built from PPO's (the differentiated update, the critic).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlx.learn import ppo as ppo_lib
from rlx.meta import grads
from rlx.meta.base import (
    OUTER_SCHEDULES,
    Hps,
    Meta,
    MetaHparams,
    MetaStatic,
    Phi,
    init_phi,
    learn_mask,
    make_meta_hparams,
    path_name,
    with_phi,
)
from rlx.meta.gradient import OUTER_GRADIENTS, GradientMeta, MetaState, make_gradient_meta
from rlx.meta.population import (
    HybridMeta,
    HybridState,
    PopulationMeta,
    PopulationState,
    make_population,
)

# The meta methods by name: each builds its meta-learner from (agent, MetaStatic, reward params).
METHODS: dict[str, Callable[[ppo_lib.PPO, MetaStatic, Any], Meta]] = {
    **{name: make_gradient_meta for name in OUTER_GRADIENTS},
    "population": make_population,
}
# What a population's members may follow between exploit steps (meta.member_gradient).
MEMBER_GRADIENTS = ("none", *OUTER_GRADIENTS)


def make(agent: ppo_lib.PPO, meta_static: MetaStatic, reward_params: Any) -> Meta:
    """The meta-learner for ``meta_static.method`` around the PPO ``agent``."""
    try:
        builder = METHODS[meta_static.method]
    except KeyError:
        raise ValueError(
            f"unknown meta method {meta_static.method!r} (known: {', '.join(METHODS)})"
        ) from None
    return builder(agent, meta_static, reward_params)


__all__ = [
    "Phi",
    "MEMBER_GRADIENTS",
    "METHODS",
    "GradientMeta",
    "HybridMeta",
    "HybridState",
    "Hps",
    "Meta",
    "MetaHparams",
    "MetaState",
    "MetaStatic",
    "PopulationMeta",
    "PopulationState",
    "grads",
    "init_phi",
    "learn_mask",
    "make",
    "make_gradient_meta",
    "make_meta_hparams",
    "OUTER_SCHEDULES",
    "make_population",
    "path_name",
    "with_phi",
]
