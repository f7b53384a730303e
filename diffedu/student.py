r"""Student copies of the lessons: solution cells removed, exercise outputs cleared.

Solutions live in the lessons as code cells tagged ``solution`` (the cell before assigns
``answer_k = None``, the cell after calls an ``ex.check_*`` checker). A student copy drops those
cells; the checkers then print "not answered yet" instead of raising. The stored outputs of the
cells that use what a solution defined (the checker cells, and whatever uses their results) are
cleared as well, with no execution count, so nbval runs those cells without comparing them: they
were produced with the solutions in place ("Correct (...)"). Every other output stays, so the
student copy still shows the lesson's figures, and nbval still compares them.

    python3 -m diffedu.student DEST [NOTEBOOK ...]     # or: diffedu lessons DEST --student
"""

from __future__ import annotations

import ast
import copy
import json
import re
import sys
from pathlib import Path

__all__ = ["SOLUTION_TAG", "is_solution", "student_notebook", "solution_lines", "write_student_copies"]

SOLUTION_TAG = "solution"


def is_solution(cell: dict) -> bool:
    """Whether a notebook cell (a dict) is tagged ``solution``."""
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def _names(source: str) -> tuple[set, set]:
    """Names a cell reads and names it binds; unparsable cells (magics) read every identifier."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(re.findall(r"[A-Za-z_]\w*", source)), set()
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name)]
    return ({n.id for n in names if isinstance(n.ctx, ast.Load)},
            {n.id for n in names if isinstance(n.ctx, (ast.Store, ast.Del))})


def _source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def student_notebook(nb: dict) -> dict:
    """A student copy of a notebook (as a dict): solution cells dropped, and the outputs of the cells
    that read a name a solution bound (directly or through another such cell) cleared.

    The input is not modified.
    """
    out = copy.deepcopy(nb)
    cells, tainted = [], set()
    for cell in out["cells"]:
        if cell["cell_type"] != "code":
            cells.append(cell)
            continue
        reads, binds = _names(_source(cell))
        if is_solution(cell):
            tainted |= binds
            continue
        if reads & tainted:
            cell["outputs"], cell["execution_count"] = [], None
            tainted |= binds
        else:
            tainted -= binds  # rebound from scratch, e.g. the next exercise's `answer = None`
        cells.append(cell)
    out["cells"] = cells
    return out


def solution_lines(nb: dict) -> set[str]:
    """The lines of solution cells that appear nowhere else in the notebook's sources.

    These must not occur anywhere in a student copy (sources, outputs or metadata).
    """
    def lines(cell):
        src = _source(cell)
        return {ln.strip() for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")}

    sol = set().union(*[lines(c) for c in nb["cells"] if is_solution(c)])
    rest = set().union(*[lines(c) for c in nb["cells"] if not is_solution(c)])
    return sol - rest


def write_student_copies(dest, notebooks=None) -> list[Path]:
    """Write student copies of ``notebooks`` (default: every lesson) into ``dest``."""
    from .cli import lesson_files

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for src in [Path(p) for p in notebooks] if notebooks else lesson_files():
        nb = student_notebook(json.loads(src.read_text()))
        target = dest / src.name
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    return written


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[-1].strip())
        return 0 if argv else 2
    for p in write_student_copies(argv[0], argv[1:] or None):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
