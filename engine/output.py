"""Write output files safely: atomically (temporary file, then rename), never clobbering.

An interrupted write (Ctrl-C, a crash) leaves either the old file or nothing: never a
partial file. The temporary file is `.NAME.PID.<random>.tmp` beside the output; one left by a
writer killed with SIGKILL is removed by the next write to the same output. An existing file
is overwritten only when the user said --force (OutputError, exit 1); a path that cannot be
written at all (a folder, a missing folder, a device, pipe or socket, anything else that is
not a regular file, a file system that refuses it) is a bad option (UsageError, exit 2):
--force never replaces a device node.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import OutputError, UsageError

TEMPORARY = ".tmp"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def remove_stale_temporaries(path: Path, suffix: str = TEMPORARY) -> list[Path]:
    """Remove what a killed writer to `path` left behind: `.NAME.PID.<random>.tmp` files whose process is gone.

    A run killed with SIGKILL cannot clean up after itself; the next run to the same output
    does. A file of a writer still running (its PID alive) is left alone.
    """
    parent = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[^.]+{re.escape(suffix)}$")
    removed = []
    try:
        candidates = list(parent.iterdir())
    except OSError:
        return []
    for candidate in candidates:
        found = pattern.match(candidate.name)
        if found and not _alive(int(found.group(1))) and candidate.is_file() and not candidate.is_symlink():
            try:
                candidate.unlink()
            except OSError:
                continue
            removed.append(candidate)
    return removed


def write_atomic(path: Path, content: str | bytes, force: bool = False) -> None:
    """Write `content` to `path` atomically; refuse to overwrite unless `force`."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    with open_atomic(path, force) as handle:
        handle.write(data)


@contextmanager
def open_atomic(path: Path, force: bool = False) -> Iterator[BinaryIO]:
    """A file to stream `path`'s content into: renamed into place when the block ends, removed on error.

    Everything `write_atomic` promises holds: it is checked before anything is written that
    `path` may be written, and nothing reaches `path` unless the whole block succeeded.
    """
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a file name")
    if path.exists() and not path.is_file():
        raise UsageError(f"{path} is not a regular file (a device, pipe or socket); give a file name")
    if path.exists() and not force:
        raise OutputError(f"{path} already exists; use --force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: the folder {parent} does not exist")
    remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMPORARY, dir=parent)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists() and not force:
            raise OutputError(f"{path} appeared while it was being written; use --force to overwrite it")
        if path.exists() and not path.is_file():
            raise UsageError(f"{path} is not a regular file (a device, pipe or socket); give a file name")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
