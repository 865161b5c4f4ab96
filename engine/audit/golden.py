"""Golden cases: one model and one loader, shared by the tests, `rules coverage` and `rules diff`.

A golden case file (tests/golden/*.yaml, shipped with the rules) holds `cases:`, each with an
`id` named for the rule or criterion it tests, an optional `base` example patient, the
`answers` it changes and the answers it `remove`s, an optional `profile`, the `criteria` it
exercises, and what it `expect`s. Every key is checked: a misspelled one (`expcet:`,
`statuse:`) is an error naming file, case and field, never a case that asserts nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from engine.errors import DataFileError, Problem, UsageError
from engine.model.knowledge import Strict
from engine.model.loading import load_file, read_data
from engine.model.status import StatusField
from engine.paths import data_dir


class ProfileDifferenceExpected(Strict):
    """Under another profile the option has `status`, and the difference names these rules and parameters."""

    status: StatusField
    rules: list[str] = []
    parameters: list[str] = []


class Expectation(Strict):
    """What a case expects of the result; each part is checked only when given."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    urgent_assessment: bool | None = None
    statuses: dict[str, StatusField] = {}
    reasons: dict[str, list[str]] = {}
    cautions: dict[str, list[str]] = {}
    next_steps: dict[str, list[str]] = {}
    declined: list[str] = []
    differs_under: dict[str, dict[str, StatusField]] = {}
    profile_differences: dict[str, dict[str, ProfileDifferenceExpected]] = {}
    unconfirmed: dict[str, list[str]] = {}

    def checks(self) -> bool:
        """Whether the case asserts anything at all."""
        return any(getattr(self, name) not in (None, {}, []) for name in type(self).model_fields)


class CaseEntry(Strict):
    """One case as written in its file."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    id: str = Field(min_length=1)
    base: str | None = None
    answers: dict[str, Any] = {}
    remove: list[str] = []
    profile: str | None = None
    criteria: list[str] = []
    expect: Expectation = Expectation()  # `rules coverage` runs cases that only exercise the rules


class CaseFile(Strict):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    cases: list[CaseEntry] = Field(min_length=1)


class GoldenCase(Strict):
    """A case with its answers resolved (its base example, then its own answers, less those removed)."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    id: str
    file: str
    profile: str | None
    criteria: list[str]
    answers: dict[str, Any]
    expect: Expectation


def load_cases(cases: Path | None = None, examples: Path | None = None) -> list[GoldenCase]:
    """Every case of every *.yaml file in the directory, validated, with its answers resolved."""
    folder = data_dir("golden", cases)  # the shipped golden cases (tests/golden of a checkout) unless given
    bases: dict[str, dict[str, Any]] = {}
    out: list[GoldenCase] = []
    for path in sorted(folder.glob("*.yaml")):
        written = load_file(CaseFile, path, entry_key="id", kind="case")
        for case in written.cases:
            answers: dict[str, Any] = {}
            if case.base is not None:
                if case.base not in bases:
                    bases[case.base] = _example(data_dir("examples", examples), case.base, path, case.id)
                answers.update(bases[case.base])
            answers.update(case.answers)
            for key in case.remove:
                answers.pop(key, None)
            out.append(
                GoldenCase(
                    id=case.id,
                    file=path.name,
                    profile=case.profile,
                    criteria=case.criteria,
                    answers=answers,
                    expect=case.expect,
                )
            )
    if not out:
        raise UsageError(f"no golden cases in `{folder}` (expected *.yaml files with `cases:`)")
    ids = [c.id for c in out]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise DataFileError(Problem(str(folder), f"case {twice[0]}", "id", f"case ids used twice: {', '.join(twice)}"))
    return out


def _example(folder: Path, name: str, path: Path, case_id: str) -> dict[str, Any]:
    base = folder / f"{name}.yaml"
    if not base.is_file():
        raise DataFileError(Problem(str(path), f"case {case_id}", "base", f"no example `{base}`"))
    loaded = read_data(base)
    if not isinstance(loaded, dict):
        raise DataFileError(Problem(str(base), "", "", "expected a mapping of answers"))
    return dict(loaded)
