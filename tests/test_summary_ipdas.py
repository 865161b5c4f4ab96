"""The take-home summary as a patient decision aid: numbers with their sources, icon arrays, the
Option Grid first, disclosures, the Ottawa guide, formats and the IPDAS checklist.

Every example is rendered once per format (module fixture); PDFs once on A4 and Letter.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pypdf
import pytest
import yaml
from conftest import EXAMPLES, ROOT, run_cli
from markdown_it import MarkdownIt
from markdown_it.token import Token
from test_golden import CASES
from test_readability import grade  # noqa: F401  (the offline textstat fixture)
from test_summary import Rendered
from test_web_browser import AXE, DESKTOP, PHONE, SHOTS, browser  # noqa: F401  (the browser fixture)

from engine.errors import KnowledgeError
from engine.evaluation.aid import DecisionAid
from engine.interview.session import OttawaGuide, Session, SureResult
from engine.model.knowledge import FIGURE_SOURCE_KINDS, FREQUENCY_BANDS, Risk, frequency_word, load_knowledge
from engine.presentation.readability import reading_grade
from engine.presentation.report import STATUS_LABELS
from engine.presentation.summary import (
    DENOMINATOR,
    GRID_QUESTIONS,
    OPTION_GRID_COLUMNS,
    build_summary,
    first_sentence,
    patient_text,
    read_input,
    render_summary,
    shown_figures,
)

TODAY = dt.date(2025, 1, 31)
PAPERS = ("a4", "letter")


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def printed(printed_examples: dict[str, Rendered]) -> dict[str, Rendered]:
    """The examples' summaries, rendered once per test process for this file and tests/test_summary.py."""
    return printed_examples


# ---------------------------------------------------------------- figures in the knowledge base


def test_every_figure_cites_a_trial_review_or_guideline_with_population_and_time_frame(aid: DecisionAid) -> None:
    figures = [
        (p.id, i, f) for p in aid.knowledge.procedures.values() for i in [*p.benefits, *p.risks] for f in i.figures
    ]
    assert len(figures) >= 6, "the knowledge base gives figures from primary sources"
    for pid, item, figure in figures:
        source = aid.knowledge.sources[figure.source]
        assert source.kind in FIGURE_SOURCE_KINDS, f"{pid} {item.id}: {figure.source} is a {source.kind}"
        assert source.url.startswith("https://"), f"{figure.source}: a reviewer can look it up"
        assert figure.population and figure.time_frame and figure.reported, (pid, item.id)
        assert figure.conditions, (pid, item.id)
        assert figure.source in aid.knowledge.procedures[pid].sources, f"{pid} lists {figure.source}"
        rate = re.findall(r"(\d+(?:\.\d+)?)%", figure.reported) + re.findall(
            r"success (\d+(?:\.\d+)?)", figure.reported
        )
        assert f"{figure.per_100:g}" in rate, f"{pid} {item.id}: {figure.per_100} is the source's own rate {rate}"
        if isinstance(item, Risk):
            assert frequency_word(figure.per_100) == item.frequency, (pid, item.id)


def test_frequency_bands_cover_0_to_100_once() -> None:
    assert frequency_word(0) == "rare" and frequency_word(0.99) == "rare"
    assert frequency_word(1) == "uncommon" and frequency_word(10) == "uncommon"
    assert frequency_word(10.1) == "common" and frequency_word(100) == "common"
    assert set(FREQUENCY_BANDS) == {"common", "uncommon", "rare"}


@pytest.fixture()
def knowledge_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "knowledge", tmp_path / "knowledge")
    return tmp_path / "knowledge"


def test_a_figure_from_a_coverage_policy_or_out_of_its_band_is_refused(knowledge_copy: Path) -> None:
    path = knowledge_copy / "procedures" / "spinal_cord_stimulation.yaml"
    text = path.read_text()
    path.write_text(text.replace("source: kumar-2007-process", "source: cms-ncd-160-7", 1))
    with pytest.raises(
        KnowledgeError, match="coverage_policy; a figure needs a source of kind trial, review, guideline"
    ):
        load_knowledge(knowledge_copy)
    path.write_text(text.replace("      - per_100: 31\n", "      - per_100: 4\n"))
    with pytest.raises(KnowledgeError, match="4 in 100 is uncommon, but the risk says common"):
        load_knowledge(knowledge_copy)
    path.write_text(text.replace("conditions: [failed_back_surgery_syndrome]", "conditions: [gout]", 1))
    with pytest.raises(KnowledgeError, match="unknown condition `gout`"):
        load_knowledge(knowledge_copy)


def test_the_cli_names_the_file_and_entry_of_a_bad_figure(knowledge_copy: Path) -> None:
    path = knowledge_copy / "procedures" / "intrathecal_pump.yaml"
    path.write_text(path.read_text().replace("time_frame: at 4 weeks", "time_frame: soon"))
    done = run_cli("summary", str(ROOT / "examples/cancer-pain.yaml"), "-o", "x.md", "--knowledge", str(knowledge_copy))
    assert done.returncode == 2
    assert "intrathecal_pump.yaml" in done.stderr and "time_frame" in done.stderr


# ---------------------------------------------------------------- figures on the page


def test_every_figure_shown_is_per_100_with_its_time_frame_population_and_study(printed: dict[str, Rendered]) -> None:
    shown_anywhere = 0
    for name, p in printed.items():
        s = p.summary
        figures = shown_figures(s.options, s.option_grid)
        body = flat(p.html)
        for f in figures:
            shown_anywhere += 1
            sentence = f"{f.count} in {DENOMINATOR} {f.outcome}, {f.time_frame}."
            assert f.sentence == sentence
            assert sentence in body and sentence in flat(p.md), f"{name}: {sentence}"
            assert f"({f.source_label})" in body and f.studied in body, f"{name}: {f.source} named"
        for sentence in re.findall(r"\b\d+ in \d+\b", re.sub(r"<[^>]+>", " ", p.html)):
            assert sentence.endswith(f" in {DENOMINATOR}"), f"{name}: one denominator throughout ({sentence})"
    assert shown_anywhere >= 10


def test_figures_shown_fit_the_patients_conditions(printed: dict[str, Rendered], aid: DecisionAid) -> None:
    for name, p in printed.items():
        answers = yaml.safe_load((ROOT / f"examples/{name}.yaml").read_text())
        answers = answers.get("answers", answers)
        conditions = set(answers.get("conditions") or [])
        for f in shown_figures(p.summary.options, p.summary.option_grid):
            figure = next(
                x
                for proc in aid.knowledge.procedures.values()
                for i in [*proc.benefits, *proc.risks]
                for x in i.figures
                if x.source == f.source and x.outcome == f.outcome
            )
            assert conditions & set(figure.conditions), f"{name}: {f.outcome} was studied in others"


def test_icon_arrays_draw_100_people_with_the_affected_ones_filled(printed: dict[str, Rendered]) -> None:
    drawn = 0
    for name, p in printed.items():
        arrays = re.findall(r'<svg[^>]*role="img" aria-label="([^"]+)">(.*?)</svg>', p.html, flags=re.S)
        expected = [
            f
            for o in p.summary.detailed
            for f in (
                [o.key_benefit, o.key_benefit.comparison]
                if o.key_benefit and o.key_benefit.compared_count is not None
                else [o.key_benefit]
            )
            + [o.key_harm]
            if f is not None
        ]
        assert len(arrays) == len(expected), name
        for (label, body), f in zip(arrays, expected, strict=True):
            # one path of circles per group: the affected people filled black, the others open and grey
            groups = re.findall(r'<path fill="(#\w+)" stroke="(#\w+)" stroke-width="0.9" d="([^"]*)"/>', body)
            people = {(fill, stroke): len(re.findall(r"M[^M]+z", d)) for fill, stroke, d in groups}
            assert len(groups) == len(people) and set(people) <= {("#111", "#111"), ("#fff", "#555")}, (name, groups)
            assert sum(people.values()) == 100 and label.startswith(f"{f.count} of 100"), (name, label)
            filled = people.get(("#111", "#111"), 0)
            assert filled == f.count, f"{name}: {label}: {filled} filled"
            # each circle starts at its right, 3.9 from its centre: one in each cell of the 10 x 10 grid
            starts = re.findall(r"M([\d.]+) (\d+)c", "".join(d for _, _, d in groups))
            centres = sorted((round(float(x) - 3.9), int(y)) for x, y in starts)
            assert centres == sorted((10 * (i % 10) + 5, 10 * (i // 10) + 5) for i in range(100)), name
            assert f"{f.filled} " in p.md, f"{name}: the Markdown says {f.filled!r}"
            drawn += 1
    assert drawn >= 6


# ---------------------------------------------------------------- page 1: the Option Grid


def test_page_1_is_the_option_grid_with_patients_questions_as_rows(printed: dict[str, Rendered]) -> None:
    for name, p in printed.items():
        grid = p.summary.option_grid
        assert grid.columns[0].procedure == "conservative_care"
        assert 1 <= len(grid.columns) <= OPTION_GRID_COLUMNS
        assert [r.question for r in grid.rows] == list(GRID_QUESTIONS)
        assert {o.procedure for o in grid.columns} | {o.procedure for o in grid.others} == {
            o.procedure for o in p.summary.options
        }
        for paper in PAPERS:
            first = flat(p.pdf_pages(paper)[0])
            assert "Your options at a glance" in first
            for question in GRID_QUESTIONS:
                assert question in first, f"{name} {paper}: page 1 lacks the row {question!r}"
            for o in grid.columns:
                assert o.short_name in first
            for o in grid.others:
                assert f"{o.name}: {o.status_label.lower()}" in first, f"{name}: {o.name} named with its status"


def test_each_grid_cell_says_two_sentences_at_most_and_keeps_a_serious_risk(aid: DecisionAid) -> None:
    """A figure counts as a sentence; the risks row still names a grave harm where the option has one."""
    patients = [read_input(aid, path)[0] for path in EXAMPLES]
    patients += [aid.parse_answers(case.answers, case.id) for case in CASES]
    for answers in patients:
        s = build_summary(aid, answers, today=TODAY)
        for row in s.option_grid.rows:
            for option, cell in zip(s.option_grid.columns, row.cells, strict=True):
                sentences = re.findall(r"[^.!?]+[.!?](?=\s|$)", cell)
                assert 1 <= len(sentences) <= 2, f"{option.name}, {row.question!r}: {cell!r}"
        risks = s.option_grid.rows[GRID_QUESTIONS.index("What are the risks?")]
        for option, cell in zip(s.option_grid.columns, risks.cells, strict=True):
            serious = [first_sentence(r.text) for r in aid.knowledge.procedures[option.procedure].risks if r.serious]
            assert not serious or any(text in cell for text in serious), f"{option.name}: {cell!r}"


def test_page_1_counts_statuses_the_way_its_table_shows_them(printed: dict[str, Rendered]) -> None:
    for name, p in printed.items():
        s = p.summary
        for status, label in STATUS_LABELS.items():
            count = sum(o.status == status for o in s.options)
            if count:
                assert f"{label}: {count}." in s.decision, f"{name}: {label} counted"
            else:
                assert label not in s.decision


def test_grid_only_prints_the_grid_page_alone(tmp_path: Path) -> None:
    for suffix in ("pdf", "md", "html"):
        out = tmp_path / f"grid.{suffix}"
        done = run_cli("summary", str(ROOT / "examples/failed-back-surgery.yaml"), "-o", str(out), "--grid-only")
        assert done.returncode == 0, done.stderr
        if suffix == "pdf":
            pages = pypdf.PdfReader(out).pages
            assert len(pages) == 1 and "Your options at a glance" in pages[0].extract_text()
        else:
            text = out.read_text()
            assert "Your options at a glance" in text and "About this aid" not in text and "Your situation" not in text


# ---------------------------------------------------------------- formats


def test_the_format_follows_the_file_suffix_and_a_contradiction_is_refused(tmp_path: Path) -> None:
    example = str(ROOT / "examples/sciatica.yaml")
    for suffix, magic in (("pdf", b"%PDF"), ("html", b"<!DOCTYPE html>"), ("md", b"# Your pain")):
        out = tmp_path / f"s.{suffix}"
        done = run_cli("summary", example, "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert out.read_bytes().startswith(magic), suffix
    out = tmp_path / "x.html"
    done = run_cli("summary", example, "-o", str(out), "--format", "pdf")
    assert done.returncode == 2 and "does not match the file name" in done.stderr and not out.exists()
    out = tmp_path / "summary.txt"
    done = run_cli("summary", example, "-o", str(out), "--format", "md")
    assert done.returncode == 0 and out.read_text().startswith("# Your pain")


def test_the_pdf_is_tagged_with_language_and_title(printed: dict[str, Rendered]) -> None:
    reader = pypdf.PdfReader(io.BytesIO(printed["sciatica"].pdf["a4"]))
    root: Any = reader.trailer["/Root"]
    assert root["/MarkInfo"]["/Marked"] is True or root["/MarkInfo"]["/Marked"] == True  # noqa: E712
    assert "/StructTreeRoot" in root and str(root["/Lang"]).startswith("en")
    assert reader.metadata is not None
    assert reader.metadata.title == "Your pain treatment options: a summary to discuss"
    assert b"pdfuaid" in reader.xmp_metadata.stream.get_data() if reader.xmp_metadata else False


def shown(inline: Token) -> str:
    """An inline token's text as a reader sees it (escapes and entities resolved, marks dropped)."""
    return "".join(child.content for child in inline.children or [] if child.type in ("text", "code_inline"))


def test_markdown_lists_have_each_item_as_its_own_item(printed: dict[str, Rendered]) -> None:
    """Rendered with markdown-it: each caution, answer and risk is its own list item, none run together."""
    md = MarkdownIt("commonmark").enable("table")
    for name, p in printed.items():
        tokens = md.parse(p.md)
        items = [flat(shown(tokens[i + 2])) for i, t in enumerate(tokens) if t.type == "list_item_open"]
        for caution in p.summary.cautions:
            assert any(item.startswith(flat(caution.text)) for item in items), f"{name}: {caution.text[:50]}"
        for o in p.summary.detailed:
            for risk in o.risks:
                assert any(flat(risk.text) in item and item.count(":") <= 3 for item in items), (name, risk.text)
        tables = sum(t.type == "table_open" for t in tokens)
        assert tables >= 1, f"{name}: the Option Grid is a Markdown table"


# ---------------------------------------------------------------- About this aid, the Ottawa guide


def test_about_this_aid_gives_dates_people_funding_conflicts_method_and_grade(
    printed: dict[str, Rendered], aid: DecisionAid
) -> None:
    latest = max(r.last_reviewed for r in aid.rulebook.rules)
    for name, p in printed.items():
        about = p.summary.about
        assert about.content_date == latest.isoformat()
        assert about.next_review == (latest + dt.timedelta(days=aid.knowledge.about.review_interval_days)).isoformat()
        body = flat(p.pdf_pages("letter")[-1] + " " + p.pdf_pages("letter")[-2])
        for text in (about.content_date, about.next_review, "Written by:", "Reviewed by:", "Funding:", "Conflicts"):
            assert text in body, f"{name}: About lacks {text}"
        assert aid.knowledge.about.authors[0].name in flat(p.html)
        assert f"Flesch-Kincaid grade {p.summary.reading_grade:.1f}" in flat(p.html)


def test_the_reading_grade_is_measured_on_this_summary_and_agrees_with_textstat(
    printed: dict[str, Rendered],
    grade: Any,  # noqa: F811  (the fixture imported above)
) -> None:
    for name, p in printed.items():
        text = patient_text(p.summary)
        assert p.summary.reading_grade == reading_grade(text)
        assert abs(reading_grade(text) - float(grade(text))) <= 1.0, name
        assert p.summary.reading_grade <= 8.0, f"{name} reads at grade {p.summary.reading_grade}"


def test_the_ottawa_guide_answers_are_printed_with_the_next_step(aid: DecisionAid, tmp_path: Path) -> None:
    answers = yaml.safe_load((ROOT / "examples/sciatica.yaml").read_text())
    session = Session(
        complete=True,
        answers=answers,
        sure=SureResult(sure=True, understand=False, values=True, support=True),
        ottawa=OttawaGuide(when="weeks", stage="considering", role="shared", pressure="yes", others="My wife"),
    )
    path = tmp_path / "session.json"
    path.write_text(json.dumps(session.model_dump(mode="json")))
    for suffix in ("md", "pdf"):
        out = tmp_path / f"s.{suffix}"
        done = run_cli("summary", str(path), "-o", str(out))
        assert done.returncode == 0, done.stderr
        text = flat(
            " ".join(p.extract_text() for p in pypdf.PdfReader(out).pages) if suffix == "pdf" else out.read_text()
        )
        text = text.replace("*", "")
        for expected in (
            "When does this choice need to be made? Within weeks",
            "I will decide together with my clinician",
            "Do you feel pressure from others to pick one option? Yes",
            "My wife",
            "Still unclear for you: Do you know the benefits and risks of each option?",
            "Your next step: Talk with your clinician about what is still unclear before you decide.",
        ):
            assert expected in text, f"{suffix}: {expected}"


# ---------------------------------------------------------------- the IPDAS checklist


def fitting_figures(aid: DecisionAid, procedure: str, conditions: set[str]) -> int:
    proc = aid.knowledge.procedures[procedure]
    return sum(bool(conditions & set(f.conditions)) for i in [*proc.benefits, *proc.risks] for f in i.figures)


def ipdas_checklist(p: Rendered, aid: DecisionAid) -> dict[str, bool]:
    """IPDAS items this aid claims, each checked on the rendered page (PDF text and HTML)."""
    s = p.summary
    conditions = {
        c
        for line in s.situation[:1]
        for c in aid.knowledge.conditions
        if aid.knowledge.conditions[c].label in line.answer
    }
    pdf = flat(" ".join(p.pdf_pages("a4")))
    figures = shown_figures(s.options, s.option_grid)
    arrays = re.findall(r'<svg[^>]*role="img"', p.html)
    open_with_figures = [o for o in s.detailed if o.key_benefit or o.key_harm]
    return {
        "options and their status": all(o.name.split(" (")[0] in pdf for o in s.options),
        "probabilities with a common denominator and time frame": all(
            f.sentence in flat(p.html) and f" in {DENOMINATOR} " in f.sentence and f.time_frame in f.sentence
            for f in figures
        ),
        "probabilities shown wherever a fitting source gives them": all(
            (o.key_benefit is not None or o.key_harm is not None) == (fitting_figures(aid, o.procedure, conditions) > 0)
            for o in s.detailed
        ),
        "frequency words defined with numbers": s.frequency_key in flat(p.html) and "fewer than 1 in 100" in pdf,
        "natural course (what if I do nothing)": "What happens if I do nothing?" in pdf
        and all(cell.strip() for row in s.option_grid.rows for cell in row.cells),
        "icon arrays for the key benefit and harm": len(arrays) >= len(open_with_figures),
        "content date and next review": f"Content date: {s.about.content_date}" in pdf
        and f"Next review due: {s.about.next_review}" in pdf,
        "update policy": s.about.update_policy[:40] in pdf,
        "authors and reviewers with roles": "Written by:" in pdf and "Reviewed by:" in pdf,
        "funding and conflicts of interest": "Funding:" in pdf and "Conflicts of interest:" in pdf,
        "evidence method": "How we chose the evidence:" in pdf,
        "reading grade stated": re.search(r"Flesch-Kincaid grade \d+\.\d", pdf) is not None,
        "sources with dates": "Sources" in pdf and all(str(y) in pdf for src in s.sources for _, y in src.works),
        "values clarification": "What matters to you" in pdf,
        "no procedure is an option": s.option_grid.columns[0].procedure == "conservative_care",
    }


@pytest.mark.parametrize("example", [p.stem for p in EXAMPLES])
def test_every_example_meets_the_ipdas_checklist(printed: dict[str, Rendered], example: str, aid: DecisionAid) -> None:
    missing = [item for item, met in ipdas_checklist(printed[example], aid).items() if not met]
    assert not missing, f"{example} misses: {missing}"


def test_the_checklist_fails_when_an_item_is_missing(printed: dict[str, Rendered], aid: DecisionAid) -> None:
    p = printed["sciatica"]
    assert all(ipdas_checklist(p, aid).values())
    no_icons = Rendered(p.summary, p.html.replace("<svg", "<div"), p.md, p.pdf)
    assert not ipdas_checklist(no_icons, aid)["icon arrays for the key benefit and harm"]
    later = dataclasses.replace(p.summary.about, content_date="2099-01-01")
    undated = Rendered(dataclasses.replace(p.summary, about=later), p.html, p.md, p.pdf)
    assert not ipdas_checklist(undated, aid)["content date and next review"], "the date is read off the page"


# ---------------------------------------------------------------- the HTML in a real browser


def test_the_html_passes_axe_and_reads_on_a_phone_without_sideways_scrolling(
    printed: dict[str, Rendered],
    browser: Any,  # noqa: F811  (Debian's headless Chromium, from tests/test_web_browser.py)
) -> None:
    for name in ("sciatica", "failed-back-surgery", "crps-declines-implants"):
        for width in (PHONE, DESKTOP):
            page = browser.new_page(viewport=width)
            page.set_content(printed[name].html)
            page.add_script_tag(path=str(AXE))
            found = page.evaluate(
                "async () => (await axe.run(document)).violations.map(v => [v.id, v.impact, v.nodes.length])"
            )
            assert not [v for v in found if v[1] in ("serious", "critical")], f"{name} at {width['width']}: {found}"
            wide = page.evaluate("() => document.documentElement.scrollWidth")
            assert wide <= width["width"], f"{name}: {wide} px wide at {width['width']} px"
            if width is PHONE:
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / f"summary-{name}-390.png"), full_page=False)
            page.close()


def test_no_heading_is_left_alone_at_a_page_foot_and_no_word_is_hyphenated(aid: DecisionAid) -> None:
    """Laid out as a printer would (WeasyPrint): text follows every heading on its page; words break whole."""
    import weasyprint

    css = (ROOT / "engine/presentation/templates/summary/print.css").read_text()
    assert "hyphens: auto" not in css, "no hyphenation anywhere, grid cells included"
    for name in ("sciatica", "cancer-pain", "failed-back-surgery"):
        answers, session = read_input(aid, ROOT / f"examples/{name}.yaml")
        for paper in PAPERS:
            html = render_summary(build_summary(aid, answers, session=session, paper=paper, today=TODAY), "html")
            assert isinstance(html, str)
            for number, page in enumerate(weasyprint.HTML(string=html).render().pages, 1):
                body = page._page_box
                foot = body.content_box_y() + body.height  # the running footer sits below, in the margin
                boxes = list(body.descendants())
                top = body.content_box_y()  # the running header sits above
                texts = [
                    b for b in boxes if type(b).__name__ == "TextBox" and b.text.strip() and top <= b.position_y < foot
                ]
                assert texts, f"{name} {paper} page {number} is empty"
                for box in boxes:
                    element = getattr(box, "element", None)
                    if element is None or element.tag not in ("h2", "h3", "h4") or type(box).__name__ != "BlockBox":
                        continue
                    bottom = box.position_y + box.height
                    below = [t for t in texts if t.position_y >= bottom - 0.5]
                    assert below, f"{name} {paper} page {number}: heading {element.text!r} alone at the foot"
                for text in texts:
                    assert not text.text.endswith(("\u00ad", "\u2010")), f"{name}: hyphenated {text.text!r}"
