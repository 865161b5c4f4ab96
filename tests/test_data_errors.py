"""Every kind of bad knowledge or rule file is refused at load, naming file, entry, field and fix.

Each case copies the shipped data to a temporary directory, breaks one thing, and checks
the error message. A rule that cannot be evaluated must fail here, never at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import DataFileError, KnowledgeError, RulebookError
from engine.evaluation.aid import DecisionAid

ROOT = Path(__file__).resolve().parent.parent


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"fixture text not found in {path}: {old!r}"
    path.write_text(text.replace(old, new, 1))


Breaker = Callable[[Path, Path], object]

KNOWLEDGE_CASES: list[tuple[str, Breaker, list[str]]] = [
    (
        "wrong_type",
        lambda r, k: edit(k / "sources/guidelines.yaml", "year: 2016", "year: '2016'"),
        ["guidelines.yaml", "source nice-ng59", "`year`", "valid integer", "for example `2016`"],
    ),
    (
        "missing_field",
        lambda r, k: edit(k / "procedures/nerve_block.yaml", "short_name:", "old_short_name:"),
        ["nerve_block.yaml", "procedure nerve_block", "`short_name`", "required"],
    ),
    (
        "unknown_field",
        lambda r, k: edit(k / "procedures/nerve_block.yaml", "recovery:", "recovry: x\nrecovery:"),
        ["nerve_block.yaml", "`recovry`", "unknown field"],
    ),
    (
        "unknown_condition",
        lambda r, k: edit(k / "procedures/nerve_block.yaml", "uses:\n", "uses:\n  - hiccups\n"),
        ["nerve_block.yaml", "procedure nerve_block", "`uses`", "unknown condition `hiccups`"],
    ),
    (
        "unknown_source",
        lambda r, k: edit(k / "procedures/nerve_block.yaml", "sources:\n", "sources:\n  - no-such-source\n"),
        ["nerve_block.yaml", "`sources`", "unknown source `no-such-source`"],
    ),
    (
        "duplicate_publication",
        lambda r, k: (k / "sources/zz-more.yaml").write_text(
            "sources:\n  - {id: ng59-again, title: NG59 again, publisher: NICE, year: 2016, kind: guideline,"
            " checked: 2026-12-02, url: 'https://www.nice.org.uk/guidance/NG59/'}\n"
        ),
        ["zz-more.yaml", "source ng59-again", "`url`", "the same publication as source `nice-ng59`; cite that id"],
    ),
    (
        "unknown_source_kind",
        lambda r, k: edit(k / "sources/guidelines.yaml", "kind: review", "kind: blog"),
        ["guidelines.yaml", "`kind`", "'guideline'", "'coverage_policy'"],
    ),
    (
        "source_without_checked_date",
        lambda r, k: edit(
            k / "sources/guidelines.yaml",
            "    checked: 2026-11-24\n",
            "",
        ),
        ["guidelines.yaml", "source cms-l39240", "`checked`", "required"],
    ),
    (
        "missing_procedure_file",
        lambda r, k: (k / "procedures/intrathecal_pump.yaml").unlink(),
        ["intrathecal_pump.yaml", "file missing"],
    ),
    (
        "yaml_syntax",
        lambda r, k: edit(k / "conditions.yaml", "terms:", "terms: [\n"),
        ["conditions.yaml", "not valid YAML"],
    ),
    (
        "yaml_alias",
        lambda r, k: (k / "treatments.yaml").write_text("terms: &a\n  - *a\n"),
        ["treatments.yaml", "aliases"],
    ),
    (
        "binary_file",
        lambda r, k: (k / "treatments.yaml").write_bytes(b"\x00\x01\x02"),
        ["treatments.yaml", "binary"],
    ),
    (
        "empty_file",
        lambda r, k: (k / "treatments.yaml").write_text(""),
        ["treatments.yaml", "empty"],
    ),
    (
        "question_skip_unknown",
        lambda r, k: edit(
            k / "questionnaire.yaml", '{fact: esi_count_12m, op: ">=", value: 1}', '{fact: esi_cnt, op: ">=", value: 1}'
        ),
        ["questionnaire.yaml", "question esi_last_relief_percent", "`ask_if: esi_cnt`", "unknown fact"],
    ),
    (
        "question_skip_value_not_allowed",
        lambda r, k: edit(
            k / "questionnaire.yaml",
            '{fact: esi_count_12m, op: ">=", value: 1}',
            '{fact: esi_count_12m, op: ">=", value: 900}',
        ),
        [
            "questionnaire.yaml",
            "question esi_last_relief_percent",
            "`ask_if: esi_count_12m`",
            "outside the question's range",
        ],
    ),
    (
        "question_skip_parameter",
        lambda r, k: edit(
            k / "questionnaire.yaml",
            '{fact: esi_count_12m, op: ">=", value: 1}',
            '{fact: esi_count_12m, op: ">=", param: esi_max_per_12m}',
        ),
        ["questionnaire.yaml", "question esi_last_relief_percent", "`ask_if: esi_count_12m`", "parameters such as"],
    ),
]

RULE_CASES: list[tuple[str, Breaker, list[str]]] = [
    (
        "unknown_fact",
        lambda r, k: edit(
            r / "20-options.yaml",
            'fact: esi_count_12m, op: ">=", param: esi_max_per_12m',
            'fact: esi_count, op: ">=", param: esi_max_per_12m',
        ),
        ["20-options.yaml", "rule ESI-FREQUENCY-NI", "when: esi_count", "unknown fact"],
    ),
    (
        "dispute_reads_unknown_fact",
        lambda r, k: edit(
            k / "disagreements.yaml",
            '{fact: neurogenic_claudication, op: "==", value: "yes"}',
            '{fact: claudication, op: "==", value: "yes"}',
        ),
        ["disagreements.yaml", "disagreement esi-neurogenic-claudication", "when: claudication", "unknown fact"],
    ),
    (
        "dispute_reads_derived_fact",
        lambda r, k: edit(
            k / "disagreements.yaml",
            '{fact: neurogenic_claudication, op: "==", value: "yes"}',
            "{fact: epidural_indication, op: is_true}",
        ),
        ["disagreements.yaml", "disagreement esi-neurogenic-claudication", "when: epidural_indication", "answers only"],
    ),
    (
        "operator_does_not_fit_type",
        lambda r, k: edit(
            r / "40-safety.yaml",
            '{fact: cardiac_device, op: "==", value: "yes"}',
            '{fact: cardiac_device, op: ">=", value: "yes"}',
        ),
        ["40-safety.yaml", "rule SAF-CARDIAC-DEVICE", "operator `>=` does not fit a yes_no fact"],
    ),
    (
        "value_not_a_choice",
        lambda r, k: edit(
            r / "40-safety.yaml",
            '{fact: diabetes, op: "==", value: poorly_controlled}',
            '{fact: diabetes, op: "==", value: bad}',
        ),
        ["rule SAF-DIABETES-STEROID", "`bad` is not a choice"],
    ),
    (
        "string_for_number",
        lambda r, k: edit(
            r / "20-options.yaml",
            '{fact: esi_count_12m, op: ">=", value: 1}',
            "{fact: esi_count_12m, op: \">=\", value: 'one'}",
        ),
        ["rule ESI-REPEAT-NI", "expected a number", "'one'"],
    ),
    (
        "number_out_of_range",
        lambda r, k: edit(
            r / "20-options.yaml",
            '{fact: esi_count_12m, op: ">=", value: 1}',
            '{fact: esi_count_12m, op: ">=", value: 99}',
        ),
        ["rule ESI-REPEAT-NI", "outside the question's range"],
    ),
    (
        "unknown_parameter",
        lambda r, k: edit(r / "20-options.yaml", "param: esi_max_per_12m", "param: esi_max"),
        ["rule ESI-FREQUENCY-NI", "unknown parameter `esi_max`"],
    ),
    (
        "unknown_source",
        lambda r, k: edit(
            r / "20-options.yaml", "sources: [nice-qs155, cms-l36850]", "sources: [nice-qs999, cms-l36850]"
        ),
        ["20-options.yaml", "`sources`", "unknown source `nice-qs999`"],
    ),
    (
        "seed_article_as_a_rule_source",
        lambda r, k: edit(
            r / "20-options.yaml", "sources: [nice-qs155, cms-l36850]", "sources: [seed-article, cms-l36850]"
        ),
        ["20-options.yaml", "`sources`", "`seed-article` is the text the knowledge base starts from", "primary"],
    ),
    (
        "unknown_criterion",
        lambda r, k: edit(r / "20-options.yaml", "criteria: [ESI-08]", "criteria: [ESI-99]"),
        ["rule ESI-FREQUENCY-NI", "`criteria`", "unknown criterion `ESI-99`"],
    ),
    (
        "unknown_profile",
        lambda r, k: edit(r / "20-options.yaml", "profiles: [us-medicare]", "profiles: [us-medicaid]"),
        ["`profiles`", "unknown profile `us-medicaid`"],
    ),
    (
        "status_without_steps",
        lambda r, k: edit(
            r / "30-prerequisites.yaml",
            "      steps:\n        - {id: spine_imaging, text: A scan of the spine (MRI or CT) "
            "to find the cause of the nerve pain}\n",
            "",
        ),
        ["rule ESI-PRE-IMAGING", "`then`", "needs the `steps`"],
    ),
    (
        "bad_version",
        lambda r, k: edit(r / "50-preferences.yaml", "version: 1", "version: 0"),
        ["rule PREF-DECLINES-IMPLANTS", "`version`", "greater than or equal to 1"],
    ),
    (
        "active_rule_without_source",
        lambda r, k: edit(r / "50-preferences.yaml", "sources: [nice-ng59]", "sources: []"),
        ["rule PREF-DECLINES-IMPLANTS", "`sources`", "needs at least one source"],
    ),
    (
        "derived_twice",
        lambda r, k: edit(r / "10-derived.yaml", "then: {derive: axial_pain}", "then: {derive: chronic_pain}"),
        ["rule DER-AXIAL", "`then.derive`", "already derived by DER-CHRONIC"],
    ),
    (
        "atom_without_op",
        lambda r, k: edit(
            r / "40-safety.yaml", '{fact: pregnant, op: "==", value: "yes"}', '{fact: pregnant, value: "yes"}'
        ),
        ["rule SAF-PREGNANCY", "needs an `op`"],
    ),
    (
        "unknown_operator",
        lambda r, k: edit(
            r / "40-safety.yaml",
            '{fact: pregnant, op: "==", value: "yes"}',
            '{fact: pregnant, op: "equals", value: "yes"}',
        ),
        ["rule SAF-PREGNANCY", "`when.op`"],
    ),
    (
        "unknown_default_profile",
        lambda r, k: edit(r / "profiles.yaml", "default: consensus", "default: nobody"),
        ["profiles.yaml", "`default`", "not a listed profile"],
    ),
]


@pytest.mark.parametrize(("name", "breaker", "expected"), KNOWLEDGE_CASES, ids=[c[0] for c in KNOWLEDGE_CASES])
def test_bad_knowledge_file_is_named(data: tuple[Path, Path], name: str, breaker: Breaker, expected: list[str]) -> None:
    rules, knowledge = data
    breaker(rules, knowledge)
    with pytest.raises(KnowledgeError) as err:
        DecisionAid.load(rules, knowledge)
    for part in expected:
        assert part in str(err.value)


@pytest.mark.parametrize(("name", "breaker", "expected"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_bad_rule_file_is_named(data: tuple[Path, Path], name: str, breaker: Breaker, expected: list[str]) -> None:
    rules, knowledge = data
    breaker(rules, knowledge)
    with pytest.raises(RulebookError) as err:
        DecisionAid.load(rules, knowledge)
    for part in expected:
        assert part in str(err.value)


def test_derived_facts_in_a_cycle_are_refused(data: tuple[Path, Path]) -> None:
    rules, knowledge = data
    edit(
        rules / "10-derived.yaml",
        '        - {fact: pain_duration_months, op: ">=", param: chronic_pain_months}\n'
        "    then: {derive: chronic_pain}",
        "        - {fact: facet_pattern, op: is_true}\n    then: {derive: chronic_pain}",
    )
    with pytest.raises(RulebookError, match="cycle"):
        DecisionAid.load(rules, knowledge)


def test_every_problem_is_listed_at_once(data: tuple[Path, Path]) -> None:
    rules, knowledge = data
    edit(rules / "20-options.yaml", "param: esi_max_per_12m", "param: esi_max")
    edit(rules / "40-safety.yaml", "value: poorly_controlled}", "value: bad}")
    with pytest.raises(DataFileError) as err:
        DecisionAid.load(rules, knowledge)
    assert len(err.value.problems) == 2


def test_a_broken_rule_file_fails_the_cli_with_exit_2(data: tuple[Path, Path]) -> None:
    from conftest import run_cli

    rules, knowledge = data
    edit(rules / "20-options.yaml", "param: esi_max_per_12m", "param: esi_max")
    done = run_cli(
        "evaluate", str(ROOT / "examples/sciatica.yaml"), "--rules", str(rules), "--knowledge", str(knowledge)
    )
    assert done.returncode == 2
    assert "unknown parameter `esi_max`" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
