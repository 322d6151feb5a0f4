"""Split lists: text files of ``<image> <mask>`` lines, paths relative to the dataset root."""

from __future__ import annotations

from pathlib import Path

from semiseg.errors import DataError


def read_split(path: Path) -> list[tuple[str, str]]:
    """Parse a two-column split file (image path, mask path); a missing trailing newline is fine."""
    entries = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read split list {path} ({exc})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{path}:{number}: expected '<image> <mask>', got {line!r}")
        entries.append((parts[0], parts[1]))
    return entries
