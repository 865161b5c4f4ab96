"""The CDS Hooks 2.0 service, driven with Starlette's TestClient as an EHR would call it.

The requests follow the specification's example `patient-view` request (hookInstance,
fhirServer, fhirAuthorization, context with userId, patientId and encounterId, prefetch), and
every response is checked against the specification's JSON shapes, written out below as
strict models (unknown fields are refused, so a misspelt field fails).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from conftest import EXAMPLES
from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from engine.evaluation.aid import DecisionAid
from engine.fhir.cds_hooks import PREFETCH_KEY, SERVICE_ID, cds_router, stored_feedback
from engine.fhir.response import build_response


class SpecShape(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Coding(SpecShape):
    code: str
    system: str | None = None
    display: str | None = None


class Source(SpecShape):
    label: str = Field(min_length=1)
    url: HttpUrl | None = None
    icon: HttpUrl | None = None
    topic: Coding | None = None


class Link(SpecShape):
    label: str = Field(min_length=1)
    url: str
    type: Literal["absolute", "smart"]
    appContext: str | None = None


class Card(SpecShape):
    uuid: str | None = None
    summary: str = Field(min_length=1, max_length=139)  # "<140-character summary message"
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[dict[str, Any]] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = None
    links: list[Link] | None = None


class CdsResponse(SpecShape):
    cards: list[Card]
    systemActions: list[dict[str, Any]] | None = None


class Service(SpecShape):
    hook: str
    title: str | None = None
    description: str
    id: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None


class Discovery(SpecShape):
    services: list[Service]


def spec_request(prefetch: dict[str, Any] | None) -> dict[str, Any]:
    """The specification's example patient-view request, with this service's prefetch."""
    request: dict[str, Any] = {
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": "http://hooks.smarthealthit.org:9080",
        "hook": "patient-view",
        "fhirAuthorization": {
            "access_token": "some-opaque-fhir-access-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/Patient.read user/QuestionnaireResponse.read",
            "subject": "cds-service4",
        },
        "context": {"userId": "Practitioner/example", "patientId": "1288992", "encounterId": "89284"},
    }
    if prefetch is not None:
        request["prefetch"] = prefetch
    return request


@pytest.fixture
def client(aid: DecisionAid, records_database: Path) -> TestClient:
    app = Starlette(routes=[Mount("", routes=cds_router(aid, records_database).routes)])
    return TestClient(app, base_url="https://clinic.example")


def response_of(aid: DecisionAid, example: str) -> dict[str, Any]:
    path = next(p for p in EXAMPLES if p.stem == example)
    answers = aid.parse_answers(yaml.safe_load(path.read_text()))
    data: dict[str, Any] = json.loads(
        build_response(aid.questionnaire, answers, aid.rulebook.version).model_dump_json(exclude_none=True)
    )
    return data


def cards_for(client: TestClient, prefetch: dict[str, Any]) -> list[Card]:
    reply = client.post(f"/cds-services/{SERVICE_ID}", json=spec_request(prefetch))
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    return CdsResponse.model_validate(reply.json()).cards


def test_discovery_lists_the_patient_view_service_with_its_prefetch(client: TestClient) -> None:
    reply = client.get("/cds-services")
    assert reply.status_code == 200
    (service,) = Discovery.model_validate(reply.json()).services
    assert (service.hook, service.id) == ("patient-view", SERVICE_ID)
    assert service.prefetch is not None
    template = service.prefetch[PREFETCH_KEY]
    assert template.startswith("QuestionnaireResponse?subject=Patient/{{context.patientId}}&questionnaire=")


def test_one_card_per_option_open_to_discuss_or_on_hold_with_reasons_source_and_link(
    aid: DecisionAid, client: TestClient
) -> None:
    cards = cards_for(client, {PREFETCH_KEY: response_of(aid, "sciatica")})
    result = aid.evaluate(aid.parse_answers(yaml.safe_load((EXAMPLES[0].parent / "sciatica.yaml").read_text())))
    shown = [o for o in result.options if o.status in ("candidate", "after_prerequisite", "deferred")]
    assert len(cards) == len(shown) >= 2
    for card, option in zip(cards, shown, strict=True):
        assert card.summary.startswith(option.name)
        assert card.indicator == ("warning" if option.status == "deferred" else "info")
        assert card.uuid and uuid.UUID(card.uuid)
        assert card.detail and all(f"{f.rule_id} v{f.rule_version}" in card.detail for f in option.reasons)
        assert option.reasons[0].text in card.detail
        assert result.rulebook_version in card.detail
        assert card.source.label.startswith("pain-sdm rulebook")
        (link,) = card.links or []
        assert (link.type, link.url) == ("absolute", "https://clinic.example/")
    assert len({c.uuid for c in cards}) == len(cards)


def test_red_flags_give_a_critical_card_first_and_options_on_hold_are_critical(
    aid: DecisionAid, client: TestClient
) -> None:
    cards = cards_for(client, {PREFETCH_KEY: response_of(aid, "red-flags")})
    assert cards[0].indicator == "critical" and "urgent" in cards[0].summary.lower()
    held = [c for c in cards[1:] if "on hold" in c.summary]
    assert held and all(c.indicator == "critical" for c in held)
    assert any(c.indicator == "info" for c in cards), "conservative care stays open"


def test_a_searchset_bundle_prefetch_is_read_and_an_empty_one_gives_no_cards(
    aid: DecisionAid, client: TestClient
) -> None:
    found = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": response_of(aid, "sciatica")}]}
    assert cards_for(client, {PREFETCH_KEY: found})
    empty = {"resourceType": "Bundle", "type": "searchset", "total": 0}
    assert cards_for(client, {PREFETCH_KEY: empty}) == []


@pytest.mark.parametrize(
    "prefetch",
    [None, {}, {PREFETCH_KEY: None}, {PREFETCH_KEY: {"resourceType": "OperationOutcome", "issue": []}}],
    ids=["no prefetch", "key missing", "null (client could not fetch)", "OperationOutcome"],
)
def test_missing_prefetch_is_412_precondition_failed_not_a_crash(
    client: TestClient, prefetch: dict[str, Any] | None
) -> None:
    reply = client.post(f"/cds-services/{SERVICE_ID}", json=spec_request(prefetch))
    assert reply.status_code == 412
    assert PREFETCH_KEY in reply.json()["error"]


def test_malformed_requests_are_400_and_unknown_services_404(client: TestClient) -> None:
    assert client.post(f"/cds-services/{SERVICE_ID}", content=b"not json").status_code == 400
    assert client.post(f"/cds-services/{SERVICE_ID}", json={"hook": "patient-view"}).status_code == 400
    other_hook = spec_request({}) | {"hook": "order-select"}
    assert client.post(f"/cds-services/{SERVICE_ID}", json=other_hook).status_code == 400
    assert client.post("/cds-services/nope", json=spec_request({})).status_code == 404


def test_answers_that_cannot_be_read_give_one_warning_card_naming_the_item(
    aid: DecisionAid, client: TestClient
) -> None:
    response = response_of(aid, "sciatica")
    response["item"][0]["item"].append({"linkId": "pain_score", "answer": [{"valueInteger": 3}]})
    (card,) = cards_for(client, {PREFETCH_KEY: response})
    assert card.indicator == "warning"
    assert card.detail and "item pain_score" in card.detail


def test_feedback_is_accepted_and_stored_with_the_records(
    aid: DecisionAid, client: TestClient, records_database: Path
) -> None:
    card = cards_for(client, {PREFETCH_KEY: response_of(aid, "sciatica")})[1]
    feedback = {
        "feedback": [
            {
                "card": card.uuid,
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"code": "patient-declined", "system": "http://example.org/cds-services/fhir/CodeSystem/override-reasons"},
                    "userComment": "Prefers to wait",
                },
                "outcomeTimestamp": "2026-12-02T18:30:00Z",
            },
            {"card": card.uuid, "outcome": "accepted", "outcomeTimestamp": "2026-12-02T18:31:00Z"},
        ]
    }  # fmt: skip
    reply = client.post(f"/cds-services/{SERVICE_ID}/feedback", json=feedback)
    assert reply.status_code == 200
    rows = stored_feedback(records_database)
    assert [(r["card"], r["outcome"]) for r in rows] == [(card.uuid, "overridden"), (card.uuid, "accepted")]
    first = rows[0]
    assert first["user_comment"] == "Prefers to wait"
    assert json.loads(first["override_reason"])["code"] == "patient-declined"
    assert first["procedure"] == "epidural_steroid_injection" and first["status"] == "candidate"
    assert first["hook_instance"] == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
    assert first["rulebook_version"] == aid.rulebook.version


def test_feedback_is_append_only_and_bad_feedback_is_400(client: TestClient, records_database: Path) -> None:
    import sqlite3

    bad = {"feedback": [{"card": "x", "outcome": "maybe", "outcomeTimestamp": "2026-12-02T18:30:00Z"}]}
    assert client.post(f"/cds-services/{SERVICE_ID}/feedback", json=bad).status_code == 400
    good = {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "2026-12-02T18:30:00Z"}]}
    assert client.post(f"/cds-services/{SERVICE_ID}/feedback", json=good).status_code == 200
    conn = sqlite3.connect(records_database)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM cds_feedback")
    conn.close()
    assert stored_feedback(records_database)[0]["procedure"] is None, "a card this process did not make"


def test_a_smart_launch_url_makes_smart_links(aid: DecisionAid, records_database: Path) -> None:
    router = cds_router(aid, records_database, smart_launch_url="https://clinic.example/launch")
    client = TestClient(Starlette(routes=[Mount("", routes=router.routes)]))
    links = [link for c in cards_for(client, {PREFETCH_KEY: response_of(aid, "sciatica")}) for link in c.links or []]
    assert links and {(link.type, link.url) for link in links} == {("smart", "https://clinic.example/launch")}


def test_pain_sdm_serve_s_app_serves_the_cds_hooks_api_and_still_404s_elsewhere(
    aid: DecisionAid, tmp_path: Path
) -> None:
    from web_client import make_app

    app = make_app(aid, tmp_path)
    with TestClient(app, base_url="http://127.0.0.1", client=("127.0.0.1", 50010)) as client:
        assert Discovery.model_validate(client.get("/cds-services").json()).services[0].id == SERVICE_ID
        cards = cards_for(client, {PREFETCH_KEY: response_of(aid, "sciatica")})
        assert cards and all((c.links or [])[0].url == "http://127.0.0.1/" for c in cards)
        feedback = {
            "feedback": [{"card": cards[0].uuid, "outcome": "accepted", "outcomeTimestamp": "2026-12-02T19:00Z"}]
        }
        assert client.post(f"/cds-services/{SERVICE_ID}/feedback", json=feedback).status_code == 200
        assert stored_feedback(tmp_path / "records.sqlite3")[0]["procedure"] == "conservative_care"
        missing = client.get("/no-such-page")
        assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
