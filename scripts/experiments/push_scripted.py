"""Can push's arm move the puck to the goal in an episode? A scripted pusher as a reference.

  python scripts/experiments/push_scripted.py   # writes docs/experiments/push_scripted.json

Inverse kinematics of the 2-link arm (links 0.1 m) and a joint PD controller (torques clipped to
[-1, 1]): the fingertip goes to a point ``back`` m behind the puck on the goal's line (with a
sideways detour when it is on the wrong side), then pushes toward ``through`` m past the puck,
and holds still once the puck is within 0.01 m of the goal. 256 episodes of 100 steps per
setting; reports the final-step success rate (``final_success``, within 0.03 m) and the mean
object-goal distance at the start and on the last step.
"""

import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from rlx import envs  # noqa: E402
from rlx.envs.wrappers import VmapWrapper  # noqa: E402

L = 0.1


def ik(p):
    r2 = jnp.clip(jnp.sum(p**2, -1), 1e-6, (2 * L) ** 2 * 0.999)
    c2 = (r2 - 2 * L * L) / (2 * L * L)
    q2 = jnp.arccos(jnp.clip(c2, -1, 1))
    q1 = jnp.arctan2(p[..., 1], p[..., 0]) - jnp.arctan2(L * jnp.sin(q2), L + L * jnp.cos(q2))
    return jnp.stack([q1, q2], -1)


def wrap(a):
    return (a + jnp.pi) % (2 * jnp.pi) - jnp.pi


def policy(obs, kp, kd, back, through):
    q = jnp.arctan2(obs[..., 2:4], obs[..., 0:2])
    qd = obs[..., 4:6]
    puck, goal = obs[..., 6:8], obs[..., 10:12]
    tip = obs[..., 12:14] + puck
    u = goal - puck
    u = u / (jnp.linalg.norm(u, axis=-1, keepdims=True) + 1e-6)
    pre = puck - back * u
    behind = jnp.linalg.norm(tip - pre, axis=-1, keepdims=True) < 0.01
    # once close behind, push through toward the goal; else go behind (sideways detour)
    side = jnp.stack([-u[..., 1], u[..., 0]], -1)
    detour = jnp.where(jnp.sum((tip - puck) * u, -1, keepdims=True) > -0.01, pre + 0.04 * side, pre)
    target = jnp.where(behind, puck + through * u, detour)
    target = jnp.where(jnp.linalg.norm(goal - puck, axis=-1, keepdims=True) < 0.01, tip, target)
    qs = ik(target)
    tau = kp * wrap(qs - q) - kd * qd
    return jnp.clip(tau, -1, 1)


env = envs.make("push", primary_objective="final_success")
b = VmapWrapper(env)


@jax.jit
def run(key, kp, kd, back, through):
    s = b.reset(jax.random.split(key, 256))

    def step(s, _):
        a = policy(s.obs, kp, kd, back, through)
        s = b.step(s, a)
        return s, (s.primary, s.signals["object_goal_distance"], s.truncated)

    s, (prim, dist, trunc) = jax.lax.scan(step, s, None, length=100)
    return prim[-1].mean(), dist[0].mean(), dist[-2].mean()


rows = []
for kp in (2.0, 5.0):
    for kd in (0.1, 0.3):
        for back, through in ((0.04, 0.03), (0.035, 0.05)):
            success, start, end = (float(x) for x in run(jax.random.key(0), kp, kd, back, through))
            rows.append(
                dict(
                    kp=kp,
                    kd=kd,
                    back=back,
                    through=through,
                    final_success=success,
                    start_distance=start,
                    final_distance=end,
                )
            )
            print(rows[-1], flush=True)
out = ROOT / "docs" / "experiments" / "push_scripted.json"
out.write_text(
    json.dumps(
        {
            "command": "python scripts/experiments/push_scripted.py",
            "episodes_per_setting": 256,
            "rows": rows,
        },
        indent=1,
    )
    + "\n"
)
print(f"wrote {out}")
