"""HalfCheetah's control cost as a positive term, for a constraint (configs/halfcheetah.yaml).

Brax's ``reward_ctrl`` term is -0.1 sum(a^2) (negative, scaled); ``reward.constraints`` bounds
a term from above, so this gives the plain sum of squared actions, >= 0."""


def reward(signals, next_signals, terms, params):
    """``ctrl_cost`` [] = sum(a^2) of the step's action, from Brax's term."""
    return {"ctrl_cost": -terms["reward_ctrl"] / 0.1}
