"""Encoder weights by name (``model.pretrained: resnet101``): one cached, verified file per name.

The file is ``<cache>/weights/<file name>`` (``$SEMISEG_CACHE``, default ``~/.cache/semiseg``), fetched on
first use from its official source (or ``$SEMISEG_MIRROR``) under a lock, so concurrent runs download it
once; a copy the user already has is accepted with ``semiseg weights fetch NAME --from FILE`` or by
putting it at that path. Every use checks the file against its recorded checksum, the registry file
``$SEMISEG_CHECKSUMS``, or the SHA-256 pinned at its first use (none of these sources publishes a
checksum: trust on first use, printed); a file that does not match is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from semiseg.cli import prog
from semiseg.download import Pins, Settings, cache_root, expected_checksum, fetch_all, verify
from semiseg.errors import ConfigError, DataError
from semiseg.runfiles import waiting_lock
from semiseg.sources import PUBLISHED_WEIGHTS, PublishedWeights


def published(name: str) -> PublishedWeights:
    if name not in PUBLISHED_WEIGHTS:
        raise ConfigError(f"unknown published weights {name!r}; valid: {', '.join(PUBLISHED_WEIGHTS)}")
    return PUBLISHED_WEIGHTS[name]


def weights_path(name: str) -> Path:
    """Where the file of published weights ``name`` is cached."""
    return cache_root() / "weights" / published(name).source.file_name


def fetch_command(name: str) -> str:
    return f"{prog('weights', 'semiseg.weights')} fetch {name}"


def ensure_published(name: str, from_file: Path | None = None, settings: Settings | None = None) -> Path:
    """The verified cached file of ``name``: taken from ``from_file``, or fetched on first use (one process
    fetches, others wait on the lock). A file that fails its checksum raises :class:`ConfigError`."""
    spec = published(name)
    if from_file is not None and not from_file.is_file():
        raise ConfigError(f"--from {from_file}: no such file (a copy of the {name} weights, {spec.source.file_name})")
    settings = settings or Settings.resolve()
    path, pins = weights_path(name), Pins()
    try:
        with waiting_lock(path.with_name(path.name + ".lock")):
            if from_file is not None:
                verify(from_file, spec.source, settings, pins, what=f"{from_file} (given for {name})")
                tmp = path.with_name(path.name + ".tmp")
                shutil.copyfile(from_file, tmp)
                tmp.replace(path)
            elif path.is_file():
                verify(path, spec.source, settings, pins, what=f"the cached {name} weights {path}")
            else:
                print(f"model.pretrained: fetching the {name} weights ({spec.source.note})", flush=True)
                fetch_all([spec.source], path.parent, settings, pins)
    except DataError as exc:
        raise ConfigError(f"model.pretrained {name!r}: {exc}") from None
    return path


def check_published(name: str) -> str | None:
    """Why the cached weights ``name`` cannot be used as they are (missing, or not matching), else None. Never
    downloads; pins nothing."""
    path = weights_path(name)
    if not path.is_file():
        return f"weights {name!r}: {path} is missing"
    settings, pins = Settings.resolve(), Pins()
    expected, origin = expected_checksum(published(name).source, settings, pins)
    if expected is None:
        return None  # pinned at its first use
    try:
        verify(path, published(name).source, settings, pins)
    except DataError:
        return f"weights {name!r}: {path} does not match {origin}; delete it"
    return None
