"""rlx: a JAX-native RL engine for robot control with a composable, differentiable reward layer."""

__version__ = "0.1.0"
