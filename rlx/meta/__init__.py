"""Bilevel reward optimisation: meta-learn reward params (and the discount) around PPO.

``make(agent, meta_static, reward_params)`` returns a ``Meta`` (init, step, chunk, evaluate)
for the method named by ``meta_static.method``: ``one_step``, ``unrolled``, ``implicit``
(``rlx.meta.learner``) or ``population`` (``rlx.meta.population``). ``rlx.meta.grads`` holds
the estimators themselves, independent of PPO.
"""

from __future__ import annotations

from rlx.meta import grads
from rlx.meta.learner import (
    METHODS,
    Meta,
    MetaHparams,
    MetaState,
    MetaStatic,
    init_phi,
    learn_mask,
    make_meta,
    make_meta_hparams,
    with_phi,
)
from rlx.meta.population import PopulationState, make_population


def make(agent, meta_static: MetaStatic, reward_params) -> Meta:
    """The meta-learner for ``meta_static.method`` around the PPO ``agent``."""
    if meta_static.method == "population":
        return make_population(agent, meta_static, reward_params)
    return make_meta(agent, meta_static, reward_params)


__all__ = [
    "METHODS",
    "Meta",
    "MetaHparams",
    "MetaState",
    "MetaStatic",
    "PopulationState",
    "grads",
    "init_phi",
    "learn_mask",
    "make",
    "make_meta",
    "make_meta_hparams",
    "make_population",
    "with_phi",
]
