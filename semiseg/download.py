"""Verified downloads on pooch: mirrors, checksum registries, trust-on-first-use pins, resume, offline reports.

A file is fetched into a folder under its :attr:`Source.file_name`; one that is already there is checked, never
fetched again. The checksum is, first found: the ``$SEMISEG_CHECKSUMS`` registry file (``sha256sum`` /
``md5sum`` output, or pooch's ``<name> <alg>:<hex>`` registry, keyed by the source's ``key``), the recorded one
(:mod:`semiseg.sources`), or the SHA-256 pinned at the first complete download (``<cache>/pins.sha256``).
``$SEMISEG_MIRROR`` (or ``mirror=``) replaces every source's base URL: the file is read from
``<mirror>/<key>``. Needs the optional ``data`` extra (pooch, requests).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from semiseg.errors import DataError, UserError
from semiseg.runfiles import waiting_lock
from semiseg.sources import Source

MIRROR_ENV = "SEMISEG_MIRROR"
CHECKSUMS_ENV = "SEMISEG_CHECKSUMS"
CACHE_ENV = "SEMISEG_CACHE"
DEFAULT_CACHE = Path("~/.cache/semiseg")
PINS_FILE = "pins.sha256"
_ALGORITHMS = {32: "md5", 64: "sha256"}  # hex digest length → algorithm


def cache_root() -> Path:
    """Where weights, pins and other downloads are cached: ``$SEMISEG_CACHE``, else ``~/.cache/semiseg``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser().resolve()


def libraries():
    """pooch and requests, or a :class:`UserError` naming the extra that installs them."""
    try:
        import pooch
        import requests
    except ImportError as exc:
        raise UserError(f"downloading needs the optional 'data' extra ({exc.name} is not installed): "
                        f"pip install 'semiseg[data]'") from None
    return pooch, requests


def read_registry(path: Path) -> dict[str, str]:
    """A checksum registry file → {key: "alg:hex"}. Lines are ``<hex>  <key>`` (``sha256sum``/``md5sum``, a
    ``*`` before the key allowed) or pooch's ``<key> <alg>:<hex>``; blank lines and ``#`` comments are skipped."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{CHECKSUMS_ENV}: cannot read the checksum registry {path} ({exc})") from None
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) == 2 and ":" in parts[1]:
            key, checksum = parts[0], parts[1].lower()
            alg, _, digest = checksum.partition(":")
        elif len(parts) == 2:
            digest, key = parts[0].lower(), parts[1].lstrip("*")
            alg = _ALGORITHMS.get(len(digest), "")
        else:
            alg = digest = key = ""
        if alg not in _ALGORITHMS.values() or len(digest) != {"md5": 32, "sha256": 64}[alg] \
                or any(c not in "0123456789abcdef" for c in digest):
            raise DataError(f"{path}:{number}: expected '<md5 or sha256 hex>  <key>' (sha256sum/md5sum output) or "
                            f"'<key> sha256:<hex>', got {line!r}")
        out[key] = f"{alg}:{digest}"
    return out


@dataclass(frozen=True)
class Settings:
    """Where files come from and what checks them: a mirror base URL and a checksum registry file."""

    mirror: str = ""
    checksums: Path | None = None

    @classmethod
    def resolve(cls, mirror: str | None = None, checksums: str | None = None) -> "Settings":
        """Command-line values, else ``$SEMISEG_MIRROR`` / ``$SEMISEG_CHECKSUMS``."""
        mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV, "")
        if mirror and not mirror.startswith(("http://", "https://", "file://")):
            raise UserError(f"{MIRROR_ENV} / --mirror {mirror!r}: expected a base URL (http://, https://, file://)")
        registry = checksums if checksums is not None else os.environ.get(CHECKSUMS_ENV, "")
        settings = cls(mirror.rstrip("/"), Path(registry).expanduser().resolve() if registry else None)
        if settings.checksums is not None:
            read_registry(settings.checksums)  # a bad registry is an error before anything is fetched
        return settings

    def url(self, source: Source) -> str:
        return f"{self.mirror}/{source.key}" if self.mirror else source.url

    def verified_by(self) -> str:
        return str(self.checksums) if self.checksums else "recorded checksums (semiseg.sources) and pins"


class Pins:
    """SHA-256s pinned on first use, ``sha256sum`` format, in ``<cache>/pins.sha256``."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_root() / PINS_FILE

    def get(self, key: str) -> str | None:
        if not self.path.is_file():
            return None
        return read_registry(self.path).get(key)

    def pin(self, key: str, sha256: str) -> None:
        with waiting_lock(self.path.with_name(self.path.name + ".lock")):
            if self.get(key) is None:
                with open(self.path, "a") as f:
                    f.write(f"{sha256}  {key}\n")


def expected_checksum(source: Source, settings: Settings, pins: Pins) -> tuple[str | None, str]:
    """The checksum a file must have, and what says so."""
    if settings.checksums is not None:
        found = read_registry(settings.checksums).get(source.key)
        if found:
            return found, f"the checksum registry {settings.checksums}"
    if source.checksum:
        return source.checksum, "the recorded checksum"
    pinned = pins.get(source.key)
    if pinned:
        return pinned, f"the SHA-256 pinned at first use in {pins.path}"
    return None, ""


def file_checksum(path: Path, alg: str) -> str:
    pooch, _ = libraries()
    return pooch.file_hash(str(path), alg=alg)


def verify(path: Path, source: Source, settings: Settings, pins: Pins, what: str = "") -> None:
    """Check ``path`` against its expected checksum, or pin its SHA-256 when there is none (trust on first use,
    printed). A mismatch raises :class:`DataError` naming both checksums."""
    expected, origin = expected_checksum(source, settings, pins)
    if expected is None:
        sha256 = file_checksum(path, "sha256")
        if not sha256.startswith(source.sha256_prefix):
            raise DataError(f"{what or path}: sha256 {sha256} does not start with {source.sha256_prefix}, the prefix "
                            f"its publisher puts in the file name; the file is damaged or not the official one. "
                            f"Delete {path} to fetch it again")
        pins.pin(source.key, sha256)
        print(f"{source.key}: no published checksum; trusting this first copy and pinning its SHA-256 {sha256} "
              f"in {pins.path}", flush=True)
        return
    alg, _, digest = expected.partition(":")
    actual = file_checksum(path, alg)
    if actual != digest:
        raise DataError(f"{what or path}: {alg} {actual} does not match {digest} ({origin}); the file is damaged "
                        f"or not the official one. Delete {path} to fetch it again (or fix {CHECKSUMS_ENV})")


class ResumableDownloader:
    """A pooch downloader that continues a cut download with an HTTP ``Range`` request (pooch's own
    ``HTTPDownloader`` starts over). Bytes go to ``<file>.part`` beside the target, kept when the transfer
    breaks; the complete file is moved to pooch's temporary output, which pooch then hash-checks and renames."""

    def __init__(self, part: Path, session=None, timeout: float = 60.0) -> None:
        self.part, self.session, self.timeout = part, session, timeout

    def __call__(self, url: str, output_file: str, pooch_obj, check_only: bool = False) -> None:
        _, requests = libraries()
        session = self.session or requests.Session()
        offset = self.part.stat().st_size if self.part.is_file() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with session.get(url, stream=True, headers=headers, timeout=self.timeout) as response:
            if response.status_code == 416 and offset:  # the part file already holds every byte
                os.replace(self.part, output_file)
                return
            response.raise_for_status()
            resumed = response.status_code == 206
            total = response.headers.get("Content-Length")
            expected = int(total) + (offset if resumed else 0) if total else None
            with open(self.part, "ab" if resumed else "wb") as f:
                try:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        f.write(chunk)
                except requests.RequestException as exc:
                    raise IncompleteDownload(self.part, f.tell(), expected, exc) from None
        got = self.part.stat().st_size
        if expected is not None and got < expected:
            raise IncompleteDownload(self.part, got, expected, None)
        os.replace(self.part, output_file)


class IncompleteDownload(DataError):
    def __init__(self, part: Path, got: int, expected: int | None, cause) -> None:
        total = f" of {expected}" if expected else ""
        super().__init__(f"the download of {part.name[:-5]} was cut after {got}{total} bytes"
                         + (f" ({cause})" if cause else "") + f"; {part} is kept: run the same command again to "
                         f"resume it")


class Offline(DataError):
    """The sources cannot be reached: names each missing file, its URL and what to do by hand."""

    def __init__(self, missing: list[tuple[Source, str, Path]], reason: str) -> None:
        lines = [f"cannot reach the download source(s) ({reason}); {len(missing)} file(s) are missing:"]
        for source, url, target in missing:
            check = source.checksum or "no published checksum: pinned at first use"
            lines.append(f"  {target}\n      from {url}  ({check})")
        lines.append(f"to get them by hand: download each URL on a machine with network access, put the file at "
                     f"the path shown (it is checked against its checksum), and run the same command again; or point "
                     f"{MIRROR_ENV} (--mirror) at a server holding <mirror>/<key> for each file, e.g. "
                     f"<mirror>/{missing[0][0].key}")
        super().__init__("\n".join(lines))


def remote_size(url: str, session) -> int | None:
    """The Content-Length a server announces for ``url``; None when it gives none or refuses HEAD (the GET
    then decides). A server that cannot be reached raises ``requests.ConnectionError`` / ``Timeout``."""
    response = session.head(url, allow_redirects=True, timeout=30)
    size = response.headers.get("Content-Length")
    return int(size) if response.ok and size else None


def check_space(folder: Path, needed: int, what: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DataError(f"{what} needs about {needed / 2**30:.1f} GiB free under {folder}, which has "
                        f"{free / 2**30:.1f} GiB; free some space or choose another folder")


def fetch_all(sources: list[Source], folder: Path, settings: Settings, pins: Pins | None = None,
              session=None, extra_space: float = 0.0, headers: dict | None = None) -> dict[str, Path]:
    """Fetch each source into ``folder`` (files already there are verified, not fetched); returns key → path.

    Sizes are asked first (HTTP HEAD) so the disk check covers the downloads plus ``extra_space`` times their
    size (room for extraction); an unreachable source makes one :class:`Offline` error listing every missing
    file. Each download resumes a ``.part`` left by a cut one; a checksum mismatch removes the file."""
    pooch, requests = libraries()
    pooch.get_logger().setLevel("WARNING")  # we print our own line per download
    pins = pins or Pins()
    session = session or requests.Session()
    if headers:
        session.headers.update(headers)
    paths, todo = {}, []
    for source in sources:
        target = folder / source.file_name
        if target.is_file():
            verify(target, source, settings, pins)
            paths[source.key] = target
        else:
            todo.append(source)
    if not todo:
        return paths
    sizes, unreachable, reason = {}, [], ""
    for source in todo:
        try:
            sizes[source.key] = remote_size(settings.url(source), session) or 0
        except (requests.ConnectionError, requests.Timeout) as exc:
            unreachable.append((source, settings.url(source), folder / source.file_name))
            reason = reason or type(exc).__name__
    if unreachable:
        raise Offline(unreachable, reason)
    partial = sum((folder / (s.file_name + ".part")).stat().st_size for s in todo
                  if (folder / (s.file_name + ".part")).is_file())
    total = sum(sizes.values())
    check_space(folder, int(total * (1 + extra_space)) - partial, f"downloading {len(todo)} file(s)")
    for source in todo:
        target = folder / source.file_name
        with waiting_lock(folder / f".{source.file_name}.lock"):  # one process downloads a file, others wait
            if target.is_file():  # another process fetched it meanwhile
                verify(target, source, settings, pins)
            else:
                _download(source, folder, settings, pins, session, sizes[source.key])
        paths[source.key] = target
    return paths


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _download(source: Source, folder: Path, settings: Settings, pins: Pins, session, size: int) -> None:
    pooch, requests = libraries()
    url, target = settings.url(source), folder / source.file_name
    expected, _ = expected_checksum(source, settings, pins)
    print(f"downloading {url} -> {target} ({size / 2**20:.1f} MiB)", flush=True)
    downloader = ResumableDownloader(folder / (source.file_name + ".part"), session)
    try:
        pooch.retrieve(url, known_hash=expected, fname=source.file_name, path=folder, downloader=downloader,
                       progressbar=False)
    except ValueError as exc:  # pooch's checksum mismatch; it has removed the file
        raise DataError(f"{url}: the downloaded file does not match its checksum ({exc}); nothing was kept. "
                        f"A mirror with re-packed archives needs a checksum registry ({CHECKSUMS_ENV})") from None
    except requests.ConnectionError as exc:
        raise Offline([(source, url, target)], type(exc).__name__) from None
    except requests.HTTPError as exc:
        raise DataError(f"{url}: {exc}") from None
    if expected is None:  # trust on first use: pin it, but never a login, quota or error page
        if _looks_like_html(target):
            target.unlink()
            raise DataError(f"{url} returned a web page, not the file (a failed login, a download quota or a moved "
                            f"link); nothing was kept. Download it by hand and put it at {target}")
        verify(target, source, settings, pins)
