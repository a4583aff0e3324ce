import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from rlx.run import checkpoint
from rlx.run.checkpoint import Checkpointer


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
    assert record == {
        "chunk": 3,
        "format": checkpoint.FORMAT,
        "checksum": checkpoint.checksum(checkpoint._to_storable(tree)),
    }
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


def _damage(step_dir, how: str) -> None:
    if how == "empty record":
        (step_dir / "meta" / "metadata").write_text("")  # the JSON record
        return
    for data in [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]:
        raw = bytearray(data.read_bytes())
        if how == "truncated":
            data.write_bytes(raw[: len(raw) // 2])
        else:  # one bit flipped in the middle of each data file
            raw[len(raw) // 2] ^= 0x10
            data.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["empty record", "truncated", "bit flip"])
def test_restore_falls_back_past_a_damaged_checkpoint_and_moves_it_aside(tmp_path, capsys, how):
    trees = {
        step: {"w": jnp.full((256,), float(step)), "k": jax.random.key(step)} for step in (1, 2)
    }
    checkpointer = Checkpointer(tmp_path / "ck", max_to_keep=3)
    for step, tree in trees.items():
        checkpointer.save(step, tree, {"chunk": step})
    _damage(tmp_path / "ck" / "2", how)
    state, record = checkpointer.restore_newest_valid(jax.eval_shape(lambda: trees[1]))
    assert record["chunk"] == 1
    np.testing.assert_array_equal(state["w"], trees[1]["w"])
    assert checkpointer.latest_step() == 1
    assert (tmp_path / "ck" / "damaged" / "2").is_dir()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint 2 is damaged" in err[0], err
    # Orbax keeps working beside the damaged folder: a new save and restore.
    checkpointer.save(3, trees[2], {"chunk": 3})
    assert checkpointer.restore_newest_valid(jax.eval_shape(lambda: trees[2]))[1]["chunk"] == 3
    checkpointer.close()


def test_a_checkpoint_of_another_state_tree_is_refused_in_one_line_and_not_moved(tmp_path):
    # The env gained a term since the run was written (as lift's `success` did): not damage.
    # restore_newest_valid must neither fall back nor move anything aside.
    written = {"terms": {"lifted": jnp.zeros(3)}, "w": jnp.arange(2.0)}
    now = {"terms": {"lifted": jnp.zeros(3), "success": jnp.zeros(3)}, "w": jnp.arange(2.0)}
    checkpointer = Checkpointer(tmp_path / "ck", max_to_keep=3)
    for step in (1, 2):
        checkpointer.save(step, written, {"chunk": step})
    with pytest.raises(checkpoint.CheckpointStructureError) as info:
        checkpointer.restore_newest_valid(jax.eval_shape(lambda: now))
    checkpointer.close()
    message = str(info.value)
    assert "\n" not in message and "terms.success" in message and "nothing was moved" in message
    assert not (tmp_path / "ck" / "damaged").exists()
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["1", "2"]
