"""The questionnaire as web forms: one question a page, from knowledge/questionnaire.yaml alone.

Which question comes next, the progress ("question N of M") and how a posted field becomes a
valid answer all reuse the terminal walkthrough's question flow (`applicable`, `missing`,
`prune`, `progress`, `parse_number`, `choices_answer`, `check_text`), so the two can never disagree.
Templates only draw a `QuestionView`; no prompt, choice or skip condition is written in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from engine.interview.walkthrough import (
    NOT_SURE,
    AnswerRejected,
    answer_words,
    applicable,
    check_text,
    choices_answer,
    choices_for,
    missing,
    number_default,
    parse_number,
    progress,
    range_words,
)
from engine.model.questionnaire import UNKNOWN, Question, Questionnaire

NOT_SURE_FIELD = "not_sure"


@dataclass(frozen=True)
class ChoiceView:
    value: str
    label: str
    checked: bool


@dataclass(frozen=True)
class QuestionView:
    """One question as a form: what the template draws, and where it stands in the questionnaire."""

    id: str
    type: str
    prompt: str
    help: str
    section: str
    intro: str
    choices: list[ChoiceView]
    text: str
    hint: str
    not_sure: bool
    allow_unknown: bool
    max_length: int
    number: int
    total: int
    previous: str | None
    error: str = ""

    @property
    def percent(self) -> int:
        return round(100 * (self.number - 1) / max(self.total, 1))


@dataclass(frozen=True)
class AnswerLine:
    id: str
    prompt: str
    answer: str
    section: str


def next_question(questionnaire: Questionnaire, answers: dict[str, Any], cursor: str | None) -> Question | None:
    """The question to show: the one being edited (if it still applies), else the first unanswered one."""
    if cursor is not None and any(q.id == cursor for q in applicable(questionnaire, answers)):
        return questionnaire.questions[cursor]
    todo = missing(questionnaire, answers)
    return todo[0] if todo else None


def question_view(
    questionnaire: Questionnaire, answers: dict[str, Any], q: Question, error: str = "", typed: str | None = None
) -> QuestionView:
    """The form for `q`, filled with the current answer (if any); the progress counts the questions that apply."""
    place = progress(questionnaire, answers, q.id)
    current = answers.get(q.id)
    choices: list[ChoiceView] = []
    text, hint, not_sure = "", "", current == UNKNOWN
    if q.type in ("single", "yes_no", "multiple"):
        chosen = set(current) if isinstance(current, list) else {current}
        # 'Not sure' is a checkbox of its own for a multiple-choice question (it stands alone).
        choices = [ChoiceView(c.value, c.title, c.value in chosen) for c in choices_for(q) if c.value != UNKNOWN]
        if q.type == "multiple":
            hint = "Tick all that apply. Tick none of them if none apply."
    elif q.type == "number":
        text = typed if typed is not None else ("" if current == UNKNOWN else number_default(current))
        kind = "A whole number" if q.integer else "A number"
        hint = f"{kind} {range_words(q)}."
    else:
        text = typed if typed is not None else str(current or "")
        hint = "You can leave this blank."
    section = next(s for s in questionnaire.sections if s.id == q.section)
    return QuestionView(
        id=q.id,
        type=q.type,
        prompt=q.prompt,
        help=q.help,
        section=section.title,
        intro=section.intro,
        choices=choices,
        text=text,
        hint=hint,
        not_sure=not_sure,
        allow_unknown=q.allow_unknown and q.type != "text",
        max_length=q.max_length,
        number=place.number,
        total=place.total,
        previous=place.previous,
        error=error,
    )


def parse_answer(q: Question, form: FormData) -> Any:
    """A posted form as the answer to `q`; raises AnswerRejected with a plain-language reason."""
    unsure = q.allow_unknown and form.get(NOT_SURE_FIELD) == "yes"
    if q.type == "text":
        raw = form.get("answer", "")
        return check_text(q, raw if isinstance(raw, str) else "")
    if q.type == "number":
        raw = form.get("answer", "")
        raw = raw.strip() if isinstance(raw, str) else ""
        if unsure and not raw:
            return UNKNOWN
        if unsure:
            raise AnswerRejected(f"Please give a number or tick '{NOT_SURE}', not both.")
        if not raw:
            raise AnswerRejected(
                f"Please type a number {range_words(q)}" + (f", or tick '{NOT_SURE}'." if q.allow_unknown else ".")
            )
        return parse_number(q, raw)
    picked = [v for v in form.getlist("answer") if isinstance(v, str)]
    if q.type == "multiple":
        if any(v not in q.values for v in picked):
            raise AnswerRejected("Please choose from the answers shown.")
        if unsure and picked:
            raise AnswerRejected(f"Tick '{NOT_SURE}' on its own, or untick it.")
        return choices_answer(q, [UNKNOWN] if unsure else picked)
    allowed = (*q.values, UNKNOWN) if q.allow_unknown else q.values
    if len(picked) != 1 or picked[0] not in allowed:
        hint = f", or '{NOT_SURE}'" if q.allow_unknown else ""
        raise AnswerRejected(f"Please choose one answer{hint}.")
    return picked[0]


def form_fields(q: Question, value: Any) -> dict[str, Any]:
    """The fields a person fills in on `q`'s page to give `value` (the inverse of `parse_answer`)."""
    if q.type == "text":
        return {"answer": value or ""}
    if value == UNKNOWN:
        return {NOT_SURE_FIELD: "yes"} if q.type in ("number", "multiple") else {"answer": UNKNOWN}
    if q.type == "number":
        return {"answer": str(value)}
    if q.type == "multiple":
        return {"answer": list(value)}
    return {"answer": value}


def answer_lines(questionnaire: Questionnaire, answers: dict[str, Any]) -> list[AnswerLine]:
    """Every question that applies with its answer in words, for the review lists."""
    titles = {s.id: s.title for s in questionnaire.sections}
    return [
        AnswerLine(q.id, q.prompt, answer_words(q, answers.get(q.id)), titles[q.section])
        for q in applicable(questionnaire, answers)
    ]


def by_section(lines: list[AnswerLine]) -> list[tuple[str, list[AnswerLine]]]:
    """The answer lines under their section titles, in asking order."""
    sections: dict[str, list[AnswerLine]] = {}
    for line in lines:
        sections.setdefault(line.section, []).append(line)
    return list(sections.items())
