"""Golden cases: answers in, statuses and reasons out, through the real durable_rules engine.

Each file in tests/golden/ holds cases named for the rule or criterion they test, e.g.
`ESI-07_repeat_after_49_percent`; `pytest -k ESI-07` selects them. A case names a base
example patient (`base:`) and the answers it changes, or gives all its answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.audit.golden import GoldenCase, load_cases
from engine.errors import DataFileError
from engine.evaluation.aid import DecisionAid
from engine.model.knowledge import PROCEDURE_IDS
from engine.model.status import STATUSES

CASES = load_cases()
"""Every golden case, read by the loader `rules coverage` and `rules diff` use (engine/audit/golden.py)."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", CASES, ids=[c.id for c in CASES])


def test_case(aid: DecisionAid, case: GoldenCase) -> None:
    answers = aid.parse_answers(case.answers, case.id)
    result = aid.evaluate(answers, case.profile, compare_profiles=False)
    expect = case.expect
    if expect.urgent_assessment is not None:
        assert result.urgent_assessment is expect.urgent_assessment
    for pid, status in expect.statuses.items():
        assert result.option(pid).status == status, f"{pid}: {[r.rule_id for r in result.option(pid).reasons]}"
    for pid, rule_ids in expect.reasons.items():
        assert sorted(r.rule_id for r in result.option(pid).reasons) == sorted(rule_ids)
    for pid, rule_ids in expect.cautions.items():
        assert sorted(c.rule_id for c in result.option(pid).cautions) == sorted(rule_ids)
    for pid, step_ids in expect.next_steps.items():
        assert [s.id for s in result.option(pid).next_steps] == step_ids
    for pid in expect.declined:
        assert result.option(pid).declined is not None
    for pid, profiles in expect.differs_under.items():
        full = aid.evaluate(answers, case.profile)
        found = {d.profile: d.status for d in full.profile_differences if d.procedure == pid}
        assert found == profiles
    for pid, by_profile in expect.profile_differences.items():
        full = aid.evaluate(answers, case.profile)
        diffs = {d.profile: d for d in full.profile_differences if d.procedure == pid}
        for other, want in by_profile.items():
            assert other in diffs, f"{pid}: no difference under {other}"
            diff = diffs[other]
            assert diff.status == want.status
            assert set(want.rules) <= set(diff.rules), diff.rules
            assert set(want.parameters) <= set(diff.parameters), diff.parameters
            assert diff.rules or diff.parameters, "a difference must name the rule or parameter behind it"
    for pid, rule_ids in expect.unconfirmed.items():
        option = result.option(pid)
        marked = {f.rule_id for f in [*option.reasons, *option.cautions] if f.unconfirmed}
        assert set(rule_ids) <= marked, f"{pid}: marked unconfirmed: {sorted(marked)}"
    cited = {c for f in result.trace for c in f.criteria}
    missing = set(case.criteria) - cited
    assert not missing, f"criteria named by the case but cited by no rule that fired: {sorted(missing)}"


def test_case_agrees_with_independent_evaluator(aid: DecisionAid, case: GoldenCase) -> None:
    answers = aid.parse_answers(case.answers, case.id).model_dump()
    profile = aid.rulebook.check_profile(case.profile)
    from engine.model.facts import flatten

    durable = {f.key for f in aid.engine(profile).run(flatten(answers, aid.questionnaire))}
    independent = {f.key for f in aid.evaluator(profile).firings(answers)}
    assert durable == independent


def test_golden_cases_cover_every_procedure_and_status() -> None:
    seen = {(pid, status) for c in CASES for pid, status in c.expect.statuses.items()}
    for pid in PROCEDURE_IDS:
        statuses = {s for p, s in seen if p == pid}
        assert statuses, f"no golden case checks {pid}"
    for status in STATUSES:
        assert any(s == status for _, s in seen), f"no golden case expects {status}"
    assert len(CASES) >= 20


def test_every_golden_case_expects_something() -> None:
    assert not [c.id for c in CASES if not c.expect.checks()]


def test_a_misspelled_key_in_a_golden_case_is_an_error_naming_file_case_and_field(tmp_path: Path) -> None:
    """A typo would otherwise make a case that asserts nothing, and passes."""
    (tmp_path / "typo.yaml").write_text(
        "cases:\n  - id: ESI-CAND_typo\n    base: sciatica\n"
        "    expect:\n      statuse: {epidural_steroid_injection: candidate}\n"
    )
    with pytest.raises(DataFileError) as err:
        load_cases(tmp_path)
    message = str(err.value)
    assert "typo.yaml" in message and "ESI-CAND_typo" in message and "statuse" in message, message


def test_golden_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
