r"""Where diffedu's shipped files are: ``data/`` and ``lessons/``. The only code that knows.

Three ways to have diffedu, one answer each:

* a **source checkout** (``python3 -m pytest`` in a clone) and an **editable install**
  (``pip install -e .``): the package is the checkout's ``diffedu/`` folder, and the files sit
  beside it, in the checkout's top-level ``data/`` and ``lessons/``;
* an **installed wheel**: ``pyproject.toml`` force-includes both folders into the package, as
  ``diffedu/data`` and ``diffedu/lessons``.

Every path is computed from this file's own location (``diffedu/_paths.py``), so no other
module depends on how deep it sits in the package. A file that is not there raises
``FileNotFoundError`` naming it and the folders searched; nothing returns a missing path.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PACKAGE_DIR", "source_root", "data_dir", "data_path", "lessons_dir", "writable_data_path"]

#: The ``diffedu`` package folder (in a checkout: the checkout's ``diffedu/``).
PACKAGE_DIR = Path(__file__).resolve().parent


def source_root() -> Path | None:
    """The root of the source checkout that holds this package, or None for an installed wheel.

    A checkout has ``pyproject.toml`` and a ``lessons/`` folder next to the ``diffedu/`` package.
    """
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "lessons").is_dir() and (root / "data").is_dir():
        return root
    return None


def _candidates(folder: str) -> list[Path]:
    """Where ``folder`` ("data" or "lessons") may be, in the order searched."""
    out = [PACKAGE_DIR / folder]          # inside an installed wheel
    root = source_root()
    if root is not None:
        out.append(root / folder)          # a source checkout or an editable install
    return out


def data_dir() -> Path:
    """The folder of the shipped data files (``diffedu/data`` installed, ``data/`` in a checkout)."""
    for d in _candidates("data"):
        if d.is_dir():
            return d
    raise FileNotFoundError("diffedu's data folder was not found; looked in "
                            + ", ".join(str(d) for d in _candidates("data")))


def data_path(name: str) -> Path:
    """Path of the shipped data file ``name`` (for example ``"digits.npz"``).

    Raises ``FileNotFoundError`` naming the file and every folder searched when it is missing.
    """
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(f"name must be a file name inside diffedu's data folder; got {name!r}")
    places = _candidates("data")
    for d in places:
        if (d / name).is_file():
            return d / name
    raise FileNotFoundError(f"data file {name!r} not found; looked in " + ", ".join(str(d) for d in places))


def writable_data_path(name: str) -> Path:
    """Where a regenerated cache ``name`` is written: the checkout's ``data/`` folder.

    Regenerating cached models rewrites files that are committed to the repository, so it needs a
    source checkout; an installed wheel raises ``FileNotFoundError`` saying so.
    """
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(f"name must be a file name inside diffedu's data folder; got {name!r}")
    root = source_root()
    if root is None:
        raise FileNotFoundError(f"cannot write {name!r}: regenerating a cached file needs a source checkout "
                                "of diffedu (its data/ folder); this diffedu is an installed package")
    return root / "data" / name


def lessons_dir() -> Path:
    """The folder of the lesson notebooks (``diffedu/lessons`` installed, ``lessons/`` in a checkout).

    Raises ``FileNotFoundError`` when neither holds a lesson notebook.
    """
    places = _candidates("lessons")
    for d in places:
        if d.is_dir() and any(d.glob("[0-9][0-9]_*.ipynb")):
            return d
    raise FileNotFoundError("no lessons found; looked for NN_topic.ipynb in "
                            + ", ".join(str(d) for d in places))
