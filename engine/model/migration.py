"""Answers written in an older answers schema, read as today's answers with a note of each change.

The answers schema has a version (ANSWERS_VERSION). An answers file may say which one it
is written in (`answers_version: N`); a file or stored record that does not say is read by
its shape, so an older file, a saved session or a record stored before a change keeps
working. Each mapping is written down as a note, so the reader knows what was changed.
Mappings only ever apply to the old shape of an answer, so reading today's answers is a
no-op.

Version 1 to 2 (issue 12):
- `antiplatelet` was one choice; it is now a list (dual therapy can be entered).
- `pain_duration_months` was the only duration; pain of under 3 months is now given in weeks
  (`pain_duration_unit: weeks`, `pain_duration_weeks`), 3 months or more in whole or part
  months (`pain_duration_unit: months`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import AnswersError
from engine.model.questionnaire import UNKNOWN

ANSWERS_VERSION = 2
VERSION_KEY = "answers_version"
WEEKS_PER_MONTH = 52 / 12
"""Used only to move an old answer of under 3 months into weeks, where it is then compared."""
SHORT_PAIN_MONTHS = 3
"""Pain of less than this is given in weeks (the questionnaire asks so)."""


@dataclass
class Migration:
    """Answers in today's schema, and what was changed to get there (empty when nothing was)."""

    answers: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _antiplatelet(answers: dict[str, Any], notes: list[str]) -> None:
    value = answers.get("antiplatelet")
    if isinstance(value, str) and value != UNKNOWN:
        answers["antiplatelet"] = [] if value == "none" else [value]
        notes.append(f"antiplatelet: '{value}' read as the list {answers['antiplatelet']} (one choice in schema 1)")


def _duration(answers: dict[str, Any], notes: list[str]) -> None:
    if any(answers.get(key, UNKNOWN) != UNKNOWN for key in ("pain_duration_unit", "pain_duration_weeks")):
        return  # a schema-2 duration (an unknown answer is the same as none: the months are schema 1's)
    months = answers.get("pain_duration_months")
    if isinstance(months, bool) or not isinstance(months, int | float):
        return
    if months >= SHORT_PAIN_MONTHS:
        answers["pain_duration_unit"] = "months"
        notes.append(f"pain_duration_months: {months:g} kept, with pain_duration_unit: months")
        return
    weeks = round(months * WEEKS_PER_MONTH)
    del answers["pain_duration_months"]
    answers.update(pain_duration_unit="weeks", pain_duration_weeks=weeks)
    notes.append(
        f"pain_duration_months: {months:g} read as pain_duration_weeks: {weeks} "
        f"(under {SHORT_PAIN_MONTHS} months is given in weeks since schema 2)"
    )


def migrate(data: dict[str, Any], name: str = "answers") -> Migration:
    """Today's answers from `data` (which is not changed), with a note of every mapping made."""
    answers = dict(data)
    version = answers.pop(VERSION_KEY, None)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise AnswersError(f"{name}: `{VERSION_KEY}` must be a whole number such as {ANSWERS_VERSION}, got {version!r}")
    if version is not None and not 1 <= version <= ANSWERS_VERSION:
        raise AnswersError(
            f"{name}: `{VERSION_KEY}` {version} is not known; this pain-sdm reads answers schema 1 to {ANSWERS_VERSION}"
        )
    notes: list[str] = []
    if version != ANSWERS_VERSION:
        _antiplatelet(answers, notes)
        _duration(answers, notes)
    return Migration(answers, notes)
