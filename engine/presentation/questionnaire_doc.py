"""The questionnaire as a reviewer's document, generated from the one definition.

knowledge/questionnaire.yaml drives the interview's prompts, the strict answers model and
this document alike, so the three can never disagree. For each question it gives the answer
field, the prompt and help a patient sees, what a valid answer is, when the question is asked,
and which rules read the answer.
"""

from __future__ import annotations

from collections import defaultdict

from engine.evaluation.aid import DecisionAid
from engine.model.questionnaire import Question, expected
from engine.presentation.explain import Wording


def rules_reading(aid: DecisionAid) -> dict[str, list[str]]:
    """Question id -> ids of the active rules whose conditions read its answer, in rulebook order."""
    readers: dict[str, list[str]] = defaultdict(list)
    for rule in aid.rulebook.rules:
        if not rule.active:
            continue
        for fact in dict.fromkeys(atom.fact for atom in rule.when.atoms()):
            if fact is not None:
                readers[fact].append(rule.id)
    return readers


def _answer(question: Question) -> list[str]:
    """What a valid answer is; for choice questions, each value with the label the patient sees."""
    unknown = ", or `unknown`" if question.allow_unknown else ""
    if question.type == "single":
        head = f"one of the values below{unknown}"
    elif question.type == "multiple":
        head = f"a list of the values below (`[]` means none of them){unknown}"
    else:
        return [f"- **Answer:** {expected(question)}"]
    return [f"- **Answer:** {head}", *(f"    - `{o.value}`: {o.label}" for o in question.options)]


def _question(question: Question, wording: Wording, readers: list[str]) -> list[str]:
    lines = [f"### `{question.id}`", "", question.prompt, ""]
    if question.help:
        lines += [f"*Help shown:* {question.help}", ""]
    lines += _answer(question)
    if question.ask_if is not None:
        asked = wording.lines(question.ask_if)
        lines.append(f"- **Asked only if:** {asked[0]}")
        lines += [f"    - {line.strip()}" for line in asked[1:]]
    else:
        lines.append("- **Asked:** always")
    used = ", ".join(f"`{rule_id}`" for rule_id in readers) or "no active rule (context for the discussion)"
    lines += [f"- **Read by rules:** {used}", ""]
    return lines


def questionnaire_markdown(aid: DecisionAid) -> str:
    """Every section and question of the questionnaire, in asking order, as Markdown."""
    questionnaire = aid.questionnaire
    wording = Wording(aid)
    readers = rules_reading(aid)
    lines = [
        "# The pain-sdm questionnaire",
        "",
        "Generated from `knowledge/questionnaire.yaml` by `pain-sdm schema questionnaire`; the same definition "
        "drives the interview's prompts and the answers model (`pain-sdm schema answers`). Every answer may also "
        'be `unknown` (shown to patients as "Not sure") unless it says otherwise.',
        "",
        f"{len(questionnaire.questions)} questions in {len(questionnaire.sections)} sections.",
        "",
    ]
    for section in questionnaire.sections:
        lines += [f"## {section.title}", ""]
        if section.intro:
            lines += [section.intro, ""]
        for question in questionnaire.in_section(section.id):
            lines += _question(question, wording, readers.get(question.id, []))
    return "\n".join(lines).rstrip() + "\n"
