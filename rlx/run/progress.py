"""Progress output: a rich progress bar on a terminal, one plain line per chunk otherwise."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class Progress:
    """Shows env steps, steps/s, train return and primary return, eval return; a context manager.

    Without a terminal it prints one line per chunk and, with each evaluation, a line of the
    reward's parts: episode sums of each weighted contribution, gate and factor (``reward/``).
    """

    def __init__(self, total_steps: int, done_steps: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.interactive = enabled and sys.stdout.isatty()
        self.console = Console()
        self._bar = None
        self._task = None
        self._total, self._done = total_steps, done_steps
        self._last_eval = None

    def __enter__(self):
        if self.interactive:
            self._bar = RichProgress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "steps  {task.fields[sps]} steps/s  return {task.fields[ret]}  "
                    "primary {task.fields[primary]}"
                ),
                TextColumn("eval {task.fields[eval]}"),
                TimeElapsedColumn(),
                console=self.console,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                "train",
                total=self._total,
                completed=self._done,
                sps="-",
                ret="-",
                primary="-",
                eval="-",
            )
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False

    def update(self, row: dict) -> None:
        if not self.enabled:
            return
        if row.get("eval/return") is not None:
            self._last_eval = row["eval/return"]
        sps = _fmt(row.get("train/steps_per_s"), ",.0f")
        ret = _fmt(row.get("train/return"), ".1f")
        primary = _fmt(row.get("train/primary_return"), ".1f")
        ev = _fmt(self._last_eval, ".1f")
        learned = _learned_line(row)
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=row["env_steps"],
                sps=sps,
                ret=ret,
                primary=primary,
                eval=ev,
            )
            if learned and row.get("eval/return") is not None:
                self._bar.console.print(f"[rlx]   {learned}", highlight=False)
            return
        print(
            f"[rlx] steps {row['env_steps']:>10,}/{self._total:,}  {sps:>8} steps/s  "
            f"train return {ret:>8}  primary {primary:>8}  eval return {ev:>8}  "
            f"wall {row['wall_s']:.1f}s",
            flush=True,
        )
        parts = {k: v for k, v in row.items() if k.startswith("reward/") and v is not None}
        if parts and row.get("eval/return") is not None:
            text = "  ".join(f"{k.removeprefix('reward/')} {v:.3g}" for k, v in parts.items())
            print(f"[rlx]   reward parts per episode: {text}", flush=True)
        if learned and row.get("eval/return") is not None:
            print(f"[rlx]   {learned}", flush=True)


def _learned_line(row: dict) -> str:
    """``rlx meta``: the effective weights (else phi's leaves), the inner gamma and the eval
    primary return, as one line; '' for a plain training row."""
    keys = [k for k in row if k.startswith("weights/")] or [k for k in row if k.startswith("phi/")]
    if not keys:
        return ""
    parts = [f"{k.split('/', 1)[1]} {row[k]:.3g}" for k in keys if row[k] is not None]
    if row.get("meta/gamma") is not None:
        parts.append(f"gamma {row['meta/gamma']:.4f}")
    if row.get("eval/primary_return") is not None:
        parts.append(f"(eval primary {row['eval/primary_return']:.1f})")
    return "learned weights: " + "  ".join(parts)
