"""A snapshot of one rulebook version's validated data, so that start-up neither parses nor validates it again.

Loading a rulebook parses every YAML file (see `engine.model.parse_cache`) and validates it with
the pydantic models, whose validators are themselves built on first use: most of a short
command's start-up. What loading makes depends on nothing but the bytes of the data files, the
folders they are in and the code that reads them, so it is kept, once made, as a snapshot:

- keyed by all of those: the rulebook version (the content hash of every rule and knowledge
  file), the two folders, a hash of the code of `engine.model` and the pydantic and Python
  versions. A change to any of them gives another key: that snapshot is never read, and a
  new one replaces it;
- in a folder of the user's cache folder (`$PAIN_SDM_CACHE`, see `parse_cache.cache_folder`;
  `off` turns it off) that only the user can read and write, with a header naming its format
  and key and a digest of its body: a snapshot that is truncated or edited does not match and
  is made again;
- as a pickle, which is why it is read only from a file the user owns, in a folder the user owns,
  that no one else can write (a pickle can run code: a snapshot anyone else could have written is
  never read). It is written only if it reads back equal to what was loaded.

A snapshot is read without validation: it is what validation made, from the same bytes, by the same code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import pickle
import sys
from pathlib import Path
from typing import Any

from engine.model.parse_cache import code_hash, private_cache_path, read_private_cache_bytes, write_private_cache_bytes

FORMAT = "pain-sdm/loaded-data/1"


@functools.cache
def model_code() -> str | None:
    """A hash of the code that loads data (every module of `engine.model`); None when it cannot be read."""
    return code_hash(sorted(Path(__file__).resolve().parent.glob("*.py")))


def snapshot_key(version: str, folders: dict[str, Path]) -> str | None:
    """The key of the snapshot of this rulebook version loaded from these folders; None if the code is unreadable."""
    code = model_code()
    if code is None:
        return None
    import pydantic

    parts = {
        "version": version,
        "folders": {kind: str(folder.resolve()) for kind, folder in sorted(folders.items())},
        "code": code,
        "pydantic": pydantic.VERSION,
        "python": sys.version,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _path(version: str) -> Path | None:
    return private_cache_path(f"loaded-{version}.pickle")


def read_snapshot(version: str, key: str | None) -> tuple[Any, ...] | None:
    """The loaded data kept under `key` for this rulebook version, or None (not kept, not matching, not safe)."""
    path = _path(version)
    if key is None or path is None:
        return None
    body = read_private_cache_bytes(path, {"format": FORMAT, "key": key})
    if body is None:
        return None
    try:
        data = pickle.loads(body)  # noqa: S301  (a file this user alone can write: see the module's docstring)
    except Exception:  # a snapshot that does not unpickle (classes changed under the same code hash): made again
        return None
    return data if isinstance(data, tuple) else None


def write_snapshot(version: str, key: str | None, data: tuple[Any, ...]) -> None:
    """Keep `data` as the snapshot under `key`, in place of any other; only if it reads back equal."""
    path = _path(version)
    if key is None or path is None:
        return
    try:
        body = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        if pickle.loads(body) != data:  # noqa: S301  (just made here)
            return
    except Exception:  # something that does not pickle: no snapshot, loading as always
        return
    write_private_cache_bytes(path, {"format": FORMAT, "key": key}, body, replaces="loaded-*.pickle")
