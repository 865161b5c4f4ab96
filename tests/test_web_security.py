"""The web app's security, as issue 15 sets it: who can reach what, CSRF, cookies, binding, escaping, headers."""

from __future__ import annotations

import base64
import json
import logging
import re
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from starlette.routing import Route
from web_client import Visitor, make_app, new_visit

from engine.errors import UsageError
from engine.evaluation.aid import DecisionAid
from engine.web.app import check_bind, is_loopback
from engine.web.auth import COOKIE, Accounts, CookieSigner, WebSession, add_account

PASSWORD = "correct horse battery"


@pytest.fixture
def app(aid: DecisionAid, tmp_path: Path) -> Any:
    return make_app(aid, tmp_path)


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    path = tmp_path / "accounts.json"
    add_account(path, "lee", PASSWORD)
    return Accounts.load(path)


@pytest.fixture
def secured(aid: DecisionAid, tmp_path: Path, accounts: Accounts) -> Any:
    """The app as it runs on a network: clinician accounts configured."""
    folder = tmp_path / "network"
    folder.mkdir()
    return make_app(aid, folder, accounts)


def signed_in(app: Any) -> Visitor:
    clinician = Visitor(app, ("10.1.2.3", 40000), base="http://clinic.example")
    clinician.get("/login")
    clinician.post("/login", {"name": "lee", "password": PASSWORD})
    assert "New patient visit" in clinician.page
    return clinician


def clinician_urls(vid: str) -> list[str]:
    return [
        "/",
        "/records",
        "/rules/ESI-CAND",
        f"/visits/{vid}",
        f"/visits/{vid}/question",
        f"/visits/{vid}/explain",
        f"/visits/{vid}/why-not/spinal_cord_stimulation",
        f"/visits/{vid}/summary.pdf?paper=a4",
    ]


def post_routes(app: Any) -> list[str]:
    return [r.path for r in app.routes if isinstance(r, Route) and "POST" in (r.methods or set())]


@pytest.mark.parametrize("network", [False, True], ids=["loopback", "with accounts"])
def test_a_patient_link_cannot_reach_another_patient_or_any_clinician_page(
    aid: DecisionAid, app: Any, secured: Any, network: bool
) -> None:
    web = secured if network else app
    clinician = signed_in(web) if network else Visitor(web)
    mine, link, _ = new_visit(clinician)
    other, _, _ = new_visit(clinician)
    clinician.get(f"/visits/{other}/question")
    clinician.post(f"/visits/{other}", {"question": "patient_label", "answer": "Other patient"})
    patient = Visitor(
        web,
        ("10.9.9.9", 40001) if network else ("127.0.0.1", 40001),
        "http://clinic.example" if network else "http://127.0.0.1",
    )
    patient.get(link)
    assert patient.shown_question() == "patient_label"
    for vid in (mine, other):
        for url in clinician_urls(vid):
            response = patient.http.get(url, follow_redirects=False)
            assert response.status_code == 403, url
            assert "Other patient" not in response.text
    for path in post_routes(web):
        if path.startswith("/visits"):
            response = patient.http.post(
                path.replace("{vid}", other), data={"csrf": patient.csrf(), "question": "patient_label", "answer": "x"}
            )
            assert response.status_code == 403, path
    # The form only ever writes to the visit the link opened.
    patient.post("/form", {"question": "patient_label", "answer": "Mine"})
    assert "Other patient" in clinician.get(f"/visits/{other}").text
    assert "Mine" in clinician.get(f"/visits/{mine}").text


def test_every_form_without_its_csrf_token_is_refused(app: Any) -> None:
    visitor = Visitor(app)
    visitor.get("/start")
    posts = post_routes(app)
    assert len(posts) >= 14
    for path in posts:
        url = path.replace("{vid}", "0" * 24)
        assert visitor.http.post(url, data={"question": "age_years"}).status_code == 403, path
        assert visitor.http.post(url, data={"csrf": "forged", "question": "age_years"}).status_code == 403, path
    # The token from one session does not work in another.
    other = Visitor(app)
    other.get("/start")
    assert visitor.http.post("/visits", data={"csrf": other.csrf()}).status_code == 403


def test_a_forged_or_altered_cookie_is_refused(aid: DecisionAid, secured: Any) -> None:
    clinician = signed_in(secured)
    vid, link, _ = new_visit(clinician)
    cookie = clinician.http.cookies[COOKIE]
    forger = Visitor(secured, ("10.9.9.9", 40002), "http://clinic.example")
    for fake in (cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"), '["clinician","lee",9999999999,"x"]'):
        forger.http.cookies.set(COOKIE, fake)
        response = forger.http.get(f"/visits/{vid}", follow_redirects=False)
        assert response.status_code in (303, 403)
        assert response.headers.get("location", "/login") == "/login"
        forger.http.cookies.clear()
    # A patient's cookie altered to name another visit, or signed with another key, opens nothing.
    other, _, _ = new_visit(clinician)
    patient = Visitor(secured, ("10.9.9.9", 40003), "http://clinic.example")
    patient.get(link)
    real = patient.http.cookies[COOKIE]
    payload, rest = real.split(".", 1)
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data[1] = other
    altered = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
    expires = time.time() + 3600
    for fake in (f"{altered}.{rest}", CookieSigner("another key " * 4).dumps(WebSession.patient(other, expires))):
        for url in ("/form", f"/visits/{other}"):
            patient.http.cookies.clear()
            patient.http.cookies.set(COOKIE, fake)
            assert patient.http.get(url, follow_redirects=False).status_code == 403, url


def test_the_session_cookie_is_signed_httponly_and_samesite_strict(secured: Any) -> None:
    visitor = Visitor(secured, ("10.9.9.9", 40004), "http://clinic.example")
    response = visitor.http.get("/login")
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "path=/" in header
    assert "secure" not in header  # plain HTTP here; over TLS the app sets Secure (WebConfig.tls)


def test_a_non_loopback_bind_needs_accounts_and_refuses_unauthenticated_requests(
    aid: DecisionAid, app: Any, secured: Any, tmp_path: Path
) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20")
    with pytest.raises(UsageError, match="needs clinician accounts"):
        check_bind("0.0.0.0", None)
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--db", str(tmp_path / "r.sqlite3"))
    assert result.returncode == 2 and "needs clinician accounts" in result.stderr
    # With accounts, nothing is served before signing in.
    stranger = Visitor(secured, ("10.9.9.9", 40005), "http://clinic.example")
    for url in clinician_urls("0" * 24):
        response = stranger.http.get(url, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login", url
    stranger.get("/login")
    assert stranger.post("/visits").status_code == 403
    wrong = stranger.post("/login", {"name": "lee", "password": "not the password"})
    assert wrong.status_code == 401 and "do not match" in wrong.text
    # Without accounts, only this computer is served: another address or a foreign host name is refused.
    assert Visitor(app, ("10.9.9.9", 40006)).http.get("/").status_code == 403
    assert Visitor(app, ("127.0.0.1", 40007), "http://attacker.example").http.get("/").status_code == 403


def test_passwords_are_stored_as_argon2_hashes_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    result = run_cli("accounts", "add", "okafor", "--accounts", str(path), "--password-stdin", input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    assert PASSWORD not in text and "$argon2id$" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Accounts.load(path).check("okafor", PASSWORD) and not Accounts.load(path).check("okafor", "x" * 12)
    short = run_cli("accounts", "add", "lee", "--accounts", str(path), "--password-stdin", input="short\n")
    assert short.returncode == 2 and "too short" in short.stderr


def test_a_patient_link_expires(aid: DecisionAid, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(aid, tmp_path, link_hours=72)
    clinician = Visitor(app)
    _, link, code = new_visit(clinician)
    patient = Visitor(app)
    assert patient.get(link).status_code == 200
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 73 * 3600)  # three days and an hour later
    assert patient.http.get("/form").status_code == 403
    late = Visitor(app)
    assert late.get(link).status_code == 403 and "expired" in late.page
    late.get("/start")
    assert late.post("/start", {"code": code}).status_code == 403


def test_html_typed_into_any_free_text_field_is_shown_as_text(aid: DecisionAid, app: Any) -> None:
    attack = '<script>alert(1)</script><img src=x onerror=alert(2)>"'
    clinician = Visitor(app)
    vid, link, _ = new_visit(clinician)
    patient = Visitor(app)
    patient.get(link)
    texts = [q.id for q in aid.questionnaire.questions.values() if q.type == "text"]
    assert texts
    patient.answer_all(aid, {qid: attack for qid in texts})
    clinician.post(f"/visits/{vid}/close", {"decision": attack, "notes": attack, "clinician": attack})
    pages = [
        clinician.get(f"/visits/{vid}").text,
        clinician.get("/").text,
        clinician.get("/records").text,
        patient.get("/form").text,
    ]
    for page in pages:
        assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    clinician.get("/login")
    login = clinician.post("/login", {"name": attack, "password": "x"})
    assert "<script>alert" not in login.text


def test_every_page_has_the_security_headers_and_no_inline_script(aid: DecisionAid, app: Any) -> None:
    clinician = Visitor(app)
    vid, link, _ = new_visit(clinician)
    responses = [clinician.http.get(u) for u in clinician_urls(vid) if "pdf" not in u]
    responses += [
        clinician.http.get("/no-such-page"),
        clinician.http.get("/start"),
        clinician.http.get("/static/app.css"),
    ]
    for response in responses:
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "<script" not in response.text and " style=" not in response.text and "<style" not in response.text


def test_no_patient_data_in_urls_logs_or_error_pages(
    aid: DecisionAid, app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pain_sdm.web")
    clinician = Visitor(app)
    vid, link, code = new_visit(clinician)
    patient = Visitor(app)
    urls: list[str] = []
    patient.http.event_hooks["request"] = [lambda request: urls.append(str(request.url))]
    clinician.http.event_hooks["request"] = [lambda request: urls.append(str(request.url))]
    patient.get(link)
    patient.answer_all(aid, {"patient_label": "Zed Private", "age_years": 77})
    clinician.get(f"/visits/{vid}")
    missing = clinician.http.get("/visits/" + "f" * 24)
    assert missing.status_code == 404 and "We could not find that page" in missing.text
    bad = patient.post("/form", {"question": "no_such_question"})
    assert bad.status_code == 400 and "Something in that request was not right" in bad.text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged and link.split("/")[-1] not in logged and vid not in logged
    for secret in ("Zed", code):
        assert secret not in logged
        assert not any(secret in u.split("/", 3)[-1] for u in urls if "/p/" not in u), secret
    assert re.search(r"^POST /form 303", logged, re.M)
