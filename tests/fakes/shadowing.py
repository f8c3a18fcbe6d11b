"""A working folder whose sub-folders carry the names of the project's packages.

`/srv/bodycam` holding `store/` is the README's own layout. A command run from such a
folder must not import any of them in place of the project's own: `store/` and `crypto/`
are empty (a namespace package would be made of them), `vault/` and `dock/` and a
`bodycam_cli.py` fail loudly if anything imports them.
"""

from __future__ import annotations

from pathlib import Path


def shadowing_folder(path: Path) -> Path:
    """Fill `path` (made if missing) with the look-alikes; returns it."""
    for empty in ("store", "crypto"):
        (path / empty).mkdir(parents=True, exist_ok=True)
    for name in ("vault", "dock"):
        (path / name).mkdir(parents=True, exist_ok=True)
        (path / name / "__init__.py").write_text(_refusal(f"{name}/"))
    (path / "bodycam_cli.py").write_text(_refusal("bodycam_cli.py"))
    return path


def _refusal(what: str) -> str:
    return f'raise ImportError("{what} of the working folder was imported")\n'
