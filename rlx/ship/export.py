"""``rlx export RUN_DIR --format onnx|jax``: a run's deterministic policy, self-contained.

The exported function is ``rlx.ship.policy.load``'s: observations [N, obs_size] float32 -> the env's
action (observation normalisation, the MLP, the mode of the action distribution and its map
to the env's action space, all included), with the run's params as constants. A recurrent
policy's is ``rlx.ship.policy.step_fn``'s: (obs, memory [N, memory_size]) -> (action, memory'),
zeros at an episode's first step. The observation is the policy's part only (an env's
privileged rest for the critic is left out).

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

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlx.ship import policy as policy_lib

FORMATS = ("onnx", "jax")
INPUT, OUTPUT = "obs", "action"
MEMORY_IN, MEMORY_OUT = "memory", "memory_out"  # a recurrent policy's (policy.step_fn)


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
    """The policy as an ONNX ModelProto (opset 17): ``obs`` -> ``action``, and for a
    recurrent policy also ``memory`` -> ``memory_out`` (``policy_lib.step_fn``'s memory)."""
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
    memory = policy_lib.memory_size(restored)
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
    params = jax.device_get(state.params["policy"])
    inputs = [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", obs_size])]
    outputs = []
    if memory:
        cell = restored.config.network.memory
        weights = next(v for k, v in params["params"].items() if k.endswith("Cell_0"))
        x = _CELL_GRAPHS[cell](nodes, inits, const, weights, x, MEMORY_IN, MEMORY_OUT)
        inputs.append(helper.make_tensor_value_info(MEMORY_IN, TensorProto.FLOAT,
                                                    ["batch", memory]))  # fmt: skip
        outputs.append(helper.make_tensor_value_info(MEMORY_OUT, TensorProto.FLOAT,
                                                     ["batch", memory]))  # fmt: skip
    layers = _layers(params)
    for i, (kernel, bias) in enumerate(layers):
        out = f"dense_{i}"
        nodes += [
            helper.make_node("MatMul", [x, const(f"kernel_{i}", kernel)], [f"{out}_mm"]),
            helper.make_node("Add", [f"{out}_mm", const(f"bias_{i}", bias)], [out]),
        ]
        x = out
        if i < len(layers) - 1:
            x = _activation(helper, nodes, static.activation, x, f"act_{i}")
    outputs.insert(0, _action_head(nodes, inits, const, actor.env.action_space, x))
    graph = helper.make_graph(nodes, "rlx_policy", inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph, producer_name="rlx", opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _dense(nodes, const, x: str, name: str, layer: dict) -> str:
    """x @ kernel (+ bias where the layer has one): the output's name."""
    from onnx import helper

    out = f"{name}_mm"
    nodes.append(helper.make_node("MatMul", [x, const(f"{name}_kernel", layer["kernel"])], [out]))
    if "bias" not in layer:
        return out
    nodes.append(helper.make_node("Add", [out, const(f"{name}_bias", layer["bias"])], [name]))
    return name


def _node(nodes, op: str, inputs: list[str], out: str, **attributes) -> str:
    from onnx import helper

    nodes.append(helper.make_node(op, inputs, [out], **attributes))
    return out


def _gru_graph(nodes, inits, const, w: dict, x: str, memory: str, memory_out: str) -> str:
    """flax.linen.GRUCell: r = s(x W_ir + b_ir + h W_hr), z = s(x W_iz + b_iz + h W_hz),
    n = tanh(x W_in + b_in + r (h W_hn + b_hn)), h' = (1 - z) n + z h; the memory is h."""
    h = memory

    def gate(name, fn):
        summed = _node(nodes, "Add", [_dense(nodes, const, x, f"gru_i{name}", w[f"i{name}"]),
                                      _dense(nodes, const, h, f"gru_h{name}", w[f"h{name}"])],
                       f"gru_{name}_sum")  # fmt: skip
        return _node(nodes, fn, [summed], f"gru_{name}")

    r, z = gate("r", "Sigmoid"), gate("z", "Sigmoid")
    reset = _node(nodes, "Mul", [r, _dense(nodes, const, h, "gru_hn", w["hn"])], "gru_reset")
    n_sum = _node(nodes, "Add", [_dense(nodes, const, x, "gru_in", w["in"]), reset], "gru_n_sum")
    n = _node(nodes, "Tanh", [n_sum], "gru_n")
    keep = _node(nodes, "Sub", [const("gru_one", 1.0), z], "gru_keep")
    new = _node(nodes, "Add", [_node(nodes, "Mul", [keep, n], "gru_new_part"),
                               _node(nodes, "Mul", [z, h], "gru_old_part")], "gru_h")  # fmt: skip
    return _node(nodes, "Identity", [new], memory_out)


def _lstm_graph(nodes, inits, const, w: dict, x: str, memory: str, memory_out: str) -> str:
    """flax.linen.OptimizedLSTMCell: gates i, f, o = s(h W_h. + b_h. + x W_i.), g = tanh(..),
    c' = f c + i g, h' = o tanh(c'); the memory is [c, h] side by side."""
    units = w["hi"]["kernel"].shape[0]
    axis = _int64(inits, "lstm_axis", [-1])
    bounds = [_int64(inits, f"lstm_{n}", [v]) for n, v in (("0", 0), ("u", units),
                                                            ("2u", 2 * units))]  # fmt: skip
    c = _node(nodes, "Slice", [memory, bounds[0], bounds[1], axis], "lstm_c")
    h = _node(nodes, "Slice", [memory, bounds[1], bounds[2], axis], "lstm_h")

    def gate(name, fn):
        summed = _node(nodes, "Add", [_dense(nodes, const, h, f"lstm_h{name}", w[f"h{name}"]),
                                      _dense(nodes, const, x, f"lstm_i{name}", w[f"i{name}"])],
                       f"lstm_{name}_sum")  # fmt: skip
        return _node(nodes, fn, [summed], f"lstm_{name}")

    i, f, g, o = (gate(n, fn) for n, fn in (("i", "Sigmoid"), ("f", "Sigmoid"), ("g", "Tanh"),
                                            ("o", "Sigmoid")))  # fmt: skip
    new_c = _node(nodes, "Add", [_node(nodes, "Mul", [f, c], "lstm_fc"),
                                 _node(nodes, "Mul", [i, g], "lstm_ig")], "lstm_new_c")  # fmt: skip
    new_h = _node(nodes, "Mul", [o, _node(nodes, "Tanh", [new_c], "lstm_tanh_c")], "lstm_new_h")
    _node(nodes, "Concat", [new_c, new_h], memory_out, axis=-1)
    return new_h


# The ONNX form of each recurrent cell (network.memory), its memory as policy.step_fn's.
_CELL_GRAPHS = {"gru": _gru_graph, "lstm": _lstm_graph}


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
    """Max abs difference of the ONNX file's actions (and memory) from the JAX policy's on
    ``samples`` random observations (normal, scaled by the run's observation spread when
    normalised): ``samples`` at once for a feedforward policy, 20 envs x ``samples / 20``
    steps from a zero memory for a recurrent one."""
    import onnxruntime

    obs_size, memory = _obs_size(restored), policy_lib.memory_size(restored)
    envs = 20 if memory else samples
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(samples // envs, envs, obs_size)).astype(np.float32)
    stats = restored.train.obs_stats
    if restored.agent.actor.normalize_observations:
        spread = np.sqrt(np.asarray(stats.var))[:obs_size]
        obs = obs * spread + np.asarray(stats.mean)[:obs_size]
    obs = obs.astype(np.float32)
    step = jax.jit(policy_lib.step_fn(restored))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want_memory = got_memory = np.zeros((envs, memory), np.float32)
    worst = 0.0
    for x in obs:
        want, want_memory = (np.asarray(a) for a in step(x, want_memory))
        feeds = {INPUT: x} | ({MEMORY_IN: got_memory} if memory else {})
        names = [OUTPUT] + ([MEMORY_OUT] if memory else [])
        got, *rest = session.run(names, feeds)
        got_memory = rest[0] if memory else got_memory
        for a, b in ((got, want), (got_memory, want_memory)):
            worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b), initial=0.0)))
    return worst, obs.shape[0] * envs


def export(
    run_dir: Path, fmt: str, out_dir: Path, checkpoint: int | None = None, member=None
) -> dict[str, Any]:
    """Writes the policy of ``run_dir`` in ``fmt`` into ``out_dir``; returns the spec."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    restored = policy_lib.restore(run_dir, checkpoint, member)
    memory = policy_lib.memory_size(restored)
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
    # What the robot's side needs: the observation's layout (the groups the policy reads, in
    # order), the control period, and the sim-to-real settings the policy was trained under.
    from rlx.envs.sim2real import observation_groups

    start, groups = 0, []
    for name, size in observation_groups(restored.agent.env):
        groups.append({"name": name, "start": start, "size": size})
        start += size
    spec["observation"] = {"groups": groups, "size": start}
    spec["control_period_s"] = restored.agent.env.dt
    spec["sim2real"] = dataclasses.asdict(restored.config.env.sim2real)
    if memory:  # a recurrent policy: its memory goes in and comes out with each step
        spec["memory"] = {
            "cell": restored.config.network.memory,
            "input": MEMORY_IN,
            "output": MEMORY_OUT,
            "shape": ["batch", memory],
            "dtype": "float32",
            "episode_start": "zeros",
            "layout": "h" if restored.config.network.memory == "gru" else "c then h",
        }
    if fmt == "onnx":
        import onnx

        path = out_dir / "policy.onnx"
        onnx.save(model, str(path))
        diff, samples = check_onnx(path, restored)
        spec["check"] = {"against": "the JAX policy", "observations": samples, "max_abs_diff": diff}
    else:
        from jax import export as jax_export

        batch, obs = jax_export.symbolic_shape(f"batch, {_obs_size(restored)}")
        obs_shape = jax.ShapeDtypeStruct((batch, obs), jnp.float32)
        if memory:  # (obs, memory) -> (action, memory')
            memory_shape = jax.ShapeDtypeStruct((batch, memory), jnp.float32)
            exported = jax_export.export(jax.jit(policy_lib.step_fn(restored)))(
                obs_shape, memory_shape
            )
        else:  # obs -> action
            exported = jax_export.export(jax.jit(policy_lib.act_fn(restored)))(obs_shape)
        path = out_dir / "policy.jax"
        path.write_bytes(exported.serialize())
    spec["file"] = path.name
    spec_path = out_dir / f"{path.name}.json"
    spec["spec"] = spec_path.name
    spec_path.write_text(json.dumps(spec, indent=1) + "\n")
    return spec
