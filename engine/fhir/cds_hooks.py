"""A CDS Hooks 2.0 service: `patient-view` evaluates the patient's pain questionnaire into cards.

`cds_router(aid, records_db)` returns a Starlette Router to mount at the root of an app:

- `GET /cds-services`: discovery, one service (`pain-sdm-patient-view`, hook `patient-view`)
  whose prefetch template asks for the patient's latest completed QuestionnaireResponse to
  pain-sdm's Questionnaire.
- `POST /cds-services/pain-sdm-patient-view`: the prefetched QuestionnaireResponse (the
  resource itself, or a searchset Bundle holding it) is read strictly (engine/fhir/response.py),
  evaluated, and answered with one card per option open to discuss (candidate, after steps)
  or deferred for a safety issue, plus a critical card when a red flag needs urgent assessment.
  Indicator: `critical` for red flags, `warning` for an option on hold, `info` otherwise. Each
  card gives the reasons in a sentence, its source (the publications behind the reasons) and a
  link (`absolute`, or `smart` when a SMART launch URL is configured) to the clinician's view.
  A prefetch the client did not or could not fill is answered `412 Precondition Failed` with
  a JSON error, as CDS Hooks defines for a service that cannot get the data it needs; an empty
  search (no questionnaire answered yet) gets no cards; answers that cannot be read get one
  warning card naming the problems.
- `POST /cds-services/pain-sdm-patient-view/feedback`: the client's feedback on cards
  (accepted, overridden, with a reason and comment) is stored in the records database, in the
  append-only `cds_feedback` table, with the card's option, status and rulebook version when
  the card came from this process.

Evaluations run through `evaluate` (by default one thread of this router's own), since the
durable_rules engines belong to the threads that built them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from engine.errors import AnswersError
from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import Finding, OptionResult, Result
from engine.fhir.questionnaire import QUESTIONNAIRE_URL
from engine.presentation.report import STATUS_LABELS

SERVICE_ID = "pain-sdm-patient-view"
PREFETCH_KEY = "painQuestionnaire"
PREFETCH = (
    "QuestionnaireResponse?subject=Patient/{{context.patientId}}"
    f"&questionnaire={QUESTIONNAIRE_URL}&status=completed&_sort=-authored&_count=1"
)
SHOWN = ("candidate", "after_prerequisite", "deferred")
"""The statuses that get a card: options open to discuss, and options on hold for safety."""
SUMMARY_LIMIT = 140
RECENT_CARDS = 10_000

M = TypeVar("M", bound=BaseModel)
Evaluate = Callable[[Any, str | None], Awaitable[Result]]


class Spec(BaseModel):
    model_config = ConfigDict(extra="allow")


class HookRequest(Spec):
    """The fields of a CDS Hooks request this service reads (others are allowed and ignored)."""

    hook: str
    hookInstance: str = Field(min_length=1)
    fhirServer: str | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


class OverrideReason(Spec):
    reason: dict[str, Any] | None = None
    userComment: str | None = Field(default=None, max_length=20_000)


class FeedbackItem(Spec):
    card: str = Field(min_length=1, max_length=200)
    outcome: Literal["accepted", "overridden"]
    outcomeTimestamp: str = Field(min_length=1, max_length=64)
    acceptedSuggestions: list[dict[str, Any]] = []
    overrideReason: OverrideReason | None = None


class Feedback(Spec):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=100)


def store_feedback(
    records_db: Path | str, service: str, items: list[FeedbackItem], cards: dict[str, dict[str, str]]
) -> int:
    """Append the feedback to the records database (SQLite or PostgreSQL, one transaction); returns how many."""
    from engine.records.store import RecordStore

    received = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    rows = []
    for item in items:
        card = cards.get(item.card, {})
        reason = item.overrideReason
        rows.append(
            {
                "received": received,
                "service": service,
                "card": item.card,
                "outcome": item.outcome,
                "outcome_time": item.outcomeTimestamp,
                "override_reason": json.dumps(reason.reason) if reason and reason.reason else None,
                "user_comment": reason.userComment if reason else None,
                "procedure": card.get("procedure"),
                "status": card.get("status"),
                "rulebook_version": card.get("rulebook_version"),
                "hook_instance": card.get("hook_instance"),
                "feedback": item.model_dump_json(),
            }
        )
    with RecordStore.open(records_db) as store:
        return store.add_feedback(rows)


def stored_feedback(records_db: Path | str) -> list[dict[str, Any]]:
    """Every stored feedback row, oldest first (for reviewers and tests)."""
    from engine.records.store import RecordStore

    with RecordStore.open(records_db, create=False) as store:
        return store.feedback()


def _sentence(findings: list[Finding]) -> str:
    """The reasons' own sentences, each once, in order."""
    texts = dict.fromkeys(f.text.strip() for f in findings if f.text.strip())
    return " ".join(t if t.endswith((".", "?", "!")) else t + "." for t in texts)


def _indicator(option: OptionResult, result: Result) -> str:
    if option.status == "deferred":
        return "critical" if result.urgent_assessment else "warning"
    return "info"


class CdsService:
    """The state behind the routes: the aid, the records database, recent cards, the evaluator."""

    def __init__(
        self,
        aid: DecisionAid,
        records_db: Path | str,
        evaluate: Evaluate | None,
        clinician_path: str,
        smart_launch_url: str | None,
    ) -> None:
        self.aid = aid
        self.records_db = records_db
        self.clinician_path = clinician_path
        self.smart_launch_url = smart_launch_url
        self.cards: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self.evaluate: Evaluate = evaluate or self._evaluate

    async def _evaluate(self, answers: Any, profile: str | None) -> Result:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pain-sdm-cds")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.aid.evaluate, answers, profile)

    def discovery(self) -> dict[str, Any]:
        return {
            "services": [
                {
                    "hook": "patient-view",
                    "id": SERVICE_ID,
                    "title": "pain-sdm: interventional pain options to discuss",
                    "description": (
                        "Reads the patient's latest pain-sdm questionnaire and lists the interventional pain "
                        "options open to discuss or on hold for safety, with the rules and sources behind each."
                    ),
                    "prefetch": {PREFETCH_KEY: PREFETCH},
                    "usageRequirements": (
                        "The EHR stores pain-sdm QuestionnaireResponses (see `pain-sdm fhir questionnaire`)."
                    ),
                }
            ]
        }

    def _link(self, request: Request) -> dict[str, str]:
        if self.smart_launch_url:
            return {"label": "Open pain-sdm (SMART app)", "url": self.smart_launch_url, "type": "smart"}
        base = str(request.base_url).rstrip("/")
        return {"label": "Open the pain-sdm clinician view", "url": base + self.clinician_path, "type": "absolute"}

    def _source(self, findings: list[Finding]) -> dict[str, Any]:
        sources = self.aid.knowledge.sources
        cited = [sources[s] for f in findings for s in f.sources if s in sources and sources[s].for_patients]
        unique = list({s.id: s for s in cited}.values())
        label = "pain-sdm rulebook" + (f", citing {unique[0].publisher} {unique[0].year}" if unique else "")
        source: dict[str, Any] = {"label": label}
        first_url = next((s.url for s in unique if s.url), "")
        if first_url:
            source["url"] = first_url
        return source

    def _remember(self, card_id: str, option: str, status: str, result: Result, hook_instance: str) -> None:
        self.cards[card_id] = {
            "procedure": option,
            "status": status,
            "rulebook_version": result.rulebook_version,
            "hook_instance": hook_instance,
        }
        while len(self.cards) > RECENT_CARDS:
            self.cards.popitem(last=False)

    def cards_for(self, result: Result, request: Request, hook_instance: str) -> list[dict[str, Any]]:
        link = self._link(request)
        cards: list[dict[str, Any]] = []
        if result.urgent_assessment:
            card_id = str(uuid.uuid4())
            self._remember(card_id, "urgent_assessment", "urgent", result, hook_instance)
            cards.append(
                {
                    "uuid": card_id,
                    "summary": "Warning signs: urgent assessment before any pain procedure",
                    "detail": _sentence(result.urgent_reasons) or "A warning sign needs urgent assessment.",
                    "indicator": "critical",
                    "source": self._source(result.urgent_reasons),
                    "links": [link],
                }
            )
        for option in result.options:
            if option.status not in SHOWN:
                continue
            card_id = str(uuid.uuid4())
            self._remember(card_id, option.procedure, option.status, result, hook_instance)
            rules = ", ".join(f"{f.rule_id} v{f.rule_version}" for f in option.reasons)
            steps = "; ".join(s.text for s in option.next_steps)
            detail = f"**{STATUS_LABELS[option.status]}.** {_sentence(option.reasons)} (Rules: {rules}.)"
            if steps:
                detail += f"\n\nNext steps: {steps}."
            detail += f"\n\nRulebook version {result.rulebook_version}, profile {result.profile}."
            cards.append(
                {
                    "uuid": card_id,
                    "summary": f"{option.name} ({STATUS_LABELS[option.status].lower()})"[: SUMMARY_LIMIT - 1],
                    "detail": detail,
                    "indicator": _indicator(option, result),
                    "source": self._source(option.reasons),
                    "links": [link],
                }
            )
        return cards


def _prefetched_response(prefetch: dict[str, Any] | None) -> dict[str, Any] | None | Literal[False]:
    """The QuestionnaireResponse from the prefetch; None when a search found none; False when missing."""
    found = (prefetch or {}).get(PREFETCH_KEY)
    if not isinstance(found, dict) or found.get("resourceType") == "OperationOutcome":
        return False  # not sent, null (the client could not fetch it), or the client's error
    if found.get("resourceType") == "Bundle":
        entries = [e.get("resource") for e in found.get("entry") or [] if isinstance(e, dict)]
        responses = [r for r in entries if isinstance(r, dict) and r.get("resourceType") == "QuestionnaireResponse"]
        return responses[0] if responses else None
    return found


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request, model: type[M], what: str) -> M | JSONResponse:
    """The posted JSON as `model`, or the error answer: 404 for another service, 400 for a bad body."""
    if request.path_params["service"] != SERVICE_ID:
        return _error(404, f"no CDS service {request.path_params['service']!r}; see GET /cds-services")
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) or "body" for e in exc.errors())
        return _error(400, f"not {what} (check: {fields})")


def cds_router(
    aid: DecisionAid,
    records_db: Path | str,
    *,
    evaluate: Evaluate | None = None,
    clinician_path: str = "/",
    smart_launch_url: str | None = None,
) -> Router:
    """The CDS Hooks routes, to mount at an app's root, after its own routes: `Mount("", routes=router.routes)`.

    `evaluate` is an app's own evaluation worker (`async (answers, profile) -> Result`), if it has one.
    """
    service = CdsService(aid, records_db, evaluate, clinician_path, smart_launch_url)

    async def discovery(request: Request) -> Response:
        return JSONResponse(service.discovery())

    async def patient_view(request: Request) -> Response:
        hook = await _body(request, HookRequest, "a CDS Hooks request")
        if isinstance(hook, Response):
            return hook
        if hook.hook != "patient-view" or not isinstance(hook.context.get("patientId"), str):
            return _error(400, "this service answers the patient-view hook, whose context has a patientId")
        data = _prefetched_response(hook.prefetch)
        if data is False:
            return _error(
                412,
                f"the prefetch `{PREFETCH_KEY}` (the patient's pain-sdm QuestionnaireResponse) is missing; "
                "this service does not query the FHIR server itself",
            )
        if data is None:
            return JSONResponse({"cards": []})
        try:
            answers = aid.parse_answers(data, "prefetch")
        except AnswersError as exc:
            problems = "\n".join(f"- {p}" for p in exc.problems)
            card = {
                "uuid": str(uuid.uuid4()),
                "summary": "The pain questionnaire on record cannot be evaluated",
                "detail": f"pain-sdm could not read the answers:\n\n{problems}",
                "indicator": "warning",
                "source": {"label": "pain-sdm"},
            }
            return JSONResponse({"cards": [card]})
        result = await service.evaluate(answers, None)
        return JSONResponse({"cards": service.cards_for(result, request, hook.hookInstance)})

    async def feedback(request: Request) -> Response:
        given = await _body(request, Feedback, "CDS Hooks feedback")
        if isinstance(given, Response):
            return given
        await run_in_threadpool(store_feedback, records_db, SERVICE_ID, given.feedback, dict(service.cards))
        return Response(status_code=200)

    return Router(
        routes=[
            Route("/cds-services", discovery, methods=["GET"]),
            Route("/cds-services/{service}", patient_view, methods=["POST"]),
            Route("/cds-services/{service}/feedback", feedback, methods=["POST"]),
        ]
    )
