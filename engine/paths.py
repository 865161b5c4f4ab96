"""Where the rules, the knowledge and the rulebook's evidence live: resolved in one place.

An installed wheel carries them as package data (engine/_data/): the rules, the knowledge, and
the golden cases and example patients that `rules verify`, `rules coverage` and `rules diff`
stand on. A source checkout or editable install reads them from the repository (rules/,
knowledge/, tests/golden/, examples/). A reviewer's own directory, given with an option, is used first.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import UsageError

CHECKOUT = {"rules": "rules", "knowledge": "knowledge", "golden": "tests/golden", "examples": "examples"}
"""Where each kind lives in a source checkout; in a wheel each is `engine/_data/<kind>`."""

NAMED = {"golden": ("cases", "--cases")}
"""How a kind is named to a user, and the option that gives it, where not by its own name."""


def data_dir(kind: str, override: Path | None = None) -> Path:
    """The directory for `kind` (rules, knowledge, golden or examples)."""
    name, option = NAMED.get(kind, (kind, f"--{kind}"))
    if override is not None:
        if not override.is_dir():
            why = "is not a directory" if override.exists() else "does not exist"
            raise UsageError(f"{name} directory `{override}` {why}; give one with {option} DIR")
        return override
    packaged = Path(str(resources.files("engine"))) / "_data" / kind
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / CHECKOUT[kind]
    if checkout.is_dir():
        return checkout
    raise UsageError(f"cannot find the {CHECKOUT[kind]}/ directory; reinstall pain-sdm or pass {option}")
