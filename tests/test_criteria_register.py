"""The criteria data must match the criteria register row for row.

The register is the clinical source of truth. Its copy in the repository
(docs/reference/criteria.md, see docs/reference/README.md) is what these tests read; they fail,
never skip, when it is missing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.evaluation.aid import DecisionAid
from engine.model.knowledge import CriteriaFile, Disagreement, DisagreementFile, SourceFile

ROOT = Path(__file__).parents[1]
KNOWLEDGE = ROOT / "knowledge"
CRITERIA_PATH = KNOWLEDGE / "criteria.yaml"
DISAGREEMENTS_PATH = KNOWLEDGE / "disagreements.yaml"
SOURCE_PATHS = sorted((KNOWLEDGE / "sources").glob("*.yaml"))
REGISTER_PATH = ROOT / "docs/reference/criteria.md"

ROW = re.compile(r"^\|\s*([A-Z]+-\d\d)\s*\|", re.MULTILINE)


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _register_rows() -> dict[str, str]:
    """Map each register id to the full text of its table row."""
    assert REGISTER_PATH.exists(), f"the criteria register's copy is missing: {REGISTER_PATH}"
    rows: dict[str, str] = {}
    for line in REGISTER_PATH.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} appears twice in the register"
            rows[match.group(1)] = line
    assert rows, f"no `| ID |` rows found in {REGISTER_PATH}"
    return rows


@pytest.fixture(scope="module")
def criteria() -> CriteriaFile:
    return CriteriaFile.model_validate(_load(CRITERIA_PATH))


@pytest.fixture(scope="module")
def disagreements() -> DisagreementFile:
    return DisagreementFile.model_validate(_load(DISAGREEMENTS_PATH))


@pytest.fixture(scope="module")
def source_ids() -> set[str]:
    ids: set[str] = set()
    for path in SOURCE_PATHS:
        for source in SourceFile.model_validate(_load(path)).sources:
            assert source.id not in ids, f"source {source.id} is defined twice ({path.name})"
            ids.add(source.id)
    return ids


def test_guidelines_file_exists() -> None:
    assert KNOWLEDGE / "sources" / "guidelines.yaml" in SOURCE_PATHS


@pytest.mark.parametrize("path", SOURCE_PATHS, ids=lambda p: p.name)
def test_source_file_validates(path: Path) -> None:
    SourceFile.model_validate(_load(path))


def test_criteria_file_validates(criteria: CriteriaFile) -> None:
    ids = [c.id for c in criteria.criteria]
    assert len(ids) == len(set(ids)), "a criterion id is used twice"


def test_disagreements_file_validates(disagreements: DisagreementFile) -> None:
    ids = [d.id for d in disagreements.disagreements]
    assert len(ids) == len(set(ids)), "a disagreement id is used twice"


def test_every_register_row_is_encoded(criteria: CriteriaFile) -> None:
    missing = sorted(set(_register_rows()) - {c.id for c in criteria.criteria})
    assert not missing, f"register rows missing from criteria.yaml: {missing}"


def test_every_encoded_criterion_is_in_the_register(criteria: CriteriaFile) -> None:
    extra = sorted({c.id for c in criteria.criteria} - set(_register_rows()))
    assert not extra, f"criteria.yaml ids not in the register: {extra}"


def test_unconfirmed_rows_are_not_marked_confirmed(criteria: CriteriaFile) -> None:
    by_id = {c.id: c for c in criteria.criteria}
    wrong = [
        f"{cid} is {by_id[cid].confidence}"
        for cid, row in _register_rows().items()
        if "**unconfirmed**" in row and cid in by_id and by_id[cid].confidence == "confirmed"
    ]
    assert not wrong, f"rows marked **unconfirmed** in the register encoded as confirmed: {wrong}"


def test_partly_or_unconfirmed_criteria_say_what_is_unconfirmed(criteria: CriteriaFile) -> None:
    silent = [c.id for c in criteria.criteria if c.confidence != "confirmed" and "unconfirmed" not in c.note.lower()]
    assert not silent, f"these criteria need a note naming the unconfirmed figure: {silent}"


def test_criteria_cite_known_sources(criteria: CriteriaFile, source_ids: set[str]) -> None:
    unknown = sorted({f"{c.id}: {s}" for c in criteria.criteria for s in c.sources if s not in source_ids})
    assert not unknown, f"criteria cite sources not defined under knowledge/sources/: {unknown}"


def test_disagreements_cite_known_sources(disagreements: DisagreementFile, source_ids: set[str]) -> None:
    unknown = sorted({f"{d.id}: {s}" for d in disagreements.disagreements for s in d.sources if s not in source_ids})
    assert not unknown, f"disagreements cite sources not defined under knowledge/sources/: {unknown}"


def test_disagreements_name_known_criteria(disagreements: DisagreementFile, criteria: CriteriaFile) -> None:
    known = {c.id for c in criteria.criteria}
    unknown = sorted({f"{d.id}: {c}" for d in disagreements.disagreements for c in d.criteria if c not in known})
    assert not unknown, f"disagreements name criteria not in criteria.yaml: {unknown}"


def test_a_dispute_is_told_only_by_its_own_criteria_and_each_is_a_cautions(
    disagreements: DisagreementFile, aid: DecisionAid
) -> None:
    """`told_by` leaves a dispute off the summary where a caution already says it: each criterion named there
    is one of the dispute's own and is encoded by at least one caution rule (else the field would do nothing)."""
    cautioned = {c for r in aid.rulebook.rules if r.then.caution for c in r.criteria}
    for d in disagreements.disagreements:
        assert set(d.told_by) <= set(d.criteria), d.id
        assert set(d.told_by) <= cautioned, d.id
    assert any(d.told_by for d in disagreements.disagreements)


def test_the_wait_dispute_reads_the_epidural_rules_own_conditions(aid: DecisionAid) -> None:
    """Its `when` copies what the rules wait for (a dispute reads answers only, so it cannot read their derived
    facts): the pain weeks of DER-ESI-DURATION, care not yet as long as DER-CONS-WEEKS asks, the yearly cap."""
    when = aid.knowledge.disagreements["esi-conservative-wait"].when
    assert when is not None and when.any is not None
    pain = aid.rulebook.rule("DER-ESI-DURATION").when.any
    assert pain is not None and pain[0].all is not None
    weeks, cap = pain[0].all, aid.rulebook.rule("ESI-FREQUENCY-NI").when
    assert when.any[0].all == [weeks[0], weeks[1].model_copy(update={"op": "<"})]
    assert when.any[1].not_ == aid.rulebook.rule("DER-CONS-WEEKS").when
    assert when.any[2].all is not None and when.any[2].all[1] == cap


def test_one_disagreement_per_register_item(disagreements: DisagreementFile) -> None:
    assert REGISTER_PATH.exists(), f"the criteria register's copy is missing: {REGISTER_PATH}"
    text = REGISTER_PATH.read_text(encoding="utf-8")
    section = text.split("## Disagreements between sources", 1)[1]
    items = re.findall(r"^\d+\.\s", section, re.MULTILINE)
    assert len(disagreements.disagreements) == len(items)


NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\d)")


def unsupported_figures(aid: DecisionAid, dispute: Disagreement) -> list[str]:
    """The numbers a disagreement states that none of its criteria (criterion, value) or sources states."""
    criteria = (aid.knowledge.criteria[i] for i in dispute.criteria)
    sources = (aid.knowledge.sources[i] for i in dispute.sources)
    evidence = " ".join(
        [
            *(f"{c.topic} {c.criterion} {c.value}" for c in criteria),
            *(f"{s.id} {s.title} {s.publisher} {s.year} {s.note or ''}" for s in sources),
        ]
    )
    stated = " ".join([*dispute.positions, dispute.plain])
    return sorted(set(NUMBER.findall(stated)) - set(NUMBER.findall(evidence)))


def test_every_figure_a_disagreement_states_is_in_its_criteria_or_its_sources(aid: DecisionAid) -> None:
    """A disagreement shows sources side by side: each number it states must be one they state.

    A figure from another patient's case, or a mistyped threshold, fails here.
    """
    for dispute in aid.knowledge.disagreements.values():
        assert not unsupported_figures(aid, dispute), f"{dispute.id}: in no criterion or source it cites"


def test_a_figure_no_source_states_is_caught(aid: DecisionAid) -> None:
    """The text this disagreement had until issue 12: another patient's 79%."""
    dispute = aid.knowledge.disagreements["mbb-before-rfa"]
    old = dispute.model_copy(update={"plain": "If the shot takes away 79% of your pain, rules differ."})
    assert unsupported_figures(aid, old) == ["79"]
