"""The web app in a real browser: Debian's headless Chromium, driven by Playwright, against `pain-sdm serve`.

A patient fills in the whole form on a phone (390 px) by keyboard alone; a clinician on a desktop
(1280 px) fills in a second visit by clicking, reviews the results, changes an answer after them,
takes the SURE test, and downloads the summary PDF. axe-core checks every page type, and every
page type is photographed at both widths into out/screenshots/ (not committed) for a reviewer.

Chromium is never downloaded: the tests use /usr/bin/chromium (Debian's `chromium` package,
which `.ci/run` installs when it is missing) and fail, never skip, without it.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from pypdf import PdfReader

from engine.evaluation.aid import DecisionAid
from engine.interview.walkthrough import applicable, prune

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "out" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`pain-sdm serve` on a free loopback port, as a clinic starts it (bench/web_load.py times its start-up)."""
    db = tmp_path_factory.mktemp("web") / "records.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "serve", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        match = re.search(r"serving on (http://127\.0\.0\.1:\d+)/", line)
        assert match, f"no address printed: {line!r}"
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed for the browser tests: apt-get install -y chromium (as root)")
    if not AXE.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(AXE.parents[2])], check=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield chromium
        chromium.close()


def context(browser: Any, viewport: dict[str, int], **options: Any) -> Any:
    # axe-core is injected as a script, which the app's own policy (no script at all) would block.
    return browser.new_context(viewport=viewport, bypass_csp=True, accept_downloads=True, **options)


def check_page(page: Any, name: str, widths: tuple[dict[str, int], ...] = (PHONE, DESKTOP)) -> None:
    """axe-core finds no serious or critical violation; every field has a label; a screenshot at each width."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document)).violations.map(v => [v.id, v.impact, v.nodes.length])")
    bad = [v for v in found if v[1] in ("serious", "critical")]
    assert not bad, f"{name}: {bad}"
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)"""
    )
    assert not unlabelled, f"{name}: fields without a label: {unlabelled}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    first = page.viewport_size
    for size in widths:
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{name}-{size['width']}.png"), full_page=True)
    page.set_viewport_size(first)


def tab_to(page: Any, selector_js: str, limit: int = 60) -> None:
    """Press Tab until the focused element matches (a person with a keyboard only)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => {{ const e = document.activeElement; return !!e && ({selector_js}); }}"):
            return
    raise AssertionError(f"Tab never reached {selector_js}")


def answer_by_keyboard(page: Any, aid: DecisionAid, qid: str, value: Any) -> None:
    q = aid.questionnaire.questions[qid]
    if q.type in ("single", "yes_no"):
        values = [*q.values, "unknown"] if q.allow_unknown else list(q.values)
        tab_to(page, "e.name === 'answer'")
        index = values.index(value)
        if index == 0:
            page.keyboard.press("Space")
        for _ in range(index):
            page.keyboard.press("ArrowDown")
        assert page.evaluate("() => document.querySelector('input[name=answer]:checked').value") == value
    elif q.type == "multiple":
        wanted = ["unknown"] if value == "unknown" else list(value)
        for v in wanted:
            name = "not_sure" if v == "unknown" else "answer"
            field = "yes" if v == "unknown" else v
            tab_to(page, f"e.name === '{name}' && e.value === '{field}'")
            page.keyboard.press("Space")
    elif q.type == "number":
        tab_to(page, "e.name === 'answer' || e.name === 'not_sure'")
        if value == "unknown":
            tab_to(page, "e.name === 'not_sure'")
            page.keyboard.press("Space")
        else:
            page.keyboard.type(str(value))
    else:
        tab_to(page, "e.name === 'answer'")
        page.keyboard.type(str(value or ""))
    tab_to(page, "e.type === 'submit' && e.textContent.includes('Save and go on')")
    with page.expect_navigation():
        page.keyboard.press("Enter")


def shown_question(page: Any) -> str | None:
    if page.locator("#question-form").count() == 0:
        return None
    return str(page.locator("#question-form input[name=question]").get_attribute("value"))


def new_visit(page: Any, server: str) -> tuple[str, str]:
    page.goto(server + "/")
    page.get_by_role("button", name="New patient visit").click()
    link = str(page.locator("#patient-link").get_attribute("href"))
    vid = re.search(r"/visits/([0-9a-f]+)/open", page.content())
    assert vid
    return vid.group(1), link


@pytest.mark.slow  # the longest end-to-end walks run with the slow tests (CI runs them every time)
def test_the_patient_fills_in_the_whole_form_on_a_phone_by_keyboard_alone(
    aid: DecisionAid, server: str, browser: Any
) -> None:
    desk = context(browser, DESKTOP).new_page()
    vid, link = new_visit(desk, server)
    check_page(desk, "clinician-link")
    phone = context(browser, PHONE, has_touch=True, is_mobile=True).new_page()
    phone.goto(link)
    given = {**example("sciatica"), "concerns": "Will it hurt?"}
    asked: list[str] = []
    kinds: set[str] = set()
    while (qid := shown_question(phone)) is not None:
        q = aid.questionnaire.questions[qid]
        total = len(applicable(aid.questionnaire, {k: given[k] for k in asked if k in given}))
        assert phone.locator("#progress").inner_text() == f"Question {len(asked) + 1} of {max(total, len(asked) + 1)}"
        if q.type == "yes_no":
            assert phone.locator("input[name=answer]:checked").count() == 0, f"{qid} has an answer chosen already"
        if q.type not in kinds:  # one page of each kind of question, checked and photographed
            kinds.add(q.type)
            check_page(phone, f"patient-question-{q.type}")
        # Touch targets: every choice is at least 44 px high.
        for box in [c.bounding_box() for c in phone.locator("label.choice").all()]:
            assert box is not None and box["height"] >= 44
        answer_by_keyboard(phone, aid, qid, given.get(qid, "" if q.type == "text" else "unknown"))
        asked.append(qid)
    assert asked == [q.id for q in applicable(aid.questionnaire, given)]
    assert kinds == {"single", "multiple", "number", "yes_no", "text"}
    assert "Check your answers" in phone.content()
    check_page(phone, "patient-review")
    with phone.expect_navigation():  # axe is added to the thanks page, not to the page it replaces
        phone.get_by_role("link", name="I have finished").click()
    check_page(phone, "patient-thanks")
    # The clinician sees the options the engine gives for these answers alone.
    desk.goto(f"{server}/visits/{vid}")
    shown = dict(re.findall(r'data-procedure="(\w+)" data-status="(\w+)"', desk.content()))
    assert shown == aid.evaluate(aid.parse_answers(prune(aid.questionnaire, given))).statuses()
    assert desk.locator("#record").inner_text().startswith("This evaluation is stored as record number")


@pytest.mark.slow  # the longest end-to-end walks run with the slow tests (CI runs them every time)
def test_the_clinician_reviews_edits_after_the_results_takes_the_sure_test_and_downloads_the_pdf(
    aid: DecisionAid, server: str, browser: Any, tmp_path: Path
) -> None:
    desk = context(browser, DESKTOP).new_page()
    desk.goto(server + "/start")
    check_page(desk, "start")
    desk.goto(server + "/login")
    check_page(desk, "login")
    desk.goto(server + "/no-such-page")
    assert "We could not find that page" in desk.content()
    check_page(desk, "error")
    vid, _ = new_visit(desk, server)
    desk.goto(f"{server}/visits/{vid}/question")
    given = example("facet-back-pain")
    while (qid := shown_question(desk)) is not None:  # the whole form again, by mouse, at 1280 px
        q = aid.questionnaire.questions[qid]
        value = given.get(qid, "" if q.type == "text" else "unknown")
        form = desk.locator("#question-form")
        if q.type in ("single", "yes_no"):
            form.locator(f"input[name=answer][value='{value}']").check()
        elif q.type == "multiple":
            for v in ["yes"] if value == "unknown" else value:
                form.locator(f"input[name={'not_sure' if value == 'unknown' else 'answer'}][value='{v}']").check()
        elif q.type == "number" and value == "unknown":
            form.locator("input[name=not_sure]").check()
        else:
            form.locator("[name=answer]").fill(str(value))
        with desk.expect_navigation():
            form.get_by_role("button", name="Save and go on").click()
    assert desk.url.endswith(f"/visits/{vid}#results")
    check_page(desk, "clinician-visit")
    before = dict(re.findall(r'data-procedure="(\w+)" data-status="(\w+)"', desk.content()))
    assert before["facet_joint_injection"] in ("candidate", "after_prerequisite")
    # An answer changed after the results: the results change at once.
    desk.get_by_text("Show every answer").click()
    with desk.expect_navigation():
        desk.get_by_role("button", name="Change: " + aid.questionnaire.questions["red_flags"].prompt).click()
    check_page(desk, "clinician-edit", (DESKTOP,))
    desk.locator("input[name=answer][value='new_weakness']").check()
    desk.get_by_role("button", name="Save and go on").click()
    assert desk.locator(".urgent").first.inner_text().startswith("Urgent assessment needed")
    after = dict(re.findall(r'data-procedure="(\w+)" data-status="(\w+)"', desk.content()))
    assert after != before
    # SURE: nothing preselected; one 'no' flags conflict.
    assert desk.locator("#sure input:checked").count() == 0
    for key, answer in (("sure", "yes"), ("understand", "yes"), ("values", "no"), ("support", "yes")):
        desk.locator(f"input[name={key}][value={answer}]").check()
    desk.get_by_role("button", name="Save the SURE answers").click()
    assert "SURE score 3 of 4" in desk.locator("#sure-result").inner_text()
    desk.locator("#decision").fill("Think it over")
    desk.locator("#notes").fill("Seen with her daughter")
    desk.get_by_role("button", name="Save the decision and notes").click()
    with desk.expect_download() as download:
        desk.locator("#pdf-letter").click()
    pdf = Path(download.value.path()).read_bytes()
    reader = PdfReader(io.BytesIO(pdf))
    assert pdf.startswith(b"%PDF") and abs(float(reader.pages[0].mediabox.width) - 612) < 1
    text = " ".join(p.extract_text() or "" for p in reader.pages)
    assert "Think it over" in text and "Seen with her daughter" not in text
    # Reviewer pages.
    desk.goto(f"{server}/visits/{vid}/explain")
    check_page(desk, "reviewer-explain")
    desk.goto(f"{server}/visits/{vid}/why-not/spinal_cord_stimulation")
    check_page(desk, "reviewer-why-not")
    desk.goto(f"{server}/rules/ESI-CAND")
    check_page(desk, "reviewer-rule")
    desk.goto(f"{server}/records")
    assert "Chain intact" in desk.locator("#verify").inner_text()
    check_page(desk, "reviewer-records")
    desk.goto(server + "/")
    check_page(desk, "clinician-dashboard")


def test_the_browser_enforces_the_policy_against_inline_script(server: str, browser: Any) -> None:
    page = browser.new_context(viewport=DESKTOP).new_page()  # no bypass: the app's own policy applies
    page.goto(server + "/start")
    try:
        page.add_script_tag(content="window.injected = 1")
    except Exception:  # noqa: S110 (Playwright reports the refused script; the check is below)
        pass
    assert page.evaluate("() => window.injected") is None
