"""The printable discussion summary: content, agreement of HTML, PDF and Markdown, print layout, safety.

Every example patient is rendered once per paper size, and a few golden cases once (module
fixtures); the PDFs are read back with pypdf, and their layout boxes are checked with
WeasyPrint, as a printer would.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
import subprocess
import sys
import unicodedata
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pypdf
import pytest
import yaml
from conftest import EXAMPLES, ROOT, run_cli
from markdown_it import MarkdownIt
from test_golden import CASES

from engine.errors import OutputError, UsageError
from engine.evaluation.aid import DecisionAid
from engine.interview.session import Session, SureResult
from engine.presentation.main_points import MAIN_ITEMS, main_points
from engine.presentation.summary import (
    BRIEF_ITEMS,
    SHORT_TITLE_WORDS,
    Summary,
    build_summary,
    first_sentence,
    read_input,
    render_summary,
    short_publisher,
    short_title,
    write_summary,
)

TYPICAL = ("sciatica", "stenosis-claudication", "crps-declines-implants", "red-flags", "cancer-pain", "facet-back-pain")
"""Examples with at most three options to discuss in detail (failed-back-surgery has four)."""
GOLDEN = (
    "ESI-03_after_prerequisite_with_3_weeks_of_therapy",
    "GEN-03_bleeding_disorder_defers",
    "SCS-03_trial_of_50_percent_opens_the_implant",
    "ITP-02_cancer_pain_with_successful_trial",
    "GEN-13_declined_implants_stay_visible_with_their_status",
    "ESI-07_repeat_not_indicated_after_49_percent",
)
"""Golden cases whose summaries are printed too: each status, a deferral, a decline, an outweighed reason."""

SECTIONS = (
    "Your pain treatment options: a summary to discuss",
    "Your options at a glance",
    "Your situation",
    "About this aid",
    "What matters to you",
    "The options to discuss, in detail",
    "Other options, in short",
    "Questions to ask your doctor",
    "Notes",
    "Sources",
)
PAGE_POINTS = {"a4": (595.28, 841.89), "letter": (612.0, 792.0)}
SCRIPT = "<script>alert(1)</script>"


@dataclass
class Rendered:
    summary: Summary
    html: str
    md: str
    pdf: dict[str, bytes]

    def pdf_pages(self, paper: str) -> list[str]:
        return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(self.pdf[paper])).pages]

    def pdf_body(self, paper: str) -> str:
        """The text of all pages in order, without the running header and footer (so text flows across pages)."""
        margins = (
            f"For: {self.summary.patient_label}",
            f"Discussion summary, {self.summary.date}",
            "A discussion aid, not a prescription",
        )
        pages = []
        for page in self.pdf_pages(paper):
            for text in margins:
                page = page.replace(text, "")
            pages.append(re.sub(r"Page \d+ of \d+", "", page))
        return "\n".join(pages)


def squash(text: str) -> str:
    """Text compared across formats: no spaces, hyphens (PDF hyphenation), Markdown marks or bullets."""
    text = unicodedata.normalize("NFKC", text)
    return re.sub(r"[\s\-\u00ad\u2010\u2011*\\|•_\[\]]", "", text)


class TextOf(HTMLParser):
    """The visible text of an HTML page (the style sheet left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.skip = tag in ("style", "script")

    def handle_endtag(self, tag: str) -> None:
        self.skip = False

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_text(page: str) -> str:
    parser = TextOf()
    parser.feed(page)
    return " ".join(parser.parts)


def render_examples(aid: DecisionAid) -> dict[str, Rendered]:
    """Every shipped example's summary as HTML, Markdown and PDF on A4 and Letter (conftest's `printed_examples`)."""
    out = {}
    for path in EXAMPLES:
        answers, session = read_input(aid, path)
        pdf = {}
        for paper in PAGE_POINTS:
            summary = build_summary(aid, answers, session=session, paper=paper, today=dt.date(2025, 1, 31))
            pdf[paper] = render_summary(summary, "pdf")
        out[path.stem] = Rendered(summary, render_summary(summary, "html"), render_summary(summary, "md"), pdf)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def rendered(printed_examples: dict[str, Rendered]) -> dict[str, Rendered]:
    return printed_examples


@pytest.fixture(scope="module")
def golden_prints(aid: DecisionAid) -> dict[str, dict[str, tuple[Summary, bytes]]]:
    """A few golden cases, printed on each paper: the summary and its PDF."""
    cases = {c.id: c for c in CASES}
    out: dict[str, dict[str, tuple[Summary, bytes]]] = {paper: {} for paper in PAGE_POINTS}
    for name in GOLDEN:
        answers = aid.parse_answers(cases[name].answers, name)
        for paper in PAGE_POINTS:
            summary = build_summary(aid, answers, profile=cases[name].profile, paper=paper, today=dt.date(2025, 1, 31))
            pdf = render_summary(summary, "pdf")
            assert isinstance(pdf, bytes)
            out[paper][name] = (summary, pdf)
    return out


@pytest.fixture(scope="module")
def golden_pdfs(golden_prints: dict[str, dict[str, tuple[Summary, bytes]]]) -> dict[str, tuple[Summary, str]]:
    """The golden cases: each summary and its A4 PDF's text."""
    return {
        name: (summary, " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages))
        for name, (summary, pdf) in golden_prints["a4"].items()
    }


def risk_line(s: Summary, risk: Any) -> str:
    return f"{s.frequency_labels[risk.frequency]}: {risk.text}"


def expected_snippets(s: Summary, printed: bool = False) -> list[str]:
    """What every format must show: sections, every option with its status, reasons, benefits and risks
    (on paper, each option's first `printed_questions` questions; on screen and in Markdown, all)."""
    snippets = list(SECTIONS) + [s.disclaimer, s.decision, s.rulebook_version, s.profile_name]
    for o in s.options:
        snippets += [o.name, *(r.text for r in o.reasons + o.outweighed), *o.other_profiles]
        snippets += [*o.benefits, *(risk_line(s, r) for r in o.risks), *o.next_steps]
        snippets += [o.declined] if o.declined else []
    snippets += [o.status_label for o in s.detailed] + [g.status_label for g in s.brief_groups]
    for o in s.detailed:
        snippets += o.questions[: s.printed_questions] if printed else o.questions
    snippets += [cell for row in s.option_grid.rows for cell in [row.question, *row.cells]]
    snippets += [o.name for o in s.option_grid.others] + [s.frequency_key]
    cautions = [c for _, group in s.caution_groups for c in group]
    snippets += [c.printed if printed else c.text for c in cautions] + ([s.profile_note] if s.profile_note else [])
    snippets += [f"{d.topic}. {d.plain}" for d in s.disagreements]
    snippets += [f"{line.question} {line.answer}" for line in s.situation + s.shaped_by]
    return snippets


def source_snippets(s: Summary, short: bool) -> list[str]:
    """Every work with its year: in full (the HTML and Markdown), or in short (the printed PDF)."""
    if short:
        return [f"{src.short_publisher}: {'; '.join(f'{t} ({y})' for t, y in src.short_works)}." for src in s.sources]
    return [f"{src.publisher}: {'; '.join(f'{t} ({y})' for t, y in src.works)}." for src in s.sources]


@pytest.mark.parametrize("example", [p.stem for p in EXAMPLES])
def test_html_pdf_and_markdown_say_the_same_things(rendered: dict[str, Rendered], example: str) -> None:
    r = rendered[example]
    formats = {
        "html": squash(html.unescape(html_text(r.html))),
        "md": squash(html.unescape(html_text(MarkdownIt("commonmark").enable("table").render(r.md)))),
        "pdf a4": squash(r.pdf_body("a4")),
        "pdf letter": squash(r.pdf_body("letter")),
    }
    for name, text in formats.items():
        printed = name.startswith("pdf")
        for snippet in expected_snippets(r.summary, printed) + source_snippets(r.summary, short=printed):
            assert squash(snippet) in text, f"{example}: {name} lacks {snippet!r}"
        said = {c.said_above for _, group in r.summary.caution_groups for c in group if c.said_above}
        for sentence in said:  # a closing sentence several cautions share: once on paper, under each on screen
            count = text.count(squash(sentence))
            assert count == 1 if printed else count > 1, f"{example}: {name} has {sentence!r} {count} times"
        if printed and r.summary.questions_cut:
            assert squash(r.summary.printed_questions_note) in text
            cut = [q for o in r.summary.detailed for q in o.questions[r.summary.printed_questions :]]
            assert cut and not [q for q in cut if squash(q) in text], f"{example}: later questions stay on screen"


def test_paper_lists_the_sources_in_short_and_the_screen_in_full(rendered: dict[str, Rendered]) -> None:
    """The PDF gives each work as publisher, short title and year (and says so); the HTML on screen gives it whole."""
    r = rendered["failed-back-surgery"]
    body = squash(r.pdf_body("a4"))
    assert squash(r.summary.short_sources_note) in body
    full = [t for src in r.summary.sources for t, _ in src.works if short_title(t) != t]
    assert len(full) > 10 and not [t for t in full if squash(t) in body], "long titles are cut short on paper"
    page = html.unescape(r.html)
    screen, short = page.index('class="sources screen-only"'), page.index('class="sources print-only"')
    assert all(t in page[screen:short] for t in full) and "@media print { .screen-only { display: none; } }" in page
    assert "@media screen { .print-only { display: none; } }" in page


@pytest.mark.parametrize(
    ("publisher", "short"),
    [
        ("National Institute for Health and Care Excellence (NICE)", "NICE"),
        ("Centers for Medicare & Medicaid Services (CMS) - Noridian", "CMS - Noridian"),
        ("Pain (Kumar K, Taylor RS, Jacques L, et al.)", "Pain, Kumar et al."),
        ("Neuromodulation (Deer et al.)", "Neuromodulation, Deer et al."),
        (
            "Clinical Journal of Pain (van Wijk RM, Geurts JW, Wynne HJ, et al.)",
            "Clinical Journal of Pain, van Wijk et al.",
        ),
        ("Journal of Pain Research (American Society of Pain and Neuroscience, ASPN)", "Journal of Pain Research"),
        ("The BMJ (with MAGIC)", "The BMJ"),
    ],
)
def test_a_publisher_in_short_keeps_its_acronym_or_first_author(publisher: str, short: str) -> None:
    assert short_publisher(publisher) == short


@pytest.mark.parametrize(
    ("title", "short"),
    [
        (
            "Chronic pain (primary and secondary) in over 16s: assessment of all chronic pain and management (NG193)",
            "Chronic pain (NG193)",
        ),
        ("Local Coverage Determination L36850: Peripheral Nerve Blocks", "Local Coverage Determination L36850"),
        (
            "Spinal cord stimulation versus conventional medical management for neuropathic pain: a trial",
            "Spinal cord stimulation versus conventional medical\u2026",
        ),
        ("Clinical guideline CG-SURG-79 (implantable infusion pumps)", "Clinical guideline CG-SURG-79"),
    ],
)
def test_a_title_in_short_is_its_main_title_with_its_code_in_at_most_six_words(title: str, short: str) -> None:
    assert short_title(title) == short and len(short.split()) <= SHORT_TITLE_WORDS + 1


def test_every_option_appears_with_its_status_and_conservative_care_is_detailed(
    rendered: dict[str, Rendered], aid: DecisionAid
) -> None:
    for example, r in rendered.items():
        s = r.summary
        assert [o.procedure for o in s.options] == list(aid.knowledge.procedures), example
        assert s.detailed[0].procedure == "conservative_care", example
        assert {o.procedure for o in s.detailed} | {o.procedure for o in s.brief} == set(aid.knowledge.procedures)
        for o in s.detailed:
            assert not o.declined or o.leaning, "a declined option is listed briefly, not discussed in detail"


def test_every_option_has_its_benefits_and_risks_in_equal_detail(
    rendered: dict[str, Rendered], aid: DecisionAid
) -> None:
    """Options in detail list all their benefits and all their risks; the others the same number of each."""
    for example, r in rendered.items():
        for o in r.summary.options:
            proc = aid.knowledge.procedures[o.procedure]
            if o.detailed:
                assert o.benefits == [" ".join(b.text.split()) for b in proc.benefits], (example, o.procedure)
                assert [x.text for x in o.risks] == [" ".join(x.text.split()) for x in proc.risks]
            else:
                main = main_points(proc, BRIEF_ITEMS)
                assert len(o.benefits) == len(o.risks) == BRIEF_ITEMS
                assert o.benefits == [first_sentence(" ".join(b.text.split())) for b in main.benefits], example
                assert [x.text for x in o.risks] == [first_sentence(" ".join(x.text.split())) for x in main.risks]
            assert (o.benefit_count, o.risk_count) == (len(proc.benefits), len(proc.risks))


def test_a_short_list_never_leaves_out_a_serious_risk(aid: DecisionAid) -> None:
    serious = [p for p in aid.knowledge.procedures.values() if any(r.serious for r in p.risks)]
    assert len(serious) >= 4, "the knowledge base marks the grave harms"
    for proc in aid.knowledge.procedures.values():
        for count in (1, MAIN_ITEMS, 3):
            main = main_points(proc, count)
            assert len(main.benefits) == len(main.risks) == min(count, len(proc.benefits), len(proc.risks))
            assert main.benefits == proc.benefits[: len(main.benefits)], "benefits: the first ones listed"
            assert main.risks[:-1] == proc.risks[: len(main.risks) - 1], "risks: the first ones listed..."
            if any(r.serious for r in proc.risks):
                assert any(r.serious for r in main.risks), f"...and a serious one ({proc.id}, {count})"
            else:
                assert main.risks == proc.risks[: len(main.risks)], proc.id
    with pytest.raises(ValueError, match="at least 1"):
        main_points(serious[0], 0)


def test_the_interview_grid_shows_the_same_short_lists(aid: DecisionAid) -> None:
    from engine.presentation.grid import ROWS, grid_cells

    for pid, proc in aid.knowledge.procedures.items():
        cells = dict(zip(ROWS, grid_cells(aid, pid), strict=True))
        main = main_points(proc)
        assert cells["Main benefits"].splitlines() == [f"+ {b.text}" for b in main.benefits], pid
        assert cells["Main risks"].splitlines() == [f"- {r.text} ({r.frequency})" for r in main.risks], pid


def test_the_pdf_names_every_option_with_its_main_risks_for_examples_and_golden_cases(
    rendered: dict[str, Rendered], golden_pdfs: dict[str, tuple[Summary, str]]
) -> None:
    """The printed page itself (PDF text) carries each option, its status, and its risks."""
    printed = {name: (r.summary, r.pdf_body("letter")) for name, r in rendered.items()} | golden_pdfs
    for name, (s, text) in printed.items():
        body = squash(text)
        for o in s.options:
            assert squash(o.name) in body, f"{name}: {o.name} missing"
            assert o.detailed or len(o.risks) == len(o.benefits), f"{name}: {o.name} benefits and risks differ"
            for risk in o.risks:
                assert squash(risk_line(s, risk)) in body, f"{name}: {o.name} risk missing: {risk.text[:40]}"
            for benefit in o.benefits:
                assert squash(benefit) in body, f"{name}: {o.name} benefit missing: {benefit[:40]}"
        for label in {o.status_label for o in s.detailed} | {g.status_label for g in s.brief_groups}:
            assert squash(label) in body, f"{name}: status {label!r} missing"
    statuses = {o.status for s, _ in printed.values() for o in s.options}
    assert statuses == {"candidate", "after_prerequisite", "not_indicated", "deferred"}, "every status is printed"
    assert any(o.declined and not o.detailed for s, _ in printed.values() for o in s.options)


def test_a_reason_for_an_open_status_is_set_apart_when_the_option_is_closed(
    golden_pdfs: dict[str, tuple[Summary, str]],
) -> None:
    s, text = golden_pdfs["ESI-07_repeat_not_indicated_after_49_percent"]
    esi = next(o for o in s.options if o.procedure == "epidural_steroid_injection")
    assert esi.status == "not_indicated" and esi.reasons and esi.outweighed
    body = squash(text)
    deciding, outweighed = squash(esi.reasons[0].text), squash(s.outweighed_label + esi.outweighed[0].text)
    assert body.index(deciding) < body.index(outweighed), "the reason that sets the status comes first"


def test_options_open_to_discuss_are_detailed_and_the_rest_are_listed_with_reasons(
    rendered: dict[str, Rendered],
) -> None:
    r = rendered["crps-declines-implants"]
    detailed = {o.procedure for o in r.summary.detailed}
    assert detailed == {o.procedure for o in r.summary.options if o.open and not o.declined}
    declined = [o for o in r.summary.brief if o.declined]
    assert declined, "this example declines implants"
    assert [note.names for note in r.summary.declined_notes] == [[o.short_name for o in declined]], "said once"
    md, body = squash(r.md), squash(r.pdf_body("a4"))
    for text in (md, body):
        for o in declined:
            assert squash(f"{o.name}. Declined by you.") in text
        for o in r.summary.brief:
            assert all(squash(reason.text) in text for reason in o.reasons)


def test_each_work_is_listed_once_in_the_sources(rendered: dict[str, Rendered], aid: DecisionAid) -> None:
    """One publication under two source ids (the same address, or the same title and year) is one entry."""

    def key(title: str, year: int) -> tuple[str, int]:
        return " ".join(re.findall(r"\w+", title.lower())), year

    url = {key(src.title, src.year): src.url for src in aid.knowledge.sources.values()}
    for example, r in rendered.items():
        works = [key(title, year) for src in r.summary.sources for title, year in src.works]
        addresses = [url[w] for w in works if url[w]]
        assert len(works) == len(set(works)) and len(addresses) == len(set(addresses)), f"{example}: listed twice"
        for o in r.summary.options:
            for sid in aid.knowledge.procedures[o.procedure].sources:
                source = aid.knowledge.sources[sid]
                listed = key(source.title, source.year) in works or bool(source.url and source.url in addresses)
                assert listed is source.for_patients, (
                    f"{example}: {o.name} cites {sid} ({source.kind}); listed: {listed}"
                )


def test_news_ai_summaries_and_internal_material_are_never_cited_to_patients(
    rendered: dict[str, Rendered], aid: DecisionAid
) -> None:
    hidden = {(s.title, s.year) for s in aid.knowledge.sources.values() if not s.for_patients}
    assert any(s.kind == "internal" for s in aid.knowledge.sources.values()), "the seed article is registered"
    for example, r in rendered.items():
        listed = {work for src in r.summary.sources for work in src.works}
        assert not listed & hidden, f"{example}: cites {sorted(listed & hidden)}"


def test_a_dispute_a_printed_caution_already_tells_is_not_repeated(rendered: dict[str, Rendered]) -> None:
    """The blood-thinner dispute's both sides are in every hold caution, and the BMJ dispute's in its caution."""
    for name in ("failed-back-surgery", "facet-back-pain", "cancer-pain", "stenosis-claudication"):
        s = rendered[name].summary
        topics = {d.topic for d in s.disagreements}
        assert any("shared decision" in c.text for c in s.cautions), name
        assert "Whether to stop blood thinners before a procedure" not in topics, name
    sciatica = rendered["sciatica"].summary
    assert any("BMJ" in c.text for c in sciatica.cautions)
    assert not [d for d in sciatica.disagreements if "at all" in d.topic]
    # a patient without cancer pain never sees the cancer-pain pump dispute
    assert not [d for d in rendered["failed-back-surgery"].summary.disagreements if "cancer" in d.topic]


def test_a_dispute_shows_only_where_the_answers_let_it_bear_on_the_patient(rendered: dict[str, Rendered]) -> None:
    """Issue 12 section 3: a sciatica patient without claudication does not see the claudication dispute, a
    patient with it does; a patient past every profile's wait for an epidural does not see the dispute on it.
    What the summary leaves out, no format shows (each format shows the rest: test_html_pdf_and_markdown_...)."""
    claudication = "Epidural steroid injection for neurogenic claudication from central canal stenosis"
    wait = "How long to try other care before an epidural steroid injection, and how many a year"
    for name, shown in (("sciatica", False), ("failed-back-surgery", False), ("stenosis-claudication", True)):
        r = rendered[name]
        topics = {d.topic for d in r.summary.disagreements}
        assert (claudication in topics) == shown, f"{name}: {sorted(topics)}"
        for text in (r.md, r.html):
            assert (claudication in html.unescape(text)) == shown, name
    assert "epidural_steroid_injection" in {o.procedure for o in rendered["sciatica"].summary.detailed}
    for name in ("sciatica", "failed-back-surgery"):
        assert wait not in {d.topic for d in rendered[name].summary.disagreements}, name


def test_answers_are_listed_by_short_labels_without_those_a_follow_up_implies(rendered: dict[str, Rendered]) -> None:
    s = rendered["failed-back-surgery"].summary
    shown = {line.question: line.answer for line in s.situation + s.shaped_by}
    assert shown["Physical therapy and exercise, weeks in all:"] == "20 weeks"
    assert "Physical therapy and exercise tried:" not in shown, "20 weeks of it says it was tried"
    assert "Had this pain for:" in shown and "3 months or more (I will give the months)" not in shown.values()
    assert shown["Talking therapy (such as CBT) tried:"] == "yes", "an answer with no follow-up shown stays"
    assert all(len(q) <= 60 for q in shown), [q for q in shown if len(q) > 60]


def test_status_under_other_guidance_is_noted_beside_the_option(rendered: dict[str, Rendered]) -> None:
    s = rendered["facet-back-pain"].summary
    noted = [o for o in s.options if o.other_profiles]
    assert noted, "this example has profile differences"
    assert f"give {len(noted)} options another status" in s.profile_note
    assert not any(o.other_profiles for o in rendered["sciatica"].summary.options)


@pytest.mark.parametrize("paper", list(PAGE_POINTS))
def test_page_size_page_numbers_and_patient_label_on_every_page(rendered: dict[str, Rendered], paper: str) -> None:
    r = rendered["sciatica"]
    reader = pypdf.PdfReader(io.BytesIO(r.pdf[paper]))
    width, height = PAGE_POINTS[paper]
    total = len(reader.pages)
    for number, page in enumerate(reader.pages, 1):
        assert abs(float(page.mediabox.width) - width) < 1 and abs(float(page.mediabox.height) - height) < 1
        text = page.extract_text()
        assert f"Page {number} of {total}" in text
        assert f"For: {r.summary.patient_label}" in text
        assert "A discussion aid, not a prescription" in text


@pytest.mark.parametrize("paper", list(PAGE_POINTS))
def test_page_counts_stay_within_bounds(
    rendered: dict[str, Rendered], golden_prints: dict[str, dict[str, tuple[Summary, bytes]]], paper: str
) -> None:
    """Every example and printed golden case prints on 4 pages on A4 and on Letter (18 mm shorter a page),
    current care and three more options in detail included (issue 14)."""
    printed = {
        name: (len(pypdf.PdfReader(io.BytesIO(r.pdf[paper])).pages), len(r.summary.detailed))
        for name, r in rendered.items()
    } | {
        name: (len(pypdf.PdfReader(io.BytesIO(pdf)).pages), len(summary.detailed))
        for name, (summary, pdf) in golden_prints[paper].items()
    }
    for name, (count, detailed) in printed.items():
        assert count <= 4, f"{name} on {paper}: {count} pages ({detailed} options in detail)"
    for name in TYPICAL:
        assert len(rendered[name].summary.detailed) <= 3, f"{name} is no longer a typical case"
    assert max(len(r.summary.detailed) for r in rendered.values()) > 3, "one example has four options in detail"
    column = list(PAGE_POINTS).index(paper)
    stated = {
        m[1]: (int(m[3 + column]), int(m[2]))
        for m in re.finditer(r"^\| ([a-z-]+) \| (\d) \| (\d) \| (\d) \|$", (ROOT / "README.md").read_text(), re.M)
    }
    assert stated == {name: printed[name] for name in rendered}, "the README's table states each example's pages"


TIMES_X_HEIGHT = 0.448
"""Times New Roman's x-height in em: the face behind the 12pt that plain-language print guides ask for."""


def test_text_reads_at_least_as_large_as_12pt_times_and_cells_wrap() -> None:
    """No size below 10pt, and the face's x-height at the smallest size is at least that of 12pt Times."""
    from fontTools.pens.boundsPen import BoundsPen  # type: ignore[import-untyped]
    from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

    css = (ROOT / "engine/presentation/templates/summary/print.css").read_text()
    sizes = [float(v) for v in re.findall(r"font(?:-size)?:\s*([\d.]+)pt", css)]
    assert sizes and min(sizes) >= 10, sizes
    assert not re.search(r"font(?:-size)?:\s*[\d.]+(px|em|rem|%)", css), "sizes are given in pt only"
    assert "table-layout: fixed" in css and "overflow-wrap: break-word" in css
    family = re.search(r'html \{ font: [\d.]+pt/[\d.]+ "([^"]+)"', css)
    assert family, "the page names its face first"
    path = subprocess.run(["fc-match", "-f", "%{file}", family.group(1)], capture_output=True, text=True, check=True)
    font = TTFont(path.stdout)
    assert family.group(1) in font["name"].getDebugName(4), f"{family.group(1)} is installed, not a stand-in"
    pen = BoundsPen(font.getGlyphSet())
    font.getGlyphSet()[font.getBestCmap()[ord("x")]].draw(pen)
    x_height = pen.bounds[3] / font["head"].unitsPerEm
    assert min(sizes) * x_height >= 12 * TIMES_X_HEIGHT, (family.group(1), x_height)


HEADINGS = ("h1", "h2", "h3", "h4")


def test_nothing_splits_badly_across_pages(aid: DecisionAid) -> None:
    """Each row of the grid, the values table and the answers stays whole on one page (a repeated header aside);
    no heading is the last thing on a page; no word in a table cell is broken with a hyphen."""
    import weasyprint

    for name in ("failed-back-surgery", "cancer-pain", "sciatica"):
        answers, session = read_input(aid, ROOT / f"examples/{name}.yaml")
        for paper in PAGE_POINTS:
            page_html = render_summary(build_summary(aid, answers, session=session, paper=paper), "html")
            assert isinstance(page_html, str)
            pages_of: dict[int, set[int]] = {}
            for number, page in enumerate(weasyprint.HTML(string=page_html).render().pages):
                stack: list[tuple[Any, str, bool]] = [(page._page_box, "", False)]
                last: tuple[float, str] = (0.0, "")  # the lowest line of body text on the page, and its block
                while stack:
                    box, block, in_cell = stack.pop()
                    kind = type(box).__name__
                    children = getattr(box, "children", None) or []
                    if kind == "MarginBox" or (kind == "TableRowGroupBox" and box.element.tag == "thead"):
                        continue  # running header and footer; a header row repeats on each page, by design
                    if kind == "TableRowBox":
                        pages_of.setdefault(id(box.element), set()).add(number)
                    tag = getattr(getattr(box, "element", None), "tag", "")
                    block = tag if kind in ("BlockBox", "TableCellBox") else block
                    in_cell = in_cell or kind == "TableCellBox"
                    if kind == "TextBox" and box.text.strip():
                        last = max(last, (box.position_y, block))
                        assert not (in_cell and re.search(r"\w[\u00ad\u2010-]$", box.text)), (
                            f"{name} on {paper}: a word in a cell is hyphenated: {box.text!r}"
                        )
                    stack.extend((child, block, in_cell) for child in children)
                assert last[1] not in HEADINGS, f"{name} on {paper}: page {number + 1} ends with a heading"
            split = [pages for pages in pages_of.values() if len(pages) > 1]
            rows = page_html.count("<tr") - page_html.count("<thead>")  # a header row repeats, by design
            assert len(pages_of) == rows >= 8, f"{name} on {paper}: {len(pages_of)} of {rows} rows laid out"  # grid: 6
            assert not split, f"{name} on {paper}: rows split across pages {split}"


def test_no_table_cell_is_clipped_even_with_long_unbroken_text(aid: DecisionAid) -> None:
    import weasyprint

    data = yaml.safe_load((ROOT / "examples/stenosis-claudication.yaml").read_text())
    data["patient_label"] = "X" * 80
    data["concerns"] = "Y" * 300
    answers = aid.parse_answers(data)
    for paper in PAGE_POINTS:
        page_html = render_summary(build_summary(aid, answers, paper=paper, clinician="Z" * 60), "html")
        document = weasyprint.HTML(string=page_html).render()
        checked = 0
        for page in document.pages:
            stack: list[tuple[Any, Any]] = [(page._page_box, None)]
            while stack:
                box, cell = stack.pop()
                kind = type(box).__name__
                if kind == "TableCellBox":
                    cell = box
                if cell is not None and kind == "TextBox":
                    checked += 1
                    right = cell.content_box_x() + cell.width + 0.5
                    assert box.position_x + box.width <= right, f"text overflows a table cell: {box.text[:40]!r}"
                stack.extend((child, cell) for child in getattr(box, "children", []) or [])
        assert checked > 20, "the walk found the table cells"


def test_text_a_user_typed_is_escaped_everywhere(aid: DecisionAid, tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "examples/sciatica.yaml").read_text())
    data["concerns"] = f"Worried {SCRIPT} about work"
    data["patient_label"] = f"AB {SCRIPT}"
    answers = aid.parse_answers(data)
    summary = build_summary(aid, answers, clinician=f"Dr {SCRIPT}")
    page = render_summary(summary, "html")
    assert isinstance(page, str)
    assert "<script" not in page.lower()
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3
    md = render_summary(summary, "md")
    assert isinstance(md, str) and "<script" not in md.lower() and "&lt;script&gt;" in md
    pdf = render_summary(summary, "pdf")
    assert isinstance(pdf, bytes)
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert squash(SCRIPT) in squash(text), "shown as plain text on paper"


def test_a_saved_session_brings_sure_leaning_clinician_and_notes(aid: DecisionAid, tmp_path: Path) -> None:
    answers = yaml.safe_load((ROOT / "examples/sciatica.yaml").read_text())
    session = Session(
        complete=True,
        profile="uk-nice",
        answers=answers,
        leaning="epidural_steroid_injection",
        sure=SureResult(sure=True, understand=False, values=True, support=True),
        clinician="Dr Rivera",
        notes="Call back in two weeks.",
        decision="Thinking it over",
    )
    path = tmp_path / "session.json"
    path.write_text(json.dumps(session.model_dump(mode="json")))
    write_summary(aid, path, "md", tmp_path / "without.md")
    assert "Call back in two weeks." not in (tmp_path / "without.md").read_text(), "notes only when chosen"
    out = tmp_path / "summary.md"
    write_summary(aid, path, "md", out, include_notes=True)
    md = out.read_text()
    assert "Dr Rivera" in md and "Call back in two weeks." in md and "Thinking it over" in md
    assert "Score: 3 out of 4." in md and "not feel ready to decide" in md
    assert "You are leaning towards:** Epidural steroid injection" in md
    assert "Avoiding needles and procedures" in md.split("leaning towards")[1], "a poor fit is raised"
    assert "uk-nice" in md, "the session's profile is used"
    assert session.updated.date().isoformat() in md


def test_no_sure_section_without_a_session(rendered: dict[str, Rendered]) -> None:
    r = rendered["sciatica"]
    assert r.summary.sure is None and "SURE" not in r.md and "SURE" not in html_text(r.html)


def test_cli_writes_each_format_and_never_overwrites_without_force(tmp_path: Path) -> None:
    example = str(ROOT / "examples/sciatica.yaml")
    for fmt, magic in (("pdf", b"%PDF"), ("html", b"<!DOCTYPE html>"), ("md", b"# Your pain")):
        out = tmp_path / f"summary.{fmt}"
        done = run_cli("summary", example, "--format", fmt, "-o", str(out), "--paper", "letter")
        assert done.returncode == 0, done.stderr
        assert out.read_bytes().startswith(magic)
    out = tmp_path / "summary.md"
    out.write_text("keep me")
    done = run_cli("summary", example, "--format", "md", "-o", str(out), "--clinician", "Dr Lee")
    assert done.returncode == 1 and "already exists" in done.stderr and "--force" in done.stderr
    assert out.read_text() == "keep me"
    done = run_cli("summary", example, "--format", "md", "-o", str(out), "--clinician", "Dr Lee", "--force")
    assert done.returncode == 0, done.stderr
    assert "Dr Lee" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.html", "summary.md", "summary.pdf"], "no temp files"


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pain_intensity: eleven\n")
    out = tmp_path / "summary.pdf"
    done = run_cli("summary", str(bad), "-o", str(out))
    assert done.returncode == 2 and "pain_intensity" in done.stderr
    done = run_cli("summary", str(ROOT / "examples/sciatica.yaml"), "-o", str(out), "--profile", "nowhere")
    assert done.returncode == 2 and "unknown profile" in done.stderr
    done = run_cli("summary", str(ROOT / "examples/sciatica.yaml"), "-o", str(out), "--paper", "a3")
    assert done.returncode == 2
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_engine_rejects_unknown_format_or_paper_before_writing(aid: DecisionAid, tmp_path: Path) -> None:
    out = tmp_path / "x.doc"
    with pytest.raises(UsageError, match="unknown summary format"):
        write_summary(aid, ROOT / "examples/sciatica.yaml", "doc", out)
    with pytest.raises(UsageError, match="unknown paper size"):
        write_summary(aid, ROOT / "examples/sciatica.yaml", "md", out, paper="a3")
    out.write_text("old")
    with pytest.raises(OutputError, match="already exists"):
        write_summary(aid, ROOT / "examples/sciatica.yaml", "md", out)
    assert out.read_text() == "old" and list(tmp_path.iterdir()) == [out]


def test_templates_ship_in_the_wheel_and_render_from_an_install(wheel: Path, installed: Path, tmp_path: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("summary.html", "print.css", "summary.md.j2"):
        assert f"engine/presentation/templates/summary/{name}" in names
    out = tmp_path / "s.html"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import engine.presentation.summary as s;"
        "assert s.__file__.startswith(sys.argv[1]), s.__file__;"
        "from engine.evaluation.aid import DecisionAid; from pathlib import Path;"
        "s.write_summary(DecisionAid.load(), Path(sys.argv[2]), 'html', Path(sys.argv[3]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(installed), str(ROOT / "examples/sciatica.yaml"), str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Your options at a glance" in out.read_text()
