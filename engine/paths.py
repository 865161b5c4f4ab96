"""Where the rules and knowledge live: resolved in one place.

An installed wheel carries them as package data (engine/_data/); a source checkout or
editable install reads them from the repository's top-level rules/ and knowledge/.
A reviewer's own directory, given with --rules or --knowledge, is used first.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import UsageError


def data_dir(kind: str, override: Path | None = None) -> Path:
    """The directory for `kind` ('rules' or 'knowledge')."""
    if override is not None:
        if not override.is_dir():
            why = "is not a directory" if override.exists() else "does not exist"
            raise UsageError(f"{kind} directory `{override}` {why}")
        return override
    packaged = Path(str(resources.files("engine"))) / "_data" / kind
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / kind
    if checkout.is_dir():
        return checkout
    raise UsageError(f"cannot find the {kind}/ directory; reinstall pain-sdm or pass --{kind}")
