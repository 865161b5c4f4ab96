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

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from engine.errors import AnswersError, OutputError, UsageError
from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import Finding, OptionResult, Result, bears_on, criteria_held
from engine.interview.session import SESSION_FORMAT, SURE_ITEMS, Session, load_session
from engine.model.knowledge import Procedure
from engine.model.loading import read_data
from engine.model.status import rank
from engine.model.values import conflicts, option_fit
from engine.output import write_atomic
from engine.presentation.main_points import main_points
from engine.presentation.report import DISCLAIMER, STATUS_LABELS
from engine.presentation.templating import environment, html_to_pdf

Format = Literal["html", "pdf", "md"]
Paper = Literal["a4", "letter"]
FORMATS: tuple[str, ...] = ("html", "pdf", "md")
PAPERS: tuple[str, ...] = ("a4", "letter")

OPEN_STATUSES = ("candidate", "after_prerequisite")
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
BRIEF_NOTE = (
    "These options are not open now, or you said no to them. Each shows its main benefits and main risks, the "
    "same number of each, with any rare but serious risk. Your clinician can go through the full lists with you."
)
SAME_REASON = "The reason is the same as for"
OUTWEIGHED = "Also found, but the reason above comes first:"
NO_VALUES_NOTE = (
    "You did not mark any of the listed values as important. You can still tell your clinician what matters most."
)
GRID_COLUMNS = 3
"""At most this many options side by side in one table, so that no column gets too narrow to read."""


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
class RiskView:
    text: str
    frequency: str


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


@dataclass(frozen=True)
class DisagreementView:
    topic: str
    plain: str


@dataclass(frozen=True)
class SourceView:
    """One publisher's works cited on the page, each as (title, year)."""

    publisher: str
    works: list[tuple[str, int]]


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
    unconfirmed_mark: str = UNCONFIRMED_MARK
    brief_note: str = BRIEF_NOTE
    same_reason: str = SAME_REASON
    outweighed_label: str = OUTWEIGHED
    no_values_note: str = NO_VALUES_NOTE
    frequency_labels: dict[str, str] = field(default_factory=lambda: dict(FREQUENCY_LABELS))

    @property
    def caution_groups(self) -> list[tuple[list[str], list[CautionView]]]:
        """The cautions under the options they apply to, in order of first appearance."""
        groups: dict[tuple[str, ...], list[CautionView]] = {}
        for caution in self.cautions:
            groups.setdefault(tuple(caution.options), []).append(caution)
        return [(list(names), cautions) for names, cautions in groups.items()]


def first_sentence(text: str) -> str:
    """The first sentence of a knowledge text: the short form used in the comparison grid."""
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]


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
        return Line(_question_text(questions[qid].prompt), questions[qid].describe(answers.get(qid)))

    main = [line(qid) for qid in MAIN_QUESTIONS if qid in questions]
    findings = [r for o in result.options for r in o.reasons]
    facts = set(_answer_facts(result, findings))
    shaped = [
        line(qid)
        for qid, q in questions.items()
        if qid in facts and qid not in MAIN_QUESTIONS and q.type != "text" and answers.get(qid) is not None
    ]
    return main, shaped


def _decision(aid: DecisionAid, answers: dict[str, Any], result: Result) -> str:
    """The decision in short sentences; the options' names follow in the grid right below it."""
    region = aid.questionnaire.questions.get("pain_region")
    value = answers.get("pain_region")
    where = (
        f" Where it hurts most: {region.label_of(value).lower()}."
        if region is not None and value not in (None, "unknown")
        else ""
    )
    count = len(result.options)
    shown = sum(o.status in OPEN_STATUSES for o in result.options)
    return (
        f"You and your clinician are choosing how to treat your pain.{where} "
        f"This summary shows all {count} options. "
        f"{shown} of them {'is' if shown == 1 else 'are'} open to discuss now, and {count - shown} "
        f"{'is' if count - shown == 1 else 'are'} not."
    )


def _point(finding: Finding) -> Point:
    return Point(finding.text, bool(finding.unconfirmed))


def _outweighed(reason: Finding, option: OptionResult) -> bool:
    """A reason for an open status under an option that is closed now: true, but it did not set the status."""
    return option.status not in OPEN_STATUSES and reason.status in OPEN_STATUSES


def _option_view(
    aid: DecisionAid, option: OptionResult, result: Result, leaning: str | None, procedures: dict[str, Procedure]
) -> OptionView:
    proc = procedures[option.procedure]
    detailed = (option.status in OPEN_STATUSES and option.declined is None) or leaning == option.procedure
    benefits, risks = (proc.benefits, proc.risks) if detailed else main_points(proc)
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
        benefits=[" ".join(b.text.split()) for b in benefits],
        risks=[RiskView(" ".join(r.text.split()), r.frequency) for r in risks],
        benefit_count=len(proc.benefits),
        risk_count=len(proc.risks),
        relief=" ".join(proc.relief_duration.split()),
        recovery=" ".join(proc.recovery.split()),
        burden=" ".join(proc.burden.split()),
        relief_short=first_sentence(proc.relief_duration),
        recovery_short=first_sentence(proc.recovery),
        burden_short=first_sentence(proc.burden),
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
    views = [_option_view(aid, o, result, leaning, aid.knowledge.procedures) for o in result.options]
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
    relevant = [d for d in found if bears_on(d, shown, cited)]
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
    return Summary(
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
    )


def render_html(summary: Summary) -> str:
    """The summary as one self-contained HTML page (print stylesheet inlined)."""
    return environment().get_template("summary/summary.html").render(s=summary)


def render_markdown(summary: Summary) -> str:
    return environment().get_template("summary/summary.md.j2").render(s=summary)


def render_pdf(summary: Summary) -> bytes:
    """The summary as PDF, from the same HTML as `render_html`."""
    return html_to_pdf(render_html(summary))


def render_summary(summary: Summary, fmt: str) -> str | bytes:
    """The summary as `html` or `md` text, or `pdf` bytes."""
    if fmt == "html":
        return render_html(summary)
    if fmt == "md":
        return render_markdown(summary)
    if fmt == "pdf":
        return render_pdf(summary)
    raise UsageError(f"unknown summary format `{fmt}`; choose one of: {', '.join(FORMATS)}")


def read_input(aid: DecisionAid, path: Path) -> tuple[BaseModel, Session | None]:
    """An answers file, or a saved session (recognised by its `format`), as validated answers."""
    data = read_data(path, AnswersError)
    if isinstance(data, dict) and data.get("format") == SESSION_FORMAT:
        session = load_session(path)
        return aid.parse_answers(session.answers, str(path)), session
    return aid.read_answers(path), None


def write_summary(
    aid: DecisionAid,
    input_path: Path,
    fmt: str,
    output: Path,
    *,
    paper: str = "a4",
    profile: str | None = None,
    patient_label: str | None = None,
    clinician: str | None = None,
    force: bool = False,
) -> Path:
    """Render the summary for an answers file or saved session and write it atomically to `output`.

    Refuses to overwrite an existing file unless `force`; checks everything before writing,
    so bad input never leaves a partial or empty file.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown summary format `{fmt}`; choose one of: {', '.join(FORMATS)}")
    if output.exists() and not force:
        raise OutputError(f"{output} already exists; use --force to overwrite it")
    answers, session = read_input(aid, input_path)
    summary = build_summary(
        aid,
        answers,
        profile=profile,
        session=session,
        paper=paper,
        patient_label=patient_label,
        clinician=clinician,
    )
    write_atomic(output, render_summary(summary, fmt), force)
    return output
