"""Independent clinician cases: how often the rulebook gives the status the published criteria imply.

The cases in tests/data/independent_cases/ were written from the criteria register
(docs/reference/criteria.md), the questionnaire and the README's statuses and profiles alone,
without reading the rules, as a clinician testing the aid would. Each case is a patient's
answers under one profile and, for each procedure the criteria speak to, the status (or the
statuses, where the criterion allows more than one reading) that the named criteria imply.

They differ from the golden cases (engine/audit/golden.py), which pin what the rules do: these
record what the criteria imply, so a case may disagree with the rulebook. The known
disagreements are listed, with the rulebook's current status, in known_defects.yaml;
tests/test_independent_cases.py holds every other expectation and every listed one in place.
The answers are resolved as the golden loader does (a base, then the case's answers, less those
removed); the bases live beside the cases, not among the shipped examples, so that nothing in
the cases was chosen by the people who wrote the rules.

    .venv/bin/python tests/independent_cases.py           # match rates: per case, per status, per criterion
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from engine.errors import DataFileError, Problem
from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import Finding
from engine.model.knowledge import ProcedureId, Strict
from engine.model.loading import load_file
from engine.model.status import StatusField

ROOT = Path(__file__).resolve().parents[1]
CASES_DIR = ROOT / "tests/data/independent_cases"
DEFECTS_FILE = CASES_DIR / "known_defects.yaml"
REGISTER = ROOT / "docs/reference/criteria.md"
URGENT = "urgent_assessment"
"""The target name of a case's expectation about the urgent flag (the others are procedure ids)."""

_ROW = re.compile(r"^\|\s*([A-Z]+-\d\d)\s*\|", re.MULTILINE)


class OptionExpected(Strict):
    """What the named criteria imply for one procedure: a status (or any of several), or whether it is declined."""

    status: StatusField | list[StatusField] | None = None
    declined: bool | None = None
    criteria: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _asserts_something(self) -> OptionExpected:
        if self.status is None and self.declined is None:
            raise ValueError("give `status` (one or a list) or `declined`")
        return self

    def accepted(self) -> frozenset[str]:
        """The outcomes that meet the expectation, as `outcome()` writes them."""
        if self.status is None:
            return frozenset({_declined(self.declined is True)})
        wanted = self.status if isinstance(self.status, list) else [self.status]
        return frozenset(s.value for s in wanted)


class UrgentExpected(Strict):
    value: bool
    criteria: list[str] = Field(min_length=1)


class Expected(Strict):
    urgent_assessment: UrgentExpected | None = None
    options: dict[ProcedureId, OptionExpected] = {}


class Base(Strict):
    base: str | None = None
    answers: dict[str, Any] = {}
    remove: list[str] = []


class IndependentCase(Strict):
    """One patient under one profile, and what the criteria imply for them."""

    id: str = Field(min_length=1)
    base: str | None = None
    profile: str
    answers: dict[str, Any] = {}
    remove: list[str] = []
    note: str = ""
    expect: Expected

    @model_validator(mode="after")
    def _expects_something(self) -> IndependentCase:
        if self.expect.urgent_assessment is None and not self.expect.options:
            raise ValueError("a case must expect something (`urgent_assessment` or `options`)")
        return self


class CaseFile(Strict):
    bases: dict[str, Base] = {}
    cases: list[IndependentCase] = []


class KnownDefect(Strict):
    """A listed disagreement: what the rulebook gives now, what the criteria imply, and why."""

    case: str
    target: str
    criteria: list[str] = Field(min_length=1)
    rulebook: str
    expected: list[str] = Field(min_length=1)
    verdict: Literal["rulebook", "ambiguous", "inexpressible"]
    rule: str = ""
    why: str = Field(min_length=1)


class DefectFile(Strict):
    defects: list[KnownDefect] = []


class Check(Strict):
    """One expectation of one case, and what the rulebook gave."""

    case: str
    profile: str
    target: str
    criteria: tuple[str, ...]
    accepted: frozenset[str]
    actual: str
    reasons: tuple[str, ...]

    @property
    def matched(self) -> bool:
        return self.actual in self.accepted


class Resolved(Strict):
    case: IndependentCase
    file: str
    answers: dict[str, Any]


def _declined(flag: bool) -> str:
    return "declined" if flag else "not declined"


def register_ids(register: Path = REGISTER) -> set[str]:
    """The criterion ids of the criteria register."""
    return set(_ROW.findall(register.read_text(encoding="utf-8")))


def load(folder: Path = CASES_DIR, register: Path = REGISTER) -> list[Resolved]:
    """Every case of every case file, validated, with its answers resolved; criteria checked against the register."""
    files = {
        path: load_file(CaseFile, path, kind="case") for path in sorted(folder.glob("*.yaml")) if path != DEFECTS_FILE
    }
    bases: dict[str, Base] = {}
    for path, written in files.items():
        for name, base in written.bases.items():
            if name in bases:
                raise DataFileError(Problem(str(path), f"base {name}", "bases", "base defined twice"))
            bases[name] = base
    known = register_ids(register)
    out: list[Resolved] = []
    for path, written in files.items():
        for case in written.cases:
            where = (str(path), f"case {case.id}")
            named = [c for o in case.expect.options.values() for c in o.criteria]
            if case.expect.urgent_assessment is not None:
                named += case.expect.urgent_assessment.criteria
            unknown = sorted(set(named) - known)
            if unknown:
                raise DataFileError(Problem(*where, "criteria", f"not in the criteria register: {', '.join(unknown)}"))
            answers = _resolve(bases, case.base, where, ())
            answers.update(case.answers)
            for key in case.remove:
                answers.pop(key, None)
            out.append(Resolved(case=case, file=path.name, answers=answers))
    ids = [r.case.id for r in out]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise DataFileError(Problem(str(folder), f"case {twice[0]}", "id", f"case ids used twice: {', '.join(twice)}"))
    return out


def _resolve(bases: dict[str, Base], name: str | None, where: tuple[str, str], seen: tuple[str, ...]) -> dict[str, Any]:
    if name is None:
        return {}
    if name not in bases or name in seen:
        why = f"no base `{name}`" if name not in bases else f"bases name each other: {' -> '.join((*seen, name))}"
        raise DataFileError(Problem(*where, "base", why))
    base = bases[name]
    answers = _resolve(bases, base.base, where, (*seen, name))
    answers.update(base.answers)
    for key in base.remove:
        answers.pop(key, None)
    return answers


def run(aid: DecisionAid, cases: Iterable[Resolved]) -> list[Check]:
    """Evaluate each case through the library, one check per expectation."""
    checks: list[Check] = []
    for resolved in cases:
        case = resolved.case
        result = aid.evaluate(aid.parse_answers(resolved.answers, case.id), case.profile, compare_profiles=False)
        found: list[tuple[str, list[str], frozenset[str], str, list[Finding]]] = []
        urgent = case.expect.urgent_assessment
        if urgent is not None:
            wanted = frozenset({str(urgent.value).lower()})
            found.append(
                (URGENT, urgent.criteria, wanted, str(result.urgent_assessment).lower(), result.urgent_reasons)
            )
        for pid, want in case.expect.options.items():
            option = result.option(pid)
            actual = _declined(option.declined is not None) if want.status is None else option.status.value
            found.append((pid, want.criteria, want.accepted(), actual, option.reasons))
        checks += [
            Check(
                case=case.id,
                profile=case.profile,
                target=target,
                criteria=tuple(criteria),
                accepted=accepted,
                actual=actual,
                reasons=tuple(r.rule_id for r in reasons),
            )
            for target, criteria, accepted, actual, reasons in found
        ]
    return checks


def load_defects(path: Path = DEFECTS_FILE) -> list[KnownDefect]:
    return load_file(DefectFile, path, entry_key="case", kind="defect").defects if path.is_file() else []


def _rate(matched: int, total: int) -> str:
    return f"{matched}/{total} ({100 * matched / total:.0f}%)" if total else "0/0"


def report(checks: list[Check], out: Any = sys.stdout) -> None:
    """Print the match rate overall, per case, per procedure and expected status, and per criterion."""
    by_case: dict[str, list[Check]] = defaultdict(list)
    by_status: dict[tuple[str, str], list[Check]] = defaultdict(list)
    by_criterion: dict[str, list[Check]] = defaultdict(list)
    for check in checks:
        by_case[check.case].append(check)
        by_status[(check.target, "|".join(sorted(check.accepted)))].append(check)
        for criterion in check.criteria:
            by_criterion[criterion].append(check)
    whole = sum(all(c.matched for c in group) for group in by_case.values())
    print(f"expectations met: {_rate(sum(c.matched for c in checks), len(checks))}", file=out)
    print(f"cases met in full: {_rate(whole, len(by_case))}", file=out)
    print("\n## per case", file=out)
    for case, group in by_case.items():
        misses = [f"{c.target}: {c.actual}, expected {'|'.join(sorted(c.accepted))}" for c in group if not c.matched]
        print(f"{_rate(sum(c.matched for c in group), len(group)):>14}  {case}  {'; '.join(misses)}", file=out)
    print("\n## per procedure and expected status", file=out)
    for (target, status), group in sorted(by_status.items()):
        print(f"{_rate(sum(c.matched for c in group), len(group)):>14}  {target} = {status}", file=out)
    print("\n## per criterion", file=out)
    for criterion, group in sorted(by_criterion.items()):
        print(f"{_rate(sum(c.matched for c in group), len(group)):>14}  {criterion}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=CASES_DIR, help="the folder of case files")
    args = parser.parse_args(argv)
    checks = run(DecisionAid.load(), load(args.cases))
    report(checks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
