"""The printable discussion summary that the patient takes home: HTML, PDF and Markdown.

`build_summary` turns one evaluation (a `Result`) plus the knowledge base into a `Summary`:
plain data, in the order the page shows it. HTML and PDF both come from the one HTML
template (engine/presentation/templates/summary/summary.html, with its print stylesheet); Markdown
comes from its own small template over the same `Summary`, so all three say the same.
Nothing here is written per patient: every sentence comes from the knowledge base, the
rule explanations, the questionnaire or the patient's own answers.

Content follows the International Patient Decision Aid Standards: the decision, the
patient's situation, every option with benefits and harms in equal detail, a comparison
grid, values and how each option fits, cautions, disagreements between sources,
questions to ask, the SURE test, space for notes, and the sources with their dates.
Options open to discuss show all their benefits and risks; every other option shows its
main ones (`engine.presentation.main_points`, the same short list as the interview's grid).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from engine.errors import AnswersError, OutputError, UsageError
from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import Finding, OptionResult, Result, bears_on, criteria_held
from engine.interview.session import OTTAWA_CHOICES, OTTAWA_TEXTS, SESSION_FORMAT, SURE_ITEMS, Session, load_session
from engine.model.knowledge import FREQUENCY_BANDS, Figure, Item, Procedure
from engine.model.loading import read_data
from engine.model.status import OPEN_STATUSES, rank
from engine.model.values import conflicts, option_fit
from engine.output import write_atomic
from engine.presentation.main_points import main_points
from engine.presentation.readability import reading_grade
from engine.presentation.report import DISCLAIMER, STATUS_LABELS
from engine.presentation.templating import environment, html_to_pdf

Format = Literal["html", "pdf", "md"]
Paper = Literal["a4", "letter"]
FORMATS: tuple[str, ...] = ("html", "pdf", "md")
PAPERS: tuple[str, ...] = ("a4", "letter")

MAIN_QUESTIONS = (
    "conditions",
    "pain_region",
    "pain_pattern",
    "pain_duration_months",
    "pain_intensity",
    "function_impact",
)
"""The answers every summary shows first; other answers appear when they set an option's status."""

FREQUENCY_LABELS = {"common": "Common", "uncommon": "Uncommon", "rare": "Rare", "unknown": "How often: not known"}
FIT_LABELS = {"good": "Fits well", "mixed": "Fits in part", "poor": "Fits poorly"}
IMPORTANCE_LABELS = {"somewhat_important": "Somewhat important", "very_important": "Very important"}
UNCONFIRMED_MARK = "Some figures behind this are not yet confirmed."
SURE_CONFLICT = (
    "You answered 'no' to at least one question. This can mean you do not feel ready to decide yet. "
    "Talk it through with your clinician before you decide."
)
SURE_CLEAR = "You answered 'yes' to all four questions."
SHORT_SOURCES_NOTE = "Titles are cut short here; the web version gives them in full."
"""Printed under the short source list (the HTML on screen, the Markdown and `rules book` list them in full)."""
BRIEF_NOTE = (
    "Not open now, or you said no. Each shows its main benefit and its main or most serious risk; "
    "ask for the full lists."
)
PRINTED_QUESTIONS = 3
"""On paper, each option's first questions (the knowledge lists them most important first); the screen: all."""
PRINTED_QUESTIONS_NOTE = f"On paper, the first {PRINTED_QUESTIONS} for each option. The web version lists more."
SAME_REASON = "The reason is the same as for"
OUTWEIGHED = "Also found, but the reason above comes first:"
NO_VALUES_NOTE = (
    "You did not mark any of the listed values as important. You can still tell your clinician what matters most."
)
GRID_COLUMNS = 4
"""At most this many options side by side in one table, so that no column gets too narrow to read."""
BRIEF_ITEMS = 1
"""Options in short show this many main benefits and as many main risks (a serious risk never left out)."""
OPTION_GRID_COLUMNS = 4
"""At most this many options as columns of the page-1 Option Grid (conservative care always one of them)."""
DENOMINATOR = 100
"""Every figure is given as so many people in this many: one denominator throughout, so options compare."""
ICON_RADIUS = 3.9
"""An icon array is 10 rows of 10 people, each a circle of this radius centred in a cell 10 units square."""
_QUARTER = 4 / 3 * (2**0.5 - 1)
"""A cubic Bézier curve through a quarter circle has its control points this fraction of the radius out."""


@functools.cache
def person_path(index: int) -> str:
    """The SVG path data of person `index` (0 to 99, row by row) of an icon array: one circle.

    The circle is drawn as four Bézier quarters, starting at its right. All the affected people
    are then one path and the others another: the array is two SVG elements, not a hundred
    circles, which WeasyPrint reads and draws several times faster (the same picture).
    """
    r, k = ICON_RADIUS, round(ICON_RADIUS * _QUARTER, 3)
    right = 10 * (index % 10) + 5 + r
    middle = 10 * (index // 10) + 5
    return (
        f"M{right:g} {middle}c0 {k:g} {k - r:g} {r:g} {-r:g} {r:g}s{-r:g} {k - r:g} {-r:g} {-r:g}"
        f"s{r - k:g} {-r:g} {r:g} {-r:g}s{r:g} {r - k:g} {r:g} {r:g}z"
    )


FREQUENCY_KEY = (
    "How often, in words: "
    + "; ".join(
        f"{word} is {'more than 10' if word == 'common' else ('1 to 10' if word == 'uncommon' else 'fewer than 1')}"
        f" in {DENOMINATOR}{' people' if not index else ''}"
        for index, word in enumerate(FREQUENCY_BANDS)
    )
    + "."
)
"""One line on paper: the first band names who the figures count (people), the others follow it."""
GRID_QUESTIONS = (
    "What is it?",
    "How likely is it to help, and for how long?",
    "What are the risks?",
    "How long is recovery?",
    "What does it take?",
    "What happens if I do nothing?",
)
"""The Option Grid's rows: the questions patients ask, in their words."""
NO_FIGURE = "No study gives a number for this that fits you."
NOTHING_CHOSEN = "This is the choice with no procedure."
WITHOUT_PROCEDURE = "Without a procedure (see current care):"
OTHERS_LEAD = "Other options, with their status for you now:"


@dataclass(frozen=True)
class Line:
    """A question and the patient's answer, in words."""

    question: str
    answer: str


@dataclass(frozen=True)
class Point:
    """A sentence shown to the patient, flagged when a figure behind it is unconfirmed."""

    text: str
    unconfirmed: bool = False


@dataclass(frozen=True)
class FigureView:
    """One figure as the patient reads it: so many in 100, what happened, when, in whom, and from which study."""

    count: int
    outcome: str
    time_frame: str
    population: str
    source: str
    source_label: str
    fits: bool
    confirmed: bool
    compared_label: str = ""
    compared_count: int | None = None
    no_procedure: bool = False

    @property
    def filled(self) -> str:
        """The icon array's caption and its Markdown form: '48 of 100'."""
        return f"{self.count} of {DENOMINATOR}"

    @property
    def affected_people(self) -> str:
        """The icon array's filled circles (its first `count` people) as one SVG path."""
        return "".join(person_path(i) for i in range(self.count))

    @property
    def other_people(self) -> str:
        """The icon array's open circles (the people after the first `count`) as one SVG path."""
        return "".join(person_path(i) for i in range(self.count, DENOMINATOR))

    @property
    def sentence(self) -> str:
        return f"{self.count} in {DENOMINATOR} {self.outcome}, {self.time_frame}."

    @property
    def compared(self) -> str:
        if self.compared_count is None:
            return ""
        return f"{self.compared_label[0].upper()}{self.compared_label[1:]}: {self.compared_count} in {DENOMINATOR}."

    @property
    def comparison(self) -> FigureView:
        """The comparison group's figure, for its own icon array."""
        return dataclasses.replace(self, count=self.compared_count or 0, compared_count=None)

    @property
    def studied(self) -> str:
        return f"In a study of {self.population}."


@dataclass(frozen=True)
class RiskView:
    text: str
    frequency: str
    figures: tuple[FigureView, ...] = ()


@dataclass(frozen=True)
class OptionView:
    """One option as the patient sees it: status, reasons, benefits and harms side by side.

    `benefits` and `risks` are what the page shows: the full lists for an option discussed in
    detail (`detailed`), otherwise its main benefits and main risks (`engine.presentation.main_points`),
    the same number of each; `benefit_count` and `risk_count` are the full lists' lengths.
    """

    procedure: str
    name: str
    short_name: str
    status: str
    status_label: str
    open: bool
    detailed: bool
    declined: str | None
    leaning: bool
    description: str
    summary: str
    reasons: list[Point]
    outweighed: list[Point]
    next_steps: list[str]
    benefits: list[str]
    risks: list[RiskView]
    benefit_count: int
    risk_count: int
    relief: str
    recovery: str
    burden: str
    relief_short: str
    recovery_short: str
    burden_short: str
    involves: str
    cautions: list[Point]
    questions: list[str]
    other_profiles: list[str]
    benefit_figures: list[tuple[FigureView, ...]] = field(default_factory=list)
    key_benefit: FigureView | None = None
    key_harm: FigureView | None = None
    natural_course: FigureView | None = None
    main_risks: list[RiskView] = field(default_factory=list)


@dataclass(frozen=True)
class GridRow:
    """One patient question across the Option Grid's columns."""

    question: str
    cells: list[str]


@dataclass(frozen=True)
class OptionGrid:
    """Page 1: the options open to discuss and current care as columns, patients' questions as rows."""

    columns: list[OptionView]
    rows: list[GridRow]
    others: list[OptionView]


@dataclass(frozen=True)
class OttawaView:
    """The Ottawa Personal Decision Guide's answers, in words, and the next step tied to what is unclear."""

    answers: list[Line]
    unclear: list[str]
    next_step: str


@dataclass(frozen=True)
class AboutView:
    """'About this aid': dates, update policy, who made it, funding, conflicts, evidence method, reading grade."""

    content_date: str
    next_review: str
    update_policy: str
    authors: list[Line]
    reviewers: list[Line]
    not_reviewed: str
    funding: str
    conflicts: str
    evidence_method: str
    frequency_key: str
    studies: list[tuple[str, str]]


@dataclass(frozen=True)
class BriefItem:
    """Options not discussed in detail that share one status and the same reasons, next steps and notes."""

    options: list[OptionView]
    declined: str | None
    reasons: list[Point]
    outweighed: list[Point]
    next_steps: list[str]
    notes: list[str]

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.options]


@dataclass(frozen=True)
class BriefGroup:
    status_label: str
    items: list[BriefItem]


@dataclass(frozen=True)
class DeclinedNote:
    """Why options were marked declined (said once), and which options it applies to (short names)."""

    text: str
    names: list[str]


@dataclass(frozen=True)
class FitCell:
    fit: str
    label: str
    note: str


@dataclass(frozen=True)
class ValueRow:
    """One value the patient rated important, and how each open option fits it."""

    label: str
    importance: str
    fits: list[FitCell]


@dataclass(frozen=True)
class ValueGrid:
    """The values table for a few options at a time (the same columns as one grid table)."""

    options: list[OptionView]
    rows: list[ValueRow]


@dataclass(frozen=True)
class CautionView:
    text: str
    options: list[str]
    unconfirmed: bool
    said_above: str = ""
    """Its closing sentence when a caution above on the page closes with it too (every blood-thinner hold
    ends 'Never stop it on your own...'): the screen keeps it, the paper prints it once."""

    @property
    def printed(self) -> str:
        """The text the paper prints: without a closing sentence said above."""
        return self.text.removesuffix(self.said_above).rstrip() if self.said_above else self.text


@dataclass(frozen=True)
class DisagreementView:
    topic: str
    plain: str


@dataclass(frozen=True)
class SourceView:
    """One publisher's works cited on the page, each as (title, year); the printed page lists them in short."""

    publisher: str
    works: list[tuple[str, int]]

    @property
    def short_publisher(self) -> str:
        return short_publisher(self.publisher)

    @property
    def short_works(self) -> list[tuple[str, int]]:
        """Each work as (short title, year), in the order of `works`."""
        return [(short_title(title), year) for title, year in self.works]


SHORT_TITLE_WORDS = 6
"""A short title keeps at most this many words of the main title (then an ellipsis), as a reference list does."""

AUTHORS = re.compile(r"\(((?:[a-z]+ )*[A-Z][\w'-]+)(?: [A-Z]{1,3}\b| et al\.)[^)]*\)")
"""An author list in parentheses ('(Kumar K, Taylor RS, et al.)', '(Deer et al.)'): its first surname is group 1."""


def short_publisher(publisher: str) -> str:
    """A publisher as a short reference list names it.

    An acronym in parentheses stands for the name before it ('... Excellence (NICE)' is 'NICE'); an
    author list becomes its first author ('Pain (Kumar K, ...)' is 'Pain, Kumar et al.'); any other
    aside in parentheses is left out ('The BMJ (with MAGIC)' is 'The BMJ').
    """
    author = AUTHORS.search(publisher)
    name = AUTHORS.sub("", publisher)
    name = re.sub(r"^[^()/]*\(([A-Z][A-Z&]+)\)", r"\1", name)
    name = " ".join(re.sub(r"\s*\([^)]*\)", "", name).split())
    return f"{name}, {author.group(1)} et al." if author else name


def short_title(title: str) -> str:
    """A title's short form: its main title (before a colon or an aside), at most SHORT_TITLE_WORDS words,
    with its document code ('Chronic pain (primary and secondary) in over 16s ... (NG193)': 'Chronic pain (NG193)')."""
    code = re.search(r"\(([A-Z]{1,3}\d{2,}|[A-Z]{2}\d{6})\)", title)
    main = re.split(r":\s|\s\(|\?\s|,\s|\s-\s", " ".join(title.split()), maxsplit=1)[0].rstrip(" .")
    words = main.split()
    if len(words) > SHORT_TITLE_WORDS:
        main = " ".join(words[:SHORT_TITLE_WORDS]).rstrip(",;") + "\u2026"
    return f"{main} ({code.group(1)})" if code and code.group(1) not in main else main


@dataclass(frozen=True)
class SureView:
    answers: list[Line]
    score: int
    conflict: bool
    message: str


@dataclass(frozen=True)
class Summary:
    """Everything the summary shows, in page order; every renderer reads only this."""

    date: str
    clinician: str
    patient_label: str
    paper: str
    profile: str
    profile_name: str
    rulebook_version: str
    disclaimer: str
    decision: str
    urgent: list[str]
    situation: list[Line]
    shaped_by: list[Line]
    concerns: str
    options: list[OptionView]
    detailed: list[OptionView]
    brief: list[OptionView]
    brief_groups: list[BriefGroup]
    declined_notes: list[DeclinedNote]
    values: list[ValueRow]
    grid: list[list[OptionView]]
    value_grid: list[ValueGrid]
    leaning: str
    value_conflicts: list[Point]
    cautions: list[CautionView]
    disagreements: list[DisagreementView]
    profile_note: str
    sure: SureView | None
    notes: str
    decision_made: str
    sources: list[SourceView]
    option_grid: OptionGrid
    about: AboutView
    ottawa: OttawaView | None = None
    reading_grade: float = 0.0
    unconfirmed_mark: str = UNCONFIRMED_MARK
    frequency_key: str = FREQUENCY_KEY
    others_lead: str = OTHERS_LEAD
    brief_note: str = BRIEF_NOTE
    short_sources_note: str = SHORT_SOURCES_NOTE
    printed_questions: int = PRINTED_QUESTIONS
    printed_questions_note: str = PRINTED_QUESTIONS_NOTE
    same_reason: str = SAME_REASON
    outweighed_label: str = OUTWEIGHED
    no_values_note: str = NO_VALUES_NOTE
    frequency_labels: dict[str, str] = field(default_factory=lambda: dict(FREQUENCY_LABELS))

    @property
    def questions_cut(self) -> bool:
        """Whether the paper leaves out some option's later questions (and must say so)."""
        return any(len(o.questions) > self.printed_questions for o in self.detailed)

    @property
    def caution_groups(self) -> list[tuple[list[str], list[CautionView]]]:
        """The cautions under the options they apply to, in order of first appearance."""
        groups: dict[tuple[str, ...], list[CautionView]] = {}
        for caution in self.cautions:
            groups.setdefault(tuple(caution.options), []).append(caution)
        closings: set[str] = set()
        out = []
        for names, cautions in groups.items():
            marked = []
            for caution in cautions:
                closing = last_sentence(caution.text)
                said = closing if closing in closings and closing != caution.text.strip() else ""
                closings.add(closing)
                marked.append(dataclasses.replace(caution, said_above=said))
            out.append((list(names), marked))
        return out


def first_sentence(text: str) -> str:
    """The first sentence of a knowledge text: the short form used in the comparison grid."""
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]


def last_sentence(text: str) -> str:
    """The closing sentence of a text (the whole text when it is one sentence)."""
    return re.split(r"(?<=[.!?])\s+", text.strip())[-1]


SHORT_SENTENCE = 40
"""A first sentence shorter than this many characters ('It varies.') says too little on its own in a grid cell."""


GRID_SENTENCES = 2
"""A grid cell says at most this many sentences; a figure shown in it counts as one."""


def grid_sentences(text: str, room: int = GRID_SENTENCES) -> str:
    """One sentence for a grid cell, or two when the first is too short to say much.

    With room for one sentence only (a figure takes the other), a too-short first sentence
    ('It varies.') gives way to the one after it.
    """
    parts = re.split(r"(?<=[.!?])\s+", " ".join(text.split()), maxsplit=2)
    if len(parts[0]) >= SHORT_SENTENCE or len(parts) == 1:
        return parts[0]
    return " ".join(parts[:2]) if room > 1 else parts[1]


def _question_text(prompt: str) -> str:
    """A question's prompt without trailing instructions ('Choose all that apply.')."""
    end = prompt.find("?")
    return prompt[: end + 1] if end >= 0 else prompt


def _involves(proc: Procedure) -> str:
    parts = [
        word
        for flag, word in (
            (proc.needle, "a needle"),
            (proc.steroid, "a steroid"),
            (proc.fluoroscopy, "X-ray guidance"),
            (proc.implant, "a device left in the body"),
        )
        if flag
    ]
    if not parts:
        return "No needle, no device"
    text = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return text[0].upper() + text[1:]


def _answer_facts(result: Result, findings: Iterable[Finding]) -> list[str]:
    """The answers behind these findings, following derived facts back to the answers they came from."""
    by_derived: dict[str, list[Finding]] = {}
    for f in result.derived:
        if f.derived:
            by_derived.setdefault(f.derived, []).append(f)
    todo = [fact for f in findings for fact in f.facts]
    seen: set[str] = set()
    answers: list[str] = []
    while todo:
        fact = todo.pop(0)
        if fact in seen:
            continue
        seen.add(fact)
        if fact in by_derived:
            todo.extend(k for f in by_derived[fact] for k in f.facts)
        else:
            answers.append(fact)
    return answers


def _situation(aid: DecisionAid, answers: dict[str, Any], result: Result) -> tuple[list[Line], list[Line]]:
    questions = aid.questionnaire.questions

    def line(qid: str) -> Line:
        q = questions[qid]
        return Line(q.short or _question_text(q.prompt), q.describe(answers.get(qid)))

    findings = [r for o in result.options for r in o.reasons]
    facts = set(_answer_facts(result, findings))
    main = [qid for qid in MAIN_QUESTIONS if qid in questions]
    shaped = [
        qid
        for qid, q in questions.items()
        if qid in facts and qid not in MAIN_QUESTIONS and q.type != "text" and answers.get(qid) is not None
    ]
    implied = _implied_by_follow_ups(aid, answers, main + shaped)
    return [line(q) for q in main if q not in implied], [line(q) for q in shaped if q not in implied]


def _implied_by_follow_ups(aid: DecisionAid, answers: dict[str, Any], shown: list[str]) -> set[str]:
    """Answers that a shown follow-up already implies ("tried it? yes" above "for how many weeks? 20"):
    the follow-up is asked only when that one answer was given, so printing both says it twice."""
    implied = set()
    for qid in shown:
        gate = aid.questionnaire.questions[qid].ask_if
        if answers.get(qid) is not None and gate is not None and gate.fact is not None and gate.op == "==":
            if str(answers.get(gate.fact)) == str(gate.value):
                implied.add(gate.fact)
    return implied


def _status_counts(result: Result) -> str:
    """How many options have each status, in the words and order the page's tables show them."""
    counts: dict[str, int] = {}
    for option in result.options:
        counts[option.status] = counts.get(option.status, 0) + 1
    return " ".join(f"{STATUS_LABELS[status]}: {n}." for status, n in sorted(counts.items(), key=lambda c: rank(c[0])))


def _decision(aid: DecisionAid, answers: dict[str, Any], result: Result) -> str:
    """The decision in short sentences, counting statuses as the grid and the lists below show them."""
    region = aid.questionnaire.questions.get("pain_region")
    value = answers.get("pain_region")
    where = (
        f" Where it hurts most: {region.label_of(value).lower()}."
        if region is not None and value not in (None, "unknown")
        else ""
    )
    count = len(result.options)
    return (
        f"You and your clinician are choosing how to treat your pain.{where} "
        f"This summary shows all {count} options. {_status_counts(result)}"
    )


def _per_100(value: float) -> int:
    """A rate as whole people per 100, halves rounded up (84.5 is 85), as the source's own rate rounds."""
    return math.floor(value + 0.5)


def study_label(aid: DecisionAid, source_id: str) -> str:
    """A study as the page names it: first author and year ('Kumar 2007'), else its publisher and year."""
    source = aid.knowledge.sources[source_id]
    author = re.search(r"\(((?:[a-z]+ )*[A-Z][\w'-]*)", source.publisher)
    return f"{author.group(1) if author else source.publisher} {source.year}"


def _figure_view(aid: DecisionAid, figure: Figure, conditions: set[str]) -> FigureView:
    compared = figure.compared_with
    return FigureView(
        count=_per_100(figure.per_100),
        outcome=figure.outcome,
        time_frame=figure.time_frame,
        population=" ".join(figure.population.split()),
        source=figure.source,
        source_label=study_label(aid, figure.source),
        fits=bool(conditions.intersection(figure.conditions)),
        confirmed=figure.confirmed,
        compared_label=compared.label if compared else "",
        compared_count=_per_100(compared.per_100) if compared else None,
        no_procedure=bool(compared and compared.no_procedure),
    )


def _figures(aid: DecisionAid, item: Item, conditions: set[str]) -> tuple[FigureView, ...]:
    """The figures about this item that fit the patient: studied in people with one of the patient's conditions."""
    views = (_figure_view(aid, f, conditions) for f in item.figures)
    return tuple(v for v in views if v.fits)


def _point(finding: Finding) -> Point:
    return Point(finding.text, bool(finding.unconfirmed))


def _outweighed(reason: Finding, option: OptionResult) -> bool:
    """A reason for an open status under an option that is closed now: true, but it did not set the status."""
    return option.status not in OPEN_STATUSES and reason.status in OPEN_STATUSES


def _risk_view(aid: DecisionAid, risk: Any, conditions: set[str]) -> RiskView:
    return RiskView(" ".join(risk.text.split()), risk.frequency, _figures(aid, risk, conditions))


def _option_view(
    aid: DecisionAid,
    option: OptionResult,
    result: Result,
    leaning: str | None,
    procedures: dict[str, Procedure],
    conditions: set[str],
) -> OptionView:
    proc = procedures[option.procedure]
    detailed = (option.status in OPEN_STATUSES and option.declined is None) or leaning == option.procedure
    benefits, risks = (proc.benefits, proc.risks) if detailed else main_points(proc, BRIEF_ITEMS)
    benefit_figures = [_figures(aid, b, conditions) for b in benefits]
    risk_views = [_risk_view(aid, r, conditions) for r in risks]
    all_benefit_figures = [f for b in proc.benefits for f in _figures(aid, b, conditions)]
    all_harm_figures = [f for r in proc.risks for f in _figures(aid, r, conditions)]
    key_benefit = all_benefit_figures[0] if all_benefit_figures else None
    if option.procedure == "conservative_care":
        natural = key_benefit
    else:
        natural = next((f for f in all_benefit_figures if f.no_procedure), None)
    other = [
        f"Under {aid.rulebook.profiles[d.profile].name}, this would be: {STATUS_LABELS[d.status].lower()}."
        for d in result.profile_differences
        if d.procedure == option.procedure
    ]
    return OptionView(
        procedure=option.procedure,
        name=option.name,
        short_name=proc.short_name,
        status=option.status,
        status_label=STATUS_LABELS[option.status],
        open=option.status in OPEN_STATUSES,
        detailed=detailed,
        declined=option.declined.text if option.declined is not None else None,
        leaning=leaning == option.procedure,
        description=" ".join(proc.description.split()),
        summary=first_sentence(proc.description),
        reasons=[_point(r) for r in option.reasons if not _outweighed(r, option)],
        outweighed=[_point(r) for r in option.reasons if _outweighed(r, option)],
        next_steps=[s.text for s in option.next_steps],
        benefits=[" ".join(b.text.split()) if detailed else first_sentence(" ".join(b.text.split())) for b in benefits],
        risks=risk_views if detailed else [dataclasses.replace(r, text=first_sentence(r.text)) for r in risk_views],
        benefit_figures=benefit_figures,
        key_benefit=key_benefit,
        key_harm=all_harm_figures[0] if all_harm_figures else None,
        natural_course=natural,
        main_risks=[
            _risk_view(aid, r, conditions)
            for r in main_points(proc, GRID_SENTENCES - (1 if all_harm_figures else 0)).risks
        ],
        benefit_count=len(proc.benefits),
        risk_count=len(proc.risks),
        relief=" ".join(proc.relief_duration.split()),
        recovery=" ".join(proc.recovery.split()),
        burden=" ".join(proc.burden.split()),
        relief_short=grid_sentences(proc.relief_duration),
        recovery_short=grid_sentences(proc.recovery),
        burden_short=grid_sentences(proc.burden),
        involves=_involves(proc),
        cautions=[_point(c) for c in option.cautions],
        questions=list(proc.questions),
        other_profiles=other,
    )


def _brief_groups(views: list[OptionView]) -> list[BriefGroup]:
    """Options not discussed in detail, by status (most restrictive first), sharing identical reasons."""
    groups: dict[str, dict[tuple[Any, ...], BriefItem]] = {}
    for view in sorted(views, key=lambda v: -rank(v.status)):
        key = (
            view.declined,
            tuple(view.reasons),
            tuple(view.outweighed),
            tuple(view.next_steps),
            tuple(view.other_profiles),
        )
        items = groups.setdefault(view.status, {})
        if key in items:
            items[key].options.append(view)
        else:
            items[key] = BriefItem(
                [view], view.declined, view.reasons, view.outweighed, view.next_steps, view.other_profiles
            )
    return [BriefGroup(STATUS_LABELS[status], list(items.values())) for status, items in groups.items()]


def _declined_notes(views: list[OptionView]) -> list[DeclinedNote]:
    notes: dict[str, list[str]] = {}
    for view in views:
        if view.declined:
            notes.setdefault(view.declined, []).append(view.short_name)
    return [DeclinedNote(text, names) for text, names in notes.items()]


def _chunks(views: list[OptionView]) -> list[list[OptionView]]:
    """Split the options into near-equal tables of at most GRID_COLUMNS columns each."""
    count = -(-len(views) // GRID_COLUMNS)
    size = -(-len(views) // count) if views else 0
    return [views[i : i + size] for i in range(0, len(views), size)] if views else []


def _value_grid(rows: list[ValueRow], grid: list[list[OptionView]]) -> list[ValueGrid]:
    out, start = [], 0
    for chunk in grid:
        end = start + len(chunk)
        out.append(ValueGrid(chunk, [ValueRow(r.label, r.importance, r.fits[start:end]) for r in rows]))
        start = end
    return out


def _values(aid: DecisionAid, answers: dict[str, Any], shown: list[OptionView]) -> list[ValueRow]:
    rows: dict[str, ValueRow] = {}
    for view in shown:
        for note in option_fit(aid.values, answers, view.procedure):
            row = rows.setdefault(note.question, ValueRow(note.label, IMPORTANCE_LABELS[note.importance], []))
            row.fits.append(FitCell(note.fit, FIT_LABELS[note.fit], note.note))
    return list(rows.values())


def _cautions(result: Result, shown: set[str]) -> list[CautionView]:
    """Cautions for the options discussed in detail, each once, naming the options it applies to."""
    seen: dict[str, tuple[Finding, list[str]]] = {}
    for option in result.options:
        if option.procedure not in shown:
            continue
        for c in option.cautions:
            seen.setdefault(c.rule_id, (c, []))[1].append(option.name)
    return [CautionView(c.text, names, bool(c.unconfirmed)) for c, names in seen.values()]


def _sources(aid: DecisionAid, result: Result, shown: set[str]) -> list[SourceView]:
    """Sources cited by the findings on the page and by the knowledge about every option on it."""
    cited: list[str] = []
    for option in result.options:
        found = [*option.reasons, *([option.declined] if option.declined else [])]
        found += option.cautions if option.procedure in shown else []
        cited += [s for f in found for s in f.sources]
        cited += aid.knowledge.procedures[option.procedure].sources
    cited += [s for f in result.urgent_reasons for s in f.sources]
    groups: dict[str, list[tuple[str, int]]] = {}
    seen: set[Any] = set()
    for sid in dict.fromkeys(cited):
        source = aid.knowledge.sources[sid]
        if not source.for_patients:
            continue  # news, AI summaries and the project's own material stay in the reviewer's trail
        keys = {source.url or sid, (re.sub(r"\W+", " ", source.title).lower().strip(), source.year)}
        if seen.intersection(keys):
            continue  # one work under two ids (the same address, or the same title and year): listed once
        seen.update(keys)
        work = (source.title, source.year)
        works = groups.setdefault(source.publisher, [])
        if work not in works:
            works.append(work)
    return [
        SourceView(publisher, sorted(works, key=lambda w: (-w[1], w[0])))
        for publisher, works in sorted(groups.items(), key=lambda g: g[0].lower())
    ]


def _likely(view: OptionView) -> str:
    """The key benefit's figure, if any, and how long relief lasts: two sentences at most."""
    figure = view.key_benefit
    if figure is None:
        return view.relief_short
    return f"{figure.sentence} {grid_sentences(view.relief, GRID_SENTENCES - 1)}"


def _risks_cell(view: OptionView) -> str:
    """The key harm's figure, if any, and the main risks (a serious one never left out): two sentences at most."""
    harm = f"{view.key_harm.sentence} " if view.key_harm else ""
    words = " ".join(f"{FREQUENCY_LABELS[r.frequency]}: {first_sentence(r.text)}" for r in view.main_risks)
    return f"{harm}{words}"


def _nothing_cell(view: OptionView, care: OptionView | None) -> str:
    """The natural course beside this option: its study's no-procedure group, else current care's own figure."""
    if view.procedure == "conservative_care":
        return NOTHING_CHOSEN
    figure = view.natural_course
    if figure is not None and figure.compared_count is not None:
        label = f"{figure.compared_label[0].upper()}{figure.compared_label[1:]}"
        return f"{label}, {figure.compared_count} in {DENOMINATOR} {figure.outcome}, {figure.time_frame}."
    course = care.natural_course if care is not None else None
    if course is not None:
        return f"{WITHOUT_PROCEDURE} {course.sentence}"
    return NO_FIGURE


def _option_grid(views: list[OptionView]) -> OptionGrid:
    """Page 1: current care and the options open to discuss (at most OPTION_GRID_COLUMNS); the rest named below."""
    care = [v for v in views if v.procedure == "conservative_care"]
    open_ = [v for v in views if v.detailed and v.procedure != "conservative_care"]
    columns = (care + open_)[:OPTION_GRID_COLUMNS]
    shown = {v.procedure for v in columns}
    cells = {
        GRID_QUESTIONS[0]: [v.summary for v in columns],
        GRID_QUESTIONS[1]: [_likely(v) for v in columns],
        GRID_QUESTIONS[2]: [_risks_cell(v) for v in columns],
        GRID_QUESTIONS[3]: [v.recovery_short for v in columns],
        GRID_QUESTIONS[4]: [v.burden_short for v in columns],
        GRID_QUESTIONS[5]: [_nothing_cell(v, care[0] if care else None) for v in columns],
    }
    return OptionGrid(
        columns, [GridRow(q, c) for q, c in cells.items()], [v for v in views if v.procedure not in shown]
    )


def shown_figures(views: list[OptionView], grid: OptionGrid) -> list[FigureView]:
    """Every figure the page shows: beside benefits and risks, and in the Option Grid's columns."""
    found: list[FigureView] = []
    for view in views:
        found += [f for figures in view.benefit_figures for f in figures]
        found += [f for risk in view.risks for f in risk.figures]
    for view in grid.columns:
        found += [f for f in (view.key_benefit, view.key_harm, view.natural_course) if f is not None]
    return found


def _about(aid: DecisionAid, figures: list[FigureView]) -> AboutView:
    """The disclosures: dates from the rules' reviews, policy and people from knowledge/about.yaml, the studies used."""
    about = aid.knowledge.about
    reviewed = max(r.last_reviewed for r in aid.rulebook.rules)
    listed = []
    for sid in dict.fromkeys(f.source for f in figures):
        source = aid.knowledge.sources[sid]
        listed.append((study_label(aid, sid), f"{' '.join(source.title.split())}. {source.publisher}, {source.year}."))
    return AboutView(
        content_date=reviewed.isoformat(),
        next_review=(reviewed + dt.timedelta(days=about.review_interval_days)).isoformat(),
        update_policy=" ".join(about.update_policy.split()),
        authors=[Line(p.name, p.role) for p in about.authors],
        reviewers=[Line(p.name, p.role) for p in about.reviewers],
        not_reviewed=about.not_reviewed,
        funding=about.funding,
        conflicts=" ".join(about.conflicts.split()),
        evidence_method=" ".join(about.evidence_method.split()),
        frequency_key=FREQUENCY_KEY,
        studies=listed,
    )


NO_NEXT_STEP = "Talk with your clinician about what is still unclear before you decide."
OTHERS_QUESTION = "Who else is part of this choice?"


def _ottawa(session: Session | None) -> OttawaView | None:
    """The Ottawa guide's answers, with what is still unclear (SURE items answered no) and the next step."""
    if session is None or session.ottawa is None:
        return None
    guide = session.ottawa
    answers = [Line(prompt, choices[getattr(guide, key)]) for key, (prompt, choices) in OTTAWA_CHOICES.items()]
    if guide.others.strip():
        answers.append(Line(OTTAWA_TEXTS["others"].removesuffix(" (optional)"), guide.others.strip()))
    sure = session.sure
    unclear = [text for key, text in SURE_ITEMS.items() if sure is not None and not getattr(sure, key)]
    return OttawaView(answers, unclear, guide.next_step.strip() or NO_NEXT_STEP)


def _sure(session: Session | None) -> SureView | None:
    if session is None or session.sure is None:
        return None
    sure = session.sure
    answers = [Line(text, "yes" if getattr(sure, key) else "no") for key, text in SURE_ITEMS.items()]
    return SureView(answers, sure.score, sure.conflict, SURE_CONFLICT if sure.conflict else SURE_CLEAR)


def build_summary(
    aid: DecisionAid,
    answers: BaseModel,
    *,
    result: Result | None = None,
    profile: str | None = None,
    session: Session | None = None,
    paper: str = "a4",
    patient_label: str | None = None,
    clinician: str | None = None,
    today: dt.date | None = None,
) -> Summary:
    """Everything the summary shows for these answers (and the saved session, when there is one)."""
    if paper not in PAPERS:
        raise UsageError(f"unknown paper size `{paper}`; choose one of: {', '.join(PAPERS)}")
    if result is None:
        result = aid.evaluate(answers, profile or (session.profile if session else None))
    given = answers.model_dump()
    leaning = session.leaning if session and session.leaning in aid.knowledge.procedures else None
    conditions = set(given.get("conditions") or [])
    views = [_option_view(aid, o, result, leaning, aid.knowledge.procedures, conditions) for o in result.options]
    detailed = [v for v in views if v.detailed]
    shown = {v.procedure for v in detailed}
    main, shaped = _situation(aid, given, result)
    values = _values(aid, given, detailed)
    grid = _chunks(detailed)
    value_conflicts = (
        [
            Point(f"{n.label} ({IMPORTANCE_LABELS[n.importance].lower()} to you): {n.note}")
            for n in conflicts(aid.values, given, leaning)
        ]
        if leaning
        else []
    )
    names = {o.procedure: o.name for o in result.options}
    cited = criteria_held(result.trace)
    found = [aid.knowledge.disagreements[i] for i in result.disagreements]
    told = {c for o in result.options if o.procedure in shown for f in o.cautions for c in f.criteria}
    relevant = [d for d in found if bears_on(d, shown, cited) and not told.intersection(d.told_by)]
    disagreements = [DisagreementView(d.topic, " ".join(d.plain.split())) for d in relevant]
    changed = sorted({d.procedure for d in result.profile_differences}, key=list(names).index)
    profile_note = (
        f"The advice here comes from one set of guidance: {aid.rulebook.profiles[result.profile].name}. "
        f"Other guidance would give {len(changed)} option{'s' if len(changed) != 1 else ''} another status. "
        f"You can see this beside {'each one' if len(changed) != 1 else 'it'}."
        if changed
        else ""
    )
    label = patient_label if patient_label is not None else str(given.get("patient_label") or "")
    when = today or (session.updated.date() if session else dt.date.today())
    grid_page = _option_grid(views)
    summary = Summary(
        date=when.isoformat(),
        clinician=clinician if clinician is not None else (session.clinician if session else ""),
        patient_label=label.strip(),
        paper=paper,
        profile=result.profile,
        profile_name=aid.rulebook.profiles[result.profile].name,
        rulebook_version=result.rulebook_version,
        disclaimer=DISCLAIMER,
        decision=_decision(aid, given, result),
        urgent=[f.text for f in result.urgent_reasons],
        situation=main,
        shaped_by=shaped,
        concerns=str(given.get("concerns") or "").strip(),
        options=views,
        detailed=detailed,
        brief=[v for v in views if not v.detailed],
        brief_groups=_brief_groups([v for v in views if not v.detailed]),
        declined_notes=_declined_notes([v for v in views if not v.detailed]),
        values=values,
        grid=grid,
        value_grid=_value_grid(values, grid),
        leaning=names[leaning] if leaning else "",
        value_conflicts=value_conflicts,
        cautions=_cautions(result, shown),
        disagreements=disagreements,
        profile_note=profile_note,
        sure=_sure(session),
        notes=session.notes.strip() if session else "",
        decision_made=session.decision.strip() if session else "",
        sources=_sources(aid, result, shown),
        option_grid=grid_page,
        about=_about(aid, shown_figures(views, grid_page)),
        ottawa=_ottawa(session),
    )
    return dataclasses.replace(summary, reading_grade=reading_grade(patient_text(summary)))


def patient_text(s: Summary) -> str:
    """The prose the patient reads on the page (not the source titles), for measuring its reading grade."""
    parts: list[str] = [s.disclaimer, s.decision, *s.urgent, s.brief_note, s.frequency_key]
    for row in s.option_grid.rows:
        parts += row.cells
    for o in s.options:
        parts += [o.description if o.detailed else "", *(r.text for r in o.reasons), *o.next_steps, *o.benefits]
        parts += [r.text for r in o.risks] + (o.questions if o.detailed else [])
    parts += [c.text for c in s.cautions] + [d.plain for d in s.disagreements] + [s.profile_note]
    parts += [s.about.update_policy, s.about.funding, s.about.conflicts, s.about.evidence_method, s.about.not_reviewed]
    return " ".join(p if p.rstrip().endswith((".", "?", "!", ":")) else f"{p}." for p in parts if p.strip())


def render_html(summary: Summary, grid_only: bool = False) -> str:
    """The summary as one self-contained HTML page (print stylesheet inlined); `grid_only`: page 1 alone."""
    return environment().get_template("summary/summary.html").render(s=summary, grid_only=grid_only)


def render_markdown(summary: Summary, grid_only: bool = False) -> str:
    return environment().get_template("summary/summary.md.j2").render(s=summary, grid_only=grid_only)


def render_pdf(summary: Summary, grid_only: bool = False) -> bytes:
    """The summary as tagged PDF (PDF/UA), from the same HTML as `render_html`."""
    return html_to_pdf(render_html(summary, grid_only), tagged=True)


def render_summary(summary: Summary, fmt: str, grid_only: bool = False) -> str | bytes:
    """The summary as `html` or `md` text, or `pdf` bytes; `grid_only` gives the Option Grid page alone."""
    if fmt == "html":
        return render_html(summary, grid_only)
    if fmt == "md":
        return render_markdown(summary, grid_only)
    if fmt == "pdf":
        return render_pdf(summary, grid_only)
    raise UsageError(f"unknown summary format `{fmt}`; choose one of: {', '.join(FORMATS)}")


def read_input(aid: DecisionAid, path: Path) -> tuple[BaseModel, Session | None]:
    """An answers file, or a saved session (recognised by its `format`), as validated answers."""
    data = read_data(path, AnswersError)
    if isinstance(data, dict) and data.get("format") == SESSION_FORMAT:
        session = load_session(path)
        return aid.parse_answers(session.answers, str(path)), session
    return aid.read_answers(path), None


SUFFIXES: dict[str, Format] = {".pdf": "pdf", ".html": "html", ".htm": "html", ".md": "md", ".markdown": "md"}


def summary_format(fmt: str | None, output: Path) -> str:
    """The format: as given, else from the output file's suffix, else PDF; a contradiction is refused."""
    implied = SUFFIXES.get(output.suffix.lower())
    if fmt is None:
        return implied or "pdf"
    if fmt not in FORMATS:
        raise UsageError(f"unknown summary format `{fmt}`; choose one of: {', '.join(FORMATS)}")
    if implied is not None and implied != fmt:
        raise UsageError(
            f"--format {fmt} does not match the file name {output}; give a .{fmt} file or --format {implied}"
        )
    return fmt


def write_summary(
    aid: DecisionAid,
    input_path: Path,
    fmt: str | None,
    output: Path,
    *,
    paper: str = "a4",
    profile: str | None = None,
    patient_label: str | None = None,
    clinician: str | None = None,
    force: bool = False,
    grid_only: bool = False,
    include_notes: bool = False,
) -> Path:
    """Render the summary for an answers file or saved session and write it atomically to `output`.

    A session's clinician notes are printed only with `include_notes` (they are the clinician's,
    and the patient takes the summary home). Refuses to overwrite an existing file unless
    `force`; checks everything before writing, so bad input never leaves a partial or empty file.
    """
    fmt = summary_format(fmt, output)
    if output.exists() and not force:
        raise OutputError(f"{output} already exists; use --force to overwrite it")
    answers, session = read_input(aid, input_path)
    if session is not None and not include_notes:
        session = session.model_copy(update={"notes": ""})
    summary = build_summary(
        aid,
        answers,
        profile=profile,
        session=session,
        paper=paper,
        patient_label=patient_label,
        clinician=clinician,
    )
    write_atomic(output, render_summary(summary, fmt, grid_only), force)
    return output
