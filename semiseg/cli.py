"""Shared command-line plumbing: user errors become a one-paragraph message and exit code 2, a folder that
refuses a write (full, read-only, forbidden) a message and exit code 75; usage lines and hints name a command
the way the user invoked it (:func:`prog`)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable

from semiseg.errors import StorageError, UserError

EXIT_USER_ERROR = 2
EXIT_RESUMABLE = 75  # sysexits' EX_TEMPFAIL: try again later
#: How the ``semiseg`` command was invoked ("semiseg" or "python -m semiseg"), set while it runs a subcommand.
_mounted: list[str] = []


def mount(prefix: str) -> None:
    """Record that subcommands run under the ``semiseg`` command invoked as ``prefix``."""
    _mounted[:] = [prefix]


def prog(command: str, module: str) -> str:
    """How the user invokes subcommand ``command`` (implemented by ``module``), for usage lines and hints:
    ``semiseg grid`` under the ``semiseg`` command, ``semiseg-grid`` as that console script,
    ``python -m semiseg.launch.run_grid`` or ``python launch/run_grid.py`` when this process was started in
    that style (then another command's hint takes the same style)."""
    if _mounted:
        return f"{_mounted[0]} {command}"
    arg0 = sys.argv[0] if sys.argv else ""
    if Path(arg0).name == f"semiseg-{command}":
        return Path(arg0).name
    started = getattr(sys.modules.get("__main__"), "__spec__", None)
    if started is not None and started.name.startswith("semiseg."):
        return f"python -m {module}"
    if started is None and arg0.endswith(".py"):
        found = importlib.util.find_spec(module)
        if found is not None and found.origin:
            real = Path(os.path.realpath(found.origin))
            if Path(os.path.realpath(__file__)).parent in real.parents:
                # an engine module run as a script would put its folder first on sys.path, where
                # semiseg/data/io.py shadows the standard library's io: those are named as modules
                return f"python -m {module}"
            return f"python {_shown(real)}"
    return f"semiseg {command}"


def _shown(path: Path) -> str:
    """A module file's path as the user would type it: relative to the current folder when inside it (through
    the repository's real folders, not the package's symlinks)."""
    real = Path(os.path.realpath(path))
    try:
        return real.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(real)


def user_message(exc: UserError) -> str:
    """The message of a user error; one raised in a DataLoader worker arrives wrapped in the worker's
    traceback ("Caught DataError in DataLoader worker process 0. Original Traceback ..."): its last line,
    the original message, is what the user needs."""
    text = str(exc)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.rstrip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``main(argv)``; a :class:`UserError` prints ``error: <message>`` to stderr and returns 2, a
    :class:`StorageError` (or a refused write) its message and 75."""
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except StorageError as exc:
        print(f"error: {exc}; nothing was started: free space or fix the folder's permissions, then run the same "
              f"command again", file=sys.stderr)
        return EXIT_RESUMABLE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def require(module: str, extra: str, feature: str) -> None:
    """Import optional ``module`` (for ``feature``); when it cannot be imported, a user error names the extra."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise UserError(f"{feature} needs the {module!r} package ({exc}); install it with "
                        f"pip install 'semiseg[{extra}]'") from None
