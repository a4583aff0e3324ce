"""rlx.run.progress: the live line and the plain lines fit the console; the step count and the
elapsed time are never cut."""

import contextlib
import io
import re

import pytest
from rich.console import Console

from rlx.run.progress import Progress, fields_line

ROW = {
    "env_steps": 409_600,
    "wall_s": 4583.2,
    "train/steps_per_s": 55_123.0,
    "train/return": 475.3,
    "train/primary_return": -1234.5,
    "eval/return": 500.0,
}
CLOCK = re.compile(r"(?<![\d:])\d+:\d\d:\d\d(?![\d:])")  # H:MM:SS, whole


def live_line(width: int, total: int = 614_400, row: dict = ROW) -> str:
    """The live line as a terminal of ``width`` columns shows it after ``row``."""
    console = Console(width=width, record=True, force_terminal=True, file=io.StringIO())
    with Progress(total, console=console) as progress:
        progress.update(row)
    assert progress.interactive
    console.export_text(clear=True)  # drop the refreshes; print the last state once
    console.print(progress._bar.get_renderable())
    lines = console.export_text().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("width", [80, 60, 40])
def test_the_live_line_keeps_steps_and_time_whole(width):
    line = live_line(width)
    assert len(line) <= width and "…" not in line, line
    assert "409,600/614,400" in line and CLOCK.search(line), line


def test_at_80_columns_every_field_stays_and_the_bar_goes_first():
    line = live_line(80)
    for text in ("409,600/614,400", "55,123/s", "475.3", "primary -1234.5", "eval 500.0"):
        assert text in line, (text, line)
    assert "━" not in line  # no room for the bar beside them
    wide = live_line(160)
    assert "━" in wide and "409,600/614,400 steps" in wide and "55,123 steps/s" in wide


def test_fields_give_way_in_order_and_never_steps_or_time():
    values = {"done": 409_600, "sps": "55,123", "ret": "475.3", "primary": "-1234.5"}
    values |= {"eval": "500.0", "time": "1:16:23"}
    narrow = fields_line(values, 614_400, 40)
    assert narrow == "409,600/614,400 eval 500.0 1:16:23"
    assert fields_line(values, 614_400, 10) == "409,600/614,400 1:16:23"  # too wide, but whole


@pytest.mark.parametrize("total", [200, 614_400, 100_000_000])
def test_plain_lines_fit_80_columns(total):
    row = {**ROW, "env_steps": total // 2, "weights/alive": 0.5, "meta/gamma": 0.99}
    row |= {f"reward/term_{i}": 1.234 * i for i in range(12)}
    out, console = io.StringIO(), Console(width=80, file=io.StringIO())
    with contextlib.redirect_stdout(out), Progress(total, console=console) as progress:
        progress.update(row)
    assert not progress.interactive
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), [len(line) for line in lines]
    assert f"{total // 2:,}/{total:,}" in lines[0] and "1:16:23" in lines[0], lines[0]
    assert "term_11 13.6" in out.getvalue() and "alive 0.5" in out.getvalue()
