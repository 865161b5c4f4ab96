"""How often each rule fires across the golden cases (`pain-sdm rules coverage`).

The cases (engine/audit/golden.py) are run through the real engine; a rule's firings are
counted from the trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.audit.golden import GoldenCase
from engine.evaluation.aid import DecisionAid


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
