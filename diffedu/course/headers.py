r"""Each lesson's stated run time, generated from its measured cost (``lessons/costs.json``).

A lesson's first markdown cell has a paragraph that starts ``**Run time.**``. Its first line is
generated: :func:`run_time_line` writes the wall time and peak memory that ``diffedu measure``
recorded in costs.json, and says how they were measured; lines after it in the same paragraph
are the author's (what is loaded from ``data/``, say) and are kept. The lesson's metadata
``cpu_seconds`` (block ``diffedu``) holds the same wall time in whole seconds.

``diffedu measure`` rewrites both for every lesson it measures (:func:`write_run_times`);
``diffedu measure --headers-only`` rewrites them from costs.json without measuring.
:func:`stale_run_times` lists the lessons whose header or metadata disagree with costs.json.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from .notebooks import META_KEY, cost_cells, notebook_bytes

__all__ = ["RUN_TIME", "MEASURED", "run_time_line", "cpu_seconds", "with_run_time", "stale_run_times",
           "write_run_times"]

RUN_TIME = "**Run time.**"
#: How the figures were measured; every generated line contains it.
MEASURED = "measured by `diffedu measure` on a quiet machine, one thread"
# the line that authors typed before it was generated: "About 20 s on one CPU core (note)."
_TYPED = re.compile(r"\*\*Run time\.\*\* About \d+ s on one CPU core(?: \((?P<note>.*)\))?\.")
_DROPPED_NOTES = ("under nbval, one thread",)  # what the generated line says already


def _check_cost(cost) -> dict:
    if not isinstance(cost, dict):
        raise TypeError(f"cost must be a costs.json entry (a dict); got {type(cost).__name__}")
    if not {"wall_s", "peak_mb"} <= set(cost):
        raise ValueError(f"cost must have 'wall_s' and 'peak_mb'; got {cost!r}")
    return cost


def run_time_line(cost: dict) -> str:
    """The generated first line of a lesson's run-time paragraph, from its costs.json entry."""
    mem, wall = cost_cells("lesson", {"lesson": _check_cost(cost)})
    return f"{RUN_TIME} {wall}, peak memory {mem}: {MEASURED} (a busy machine takes longer)."


def cpu_seconds(cost: dict) -> int:
    """The metadata's ``cpu_seconds``: the measured wall time, rounded as the header shows it."""
    return int(f"{_check_cost(cost)['wall_s']:.0f}")


def _paragraph(lines: list[str], start: int) -> int:
    """The index one past the last line of the paragraph that starts at ``start``."""
    end = start + 1
    while end < len(lines) and lines[end].strip():
        end += 1
    return end


def _new_paragraph(old: list[str], line: str) -> list[str]:
    """The run-time paragraph with its first line generated; the author's lines after it stay."""
    if MEASURED in old[0] or old[0].strip() == RUN_TIME:  # generated, or a placeholder line
        return [line] + old[1:]
    typed = _TYPED.fullmatch(" ".join(s.strip() for s in old))
    if typed is None:
        raise ValueError(f"its run-time paragraph is neither generated nor 'About N s on one CPU core "
                         f"(...).': {' '.join(old)!r}; make its first line '{RUN_TIME}' alone")
    note = typed.group("note")
    return [line] + ([note[0].upper() + note[1:] + "."] if note and note not in _DROPPED_NOTES else [])


def _with_line(text: str, line: str) -> str:
    lines = text.split("\n")
    at = next((i for i, s in enumerate(lines) if s.startswith(RUN_TIME)), None)
    if at is None:  # none yet: a paragraph of its own after "What it assumes", else at the end
        after = next((i for i, s in enumerate(lines) if s.startswith("**What it assumes")), None)
        end = len(lines) if after is None else _paragraph(lines, after)
        return "\n".join(lines[:end] + ["", line] + lines[end:])
    end = _paragraph(lines, at)
    return "\n".join(lines[:at] + _new_paragraph(lines[at:end], line) + lines[end:])


def with_run_time(nb: dict, cost: dict) -> dict:
    """A copy of a lesson (a notebook dict) whose header and ``cpu_seconds`` state ``cost``.

    Raises ``ValueError`` when the first cell is not markdown, when the notebook has no
    ``diffedu`` metadata block, or when its run-time paragraph is hand-typed in an unknown form.
    """
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise TypeError("nb must be a notebook as a dict, with a list of 'cells'")
    out = copy.deepcopy(nb)
    if not out["cells"] or out["cells"][0].get("cell_type") != "markdown":
        raise ValueError("nb must start with its markdown header cell")
    meta = out.get("metadata", {}).get(META_KEY)
    if not isinstance(meta, dict):
        raise ValueError(f"nb has no '{META_KEY}' block in its metadata")
    cell = out["cells"][0]
    text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    cell["source"] = _with_line(text, run_time_line(cost)).splitlines(keepends=True)
    meta["cpu_seconds"] = cpu_seconds(cost)
    return out


def _paths(paths) -> list[Path]:
    if isinstance(paths, (str, Path)) or not all(isinstance(p, (str, Path)) for p in paths):
        raise TypeError("paths must be a list of lesson notebook paths")
    return [Path(p) for p in paths]


def stale_run_times(paths, costs: dict) -> list[str]:
    """One line per lesson whose header or ``cpu_seconds`` disagree with ``costs`` (or that has
    no measured cost); empty when all agree."""
    if not isinstance(costs, dict):
        raise TypeError(f"costs must be a dict (as lesson_costs returns); got {type(costs).__name__}")
    stale = []
    for p in _paths(paths):
        if p.name not in costs:
            stale.append(f"{p.name}: not in costs.json (run diffedu measure {p})")
            continue
        nb = json.loads(p.read_text())
        try:
            fresh = with_run_time(nb, costs[p.name])
        except ValueError as err:
            stale.append(f"{p.name}: {err}")
            continue
        if fresh != nb:
            stale.append(f"{p.name}: header or cpu_seconds differ from costs.json "
                         f"(want {run_time_line(costs[p.name])!r})")
    return stale


def write_run_times(paths, costs: dict, *, out=print) -> list[Path]:
    """Rewrite each lesson's run-time line and ``cpu_seconds`` from ``costs``; returns the
    lessons changed. A lesson with no entry in ``costs`` is left as it is (``out`` says so)."""
    if not isinstance(costs, dict):
        raise TypeError(f"costs must be a dict (as lesson_costs returns); got {type(costs).__name__}")
    changed = []
    for p in _paths(paths):
        if p.name not in costs:
            out(f"{p.name}: not measured; its header was left as it is")
            continue
        nb = json.loads(p.read_text())
        try:
            fresh = with_run_time(nb, costs[p.name])
        except ValueError as err:
            raise ValueError(f"{p}: {err}") from None
        if fresh != nb:
            p.write_bytes(notebook_bytes(fresh))
            changed.append(p)
            out(f"{p.name}: header says {run_time_line(costs[p.name])}")
    return changed
