"""Render a Result as plain text or Markdown for `pain-sdm evaluate`.

Both formats come from one walk over the result, so they always say the same things.
Patient-facing words come from the rule explanations and the knowledge base.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import Finding, OptionResult, Result
from engine.model.status import STATUS_GROUPS, STATUSES

Escape = Callable[[str], str]
"""How reviewer-written text is written out: as it is in plain text, through `md_escape` in Markdown."""

STATUS_LABELS: dict[str, str] = {s: s.label for s in STATUSES}
"""Each status in plain words (from engine.model.status)."""

DISCLAIMER = (
    "This is a discussion aid, not a prescription. It lists options to discuss; "
    "the decision is yours, made together with your clinician. Choosing no procedure is always possible."
)


def fact_value(aid: DecisionAid, fact: str, value: Any) -> str:
    """A fact's value in words: answers through the questionnaire, derived facts as yes/no."""
    question = aid.questionnaire.questions.get(fact)
    if question is not None:
        return question.describe(value)
    return "yes" if value is True else "no" if value is False else str(value)


def evidence_line(aid: DecisionAid, finding: Finding) -> str:
    """Reviewer-facing evidence: rule id and version, facts matched, parameters, sources, criteria."""
    parts = [f"rule {finding.rule_id} v{finding.rule_version}"]
    if finding.facts:
        parts.append("facts: " + "; ".join(f"{k} = {fact_value(aid, k, v)}" for k, v in finding.facts.items()))
    if finding.parameters:
        parts.append("thresholds: " + ", ".join(f"{k} = {v}" for k, v in finding.parameters.items()))
    if finding.sources:
        parts.append("sources: " + ", ".join(finding.sources))
    if finding.criteria:
        parts.append("criteria: " + ", ".join(finding.criteria))
    if finding.unconfirmed:
        parts.append("UNCONFIRMED: " + ", ".join(finding.unconfirmed))
    return " | ".join(parts)


def _option_lines(aid: DecisionAid, option: OptionResult, result: Result, esc: Escape) -> list[str]:
    md = esc is not str
    bullet = "- " if md else "  - "
    head = (
        f"### {esc(option.name)}: {STATUS_LABELS[option.status]}"
        if md
        else f"{option.name}: {STATUS_LABELS[option.status].upper()}"
    )
    lines = [head]
    if option.declined is not None:
        lines.append(f"{bullet}Declined by you: {esc(option.declined.text)}")
    lines.append("Why:" if not md else "**Why:**")
    for reason in option.reasons:
        mark = " (unconfirmed figure)" if reason.unconfirmed else ""
        lines.append(f"{bullet}{esc(reason.text)}{mark}")
        lines.append(f"{'  ' if md else '      '}{esc(f'[{evidence_line(aid, reason)}]')}")
    if option.next_steps:
        lines.append("Next steps:" if not md else "**Next steps:**")
        lines.extend(f"{bullet}{esc(step.text)}" for step in option.next_steps)
    if option.cautions and option.status.is_open:
        lines.append("Cautions:" if not md else "**Cautions:**")
        for caution in option.cautions:
            mark = " (unconfirmed figure)" if caution.unconfirmed else ""
            lines.append(f"{bullet}{esc(caution.text)}{mark} {esc(f'[{caution.rule_id} v{caution.rule_version}]')}")
    for diff in result.profile_differences:
        if diff.procedure == option.procedure:
            why = ", ".join(diff.rules) or "different thresholds"
            params = "; ".join(
                f"{pid}: " + " vs ".join(f"{v} ({p})" for p, v in vals.items()) for pid, vals in diff.parameters.items()
            )
            name = aid.rulebook.profiles[diff.profile].name
            said = (
                f"Under {name} ({diff.profile}) this would be: {STATUS_LABELS[diff.status].lower()} "
                f"(rules: {why}{'; ' + params if params else ''})"
            )
            lines.append(f"{bullet}{esc(said)}")
    lines.append("")
    return lines


def render(result: Result, aid: DecisionAid, fmt: Literal["text", "markdown"]) -> str:
    """The whole result as text or Markdown."""
    md = fmt == "markdown"
    esc: Escape = str
    if md:  # rule and knowledge text is written by reviewers: in Markdown it is text, never markup or a link
        from engine.presentation.templating import md_escape as esc
    profile = aid.rulebook.profiles[result.profile]
    lines = [
        "# Options to discuss" if md else "OPTIONS TO DISCUSS",
        "",
        DISCLAIMER,
        "",
        esc(
            f"Guideline profile: {profile.name} ({result.profile}). Rulebook version: {result.rulebook_version}. "
            f"Engine: {result.engine}."
        ),
        "",
    ]
    if result.urgent_assessment:
        lines.append("## Urgent assessment needed" if md else "!! URGENT ASSESSMENT NEEDED")
        lines.extend(f"- {esc(f.text)}" for f in result.urgent_reasons)
        lines.append("")
    for title, statuses in ((g.title, g.statuses) for g in STATUS_GROUPS):
        chosen = [o for o in result.options if o.status in statuses]
        if not chosen:
            continue
        lines.append(f"## {title}" if md else f"== {title} ==")
        lines.append("")
        for option in chosen:
            lines.extend(_option_lines(aid, option, result, esc))
    if result.disagreements:
        lines.append("## Where sources disagree" if md else "== Where sources disagree ==")
        for did in result.disagreements:
            d = aid.knowledge.disagreements[did]
            lines.append(f"- {esc(d.topic)}: {esc(d.plain)}")
            lines.extend(f"    - {esc(p)}" for p in d.positions)
        lines.append("")
    lines.append(DISCLAIMER)
    return "\n".join(lines) + "\n"
