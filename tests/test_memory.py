"""Start-up builds its long-lived objects with cyclic collection paused, and collection resumes after.

See engine/memory.py: the command line pauses the collector first thing; loading a decision aid
ends the pause (freezing what start-up built), and the collector then runs as always.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from engine import memory

PROBE = """
import gc, json, sys
from pathlib import Path
before = gc.isenabled()
import cli
during = gc.isenabled()
from engine.evaluation.aid import DecisionAid
error = ""
try:
    DecisionAid.load(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
except Exception as exc:
    error = str(exc)
states = {"before": before, "during": during, "after": gc.isenabled(), "frozen": gc.get_freeze_count()}
print(json.dumps({**states, "error": error}))
"""


def probe(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, check=True)
    states: dict[str, Any] = json.loads(done.stdout)
    return states


def test_the_command_line_pauses_collection_until_the_aid_is_loaded() -> None:
    states = probe()
    assert states["error"] == ""
    assert states["before"] is True and states["during"] is False, "importing the command line pauses collection"
    assert states["after"] is True, "a loaded decision aid resumes it"
    assert states["frozen"] > 10_000, "what start-up built is frozen: no collection walks it again"


def test_a_failed_load_resumes_collection_too(tmp_path: Path) -> None:
    (tmp_path / "10-bad.yaml").write_text("rules: [", encoding="utf-8")
    for rules in (tmp_path, tmp_path / "missing"):
        states = probe(str(rules))
        assert str(rules) in states["error"], states
        assert states["during"] is False and states["after"] is True, states


def test_building_pauses_collection_inside_the_block_and_restores_it() -> None:
    assert gc.isenabled()
    with memory.building():
        assert not gc.isenabled()
        with memory.building():
            assert not gc.isenabled()
        assert not gc.isenabled(), "an inner block leaves the outer one paused"
    assert gc.isenabled()
    try:
        with memory.building():
            raise ValueError("a failed build")
    except ValueError:
        pass
    assert gc.isenabled(), "a block that raised restores collection"


def test_start_up_done_without_a_pause_changes_nothing() -> None:
    frozen = gc.get_freeze_count()
    memory.start_up_done()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_a_block_until_exit_restores_collection_unless_the_process_ends_after_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert gc.isenabled()
    with memory.building(until_exit=True):
        assert not gc.isenabled()
    assert gc.isenabled(), "in a process that goes on (a test, the web server), collection resumes"
    monkeypatch.setattr(memory, "_exit_follows_command", True)
    try:
        with memory.building(until_exit=True):
            assert not gc.isenabled()
        assert not gc.isenabled(), "the command line's main ends the process next: collection stays paused"
    finally:
        gc.enable()
