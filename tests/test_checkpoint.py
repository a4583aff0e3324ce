import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from rlx import checkpoint
from rlx.checkpoint import Checkpointer


def test_round_trip_keeps_keys_zero_size_arrays_and_the_record(tmp_path):
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
    restored, record = checkpointer.restore(jax.eval_shape(lambda: tree))
    checkpointer.close()
    assert record == {"chunk": 3, "format": checkpoint.FORMAT}
    assert restored["empty"].shape == (0, 3)
    np.testing.assert_array_equal(restored["weights"], tree["weights"])
    np.testing.assert_array_equal(
        jax.random.key_data(restored["keys"]), jax.random.key_data(tree["keys"])
    )
    # The restored key draws the same numbers as the original.
    assert float(jax.random.uniform(restored["key"])) == float(jax.random.uniform(tree["key"]))
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["2", "3"]


def test_a_checkpoint_of_another_format_fails_in_one_line_naming_both(tmp_path):
    """A checkpoint written before the format was recorded (as rlx did before 2026-12: the
    record has no ``format``) is refused with one line, not a tree-mismatch traceback."""
    tree = {"weights": jnp.arange(4.0)}
    manager = ocp.CheckpointManager((tmp_path / "ck").absolute())
    items = {"state": ocp.args.StandardSave(tree), "meta": ocp.args.JsonSave({"chunk": 1})}
    manager.save(1, args=ocp.args.Composite(**items))
    manager.wait_until_finished()
    manager.close()
    checkpointer = Checkpointer(tmp_path / "ck")
    with pytest.raises(checkpoint.CheckpointFormatError) as info:
        checkpointer.restore(jax.eval_shape(lambda: tree))
    checkpointer.close()
    message = str(info.value)
    assert "\n" not in message
    assert f"checkpoint format 1 found, format {checkpoint.FORMAT} expected" in message
