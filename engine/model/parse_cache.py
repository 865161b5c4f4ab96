"""A cache of parsed data files, so that start-up does not parse the same YAML again.

Parsing the knowledge and rule files with YAML is most of a command's start-up; reading the
same data back as JSON is about forty times faster. The cache is kept safe this way:

- one cache file per rulebook version (the content hash of every rule and knowledge file),
  in the user's cache folder (`$PAIN_SDM_CACHE`, else platformdirs' user cache folder;
  `PAIN_SDM_CACHE=off` turns it off);
- inside it, each file's parsed data is keyed by the SHA-256 of that file's bytes, so a file
  that changed (or any file not seen before) is parsed again, never taken from the cache;
- the cache file names its format and rulebook version and carries a digest of its entries:
  one that does not match (another version, truncated, edited) is ignored and rebuilt;
- data goes in only if it reads back equal to what YAML gave (dates are tagged), and what
  comes out is validated by the same pydantic models as always.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

ENV_VAR = "PAIN_SDM_CACHE"
FORMAT = "pain-sdm/parsed-data/1"
_DATE = "$date"
_DATETIME = "$datetime"
MISSING: Any = object()


def cache_folder() -> Path | None:
    """Where cache files live: `$PAIN_SDM_CACHE`, else the user's cache folder; None when turned off."""
    env = os.environ.get(ENV_VAR)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "no") else Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("pain-sdm"))


def _tagged(value: Any) -> Any:
    """A date or time as JSON can hold it (json.dumps asks only about what it cannot write itself)."""
    if isinstance(value, dt.datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, dt.date):
        return {_DATE: value.isoformat()}
    raise TypeError(f"{type(value).__name__} is not kept in the cache")


def _dumps(data: Any) -> bytes:
    return json.dumps(data, default=_tagged, ensure_ascii=False, separators=(",", ":")).encode()


def _decode_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if _DATE in obj and isinstance(obj[_DATE], str):
            return dt.date.fromisoformat(obj[_DATE])
        if _DATETIME in obj and isinstance(obj[_DATETIME], str):
            return dt.datetime.fromisoformat(obj[_DATETIME])
    return obj


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 and 1.0 and True are told apart)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def code_hash(paths: Iterable[Path]) -> str | None:
    """A short hash of these source files (names and bytes), for caches made by that code; None when unreadable."""
    digest = hashlib.sha256()
    try:
        for path in paths:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    except OSError:
        return None
    return digest.hexdigest()[:16]


def file_key(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class ParseCache:
    """The parsed data of one rulebook version's files, keyed by each file's content hash."""

    def __init__(self, version: str, folder: Path | None) -> None:
        self.version = version
        self.path = None if folder is None else folder / f"parsed-{version}.json"
        self.entries: dict[str, Any] = {}
        self.changed = False
        if self.path is not None:
            self.entries = self._read(self.path)

    def _read(self, path: Path) -> dict[str, Any]:
        entries = read_cache_file(path, {"format": FORMAT, "version": self.version})
        return entries if isinstance(entries, dict) else {}

    def get(self, raw: bytes) -> Any:
        """The parsed data of a file with these bytes, or MISSING."""
        return self.entries.get(file_key(raw), MISSING)

    def put(self, raw: bytes, data: Any) -> None:
        """Keep a file's parsed data, if it reads back exactly as parsed."""
        if self.path is None:
            return
        if not _same(json.loads(_dumps(data), object_hook=_decode_object), data):
            return
        self.entries[file_key(raw)] = data
        self.changed = True

    def save(self) -> None:
        """Write the cache (only if something was added), in place of any other version's."""
        if self.path is None or not self.changed:
            return
        write_cache_file(self.path, {"format": FORMAT, "version": self.version}, self.entries, replaces="parsed-*.json")
        self.changed = False


def read_cache_file(path: Path, header: dict[str, str]) -> Any:
    """The data of a cache file written by `write_cache_file`, or MISSING (see `read_cache_bytes`)."""
    body = read_cache_bytes(path, header)
    if body is None:
        return MISSING
    try:
        return json.loads(body, object_hook=_decode_object)
    except ValueError:
        return MISSING


def write_cache_file(path: Path, header: dict[str, str], data: Any, replaces: str | None = None) -> None:
    """Keep `data` as JSON in a cache file (see `write_cache_bytes`)."""
    write_cache_bytes(path, header, _dumps(data), replaces)


def read_cache_bytes(path: Path, header: dict[str, str]) -> bytes | None:
    """The body of a cache file: after a header line (`header` and the digest of the rest).

    None when the file is not there, cannot be read, or its header or digest does not match
    (another format or version, truncated, edited).
    """
    try:
        header_line, _, body = path.read_bytes().partition(b"\n")
        if json.loads(header_line) != {**header, "digest": hashlib.sha256(body).hexdigest()}:
            return None
    except (OSError, ValueError):
        return None
    return body


def write_cache_bytes(path: Path, header: dict[str, str], body: bytes, replaces: str | None = None) -> None:
    """Write a cache file atomically (see `read_cache_bytes`); files of the folder matching the glob `replaces` go.

    A folder that cannot be written is skipped: a cache that is not kept only costs time.
    """
    text = json.dumps({**header, "digest": hashlib.sha256(body).hexdigest()}).encode() + b"\n" + body
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(replaces) if replaces else ():
            if old != path:
                old.unlink(missing_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(text)
            os.replace(temp, path)
        finally:
            Path(temp).unlink(missing_ok=True)


PRIVATE = "private"
"""The cache folder's subfolder for cache files that are pickles, readable and writable by the user alone."""


def private_cache_path(name: str) -> Path | None:
    """Where a cache file that is a pickle lives: in PRIVATE of the cache folder; None when caching is off."""
    folder = cache_folder()
    return None if folder is None else folder / PRIVATE / name


def _owned_by_user_alone(path: Path) -> bool:
    """The file and its folder belong to this user, neither is a link, and no one else can write either."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # no owners to check (Windows): the user's own cache folder is trusted as a whole
        return True
    try:
        for item in (path, path.parent):
            info = item.lstat()
            if stat.S_ISLNK(info.st_mode) or info.st_uid != getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return False
    except OSError:
        return False
    return True


def read_private_cache_bytes(path: Path, header: dict[str, str]) -> bytes | None:
    """`read_cache_bytes` of a file only this user can have written (a pickle runs what it reads); else None."""
    if not path.exists() or not _owned_by_user_alone(path):
        return None
    return read_cache_bytes(path, header)


def write_private_cache_bytes(path: Path, header: dict[str, str], body: bytes, replaces: str | None = None) -> None:
    """`write_cache_bytes` into a folder made readable and writable by this user alone."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.parent.stat().st_uid == getattr(os, "getuid", lambda: -1)():
            path.parent.chmod(0o700)
        write_cache_bytes(path, header, body, replaces)


ACTIVE: ContextVar[ParseCache | None] = ContextVar("parse_cache", default=None)


@contextlib.contextmanager
def using(version: str) -> Iterator[ParseCache]:
    """Data files read inside this block come from (and go into) the cache of this rulebook version."""
    cache = ParseCache(version, cache_folder())
    token = ACTIVE.set(cache)
    try:
        yield cache
    finally:
        ACTIVE.reset(token)
    cache.save()
