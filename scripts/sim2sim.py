"""Sim-to-sim: the exported joystick policy run as a robot's computer would run it, against rlx's
own eval of the same run.

  python scripts/sim2sim.py RUN_DIR [--episodes 32] [--seed 0] \\
      [--out docs/experiments/sim2real.json]

1. ``rlx export RUN_DIR --format onnx`` and ``rlx eval RUN_DIR --episodes N`` (subprocesses:
   rlx and JAX stay there);
2. here, with plain ``mujoco``, ``onnxruntime`` and numpy only (no JAX is imported; the script
   checks): Brax's ant MJCF stepped by MuJoCo's C engine (its motors made PD position servos
   as the run's ``actuation`` says), the observation built from the
   export's spec (its groups, in order), the policy the ONNX file, commands, resets, latency,
   motor strength, pushes and observation noise as the run's ``env.sim2real`` configured them,
   and the reward terms and the run's weights recomputed in numpy (``envs/joystick.py``'s
   formulas written again, independently);
3. the two compared: each side's mean return and forward tracking error (|v_x - cmd_x| per step
   over the command range), and ``sim_to_sim_return_ratio`` (this side over rlx's).

Writes (merges) ``sim_to_sim`` and ``sim_to_sim_return_ratio`` into ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_QPOS = np.array([0.0, 0.0, 0.55, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, -1.0, 0.0,
                         1.0])  # fmt: skip
FEET = ("left_foot_geom", "right_foot_geom", "third_foot_geom", "fourth_foot_geom")
FOOT_RADIUS = 0.08
# The env's defaults (envs/joystick.py), overridden by the run's env.params.
DEFAULTS = {
    "episode_length": 500, "frames_per_step": 5, "command_vx": 1.0, "command_vy": 0.5,
    "command_yaw": 1.0, "zero_command_probability": 0.1, "command_resample_steps": 200,
    "tracking_sigma": 0.25, "base_height_target": 0.55, "min_height": 0.25,
    "reset_noise_scale": 0.1, "actuation": "position", "kp": 40.0, "kd": 4.0, "max_force": 30.0,
}  # fmt: skip


def ant_model(params: dict):
    """Brax's ant MJCF (found without importing brax or JAX) with the env's solver settings and,
    for ``actuation: position``, its motors made PD servos: control = a joint target, force =
    clip(kp (target - q) - kd q', +-max_force)."""
    import mujoco

    brax = Path(importlib.util.find_spec("brax").submodule_search_locations[0])
    model = mujoco.MjModel.from_xml_path(str(brax / "envs/assets/ant.xml"))
    model.opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    model.opt.iterations = 4
    model.opt.ls_iterations = 8
    if params["actuation"] == "position":
        kp, kd, force = params["kp"], params["kd"], params["max_force"]
        joints = model.actuator_trnid[:, 0]
        model.actuator_gaintype[:], model.actuator_biastype[:] = 0, 1  # fixed gain, affine bias
        model.actuator_gainprm[:], model.actuator_biasprm[:] = 0.0, 0.0
        model.actuator_gainprm[:, 0] = kp
        model.actuator_biasprm[:, 1:3] = (-kp, -kd)
        model.actuator_gear[:] = 0.0
        model.actuator_gear[:, 0] = 1.0
        model.actuator_ctrlrange[:] = model.jnt_range[joints]
        model.actuator_forcerange[:] = (-force, force)
        model.actuator_forcelimited[:] = True
    return model


class Robot:
    """One ant, stepped by MuJoCo, driven by the ONNX policy, as the run's settings say."""

    def __init__(self, model, params: dict, sim2real: dict, weights: dict, rng):
        import mujoco

        self.mujoco, self.model, self.p, self.s, self.w, self.rng = (
            mujoco, model, params, sim2real, weights, rng
        )  # fmt: skip
        self.data = mujoco.MjData(model)
        self.feet = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in FEET]
        ranges = model.jnt_range[1:]
        middle, half = ranges.mean(axis=1), (ranges[:, 1] - ranges[:, 0]) / 2
        self.low, self.high = middle - 0.9 * half, middle + 0.9 * half
        self.dt = model.opt.timestep * params["frames_per_step"]

    def _command(self):
        high = np.array([self.p["command_vx"], self.p["command_vy"], self.p["command_yaw"]])
        command = self.rng.uniform(-high, high)
        return np.zeros(3) if self.rng.uniform() < self.p["zero_command_probability"] else command

    def reset(self):
        noise = self.p["reset_noise_scale"]
        self.mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = DEFAULT_QPOS
        self.data.qpos[7:] += self.rng.uniform(-noise, noise, 8)
        self.data.qvel[:] = self.rng.uniform(-noise, noise, self.model.nv)
        self.mujoco.mj_forward(self.model, self.data)
        self.command = self._command()
        self.last_action, self.air_time, self.age = np.zeros(8), np.zeros(4), 0
        self.commanded = np.zeros(8)  # the policy's last output: what the robot observes
        low, high = self.s["action_delay"]
        self.delay = int(self.rng.integers(low, high + 1))
        self.actions = np.zeros((high + 1, 8))
        self.strength = self.rng.uniform(*self.s["motor_strength"])
        self.countdown = self._countdown()

    def _countdown(self):
        low, high = self.s["push_interval"]
        return int(self.rng.integers(max(low, 1), max(high, 1) + 1))

    def kinematics(self):
        quat = self.data.qpos[3:7] / np.linalg.norm(self.data.qpos[3:7])
        frame = np.zeros(9)
        self.mujoco.mju_quat2Mat(frame, quat)
        frame = frame.reshape(3, 3)
        return frame.T @ self.data.qvel[:3], self.data.qvel[3:6].copy(), frame.T @ [0, 0, -1.0], \
            frame[2, 2]  # fmt: skip

    def observe(self, groups: list[dict]) -> np.ndarray:
        """The policy's observation, group by group as the export's spec lays it out, with
        the configured noise."""
        lin_vel, gyro, gravity, _ = self.kinematics()
        values = {
            "lin_vel": lin_vel, "gravity": gravity, "gyro": gyro,
            "joint_pos": self.data.qpos[7:] - DEFAULT_QPOS[7:], "joint_vel": self.data.qvel[6:],
            "last_action": self.commanded,
            "command": self.command,
        }  # fmt: skip
        noise = self.s["obs_noise"]
        out = [values[g["name"]] + self.rng.uniform(-1, 1, g["size"]) * noise.get(g["name"], 0.0)
               for g in groups]  # fmt: skip
        return np.concatenate(out).astype(np.float32)

    def effort(self, ctrl: np.ndarray, applied: np.ndarray) -> np.ndarray:
        """[8] each motor's effort in [-1, 1]: a servo's PD force over max_force, or the
        action (torque motors)."""
        if self.p["actuation"] != "position":
            return applied
        m = self.model
        joints = m.actuator_trnid[:, 0]
        q, qd = self.data.qpos[m.jnt_qposadr[joints]], self.data.qvel[m.jnt_dofadr[joints]]
        force = m.actuator_gainprm[:, 0] * ctrl + m.actuator_biasprm[:, 1] * q
        force = force + m.actuator_biasprm[:, 2] * qd
        return np.clip(force / self.p["max_force"], -1, 1)

    def step(self, action: np.ndarray):
        """(reward, terms, terminated) of one control step under ``action`` [8]."""
        self.commanded = action
        self.actions = np.concatenate([action[None], self.actions[:-1]])
        applied = self.actions[self.delay] * self.strength
        if self.s["push_interval"][1] > 0 and self.s["push_velocity"] > 0:
            if self.countdown <= 1:
                v = self.s["push_velocity"]
                self.data.qvel[:2] += self.rng.uniform(-v, v, 2)
                self.countdown = self._countdown()
            else:
                self.countdown -= 1
        low, high = self.model.actuator_ctrlrange.T
        ctrl = low + (np.clip(applied, -1, 1) + 1) * 0.5 * (high - low)
        self.data.ctrl[:] = ctrl
        for _ in range(self.p["frames_per_step"]):
            self.mujoco.mj_step(self.model, self.data)
        self.mujoco.mj_kinematics(self.model, self.data)
        lin_vel, gyro, gravity, up = self.kinematics()
        heights = self.data.geom_xpos[self.feet, 2]
        contacts = (heights < FOOT_RADIUS + 0.01).astype(float)
        touchdown = contacts * (self.air_time > 0)
        moving = float(np.linalg.norm(self.command[:2]) > 0.1)
        joints, sigma = self.data.qpos[7:], self.p["tracking_sigma"]
        terms = {
            "tracking_lin_vel": np.exp(-np.sum((self.command[:2] - lin_vel[:2]) ** 2) / sigma),
            "tracking_ang_vel": np.exp(-((self.command[2] - gyro[2]) ** 2) / sigma),
            "lin_vel_z": lin_vel[2] ** 2,
            "ang_vel_xy": np.sum(gyro[:2] ** 2),
            "orientation": np.sum(gravity[:2] ** 2),
            "base_height": (self.data.qpos[2] - self.p["base_height_target"]) ** 2,
            "torques": np.sum(self.effort(ctrl, applied) ** 2),
            "action_rate": np.sum((applied - self.last_action) ** 2),
            "joint_limits": np.sum(
                np.maximum(joints - self.high, 0) + np.maximum(self.low - joints, 0)
            ),  # fmt: skip
            "feet_air_time": np.sum((self.air_time + self.dt - 0.1) * touchdown) * moving,
            "velocity_error": abs(lin_vel[0] - self.command[0]),
        }
        self.last_action = applied
        self.air_time = (self.air_time + self.dt) * (1 - contacts)
        self.age += 1
        if self.age >= self.p["command_resample_steps"]:
            self.command, self.age = self._command(), 0
        reward = sum(self.w.get(k, 0.0) * v for k, v in terms.items())
        return reward, terms, bool(self.data.qpos[2] < self.p["min_height"] or up < 0)


def unsupported(config: dict) -> str | None:
    """What of the run's config this script does not re-implement (None: all of it is): another
    env than ant_joystick, domain randomisation, a reward other than a weighted sum."""
    if config["env"]["name"] != "ant_joystick":
        return f"env {config['env']['name']!r} (only ant_joystick)"
    ranges = config["env"].get("randomize") or {}
    if any(tuple(v) != (1.0, 1.0) for v in ranges.values()):
        return "env.randomize"
    reward = config["reward"]
    plain = (reward.get("combine", "sum") == "sum" and not reward.get("shaping")
             and not (reward.get("normalize") or {}).get("terms")
             and not reward.get("schedule") and not (reward.get("code") or {}).get("file")
             and reward.get("parameterization", "free") == "free")  # fmt: skip
    return None if plain else "a reward other than a fixed weighted sum of the terms"


def run_robot(run_dir: Path, export_dir: Path, episodes: int, seed: int) -> dict:
    """Each episode's return, length and forward tracking error, run with the ONNX policy."""
    import onnxruntime

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    refused = unsupported(config)
    if refused:
        raise SystemExit(f"{run_dir}: the robot's side here cannot reproduce {refused}")
    spec = json.loads((export_dir / "policy.onnx.json").read_text())
    params = DEFAULTS | {k: v for k, v in config["env"].get("params", {}).items() if k in DEFAULTS}
    weights = config["reward"]["weights"]
    session = onnxruntime.InferenceSession(str(export_dir / "policy.onnx"),
                                           providers=["CPUExecutionProvider"])  # fmt: skip
    memory_size = spec.get("memory", {}).get("shape", [0, 0])[1]
    robot = Robot(ant_model(params), params, spec["sim2real"], weights, np.random.default_rng(seed))
    out = {"return": [], "length": [], "velocity_error": []}  # per episode (error: its sum)
    for _ in range(episodes):
        robot.reset()
        memory = np.zeros((1, memory_size), np.float32)
        total, errors = 0.0, []
        for _ in range(params["episode_length"]):
            feeds = {"obs": robot.observe(spec["observation"]["groups"])[None]}
            names = ["action"] + (["memory_out"] if memory_size else [])
            if memory_size:
                feeds["memory"] = memory
            action, *rest = session.run(names, feeds)
            memory = rest[0] if memory_size else memory
            reward, terms, fallen = robot.step(action[0].astype(np.float64))
            total += reward
            errors.append(terms["velocity_error"])
            if fallen:
                break
        out["return"].append(total)
        out["length"].append(len(errors))
        out["velocity_error"].append(float(np.sum(errors)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/experiments/sim2real.json")
    args = parser.parse_args(argv)
    rlx = [sys.executable, "-m", "rlx"]
    export_dir = args.run_dir / "sim2sim"
    subprocess.run([*rlx, "export", str(args.run_dir), "--out", str(export_dir)], check=True,
                   cwd=ROOT)  # fmt: skip
    eval_path = export_dir / "rlx_eval.json"
    subprocess.run(
        [
            *rlx,
            "eval",
            str(args.run_dir),
            "--episodes",
            str(args.episodes),
            "--no-stochastic",
            "--out",
            str(eval_path),
        ],
        check=True,
        cwd=ROOT,
    )  # fmt: skip (the mode action, as the ONNX policy gives)
    ours = json.loads(eval_path.read_text())["episodes"]
    robot = run_robot(args.run_dir, export_dir, args.episodes, args.seed)
    assert "jax" not in sys.modules, "the robot's side imported JAX"
    config = yaml.safe_load((args.run_dir / "config.yaml").read_text())
    span = 2 * float(config["env"].get("params", {}).get("command_vx", DEFAULTS["command_vx"]))
    rlx_error = ours["terms/velocity_error"]["mean"] / ours["length"]["mean"] / span
    robot_error = float(np.mean(robot["velocity_error"]) / np.mean(robot["length"])) / span
    result = {
        "run_dir": str(args.run_dir),
        "episodes": args.episodes,
        "rlx_eval": {"return": ours["return"]["mean"], "length": ours["length"]["mean"],
                     "tracking_error_fraction": rlx_error},  # fmt: skip
        "c_mujoco_onnx": {"return": float(np.mean(robot["return"])),
                          "length": float(np.mean(robot["length"])),
                          "tracking_error_fraction": robot_error,
                          "per_episode_return": robot["return"]},  # fmt: skip
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or
                                                                            sys.argv[1:])]),
    }  # fmt: skip
    ratio = result["c_mujoco_onnx"]["return"] / result["rlx_eval"]["return"]
    result["tracking_error_difference"] = robot_error - rlx_error
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data["sim_to_sim"] = result
    data["sim_to_sim_return_ratio"] = {"value": ratio, "command": result["command"]}
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"[sim2sim] return: C MuJoCo + ONNX {result['c_mujoco_onnx']['return']:.1f}, rlx eval "
          f"{result['rlx_eval']['return']:.1f} (ratio {ratio:.3f}); tracking error "
          f"{robot_error:.3f} vs {rlx_error:.3f} of the command range")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
