"""Each lesson's header states the run time measured in lessons/costs.json (issue 14, point 12).

The header tool is tested on copies of the lessons only; one test reads the real lessons and
fails while a header or a ``cpu_seconds`` disagrees with costs.json.
"""

import copy
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from diffedu.course import cli, headers, notebooks, site

REPO = Path(__file__).resolve().parents[2]
LESSONS = notebooks.lesson_files(REPO / "lessons")
COST = {"wall_s": 27.4, "peak_mb": 474.0}
LINE = ("**Run time.** 27 s, peak memory 474 MB: measured by `diffedu measure` on a quiet machine, "
        "one thread (a busy machine takes longer).")
HEADER = """# Lesson 05: A lesson

**What it teaches.** Things.

**What it assumes.** Lessons 01-03;
and more.

{run_time}

**Where the code is.** `diffedu.x`."""


def lesson(run_time="**Run time.** About 20 s on one CPU core (the networks are loaded from `data/`).",
           cpu=20):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(HEADER.format(run_time=run_time)),
                nbformat.v4.new_code_cell("x = 1")]
    nb.metadata["diffedu"] = {"number": 4, "title": "A", "teaches": "t", "assumes": "a", "cpu_seconds": cpu}
    return json.loads(nbformat.writes(nb))


def first_cell(nb) -> str:
    return "".join(nb["cells"][0]["source"])


def copies(tmp_path: Path) -> Path:
    d = tmp_path / "lessons"
    d.mkdir()
    for p in LESSONS:
        shutil.copyfile(p, d / p.name)
    shutil.copyfile(REPO / "lessons" / notebooks.COSTS_FILE, d / notebooks.COSTS_FILE)
    return d


def test_the_real_lessons_state_what_costs_json_measured():
    stale = headers.stale_run_times(LESSONS, notebooks.lesson_costs(REPO / "lessons"))
    assert stale == [], ("lesson headers disagree with lessons/costs.json; rewrite them with "
                         "`diffedu measure --headers-only`:\n" + "\n".join(stale))


def test_the_generated_line_and_cpu_seconds():
    assert headers.run_time_line(COST) == LINE
    assert headers.cpu_seconds(COST) == 27 and headers.cpu_seconds({"wall_s": 8.3, "peak_mb": 1}) == 8
    _, wall = notebooks.cost_cells("x", {"x": COST})
    assert f"** {wall}," in LINE, "the header and the lesson table round alike"
    with pytest.raises(ValueError, match="cost"):
        headers.run_time_line({"wall_s": 1.0})
    with pytest.raises(TypeError, match="cost"):
        headers.cpu_seconds(27.4)
    with pytest.raises(TypeError, match="costs"):
        headers.stale_run_times(LESSONS, None)
    with pytest.raises(TypeError, match="paths"):
        headers.write_run_times(str(LESSONS[0]), {})


def test_a_typed_line_becomes_the_generated_one_and_its_note_stays():
    nb = lesson()
    kept = copy.deepcopy(nb)
    out = headers.with_run_time(nb, COST)
    assert nb == kept, "with_run_time must not modify its input"
    assert first_cell(out) == HEADER.format(run_time=LINE + "\nThe networks are loaded from `data/`.")
    assert out["metadata"]["diffedu"]["cpu_seconds"] == 27
    assert out["cells"][1:] == nb["cells"][1:]
    assert headers.with_run_time(out, COST) == out, "regenerating is idempotent"
    newer = headers.with_run_time(out, {"wall_s": 9.6, "peak_mb": 380.0})
    head = first_cell(out).split("**Run time.**")[0]
    assert first_cell(newer).startswith(head + "**Run time.** 10 s, peak memory 380 MB")
    assert "The networks are loaded from `data/`." in first_cell(newer)
    assert newer["metadata"]["diffedu"]["cpu_seconds"] == 10


def test_redundant_notes_go_missing_lines_are_added_unknown_ones_refused():
    typed = "**Run time.** About 30 s on one CPU core (under nbval, one thread)."
    plain = headers.with_run_time(lesson(typed), COST)
    assert first_cell(plain) == HEADER.format(run_time=LINE)
    nb = lesson()
    nb["cells"][0]["source"] = HEADER.replace("{run_time}\n\n", "")
    added = first_cell(headers.with_run_time(nb, COST))
    assert added == HEADER.format(run_time=LINE), "a missing line goes after 'What it assumes'"
    with pytest.raises(ValueError, match="neither generated nor"):
        headers.with_run_time(lesson("**Run time.** Twenty seconds or so."), COST)
    placeholder = headers.with_run_time(lesson("**Run time.**\nMost of it is training."), COST)
    assert first_cell(placeholder) == HEADER.format(run_time=LINE + "\nMost of it is training.")
    with pytest.raises(ValueError, match="diffedu"):
        headers.with_run_time({"cells": lesson()["cells"], "metadata": {}}, COST)
    with pytest.raises(TypeError, match="nb"):
        headers.with_run_time([], COST)


def test_writing_the_copies_changes_only_their_header_line_and_cpu_seconds(tmp_path):
    d = copies(tmp_path)
    paths, costs = notebooks.lesson_files(d), notebooks.lesson_costs(d)
    before = {p.name: json.loads(p.read_text()) for p in paths}
    headers.write_run_times(paths, costs, out=lambda m: None)
    assert headers.stale_run_times(paths, costs) == []
    assert headers.write_run_times(paths, costs, out=lambda m: None) == [], "a second run changes nothing"
    for p in paths:
        nb, old = json.loads(p.read_text()), before[p.name]
        assert nb["cells"][1:] == old["cells"][1:]
        assert first_cell(nb).count("**Run time.**") == 1
        assert headers.run_time_line(costs[p.name]) in first_cell(nb)
        assert nb["metadata"]["diffedu"]["cpu_seconds"] == headers.cpu_seconds(costs[p.name])
        keep = {k: v for k, v in nb["metadata"]["diffedu"].items() if k != "cpu_seconds"}
        assert keep == {k: v for k, v in old["metadata"]["diffedu"].items() if k != "cpu_seconds"}
        assert p.read_bytes() == notebooks.notebook_bytes(nb), "written in nbformat's layout"
        row = notebooks.lesson_table([p], costs).splitlines()[-1]
        cost = costs[p.name]
        assert row.endswith(f"| {cost['peak_mb']:.0f} MB | {headers.cpu_seconds(cost)} s |")


def test_a_stale_header_is_reported(tmp_path):
    d = copies(tmp_path)
    paths = notebooks.lesson_files(d)
    costs = notebooks.lesson_costs(d)
    headers.write_run_times(paths, costs, out=lambda m: None)
    costs[paths[0].name] = {"wall_s": costs[paths[0].name]["wall_s"] + 5, "peak_mb": 1.0}
    stale = headers.stale_run_times(paths, costs)
    assert len(stale) == 1 and stale[0].startswith(paths[0].name)
    del costs[paths[1].name]
    assert any("not in costs.json" in s for s in headers.stale_run_times(paths, costs))
    out = []
    headers.write_run_times(paths[1:2], costs, out=out.append)
    assert out == [f"{paths[1].name}: not measured; its header was left as it is"]


def test_measure_writes_costs_then_headers(tmp_path, monkeypatch):
    d = copies(tmp_path)
    paths = notebooks.lesson_files(d)[:2]
    monkeypatch.setattr(site, "measure_one", lambda p: {"wall_s": 41.2, "peak_mb": 512.0})
    site.measure(paths, out=lambda m: None)
    costs = notebooks.lesson_costs(d)
    assert costs[paths[0].name] == {"wall_s": 41.2, "peak_mb": 512.0}
    for p in paths:
        assert "**Run time.** 41 s, peak memory 512 MB:" in first_cell(json.loads(p.read_text()))
        assert notebooks.lesson_meta(p)["cpu_seconds"] == 41
    assert headers.stale_run_times(paths, costs) == []


def test_measure_headers_only_measures_nothing(tmp_path, monkeypatch, capsys):
    d = copies(tmp_path)
    monkeypatch.setattr(site, "measure_one", lambda p: pytest.fail("--headers-only must not measure"))
    costs_before = (d / notebooks.COSTS_FILE).read_bytes()
    paths = [str(p) for p in notebooks.lesson_files(d)]
    assert cli.main(["measure", "--headers-only", *paths]) == 0
    assert "lesson header(s) rewritten from costs.json" in capsys.readouterr().out
    assert (d / notebooks.COSTS_FILE).read_bytes() == costs_before
    assert headers.stale_run_times(notebooks.lesson_files(d), notebooks.lesson_costs(d)) == []
    assert site.main(["measure", "--headers-only", *paths]) == 0
    assert "0 lesson header(s) rewritten" in capsys.readouterr().out


def test_a_run_past_its_time_is_killed_with_its_children_and_measured_again(monkeypatch, tmp_path):
    # nbclient now and then waits forever on a widget cell while the kernel sits idle
    # (jupyter/nbclient#312): measure_one kills such a run, kernel included, and runs it again
    import subprocess
    import sys
    import time

    t0 = time.monotonic()
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); time.sleep(30)"
    assert site._run_measured([sys.executable, "-c", code], None, tmp_path, 1.0) is None
    assert time.monotonic() - t0 < 10
    alive = subprocess.run(["pgrep", "-f", "time.sleep\\(30\\)"], capture_output=True, text=True).stdout.split()
    assert alive == [], "the grandchild (the kernel) must be killed with the run"
    out, code_, usage = site._run_measured([sys.executable, "-c", "print('{\"wall_s\": 1.25}')"], None, tmp_path, 30)
    assert code_ == 0 and out.strip() == b'{"wall_s": 1.25}' and usage.ru_maxrss > 0

    runs = []

    def fake(cmd, env, cwd, timeout):
        runs.append(timeout)
        return None if len(runs) < 3 else (b'{"wall_s": 7.04}\n', 0, type("U", (), {"ru_maxrss": 512 * 1024})())

    monkeypatch.setattr(site, "_run_measured", fake)
    assert site.measure_one(tmp_path / "x.ipynb", timeout=5, attempts=3) == {"wall_s": 7.0, "peak_mb": 512.0}
    assert runs == [5, 5, 5]
    runs.clear()
    with pytest.raises(RuntimeError, match="did not finish within 5 s in 2 runs"):
        site.measure_one(tmp_path / "x.ipynb", timeout=5, attempts=2)


def test_execute_notebook_returns_the_run_and_names_a_failing_cell(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 6 * 7"), nbformat.v4.new_code_cell("print(x)")])
    out = site.execute_notebook(nb, tmp_path, timeout=120)
    assert out.cells[1].outputs[0]["text"] == "42\n" and nb.cells[1].outputs == [], "the input is not modified"
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise ValueError('no such lesson')")])
    with pytest.raises(site.NotebookRunError, match="no such lesson"):
        site.execute_notebook(bad, tmp_path, timeout=120)
