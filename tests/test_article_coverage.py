"""Every procedure, use, benefit and risk in the seed article is covered by the knowledge files.

tests/data/article_map.yaml maps each item of the seed article to the entry of
knowledge/procedures/<id>.yaml that covers it. These tests check that each mapped
entry exists, that no item of the article was dropped, and that the procedure,
vocabulary and source files validate and refer only to ids that exist.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from engine.model.knowledge import PROCEDURE_IDS, Procedure, SourceFile, VocabularyFile

ROOT = Path(__file__).resolve().parents[1]
KNOWLEDGE = ROOT / "knowledge"
MAP_FILE = ROOT / "tests" / "data" / "article_map.yaml"
SEED_ARTICLE = ROOT / "docs/reference/interventional-pain-management.txt"  # a copy: docs/reference/README.md

KINDS = ("use", "benefit", "risk")
SECTIONS = ("procedure", "advantages", "risks_and_considerations")
ROW_KEYS = {"procedure", "section", "kind", "article", "part", "entry"}

# How many claims the seed article lists under each procedure, by kind. Counted by
# hand from the article: a line holding two claims counts twice (e.g. facet "Bleeding
# Infection" = bleeding + infection; "Persistent back and neck discomfort" = back +
# neck; ESI "minimally intrusive and rapidly recuperating" = 2; intrathecal "Effective
# pain management requiring fewer prescription dosages" = 2; PNS "reversible and
# adjustable" = 2; "Risks associated with surgery include bleeding and infection" = 2).
# RFA "Transient weakness or numbness" is one side effect and counts once.
# Conservative care is not a procedure of the article, so it has no counts.
ARTICLE_COUNTS: dict[str, dict[str, int]] = {
    "epidural_steroid_injection": {"use": 4, "benefit": 4, "risk": 4},
    "facet_joint_injection": {"use": 3, "benefit": 3, "risk": 4},
    "nerve_block": {"use": 4, "benefit": 3, "risk": 4},
    "radiofrequency_ablation": {"use": 4, "benefit": 3, "risk": 4},
    "spinal_cord_stimulation": {"use": 5, "benefit": 3, "risk": 4},
    "intrathecal_pump": {"use": 3, "benefit": 4, "risk": 4},
    "peripheral_nerve_stimulation": {"use": 3, "benefit": 4, "risk": 4},
}

# The items of the article's two general sections; each must be mapped at least once.
GENERAL_ITEMS: dict[str, set[str]] = {
    "advantages": {"Specific Relief", "Decreased Medication Use", "Minimally Invasive", "Enhanced Functionality"},
    "risks_and_considerations": {"Infection", "hemorrhage", "nerve injury", "drug side effects"},
}

REQUIRED_CONDITIONS = {
    "chronic_back_pain", "chronic_neck_pain", "sciatica", "disc_herniation", "spinal_stenosis",
    "facet_arthritis", "sacroiliac_joint_pain", "arthritis_pain", "failed_back_surgery_syndrome",
    "crps", "peripheral_neuropathy", "post_surgical_pain", "cancer_pain", "spasticity",
    "post_herpetic_neuralgia", "ischaemic_pain", "phantom_limb_pain", "occipital_neuralgia",
    "chronic_pain_syndrome", "other",
}  # fmt: skip
TREATMENTS = {
    "physical_therapy", "nsaids", "neuropathic_medication", "opioids",
    "psychological_therapy", "spinal_injections", "surgery",
}  # fmt: skip


def _load_procedure(pid: str) -> Procedure:
    data = yaml.safe_load((KNOWLEDGE / "procedures" / f"{pid}.yaml").read_text(encoding="utf-8"))
    return Procedure.model_validate(data)


def _load_map() -> list[dict[str, str]]:
    rows = yaml.safe_load(MAP_FILE.read_text(encoding="utf-8"))
    assert isinstance(rows, list) and rows, f"{MAP_FILE} must be a non-empty list of rows"
    return [{"section": "procedure", **row} for row in rows]


def _row_id(row: dict[str, str]) -> str:
    base = f"{row['procedure']}-{row['kind']}-{row['entry']}"
    return base if row["section"] == "procedure" else f"{row['section']}-{base}"


def _entries(proc: Procedure, kind: str) -> set[str]:
    if kind == "use":
        return set(proc.uses)
    return {item.id for item in (proc.benefits if kind == "benefit" else proc.risks)}


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


ROWS = _load_map()


@pytest.mark.parametrize("pid", PROCEDURE_IDS)
def test_procedure_file_validates(pid: str) -> None:
    proc = _load_procedure(pid)
    assert proc.id == pid
    for kind in ("benefit", "risk"):
        items = proc.benefits if kind == "benefit" else proc.risks
        dupes = [i for i, n in Counter(item.id for item in items).items() if n > 1]
        assert not dupes, f"{pid}: {kind} ids used twice: {dupes}"
    assert len(set(proc.uses)) == len(proc.uses), f"{pid}: a condition is listed twice in uses"
    assert "seed-article" in proc.sources and len(set(proc.sources)) >= 2, f"{pid}: cite seed-article and one more"
    assert len(proc.questions) >= 4, f"{pid}: give the patient at least 4 questions"


def test_map_rows_are_well_formed() -> None:
    for row in ROWS:
        assert set(row) <= ROW_KEYS, f"unknown keys in {row}"
        assert {"procedure", "kind", "article", "entry"} <= set(row), f"missing keys in {row}"
        assert row["procedure"] in PROCEDURE_IDS, row
        assert row["kind"] in KINDS, row
        assert row["section"] in SECTIONS, row
    ids = Counter(_row_id(row) for row in ROWS)
    assert not [i for i, n in ids.items() if n > 1], "two rows map the same item; merge them"


@pytest.mark.parametrize("row", ROWS, ids=[_row_id(r) for r in ROWS])
def test_article_item_is_covered(row: dict[str, str]) -> None:
    entries = _entries(_load_procedure(row["procedure"]), row["kind"])
    assert row["entry"] in entries, (
        f"article item {row['article']!r} maps to {row['kind']} `{row['entry']}`, "
        f"which {row['procedure']} does not have; it has {sorted(entries)}"
    )


COUNTED = [(pid, kind) for pid in ARTICLE_COUNTS for kind in KINDS]


@pytest.mark.parametrize(("pid", "kind"), COUNTED, ids=[f"{pid}-{kind}" for pid, kind in COUNTED])
def test_every_article_item_is_mapped(pid: str, kind: str) -> None:
    mapped = [r for r in ROWS if r["section"] == "procedure" and r["procedure"] == pid and r["kind"] == kind]
    assert len(mapped) >= ARTICLE_COUNTS[pid][kind], (
        f"the article lists {ARTICLE_COUNTS[pid][kind]} {kind}s for {pid}; only {len(mapped)} are mapped"
    )


def test_every_article_procedure_has_counts() -> None:
    assert set(ARTICLE_COUNTS) == set(PROCEDURE_IDS) - {"conservative_care"}


@pytest.mark.parametrize("section", GENERAL_ITEMS)
def test_general_section_items_are_mapped(section: str) -> None:
    mapped = {r["article"] for r in ROWS if r["section"] == section}
    assert GENERAL_ITEMS[section] <= mapped, f"not mapped from {section}: {GENERAL_ITEMS[section] - mapped}"


def test_article_quotes_are_in_the_seed_article() -> None:
    assert SEED_ARTICLE.exists(), f"the seed article's copy is missing: {SEED_ARTICLE}"
    seed = _normalise(SEED_ARTICLE.read_text(encoding="utf-8"))
    missing = sorted({r["article"] for r in ROWS if _normalise(r["article"]) not in seed})
    assert not missing, f"these quotes are not in the seed article: {missing}"


def _conditions() -> dict[str, object]:
    vocab = VocabularyFile.model_validate(yaml.safe_load((KNOWLEDGE / "conditions.yaml").read_text(encoding="utf-8")))
    ids = [t.id for t in vocab.terms]
    assert len(ids) == len(set(ids)), "a condition id is used twice"
    return {t.id: t for t in vocab.terms}


def test_conditions_vocabulary() -> None:
    conditions = _conditions()
    assert REQUIRED_CONDITIONS <= set(conditions), f"missing: {REQUIRED_CONDITIONS - set(conditions)}"


def test_treatments_vocabulary() -> None:
    vocab = VocabularyFile.model_validate(yaml.safe_load((KNOWLEDGE / "treatments.yaml").read_text(encoding="utf-8")))
    ids = [t.id for t in vocab.terms]
    assert sorted(ids) == sorted(TREATMENTS)


@pytest.mark.parametrize("pid", PROCEDURE_IDS)
def test_uses_are_known_conditions(pid: str) -> None:
    unknown = set(_load_procedure(pid).uses) - set(_conditions())
    assert not unknown, f"{pid} uses unknown conditions {sorted(unknown)}; add them to knowledge/conditions.yaml"


def _source_ids() -> set[str]:
    ids: list[str] = []
    files = sorted((KNOWLEDGE / "sources").glob("*.yaml"))
    assert files, "no files in knowledge/sources/"
    for path in files:
        ids += [s.id for s in SourceFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))).sources]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, f"source ids defined twice across knowledge/sources/: {dupes}"
    return set(ids)


def test_seed_article_source() -> None:
    path = KNOWLEDGE / "sources" / "general.yaml"
    sources = {s.id: s for s in SourceFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))).sources}
    seed = sources["seed-article"]
    assert seed.title == "Techniques for Interventional Pain Management"
    assert seed.year == 2024 and seed.url == ""
    assert all(sid == "seed-article" or sid.startswith("pi-") for sid in sources), "general.yaml ids start with pi-"


@pytest.mark.parametrize("pid", PROCEDURE_IDS)
def test_sources_are_known(pid: str) -> None:
    unknown = set(_load_procedure(pid).sources) - _source_ids()
    assert not unknown, f"{pid} cites unknown sources {sorted(unknown)}; add them under knowledge/sources/"
