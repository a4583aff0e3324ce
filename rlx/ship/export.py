"""``rlx export RUN_DIR --format onnx|jax``: a run's deterministic policy, self-contained.

The exported function is ``rlx.ship.policy.load``'s: observations [N, obs_size] float32 -> the env's
action (observation normalisation, the MLP, the mode of the action distribution and its map
to the env's action space, all included), with the run's params as constants.

- ``onnx``: ``policy.onnx``, an ONNX graph built with ``onnx.helper`` (MatMul/Add and the
  activation per layer; ArgMax for discrete actions, tanh rescaling for boxes), checked
  against the JAX policy with onnxruntime on random observations (the max abs difference is
  printed and written to the spec). Needs ``pip install -c constraints.txt '.[export]'``.
- ``jax``: ``policy.jax``, a ``jax.export`` serialisation with a symbolic batch dimension;
  ``jax.export.deserialize(open(path, "rb").read()).call(obs)`` runs it.

Each writes its spec next to it (``policy.onnx.json``, ``policy.jax.json``): the input and
output names, shapes and dtypes, the env, the action space and where the policy came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlx.ship import policy as policy_lib

FORMATS = ("onnx", "jax")
INPUT, OUTPUT = "obs", "action"


class ExportError(ValueError):
    """A policy that cannot be exported as asked (one line says why)."""


def _layers(params: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """The Dense layers of a flax MLP's params in order: [(kernel [in, out], bias [out])]."""
    dense = params["params"]
    if "MLP_0" in dense:  # a Policy with a learned log-std wraps its mean MLP
        dense = dense["MLP_0"]
    names = sorted(dense, key=lambda n: int(n.rsplit("_", 1)[1]))
    return [(np.asarray(dense[n]["kernel"]), np.asarray(dense[n]["bias"])) for n in names]


def onnx_model(restored: policy_lib.Restored):
    """The policy as an ONNX ModelProto (opset 17)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ExportError(
            "--format onnx needs onnx and onnxruntime: pip install -c constraints.txt '.[export]'"
        ) from None
    agent, state = restored.agent, restored.train
    actor, static = agent.actor, agent.static
    obs_size = _obs_size(restored)
    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    x = INPUT
    if actor.normalize_observations:  # the statistics of the entries the policy reads
        mean = np.asarray(state.obs_stats.mean, np.float32)[:obs_size]
        std = np.asarray(jnp.sqrt(state.obs_stats.var + 1e-8), np.float32)[:obs_size]
        nodes += [
            helper.make_node("Sub", [x, const("obs_mean", mean)], ["obs_centred"]),
            helper.make_node("Div", ["obs_centred", const("obs_std", std)], ["obs_scaled"]),
            helper.make_node(
                "Clip",
                ["obs_scaled", const("clip_low", -10.0), const("clip_high", 10.0)],
                ["obs_normalised"],
            ),
        ]
        x = "obs_normalised"
    layers = _layers(jax.device_get(state.params["policy"]))
    for i, (kernel, bias) in enumerate(layers):
        out = f"dense_{i}"
        nodes += [
            helper.make_node("MatMul", [x, const(f"kernel_{i}", kernel)], [f"{out}_mm"]),
            helper.make_node("Add", [f"{out}_mm", const(f"bias_{i}", bias)], [out]),
        ]
        x = out
        if i < len(layers) - 1:
            x = _activation(helper, nodes, static.activation, x, f"act_{i}")
    out_info = _action_head(nodes, inits, const, actor.env.action_space, x)
    graph = helper.make_graph(
        nodes,
        "rlx_policy",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", obs_size])],
        [out_info],
        initializer=inits,
    )
    model = helper.make_model(
        graph, producer_name="rlx", opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _action_head(nodes, inits, const, space, x: str):
    """The nodes from the policy's output ``x`` to the env's action, and the output's info."""
    from onnx import TensorProto, helper

    if hasattr(space, "num_actions"):
        nodes.append(helper.make_node("ArgMax", [x], ["action_int64"], axis=-1, keepdims=0))
        nodes.append(helper.make_node("Cast", ["action_int64"], [OUTPUT], to=TensorProto.INT32))
        return helper.make_tensor_value_info(OUTPUT, TensorProto.INT32, ["batch"])
    size = space.size
    low = np.broadcast_to(np.asarray(space.low, np.float32), (size,))
    high = np.broadcast_to(np.asarray(space.high, np.float32), (size,))
    starts = [_int64(inits, n, v) for n, v in (("mean_start", [0]), ("mean_end", [size]))]
    nodes += [  # the mean half of the params, squashed: low + (tanh(m) + 1) / 2 (high - low)
        helper.make_node("Slice", [x, *starts, _int64(inits, "mean_axis", [-1])], ["mean"]),
        helper.make_node("Tanh", ["mean"], ["squashed"]),
        helper.make_node("Add", ["squashed", const("one", 1.0)], ["shifted"]),
        helper.make_node("Mul", ["shifted", const("half_range", 0.5 * (high - low))], ["scaled"]),
        helper.make_node("Add", ["scaled", const("low", low)], [OUTPUT]),
    ]
    return helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", size])


def _int64(inits, name, values):
    from onnx import numpy_helper

    inits.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
    return name


def _activation(helper, nodes, activation: str, x: str, out: str) -> str:
    if activation == "tanh":
        nodes.append(helper.make_node("Tanh", [x], [out]))
    elif activation == "relu":
        nodes.append(helper.make_node("Relu", [x], [out]))
    elif activation == "elu":
        nodes.append(helper.make_node("Elu", [x], [out], alpha=1.0))
    elif activation == "swish":  # x * sigmoid(x)
        nodes.append(helper.make_node("Sigmoid", [x], [f"{out}_sigmoid"]))
        nodes.append(helper.make_node("Mul", [x, f"{out}_sigmoid"], [out]))
    else:
        raise ExportError(f"network.activation {activation!r}: no ONNX form here")
    return out


def _obs_size(restored: policy_lib.Restored) -> int:
    """The exported input's size: the observation the policy reads (no privileged rest)."""
    return policy_lib.actor_input_size(restored)


def check_onnx(path: Path, restored: policy_lib.Restored, samples: int = 1000, seed: int = 0):
    """Max abs difference of the ONNX file's actions from the JAX policy's on ``samples``
    random observations (normal, scaled by the run's observation spread when normalised)."""
    import onnxruntime

    obs_size = _obs_size(restored)
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(samples, obs_size)).astype(np.float32)
    stats = restored.train.obs_stats
    if restored.agent.actor.normalize_observations:
        spread = np.sqrt(np.asarray(stats.var))[:obs_size]
        obs = obs * spread + np.asarray(stats.mean)[:obs_size]
    obs = obs.astype(np.float32)
    want = np.asarray(jax.jit(policy_lib.act_fn(restored))(obs))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], {INPUT: obs})[0]
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))), samples


def export(
    run_dir: Path, fmt: str, out_dir: Path, checkpoint: int | None = None, member=None
) -> dict[str, Any]:
    """Writes the policy of ``run_dir`` in ``fmt`` into ``out_dir``; returns the spec."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    restored = policy_lib.restore(run_dir, checkpoint, member)
    try:
        policy_lib.act_fn(restored)
    except policy_lib.NotLoadableError as error:
        raise ExportError(str(error)) from None
    if fmt == "onnx":
        model = onnx_model(restored)  # raises ExportError before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    space = restored.agent.env.action_space
    discrete = hasattr(space, "num_actions")
    spec = {
        "format": fmt,
        "run_dir": str(run_dir),
        "chunk": restored.chunk,
        "member": restored.member,
        "env": restored.config.env.name,
        "input": {"name": INPUT, "shape": ["batch", _obs_size(restored)], "dtype": "float32"},
        "output": {
            "name": OUTPUT,
            "shape": ["batch"] if discrete else ["batch", space.size],
            "dtype": "int32" if discrete else "float32",
        },
        "action_space": (
            {"discrete": space.num_actions}
            if discrete
            else {"low": np.asarray(space.low).tolist(), "high": np.asarray(space.high).tolist()}
        ),
        "observation_normalisation": bool(restored.agent.actor.normalize_observations),
    }
    if fmt == "onnx":
        import onnx

        path = out_dir / "policy.onnx"
        onnx.save(model, str(path))
        diff, samples = check_onnx(path, restored)
        spec["check"] = {"against": "the JAX policy", "observations": samples, "max_abs_diff": diff}
    else:
        from jax import export as jax_export

        shape = jax_export.symbolic_shape(f"batch, {_obs_size(restored)}")
        exported = jax_export.export(jax.jit(policy_lib.act_fn(restored)))(
            jax.ShapeDtypeStruct(shape, jnp.float32)
        )
        path = out_dir / "policy.jax"
        path.write_bytes(exported.serialize())
    spec["file"] = path.name
    spec_path = out_dir / f"{path.name}.json"
    spec["spec"] = spec_path.name
    spec_path.write_text(json.dumps(spec, indent=1) + "\n")
    return spec
