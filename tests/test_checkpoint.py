import jax
import jax.numpy as jnp
import numpy as np

from rlx.checkpoint import Checkpointer


def test_round_trip_keeps_keys_zero_size_arrays_and_meta(tmp_path):
    tree = {
        "empty": jnp.zeros((0, 3), jnp.float32),  # MJX data has zero-size fields
        "weights": jnp.arange(4.0),
        "key": jax.random.key(7),
        "keys": jax.random.split(jax.random.key(1), 3),
        "nothing": {},
    }
    checkpointer = Checkpointer(tmp_path / "ck", max_to_keep=2)
    for step in (1, 2, 3):
        checkpointer.save(step, tree, {"chunk": step})
    assert checkpointer.latest_step() == 3
    restored, meta = checkpointer.restore(jax.eval_shape(lambda: tree))
    checkpointer.close()
    assert meta == {"chunk": 3}
    assert restored["empty"].shape == (0, 3)
    np.testing.assert_array_equal(restored["weights"], tree["weights"])
    np.testing.assert_array_equal(
        jax.random.key_data(restored["keys"]), jax.random.key_data(tree["keys"])
    )
    # The restored key draws the same numbers as the original.
    assert float(jax.random.uniform(restored["key"])) == float(jax.random.uniform(tree["key"]))
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["2", "3"]
