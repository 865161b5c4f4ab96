"""The rulebook is a faithful, complete and reachable encoding of the criteria register.

- Every active rule names at least one source, and every source, criterion and parameter it
  names exists; a broken copy of the rules is refused with the file, rule and field named.
- Every confirmed criterion of knowledge/criteria.yaml is cited by an active rule or a
  parameter, except the rows listed in NOT_ENCODED with the reason.
- Every active rule fires in at least one golden case, and (except rules that fire for every
  patient) stays silent in another; every `after_prerequisite` option lists its next steps.
- An unconfirmed figure is marked wherever it is used, down to the text report.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_cli
from test_golden import CASES

from engine.audit.golden import GoldenCase
from engine.errors import RulebookError
from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import Result

ROOT = Path(__file__).resolve().parent.parent

NOT_ENCODED: dict[str, str] = {
    "ESI-12": "steroid dose ceilings per session are for the clinician giving the injection; "
    "the aid selects options and never plans doses",
    "NB-08": "unconfirmed, and there is no figure to encode: no numeric frequency limit for nerve blocks was found",
}
"""Criteria deliberately not cited by any rule or parameter, with the reason."""

ALWAYS_FIRES: dict[str, str] = {
    "CC-ALWAYS": "conservative care is shown to every patient",
}
"""Rules that fire for every patient, so no golden case can show them silent."""

OWN_GOLDEN_FILES = ("criteria-esi.yaml", "criteria-fj-rfa.yaml", "criteria-scs.yaml",
                    "criteria-itp-pns-nb.yaml", "safety.yaml", "profiles.yaml")  # fmt: skip


# ----------------------------------------------------------------- references in the live rulebook


def test_every_active_rule_names_a_source(aid: DecisionAid) -> None:
    silent = [r.id for r in aid.rulebook.rules if r.active and not r.sources]
    assert not silent, f"active rules without a source: {silent}"


def test_every_cited_source_and_criterion_exists(aid: DecisionAid) -> None:
    unknown = [
        f"{r.id}: {ref}"
        for r in aid.rulebook.rules
        for ref in [*r.sources, *r.criteria]
        if ref not in aid.knowledge.sources and ref not in aid.knowledge.criteria
    ]
    unknown += [
        f"parameter {p.id}: {ref}"
        for p in aid.rulebook.parameters.values()
        for ref in [*p.sources, *p.criteria]
        if ref not in aid.knowledge.sources and ref not in aid.knowledge.criteria
    ]
    assert not unknown, f"references to sources or criteria that do not exist: {unknown}"


def test_every_parameter_is_used_by_an_active_rule(aid: DecisionAid) -> None:
    used = {a.param for r in aid.rulebook.rules if r.active for a in r.when.atoms() if a.param}
    assert set(aid.rulebook.parameters) <= used, f"unused parameters: {set(aid.rulebook.parameters) - used}"


def test_an_unconfirmed_parameter_cites_a_criterion_that_is_not_confirmed(aid: DecisionAid) -> None:
    for param in aid.rulebook.parameters.values():
        if param.confidence == "unconfirmed":
            levels = {aid.knowledge.criteria[c].confidence for c in param.criteria}
            assert levels - {"confirmed"}, f"{param.id} is unconfirmed but cites only confirmed criteria"
            assert param.note, f"{param.id} needs a note saying what is unconfirmed"


def test_the_three_profiles_exist_and_consensus_is_the_default(aid: DecisionAid) -> None:
    assert {"consensus", "us-medicare", "uk-nice"} <= set(aid.rulebook.profiles)
    assert aid.rulebook.default_profile == "consensus"


def test_the_rulebook_stays_well_under_the_durable_rules_limit(aid: DecisionAid) -> None:
    assert len(aid.rulebook.rules) < 300  # durable_rules reports trouble near 480 rules per ruleset


# ----------------------------------------------------------------- a broken copy is refused


def _rule(rules: Path, file: str, rule_id: str) -> tuple[dict[str, Any], Callable[[], None]]:
    """A rule of a copied rule file as a dict, and a function that writes the file back."""
    path = rules / file
    data = yaml.safe_load(path.read_text())
    rule: dict[str, Any] = next(r for r in data["rules"] if r["id"] == rule_id)

    def save() -> None:
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    return rule, save


BREAKS: list[tuple[str, str, str, str, Callable[[dict[str, Any]], None], str]] = [
    ("no_source", "40-safety.yaml", "SAF-WARFARIN-FACET-NECK", "sources",
     lambda r: r.update(sources=[]), "needs at least one source"),
    ("unknown_source", "20-options.yaml", "EVID-BMJ-AXIAL", "sources",
     lambda r: r["sources"].append("bmj-2099-nobody"), "unknown source `bmj-2099-nobody`"),
    ("unknown_criterion", "30-prerequisites.yaml", "RFA-NHS-REPEAT-INTERVAL", "criteria",
     lambda r: r.update(criteria=["RFA-55"]), "unknown criterion `RFA-55`"),
    ("after_prerequisite_without_steps", "30-prerequisites.yaml", "ITP-PRE-LIFE-EXPECTANCY", "then",
     lambda r: r["then"].pop("steps"), "needs the `steps`"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "file", "rule_id", "field", "breaker", "message"), BREAKS, ids=[b[0] for b in BREAKS])
def test_a_broken_copy_of_the_rules_is_refused_naming_file_rule_and_field(
    tmp_path: Path,
    name: str,
    file: str,
    rule_id: str,
    field: str,
    breaker: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    rule, save = _rule(rules, file, rule_id)
    breaker(rule)
    save()
    with pytest.raises(RulebookError) as err:
        DecisionAid.load(rules_dir=rules)
    [problem] = err.value.problems
    assert Path(problem.file).name == file
    assert problem.entry == f"rule {rule_id}"
    assert problem.field.startswith(field)
    assert message in problem.message
    assert file in str(err.value) and f"rule {rule_id}" in str(err.value)


def test_a_parameter_citing_an_unknown_criterion_is_refused(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    path = rules / "parameters.yaml"
    data = yaml.safe_load(path.read_text())
    next(p for p in data["parameters"] if p["id"] == "rfa_nhs_repeat_interval_months")["criteria"] = ["RFA-55"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(RulebookError) as err:
        DecisionAid.load(rules_dir=rules)
    [problem] = err.value.problems
    assert (Path(problem.file).name, problem.entry, problem.field) == (
        "parameters.yaml",
        "parameter rfa_nhs_repeat_interval_months",
        "criteria",
    )


# ----------------------------------------------------------------- completeness against the register


def test_every_confirmed_criterion_is_encoded(aid: DecisionAid) -> None:
    cited = {c for r in aid.rulebook.rules if r.active for c in r.criteria}
    cited |= {c for p in aid.rulebook.parameters.values() for c in p.criteria}
    confirmed = {c.id for c in aid.knowledge.criteria.values() if c.confidence == "confirmed"}
    missing = sorted(confirmed - cited - set(NOT_ENCODED))
    assert not missing, f"confirmed criteria that no active rule or parameter cites: {missing}"


def test_the_not_encoded_list_is_current(aid: DecisionAid) -> None:
    cited = {c for r in aid.rulebook.rules if r.active for c in r.criteria}
    cited |= {c for p in aid.rulebook.parameters.values() for c in p.criteria}
    assert set(NOT_ENCODED) <= set(aid.knowledge.criteria)
    assert not set(NOT_ENCODED) & cited, "a criterion listed as not encoded is now cited; remove it from the list"


# ----------------------------------------------------------------- reachability through golden cases


@pytest.fixture(scope="module")
def golden_results(aid: DecisionAid) -> list[tuple[GoldenCase, Result]]:
    results = []
    for case in CASES:
        answers = aid.parse_answers(case.answers, case.id)
        results.append((case, aid.evaluate(answers, case.profile, compare_profiles=False)))
    return results


def test_every_active_rule_fires_in_a_golden_case(
    aid: DecisionAid, golden_results: list[tuple[GoldenCase, Result]]
) -> None:
    fired = {f.rule_id for _, result in golden_results for f in result.trace if f.holds}
    never = sorted(r.id for r in aid.rulebook.rules if r.active and r.id not in fired)
    assert not never, f"active rules that no golden case fires: {never}"


def test_every_active_rule_is_silent_in_some_golden_case(
    aid: DecisionAid, golden_results: list[tuple[GoldenCase, Result]]
) -> None:
    always = [
        r.id
        for r in aid.rulebook.rules
        if r.active
        and r.id not in ALWAYS_FIRES
        and all(any(f.rule_id == r.id and f.holds for f in result.trace) for _, result in golden_results)
    ]
    assert not always, f"rules that fire in every golden case, so no case shows them silent: {always}"


@pytest.mark.parametrize("profile", ["consensus", "us-medicare", "uk-nice"])
def test_every_after_prerequisite_option_lists_its_next_steps(aid: DecisionAid, profile: str) -> None:
    for case in CASES:
        result = aid.evaluate(aid.parse_answers(case.answers, case.id), profile, compare_profiles=False)
        for option in result.options:
            if option.status == "after_prerequisite":
                assert option.next_steps, f"{case.id} ({profile}): {option.procedure} has no next step"


@pytest.mark.parametrize("file", OWN_GOLDEN_FILES)
def test_golden_cases_are_named_for_the_criteria_they_test(aid: DecisionAid, file: str) -> None:
    for case in (c for c in CASES if c.file == file):
        named = re.findall(r"[A-Z]+-\d\d", case.id)
        assert named and case.id.startswith(named[0]), f"{case.id}: start the id with a criterion id"
        for cid in [*named, *case.criteria]:
            assert cid in aid.knowledge.criteria, f"{case.id}: unknown criterion {cid}"


def test_at_least_forty_new_golden_cases() -> None:
    assert sum(1 for c in CASES if c.file in OWN_GOLDEN_FILES) >= 40


# ----------------------------------------------------------------- unconfirmed figures are marked


def test_an_unconfirmed_figure_is_marked_in_the_text_and_markdown_reports(tmp_path: Path) -> None:
    answers = yaml.safe_load((ROOT / "examples/cancer-pain.yaml").read_text())
    answers["life_expectancy_months"] = 4  # between the confirmed 3 months and the unconfirmed ESMO 6 months
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(answers))
    for fmt in ("text", "markdown"):
        done = run_cli("evaluate", str(path), "--format", fmt)
        assert done.returncode == 0, done.stderr
        esmo = [line for line in done.stdout.splitlines() if "SAF-PUMP-ESMO" in line]
        assert esmo and all("(unconfirmed figure)" in line for line in esmo), esmo


def test_a_confirmed_figure_is_not_marked(tmp_path: Path) -> None:
    done = run_cli("evaluate", str(ROOT / "examples/facet-back-pain.yaml"), "--format", "text")
    assert done.returncode == 0, done.stderr
    reason = [line for line in done.stdout.splitlines() if "A test block eased your pain enough" in line]
    assert reason and not any("(unconfirmed figure)" in line for line in reason)
