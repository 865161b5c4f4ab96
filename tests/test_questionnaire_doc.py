"""The questionnaire document comes from the same definition as the prompts and the answers model."""

from __future__ import annotations

from conftest import ROOT, run_cli

from engine.evaluation.aid import DecisionAid
from engine.presentation.questionnaire_doc import questionnaire_markdown, rules_reading

DOC = ROOT / "docs" / "questionnaire.md"


def test_the_command_prints_the_document_kept_in_docs(aid: DecisionAid) -> None:
    done = run_cli("schema", "questionnaire")
    assert done.returncode == 0, done.stderr
    assert done.stdout == questionnaire_markdown(aid)
    assert DOC.read_text(encoding="utf-8") == done.stdout, (
        "docs/questionnaire.md is out of date: run `pain-sdm schema questionnaire > docs/questionnaire.md`"
    )


def test_every_question_is_documented_with_its_prompt_and_every_choice(aid: DecisionAid) -> None:
    doc = questionnaire_markdown(aid)
    for question in aid.questionnaire.questions.values():
        assert f"### `{question.id}`\n\n{question.prompt}\n" in doc
        for option in question.options:
            assert f"`{option.value}`: {option.label}" in doc
    for section in aid.questionnaire.sections:
        assert f"## {section.title}\n" in doc


def test_each_question_names_the_active_rules_that_read_it(aid: DecisionAid) -> None:
    readers = rules_reading(aid)
    assert "FJ-NICE-NSLBP-NI" in readers["pain_region"]
    for fact, rule_ids in readers.items():
        for rule_id in rule_ids:
            rule = aid.rulebook.rule(rule_id)
            assert rule.active
            assert fact in {atom.fact for atom in rule.when.atoms()}
    doc = questionnaire_markdown(aid)
    assert '- **Asked only if:** physical_therapy_tried is "yes"' in doc
