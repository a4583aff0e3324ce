"""rlx.core.runtime's process-wide settings (conftest has called ``runtime.configure()``)."""

import jax
import numpy as np

from rlx.core import runtime


def _bits_and_hlo():
    draw = jax.jit(lambda key: jax.random.bits(jax.random.split(key)[1], (64,)))
    key = jax.random.key(7)
    lowered = draw.lower(key)
    return np.asarray(lowered.compile()(key)), lowered.as_text()


def test_threefry_is_straight_line_on_the_cpu_and_draws_the_same_bits():
    assert runtime.threefry_unrolled_on_cpu()  # what configure() did; applied again, harmless
    bits, text = _bits_and_hlo()
    assert "stablehlo.while" not in text
    try:  # JAX's own CPU form: a loop per draw, the same bits
        assert runtime.threefry_form_on_cpu("loop")
        rolled_bits, rolled_text = _bits_and_hlo()
    finally:
        runtime.threefry_unrolled_on_cpu()
    assert "stablehlo.while" in rolled_text
    np.testing.assert_array_equal(bits, rolled_bits)


def test_threefry_rolled_env_keeps_jax_default(monkeypatch):
    monkeypatch.setenv("RLX_THREEFRY_ROLLED", "1")
    assert runtime.threefry_unrolled_on_cpu() is False
