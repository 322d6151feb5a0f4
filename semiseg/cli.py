"""Shared command-line plumbing: user errors become a one-paragraph message and exit code 2, a folder that
refuses a write (full, read-only, forbidden) a message and exit code 75."""

from __future__ import annotations

import sys
from typing import Callable

from semiseg.errors import StorageError, UserError

EXIT_USER_ERROR = 2
EXIT_RESUMABLE = 75  # sysexits' EX_TEMPFAIL: try again later


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
