"""`pain-sdm fhir bundle`: answers, evaluation and summary PDF as one Bundle, checked by two validators.

fhir.resources (the library that writes them) and FHIR.js (the npm package `fhir`, an
independent validator over the R4 structure definitions) both validate every exported
resource. FHIR.js is installed by the tests into tests/fhir-validator/ (git-ignored
node_modules) when it is missing; without node and npm these tests fail, they never skip.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EXAMPLES, ROOT, run_cli
from fhir.resources.R4B.bundle import Bundle

from engine.evaluation.aid import DecisionAid

VALIDATOR = ROOT / "tests" / "fhir-validator"
RED_FLAGS = EXAMPLES[[p.stem for p in EXAMPLES].index("red-flags")]


@pytest.fixture(scope="session")
def fhir_js() -> Path:
    """FHIR.js, installed with npm from the committed lock file when it is not there yet."""
    if not (VALIDATOR / "node_modules" / "fhir" / "package.json").is_file():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            pytest.fail("node and npm are needed to validate FHIR exports with FHIR.js (apt-get install nodejs npm)")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=VALIDATOR, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"npm ci in {VALIDATOR} failed:\n{done.stderr}"
    return VALIDATOR / "validate.js"


def fhir_js_check(script: Path, *files: Path) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run([node, str(script), *map(str, files)], capture_output=True, text=True, timeout=120)
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(reports) == len(files), done.stderr
    return reports


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Questionnaire, a QuestionnaireResponse and a Bundle, written by the real commands."""
    out = tmp_path_factory.mktemp("fhir")
    files = {kind: out / f"{kind}.json" for kind in ("questionnaire", "response", "bundle")}
    commands = {
        "questionnaire": ["fhir", "questionnaire"],
        "response": ["fhir", "response", str(RED_FLAGS)],
        "bundle": ["fhir", "bundle", str(RED_FLAGS), "--patient-label", "Clinic ref 7"],
    }
    for kind, command in commands.items():
        done = run_cli(*command, "-o", str(files[kind]))
        assert done.returncode == 0, done.stderr
    return files


def resources(bundle_file: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(bundle_file.read_text())
    return {e["resource"]["resourceType"]: e["resource"] for e in data["entry"]}


def test_fhir_js_validates_every_export_without_an_error(fhir_js: Path, exported: dict[str, Path]) -> None:
    for report in fhir_js_check(fhir_js, *exported.values()):
        errors = [m for m in report["messages"] if m["severity"] in ("error", "fatal")]
        assert report["valid"] and not errors, report


def test_fhir_js_does_find_errors_so_its_pass_means_something(fhir_js: Path, tmp_path: Path) -> None:
    broken = {
        "resourceType": "GuidanceResponse",
        "status": "finished",
        "moduleUri": "x",
        "reasonReference": [{"reference": "QuestionnaireResponse/1", "type": "QuestionnaireResponse"}],
    }
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    (report,) = fhir_js_check(fhir_js, path)
    assert not report["valid"]
    locations = {m["location"] for m in report["messages"] if m["severity"] == "error"}
    assert {"GuidanceResponse.status", "GuidanceResponse.reasonReference[0]"} <= locations


def test_the_bundle_validates_with_fhir_resources_and_holds_the_four_resources(exported: dict[str, Path]) -> None:
    bundle = Bundle.model_validate_json(exported["bundle"].read_text())
    assert bundle.type == "collection"
    kinds = [e.resource.get_resource_type() for e in bundle.entry or []]  # type: ignore[union-attr]
    assert kinds == ["QuestionnaireResponse", "Parameters", "GuidanceResponse", "DocumentReference"]
    assert all(e.fullUrl and e.fullUrl.startswith("urn:uuid:") for e in bundle.entry or [])


def test_the_guidance_response_carries_each_option_status_reasons_and_the_rulebook_version(
    aid: DecisionAid, exported: dict[str, Path]
) -> None:
    found = resources(exported["bundle"])
    expected = aid.evaluate(aid.parse_answers(yaml.safe_load(RED_FLAGS.read_text())))
    guidance = found["GuidanceResponse"]
    assert guidance["status"] == "success"
    assert guidance["moduleCanonical"].endswith(f"/Library/pain-sdm-rulebook|{expected.rulebook_version}")
    urls = {e["resource"]["resourceType"]: e["fullUrl"] for e in json.loads(exported["bundle"].read_text())["entry"]}
    assert guidance["outputParameters"]["reference"] == urls["Parameters"]
    params = found["Parameters"]["parameter"]
    top = {p["name"]: p for p in params if p["name"] != "option"}
    assert top["rulebookVersion"]["valueString"] == expected.rulebook_version
    assert top["profile"]["valueString"] == "consensus"
    assert top["urgentAssessment"]["valueBoolean"] is True
    assert top["questionnaireResponse"]["valueReference"]["reference"] == urls["QuestionnaireResponse"]
    options = [p["part"] for p in params if p["name"] == "option"]
    assert len(options) == len(expected.options)

    def rules(parts: list[dict[str, Any]], name: str) -> list[tuple[str, int]]:
        pairs = [
            {q["name"]: q.get("valueString", q.get("valueInteger")) for q in p["part"]}
            for p in parts
            if p["name"] == name
        ]
        return [(r["ruleId"], r["ruleVersion"]) for r in pairs]

    for parts, option in zip(options, expected.options, strict=True):
        values = {p["name"]: p.get("valueCode") for p in parts}
        assert (values["procedure"], values["status"]) == (option.procedure, option.status)
        assert rules(parts, "reason") == [(f.rule_id, f.rule_version) for f in option.reasons]
        assert rules(parts, "caution") == [(f.rule_id, f.rule_version) for f in option.cautions]
        assert [p["valueCode"] for p in parts if p["name"] == "nextStep"] == [s.id for s in option.next_steps]


def test_the_summary_pdf_is_a_document_reference_with_size_language_and_sha1_hash(exported: dict[str, Path]) -> None:
    document = resources(exported["bundle"])["DocumentReference"]
    assert document["status"] == "current"
    (content,) = document["content"]
    attachment = content["attachment"]
    pdf = base64.b64decode(attachment["data"])
    assert pdf.startswith(b"%PDF-")
    assert attachment["contentType"] == "application/pdf"
    assert attachment["language"] == "en"
    assert attachment["size"] == len(pdf)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(pdf).digest()).decode()  # noqa: S324 - FHIR's hash
    assert document["context"]["related"][0]["type"] == "GuidanceResponse"


def test_the_patient_is_the_label_given_and_never_a_name(aid: DecisionAid, exported: dict[str, Path]) -> None:
    found = resources(exported["bundle"])
    label = {"system": "https://pain-sdm.invalid/fhir/patient-label", "value": "Clinic ref 7"}
    for kind in ("QuestionnaireResponse", "GuidanceResponse", "DocumentReference"):
        assert found[kind]["subject"] == {"type": "Patient", "identifier": label}, kind
    assert "Patient" not in found

    def keys(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys(v)}
        return {k for v in node for k in keys(v)} if isinstance(node, list) else set()

    for kind in ("QuestionnaireResponse", "GuidanceResponse", "DocumentReference"):
        assert "name" not in keys(found[kind]), kind  # no HumanName anywhere


def test_without_a_label_there_is_no_subject(aid: DecisionAid) -> None:
    from engine.fhir.bundle import build_bundle

    answers = aid.parse_answers({"age_years": 50})
    bundle = json.loads(build_bundle(aid, answers).model_dump_json(exclude_none=True))
    assert all("subject" not in e["resource"] for e in bundle["entry"])


def test_the_bundle_s_answers_read_back_as_the_answers_file(aid: DecisionAid, exported: dict[str, Path]) -> None:
    response = resources(exported["bundle"])["QuestionnaireResponse"]
    assert aid.parse_answers(response) == aid.parse_answers(yaml.safe_load(RED_FLAGS.read_text()))


def test_bad_input_to_fhir_bundle_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text('spinal_injections_tried: "no"\nesi_count_12m: 2\n')
    out = tmp_path / "bundle.json"
    done = run_cli("fhir", "bundle", str(answers), "-o", str(out))
    assert done.returncode == 2
    assert "item esi_count_12m" in done.stderr and "asked only when" in done.stderr
    assert not out.exists()
