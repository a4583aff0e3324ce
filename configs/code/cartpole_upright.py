"""A CartPole reward written as Text2Reward writes one: plain Python over the env's signals,
built from rlx.rewards.terms. Used by configs/cartpole_code.yaml (reward.code, mode terms)."""

from rlx.rewards.terms import tolerance


def reward(signals, next_signals, terms, params):
    """Two new terms, each in [0, 1]: the pole near upright and the cart near the centre.
    ``params['angle_margin']`` (radians) is how fast the first falls off; it is a traced
    reward param, so it can be swept or meta-learned (meta.learn: [code/angle_margin])."""
    upright = tolerance(
        next_signals["pole_angle"], -0.05, 0.05, margin=params["angle_margin"], sigmoid="linear"
    )
    centred = tolerance(next_signals["cart_position"], -0.5, 0.5, margin=2.0)
    return {"upright": upright, "centred": centred}
