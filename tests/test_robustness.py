"""Safe failure: garbage input and Ctrl-C never crash the tool, and never leave anything half-written.

Every kind of garbage answers file goes through the real command line with both an output
file (-o) and a records database (--record): each must give one clear message naming the
file, exit code 2, no traceback, and nothing written to either. Then `evaluate` and
`summary` are interrupted (SIGINT) at moments spread over a whole run: the output file
is then either absent or complete and valid, and no temporary file is left behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from engine.model.loading import MAX_DEPTH, MAX_FILE_BYTES
from engine.records.store import RecordStore

SCIATICA = ROOT / "examples/sciatica.yaml"

BILLION_LAUGHS = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    + ["concerns: *a8"]
)

GARBAGE: dict[str, tuple[bytes | None, str]] = {
    # name: (file content, or None for a special path; a phrase the message must contain)
    "wrong_type_text_for_number": (b"age_years: forty\n", "field `age_years`"),
    "wrong_type_bool_for_number": (b"age_years: true\n", "field `age_years`"),
    "wrong_type_string_for_list": (b"red_flags: new_weakness\n", "field `red_flags`"),
    "wrong_type_number_for_choice": (b"pain_region: 3\n", "field `pain_region`"),
    "value_not_allowed": (b"pain_region: elbow\n", "field `pain_region`"),
    "huge_float_json": (b'{"pain_intensity": 1e309}', "field `pain_intensity`"),
    "huge_float_yaml": (b"pain_intensity: 1.0e+309\n", "field `pain_intensity`"),
    "not_a_number_yaml": (b"pain_intensity: .nan\n", "field `pain_intensity`"),
    "huge_integer": (b"age_years: " + b"1" + b"0" * 100 + b"\n", "field `age_years`"),
    "huge_integer_json": (b'{"age_years": ' + b"9" * 5000 + b"}", "too many digits"),
    "huge_integer_yaml": (b"age_years: " + b"9" * 5000 + b"\n", "too many digits"),
    "impossible_date_yaml": (b"concerns: 2024-13-45\n", "a value cannot be read"),
    "unknown_key": (b"favourite_colour: blue\n", "field `favourite_colour`"),
    "empty": (b"", "empty"),
    "only_whitespace": (b"  \n\n\t\n", "empty"),
    "binary": (bytes(range(256)) * 8, "binary"),
    "nul_in_text": (b"concerns: a\x00b\n", "answers"),
    "not_utf8": (b"concerns: caf\xe9\n", "UTF-8"),
    "lone_surrogate_json": (b'{"concerns": "\\ud800"}', "field `concerns`"),
    "top_level_list": (b"- age_years: 40\n", "expected a mapping"),
    "top_level_scalar": (b"hello\n", "expected a mapping"),
    "deep_yaml_flow": (b"concerns: " + b"[" * 5000 + b"]" * 5000 + b"\n", "answers"),
    "deep_yaml_block": (
        b"".join(b"  " * i + b"k%d:\n" % i for i in range(MAX_DEPTH + 8)) + b"  " * (MAX_DEPTH + 8) + b"x\n",
        "nested too deeply",
    ),
    "deep_json": (b'{"concerns": ' + b'{"a": ' * 20000 + b"1" + b"}" * 20000 + b"}", "answers"),
    "alias_bomb": (BILLION_LAUGHS.encode(), "aliases"),
    "recursive_alias": (b"concerns: &a [*a]\n", "aliases"),
    "too_big": (b"concerns: " + b"x" * (MAX_FILE_BYTES + 10) + b"\n", "answers"),
    "missing_file": (None, "cannot read the file"),
    "directory": (None, "cannot read the file"),
}


@dataclass(frozen=True)
class Outcome:
    file: Path
    out: Path
    db: Path
    done: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every garbage case through the real CLI, run a few at a time (each is its own process)."""

    def run(name: str) -> Outcome:
        folder = tmp_path_factory.mktemp(name)
        content, _message = GARBAGE[name]
        path = folder / ("answers.json" if name.endswith("json") else "answers.yaml")
        if name == "directory":
            path.mkdir()
        elif content is not None:
            path.write_bytes(content)
        out, db = folder / "out.json", folder / "records.sqlite3"
        done = run_cli("evaluate", str(path), "-f", "json", "-o", str(out), "--record", "--db", str(db))
        return Outcome(path, out, db, done)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(GARBAGE, pool.map(run, GARBAGE), strict=True))


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_answers_get_a_clear_error_exit_2_and_nothing_written(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = outcomes[name]
    done = outcome.done
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("pain-sdm: "), done.stderr
    assert str(outcome.file) in done.stderr
    problems = [line for line in done.stderr.splitlines() if line.startswith("  - ")]
    assert all(line.startswith(f"  - {outcome.file}") for line in problems), done.stderr  # the file first
    assert GARBAGE[name][1] in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr) < 4000  # one clear message, not a dump of the input
    assert done.stdout == ""
    assert not outcome.out.exists()
    assert not outcome.db.exists()
    assert sorted(p.name for p in outcome.out.parent.iterdir()) == (
        [outcome.file.name] if outcome.file.exists() else []
    )


# --- Ctrl-C ----------------------------------------------------------------------------------------

FRACTIONS = (0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0, 1.2)


@dataclass(frozen=True)
class Command:
    args: Callable[[Path], list[str]]
    valid: Callable[[bytes], bool]


def complete_json(data: bytes) -> bool:
    return bool(json.loads(data)["schema"] == "pain-sdm/result/1")


def complete_html(data: bytes) -> bool:
    return data.rstrip().endswith(b"</html>")


COMMANDS = {
    "evaluate": Command(lambda out: ["evaluate", str(SCIATICA), "-f", "json", "-o", str(out)], complete_json),
    "evaluate_record": Command(
        lambda out: ["evaluate", str(SCIATICA), "-f", "json", "-o", str(out), "--record", "--db", f"{out}.db"],
        complete_json,
    ),
    "summary": Command(lambda out: ["summary", str(SCIATICA), "-f", "html", "-o", str(out)], complete_html),
}


def interrupted_at(args: list[str], delay: float) -> int:
    """Start the CLI, send SIGINT after `delay` seconds (or not at all if it ended first)."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err or b"KeyboardInterrupt" in err, err.decode(errors="replace")
    return proc.returncode


@pytest.mark.parametrize(
    "command",
    [
        "evaluate",
        "evaluate_record",
        "summary",
    ],
)
def test_ctrl_c_at_any_moment_leaves_no_partial_file(tmp_path: Path, command: str) -> None:
    spec = COMMANDS[command]
    started = time.perf_counter()
    whole = run_cli(*spec.args(tmp_path / "reference"))
    duration = time.perf_counter() - started
    assert whole.returncode == 0, whole.stderr
    assert spec.valid((tmp_path / "reference").read_bytes())

    def attempt(i: int) -> tuple[int, Path]:
        out = tmp_path / f"out-{i}"
        return interrupted_at(spec.args(out), FRACTIONS[i] * duration), out

    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = list(pool.map(attempt, range(len(FRACTIONS))))
    for code, out in runs:
        if out.exists():
            assert spec.valid(out.read_bytes()), out
        else:
            assert code != 0
        db = Path(f"{out}.db")
        if db.exists():  # the record is there whole, or not at all
            with RecordStore.open(db, create=False) as store:
                assert store.verify() == []
                assert store.count() <= 1
                if store.count():
                    assert store.get(1).result == json.loads((tmp_path / "reference").read_text())
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert any(not out.exists() for _code, out in runs)  # some runs really were interrupted
