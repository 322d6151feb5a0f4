"""Shared command-line plumbing: user errors become a one-paragraph message and exit code 2."""

from __future__ import annotations

import sys
from typing import Callable

from semiseg.errors import UserError

EXIT_USER_ERROR = 2


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``main(argv)``; a :class:`UserError` prints ``error: <message>`` to stderr and returns 2."""
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
