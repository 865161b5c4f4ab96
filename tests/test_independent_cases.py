"""The independent clinician cases hold: every expectation the rulebook meets stays met, and every
listed defect stays as listed until the list is updated with its fix.

The cases (tests/data/independent_cases/, run by tests/independent_cases.py) say what the
published criteria imply, written without reading the rules; known_defects.yaml lists where the
rulebook gives something else, with the status it gives now.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from independent_cases import Check, KnownDefect, load, load_defects, run

from engine.errors import DataFileError
from engine.evaluation.aid import DecisionAid


@pytest.fixture(scope="module")
def checks(aid: DecisionAid) -> list[Check]:
    return run(aid, load())


@pytest.fixture(scope="module")
def defects() -> dict[tuple[str, str], KnownDefect]:
    listed = load_defects()
    keyed = {(d.case, d.target): d for d in listed}
    assert len(keyed) == len(listed), "a case and procedure listed twice in known_defects.yaml"
    return keyed


def test_expectations_the_rulebook_meets_stay_met(
    checks: list[Check], defects: dict[tuple[str, str], KnownDefect]
) -> None:
    failing = [
        f"{c.case} / {c.target}: {c.actual}, expected {sorted(c.accepted)}"
        f" ({', '.join(c.criteria)}; reasons {list(c.reasons)})"
        for c in checks
        if (c.case, c.target) not in defects and not c.matched
    ]
    assert not failing, "independent cases no longer met:\n" + "\n".join(failing)


def test_known_defects_are_as_listed(checks: list[Check], defects: dict[tuple[str, str], KnownDefect]) -> None:
    found = {(c.case, c.target): c for c in checks}
    changed: list[str] = []
    for key, defect in defects.items():
        check = found.get(key)
        if check is None:
            changed.append(f"{key}: listed, but no such case and procedure expectation")
        elif check.matched or check.actual != defect.rulebook:
            now = "now meets the criteria" if check.matched else f"now gives {check.actual}"
            changed.append(f"{key}: listed as {defect.rulebook}, {now}; update known_defects.yaml")
        elif sorted(check.accepted) != sorted(defect.expected) or list(check.criteria) != defect.criteria:
            changed.append(f"{key}: the listed expectation differs from the case's")
    assert not changed, "\n".join(changed)


@pytest.mark.parametrize(
    ("option", "field"),
    [
        ("nerve_block: {status: candidate, criteria: [NB-99]}", "NB-99"),
        ("nerve_block: {statuse: candidate, criteria: [NB-01]}", "statuse"),
        ("nerve_blok: {status: candidate, criteria: [NB-01]}", "nerve_blok"),
        ("nerve_block: {criteria: [NB-01]}", "status"),
    ],
)
def test_a_wrong_criterion_field_or_procedure_is_refused(tmp_path: Path, option: str, field: str) -> None:
    case = f"{{id: x, profile: consensus, expect: {{options: {{{option}}}}}}}"
    (tmp_path / "bad.yaml").write_text(f"cases:\n  - {case}\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=field):
        load(tmp_path)
