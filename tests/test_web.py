"""The web app as a patient and a clinician use it: the form, the clinician's view, records and the summary."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from pypdf import PdfReader
from web_client import Visitor, make_app, new_visit, statuses

from engine.evaluation.aid import DecisionAid
from engine.interview.walkthrough import applicable, prune
from engine.records.store import RecordStore


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    return data


@pytest.fixture
def app(aid: DecisionAid, tmp_path: Path) -> Any:
    return make_app(aid, tmp_path)


@pytest.fixture
def clinician(app: Any) -> Visitor:
    return Visitor(app, ("127.0.0.1", 50001))


def test_the_patient_form_follows_the_questionnaire_and_its_skip_conditions(
    aid: DecisionAid, app: Any, clinician: Visitor
) -> None:
    vid, link, _ = new_visit(clinician)
    patient = Visitor(app, ("127.0.0.1", 50002))
    first = patient.get(link)
    assert re.search(r"Question 1 of \d+", first.text)
    given = example("sciatica")
    asked = patient.answer_all(aid, given)
    # Exactly the questions that apply to these answers, in the questionnaire's order.
    assert asked == [q.id for q in applicable(aid.questionnaire, given)]
    assert "Check your answers" in patient.page
    answers = aid.parse_answers(prune(aid.questionnaire, given))
    page = clinician.get(f"/visits/{vid}").text
    assert statuses(page) == aid.evaluate(answers).statuses()


def test_progress_help_and_not_sure_come_from_the_questionnaire(aid: DecisionAid, app: Any, clinician: Visitor) -> None:
    _, link, _ = new_visit(clinician)
    patient = Visitor(app)
    patient.get(link)
    counts = []
    seen_help = seen_unsure = False
    while (qid := patient.shown_question()) is not None:
        q = aid.questionnaire.questions[qid]
        counts.append(tuple(map(int, re.search(r"Question (\d+) of (\d+)", patient.page).groups())))  # type: ignore[union-attr]
        assert q.prompt.replace("'", "&#39;").replace('"', "&#34;") in patient.page
        seen_help |= bool(q.help) and f'id="help-{qid}"' in patient.page
        seen_unsure |= "Not sure" in patient.page
        if q.type == "yes_no":  # safety questions among them: nothing is chosen before the patient chooses
            assert " checked" not in patient.page, qid
        value: dict[str, Any] = {"answer": "unknown"} if q.type in ("single", "yes_no") else {"not_sure": "yes"}
        patient.post("/form", {"question": qid, **(value if q.type != "text" else {"answer": ""})})
    assert seen_help and seen_unsure
    assert [n for n, _ in counts] == list(range(1, len(counts) + 1))
    assert counts[-1][1] == len(counts)


def test_a_rejected_answer_says_why_and_keeps_the_question(aid: DecisionAid, app: Any, clinician: Visitor) -> None:
    _, link, _ = new_visit(clinician)
    patient = Visitor(app)
    patient.get(link)
    patient.post("/form", {"question": "patient_label", "answer": ""})
    response = patient.post("/form", {"question": "age_years", "answer": "200"})
    assert response.status_code == 400
    assert "200 is out of range. Please give a number from 0 to 120 years" in response.text
    assert patient.shown_question() == "age_years"
    response = patient.post("/form", {"question": "conditions", "answer": ["sciatica"], "not_sure": "yes"})
    assert "on its own" in response.text


def test_the_form_is_saved_after_every_answer_and_resumes_from_the_code(
    aid: DecisionAid, app: Any, clinician: Visitor
) -> None:
    _, link, code = new_visit(clinician)
    patient = Visitor(app)
    patient.get(link)
    patient.post("/form", {"question": "patient_label", "answer": "AB"})
    patient.post("/form", {"question": "age_years", "answer": "46"})
    later = Visitor(app, ("127.0.0.1", 50009))  # another day, another device
    later.get("/start")
    wrong = later.post("/start", {"code": "AAAAA-AAAAA"})
    assert wrong.status_code == 403 and "did not work" in wrong.text
    later.post("/start", {"code": code.lower().replace("-", " ")})
    assert later.shown_question() == "conditions"
    assert "Question 3 of" in later.page
    # Back to the question before, to change it: the answer given is filled in.
    later.post("/form/edit", {"question": "age_years"})
    assert later.shown_question() == "age_years" and 'value="46"' in later.page


def test_the_clinician_edits_an_answer_after_the_results_and_the_results_change(
    aid: DecisionAid, app: Any, clinician: Visitor
) -> None:
    vid, link, _ = new_visit(clinician)
    patient = Visitor(app)
    patient.get(link)
    patient.answer_all(aid, example("sciatica"))
    before = statuses(clinician.get(f"/visits/{vid}").text)
    assert before["epidural_steroid_injection"] == "candidate"
    assert "Urgent assessment needed" not in clinician.page
    clinician.post(f"/visits/{vid}/edit", {"question": "red_flags"})
    assert clinician.shown_question() == "red_flags"
    flag = aid.questionnaire.questions["red_flags"].values[0]
    clinician.post(f"/visits/{vid}", {"question": "red_flags", "answer": [flag]})
    after = statuses(clinician.page)
    assert "Urgent assessment needed" in clinician.page
    assert after["epidural_steroid_injection"] != "candidate"
    records = re.findall(r"stored as record number (\d+)", clinician.page)
    assert records == ["2"]  # each evaluation is a record: the first view, then the edited answers


def test_profile_leaning_sure_decision_and_notes(
    aid: DecisionAid, app: Any, clinician: Visitor, tmp_path: Path
) -> None:
    vid, link, _ = new_visit(clinician)
    Visitor(app).get(link)
    clinician.get(f"/visits/{vid}/question")
    clinician.answer_all(aid, example("facet-back-pain"), action=f"/visits/{vid}")
    clinician.post(f"/visits/{vid}/profile", {"profile": "us-medicare"})
    assert 'value="us-medicare" selected' in clinician.page
    clinician.post(f"/visits/{vid}/leaning", {"leaning": "radiofrequency_ablation"})
    assert "Points to discuss about Radiofrequency ablation" in clinician.page or "conflicts with" in clinician.page
    incomplete = clinician.post(f"/visits/{vid}/sure", {"sure": "yes"})
    assert "Please answer all four questions" in incomplete.text
    clinician.post(f"/visits/{vid}/sure", {"sure": "yes", "understand": "no", "values": "yes", "support": "yes"})
    assert "SURE score 3 of 4" in clinician.page and "Talk more before deciding" in clinician.page
    clinician.post(
        f"/visits/{vid}/close",
        {"decision": "Try the test blocks first", "notes": "Private note", "clinician": "Dr Lee"},
    )
    assert "Try the test blocks first" in clinician.page
    with RecordStore.open(tmp_path / "records.sqlite3", create=False) as store:
        last = store.list()[-1]
    assert last.profile == "us-medicare" and last.sure == {
        "sure": True,
        "understand": False,
        "values": True,
        "support": True,
    }
    assert last.decision == "Try the test blocks first" and last.notes == "Private note"
    # Looking again changes nothing, so no second copy is stored.
    with RecordStore.open(tmp_path / "records.sqlite3", create=False) as store:
        count = store.count()
    clinician.get(f"/visits/{vid}")
    with RecordStore.open(tmp_path / "records.sqlite3", create=False) as store:
        assert store.count() == count


def pdf_text(content: bytes) -> str:
    return " ".join((page.extract_text() or "") for page in PdfReader(io.BytesIO(content)).pages)


def test_the_summary_pdf_leaves_the_notes_off_unless_chosen(aid: DecisionAid, app: Any, clinician: Visitor) -> None:
    vid, _, _ = new_visit(clinician)
    clinician.get(f"/visits/{vid}/question")
    clinician.answer_all(aid, example("sciatica"), action=f"/visits/{vid}")
    clinician.post(f"/visits/{vid}/close", {"notes": "Zebra-note", "clinician": "Dr Okafor"})
    a4 = clinician.http.get(f"/visits/{vid}/summary.pdf?paper=a4")
    assert a4.headers["content-type"] == "application/pdf"
    assert abs(float(PdfReader(io.BytesIO(a4.content)).pages[0].mediabox.width) - 595.3) < 1
    assert "Zebra-note" not in pdf_text(a4.content) and "Dr Okafor" in pdf_text(a4.content)
    clinician.get(f"/visits/{vid}")
    clinician.post(f"/visits/{vid}/close", {"notes": "Zebra-note", "notes_on_summary": "yes"})
    letter = clinician.http.get(f"/visits/{vid}/summary.pdf?paper=letter")
    assert abs(float(PdfReader(io.BytesIO(letter.content)).pages[0].mediabox.width) - 612) < 1
    assert "Zebra-note" in pdf_text(letter.content)


def test_reviewer_pages_rule_card_explain_why_not_and_records(aid: DecisionAid, app: Any, clinician: Visitor) -> None:
    vid, _, _ = new_visit(clinician)
    clinician.get(f"/visits/{vid}/question")
    clinician.answer_all(aid, example("sciatica"), action=f"/visits/{vid}")
    rule = re.search(r'href="/rules/([A-Z0-9-]+)"', clinician.page)
    assert rule
    card = clinician.get(f"/rules/{rule.group(1)}")
    assert card.status_code == 200 and f"{rule.group(1)} v" in card.text
    assert clinician.get("/rules/NO-SUCH-RULE").status_code == 404
    explain = clinician.get(f"/visits/{vid}/explain").text
    assert "ESI-CAND" in explain
    why = clinician.get(f"/visits/{vid}/why-not/spinal_cord_stimulation").text
    assert "Rules that could open spinal_cord_stimulation" in why
    records = clinician.get("/records").text
    assert "Chain intact: 1 record" in records and "Example A" in records


def test_the_form_asks_about_declining_implants_before_the_trials_and_skips_them(
    aid: DecisionAid, app: Any, clinician: Visitor
) -> None:
    trials = ["scs_trial_done", "itp_trial_done", "pns_trial_done"]
    for declines, skipped in (("yes", True), ("no", False)):
        _, link, _ = new_visit(clinician)
        patient = Visitor(app)
        patient.get(link)
        asked = patient.answer_all(aid, {**example("sciatica"), "declines_implants": declines})
        if skipped:
            assert not set(trials) & set(asked), "a patient who declines implants is not asked about trials"
        else:
            assert all(asked.index("declines_implants") < asked.index(t) for t in trials)


def test_every_connection_the_server_accepts_sends_without_delay() -> None:
    """TCP_NODELAY on each accepted connection: a kept-alive page's body never waits for the browser's
    delayed acknowledgement (about 40 ms a page)."""
    import asyncio
    import socket

    from engine.web.app import listening_socket

    async def accept_one() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listening_socket("127.0.0.1", 0))
        async with server:
            port = server.sockets[0].getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return await asyncio.wait_for(accepted, 10)
            finally:
                writer.close()

    assert asyncio.run(accept_one()) != 0
