"""`pain-sdm rules verify`: the real rulebook passes, and every check catches a rulebook broken on purpose.

Small broken rulebooks live in tests/fixtures/broken_rules/ (each folder is copied over `base/`);
the safety invariants are proven on mutated copies of the real rulebook. Each test names the
finding it expects.
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import json
import random
import re
import shutil
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from conftest import ROOT, run_cli, threshold_answers

import engine.audit.verify as verify_module
from engine.audit.acceptances import FindingName
from engine.audit.answer_space import AnswerSpace, essential_goals
from engine.audit.verify import AuditFinding, VerifyReport, verify
from engine.evaluation.aid import DecisionAid
from engine.model import status as status_model
from engine.model.knowledge import PROCEDURE_IDS
from engine.model.status import Status

FIXTURES = Path(__file__).parent / "fixtures" / "broken_rules"
TODAY = dt.date(2026, 11, 24)
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and p.name != "base")

EXPECTED: dict[str, tuple[str, str]] = {
    "never-fires-derived": ("never-fires", "error"),
    "never-fires-in-one-profile": ("never-fires", "warning"),
    "missing-criteria": ("missing-criteria", "info"),
    "overlapping-rules": ("overlapping-rules", "info"),
    "status-overlap": ("status-overlap", "info"),
    "duplicate-rule": ("duplicate-rule", "warning"),
    "subsumed-rule": ("subsumed-rule", "warning"),
    "shadowed-rule": ("shadowed-rule", "warning"),
    "overdue-review": ("overdue-review", "warning"),
    "review-date-in-future": ("review-date-in-future", "warning"),
    "unused-parameter": ("unused-parameter", "warning"),
    "stale-acceptance": ("stale-acceptance", "warning"),
    "acceptance-of-error": ("acceptance-of-error", "warning"),
}
"""Fixture folder -> (finding name, severity), where the folder is not simply named after an error finding."""


def broken(tmp_path: Path, case: str) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(FIXTURES / "base", rules)
    for path in (FIXTURES / case).iterdir():
        shutil.copy(path, rules / path.name)
    return rules


def names(report: VerifyReport) -> set[tuple[str, str]]:
    return {(f.name, f.severity) for f in report.findings}


@pytest.fixture(scope="module")
def base_report() -> VerifyReport:
    return verify(FIXTURES / "base", today=TODAY)


@pytest.mark.parametrize("case", CASES)
def test_each_broken_rulebook_is_caught_by_name(tmp_path: Path, case: str, base_report: VerifyReport) -> None:
    name, severity = EXPECTED.get(case, (case, "error"))
    report = verify(broken(tmp_path, case), today=TODAY)
    if case == "unreachable-status":
        wanted = [
            f for f in report.findings if f.name == name and f.subject == "nerve_block" and "after_prereq" in f.message
        ]
        assert wanted and wanted[0].severity == "error", report.findings
        base = [f for f in base_report.findings if f.subject == "nerve_block" and "after_prereq" in f.message]
        assert [f.severity for f in base] == ["warning"]  # base: no rule sets it, which is only a warning
        return
    assert (name, severity) in names(report), [f for f in report.findings if f.severity != "info"]
    assert (name, severity) not in names(base_report)


def test_a_derived_fact_that_is_never_true_is_named_in_the_rule_that_needs_it(tmp_path: Path) -> None:
    report = verify(broken(tmp_path, "never-fires-derived"), today=TODAY)
    reader = next(f for f in report.findings if f.name == "never-fires" and f.subject == "FJ-NEEDS-IMPOSSIBLE")
    assert "impossible_pattern" in reader.message


def test_overlaps_carry_answers_that_show_them(tmp_path: Path, aid: DecisionAid) -> None:
    report = verify(broken(tmp_path, "status-overlap"), today=TODAY)
    overlap = next(f for f in report.findings if f.name == "status-overlap")
    assert overlap.example is not None
    assert overlap.example["pain_pattern"] == "axial" and overlap.example["pain_intensity"] < 3


def test_every_finding_name_is_documented() -> None:
    doc = verify_module.__doc__ or ""
    for name, _ in list(EXPECTED.values()) + [(c, "") for c in CASES if c not in EXPECTED]:
        assert f"`{name}`" in doc, name
    for name in get_args(FindingName):  # the names an acceptance may give, which mypy holds verify to
        assert f"`{name}`" in doc, name


# -- through the command line ------------------------------------------------------------------


def test_the_real_rulebook_verifies_with_no_error_and_no_warning() -> None:
    """(How long it takes is measured by bench/run.py, never asserted by a test.)"""
    done = run_cli("rules", "verify", "--format", "json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    report = json.loads(done.stdout)
    assert report["counts"]["error"] == 0
    assert report["counts"]["warning"] == 0, [f for f in report["findings"] if f["severity"] == "warning"]
    accepted = [f for f in report["findings"] if f["accepted"]]
    assert all(f["severity"] == "info" and f["accepted"]["severity"] != "error" for f in accepted)
    assert report["seconds"] > 0
    checked = "\n".join(report["enumerated"])
    for invariant in ("safety-red-flag", "safety-infection", "safety-implant", "safety-conservative-care"):
        assert invariant in checked
    assert "answer sets evaluated" in checked and "search steps" in checked


def test_an_error_finding_exits_1_and_is_printed_with_its_name(tmp_path: Path) -> None:
    rules = broken(tmp_path, "contradiction")
    done = run_cli("rules", "verify", "--rules", str(rules), "--today", "2026-11-24")
    assert done.returncode == 1
    assert "ERROR   contradiction: NB-CAND / NB-NI" in done.stdout
    assert "What was checked:" in done.stdout


def test_notes_on_rules_that_hold_together_are_counted_and_listed_on_request(tmp_path: Path) -> None:
    rules = broken(tmp_path, "overlapping-rules")
    report = verify(rules, today=TODAY)
    overlaps = [f for f in report.findings if f.name == "overlapping-rules"]
    assert overlaps
    args = ("rules", "verify", "--rules", str(rules), "--today", "2026-11-24")
    short, full = run_cli(*args), run_cli(*args, "--notes")
    assert short.returncode == full.returncode
    for f in overlaps:
        line = f"INFO    overlapping-rules: {f.subject}"
        assert line not in short.stdout and line in full.stdout
    assert f"not listed: overlapping-rules ({len(overlaps)})" in short.stdout and "--notes" in short.stdout
    counts = report.counts()
    for severity, word in (("error", "error"), ("warning", "warning"), ("info", "note")):
        n = counts[severity]
        assert f"{n} {word}{'' if n == 1 else 's'}" in short.stdout.splitlines()[-1]


def test_warnings_alone_exit_0(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    path = next(p for p in sorted(rules.glob("*.yaml")) if "last_reviewed" in p.read_text())
    path.write_text(path.read_text().replace("last_reviewed: 20", "last_reviewed: 19", 1))
    done = run_cli("rules", "verify", "--rules", str(rules), "--profile", "consensus", "--format", "json")
    assert done.returncode == 0, done.stdout[-2000:]
    found = json.loads(done.stdout)["findings"]
    assert any(f["name"] == "overdue-review" and f["severity"] == "warning" for f in found)


def test_a_rulebook_that_does_not_load_is_reported_not_raised(tmp_path: Path) -> None:
    done = run_cli("rules", "verify", "--rules", str(broken(tmp_path, "unknown-reference")))
    assert done.returncode == 1
    assert "unknown-reference" in done.stdout and "pain_patern" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--today", "yesterday"], "--today"),
        (["--rules", "/no/such/dir"], "does not exist"),
        (["--profile", "mars"], "unknown profile"),
    ],
)
def test_bad_options_exit_2(args: list[str], message: str) -> None:
    done = run_cli("rules", "verify", *args)
    assert done.returncode == 2
    assert message in done.stderr


# -- accepted findings: rules/accepted-findings.yaml (engine/acceptances.py) ----------------------

AFTER_STEPS = "never after_prerequisite"


def entry(**change: Any) -> dict[str, Any]:
    """An accepted-findings entry for base's nerve_block 'never after steps' warning; None drops a field."""
    fields = {
        "check": "unreachable-status",
        "subject": "nerve_block",
        "detail": AFTER_STEPS,
        "reason": "No criterion (NB-01 to NB-08) sets steps before a nerve block.",
        "accepted_by": "Dr Test",
        "date": dt.date(2026, 11, 20),
        **change,
    }
    return {k: v for k, v in fields.items() if v is not None}


def accepting(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    """A copy of the base rulebook with these accepted findings."""
    rules = tmp_path / "rules"
    shutil.copytree(FIXTURES / "base", rules)
    (rules / "accepted-findings.yaml").write_text(yaml.safe_dump({"accepted": list(entries)}, sort_keys=False))
    return rules


def about(findings: list[AuditFinding], pid: str) -> list[AuditFinding]:
    return [f for f in findings if f.subject == pid and AFTER_STEPS in f.message]


def test_an_accepted_warning_becomes_a_note_saying_who_accepted_it_when_and_why(
    tmp_path: Path, base_report: VerifyReport
) -> None:
    rules = accepting(tmp_path, entry())
    report = verify(rules, today=TODAY)
    assert [f.severity for f in about(base_report.findings, "nerve_block")] == ["warning"]
    accepted = about(report.findings, "nerve_block")
    assert [(f.name, f.severity) for f in accepted] == [("unreachable-status", "info")]
    assert accepted[0].accepted is not None and accepted[0].accepted.severity == "warning"
    assert [f.severity for f in about(report.findings, "epidural_steroid_injection")] == ["warning"]  # not accepted
    assert report.counts()["warning"] == base_report.counts()["warning"] - 1
    assert not [f for f in report.findings if f.name in ("stale-acceptance", "acceptance-of-error")]

    args = ("rules", "verify", "--rules", str(rules), "--today", "2026-11-24")
    text, as_json = run_cli(*args), run_cli(*args, "--format", "json")
    assert text.returncode == as_json.returncode == 1  # base's own errors stay: exit codes are unchanged
    assert f"WARNING unreachable-status: nerve_block [consensus, us-medicare]: {AFTER_STEPS}" not in text.stdout
    block = " ".join(text.stdout.split("Accepted after review (1)", 1)[1].split())
    assert f"unreachable-status: nerve_block [consensus, us-medicare]: {AFTER_STEPS}" in block
    assert "a warning, accepted by Dr Test on 2026-11-20: No criterion (NB-01 to NB-08) sets steps" in block
    shown = next(f for f in json.loads(as_json.stdout)["findings"] if f["accepted"])
    assert shown["subject"] == "nerve_block" and shown["severity"] == "info"
    assert shown["accepted"] == {
        "severity": "warning",
        "accepted_by": "Dr Test",
        "date": "2026-11-20",
        "reason": entry()["reason"],
        "entry": f"{rules / 'accepted-findings.yaml'}, acceptance #1",
    }


def test_an_acceptance_that_matches_no_finding_is_a_stale_warning_naming_file_and_entry(tmp_path: Path) -> None:
    rules = broken(tmp_path, "stale-acceptance")
    stale = [f for f in verify(rules, today=TODAY).findings if f.name == "stale-acceptance"]
    assert [(f.severity, f.subject) for f in stale] == [
        ("warning", f"{rules / 'accepted-findings.yaml'}, acceptance #1")
    ]
    assert "unreachable-status: conservative_care" in stale[0].message
    one_profile = verify(rules, today=TODAY, profile="consensus")  # other profiles' findings are not looked for
    assert [f.severity for f in one_profile.findings if f.name == "stale-acceptance"] == ["info"]


def test_an_entry_repeating_an_earlier_one_is_stale(tmp_path: Path) -> None:
    report = verify(accepting(tmp_path / "twice", entry(), entry(accepted_by="Dr Other")), today=TODAY)
    stale = [f for f in report.findings if f.name == "stale-acceptance"]
    assert [f.subject.rsplit(", ", 1)[1] for f in stale] == ["acceptance #2"]
    assert [f.accepted.acceptance.accepted_by for f in report.findings if f.accepted] == ["Dr Test"]


def test_an_acceptance_never_silences_an_error(tmp_path: Path) -> None:
    rules = broken(tmp_path, "acceptance-of-error")
    done = run_cli("rules", "verify", "--rules", str(rules), "--today", "2026-11-24", "--format", "json")
    assert done.returncode == 1
    found = json.loads(done.stdout)["findings"]
    error = [f for f in found if f["subject"] == "nerve_block" and f["message"] == "no answers make it candidate"]
    assert [(f["name"], f["severity"], f["accepted"]) for f in error] == [("unreachable-status", "error", None)]
    warning = [f for f in found if f["name"] == "acceptance-of-error"]
    assert [(f["severity"], f["subject"]) for f in warning] == [
        ("warning", f"{rules / 'accepted-findings.yaml'}, acceptance #1")
    ]
    assert "no answers make it candidate" in warning[0]["message"]


def test_an_entry_matching_an_error_and_a_warning_accepts_only_the_warning(tmp_path: Path) -> None:
    report = verify(accepting(tmp_path, entry(detail=None)), today=TODAY)
    nerve_block = {(f.message, f.severity) for f in report.findings if f.subject == "nerve_block"}
    assert ("no answers make it candidate", "error") in nerve_block
    assert ("never after_prerequisite: no rule sets this status for it", "info") in nerve_block
    assert [f.severity for f in report.findings if f.name == "acceptance-of-error"] == ["warning"]


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"check": "unreachable-statuses"}, "check", "unknown finding name"),
        ({"check": "safety-infection"}, "check", "cannot be accepted"),
        ({"reason": None}, "reason", "this field is required"),
        ({"reason": "fine"}, "reason", "at least 20 characters"),
        ({"date": "24/11/2026"}, "date", "valid date"),
        ({"accepted_by": None}, "accepted_by", "this field is required"),
    ],
    ids=["unknown-check", "safety-check", "no-reason", "short-reason", "bad-date", "no-accepted-by"],
)
def test_a_bad_accepted_findings_file_exits_2_naming_file_entry_and_field(
    tmp_path: Path, change: dict[str, Any], field: str, says: str
) -> None:
    rules = accepting(tmp_path, entry(subject="epidural_steroid_injection"), entry(**change))
    done = run_cli("rules", "verify", "--rules", str(rules), "--today", "2026-11-24")
    assert done.returncode == 2 and done.stdout == ""
    problems = [line for line in done.stderr.splitlines() if "accepted-findings.yaml" in line]
    assert len(problems) == 1, done.stderr
    assert f"{rules / 'accepted-findings.yaml'}, acceptance #2, field `{field}`: " in problems[0]
    assert says in problems[0]


# -- safety invariants, on a mutated copy of the real rulebook -----------------------------------
#
# Four independent mutations are made to one copy (verifying it once keeps the suite fast):
# the red-flag rule loses its urgent flag; an infection rule forgets a needle procedure; the
# stimulator's candidate rule loses its trial condition; conservative care is deferred by
# the first deferring rule.


def reads(rule: dict[str, Any], fact: str) -> bool:
    return f"'fact': '{fact}'" in str(rule["when"])


def drop_urgency(rule: dict[str, Any]) -> bool:
    return rule["then"].pop("urgent_assessment", False) is True


def forget_needle(needle: str) -> Any:
    def change(rule: dict[str, Any]) -> bool:
        then = rule["then"]
        infection = reads(rule, "systemic_infection") or reads(rule, "local_infection")
        if then.get("status") == "deferred" and infection and needle in then["procedures"]:
            then["procedures"].remove(needle)
            return True
        return False

    return change


def drop_scs_trial(rule: dict[str, Any]) -> bool:
    then, when = rule["then"], rule["when"]
    trial_steps = {"scs_trial", "record_trial_result"}
    if then.get("status") == "after_prerequisite" and "spinal_cord_stimulation" in then.get("procedures", []):
        if trial_steps & {step["id"] for step in then.get("steps", [])}:
            rule["status"] = "retired"  # the rules that ask for the trial (or its result) go too
            return False
    if then.get("status") == "candidate" and "spinal_cord_stimulation" in then.get("procedures", []):
        parts = when.get("all", [])
        kept = [p for p in parts if p.get("fact") != "scs_trial_relief_percent"]
        when["all"] = kept
        return len(kept) < len(parts)
    return False


def defer_conservative_care() -> Any:
    done: list[str] = []

    def change(rule: dict[str, Any]) -> bool:
        then = rule["then"]
        if not done and then.get("status") == "deferred" and not then.get("urgent_assessment"):
            then["procedures"].append("conservative_care")
            done.append(rule["id"])
            return True
        return False

    return change


@pytest.fixture(scope="module")
def needle(aid: DecisionAid) -> str:
    return next(p for p in PROCEDURE_IDS if aid.knowledge.procedures[p].needle)


@pytest.fixture(scope="module")
def mutated(tmp_path_factory: pytest.TempPathFactory, needle: str) -> VerifyReport:
    rules = tmp_path_factory.mktemp("mutated") / "rules"
    shutil.copytree(ROOT / "rules", rules)
    changes = [drop_urgency, forget_needle(needle), drop_scs_trial, defer_conservative_care()]
    made = [0] * len(changes)
    for path in sorted(rules.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict) or "rules" not in data:
            continue
        for rule in data["rules"]:
            for i, change in enumerate(changes):
                made[i] += change(rule)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert all(made), f"a mutation found nothing to change: {made}"
    return verify(rules, today=TODAY, profile="consensus")


def safety(report: VerifyReport, name: str) -> list[AuditFinding]:
    return [f for f in report.findings if f.name == name and f.severity == "error"]


def test_red_flag_rule_without_urgency_breaks_the_red_flag_invariant(mutated: VerifyReport) -> None:
    found = safety(mutated, "safety-red-flag")
    assert found and "urgent assessment is not set" in found[0].message
    assert found[0].example is not None and found[0].example["red_flags"]


def test_infection_rule_forgetting_a_procedure_breaks_the_infection_invariant(
    mutated: VerifyReport, needle: str
) -> None:
    found = safety(mutated, "safety-infection")
    assert found and f"{needle} is a candidate" in found[0].message


def test_stimulator_without_a_trial_breaks_the_implant_invariant(mutated: VerifyReport) -> None:
    found = [f for f in safety(mutated, "safety-implant") if f.subject == "spinal_cord_stimulation"]
    assert found and found[0].example is not None
    assert found[0].example.get("scs_trial_relief_percent", "unknown") == "unknown"


def test_deferring_conservative_care_breaks_its_invariant(mutated: VerifyReport) -> None:
    found = safety(mutated, "safety-conservative-care")
    assert found and "conservative_care is deferred" in found[0].message


# -- the proof follows the logic that runs: status resolution and prerequisites are not copies ------


def test_verify_resolves_statuses_with_the_result_builders_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the least restrictive status win: evaluation and `rules verify` both follow, so the red-flag
    invariant (a deferring rule must beat a candidate rule) is reported broken."""
    real = status_model.resolve

    def least_restrictive_wins(statuses: Any) -> Status | None:
        found = [Status(s) for s in statuses]
        return min(found, key=lambda s: s.rank) if found else real(found)

    monkeypatch.setattr(status_model, "resolve", least_restrictive_wins)
    aid = DecisionAid.load()
    answers = yaml.safe_load((ROOT / "examples" / "sciatica.yaml").read_text())
    flagged = aid.evaluate(aid.parse_answers({**answers, "red_flags": ["new_weakness"]}))
    assert flagged.option("conservative_care").status == "candidate"
    assert any(o.status == "candidate" for o in flagged.options if o.procedure != "conservative_care")
    report = verify(today=TODAY, profile="consensus")
    broken = safety(report, "safety-red-flag")
    assert broken and "is a candidate" in broken[0].message
    assert not [f for f in report.findings if f.name == "internal-disagreement"]


def test_verify_reads_the_implant_prerequisites_from_the_rule_file(tmp_path: Path) -> None:
    """Require a 90% trial for a stimulator in a copy of rules/30-prerequisites.yaml: the candidate rule
    (50%) now breaks the implant invariant, with answers between the two thresholds."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    path = rules / "30-prerequisites.yaml"
    text = path.read_text()
    old = '- {fact: scs_trial_relief_percent, op: ">=", param: scs_trial_relief_percent}'
    assert text.count(old) == 1
    path.write_text(text.replace(old, '- {fact: scs_trial_relief_percent, op: ">=", value: 90}'))
    report = verify(rules, today=TODAY, profile="consensus")
    found = [f for f in safety(report, "safety-implant") if f.subject == "spinal_cord_stimulation"]
    assert found and "spinal_cord_stimulation is a candidate" in found[0].message
    assert found[0].example is not None and 50 <= found[0].example["scs_trial_relief_percent"] < 90
    # (the shipped rules keep the invariant: test_the_real_rulebook_verifies_with_no_error_and_no_warning)


def test_a_new_invariant_in_the_file_is_proven_and_a_broken_one_is_named_by_its_id(tmp_path: Path) -> None:
    """An invariant added to rules/invariants.yaml is checked like the shipped ones: here one that no rule
    can keep (a pregnant patient never has an epidural after steps)."""
    rules = tmp_path / "rules"
    shutil.copytree(FIXTURES / "base", rules)
    data = yaml.safe_load((rules / "invariants.yaml").read_text())
    data["invariants"].append(
        {
            "id": "safety-no-epidural-candidate",
            "statement": "No epidural is ever a candidate (a test invariant that must fail).",
            "procedures": ["epidural_steroid_injection"],
            "forbids": ["candidate"],
        }
    )
    (rules / "invariants.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    report = verify(rules, today=TODAY)
    found = safety(report, "safety-no-epidural-candidate")
    assert found and "epidural_steroid_injection is a candidate" in found[0].message
    assert "safety-no-epidural-candidate" in "\n".join(report.enumerated)


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"when": {"fact": "pregnent", "op": "==", "value": "yes"}}, "when: pregnent", "unknown fact"),
        ({"when": {"fact": "pregnant", "op": "==", "value": "maybe"}}, "when: pregnant", "not a choice"),
        ({"forbids": ["candidat"]}, "forbids", "`candidat` is not a status"),
        ({"procedures": "implant", "prerequisites": "unmet"}, "procedures", "has no requirement"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
    ids=["unknown-fact", "bad-value", "bad-status", "no-requirement", "unknown-field"],
)
def test_a_bad_invariant_is_a_load_error_naming_file_invariant_and_field(
    tmp_path: Path, change: dict[str, Any], field: str, says: str
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(FIXTURES / "base", rules)
    data = yaml.safe_load((rules / "invariants.yaml").read_text())
    data["invariants"][1].update(change)
    (rules / "invariants.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    done = run_cli("rules", "verify", "--rules", str(rules), "--format", "json")
    assert done.returncode == 1, done.stderr
    errors = [f for f in json.loads(done.stdout)["findings"] if f["severity"] == "error"]
    assert errors, done.stdout
    where = f"{rules / 'invariants.yaml'}, invariant safety-infection"
    assert any(f["subject"] == where and f"`{field}`" in f["message"] and says in f["message"] for f in errors), errors


def test_a_missing_invariants_file_is_an_error_not_an_unchecked_rulebook(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(FIXTURES / "base", rules)
    (rules / "invariants.yaml").unlink()
    report = verify(rules, today=TODAY)
    assert any("invariants file is missing" in f.message for f in report.errors), report.findings


def test_the_red_flag_invariant_covers_every_red_flag_choice(aid: DecisionAid) -> None:
    spec = aid.rulebook.invariant("safety-red-flag")
    assert spec is not None and spec.when is not None
    assert isinstance(spec.when.value, list)
    assert set(spec.when.value) == set(aid.questionnaire.questions["red_flags"].values)


# -- the checker's own faults are findings too ---------------------------------------------------


def test_a_search_the_evaluator_does_not_confirm_is_an_internal_disagreement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = verify_module.Outcome.of

    def lying(results: Any, *procedures: Any) -> verify_module.Outcome:
        out = real(results, *procedures)
        return verify_module.Outcome(out.statuses, out.urgent, frozenset())

    monkeypatch.setattr(verify_module.Outcome, "of", lying)
    report = verify(FIXTURES / "base", today=TODAY)
    assert ("internal-disagreement", "error") in names(report)


def test_example_patients_are_baselines_and_an_unreadable_one_is_skipped_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def baselines(report: VerifyReport) -> int:
        found = re.search(r"safety-red-flag: \d+ answer sets evaluated = (\d+) baselines", "\n".join(report.enumerated))
        assert found
        return int(found.group(1))

    without = verify(FIXTURES / "base", today=TODAY, examples_dir=tmp_path)
    shutil.copy(ROOT / "examples" / "sciatica.yaml", tmp_path / "good.yaml")
    (tmp_path / "bad.yaml").write_text("pain_duration_months: three\n")
    report = verify(FIXTURES / "base", today=TODAY, examples_dir=tmp_path)
    assert [f.subject for f in report.findings if f.name == "example-skipped"] == ["bad.yaml"]
    assert baselines(report) == baselines(without) + 1


def test_a_search_over_budget_is_undecided() -> None:
    report = verify(FIXTURES / "base", today=TODAY, budget=1)
    assert ("undecided", "warning") in names(report)


def test_the_search_never_searches_again_what_it_found_impossible(aid: DecisionAid) -> None:
    """Goals met in another order reach the same constraints: a search without memory of its failures
    takes 2^20 steps here (each of 20 goals has two alternatives that agree), and runs out of budget."""
    space = AnswerSpace(aid.rulebook, aid.questionnaire, aid.rulebook.default_profile, budget=1000)
    agreeing = [[{"pain_duration_months": 0b01}, {"pain_duration_months": 0b11}] for _ in range(20)]
    contradicting = [[{"age_years": 0b01}, {"age_years": 0b10}], [{"age_years": 0b100}, {"age_years": 0b1000}]]
    assert space.search([*agreeing, *contradicting]) is None
    assert space.search([*agreeing, contradicting[0]]) == {"pain_duration_months": 0b01, "age_years": 0b01}


def test_goals_other_goals_imply_are_searched_without_first_and_the_answers_are_the_whole_searchs(
    tmp_path: Path,
) -> None:
    """`solve` first searches without the goals that others imply (copies of a rule at other thresholds):
    where those cannot hold together it stops; else the answers are those the search over every goal finds."""
    from bench.scale import scaled_rulebook

    rules, knowledge = scaled_rulebook(2, tmp_path)
    book = DecisionAid.load(rules, knowledge)
    space = AnswerSpace(book.rulebook, book.questionnaire, book.rulebook.default_profile)
    outcomes = {"impossible": 0, "found": 0}
    for pid in PROCEDURE_IDS:
        status_rules = [r for r in space.rules if r.then.status is not None and pid in r.then.procedures]
        no_rule = [space.rule_not_true(r) for r in status_rules]
        some_rule = [space.rule_true(r) for r in status_rules[:1]]
        for goals in (no_rule, no_rule[1:], some_rule + no_rule[1:]):
            found = space.solve(goals)
            assert found == space.search(goals), pid
            if len(essential_goals(goals)) < len(goals):
                outcomes["found" if found is not None else "impossible"] += 1
    assert all(outcomes.values()), outcomes  # both ways out were taken


# -- the search agrees with the independent evaluator on generated patients ----------------------


def test_generated_patients_never_contradict_what_the_search_proved(aid: DecisionAid) -> None:
    """Rules the search says cannot hold together never do; implications it proves always hold."""
    profile = aid.rulebook.default_profile
    space = AnswerSpace(aid.rulebook, aid.questionnaire, profile)
    rules = [r for r in space.rules if r.then.status is not None or r.then.derive is not None]
    disjoint, implies = [], []
    for a, b in itertools.combinations(rules, 2):
        if space.solve([space.rule_true(a), space.rule_true(b)]) is None:
            disjoint.append((a.id, b.id))
            continue
        for x, y in ((a, b), (b, a)):
            if space.solve([space.rule_true(x), space.rule_not_true(y)]) is None:
                implies.append((x.id, y.id))
    assert disjoint and implies
    evaluator = aid.evaluator(profile)
    rng = random.Random(7)
    for _ in range(1500):
        results, _ = evaluator.evaluate_rules(aid.parse_answers(threshold_answers(aid, rng)).model_dump())
        holding = {r.rule.id for r in results if r.truth is True}
        assert not [p for p in disjoint if set(p) <= holding]
        assert not [p for p in implies if p[0] in holding and p[1] not in holding]


def test_an_implication_decided_from_the_alternatives_is_the_searchs_verdict(tmp_path: Path, aid: DecisionAid) -> None:
    """`AnswerSpace.implied` decides some implications between rules without a search: always as the search does
    (on the shipped rules, and on rules one of which implies another)."""
    decided: dict[bool, int] = {True: 0, False: 0}
    books = [aid] + [DecisionAid.load(broken(tmp_path / case, case)) for case in ("subsumed-rule", "duplicate-rule")]
    for book in books:
        space = AnswerSpace(book.rulebook, book.questionnaire, book.rulebook.default_profile)
        for pid in PROCEDURE_IDS:
            rules = [r for r in space.rules if r.then.status is not None and pid in r.then.procedures]
            for a, b in itertools.permutations(rules, 2):
                premise, denial = space.rule_true(a), space.rule_not_true(b)
                verdict = space.implied(premise, space.rule_true(b), denial)
                if verdict is not None:
                    assert verdict == (space.solve([premise, denial]) is None), (a.id, b.id)
                    decided[verdict] += 1
    assert decided[True] and decided[False], decided


def test_each_condition_compiles_to_exactly_the_answers_that_give_each_truth(aid: DecisionAid) -> None:
    """The search's alternatives for 'true', 'false', 'unknown' and 'not true' match three-valued evaluation."""
    from engine.audit.answer_space import FALSE, NOT_TRUE, TRUE, UNKNOWN_, truth_of

    profile = aid.rulebook.default_profile
    space = AnswerSpace(aid.rulebook, aid.questionnaire, profile)
    rng = random.Random(3)
    checked = 0
    for rule in space.rules:
        facts = sorted({a.fact for a in rule.when.atoms() if a.fact is not None})
        domains = [range(len(space.domain(f))) for f in facts]
        combos = list(itertools.product(*domains))
        for combo in combos if len(combos) <= 300 else rng.sample(combos, 300):
            values = {f: space.domain(f)[i] for f, i in zip(facts, combo, strict=True)}
            truth = truth_of(rule.when, values, space.params)
            for wanted in (TRUE, FALSE, UNKNOWN_, NOT_TRUE):
                covered = any(
                    all(conj.get(f, space.full(f)) >> i & 1 for f, i in zip(facts, combo, strict=True))
                    for conj in space.cases(rule.when, wanted)
                )
                assert covered == (truth in wanted), (rule.id, values, sorted(map(str, wanted)))
            checked += 1
    assert checked > 1000


def test_rules_show_and_the_book_give_each_invariant_and_the_implant_prerequisites_from_the_rule_file(
    tmp_path: Path,
) -> None:
    shown = run_cli("rules", "show", "safety-implant")
    assert shown.returncode == 0, shown.stderr
    assert "NEVER candidate" in shown.stdout and "FOR   spinal_cord_stimulation" in shown.stdout
    assert "spinal_cord_stimulation lacks its prerequisites (scs_trial, psychological_evaluation)" in shown.stdout
    book = tmp_path / "book.md"
    done = run_cli("rules", "book", "-o", str(book))
    assert done.returncode == 0, done.stderr
    text = book.read_text()
    invariants = yaml.safe_load((ROOT / "rules" / "invariants.yaml").read_text())["invariants"]
    assert "## Safety invariants" in text
    for inv in invariants:
        assert f"### {inv['id']}" in text


def test_verify_runs_with_the_cyclic_collector_paused_and_leaves_it_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks run without the cyclic collector walking what they make (`memory.building`); it runs after."""
    seen: list[bool] = []

    def checks(*_: object) -> VerifyReport:
        seen.append(gc.isenabled())
        return VerifyReport([], [], 0.0)

    monkeypatch.setattr(verify_module, "_verify", checks)
    assert gc.isenabled()
    verify()
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        verify()
        assert seen == [False, False] and not gc.isenabled(), "paused before: paused after"
    finally:
        gc.enable()


def _sharing_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every profile runs every check itself (as before checks were shared between profiles)."""

    class Forgets(dict[Any, Any]):
        def __setitem__(self, key: Any, value: Any) -> None:
            pass

    real = verify_module.SharedChecks
    monkeypatch.setattr(verify_module, "SharedChecks", lambda: real(done=Forgets()))


@pytest.mark.parametrize("case", ["never-fires-in-one-profile", "unreachable-status", "status-overlap"])
def test_a_check_shared_between_profiles_finds_what_each_profile_alone_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """A check reading only rules that are the same in two profiles runs once (SharedChecks): same findings."""
    rules = broken(tmp_path, case)
    shared = verify(rules, today=TODAY)
    assert any("not run again" in block for block in shared.enumerated)
    _sharing_nothing(monkeypatch)
    alone = verify(rules, today=TODAY)
    assert not any("not run again" in block for block in alone.enumerated)
    assert [f.to_json() for f in shared.findings] == [f.to_json() for f in alone.findings]


@pytest.mark.slow
def test_the_shipped_rulebook_verifies_the_same_with_checks_shared_between_profiles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = verify()
    _sharing_nothing(monkeypatch)
    alone = verify()
    assert [f.to_json() for f in shared.findings] == [f.to_json() for f in alone.findings]


@pytest.mark.slow
def test_the_2x_rulebook_verifies_the_same_with_every_question_searched_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Implications decided from the alternatives and goals dropped as implied by others change only the
    search steps counted: the findings, and everything else the report says, are those of full searches."""
    import engine.audit.answer_space as answer_space
    from bench.scale import scaled_rulebook

    rules, knowledge = scaled_rulebook(2, tmp_path)
    quick = verify(rules, knowledge, today=TODAY)
    monkeypatch.setattr(answer_space.AnswerSpace, "implied", lambda self, premise, conclusion, denial: None)
    monkeypatch.setattr(answer_space, "essential_goals", lambda goals: goals)
    full = verify(rules, knowledge, today=TODAY)
    assert [f.to_json() for f in quick.findings] == [f.to_json() for f in full.findings]
    assert any(f.name == "subsumed-rule" for f in full.findings)  # implications that held were decided too

    def steps_left_out(report: VerifyReport) -> list[str]:
        return [re.sub(r"\d+ search steps", "search steps", block) for block in report.enumerated]

    assert steps_left_out(quick) == steps_left_out(full)
    assert quick.enumerated != full.enumerated  # fewer steps: the shortcuts were taken
