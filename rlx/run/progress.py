"""Progress output: a live line on a terminal, one plain line per chunk otherwise.

Both fit the console's width (``COLUMNS``, else the terminal's, else 80): the fields are laid
out in the first form that fits, from roomy to compact, and the step count and the elapsed time
are never cut. On a terminal a bar goes in front when there is room for one; it is the first
thing to go, then the padding and long labels, then steps/s, primary, return and eval, in that
order.
"""

from __future__ import annotations

import datetime
import sys

from rich.console import Console
from rich.progress import Progress as RichProgress
from rich.progress import ProgressColumn
from rich.text import Text

PREFIX = "[rlx] "
BAR_MIN, BAR_MAX = 10, 40  # the bar's width in columns: none below BAR_MIN
# What may be dropped, least needed first (the steps and the time always stay).
DROP = ("sps", "primary", "ret", "eval")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def clock(seconds: float | None) -> str:
    """Elapsed time as H:MM:SS (as rich's elapsed column writes it)."""
    if seconds is None:
        return "-:--:--"
    return str(datetime.timedelta(seconds=max(int(seconds), 0)))


# The layouts, a format per field and the separator between fields. ROOMY is the live line's
# first try; PADDED (right-aligned to the total's width, so that plain lines align from one
# chunk to the next) the plain line's; COMPACT is both lines' fallback.
ROOMY = {
    "steps": "{done:,}/{total:,} steps",
    "sps": "{sps} steps/s",
    "ret": "return {ret}",
    "primary": "primary {primary}",
    "eval": "eval {eval}",
    "time": "{time}",
    "sep": "  ",
}
COMPACT = {
    "steps": "{done:,}/{total:,}",
    "sps": "{sps}/s",
    "ret": "ret {ret}",
    "primary": "primary {primary}",
    "eval": "eval {eval}",
    "time": "{time}",
    "sep": " ",
}


def _forms(total: int, padded: bool) -> list[dict[str, str]]:
    """The layouts to try, roomiest first."""
    if not padded:
        return [ROOMY, COMPACT]
    digits = len(f"{total:,}")
    aligned = {
        **COMPACT,
        "steps": f"{{done:>{digits},}}/{{total:,}}",
        "sps": "{sps:>6}/s",
        "ret": "ret {ret:>7}",
        "primary": "primary {primary:>8}",
        "eval": "eval {eval:>7}",
    }
    return [aligned, COMPACT]


ORDER = ("steps", "sps", "ret", "primary", "eval", "time")


def fields_line(values: dict, total: int, width: int, padded: bool = False) -> str:
    """The fields (``done``, ``sps``, ``ret``, ``primary``, ``eval``, ``time``; strings but
    ``done``) in the first layout of ``_forms`` that fits ``width`` columns, dropping fields in
    ``DROP`` order if none does. The steps and the time are never cut."""
    values = {**values, "total": total}
    line = ""
    for dropped in range(len(DROP) + 1):
        keep = [k for k in ORDER if k not in DROP[:dropped]]
        for form in _forms(total, padded):
            line = form["sep"].join(form[k].format(**values) for k in keep)
            if len(line) <= width:
                return line
    return line  # steps and time alone, wider than the console: left whole


def pack(prefix: str, items: list[str], width: int, indent: str = "", sep: str = "  ") -> list[str]:
    """``items`` after ``prefix`` on as many lines as ``width`` needs; an item is never split
    (one wider than the line goes alone on its own)."""
    lines, line = [], prefix
    for item in items:
        joined = item if line in (prefix, indent) else sep + item
        if len(line) + len(joined) > width and line not in (prefix, indent):
            lines.append(line)
            line, joined = indent, item
        line += joined
    lines.append(line)
    return lines


class _Line(ProgressColumn):
    """The whole live line as one column, laid out for the console's width at each refresh."""

    def __init__(self, console: Console):
        super().__init__()
        self.console = console

    def render(self, task) -> Text:
        width = self.console.width
        values = {
            "done": int(task.completed),
            **{k: task.fields[k] for k in ("sps", "ret", "primary", "eval")},
            "time": clock(task.elapsed),
        }
        line = fields_line(values, int(task.total or 0), width)
        room = min(BAR_MAX, width - len(line) - len("train  "))
        if room < BAR_MIN:
            return Text(line)
        filled = round(room * min(task.completed / task.total, 1.0)) if task.total else 0
        text = Text("train ", style="bold")
        text.append("━" * filled, style="bar.complete")
        text.append("━" * (room - filled), style="bar.back")
        text.append(" " + line)
        return text


class Progress:
    """Shows env steps, steps/s, train return and primary return, eval return and the elapsed
    time; a context manager.

    Without a terminal it prints one line per chunk and, with each evaluation, a line of the
    reward's parts: episode sums of each weighted contribution, gate and factor (``reward/``).
    ``console`` (a rich ``Console``) is where the live line goes; by default stdout's, live when
    stdout is a terminal.
    """

    def __init__(
        self,
        total_steps: int,
        done_steps: int = 0,
        enabled: bool = True,
        console: Console | None = None,
    ):
        self.enabled = enabled
        live = console.is_terminal if console is not None else sys.stdout.isatty()
        self.interactive = enabled and live
        self.console = console if console is not None else Console()
        self._bar = None
        self._task = None
        self._total, self._done = total_steps, done_steps
        self._last_eval = None

    def __enter__(self):
        if self.interactive:
            self._bar = RichProgress(_Line(self.console), console=self.console)
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
        values = {
            "sps": _fmt(row.get("train/steps_per_s"), ",.0f"),
            "ret": _fmt(row.get("train/return"), ".1f"),
            "primary": _fmt(row.get("train/primary_return"), ".1f"),
            "eval": _fmt(self._last_eval, ".1f"),
        }
        learned = _learned_items(row) if row.get("eval/return") is not None else []
        width = self.console.width
        if self._bar is not None:
            self._bar.update(self._task, completed=row["env_steps"], **values)
            if learned:
                for line in pack("[rlx]   learned weights: ", learned, width, "[rlx]     "):
                    self._bar.console.print(line, highlight=False, markup=False, crop=False)
            return
        values |= {"done": row["env_steps"], "time": clock(row.get("wall_s"))}
        line = fields_line(values, self._total, width - len(PREFIX), padded=True)
        print(PREFIX + line, flush=True)
        if row.get("eval/return") is None:
            return
        parts = [
            f"{k.removeprefix('reward/')} {v:.3g}"
            for k, v in row.items()
            if k.startswith("reward/") and v is not None
        ]
        if parts:
            head = "[rlx]   reward parts per episode: "
            print("\n".join(pack(head, parts, width, "[rlx]     ")), flush=True)
        if learned:
            print("\n".join(pack("[rlx]   learned weights: ", learned, width, "[rlx]     ")))


def _learned_items(row: dict) -> list[str]:
    """``rlx meta``: the effective weights (else phi's leaves), the inner gamma and the eval
    primary return, one item each; [] for a plain training row."""
    keys = [k for k in row if k.startswith("weights/")] or [k for k in row if k.startswith("phi/")]
    if not keys:
        return []
    items = [f"{k.split('/', 1)[1]} {row[k]:.3g}" for k in keys if row[k] is not None]
    if row.get("meta/gamma") is not None:
        items.append(f"gamma {row['meta/gamma']:.4f}")
    if row.get("eval/primary_return") is not None:
        items.append(f"(eval primary {row['eval/primary_return']:.1f})")
    return items
