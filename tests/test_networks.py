"""The networks' kernel inits (``network.kernel_init``): each starts the layers as it says."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx.config import build as build_lib
from rlx.learn.networks import MLP, Policy


def kernels(params) -> list[np.ndarray]:
    """The Dense kernels of an MLP's params (or of the one MLP in a Policy's or a Value's),
    input layer first."""
    layers = params["params"]
    layers = layers.get("MLP_0", layers)
    return [np.asarray(layers[f"Dense_{i}"]["kernel"]) for i in range(len(layers))]


def mlp_kernels(kernel_init: str, out_scale: float = 1.0) -> list[np.ndarray]:
    net = MLP((256, 256), 256, "tanh", out_scale=out_scale, kernel_init=kernel_init)
    return kernels(net.init(jax.random.key(0), jnp.zeros((1, 256))))


def test_orthogonal_init_has_gain_sqrt2_inside_and_out_scale_at_the_head():
    hidden, _, head = mlp_kernels("orthogonal", out_scale=0.01)
    np.testing.assert_allclose(hidden.T @ hidden, 2.0 * np.eye(256), atol=1e-4)
    np.testing.assert_allclose(head.T @ head, 1e-4 * np.eye(256), atol=1e-8)


@pytest.mark.parametrize("name", ["lecun_normal", "lecun_uniform"])
def test_lecun_inits_have_variance_one_over_fan_in_in_every_layer(name):
    """Flax's default (rejax's networks) and Brax's: variance 1/fan_in, the head's out_scale
    not applied; uniform within +-sqrt(3/fan_in), normal truncated at 2 std (so wider)."""
    for kernel in mlp_kernels(name, out_scale=0.01):
        assert kernel.std() == pytest.approx(1 / 16, rel=0.02)  # fan_in 256
        bound = np.abs(kernel).max() * 16
        if name == "lecun_uniform":
            assert np.sqrt(3) * 0.99 < bound <= np.sqrt(3)
        else:
            assert bound > 2.0  # the truncated normal reaches past the uniform's sqrt(3)
        assert abs((kernel.T @ kernel)[0, 1]) > 1e-3  # not orthogonal


def test_config_key_reaches_the_agents_policy_and_value(repo_configs):
    """``network.kernel_init`` from the config reaches both networks of the built agent."""
    config = build_lib.load(
        f"{repo_configs}/cartpole.yaml",
        ["network.kernel_init=lecun_uniform", "network.policy_hidden=[256]"],
    )
    built = build_lib.build(config)
    state = built.agent.init(jax.random.key(0), built.reward_params)
    for net in ("policy", "value"):
        first = kernels(state.params[net])[0]
        assert np.abs(first).max() <= np.sqrt(3 / first.shape[0]) + 1e-6
    head = kernels(state.params["policy"])[-1]  # no 0.01 head scale under the LeCun inits
    assert head.std() == pytest.approx(1 / 16, rel=0.1)


def test_policy_head_keeps_its_log_std_under_every_init():
    for name in ("orthogonal", "lecun_normal"):
        net = Policy((8,), 4, state_independent_std=True, init_log_std=-0.5, kernel_init=name)
        params = net.init(jax.random.key(1), jnp.zeros((3, 5)))
        np.testing.assert_allclose(params["params"]["log_std"], -0.5)
