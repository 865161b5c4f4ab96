"""Larger rulebooks for the verifier's scaling figures: the option rules copied under new ids and thresholds.

`scaled_rulebook(factor, folder)` copies rules/ and knowledge/ into `folder` and adds
rules/21-scaled.yaml, holding `factor - 1` copies of every option rule (rules/20-options.yaml).
Copy j of a rule is named `ID-Xj`; every number it compares with is moved by j (a parameter
is replaced by its default profile's value, moved by j), so the copies set their statuses
at thresholds of their own, as a larger real rulebook would.
"""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = "20-options.yaml"


class _NoAliases(yaml.SafeDumper):
    """Writes a value shared by two copies out twice (the rulebook loader refuses YAML aliases)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _moved(node: Any, shift: int, params: dict[str, Any], ranges: dict[str, tuple[float, float]]) -> Any:
    """The condition with every number it compares with moved by `shift` (kept inside the question's range)."""
    if isinstance(node, list):
        return [_moved(n, shift, params, ranges) for n in node]
    if not isinstance(node, dict):
        return node
    if "fact" in node:
        atom = dict(node)
        if "param" in atom:
            atom["value"] = params[atom.pop("param")]
        value = atom.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            low, high = ranges.get(atom["fact"], (-math.inf, math.inf))
            atom["value"] = min(max(value + shift, low), high)
        return atom
    return {k: _moved(v, shift, params, ranges) for k, v in node.items()}


def _ranges(knowledge_dir: Path) -> dict[str, tuple[float, float]]:
    """Each number question's range."""
    data = yaml.safe_load((knowledge_dir / "questionnaire.yaml").read_text(encoding="utf-8"))
    return {
        q["id"]: (q.get("min", -math.inf), q.get("max", math.inf))
        for section in data["sections"]
        for q in section.get("questions", [])
        if q.get("type") == "number"
    }


def _default_values(rules_dir: Path) -> dict[str, Any]:
    """Each parameter's value in the default profile."""
    parameters = yaml.safe_load((rules_dir / "parameters.yaml").read_text(encoding="utf-8"))
    profiles = yaml.safe_load((rules_dir / "profiles.yaml").read_text(encoding="utf-8"))
    default = profiles.get("default") if isinstance(profiles, dict) else None
    out = {}
    for entry in parameters["parameters"]:
        value = entry.get("value", entry.get("default"))
        by_profile = entry.get("profiles") or entry.get("values") or {}
        if default and isinstance(by_profile, dict) and default in by_profile:
            value = by_profile[default]
        out[entry["id"]] = value
    return out


def scaled_rulebook(factor: int, folder: Path) -> tuple[Path, Path]:
    """A copy of the rulebook with `factor` times the option rules; returns its rules and knowledge folders."""
    rules, knowledge = folder / "rules", folder / "knowledge"
    shutil.copytree(ROOT / "rules", rules)
    shutil.copytree(ROOT / "knowledge", knowledge)
    if factor > 1:
        data = yaml.safe_load((rules / OPTIONS).read_text(encoding="utf-8"))
        params = _default_values(rules)
        ranges = _ranges(knowledge)
        copies = []
        for shift in range(1, factor):
            for rule in data["rules"]:
                twin = copy.deepcopy(rule)
                twin["id"] = f"{rule['id']}-X{shift}"
                twin.pop("aliases", None)
                twin["when"] = _moved(rule["when"], shift, params, ranges)
                copies.append(twin)
        scaled = {"layer": data["layer"], "description": "Copies of the option rules (benchmark).", "rules": copies}
        text = yaml.dump(scaled, Dumper=_NoAliases, sort_keys=False, allow_unicode=True)
        (rules / "21-scaled.yaml").write_text(text, encoding="utf-8")
    return rules, knowledge
