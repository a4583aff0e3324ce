"""Rewrites bilevel results whose population arms logged raw phi as their learned weights.

Before 2026-12-06, ``bilevel.py`` recorded a population arm's (F's) learned weights from its
``phi/combine/<term>`` metrics, which under ``reward.parameterization=log_scale`` are log|w|,
not w; its md's "learned weight" column then showed e.g. ``alive -2.87`` for a weight of 0.057.
This decodes those stored values with the arm's own reward parameterization (the same
``bilevel.decoded_weights`` the runs use now), marks the arm ``weights_decoded``, and rewrites
the JSON, md and plot. Nothing is rerun; returns, curves and commands are kept as they are.

    python scripts/experiments/bilevel_redecode.py docs/experiments/bilevel_<name>.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _bilevel():
    spec = importlib.util.spec_from_file_location(
        "bilevel", ROOT / "scripts/experiments/bilevel.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flag(tokens: list[str], name: str, default: str | None = None) -> str | None:
    return tokens[tokens.index(name) + 1] if name in tokens else default


def redecode(path: Path, bilevel) -> list[str]:
    """Decodes the raw weights of ``path``'s population arms in place; the arms changed."""
    from rlx.config import build as build_lib

    data = json.loads(path.read_text())
    tokens = data["meta"]["commands"][0].split()
    task_name, aux = _flag(tokens, "--task", "cartpole"), _flag(tokens, "--aux", "bad")
    task = bilevel.TASKS[task_name]
    meta_set = [tokens[i + 1] for i, t in enumerate(tokens) if t == "--meta-set"]
    changed = []
    for arm, result in data["arms"].items():
        raw_logged = result.get("kind") == "population" and not result.get("weights_decoded")
        if not raw_logged or result.get("from") or not result.get("weights"):
            continue
        overrides = bilevel.arms(task, aux)[arm][1]
        cfg = bilevel.load(ROOT / task["config"], overrides, meta_set)
        reward_fn = build_lib.build(cfg, meta=True).reward_fn
        names = list(result["weights"])
        points = len(result["weights"][names[0]])
        decoded = {name: [] for name in names}
        for i in range(points):
            metrics = {
                f"phi/combine/{n}": np.asarray(result["weights"][n][i])[:, None] for n in names
            }
            for name, value in bilevel.decoded_weights(metrics, reward_fn).items():
                if name in decoded:
                    decoded[name].append(np.asarray(value).tolist())
        result["weights"] = decoded
        result["weight"] = decoded[names[0]]
        result["weights_decoded"] = True
        changed.append(arm)
    if changed:
        args = argparse.Namespace(
            task=task_name,
            aux=aux,
            seeds=data["meta"]["seeds"],
            seed_start=data["meta"]["seed_start"],
        )
        names = tuple(data["meta"]["learned"])
        bilevel.write(path.with_suffix(""), args, names, data["arms"], data["meta"]["commands"])
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    bilevel = _bilevel()
    for path in parser.parse_args().files:
        changed = redecode(path, bilevel)
        print(f"{path}: {'decoded arm(s) ' + ', '.join(changed) if changed else 'nothing to do'}")


if __name__ == "__main__":
    main()
