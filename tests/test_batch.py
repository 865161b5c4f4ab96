"""`pain-sdm evaluate --batch IN -o OUT`: many patients, one JSON line each, in input order.

The CLI is run as a user runs it (`run_cli`); the results are checked against the library's
own evaluation of the same answers.
"""

from __future__ import annotations

import csv
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, ROOT, run_cli

from bench.patients import generate
from engine.evaluation.aid import DecisionAid
from engine.evaluation.batch import cell_value
from engine.evaluation.result import SUMMARY_SCHEMA, summary
from engine.model.questionnaire import UNKNOWN

SCIATICA = ROOT / "examples" / "sciatica.yaml"


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def csv_cell(value: Any) -> str:
    if value == UNKNOWN:
        return ""
    if isinstance(value, list):
        return ";".join(value) if value else "[]"
    return str(value)


def write_csv(path: Path, records: list[dict[str, Any]], columns: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for record in records:
            writer.writerow([csv_cell(record.get(c, UNKNOWN)) for c in columns])
    return path


@pytest.fixture(scope="module")
def patients(aid: DecisionAid) -> list[dict[str, Any]]:
    return list(generate(aid, 2000, seed=8))


@pytest.mark.slow  # the longest end-to-end walks run with the slow tests (CI runs them every time)
def test_two_workers_write_exactly_what_one_process_writes(
    aid: DecisionAid, patients: list[dict[str, Any]], tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", patients)
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert run_cli("evaluate", "--batch", str(source), "-o", str(one)).returncode == 0
    done = run_cli("evaluate", "--batch", str(source), "-o", str(two), "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert one.read_bytes() == two.read_bytes()
    lines = read_jsonl(one)
    assert [line["line"] for line in lines] == list(range(1, len(patients) + 1))
    for index in range(0, len(patients), 97):  # a sample, checked against the library
        expected = aid.evaluate(aid.parse_answers(patients[index]), compare_profiles=False)
        assert lines[index]["result"] == summary(expected)
    assert f"{len(patients)} records" in done.stderr


def test_the_fast_summary_is_the_summary_of_the_full_result(aid: DecisionAid, patients: list[dict[str, Any]]) -> None:
    profiles = sorted(aid.rulebook.profiles)
    for index, record in enumerate(patients[:300]):
        answers = aid.parse_answers(record)
        profile = profiles[index % len(profiles)]
        assert aid.summarize(answers, profile) == summary(aid.evaluate(answers, profile, compare_profiles=False))


def test_csv_cells_are_read_by_question_type(aid: DecisionAid, patients: list[dict[str, Any]], tmp_path: Path) -> None:
    columns = [q.id for q in aid.questionnaire.questions.values() if q.type != "text"][:-3]  # some left out
    sample = patients[:150]
    source = write_csv(tmp_path / "in.csv", sample, columns)
    out = tmp_path / "out.jsonl"
    done = run_cli("evaluate", "--batch", str(source), "-o", str(out))
    assert done.returncode == 0, done.stderr
    lines = read_jsonl(out)
    assert [line["line"] for line in lines] == list(range(2, len(sample) + 2))  # the header is line 1
    for record, line in zip(sample, lines, strict=True):
        kept = {c: record[c] for c in columns}
        expected = aid.evaluate(aid.parse_answers(kept), compare_profiles=False)
        assert line["result"] == summary(expected)


def test_cell_values(aid: DecisionAid) -> None:
    questions = aid.questionnaire.questions
    number = next(q for q in questions.values() if q.type == "number")
    multiple = next(q for q in questions.values() if q.type == "multiple")
    single = next(q for q in questions.values() if q.type == "single")
    assert cell_value(number, " 4 ") == 4
    assert cell_value(number, "2.5") == 2.5
    assert cell_value(number, "1e-05") == 1e-05
    assert cell_value(number, "four") == "four"  # left for validation to report
    assert cell_value(number, "1_000") == "1_000"
    assert cell_value(multiple, "a; b") == ["a", "b"]
    assert cell_value(multiple, "[]") == []
    assert cell_value(single, "unknown") == UNKNOWN
    for question in (number, multiple, single):
        assert cell_value(question, "  ") is None  # an empty cell is an unknown answer


def test_an_invalid_record_is_reported_with_its_line_and_skipped(aid: DecisionAid, tmp_path: Path) -> None:
    good = aid.read_answers(SCIATICA).model_dump()
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps(good) + "\n\n" + json.dumps({**good, "age_years": "old"}) + "\n{not json\n" + json.dumps(good) + "\n"
    )
    out = tmp_path / "out.jsonl"
    done = run_cli("evaluate", "--batch", str(source), "-o", str(out))
    assert done.returncode == 1
    assert f"{source}, line 3, field `age_years`: expected a whole number" in done.stderr
    assert f"{source}, line 4: not valid JSON" in done.stderr
    lines = read_jsonl(out)
    assert [line["line"] for line in lines] == [1, 3, 4, 5]
    assert lines[0]["result"] == lines[3]["result"]
    assert lines[1]["error"]["problems"][0]["field"] == "age_years"
    assert "not valid JSON" in lines[2]["error"]["problems"][0]["message"]
    assert "2 invalid" in done.stderr


def test_strict_stops_at_the_first_invalid_record_and_writes_nothing(aid: DecisionAid, tmp_path: Path) -> None:
    good = aid.read_answers(SCIATICA).model_dump()
    source = write_jsonl(tmp_path / "in.jsonl", [good, good, {**good, "red_flags": "none"}, {"age_years": -1}])
    out = tmp_path / "out.jsonl"
    for workers in ("1", "2"):
        done = run_cli("evaluate", "--batch", str(source), "-o", str(out), "--strict", "--workers", workers)
        assert done.returncode == 2
        assert "line 3, field `red_flags`" in done.stderr
        assert "line 4" not in done.stderr
        assert not out.exists()
        assert list(tmp_path.iterdir()) == [source]  # no temporary file left behind


def test_full_results_are_what_evaluate_prints_for_one_patient(tmp_path: Path) -> None:
    example = SCIATICA
    single = run_cli("evaluate", str(example), "--format", "json")
    assert single.returncode == 0, single.stderr
    answers = DecisionAid.load().read_answers(example).model_dump()
    source = write_jsonl(tmp_path / "in.jsonl", [{"answers": answers}])
    out = tmp_path / "out.jsonl"
    done = run_cli("evaluate", "--batch", str(source), "-o", str(out), "--full", "--compare-profiles")
    assert done.returncode == 0, done.stderr
    (line,) = read_jsonl(out)
    assert line["result"] == json.loads(single.stdout)


def test_compact_results_name_their_schema_and_profile_differences_only_on_request(
    aid: DecisionAid, tmp_path: Path
) -> None:
    answers = [aid.read_answers(path).model_dump() for path in EXAMPLES]
    source = write_jsonl(tmp_path / "in.jsonl", answers)
    plain, compared = tmp_path / "plain.jsonl", tmp_path / "compared.jsonl"
    assert run_cli("evaluate", "--batch", str(source), "-o", str(plain), "-p", "uk-nice").returncode == 0
    assert run_cli("evaluate", "--batch", str(source), "-o", str(compared), "--compare-profiles").returncode == 0
    for line in read_jsonl(plain):
        assert line["result"]["schema"] == SUMMARY_SCHEMA
        assert line["result"]["profile"] == "uk-nice"
        assert line["result"]["profile_differences"] == []
    for record, line in zip(answers, read_jsonl(compared), strict=True):
        full = aid.evaluate(aid.parse_answers(record))
        expected = [
            {"procedure": d.procedure, "profile": d.profile, "status": d.status} for d in full.profile_differences
        ]
        assert line["result"]["profile_differences"] == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["examples/sciatica.yaml", "--batch", "x.jsonl", "-o", "o.jsonl"], "not both"),
        ([], "give one patient's ANSWERS file"),
        (["--batch", "examples/sciatica.yaml", "-o", "o.jsonl"], "JSON Lines (.jsonl) or CSV (.csv)"),
        (["--batch", "in.jsonl"], "needs -o OUT"),
        (["examples/sciatica.yaml", "--workers", "2"], "go with --batch"),
        (["examples/sciatica.yaml", "--strict"], "go with --batch"),
        (["--batch", "in.jsonl", "-o", "o.jsonl", "--record"], "not --batch"),
        (["--batch", "missing.jsonl", "-o", "o.jsonl"], "no such file"),
        (["--batch", "in.jsonl", "-o", "o.jsonl", "--profile", "nowhere"], "unknown profile"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "in.jsonl").write_text("{}\n")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    done = run_cli("evaluate", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", "\n\n", "has no records"),
        ("empty.csv", "age_years\n", "has no records"),
        ("bad-header.csv", "age_years,agee\n4,5\n", "line 1, field `agee`: not a question id"),
        ("twice.csv", "age_years,age_years\n4,5\n", "appears twice"),
        ("long-row.csv", "age_years\n4,5\n", "line 2: 1 more cell than the header has columns"),
    ],
)
def test_unusable_input_files_exit_2_and_write_nothing(tmp_path: Path, name: str, content: str, message: str) -> None:
    source = tmp_path / name
    source.write_text(content)
    out = tmp_path / "out.jsonl"
    done = run_cli("evaluate", "--batch", str(source), "-o", str(out), "--strict")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert not out.exists()


def test_an_existing_output_is_replaced_only_with_force(aid: DecisionAid, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [aid.read_answers(SCIATICA).model_dump()])
    out = tmp_path / "out.jsonl"
    out.write_text("keep me\n")
    refused = run_cli("evaluate", "--batch", str(source), "-o", str(out))
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert out.read_text() == "keep me\n"
    assert run_cli("evaluate", "--batch", str(source), "-o", str(out), "--force").returncode == 0
    assert read_jsonl(out)[0]["line"] == 1


def test_a_progress_bar_shows_on_a_terminal_and_not_otherwise(aid: DecisionAid, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [aid.read_answers(SCIATICA).model_dump()] * 300)
    piped = run_cli("evaluate", "--batch", str(source), "-o", str(tmp_path / "piped.jsonl"))
    assert piped.returncode == 0
    assert "evaluating" not in piped.stderr
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    command = [
        sys.executable,
        str(ROOT / "cli.py"),
        "evaluate",
        "--batch",
        str(source),
        "-o",
        str(tmp_path / "tty.jsonl"),
    ]
    process = subprocess.Popen(command, stderr=follower, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
    os.close(follower)
    screen = b""
    while True:  # read as it is written, until the command closes the terminal
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    process.wait(timeout=120)
    assert process.returncode == 0
    assert b"evaluating" in screen
    assert (tmp_path / "tty.jsonl").read_bytes() == (tmp_path / "piped.jsonl").read_bytes()
