"""The pages: the patient's form, the clinician's view and the reviewer's pages.

Who may open what is decided here, once, by two wrappers: `clinician_page` (clinician and
reviewer pages: a clinician's session, or anyone at this computer when no accounts are set up,
but never a patient link) and `patient_page` (the form of the one visit the patient's session
names). Every POST goes through `posted`, which refuses a form without the session's CSRF token.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from engine.errors import PainSdmError
from engine.interview.session import SURE_ITEMS, SureResult, record_digest
from engine.interview.walkthrough import UNDECIDED, AnswerRejected, missing, prune
from engine.model.knowledge import PROCEDURE_IDS
from engine.model.status import Status
from engine.web.app import error_page, web
from engine.web.auth import WebSession
from engine.web.forms import answer_lines, by_section, next_question, parse_answer, question_view
from engine.web.results import results_view
from engine.web.visits import Visit, show_code

STATIC = Path(__file__).resolve().parent / "static"
Handler = Callable[..., Awaitable[Response]]
TEXT_LIMITS = {"decision": 2000, "notes": 4000, "clinician": 120}


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def posted(handler: Handler) -> Handler:
    """Read the form and check its CSRF token against the session's; without it the request is refused."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args: Any) -> Response:
        form = await request.form()
        session: WebSession = request.state.session
        if request.state.forged or not session.csrf_ok(form.get("csrf")):
            return error_page(request, 403)
        return await handler(request, form, *args)

    return wrapper


def clinician_page(handler: Handler) -> Handler:
    """Clinician and reviewer pages: never for a patient link; with accounts, only after signing in."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args: Any) -> Response:
        session: WebSession = request.state.session
        app = web(request)
        if session.role == "patient" or request.state.forged:
            return error_page(request, 403)
        if app.accounts is not None and (session.role != "clinician" or session.who not in app.accounts.clinicians):
            if request.method == "GET":
                return see_other("/login")
            return error_page(request, 403)
        return await handler(request, *args)

    return wrapper


def visit_of(request: Request) -> Visit | None:
    return web(request).visits.find(request.path_params["vid"])


def clinician_visit(handler: Handler) -> Handler:
    """A clinician page about one visit, named by its random id in the path."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args: Any) -> Response:
        visit = visit_of(request)
        if visit is None:
            return error_page(request, 404)
        return await handler(request, *args, visit)

    return clinician_page(wrapper)


def patient_page(handler: Handler) -> Handler:
    """The patient's own form: the visit comes from the signed session, never from the URL."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args: Any) -> Response:
        session: WebSession = request.state.session
        visit = web(request).visits.find(session.who) if session.role == "patient" else None
        if visit is None or visit.link_expires < time.time():
            return error_page(request, 403)
        return await handler(request, *args, visit)

    return wrapper


# --- Signing in, patient links and codes --------------------------------------------------------


async def login_page(request: Request) -> Response:
    return web(request).render(request, "login.html", error="")


@posted
async def login(request: Request, form: FormData) -> Response:
    app = web(request)
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    if app.accounts is None:
        return see_other("/")
    if not await run_in_threadpool(app.accounts.check, name, password):
        return app.render(request, "login.html", status=401, error="That name and password do not match.")
    request.state.session = WebSession.clinician(name)
    return see_other("/")


@posted
async def logout(request: Request, form: FormData) -> Response:
    request.state.session = WebSession.anonymous()
    return see_other("/start")


async def patient_link(request: Request) -> Response:
    visit = web(request).visits.by_link(request.path_params["token"])
    if visit is None:
        return web(request).render(request, "start.html", status=403, error="This link has expired or is not valid.")
    request.state.session = WebSession.patient(visit.id, visit.link_expires)
    return see_other("/form")


async def start_page(request: Request) -> Response:
    return web(request).render(request, "start.html", error="")


FAILED_CODES: dict[str, list[float]] = {}
"""Recent wrong resume codes by client address: after 10 in 10 minutes, codes are refused for a while."""


@posted
async def start(request: Request, form: FormData) -> Response:
    app = web(request)
    client = request.client.host if request.client else ""
    recent = [t for t in FAILED_CODES.get(client, []) if t > time.time() - 600]
    visit = app.visits.by_code(str(form.get("code", ""))) if len(recent) < 10 else None
    if visit is None:
        FAILED_CODES[client] = [*recent, time.time()]
        error = "That code did not work. Check it with the clinic; codes stop working after a few days."
        return app.render(request, "start.html", status=403, error=error)
    request.state.session = WebSession.patient(visit.id, visit.link_expires)
    return see_other("/form")


# --- The patient's form --------------------------------------------------------------------------


@patient_page
async def form_page(request: Request, visit: Visit) -> Response:
    app = web(request)
    questionnaire = app.aid.questionnaire
    answers = visit.session.answers
    question = next_question(questionnaire, answers, visit.patient_cursor)
    if question is None:
        return app.render(request, "form_review.html", sections=by_section(answer_lines(questionnaire, answers)))
    return app.render(request, "form_question.html", q=question_view(questionnaire, answers, question), action="/form")


def save_answer(request: Request, visit: Visit, form: FormData) -> tuple[Visit, str]:
    """Store one posted answer (dropping answers it makes irrelevant); returns the visit and any error."""
    app = web(request)
    questionnaire = app.aid.questionnaire
    qid = str(form.get("question", ""))
    question = questionnaire.questions.get(qid)
    if question is None:
        return visit, "That question is not part of this form."
    try:
        value = parse_answer(question, form)
    except AnswerRejected as exc:
        return visit, str(exc)
    visit.session.answers = prune(questionnaire, {**visit.session.answers, qid: value})
    return visit, ""


def redisplay(request: Request, visit: Visit, form: FormData, error: str, action: str) -> Response:
    app = web(request)
    questionnaire = app.aid.questionnaire
    question = questionnaire.questions.get(str(form.get("question", "")))
    if question is None:
        return error_page(request, 400)
    typed = form.get("answer")
    view = question_view(
        questionnaire, visit.session.answers, question, error, typed if isinstance(typed, str) else None
    )
    return app.render(request, "form_question.html", status=400, q=view, action=action)


@posted
@patient_page
async def form_answer(request: Request, form: FormData, visit: Visit) -> Response:
    visit, error = save_answer(request, visit, form)
    if error:
        return redisplay(request, visit, form, error, "/form")
    visit.patient_cursor = None
    web(request).visits.save(visit)
    return see_other("/form")


@posted
@patient_page
async def form_edit(request: Request, form: FormData, visit: Visit) -> Response:
    qid = str(form.get("question", ""))
    visit.patient_cursor = qid if qid in web(request).aid.questionnaire.questions else None
    web(request).visits.save(visit)
    return see_other("/form")


@patient_page
async def form_thanks(request: Request, visit: Visit) -> Response:
    return web(request).render(request, "form_thanks.html")


@posted
async def form_leave(request: Request, form: FormData) -> Response:
    request.state.session = WebSession.anonymous()
    return see_other("/start")


# --- The clinician's view -----------------------------------------------------------------------


@clinician_page
async def dashboard(request: Request) -> Response:
    app = web(request)
    visits = app.visits.recent()
    rows = [
        (
            v,
            str(v.session.answers.get("patient_label") or ""),
            len(v.session.answers),
            len(missing(app.aid.questionnaire, v.session.answers)),
        )
        for v in visits
    ]
    return app.render(request, "dashboard.html", rows=rows, when=_when)


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


@posted
@clinician_page
async def new_visit(request: Request, form: FormData) -> Response:
    app = web(request)
    visit, link = app.visits.create(app.link_hours)
    return link_page(request, visit, link.token, link.code, link.expires)


def link_page(request: Request, visit: Visit, token: str, code: str, expires: float) -> Response:
    base = str(request.base_url).rstrip("/")
    return web(request).render(
        request, "link.html", visit=visit, link=f"{base}/p/{token}", code=show_code(code), expires=_when(expires)
    )


@posted
@clinician_visit
async def renew_link(request: Request, form: FormData, visit: Visit) -> Response:
    link = web(request).visits.new_link(visit.id, web(request).link_hours)
    return link_page(request, visit, link.token, link.code, link.expires)


@posted
@clinician_visit
async def open_here(request: Request, form: FormData, visit: Visit) -> Response:
    """Hand this device to the patient: the session becomes the patient's, for this visit only."""
    request.state.session = WebSession.patient(visit.id, visit.link_expires)
    return see_other("/form")


async def evaluation(request: Request, visit: Visit) -> tuple[Any, Any]:
    app = web(request)
    answers = app.aid.parse_answers(visit.session.answers, "answers")
    result = await app.worker.evaluate(answers, visit.session.profile)
    return answers, result


async def store_record(request: Request, visit: Visit, answers: Any, result: Any) -> str:
    """Each evaluation is a record (as in the terminal); an unchanged one is not stored twice."""
    from engine.records.store import record_evaluation

    app = web(request)
    session = visit.session
    digest = record_digest(
        app.records_db, result.profile, result.rulebook_version, answers.model_dump(mode="json"), session
    )
    if session.record_id is not None and session.record_of == digest:
        return ""
    try:
        record = await run_in_threadpool(
            functools.partial(
                record_evaluation,
                app.aid,
                answers,
                result,
                db=app.records_db,
                sure=session.sure,
                decision=session.decision or None,
                notes=session.notes or None,
            )
        )
    except PainSdmError:
        return "This evaluation could not be stored as a record. Check the records database (records verify)."
    session.record_id, session.record_of = record.id, digest
    app.visits.save(visit)
    return ""


@clinician_visit
async def visit_page(request: Request, visit: Visit) -> Response:
    app = web(request)
    answers, result = await evaluation(request, visit)
    problem = await store_record(request, visit, answers, result)
    session = visit.session
    todo = missing(app.aid.questionnaire, session.answers)
    return app.render(
        request,
        "visit.html",
        visit=visit,
        lines=answer_lines(app.aid.questionnaire, session.answers),
        todo=len(todo),
        view=results_view(app.aid, result, session.answers, session.leaning),
        profiles=app.aid.rulebook.profiles,
        chosen_profile=result.profile,
        sure_items=SURE_ITEMS,
        record_problem=problem,
        procedures=[(o.procedure, o.name) for o in result.options],
        undecided=UNDECIDED,
        sure_incomplete=request.query_params.get("sure") == "incomplete",
    )


@posted
@clinician_visit
async def visit_edit(request: Request, form: FormData, visit: Visit) -> Response:
    qid = str(form.get("question", ""))
    visit.clinician_cursor = qid if qid in web(request).aid.questionnaire.questions else None
    web(request).visits.save(visit)
    return see_other(f"/visits/{visit.id}/question")


@clinician_visit
async def visit_question(request: Request, visit: Visit) -> Response:
    app = web(request)
    questionnaire = app.aid.questionnaire
    question = next_question(questionnaire, visit.session.answers, visit.clinician_cursor)
    if question is None:
        return see_other(f"/visits/{visit.id}#results")
    view = question_view(questionnaire, visit.session.answers, question)
    return app.render(request, "form_question.html", q=view, action=f"/visits/{visit.id}", visit=visit)


@posted
@clinician_visit
async def visit_answer(request: Request, form: FormData, visit: Visit) -> Response:
    visit, error = save_answer(request, visit, form)
    if error:
        return redisplay(request, visit, form, error, f"/visits/{visit.id}")
    visit.clinician_cursor = None
    web(request).visits.save(visit)
    if missing(web(request).aid.questionnaire, visit.session.answers):
        return see_other(f"/visits/{visit.id}/question")  # the change opened a question: ask it first
    return see_other(f"/visits/{visit.id}#results")


@posted
@clinician_visit
async def visit_profile(request: Request, form: FormData, visit: Visit) -> Response:
    profile = str(form.get("profile", ""))
    if profile not in web(request).aid.rulebook.profiles:
        return error_page(request, 400)
    visit.session.profile = profile
    web(request).visits.save(visit)
    return see_other(f"/visits/{visit.id}#results")


@posted
@clinician_visit
async def visit_leaning(request: Request, form: FormData, visit: Visit) -> Response:
    leaning = str(form.get("leaning", ""))
    if leaning not in (UNDECIDED, *PROCEDURE_IDS):
        return error_page(request, 400)
    visit.session.leaning = leaning
    web(request).visits.save(visit)
    return see_other(f"/visits/{visit.id}#leaning")


@posted
@clinician_visit
async def visit_sure(request: Request, form: FormData, visit: Visit) -> Response:
    given = {key: form.get(key) for key in SURE_ITEMS}
    if any(v not in ("yes", "no") for v in given.values()):
        return see_other(f"/visits/{visit.id}?sure=incomplete#sure")
    visit.session.sure = SureResult(**{k: v == "yes" for k, v in given.items()})
    web(request).visits.save(visit)
    return see_other(f"/visits/{visit.id}#sure")


@posted
@clinician_visit
async def visit_close(request: Request, form: FormData, visit: Visit) -> Response:
    for key, limit in TEXT_LIMITS.items():
        value = form.get(key, "")
        text = value.strip() if isinstance(value, str) else ""
        if len(text) > limit:
            return error_page(request, 400)
        setattr(visit.session, key, text)
    visit.notes_on_summary = form.get("notes_on_summary") == "yes"
    visit.session.complete = True
    web(request).visits.save(visit)
    return see_other(f"/visits/{visit.id}#close")


@clinician_visit
async def visit_summary(request: Request, visit: Visit) -> Response:
    """The patient's summary PDF, from the summary's own renderer; notes only when the clinician chose so."""
    from engine.presentation.summary import PAPERS, build_summary, render_pdf

    paper = request.query_params.get("paper", "a4")
    if paper not in PAPERS:
        return error_page(request, 400)
    app = web(request)
    answers, result = await evaluation(request, visit)
    session = visit.session if visit.notes_on_summary else visit.session.model_copy(update={"notes": ""})
    summary = build_summary(app.aid, answers, result=result, session=session, paper=paper)
    pdf = await run_in_threadpool(render_pdf, summary)
    name = f"pain-sdm-summary-{paper}.pdf"
    return Response(
        pdf, media_type="application/pdf", headers={"content-disposition": f'attachment; filename="{name}"'}
    )


# --- Reviewer's pages ---------------------------------------------------------------------------


@clinician_visit
async def visit_explain(request: Request, visit: Visit) -> Response:
    from engine.presentation.explain import explain

    app = web(request)
    answers, result = await evaluation(request, visit)
    text = explain(result, app.aid, answers)
    return app.render(request, "text.html", title="Every rule that fired, in order", text=text, visit=visit)


@clinician_visit
async def visit_why_not(request: Request, visit: Visit) -> Response:
    from engine.presentation.explain import why_not

    app = web(request)
    procedure = request.path_params["procedure"]
    if procedure not in PROCEDURE_IDS:
        return error_page(request, 404)
    answers = app.aid.parse_answers(visit.session.answers, "answers")
    text = await app.worker.run(why_not, procedure, answers, visit.session.profile)
    title = f"Why {app.aid.knowledge.procedures[procedure].name} has its status"
    return app.render(request, "text.html", title=title, text=text, visit=visit)


@clinician_page
async def rule_page(request: Request) -> Response:
    from engine.errors import UsageError
    from engine.presentation.rulebook_doc import find_rule, rule_card

    app = web(request)
    try:
        rule = find_rule(app.aid, request.path_params["rule_id"])
    except UsageError:
        return error_page(request, 404)
    return app.render(request, "rule.html", card=rule_card(app.aid, rule), profile_ids=list(app.aid.rulebook.profiles))


@clinician_page
async def records_page(request: Request) -> Response:
    from engine.records.store import RecordStore

    app = web(request)

    def read() -> tuple[list[Any], list[str], int]:
        if isinstance(app.records_db, Path) and not app.records_db.exists():
            return [], [], 0
        # On a PostgreSQL server the tables are made on first use, as any writer would.
        with RecordStore.open(app.records_db, create=isinstance(app.records_db, str)) as store:
            return store.list(limit=200), store.verify(), store.count()

    records, problems, count = await run_in_threadpool(read)
    rows = [
        (
            r,
            ", ".join(o["name"] for o in r.result.get("options", []) if Status(o["status"]).is_open),
        )
        for r in reversed(records)
    ]
    return app.render(request, "records.html", rows=rows, problems=problems, count=count)


def routes() -> list[BaseRoute]:
    return [
        Route("/", dashboard),
        Route("/login", login_page),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/start", start_page),
        Route("/start", start, methods=["POST"]),
        Route("/p/{token}", patient_link),
        Route("/form", form_page),
        Route("/form", form_answer, methods=["POST"]),
        Route("/form/edit", form_edit, methods=["POST"]),
        Route("/form/thanks", form_thanks),
        Route("/form/leave", form_leave, methods=["POST"]),
        Route("/visits", new_visit, methods=["POST"]),
        Route("/visits/{vid}", visit_page),
        Route("/visits/{vid}", visit_answer, methods=["POST"]),
        Route("/visits/{vid}/link", renew_link, methods=["POST"]),
        Route("/visits/{vid}/open", open_here, methods=["POST"]),
        Route("/visits/{vid}/edit", visit_edit, methods=["POST"]),
        Route("/visits/{vid}/question", visit_question),
        Route("/visits/{vid}/profile", visit_profile, methods=["POST"]),
        Route("/visits/{vid}/leaning", visit_leaning, methods=["POST"]),
        Route("/visits/{vid}/sure", visit_sure, methods=["POST"]),
        Route("/visits/{vid}/close", visit_close, methods=["POST"]),
        Route("/visits/{vid}/summary.pdf", visit_summary),
        Route("/visits/{vid}/explain", visit_explain),
        Route("/visits/{vid}/why-not/{procedure}", visit_why_not),
        Route("/rules/{rule_id}", rule_page),
        Route("/records", records_page),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
