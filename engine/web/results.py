"""The clinician's results page, as plain data for the template: the same content as the terminal's.

The grid's column groups, the main benefits and risks, the fit with the patient's values and the
points about the leaning all come from `engine.presentation.grid` and `main_points`, so the
browser, the terminal and the summary show the same lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import Finding, OptionResult, Result
from engine.model.knowledge import Risk
from engine.model.status import OPEN_STATUSES
from engine.model.values import ValueNote, option_fit
from engine.presentation.grid import FIT_MARKS, IMPORTANCE_WORDS, first_sentence, grouped, leaning_points
from engine.presentation.main_points import MAIN_ITEMS, main_points
from engine.presentation.report import DISCLAIMER, STATUS_LABELS


@dataclass(frozen=True)
class OptionCard:
    """One option: its grid cells, and the reasons, cautions, next steps and fit shown under the grid."""

    option: OptionResult
    status_label: str
    open: bool
    what: str
    relief: str
    benefits: list[str]
    risks: list[Risk]
    recovery: str
    burden: str
    reasons: list[Finding]
    outweighed: list[Finding]
    fits: list[ValueNote]
    differences: list[str]


@dataclass(frozen=True)
class ResultsView:
    result: Result
    disclaimer: str
    profile_name: str
    groups: list[tuple[str, list[OptionCard]]]
    value_rows: list[tuple[str, list[tuple[str, str]]]]
    value_columns: list[str]
    disagreements: list[tuple[str, str]]
    leaning_points: list[str]
    leaning_name: str
    fit_words: dict[str, str]
    importance_words: dict[str, str]


def _card(aid: DecisionAid, result: Result, option: OptionResult, answers: dict[str, Any]) -> OptionCard:
    proc = aid.knowledge.procedures[option.procedure]
    main = main_points(proc, MAIN_ITEMS)
    decided = [r for r in option.reasons if r.status in (None, option.status)]
    differences = [
        f"Under {aid.rulebook.profiles[d.profile].name} this would be: {STATUS_LABELS[d.status].lower()} "
        f"[{', '.join(d.rules) or 'different thresholds'}]"
        for d in result.profile_differences
        if d.procedure == option.procedure
    ]
    return OptionCard(
        option=option,
        status_label=STATUS_LABELS[option.status],
        open=option.status in OPEN_STATUSES,
        what=first_sentence(proc.description),
        relief=proc.relief_duration,
        benefits=[b.text for b in main.benefits],
        risks=list(main.risks),
        recovery=proc.recovery,
        burden=proc.burden,
        reasons=decided,
        outweighed=[r for r in option.reasons if r not in decided],
        fits=option_fit(aid.values, answers, option.procedure),
        differences=differences,
    )


def results_view(aid: DecisionAid, result: Result, answers: dict[str, Any], leaning: str | None) -> ResultsView:
    groups = [(title, [_card(aid, result, o, answers) for o in options]) for title, options in grouped(result)]
    shown = [o for o in result.options if o.status in OPEN_STATUSES]
    notes = {o.procedure: {n.question: n for n in option_fit(aid.values, answers, o.procedure)} for o in shown}
    rows: list[tuple[str, list[tuple[str, str]]]] = []
    if shown:
        for first in option_fit(aid.values, answers, shown[0].procedure):
            label = f"{first.label} ({IMPORTANCE_WORDS.get(first.importance, first.importance)})"
            rows.append(
                (
                    label,
                    [
                        (notes[o.procedure][first.question].fit, FIT_MARKS[notes[o.procedure][first.question].fit][0])
                        for o in shown
                    ],
                )
            )
    known = leaning if leaning in aid.knowledge.procedures else None
    return ResultsView(
        result=result,
        disclaimer=DISCLAIMER,
        profile_name=aid.rulebook.profiles[result.profile].name,
        groups=groups,
        value_rows=rows,
        value_columns=[aid.knowledge.procedures[o.procedure].short_name for o in shown],
        disagreements=[
            (aid.knowledge.disagreements[d].topic, aid.knowledge.disagreements[d].plain) for d in result.disagreements
        ],
        leaning_points=leaning_points(aid, result, answers, known) if known else [],
        leaning_name=result.option(known).name if known else "",
        fit_words={k: v[0] for k, v in FIT_MARKS.items()},
        importance_words=dict(IMPORTANCE_WORDS),
    )
