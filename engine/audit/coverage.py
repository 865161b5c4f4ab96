"""Golden cases as data, and how often each rule fires across them (`pain-sdm rules coverage`).

A golden case file (tests/golden/*.yaml) holds `cases:`, each with an `id`, optional `base`
(an example patient in examples/), `answers` that override it, `remove` (answers to drop,
i.e. make unknown), an optional `profile`, and `expect`. The cases are run through the real
engine (durable_rules); a rule's firings are counted from the trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import DataFileError, Problem, UsageError
from engine.evaluation.aid import DecisionAid
from engine.model.loading import read_data

REPO = Path(__file__).resolve().parents[2]


def default_dir(kind: str, given: Path | None) -> Path:
    """tests/golden or examples/ of the source checkout, unless a directory is given."""
    path = given if given is not None else REPO / ("tests/golden" if kind == "cases" else "examples")
    if not path.is_dir():
        option = "--cases" if kind == "cases" else "--examples"
        why = "is not a directory" if path.exists() else "does not exist"
        raise UsageError(f"{kind} directory `{path}` {why}; give one with {option} DIR")
    return path


@dataclass(frozen=True)
class GoldenCase:
    id: str
    file: str
    profile: str | None
    answers: dict[str, Any]
    expect: dict[str, Any]


def load_cases(cases_dir: Path | None = None, examples_dir: Path | None = None) -> list[GoldenCase]:
    """Every case of every *.yaml file in the directory, with its answers resolved."""
    cases_dir = default_dir("cases", cases_dir)
    examples: Path | None = None
    out: list[GoldenCase] = []
    for path in sorted(cases_dir.glob("*.yaml")):
        data = read_data(path)
        if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
            raise DataFileError(Problem(str(path), "", "cases", "expected a list of cases under `cases:`"))
        for index, case in enumerate(data["cases"]):
            entry = f"case {case.get('id', f'#{index + 1}')}" if isinstance(case, dict) else f"case #{index + 1}"
            if not isinstance(case, dict) or not isinstance(case.get("id"), str):
                raise DataFileError(Problem(str(path), entry, "id", "each case needs an `id` string"))
            answers: dict[str, Any] = {}
            if "base" in case:
                examples = examples or default_dir("examples", examples_dir)
                base = examples / f"{case['base']}.yaml"
                if not base.is_file():
                    raise DataFileError(Problem(str(path), entry, "base", f"no example `{base}`"))
                loaded = read_data(base)
                if not isinstance(loaded, dict):
                    raise DataFileError(Problem(str(base), "", "", "expected a mapping of answers"))
                answers.update(loaded)
            answers.update(case.get("answers") or {})
            for key in case.get("remove") or []:
                answers.pop(key, None)
            out.append(GoldenCase(case["id"], path.name, case.get("profile"), answers, case.get("expect") or {}))
    if not out:
        raise UsageError(f"no golden cases in `{cases_dir}` (expected *.yaml files with `cases:`)")
    return out


def case_outcome(aid: DecisionAid, case: GoldenCase) -> dict[str, Any]:
    """The statuses (and urgent flag) the case gets; the answers are validated first."""
    result = aid.evaluate(aid.parse_answers(case.answers, f"case {case.id}"), case.profile, compare_profiles=False)
    return {"urgent_assessment": result.urgent_assessment, **result.statuses()}


@dataclass
class RuleCoverage:
    rule_id: str
    layer: str
    profiles: list[str]
    fired: int = 0
    shown_false: int = 0
    cases: list[str] = field(default_factory=list)


@dataclass
class CoverageReport:
    cases: int
    profiles: dict[str, int]
    rules: list[RuleCoverage]

    @property
    def never_fired(self) -> list[RuleCoverage]:
        return [r for r in self.rules if r.fired == 0]

    @property
    def percent(self) -> float:
        return 100.0 * (len(self.rules) - len(self.never_fired)) / max(len(self.rules), 1)


def coverage(aid: DecisionAid, cases: list[GoldenCase]) -> CoverageReport:
    """Run every case and count, per active rule, the cases it fired in (and, for derived facts, was shown false)."""
    rules = {
        r.id: RuleCoverage(r.id, r.layer, list(r.profiles) or ["every profile"]) for r in aid.rulebook.rules if r.active
    }
    profiles: dict[str, int] = {}
    for case in cases:
        profile = aid.rulebook.check_profile(case.profile)
        profiles[profile] = profiles.get(profile, 0) + 1
        result = aid.evaluate(aid.parse_answers(case.answers, f"case {case.id}"), profile, compare_profiles=False)
        for finding in result.trace:
            entry = rules.get(finding.rule_id)
            if entry is None:
                continue
            if finding.holds:
                entry.fired += 1
                entry.cases.append(case.id)
            else:
                entry.shown_false += 1
    return CoverageReport(len(cases), profiles, list(rules.values()))


def render_coverage(report: CoverageReport, limit: int = 3) -> str:
    """Per rule: cases it fired in (the first few named), then the rules that never fired."""
    width = max((len(r.rule_id) for r in report.rules), default=4)
    used = ", ".join(f"{p} {n}" for p, n in report.profiles.items())
    lines = [
        f"{report.cases} golden cases ({used}); {len(report.rules)} active rules.",
        "fired: cases in which the rule's condition held; false: cases in which a derived fact's rule",
        "was evaluated false (the fact shown false); cases: the first cases it fired in.",
        "",
    ]
    lines.append(f"{'rule':{width}}  {'layer':12}  fired  false  cases")
    for r in sorted(report.rules, key=lambda r: (-r.fired, r.rule_id)):
        named = ", ".join(r.cases[:limit]) + (f", +{len(r.cases) - limit} more" if len(r.cases) > limit else "")
        false = str(r.shown_false) if r.layer == "derived" else "-"
        lines.append(f"{r.rule_id:{width}}  {r.layer:12}  {r.fired:5}  {false:>5}  {named}")
    never = report.never_fired
    lines += ["", f"Never fired ({len(never)}):" if never else "Every active rule fired in at least one case."]
    for r in never:
        where = "" if r.profiles == ["every profile"] else f" (applies only under {', '.join(r.profiles)})"
        lines.append(f"  {r.rule_id}{where}")
    lines.append("")
    lines.append(f"Rule coverage: {report.percent:.1f}% of active rules fired at least once.")
    return "\n".join(lines) + "\n"
